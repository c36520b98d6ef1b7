//! `composer.lock`: `packages` (required) and `packages-dev` (excluded), with licenses, dist
//! checksums and `require` edges. Direct dependencies come from the `composer.json` beside it.

use super::common::{
    err, hex_hash, infer_direct, json_err, line_of_needle, mark_direct, merge_duplicates,
};
use crate::model::{Component, Ecosystem, ParseWarning, Parsed, Resolution, Scope, Source};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Parses a composer.lock.
pub fn parse(file: &str, text: &str, dir: Option<&Path>) -> Result<Parsed, super::ParseError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| json_err(file, &e, "a composer.lock object with `packages`"))?;
    let Some(obj) = root.as_object() else {
        return Err(err(
            file,
            Some(1),
            "the top level is not a JSON object; expected a composer.lock with `packages`",
            None,
        ));
    };
    if !obj.contains_key("packages") && !obj.contains_key("packages-dev") {
        return Err(err(
            file,
            Some(1),
            "no `packages` or `packages-dev`; expected a composer.lock",
            Some("run `composer update --lock` to regenerate it"),
        ));
    }
    let mut comps = Vec::new();
    let mut warnings = Vec::new();
    for (section, scope) in [
        ("packages", Scope::Required),
        ("packages-dev", Scope::Excluded),
    ] {
        let Some(list) = obj.get(section) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            return Err(err(
                file,
                line_of_needle(text, &format!("\"{section}\"")),
                format!("`{section}` is not an array; expected a list of package objects"),
                None,
            ));
        };
        for p in list {
            let (Some(full), Some(version)) = (
                p.get("name").and_then(Value::as_str),
                p.get("version").and_then(Value::as_str),
            ) else {
                warnings.push(ParseWarning {
                    line: line_of_needle(text, &format!("\"{section}\"")),
                    message: format!("a `{section}` entry lacks `name` or `version`; skipped"),
                });
                continue;
            };
            let (namespace, name) = match full.split_once('/') {
                Some((v, n)) => (Some(v.to_ascii_lowercase()), n.to_ascii_lowercase()),
                None => (None, full.to_ascii_lowercase()),
            };
            let license = match p.get("license") {
                Some(Value::Array(a)) => {
                    let ids: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                    // Composer: several licenses in the array are alternatives.
                    match ids.len() {
                        0 => None,
                        1 => Some(ids[0].to_owned()),
                        _ => Some(
                            ids.iter()
                                .map(|i| {
                                    if i.contains(' ') {
                                        format!("({i})")
                                    } else {
                                        (*i).to_owned()
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(" OR "),
                        ),
                    }
                }
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            let src = p.get("source");
            let dist = p.get("dist");
            let mut properties = BTreeMap::new();
            if let Some(t) = p.get("type").and_then(Value::as_str) {
                properties.insert("cutover:composer:type".to_owned(), t.to_owned());
            }
            let source = match (
                src.and_then(|s| s.get("type")).and_then(Value::as_str),
                src.and_then(|s| s.get("url")).and_then(Value::as_str),
            ) {
                (Some("path"), Some(u)) => Source::Path { path: u.to_owned() },
                (Some(_), Some(_)) if version.starts_with("dev-") => Source::Git {
                    url: super::npm::strip_userinfo(
                        src.and_then(|s| s.get("url"))
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    ),
                    rev: src
                        .and_then(|s| s.get("reference"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                _ => Source::Registry,
            };
            if let Some(u) = src.and_then(|s| s.get("url")).and_then(Value::as_str) {
                properties.insert(
                    "cutover:composer:vcs".to_owned(),
                    super::npm::strip_userinfo(u),
                );
            }
            let hashes = dist
                .and_then(|d| d.get("shasum"))
                .and_then(Value::as_str)
                .and_then(|s| hex_hash("SHA-1", s))
                .into_iter()
                .collect();
            let depends_on: Vec<String> = p
                .get("require")
                .and_then(Value::as_object)
                .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
                .unwrap_or_default();
            comps.push(Component {
                ecosystem: Ecosystem::Packagist,
                namespace,
                name,
                version: version.to_owned(),
                resolution: Resolution::Resolved,
                scope,
                direct: false,
                source,
                hashes,
                license,
                manifest: file.to_owned(),
                // Names for now; turned into keys below once every package is known.
                depends_on,
                properties,
            });
        }
    }
    // Composer locks one version per name, so a required name maps to one key.
    let mut key_by_name: BTreeMap<String, String> = BTreeMap::new();
    for c in &comps {
        let full = match &c.namespace {
            Some(ns) => format!("{ns}/{}", c.name),
            None => c.name.clone(),
        };
        key_by_name.entry(full).or_insert_with(|| c.key());
    }
    for c in &mut comps {
        c.depends_on = c
            .depends_on
            .iter()
            .filter_map(|n| key_by_name.get(n).cloned())
            .collect();
    }
    match read_composer_json(dir) {
        Some(names) => {
            let direct: BTreeSet<String> = names
                .iter()
                .filter_map(|n| key_by_name.get(n).cloned())
                .collect();
            mark_direct(&mut comps, &direct);
        }
        None => infer_direct(&mut comps),
    }
    Ok(Parsed {
        components: merge_duplicates(comps),
        warnings,
    })
}

fn read_composer_json(dir: Option<&Path>) -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string(dir?.join("composer.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let mut out = BTreeSet::new();
    for k in ["require", "require-dev"] {
        if let Some(m) = v.get(k).and_then(Value::as_object) {
            out.extend(m.keys().map(|k| k.to_ascii_lowercase()));
        }
    }
    Some(out)
}
