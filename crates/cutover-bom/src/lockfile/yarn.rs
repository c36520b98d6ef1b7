//! `yarn.lock`: the classic (v1) line format and the berry (v2+) YAML format. Dev/prod is not in
//! the lock; it comes from the `package.json` beside it when there is one.

use super::common::{
    err, infer_direct, mark_direct, merge_duplicates, propagate_scopes, sri_hashes,
};
use super::npm::{Declared, read_package_json, split_scope, strip_userinfo};
use crate::model::{Component, Ecosystem, Hash, ParseWarning, Parsed, Resolution, Scope, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Highest berry `__metadata.version` this parser knows.
const MAX_BERRY_VERSION: u64 = 8;

/// One lock entry, format-independent.
struct Entry {
    /// The descriptors (`name@range`) the entry satisfies.
    descriptors: Vec<String>,
    name: String,
    version: String,
    source: Source,
    hashes: Vec<Hash>,
    /// name -> range
    dependencies: Vec<(String, String)>,
    optional_dependencies: Vec<(String, String)>,
    workspace: bool,
    properties: BTreeMap<String, String>,
}

/// Parses a yarn.lock of either generation.
pub fn parse(file: &str, text: &str, dir: Option<&Path>) -> Result<Parsed, super::ParseError> {
    let is_berry = text.lines().any(|l| l.starts_with("__metadata:"));
    let (entries, warnings) = if is_berry {
        parse_berry(file, text)?
    } else {
        if !text.lines().take(5).any(|l| l.contains("yarn lockfile v1"))
            && !text.trim().is_empty()
            && !text
                .lines()
                .any(|l| !l.starts_with(' ') && !l.starts_with('#') && l.trim_end().ends_with(':'))
        {
            return Err(err(
                file,
                Some(1),
                "neither a classic yarn lockfile (`# yarn lockfile v1` with `name@range:` blocks) nor a berry one (`__metadata:`)",
                None,
            ));
        }
        parse_classic(file, text)?
    };
    Ok(build(
        file,
        &entries,
        warnings,
        read_package_json(dir).as_ref(),
    ))
}

/// `name@range` -> name (handles `@scope/name@range`).
fn descriptor_name(d: &str) -> &str {
    let from = usize::from(d.starts_with('@'));
    match d[from..].find('@') {
        Some(i) => &d[..i + from],
        None => d,
    }
}

fn descriptor_range(d: &str) -> &str {
    let n = descriptor_name(d).len();
    d.get(n + 1..).unwrap_or("")
}

/// Source of a classic `resolved` URL.
fn classic_source(resolved: &str) -> Source {
    if let Some(rest) = resolved.strip_prefix("https://codeload.github.com/") {
        // owner/repo/tar.gz/<sha>
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() >= 4 {
            return Source::Git {
                url: format!("https://github.com/{}/{}", parts[0], parts[1]),
                rev: Some(parts[3].to_owned()),
            };
        }
    }
    if resolved.starts_with("git+")
        || resolved.starts_with("git://")
        || resolved.starts_with("git@")
    {
        let r = resolved.strip_prefix("git+").unwrap_or(resolved);
        let (url, rev) = match r.rsplit_once('#') {
            Some((u, rev)) => (u, Some(rev.to_owned())),
            None => (r, None),
        };
        return Source::Git {
            url: strip_userinfo(url),
            rev,
        };
    }
    if resolved.starts_with("file:") {
        return Source::Path {
            path: resolved.trim_start_matches("file:").to_owned(),
        };
    }
    let without_frag = resolved.split('#').next().unwrap_or(resolved);
    if let Some(i) = without_frag.find("/-/") {
        let base = &without_frag[..i];
        let host_end = base.find("://").map(|s| s + 3).unwrap_or(0);
        let host_and_path = &base[host_end..];
        let registry = match host_and_path.find('/') {
            Some(j) => &base[..host_end + j],
            None => base,
        };
        if registry == "https://registry.yarnpkg.com" || registry == "https://registry.npmjs.org" {
            return Source::Registry;
        }
        return Source::AlternateRegistry {
            url: strip_userinfo(registry),
        };
    }
    Source::Url {
        url: strip_userinfo(without_frag),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1].replace("\\\"", "\"")
    } else {
        s.to_owned()
    }
}

/// Splits a field line: classic `key value` / `key "value"`, berry `key: value`; keys may be
/// quoted. A key alone (`dependencies:`) gives an empty value.
fn split_kv(line: &str, berry: bool) -> (String, String) {
    let line = line.trim();
    let (key, rest) = if let Some(after) = line.strip_prefix('"')
        && let Some(end) = after.find('"')
    {
        (after[..end].to_owned(), &after[end + 1..])
    } else {
        let sep = if berry { ": " } else { " " };
        match line.split_once(sep) {
            Some((k, v)) => (k.to_owned(), v),
            None => (line.trim_end_matches(':').to_owned(), ""),
        }
    };
    let rest = rest.trim_start();
    let rest = if berry {
        rest.strip_prefix(':').unwrap_or(rest)
    } else {
        rest
    };
    (key.trim_end_matches(':').to_owned(), unquote(rest))
}

/// Descriptors of a header line (without its final `:`): classic quotes each one, berry quotes
/// the whole list.
fn split_header(header: &str) -> Vec<String> {
    let h = header.trim();
    let whole_quoted =
        h.len() >= 2 && h.starts_with('"') && h.ends_with('"') && h.matches('"').count() == 2;
    let inner = if whole_quoted { &h[1..h.len() - 1] } else { h };
    inner
        .split(", ")
        .map(unquote)
        .filter(|d| !d.is_empty())
        .collect()
}

/// One block of the lockfile, before interpretation.
struct RawEntry {
    descriptors: Vec<String>,
    line: usize,
    fields: BTreeMap<String, String>,
    sections: BTreeMap<String, Vec<(String, String)>>,
}

type EntriesAndWarnings = (Vec<Entry>, Vec<ParseWarning>);

/// Reads the block structure shared by both generations: headers at column 0 ending in `:`,
/// fields at indent 2, section members at indent 4; deeper levels (`dependenciesMeta`) are skipped.
fn parse_blocks(file: &str, text: &str, berry: bool) -> Result<Vec<RawEntry>, super::ParseError> {
    let mut out: Vec<RawEntry> = Vec::new();
    let mut section: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        if raw.contains('\t') && raw.starts_with('\t') {
            return Err(err(
                file,
                Some(lineno),
                "a line is indented with a tab; expected spaces as yarn writes them",
                None,
            ));
        }
        let indent = raw.len() - raw.trim_start().len();
        if indent == 0 {
            let Some(header) = raw.trim_end().strip_suffix(':') else {
                return Err(err(
                    file,
                    Some(lineno),
                    format!(
                        "unexpected line `{}`; expected an entry header like `\"name@range\":`",
                        truncate(raw)
                    ),
                    None,
                ));
            };
            out.push(RawEntry {
                descriptors: split_header(header),
                line: lineno,
                fields: BTreeMap::new(),
                sections: BTreeMap::new(),
            });
            section = None;
            continue;
        }
        let Some(cur) = out.last_mut() else {
            return Err(err(
                file,
                Some(lineno),
                format!(
                    "indented line `{}` before any entry; expected `name@range:`",
                    truncate(raw)
                ),
                None,
            ));
        };
        if indent <= 2 {
            let (k, v) = split_kv(raw, berry);
            if v.is_empty() && raw.trim_end().ends_with(':') {
                cur.sections.entry(k.clone()).or_default();
                section = Some(k);
            } else {
                section = None;
                cur.fields.insert(k, v);
            }
        } else if indent <= 4 {
            if let Some(sec) = &section {
                let (k, v) = split_kv(raw, berry);
                cur.sections.entry(sec.clone()).or_default().push((k, v));
            } else {
                return Err(err(
                    file,
                    Some(lineno),
                    format!(
                        "unexpected indented line `{}`; expected a field of the entry above",
                        truncate(raw)
                    ),
                    None,
                ));
            }
        }
    }
    Ok(out)
}

fn parse_classic(file: &str, text: &str) -> Result<EntriesAndWarnings, super::ParseError> {
    let mut entries = Vec::new();
    for b in parse_blocks(file, text, false)? {
        let Some(version) = b.fields.get("version") else {
            return Err(err(
                file,
                Some(b.line),
                format!(
                    "entry \"{}\" has no `version` field; expected `  version \"x.y.z\"` under it",
                    b.descriptors.join(", ")
                ),
                Some("the file may be truncated or hand-edited; regenerate it with `yarn install`"),
            ));
        };
        let first = b.descriptors.first().cloned().unwrap_or_default();
        let mut name = descriptor_name(&first).to_owned();
        let range = descriptor_range(&first);
        let mut properties = BTreeMap::new();
        if let Some(real) = range.strip_prefix("npm:") {
            // An alias: `alias@npm:real@range`.
            properties.insert("cutover:npm:alias".to_owned(), name.clone());
            name = descriptor_name(real).to_owned();
        }
        let resolved = b.fields.get("resolved").cloned().unwrap_or_default();
        let source = if resolved.is_empty() {
            Source::Registry
        } else {
            classic_source(&resolved)
        };
        let mut hashes = b
            .fields
            .get("integrity")
            .map(|i| sri_hashes(i))
            .unwrap_or_default();
        if hashes.is_empty()
            && matches!(source, Source::Registry | Source::AlternateRegistry { .. })
            && let Some((_, frag)) = resolved.rsplit_once('#')
            && let Some(h) = super::common::hex_hash("SHA-1", frag)
        {
            hashes.push(h);
        }
        entries.push(Entry {
            descriptors: b.descriptors,
            name,
            version: version.clone(),
            source,
            hashes,
            dependencies: b.sections.get("dependencies").cloned().unwrap_or_default(),
            optional_dependencies: b
                .sections
                .get("optionalDependencies")
                .cloned()
                .unwrap_or_default(),
            workspace: false,
            properties,
        });
    }
    Ok((entries, Vec::new()))
}

fn truncate(s: &str) -> String {
    let t = s.trim();
    if t.chars().count() > 60 {
        format!("{}…", t.chars().take(60).collect::<String>())
    } else {
        t.to_owned()
    }
}

fn parse_berry(file: &str, text: &str) -> Result<EntriesAndWarnings, super::ParseError> {
    let blocks = parse_blocks(file, text, true)?;
    let meta = blocks
        .iter()
        .find(|b| b.descriptors.first().map(String::as_str) == Some("__metadata"));
    let meta_version = meta
        .and_then(|m| m.fields.get("version"))
        .and_then(|v| v.parse::<u64>().ok());
    match meta_version {
        Some(v) if v <= MAX_BERRY_VERSION => {}
        Some(v) => {
            return Err(err(
                file,
                meta.map(|m| m.line + 1),
                format!(
                    "unknown yarn berry lockfile version {v}; this parser understands up to {MAX_BERRY_VERSION}"
                ),
                Some("a newer yarn wrote this file; update cutover"),
            ));
        }
        None => {
            return Err(err(
                file,
                meta.map(|m| m.line),
                "`__metadata.version` is missing or not a number; expected e.g. `  version: 8` under `__metadata:`",
                None,
            ));
        }
    }
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for b in blocks {
        if b.descriptors.first().map(String::as_str) == Some("__metadata") {
            continue;
        }
        let key = b.descriptors.join(", ");
        let Some(version) = b.fields.get("version").cloned() else {
            warnings.push(ParseWarning {
                line: Some(b.line),
                message: format!("entry \"{key}\" has no `version`; skipped"),
            });
            continue;
        };
        let resolution = b.fields.get("resolution").cloned().unwrap_or_default();
        let res_name = descriptor_name(&resolution).to_owned();
        let res_ref = descriptor_range(&resolution).to_owned();
        let workspace = res_ref.starts_with("workspace:");
        let mut properties = BTreeMap::new();
        let source = berry_source(&res_ref, &mut properties);
        let first = b.descriptors.first().cloned().unwrap_or_default();
        if descriptor_name(&first) != res_name && !res_name.is_empty() {
            properties.insert(
                "cutover:npm:alias".to_owned(),
                descriptor_name(&first).to_owned(),
            );
        }
        if let Some(cs) = b.fields.get("checksum") {
            // Berry's checksum hashes yarn's own zip of the package, not the registry tarball,
            // so it is kept as a property rather than claimed as the package's digest.
            properties.insert("cutover:yarn:checksum".to_owned(), cs.clone());
        }
        let name = if res_name.is_empty() {
            descriptor_name(&first).to_owned()
        } else {
            res_name
        };
        entries.push(Entry {
            descriptors: b.descriptors,
            name,
            version,
            source,
            hashes: Vec::new(),
            dependencies: b.sections.get("dependencies").cloned().unwrap_or_default(),
            optional_dependencies: b
                .sections
                .get("optionalDependencies")
                .cloned()
                .unwrap_or_default(),
            workspace,
            properties,
        });
    }
    Ok((entries, warnings))
}

fn berry_source(reference: &str, properties: &mut BTreeMap<String, String>) -> Source {
    if reference.starts_with("npm:") || reference.is_empty() {
        return Source::Registry;
    }
    if let Some(p) = reference.strip_prefix("patch:") {
        properties.insert("cutover:yarn:patch".to_owned(), p.to_owned());
        return Source::Registry;
    }
    for proto in ["workspace:", "link:", "portal:", "file:"] {
        if let Some(p) = reference.strip_prefix(proto) {
            return Source::Path { path: p.to_owned() };
        }
    }
    if reference.contains("://") || reference.starts_with("git@") || reference.contains(".git#") {
        let (url, frag) = match reference.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (reference, None),
        };
        let rev = frag.map(|f| {
            f.split('&')
                .find_map(|p| {
                    p.strip_prefix("commit=")
                        .or_else(|| p.strip_prefix("commit:"))
                })
                .unwrap_or(f)
                .to_owned()
        });
        let is_git = url.ends_with(".git")
            || url.starts_with("git")
            || frag.is_some_and(|f| f.contains("commit"));
        if is_git {
            return Source::Git {
                url: strip_userinfo(url.strip_prefix("git+").unwrap_or(url)),
                rev,
            };
        }
        return Source::Url {
            url: strip_userinfo(url),
        };
    }
    Source::Url {
        url: reference.to_owned(),
    }
}

fn build(
    file: &str,
    entries: &[Entry],
    warnings: Vec<ParseWarning>,
    declared: Option<&Declared>,
) -> Parsed {
    // descriptor -> entry index; berry records `name@npm:range` where the dependency says `range`.
    let mut by_desc: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        for d in &e.descriptors {
            by_desc.insert(d.clone(), i);
        }
    }
    let lookup = |name: &str, range: &str| -> Option<usize> {
        by_desc
            .get(&format!("{name}@{range}"))
            .or_else(|| by_desc.get(&format!("{name}@npm:{range}")))
            .copied()
    };
    let mut comps: Vec<Component> = Vec::new();
    let mut comp_of: Vec<Option<usize>> = Vec::with_capacity(entries.len());
    for e in entries {
        if e.workspace {
            comp_of.push(None);
            continue;
        }
        let (namespace, name) = split_scope(&e.name);
        comp_of.push(Some(comps.len()));
        let properties = e.properties.clone();
        comps.push(Component {
            ecosystem: Ecosystem::Npm,
            namespace,
            name,
            version: e.version.clone(),
            resolution: Resolution::Resolved,
            scope: Scope::Required,
            direct: false,
            source: e.source.clone(),
            hashes: e.hashes.clone(),
            license: None,
            manifest: file.to_owned(),
            depends_on: Vec::new(),
            properties,
        });
    }
    let mut optional_edges = BTreeSet::new();
    let mut roots: Vec<(String, Scope)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let mut deps = Vec::new();
        for (list, optional) in [(&e.dependencies, false), (&e.optional_dependencies, true)] {
            for (n, r) in list {
                if let Some(j) = lookup(n, r)
                    && let Some(cj) = comp_of[j]
                {
                    let k = comps[cj].key();
                    if e.workspace {
                        let scope = match declared {
                            Some(d) if d.dev.contains_key(n) && !d.prod.contains_key(n) => {
                                Scope::Excluded
                            }
                            _ if optional => Scope::Optional,
                            _ => Scope::Required,
                        };
                        roots.push((k, scope));
                    } else {
                        if optional && let Some(ci) = comp_of[i] {
                            optional_edges.insert((comps[ci].key(), k.clone()));
                        }
                        deps.push(k);
                    }
                }
            }
        }
        if let Some(ci) = comp_of[i] {
            comps[ci].depends_on = deps;
        }
    }
    if roots.is_empty()
        && let Some(d) = declared
    {
        for (map, scope) in [
            (&d.prod, Scope::Required),
            (&d.optional, Scope::Optional),
            (&d.dev, Scope::Excluded),
        ] {
            for (n, r) in map {
                if let Some(j) = lookup(n, r).or_else(|| {
                    entries
                        .iter()
                        .position(|e| e.descriptors.iter().any(|d| descriptor_name(d) == n))
                }) && let Some(cj) = comp_of[j]
                {
                    roots.push((comps[cj].key(), scope));
                }
            }
        }
    }
    let direct: BTreeSet<String> = roots.iter().map(|(k, _)| k.clone()).collect();
    propagate_scopes(&mut comps, &roots, &optional_edges);
    if direct.is_empty() {
        infer_direct(&mut comps);
    } else {
        mark_direct(&mut comps, &direct);
    }
    Parsed {
        components: merge_duplicates(comps),
        warnings,
    }
}
