//! `pnpm-lock.yaml` versions 5 to 9 (`/name@ver(peer)` keys in v6, `name@ver(peer)` plus
//! `snapshots` in v9; multi-document files). Peer-dependency variants of one package are one
//! component.

use super::common::{err, mark_direct, merge_duplicates, propagate_scopes, sri_hashes};
use super::npm::{split_scope, strip_userinfo};
use crate::model::{Component, Ecosystem, ParseWarning, Parsed, Resolution, Scope, Source};
use serde::Deserialize as _;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Highest `lockfileVersion` major this parser knows.
const MAX_MAJOR: u64 = 9;

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(x) => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Splits a package id `@scope/name@1.0.0(peer@1)` (v6/v9) or `/@scope/name/1.0.0_peer` (v5) into
/// name and the version reference without peer suffixes.
fn split_id(id: &str, v5: bool) -> Option<(String, String)> {
    let id = id.strip_prefix('/').unwrap_or(id);
    let no_peer = match id.find('(') {
        Some(i) => &id[..i],
        None => id,
    };
    if v5 {
        let (name, ver) = no_peer.rsplit_once('/')?;
        let ver = ver.split('_').next().unwrap_or(ver);
        return Some((name.to_owned(), ver.to_owned()));
    }
    let from = usize::from(no_peer.starts_with('@'));
    let at = no_peer[from..].find('@')? + from;
    Some((no_peer[..at].to_owned(), no_peer[at + 1..].to_owned()))
}

/// A dependency's version reference (`1.2.3(peer@1)`, `/other@1.0.0`, `other@1.0.0`, a URL,
/// `link:...`) as the normalised id `name@ref` used for lookup; `None` for links.
fn dep_id(name: &str, reference: &str, v5: bool) -> Option<String> {
    if reference.starts_with("link:") || reference.starts_with("file:") {
        return None;
    }
    if reference.starts_with('/') {
        return split_id(reference, v5).map(|(n, v)| format!("{n}@{v}"));
    }
    let no_peer = match reference.find('(') {
        Some(i) => &reference[..i],
        None => reference,
    };
    let no_peer = if v5 {
        no_peer.split('_').next().unwrap_or(no_peer)
    } else {
        no_peer
    };
    // `string-width@4.2.3`: an alias to another package (but not a URL containing `@`).
    if !no_peer.contains("://")
        && let Some((n, v)) = split_id(no_peer, false)
        && !n.is_empty()
    {
        return Some(format!("{n}@{v}"));
    }
    Some(format!("{name}@{no_peer}"))
}

/// Parses a pnpm-lock.yaml (all YAML documents in it).
pub fn parse(file: &str, text: &str) -> Result<Parsed, super::ParseError> {
    let mut comps = Vec::new();
    let mut warnings = Vec::new();
    let mut any_doc = false;
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| {
            err(
                file,
                e.location().map(|l| l.line()),
                format!(
                    "invalid YAML: {e}; expected a pnpm-lock.yaml mapping with `lockfileVersion`"
                ),
                Some(
                    "the file may be truncated; regenerate it with `pnpm install --lockfile-only`",
                ),
            )
        })?;
        if v.is_null() {
            continue;
        }
        any_doc = true;
        parse_doc(file, text, &v, &mut comps, &mut warnings)?;
    }
    if !any_doc {
        return Err(err(
            file,
            Some(1),
            "empty file; expected a pnpm-lock.yaml with `lockfileVersion`",
            None,
        ));
    }
    Ok(Parsed {
        components: merge_duplicates(comps),
        warnings,
    })
}

fn parse_doc(
    file: &str,
    text: &str,
    doc: &Value,
    out: &mut Vec<Component>,
    warnings: &mut Vec<ParseWarning>,
) -> Result<(), super::ParseError> {
    let Some(map) = doc.as_mapping() else {
        return Err(err(
            file,
            Some(1),
            "a YAML document is not a mapping; expected `lockfileVersion:` and `packages:`",
            None,
        ));
    };
    let line_of_version = super::common::line_of_needle(text, "lockfileVersion");
    let Some(ver) = map.get("lockfileVersion").and_then(s) else {
        return Err(err(
            file,
            line_of_version.or(Some(1)),
            "no `lockfileVersion`; expected e.g. `lockfileVersion: '9.0'`",
            None,
        ));
    };
    let major: u64 = ver
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            err(
                file,
                line_of_version,
                format!("`lockfileVersion` is \"{ver}\"; expected a number like '6.0' or '9.0'"),
                None,
            )
        })?;
    if !(5..=MAX_MAJOR).contains(&major) {
        return Err(err(
            file,
            line_of_version,
            format!(
                "unknown pnpm lockfileVersion {ver}; this parser understands 5.x to {MAX_MAJOR}.x"
            ),
            Some("regenerate the lock with a supported pnpm, or update cutover"),
        ));
    }
    let v5 = major == 5;

    // Importers: v9 always, v6 for workspaces; v6 single projects keep them at the top.
    let mut importers: Vec<&serde_norway::Mapping> = Vec::new();
    if let Some(imp) = map.get("importers").and_then(Value::as_mapping) {
        importers.extend(imp.values().filter_map(Value::as_mapping));
    } else {
        importers.push(map);
    }
    let has_project_deps = importers.iter().any(|m| {
        ["dependencies", "devDependencies", "optionalDependencies"]
            .iter()
            .any(|k| m.get(*k).is_some())
    });
    if !has_project_deps && map.get("importers").is_some() {
        // pnpm's own environment document (`packageManagerDependencies`): not the project's.
        return Ok(());
    }

    let packages = map.get("packages").and_then(Value::as_mapping);
    let snapshots = map.get("snapshots").and_then(Value::as_mapping);
    let mut comps: Vec<Component> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(packages) = packages {
        for (k, entry) in packages {
            let Some(id) = s(k) else { continue };
            let Some((key_name, key_ref)) = split_id(&id, v5) else {
                warnings.push(ParseWarning {
                    line: super::common::line_of_needle(text, &id),
                    message: format!("package key \"{id}\" is not `name@version`; skipped"),
                });
                continue;
            };
            let name_full = entry.get("name").and_then(s).unwrap_or(key_name.clone());
            let version = entry.get("version").and_then(s).unwrap_or(key_ref.clone());
            let res = entry.get("resolution");
            let integrity = res.and_then(|r| r.get("integrity")).and_then(s);
            let tarball = res.and_then(|r| r.get("tarball")).and_then(s);
            let repo = res.and_then(|r| r.get("repo")).and_then(s);
            let commit = res.and_then(|r| r.get("commit")).and_then(s);
            let source = if let Some(repo) = repo {
                Source::Git {
                    url: strip_userinfo(&repo),
                    rev: commit,
                }
            } else if let Some(t) = &tarball {
                if let Some(rest) = t.strip_prefix("https://codeload.github.com/") {
                    let p: Vec<&str> = rest.split('/').collect();
                    if p.len() >= 4 {
                        Source::Git {
                            url: format!("https://github.com/{}/{}", p[0], p[1]),
                            rev: Some(p[3].to_owned()),
                        }
                    } else {
                        Source::Url {
                            url: strip_userinfo(t),
                        }
                    }
                } else if t.starts_with("file:") {
                    Source::Path {
                        path: t.trim_start_matches("file:").to_owned(),
                    }
                } else {
                    Source::Url {
                        url: strip_userinfo(t),
                    }
                }
            } else {
                Source::Registry
            };
            let flag = |f: &str| entry.get(f).and_then(Value::as_bool);
            let scope = if flag("dev") == Some(true) {
                Scope::Excluded
            } else if flag("optional") == Some(true) {
                Scope::Optional
            } else {
                Scope::Required
            };
            let (namespace, name) = split_scope(&name_full);
            let mut properties = BTreeMap::new();
            if let Some(i) = id.find('(') {
                properties.insert("cutover:pnpm:peers".to_owned(), id[i..].to_owned());
            }
            let c = Component {
                ecosystem: Ecosystem::Npm,
                namespace,
                name,
                version,
                resolution: Resolution::Resolved,
                scope,
                direct: false,
                source,
                hashes: integrity.as_deref().map(sri_hashes).unwrap_or_default(),
                license: None,
                manifest: file.to_owned(),
                depends_on: Vec::new(),
                properties,
            };
            let norm = format!("{key_name}@{key_ref}");
            let idx = *by_id.entry(norm).or_insert_with(|| {
                comps.push(c);
                comps.len() - 1
            });
            // Edges: v5/v6 keep them in `packages`, v9 in `snapshots`.
            let mut deps = Vec::new();
            collect_deps(entry, v5, &mut deps);
            pending_edges_push(&mut comps[idx], deps);
        }
    }
    if let Some(snaps) = snapshots {
        for (k, entry) in snaps {
            let Some(id) = s(k) else { continue };
            let Some((n, r)) = split_id(&id, false) else {
                continue;
            };
            if let Some(&idx) = by_id.get(&format!("{n}@{r}")) {
                let mut deps = Vec::new();
                collect_deps(entry, false, &mut deps);
                pending_edges_push(&mut comps[idx], deps);
                if entry.get("optional").and_then(Value::as_bool) == Some(true) {
                    comps[idx].scope = comps[idx].scope.max(Scope::Optional);
                }
            }
        }
    }
    // Turn pending `name@ref` ids into keys.
    let mut optional_edges = BTreeSet::new();
    for i in 0..comps.len() {
        let pending = std::mem::take(&mut comps[i].depends_on);
        let from_key = comps[i].key();
        let mut deps = Vec::new();
        for p in pending {
            let (optional, id) = match p.strip_prefix("?") {
                Some(rest) => (true, rest.to_owned()),
                None => (false, p),
            };
            if let Some(&j) = by_id.get(&id) {
                let k = comps[j].key();
                if optional {
                    optional_edges.insert((from_key.clone(), k.clone()));
                }
                deps.push(k);
            }
        }
        comps[i].depends_on = deps;
    }
    let mut roots = Vec::new();
    for imp in &importers {
        for (section, scope) in [
            ("dependencies", Scope::Required),
            ("optionalDependencies", Scope::Optional),
            ("devDependencies", Scope::Excluded),
        ] {
            let Some(m) = imp.get(section).and_then(Value::as_mapping) else {
                continue;
            };
            for (dn, dv) in m {
                let Some(dn) = s(dn) else { continue };
                let reference = match dv {
                    Value::Mapping(_) => dv.get("version").and_then(s),
                    other => s(other),
                };
                let Some(reference) = reference else { continue };
                if let Some(id) = dep_id(&dn, &reference, v5)
                    && let Some(&j) = by_id.get(&id)
                {
                    roots.push((comps[j].key(), scope));
                }
            }
        }
    }
    let direct: BTreeSet<String> = roots.iter().map(|(k, _)| k.clone()).collect();
    if !roots.is_empty() {
        propagate_scopes(&mut comps, &roots, &optional_edges);
    }
    mark_direct(&mut comps, &direct);
    out.extend(comps);
    Ok(())
}

/// Adds `name@ref` ids (optional ones prefixed with `?`) to the component's pending edges.
fn pending_edges_push(c: &mut Component, deps: Vec<String>) {
    for d in deps {
        if !c.depends_on.contains(&d) {
            c.depends_on.push(d);
        }
    }
}

fn collect_deps(entry: &Value, v5: bool, out: &mut Vec<String>) {
    for (section, optional) in [("dependencies", false), ("optionalDependencies", true)] {
        if let Some(m) = entry.get(section).and_then(Value::as_mapping) {
            for (n, r) in m {
                if let (Some(n), Some(r)) = (s(n), s(r))
                    && let Some(id) = dep_id(&n, &r, v5)
                {
                    out.push(if optional { format!("?{id}") } else { id });
                }
            }
        }
    }
}
