//! Database URLs: telling SQLite paths from PostgreSQL URLs, and redacting passwords.

use std::path::PathBuf;

use crate::StoreError;

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Reads `sqlite:PATH`, `sqlite://PATH`, a plain path, or `postgres://…` / `postgresql://…`.
pub fn parse_target(url: &str) -> Result<Target, StoreError> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(StoreError::BadUrl {
            url: String::new(),
            reason: "it is empty".into(),
        });
    }
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return Ok(Target::Postgres(trimmed.to_owned()));
    }
    if let Some(rest) = trimmed.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        // sqlx-style options after `?` are not ours to honour: the store sets its own.
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::BadUrl {
                url: redact_url(url),
                reason:
                    "a SQLite store needs a file path (an in-memory database would lose everything)"
                        .into(),
            });
        }
        return Ok(Target::Sqlite(PathBuf::from(path)));
    }
    if let Some((scheme, _)) = trimmed.split_once("://") {
        return Err(StoreError::BadUrl {
            url: redact_url(url),
            reason: format!(
                "the scheme `{scheme}` is not supported (expected `postgres`, `postgresql` or `sqlite`)"
            ),
        });
    }
    Ok(Target::Sqlite(PathBuf::from(trimmed)))
}

/// The password of a `scheme://user:password@host/…` URL, if it has one (as written, percent-encoded).
fn password_span(url: &str) -> Option<(usize, usize)> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let colon = userinfo.find(':')?;
    Some((scheme_end + colon + 1, scheme_end + at))
}

/// The URL with its password (in the userinfo or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{base}{}", redacted.join("&"));
    }
    out
}

/// Every spelling of the URL's secrets (raw and percent-decoded), to scrub from driver messages.
pub(crate) fn secrets_of(url: &str) -> Vec<String> {
    let mut raw = Vec::new();
    if let Some((start, end)) = password_span(url) {
        raw.push(url[start..end].to_owned());
    }
    if let Some((_, query)) = url.split_once('?') {
        for kv in query.split('&') {
            if let Some((k, v)) = kv.split_once('=')
                && k.eq_ignore_ascii_case("password")
            {
                raw.push(v.to_owned());
            }
        }
    }
    let mut all = Vec::new();
    for s in raw.into_iter().filter(|s| !s.is_empty()) {
        let decoded = percent_decode(&s);
        if decoded != s && !decoded.is_empty() {
            all.push(decoded);
        }
        all.push(s);
    }
    all
}

/// Replaces every secret of `url` found in `message` by `***`.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    for secret in secrets_of(url) {
        out = out.replace(&secret, "***");
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hi = (bytes[i + 1] as char).to_digit(16).unwrap_or_default();
            let lo = (bytes[i + 2] as char).to_digit(16).unwrap_or_default();
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("x/state.db").unwrap(),
            Target::Sqlite("x/state.db".into())
        );
        assert_eq!(
            parse_target("sqlite:x.db").unwrap(),
            Target::Sqlite("x.db".into())
        );
        assert_eq!(
            parse_target("sqlite:///tmp/x.db?mode=rwc").unwrap(),
            Target::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            parse_target("postgresql://h/db").unwrap(),
            Target::Postgres(_)
        ));
        let err = parse_target("mysql://u:pw@h/db").unwrap_err();
        assert!(err.to_string().contains("mysql"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(parse_target("sqlite::memory:").is_err());
        assert!(parse_target("  ").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://ann:s3cr%40t@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://ann@db/x"), "postgres://ann@db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=pw&sslmode=require"),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://a:b@c@h/x"), "postgres://a:***@h/x");
        assert_eq!(
            scrub(
                "auth failed for s3cr@t and s3cr%40t",
                "postgres://ann:s3cr%40t@db/x"
            ),
            "auth failed for *** and ***"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_and_redacting_never_panic(url in ".{0,80}") {
            let _ = parse_target(&url);
            let _ = redact_url(&url);
            let _ = scrub(&url, &url);
        }

        #[test]
        fn redaction_hides_the_password(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9%!$]{6,16}",
            host in "[a-z]{1,8}",
        ) {
            let url = format!("postgres://{user}:{password}@{host}:5432/db?password={password}");
            let redacted = redact_url(&url);
            proptest::prop_assert!(!redacted.contains(&password), "{}", redacted);
            let scrubbed = scrub(&format!("error for {password}"), &url);
            proptest::prop_assert!(!scrubbed.contains(&password), "{}", scrubbed);
            let err = parse_target("mysql://x").map(|_| ()).unwrap_err();
            proptest::prop_assert!(err.is_user_error());
        }
    }
}
