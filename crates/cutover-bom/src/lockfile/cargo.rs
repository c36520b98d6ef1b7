//! `Cargo.lock` versions 1 to 4. Workspace members (read from the `Cargo.toml` beside the lock when
//! there is one) are the roots, not components; their `[dev-dependencies]` make a subtree excluded.

use super::common::{err, propagate_scopes};

use crate::model::{Component, Ecosystem, Hash, ParseWarning, Parsed, Resolution, Scope, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The highest `version = N` this parser understands.
const MAX_VERSION: i64 = 4;

#[derive(Deserialize)]
struct Lock {
    version: Option<toml::Value>,
    #[serde(default)]
    package: Vec<Package>,
    #[serde(default)]
    metadata: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

const CRATES_IO: [&str; 3] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
    "sparse+https://index.crates.io",
];

fn parse_source(s: Option<&str>, name: &str) -> Source {
    let Some(s) = s else {
        return Source::Path {
            path: name.to_owned(),
        };
    };
    if CRATES_IO.contains(&s) {
        return Source::Registry;
    }
    if let Some(rest) = s.strip_prefix("git+") {
        let (url_part, rev) = match rest.split_once('#') {
            Some((u, r)) => (u, Some(r.to_owned())),
            None => (rest, None),
        };
        let url = url_part.split('?').next().unwrap_or(url_part).to_owned();
        return Source::Git { url, rev };
    }
    if let Some(url) = s
        .strip_prefix("registry+")
        .or_else(|| s.strip_prefix("sparse+"))
    {
        return Source::AlternateRegistry {
            url: url.to_owned(),
        };
    }
    Source::Url { url: s.to_owned() }
}

/// Parses a Cargo.lock. `dir` is the directory holding it, for the workspace's `Cargo.toml`.
pub fn parse(file: &str, text: &str, dir: Option<&Path>) -> Result<Parsed, super::ParseError> {
    let lock: Lock = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| super::common::line_at(text, s.start));
        err(
            file,
            line,
            format!(
                "not a valid Cargo.lock: {}; expected TOML with [[package]] tables (name, version, source, checksum, dependencies)",
                e.message()
            ),
            Some("regenerate it with `cargo generate-lockfile`"),
        )
    })?;
    let version = match &lock.version {
        None => None,
        Some(toml::Value::Integer(v)) => Some(*v),
        Some(other) => {
            return Err(err(
                file,
                super::common::line_of_needle(text, "version ="),
                format!("lockfile `version` is {other}, expected an integer 1..={MAX_VERSION}"),
                None,
            ));
        }
    };
    if let Some(v) = version
        && !(1..=MAX_VERSION).contains(&v)
    {
        return Err(err(
            file,
            super::common::line_of_needle(text, "version"),
            format!(
                "unknown Cargo.lock version {v}; this parser understands versions 1 to {MAX_VERSION}"
            ),
            Some(
                "a newer Cargo wrote this file; update cutover or regenerate the lock with an older Cargo",
            ),
        ));
    }
    let mut warnings = Vec::new();

    // v1 keeps checksums in [metadata]: "checksum NAME VERSION (SOURCE)" = "hex".
    let mut v1_checksums: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (k, v) in &lock.metadata {
        if let (Some(rest), Some(sum)) = (k.strip_prefix("checksum "), v.as_str()) {
            let mut parts = rest.splitn(3, ' ');
            let (Some(n), Some(ver), Some(src)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let src = src.trim_start_matches('(').trim_end_matches(')');
            v1_checksums.insert(
                (n.to_owned(), ver.to_owned(), src.to_owned()),
                sum.to_owned(),
            );
        }
    }

    let members = dir.map(workspace_members).unwrap_or_default();
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in lock.package.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }
    // Source-less packages are the project's own crates (workspace members), unless the
    // workspace manifest is at hand and says a source-less package is not a member (a path
    // dependency from outside the workspace, which is then a component).
    let is_root = |p: &Package| -> bool {
        p.source.is_none() && (members.is_empty() || members.contains_key(&p.name))
    };
    let mut components: Vec<Component> = Vec::with_capacity(lock.package.len());
    let mut comp_index: Vec<Option<usize>> = vec![None; lock.package.len()];
    for (i, p) in lock.package.iter().enumerate() {
        if is_root(p) {
            continue;
        }
        let source = parse_source(p.source.as_deref(), &p.name);
        let mut hashes = Vec::new();
        let sum = p.checksum.clone().or_else(|| {
            p.source.as_ref().and_then(|s| {
                v1_checksums
                    .get(&(p.name.clone(), p.version.clone(), s.clone()))
                    .cloned()
            })
        });
        if let Some(sum) = sum {
            match super::common::hex_hash("SHA-256", &sum) {
                Some(h) => hashes.push(h),
                None => warnings.push(ParseWarning {
                    line: super::common::line_of_needle(text, &sum),
                    message: format!(
                        "checksum of {} {} is not a SHA-256 hex digest; ignored",
                        p.name, p.version
                    ),
                }),
            }
        }
        let mut properties = BTreeMap::new();
        if let Some(src) = &p.source {
            properties.insert("cutover:cargo:source".to_owned(), src.clone());
        }
        comp_index[i] = Some(components.len());
        components.push(Component {
            ecosystem: Ecosystem::Cargo,
            namespace: None,
            name: p.name.clone(),
            version: p.version.clone(),
            resolution: Resolution::Resolved,
            scope: Scope::Required,
            direct: false,
            source,
            hashes: hashes.into_iter().collect::<Vec<Hash>>(),
            license: None,
            manifest: file.to_owned(),
            depends_on: Vec::new(),
            properties,
        });
    }

    // Duplicated name@version (different sources) need the source key to be told apart.
    let mut key_count: BTreeMap<String, usize> = BTreeMap::new();
    for c in &components {
        *key_count.entry(c.key()).or_default() += 1;
    }
    let ref_of = |ci: usize| -> String {
        let c = &components[ci];
        if key_count.get(&c.key()).copied().unwrap_or(0) > 1 {
            c.source_key()
        } else {
            c.key()
        }
    };

    // Resolve every dependency string to a package index.
    let resolve = |dep: &str| -> Option<usize> {
        let mut parts = dep.splitn(3, ' ');
        let name = parts.next()?;
        let ver = parts.next();
        let src = parts
            .next()
            .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
        let candidates = by_name.get(name)?;
        candidates.iter().copied().find(|&i| {
            let p = &lock.package[i];
            ver.is_none_or(|v| p.version == v)
                && src.is_none_or(|s| {
                    p.source.as_deref() == Some(s)
                        || p.source
                            .as_deref()
                            .is_some_and(|ps| ps.split('#').next() == Some(s))
                })
        })
    };

    let mut roots: Vec<(String, Scope)> = Vec::new();
    let mut edges: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, p) in lock.package.iter().enumerate() {
        let mut deps = Vec::new();
        for d in &p.dependencies {
            match resolve(d) {
                Some(j) => {
                    if let Some(cj) = comp_index[j] {
                        deps.push((ref_of(cj), lock.package[j].name.clone()));
                    }
                }
                None => warnings.push(ParseWarning {
                    line: super::common::line_of_needle(text, &format!("\"{d}")),
                    message: format!(
                        "dependency \"{d}\" of {} {} names no [[package]] in the lock; edge dropped",
                        p.name, p.version
                    ),
                }),
            }
        }
        match comp_index[i] {
            Some(ci) => edges.push((ci, deps.into_iter().map(|(d, _)| d).collect::<Vec<_>>())),
            None => {
                // A workspace member: its dependencies are the direct ones.
                let dev_only = members.get(&p.name);
                for (d, dep_name) in deps {
                    let scope = match dev_only {
                        Some(m) if m.dev_only.contains(&dep_name) => Scope::Excluded,
                        _ => Scope::Required,
                    };
                    roots.push((d, scope));
                }
            }
        }
    }
    for (ci, deps) in edges {
        components[ci].depends_on = deps;
        components[ci].depends_on.sort();
        components[ci].depends_on.dedup();
    }
    let direct: BTreeSet<String> = roots.iter().map(|(k, _)| k.clone()).collect();
    // Start everything excluded when we know the roots, so only what the roots reach is required.
    if !roots.is_empty() {
        for c in &mut components {
            c.scope = Scope::Excluded;
        }
    }
    propagate_scopes(&mut components, &roots, &BTreeSet::new());
    super::common::mark_direct(&mut components, &direct);
    if roots.is_empty() {
        super::common::infer_direct(&mut components);
    }
    Ok(Parsed {
        // The same crate at the same commit reached through two git refs is one component.
        components: super::common::merge_duplicates(components),
        warnings,
    })
}

/// A workspace member's dependency names that appear only under `[dev-dependencies]`.
#[derive(Default)]
struct Member {
    dev_only: BTreeSet<String>,
}

/// Members of the workspace whose root manifest is `dir/Cargo.toml`, by package name.
fn workspace_members(dir: &Path) -> BTreeMap<String, Member> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return out;
    };
    let Ok(root) = text.parse::<toml::Table>() else {
        return out;
    };
    if let Some((name, m)) = member_of(&root) {
        out.insert(name, m);
    }
    let patterns: Vec<String> = root
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for pat in patterns {
        for member_dir in expand_member_glob(dir, &pat) {
            let Ok(t) = std::fs::read_to_string(member_dir.join("Cargo.toml")) else {
                continue;
            };
            if let Ok(table) = t.parse::<toml::Table>()
                && let Some((name, m)) = member_of(&table)
            {
                out.insert(name, m);
            }
        }
    }
    out
}

/// `crates/*` style patterns: a `*` is supported in the last path segment only, as Cargo's
/// workspaces almost always use.
fn expand_member_glob(dir: &Path, pat: &str) -> Vec<std::path::PathBuf> {
    let (parent, last) = match pat.rsplit_once('/') {
        Some((p, l)) => (dir.join(p), l),
        None => (dir.to_path_buf(), pat),
    };
    if !last.contains('*') {
        return vec![parent.join(last)];
    }
    let (prefix, suffix) = last.split_once('*').unwrap_or((last, ""));
    let mut out: Vec<_> = std::fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with(prefix) && n.ends_with(suffix) && e.path().is_dir()).then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

fn member_of(manifest: &toml::Table) -> Option<(String, Member)> {
    let name = manifest.get("package")?.get("name")?.as_str()?.to_owned();
    let dep_names = |table: Option<&toml::Value>| -> BTreeSet<String> {
        table
            .and_then(|t| t.as_table())
            .map(|t| {
                t.iter()
                    .map(|(k, v)| {
                        v.get("package")
                            .and_then(|p| p.as_str())
                            .unwrap_or(k)
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut normal = dep_names(manifest.get("dependencies"));
    normal.extend(dep_names(manifest.get("build-dependencies")));
    let mut dev = dep_names(manifest.get("dev-dependencies"));
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for t in targets.values() {
            normal.extend(dep_names(t.get("dependencies")));
            normal.extend(dep_names(t.get("build-dependencies")));
            dev.extend(dep_names(t.get("dev-dependencies")));
        }
    }
    let dev_only = dev.difference(&normal).cloned().collect();
    Some((name, Member { dev_only }))
}
