//! The page templates (embedded at build time) and the filters they use. Templates are named
//! `*.html`, so minijinja escapes every value for HTML unless a filter marks it safe.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, Value};

use crate::WebError;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("board.html", include_str!("../templates/board.html")),
    ("releases.html", include_str!("../templates/releases.html")),
    ("release.html", include_str!("../templates/release.html")),
    (
        "deployments.html",
        include_str!("../templates/deployments.html"),
    ),
    (
        "deployment.html",
        include_str!("../templates/deployment.html"),
    ),
    ("audit.html", include_str!("../templates/audit.html")),
    ("queue.html", include_str!("../templates/queue.html")),
    ("dora.html", include_str!("../templates/dora.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the embedded templates are checked by the tests that render every page");
        }
        // HTML-escape strings as `escape` does: like minijinja's default, but `/` stays as it is
        // (escaping it adds nothing inside text or quoted attributes, and it keeps URLs readable).
        env.set_formatter(|out, state, value| {
            if *state.auto_escape() == minijinja::AutoEscape::Html
                && !value.is_safe()
                && let Some(text) = value.as_str()
            {
                out.write_str(&escape(text)).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
                })
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("dt", dt);
        env.add_filter("short", short);
        env.add_filter("seg", |s: String| path_segment(&s));
        env
    })
}

/// Renders the template `name` with `ctx`.
pub(crate) fn render(name: &str, ctx: impl serde::Serialize) -> Result<String, WebError> {
    env()
        .get_template(name)
        .and_then(|t| t.render(Value::from(minijinja::value::Serde(&ctx))))
        .map_err(|source| WebError::Template {
            name: name.to_owned(),
            source: Box::new(source),
        })
}

/// The error page; falls back to plain escaped text should the template itself fail.
pub(crate) fn error_page(status: u16, title: &str, message: &str, hint: Option<String>) -> String {
    render(
        "error.html",
        serde_json::json!({ "base": "", "status": status, "title": title, "message": message, "hint": hint }),
    )
    .unwrap_or_else(|_| {
        format!(
            "<!doctype html><title>{}</title><p>{}</p>",
            escape(title),
            escape(message)
        )
    })
}

/// HTML-escapes text (for the few places that build markup outside templates).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The text people read for an instant: `2026-11-26 14:32:05 UTC`.
pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `{{ t | dt }}`: an RFC 3339 time as a `<time>` element (machine-readable attribute, readable
/// text in UTC); anything else is shown escaped as it is, and none as a dash.
fn dt(value: Value) -> Value {
    if value.is_none() || value.is_undefined() {
        return Value::from_safe_string("<span class=\"none\">—</span>".to_owned());
    }
    let text = value.to_string();
    match DateTime::parse_from_rfc3339(&text) {
        Ok(at) => {
            let at = at.with_timezone(&Utc);
            Value::from_safe_string(format!(
                "<time datetime=\"{}\">{}</time>",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                time_text(at)
            ))
        }
        Err(_) => Value::from_safe_string(escape(&text)),
    }
}

/// `{{ commit | short }}`: the first 12 characters of an id or digest (after a `sha256:` prefix).
fn short(value: String) -> String {
    let s = value.strip_prefix("sha256:").unwrap_or(&value);
    s.chars().take(12).collect()
}

/// Percent-encodes a URL path segment (versions are mostly safe, but `+` build metadata is not).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&amp;", "&")
    }

    proptest! {
        /// Escaped text has no character that could open a tag or end an attribute, and reads
        /// back as the original.
        #[test]
        fn escaping_is_complete_and_lossless(text in any::<String>()) {
            let out = escape(&text);
            prop_assert!(!out.contains(['<', '>', '"', '\'']));
            prop_assert_eq!(unescape(&out), text);
        }

        /// Whatever a record holds, a template shows it as text.
        #[test]
        fn templates_escape_values(raw in any::<String>()) {
            // A tag of its own, which the template's markup never holds, so that finding it
            // raw can only mean the value went out unescaped.
            let text = format!("<cutover-probe>{raw}");
            let html = error_page(400, "Bad Request", &text, Some(text.clone()));
            let main = &html[html.find("<main").unwrap_or(0)..];
            prop_assert!(main.contains(&escape(&text)));
            prop_assert!(!main.contains("<cutover-probe>"));
        }
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(path_segment("1.2.0+build/7 x"), "1.2.0%2Bbuild%2F7%20x");
    }
}
