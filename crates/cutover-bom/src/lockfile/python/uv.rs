//! uv.lock (version 1, any revision): the editable or virtual workspace root(s) are the project,
//! not components; scope follows the graph from them (dependencies required, optional-dependencies
//! optional, dev-dependencies groups excluded), direct means named by a root.

use super::{distribution_hashes, from_toml};
use crate::lockfile::other_support::{
    check_text, error, line_of_needle, pep503, pypi_component, stronger,
};
use crate::model::{Component, ParseError, ParseWarning, Parsed, Resolution, Scope, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Deserialize)]
struct Lock {
    version: Option<i64>,
    #[serde(default)]
    manifest: Option<Manifest>,
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<Dep>,
    #[serde(default, rename = "optional-dependencies")]
    optional_dependencies: BTreeMap<String, Vec<Dep>>,
    #[serde(default, rename = "dev-dependencies")]
    dev_dependencies: BTreeMap<String, Vec<Dep>>,
    #[serde(default)]
    sdist: Option<Dist>,
    #[serde(default)]
    wheels: Vec<Dist>,
}

#[derive(Deserialize)]
struct Dep {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    source: Option<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    extra: Vec<String>,
}

/// A distribution file; only its hash is used (whether it is the sdist or a wheel is known from
/// where it is listed, so its URL is not even read into a string).
#[derive(Deserialize)]
struct Dist {
    #[serde(default)]
    hash: Option<String>,
}

/// The uv.lock `version` this parser understands.
const UV_LOCK_VERSION: i64 = 1;

/// Parses a uv.lock.
pub fn parse_uv_lock(text: &str, path: &str) -> Result<Parsed, ParseError> {
    check_text(text, path, "a uv.lock TOML document")?;
    let lock: Lock = from_toml(
        text,
        path,
        "a uv.lock with `version` and [[package]] tables",
    )?;
    match lock.version {
        Some(UV_LOCK_VERSION) => {}
        Some(v) => {
            return Err(error(
                path,
                line_of_needle(text, "version"),
                format!("unsupported uv.lock version {v}; expected version = {UV_LOCK_VERSION}"),
                Some("this version of cutover reads uv.lock version 1 (any revision)"),
            ));
        }
        None => {
            return Err(error(
                path,
                Some(1),
                "no top-level `version`; expected `version = 1` at the start of a uv.lock",
                None,
            ));
        }
    }
    let members: BTreeSet<String> = lock
        .manifest
        .map(|m| m.members.iter().map(|n| pep503(n)).collect())
        .unwrap_or_default();
    let pkgs = lock.package;
    let names: Vec<String> = pkgs.iter().map(|p| pep503(&p.name)).collect();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        by_name.entry(n.as_str()).or_default().push(i);
    }
    let is_root: Vec<bool> = pkgs
        .iter()
        .zip(&names)
        .map(|(p, n)| {
            let local = p.source.contains_key("editable") || p.source.contains_key("virtual");
            let at_root = ["editable", "virtual"]
                .iter()
                .any(|k| matches!(p.source.get(*k), Some(toml::Value::String(s)) if s == "."));
            local && (at_root || members.contains(n))
        })
        .collect();
    let mut warnings = Vec::new();
    let find = |d: &Dep, warnings: &mut Vec<ParseWarning>| -> Option<usize> {
        let n = pep503(&d.name);
        let candidates = by_name.get(n.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let hit = candidates.iter().copied().find(|&i| {
            d.version
                .as_ref()
                .is_none_or(|v| pkgs[i].version.as_ref() == Some(v))
                && d.source.as_ref().is_none_or(|s| *s == pkgs[i].source)
        });
        if hit.is_none() {
            warnings.push(ParseWarning {
                line: None,
                message: format!(
                    "dependency `{}`{} not found among the locked packages; edge dropped",
                    d.name,
                    d.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default()
                ),
            });
        }
        hit
    };

    // Scope: the strongest way each package is reached from a root.
    let mut best: Vec<Option<Scope>> = vec![None; pkgs.len()];
    let mut extras: Vec<BTreeSet<String>> = vec![BTreeSet::new(); pkgs.len()];
    let mut direct = vec![false; pkgs.len()];
    let mut work: Vec<usize> = Vec::new();
    let visit = |i: usize,
                 scope: Scope,
                 ex: &[String],
                 best: &mut [Option<Scope>],
                 extras: &mut [BTreeSet<String>],
                 work: &mut Vec<usize>| {
        let new_scope = best[i].map_or(scope, |b| stronger(b, scope));
        let mut changed = best[i] != Some(new_scope);
        best[i] = Some(new_scope);
        for e in ex {
            changed |= extras[i].insert(pep503(e));
        }
        if changed {
            work.push(i);
        }
    };
    for p in pkgs
        .iter()
        .zip(&is_root)
        .filter(|(_, r)| **r)
        .map(|(p, _)| p)
    {
        let groups: [(Scope, Vec<&Dep>); 3] = [
            (Scope::Required, p.dependencies.iter().collect()),
            (
                Scope::Optional,
                p.optional_dependencies.values().flatten().collect(),
            ),
            (
                Scope::Excluded,
                p.dev_dependencies.values().flatten().collect(),
            ),
        ];
        for (scope, deps) in groups {
            for d in deps {
                if let Some(i) = find(d, &mut warnings)
                    && !is_root[i]
                {
                    direct[i] = true;
                    visit(i, scope, &d.extra, &mut best, &mut extras, &mut work);
                }
            }
        }
    }
    while let Some(i) = work.pop() {
        let scope = best[i].unwrap_or(Scope::Required);
        let p = &pkgs[i];
        let active: Vec<&Dep> = p
            .dependencies
            .iter()
            .chain(
                extras[i]
                    .iter()
                    .filter_map(|e| {
                        p.optional_dependencies
                            .iter()
                            .find(|(k, _)| pep503(k) == *e)
                            .map(|(_, v)| v)
                    })
                    .flatten(),
            )
            .collect();
        for d in active {
            if let Some(j) = find(d, &mut Vec::new())
                && !is_root[j]
            {
                visit(j, scope, &d.extra, &mut best, &mut extras, &mut work);
            }
        }
    }

    let mut components: Vec<Component> = Vec::with_capacity(pkgs.len());
    let mut index_of: Vec<Option<usize>> = vec![None; pkgs.len()];
    for (i, p) in pkgs.iter().enumerate() {
        if is_root[i] {
            continue;
        }
        let mut c = pypi_component(&p.name, p.version.as_deref().unwrap_or(""), path);
        if c.version.is_empty() {
            c.resolution = Resolution::Unresolved;
        }
        c.scope = best[i].unwrap_or(Scope::Required);
        c.direct = direct[i];
        c.source = source_of(&p.source);
        if let Source::Git { rev: Some(rev), .. } = &c.source
            && c.version.is_empty()
        {
            c.version.clone_from(rev);
            c.resolution = Resolution::Resolved;
        }
        if !extras[i].is_empty() {
            c.properties.insert(
                "cutover:python:extras".to_owned(),
                extras[i].iter().cloned().collect::<Vec<_>>().join(","),
            );
        }
        let bad = distribution_hashes(
            p.sdist
                .iter()
                .map(|d| ("sdist", d))
                .chain(p.wheels.iter().map(|d| ("wheel.whl", d)))
                .filter_map(|(kind, d)| d.hash.as_deref().map(|h| (kind, h))),
            &mut c.hashes,
        );
        if bad > 0 {
            warnings.push(ParseWarning {
                line: None,
                message: format!(
                    "{bad} hash(es) of {} are not `alg:hexdigest`; ignored",
                    p.name
                ),
            });
        }
        index_of[i] = Some(components.len());
        components.push(c);
    }
    let keys: Vec<Option<String>> = index_of
        .iter()
        .map(|ix| ix.map(|ix| components[ix].key()))
        .collect();
    for (i, p) in pkgs.iter().enumerate() {
        let Some(ci) = index_of[i] else { continue };
        let mut deps = Vec::new();
        for d in p
            .dependencies
            .iter()
            .chain(p.optional_dependencies.values().flatten())
        {
            if let Some(j) = find(d, &mut warnings)
                && let Some(k) = &keys[j]
                && !deps.contains(k)
            {
                deps.push(k.clone());
            }
        }
        components[ci].depends_on = deps;
    }
    Ok(Parsed {
        components,
        warnings,
    })
}

fn source_of(source: &BTreeMap<String, toml::Value>) -> Source {
    let get = |k: &str| match source.get(k) {
        Some(toml::Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if let Some(url) = get("registry") {
        if url.trim_end_matches('/') == "https://pypi.org/simple" {
            return Source::Registry;
        }
        return Source::AlternateRegistry {
            url: url.to_owned(),
        };
    }
    if let Some(git) = get("git") {
        let (base, rev) = match git.split_once('#') {
            Some((b, r)) => (b, Some(r.to_owned())),
            None => (git, None),
        };
        let base = base.split('?').next().unwrap_or(base);
        return Source::Git {
            url: base.to_owned(),
            rev,
        };
    }
    if let Some(url) = get("url") {
        return Source::Url {
            url: url.to_owned(),
        };
    }
    for k in ["path", "directory", "editable", "virtual"] {
        if let Some(p) = get(k) {
            return Source::Path { path: p.to_owned() };
        }
    }
    Source::Registry
}
