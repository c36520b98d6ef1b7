//! go.mod with go.sum: `require` lines (single and block) become components, `// indirect` ones
//! transitive; `replace` directives (versioned, unversioned, local paths) and `exclude` are applied;
//! `go`, `toolchain` and `module` are not components. go.sum `h1:` hashes (base64 SHA-256 of the
//! module's directory hash) are attached as SHA-256 hex and kept verbatim as `cutover:go:h1`.
//! Before Go 1.17 go.mod did not list every module the build uses, so for such modules the
//! downloaded modules found only in go.sum are added as transitive components.
//!
//! Entry points: [`parse_go_mod`], [`parse_go_mod_with_sum`].

use crate::lockfile::other_support::{base64_to_hex, check_text, component, error, push_hash};
use crate::model::{Component, Ecosystem, Hash, ParseError, ParseWarning, Parsed, Source};
use std::collections::{BTreeMap, HashMap};

/// Parses a go.mod alone (no hashes; nothing added for pre-1.17 modules).
pub fn parse_go_mod(text: &str, path: &str) -> Result<Parsed, ParseError> {
    parse_go_mod_with_sum(text, path, None)
}

/// Parses a go.mod together with the text of the go.sum next to it, when there is one.
pub fn parse_go_mod_with_sum(
    text: &str,
    path: &str,
    go_sum: Option<&str>,
) -> Result<Parsed, ParseError> {
    check_text(text, path, "a go.mod file")?;
    let sum_path = sibling(path, "go.sum");
    let sums = match go_sum {
        Some(s) => {
            check_text(s, &sum_path, "a go.sum file")?;
            parse_go_sum(s, &sum_path)?
        }
        None => GoSum::default(),
    };
    let m = parse_directives(text, path)?;
    let mut warnings = m.warnings;
    let mut components: Vec<Component> = Vec::with_capacity(m.requires.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for req in &m.requires {
        if m.excludes
            .iter()
            .any(|(p, v)| *p == req.path && *v == req.version)
        {
            warnings.push(ParseWarning {
                line: Some(req.line),
                message: format!(
                    "{} {} is required but also excluded; left out (Go would pick a later version)",
                    req.path, req.version
                ),
            });
            continue;
        }
        let replacement = m.replaces.iter().rev().find(|r| {
            r.old == req.path && r.old_version.as_ref().is_none_or(|v| *v == req.version)
        });
        let mut c = component(
            Ecosystem::Go,
            None,
            req.path.clone(),
            req.version.clone(),
            path,
        );
        c.direct = !req.indirect;
        if let Some(r) = replacement {
            match &r.new_version {
                Some(v) => {
                    c.properties.insert(
                        "cutover:go:replaces".to_owned(),
                        format!("{}@{}", req.path, req.version),
                    );
                    c.name.clone_from(&r.new);
                    c.version.clone_from(v);
                }
                None => {
                    c.properties
                        .insert("cutover:go:replaced-by".to_owned(), r.new.clone());
                    c.source = Source::Path {
                        path: r.new.clone(),
                    };
                }
            }
        }
        if c.source == Source::Registry {
            attach_sum(&mut c, &sums);
        }
        let key = c.key();
        if let Some(&i) = seen.get(&key) {
            components[i].direct |= c.direct;
            continue;
        }
        seen.insert(key, components.len());
        components.push(c);
    }
    if m.go_version.is_some_and(|v| v < (1, 17)) {
        // Highest downloaded version of each module go.mod does not name.
        let mut extra: BTreeMap<&str, &str> = BTreeMap::new();
        for (p, v) in sums.modules.keys() {
            if components.iter().any(|c| c.name == *p) || m.requires.iter().any(|r| r.path == *p) {
                continue;
            }
            let e = extra.entry(p.as_str()).or_insert(v.as_str());
            if compare_go_versions(v, e).is_gt() {
                *e = v.as_str();
            }
        }
        for (p, v) in extra {
            let mut c = component(Ecosystem::Go, None, p.to_owned(), v.to_owned(), path);
            c.properties
                .insert("cutover:go:listed-in".to_owned(), "go.sum".to_owned());
            attach_sum(&mut c, &sums);
            components.push(c);
        }
    }
    Ok(Parsed {
        components,
        warnings,
    })
}

fn sibling(path: &str, name: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    }
}

fn attach_sum(c: &mut Component, sums: &GoSum) {
    if let Some((h1, hash)) = sums.modules.get(&(c.name.clone(), c.version.clone())) {
        push_hash(&mut c.hashes, hash.clone());
        c.properties.insert("cutover:go:h1".to_owned(), h1.clone());
    }
}

struct Require {
    path: String,
    version: String,
    indirect: bool,
    line: usize,
}

struct Replace {
    old: String,
    old_version: Option<String>,
    new: String,
    new_version: Option<String>,
}

#[derive(Default)]
struct GoMod {
    go_version: Option<(u32, u32)>,
    requires: Vec<Require>,
    replaces: Vec<Replace>,
    excludes: Vec<(String, String)>,
    warnings: Vec<ParseWarning>,
}

/// Splits a go.mod line into its tokens and its trailing `//` comment.
fn tokens(line: &str) -> (Vec<&str>, Option<&str>) {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return (out, None);
        }
        if let Some(comment) = rest.strip_prefix("//") {
            return (out, Some(comment.trim()));
        }
        let quote = rest.as_bytes()[0];
        if quote == b'"' || quote == b'`' {
            match rest[1..].find(quote as char) {
                Some(end) => {
                    out.push(&rest[1..end + 1]);
                    rest = &rest[end + 2..];
                }
                None => {
                    out.push(&rest[1..]);
                    return (out, None);
                }
            }
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let end = rest[..end].find("//").unwrap_or(end);
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
}

fn is_version(v: &str) -> bool {
    v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit())
}

fn parse_directives(text: &str, path: &str) -> Result<GoMod, ParseError> {
    let mut m = GoMod::default();
    // The verb of the `( ... )` block being read, and the line it opened on.
    let mut block: Option<(&str, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let (toks, comment) = tokens(raw);
        if toks.is_empty() {
            continue;
        }
        let (verb, args) = match block {
            Some((verb, _)) => {
                if toks == [")"] {
                    block = None;
                    continue;
                }
                (verb, &toks[..])
            }
            None => {
                if toks.len() == 2 && toks[1] == "(" {
                    block = Some((toks[0], line_no));
                    continue;
                }
                (toks[0], &toks[1..])
            }
        };
        match verb {
            "module" | "toolchain" | "retract" | "godebug" | "tool" | "ignore" => {}
            "go" => {
                let v = args.first().copied().unwrap_or("");
                let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                match (parts.next().flatten(), parts.next().flatten()) {
                    (Some(a), Some(b)) => m.go_version = Some((a, b)),
                    _ => {
                        return Err(error(
                            path,
                            Some(line_no),
                            format!("`go {v}` is not a Go version; expected e.g. `go 1.22`"),
                            None,
                        ));
                    }
                }
            }
            "require" => {
                let [module, version] = args else {
                    return Err(error(
                        path,
                        Some(line_no),
                        format!(
                            "malformed require `{}`; expected `module/path v1.2.3`",
                            args.join(" ")
                        ),
                        Some("the file may be truncated; `go mod tidy` rewrites it"),
                    ));
                };
                if !is_version(version) {
                    return Err(error(
                        path,
                        Some(line_no),
                        format!(
                            "`{version}` of {module} is not a module version; expected a semantic version like v1.2.3"
                        ),
                        None,
                    ));
                }
                let indirect =
                    comment.is_some_and(|c| c == "indirect" || c.starts_with("indirect;"));
                m.requires.push(Require {
                    path: (*module).to_owned(),
                    version: (*version).to_owned(),
                    indirect,
                    line: line_no,
                });
            }
            "replace" => {
                let Some(arrow) = args.iter().position(|t| *t == "=>") else {
                    return Err(error(
                        path,
                        Some(line_no),
                        format!(
                            "malformed replace `{}`; expected `old [version] => new [version]`",
                            args.join(" ")
                        ),
                        None,
                    ));
                };
                let (old, new) = (&args[..arrow], &args[arrow + 1..]);
                if old.is_empty() || old.len() > 2 || new.is_empty() || new.len() > 2 {
                    return Err(error(
                        path,
                        Some(line_no),
                        format!(
                            "malformed replace `{}`; expected `old [version] => new [version]`",
                            args.join(" ")
                        ),
                        None,
                    ));
                }
                m.replaces.push(Replace {
                    old: old[0].to_owned(),
                    old_version: old.get(1).map(|v| (*v).to_owned()),
                    new: new[0].to_owned(),
                    new_version: new.get(1).map(|v| (*v).to_owned()),
                });
            }
            "exclude" => {
                if let [module, version] = args {
                    m.excludes
                        .push(((*module).to_owned(), (*version).to_owned()));
                } else {
                    m.warnings.push(ParseWarning {
                        line: Some(line_no),
                        message: format!(
                            "malformed exclude `{}` ignored; expected `module v1.2.3`",
                            args.join(" ")
                        ),
                    });
                }
            }
            "(" | ")" => {
                return Err(error(
                    path,
                    Some(line_no),
                    format!("unexpected `{verb}`; expected a directive such as `require`"),
                    None,
                ));
            }
            other => m.warnings.push(ParseWarning {
                line: Some(line_no),
                message: format!("unknown go.mod directive `{other}` ignored"),
            }),
        }
    }
    if let Some((verb, opened)) = block {
        return Err(error(
            path,
            Some(opened),
            format!("`{verb} (` block opened on line {opened} is never closed; expected `)`"),
            Some("the file looks truncated"),
        ));
    }
    Ok(m)
}

#[derive(Default)]
struct GoSum {
    /// (module, version) -> (verbatim `h1:` value, decoded hash), for module zips (not `/go.mod`).
    modules: HashMap<(String, String), (String, Hash)>,
}

fn parse_go_sum(text: &str, path: &str) -> Result<GoSum, ParseError> {
    let mut sums = GoSum::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(module), Some(version), Some(hash), None) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(error(
                path,
                Some(i + 1),
                format!("malformed go.sum line `{line}`; expected `module version h1:base64`"),
                Some("the file may be truncated; `go mod tidy` rewrites it"),
            ));
        };
        if version.ends_with("/go.mod") {
            continue;
        }
        let Some(b64) = hash.strip_prefix("h1:") else {
            continue;
        };
        let Some(hex) = base64_to_hex(b64).filter(|h| h.len() == 64) else {
            return Err(error(
                path,
                Some(i + 1),
                format!(
                    "`{hash}` is not an h1 hash; expected `h1:` and 44 characters of base64 (a SHA-256)"
                ),
                None,
            ));
        };
        sums.modules.insert(
            (module.to_owned(), version.to_owned()),
            (
                hash.to_owned(),
                Hash {
                    alg: "SHA-256".to_owned(),
                    hex,
                },
            ),
        );
    }
    Ok(sums)
}

/// Orders two module versions (`v1.2.3`, `v0.0.0-2020...-abc`, `v2.0.0+incompatible`) by their
/// numeric core, then release before prerelease, then the prerelease text.
fn compare_go_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (Vec<u64>, Option<&str>) {
        let v = v.trim_start_matches('v');
        let v = v.split('+').next().unwrap_or(v);
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v, None),
        };
        (
            core.split('.').map(|n| n.parse().unwrap_or(0)).collect(),
            pre,
        )
    }
    let (ca, pa) = split(a);
    let (cb, pb) = split(b);
    ca.cmp(&cb).then_with(|| match (pa, pb) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_quotes_and_comments() {
        let (t, c) = tokens(r#"  "github.com/a/b" v1.0.0 // indirect"#);
        assert_eq!(t, vec!["github.com/a/b", "v1.0.0"]);
        assert_eq!(c, Some("indirect"));
    }

    #[test]
    fn versions_order_prerelease_first() {
        assert!(compare_go_versions("v1.2.0", "v1.2.0-rc1").is_gt());
        assert!(compare_go_versions("v1.10.0", "v1.9.9").is_gt());
    }
}
