//! poetry.lock (legacy without `lock-version`, 1.1, 2.0 and 2.1): categories or groups become the
//! scope, `optional` packages are optional, git/legacy/path/url sources are kept, hashes come from
//! `files` (2.x) or `[metadata.files]` (1.x).

use super::{distribution_hashes, from_toml};
use crate::lockfile::other_support::{
    check_text, error, line_of_needle, pep503, pypi_component, stronger,
};
use crate::model::{Component, ParseError, ParseWarning, Parsed, Scope, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<Package>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "lock-version")]
    lock_version: Option<String>,
    /// 1.x: distribution files per package name.
    #[serde(default)]
    files: BTreeMap<String, Vec<File>>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    markers: Option<toml::Value>,
    #[serde(default)]
    files: Vec<File>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    #[serde(default)]
    source: Option<PackageSource>,
    /// Extra name -> requirement strings (`name[extras] (>=1)`) it pulls in.
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    file: String,
    #[serde(default)]
    hash: String,
}

#[derive(Deserialize)]
struct PackageSource {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    resolved_reference: Option<String>,
}

/// Parses a poetry.lock alone. Direct dependencies are not recorded in the lockfile (they are in
/// pyproject.toml), so packages no other locked package depends on are taken as the direct ones.
pub fn parse_poetry_lock(text: &str, path: &str) -> Result<Parsed, ParseError> {
    parse_poetry_lock_with(text, path, None)
}

/// Parses a poetry.lock with the text of the pyproject.toml beside it. The manifest names the
/// direct dependencies and their groups and extras; scope then follows the lock's dependency
/// graph from them. Lockfiles that record groups or categories keep those as the scope; for the
/// 2.0 format, which records neither, packages the graph does not reach are optional (they are
/// only installed for an extra or a marker that was not requested).
pub fn parse_poetry_lock_with(
    text: &str,
    path: &str,
    pyproject: Option<&str>,
) -> Result<Parsed, ParseError> {
    check_text(text, path, "a poetry.lock TOML document")?;
    let lock: Lock = from_toml(text, path, "a poetry.lock with [[package]] tables")?;
    if let Some(v) = lock
        .metadata
        .as_ref()
        .and_then(|m| m.lock_version.as_deref())
    {
        let major = v.split('.').next().and_then(|m| m.parse::<u32>().ok());
        if !matches!(major, Some(1 | 2)) {
            return Err(error(
                path,
                line_of_needle(text, "lock-version"),
                format!("unsupported poetry.lock lock-version \"{v}\"; expected 1.x or 2.x"),
                Some("this version of cutover knows Poetry lock formats up to 2.x"),
            ));
        }
    }
    let mut warnings = Vec::new();
    let legacy_files = lock.metadata.map(|m| m.files).unwrap_or_default();
    let mut components: Vec<Component> = Vec::with_capacity(lock.package.len());
    let mut dep_names: Vec<Vec<String>> = Vec::with_capacity(lock.package.len());
    let mut graph: Vec<GraphNode> = Vec::with_capacity(lock.package.len());
    for pkg in lock.package {
        graph.push(GraphNode::of(&pkg));
        let mut c = pypi_component(&pkg.name, &pkg.version, path);
        c.scope = scope_of(&pkg);
        if let Some(groups) = &pkg.groups
            && !groups.is_empty()
        {
            c.properties
                .insert("cutover:python:groups".to_owned(), groups.join(","));
        } else if let Some(cat) = &pkg.category {
            c.properties
                .insert("cutover:python:category".to_owned(), cat.clone());
        }
        if let Some(toml::Value::String(m)) = &pkg.markers {
            c.properties
                .insert("cutover:python:markers".to_owned(), m.clone());
        }
        let files = if pkg.files.is_empty() {
            legacy_files
                .get(&pkg.name)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        } else {
            pkg.files.as_slice()
        };
        let bad = distribution_hashes(
            files.iter().map(|f| (f.file.as_str(), f.hash.as_str())),
            &mut c.hashes,
        );
        if bad > 0 {
            warnings.push(ParseWarning {
                line: None,
                message: format!(
                    "{bad} file hash(es) of {} {} are not `alg:hexdigest`; ignored",
                    pkg.name, pkg.version
                ),
            });
        }
        if let Some(src) = pkg.source {
            c.source = source_of(src);
        }
        dep_names.push(pkg.dependencies.keys().map(|n| pep503(n)).collect());
        components.push(c);
    }
    link(&mut components, &dep_names);
    if let Some(manifest) = pyproject {
        let manifest_path = super::sibling(path, "pyproject.toml");
        match pyproject_roots(manifest) {
            Ok(roots) => apply_roots(&mut components, &graph, &roots),
            Err(why) => warnings.push(ParseWarning {
                line: None,
                message: format!(
                    "{manifest_path} unreadable ({why}); direct dependencies guessed from the graph"
                ),
            }),
        }
    }
    Ok(Parsed {
        components,
        warnings,
    })
}

/// What the scope walk needs of one locked package.
struct GraphNode {
    /// Whether the lock itself says which group the package is in.
    has_group_info: bool,
    /// (normalised name, only for an extra, extras requested of it)
    deps: Vec<(String, bool, Vec<String>)>,
    /// Normalised extra name -> (normalised name, extras requested of it).
    extras: HashMap<String, Vec<(String, Vec<String>)>>,
}

impl GraphNode {
    fn of(pkg: &Package) -> Self {
        let deps = pkg
            .dependencies
            .iter()
            .map(|(name, spec)| {
                let tables: Vec<&toml::Table> = match spec {
                    toml::Value::Table(t) => vec![t],
                    toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
                    _ => Vec::new(),
                };
                let optional = !tables.is_empty()
                    && tables.iter().all(|t| {
                        t.get("optional")
                            .and_then(toml::Value::as_bool)
                            .unwrap_or(false)
                    });
                let extras = tables
                    .iter()
                    .filter_map(|t| t.get("extras").and_then(toml::Value::as_array))
                    .flatten()
                    .filter_map(toml::Value::as_str)
                    .map(pep503)
                    .collect();
                (pep503(name), optional, extras)
            })
            .collect();
        let extras = pkg
            .extras
            .iter()
            .map(|(extra, reqs)| {
                let names = reqs
                    .iter()
                    .filter_map(|r| name_and_extras(r))
                    .collect::<Vec<_>>();
                (pep503(extra), names)
            })
            .collect();
        GraphNode {
            has_group_info: pkg.groups.as_ref().is_some_and(|g| !g.is_empty())
                || pkg.category.is_some(),
            deps,
            extras,
        }
    }
}

/// Name and extras of a PEP 508 requirement string (`uvicorn[standard] (>=0.12)`, `a>=1; x`).
fn name_and_extras(req: &str) -> Option<(String, Vec<String>)> {
    let req = req.trim();
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    if end == 0 {
        return None;
    }
    let rest = req[end..].trim_start();
    let extras = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(inner, _)| {
            inner
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(pep503)
                .collect()
        })
        .unwrap_or_default();
    Some((pep503(&req[..end]), extras))
}

/// The project's own dependencies from pyproject.toml: (name, scope, extras requested).
fn pyproject_roots(text: &str) -> Result<Vec<(String, Scope, Vec<String>)>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut roots = Vec::new();
    let poetry = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(toml::Value::as_table);
    let mut poetry_deps = |table: Option<&toml::Value>, scope: Scope| {
        for (name, spec) in table.and_then(toml::Value::as_table).into_iter().flatten() {
            if name == "python" {
                continue;
            }
            let t = spec.as_table();
            let optional = t
                .and_then(|t| t.get("optional"))
                .and_then(toml::Value::as_bool)
                .unwrap_or(false);
            let extras = t
                .and_then(|t| t.get("extras"))
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(toml::Value::as_str)
                .map(pep503)
                .collect();
            let scope = if optional && scope == Scope::Required {
                Scope::Optional
            } else {
                scope
            };
            roots.push((pep503(name), scope, extras));
        }
    };
    if let Some(poetry) = poetry {
        poetry_deps(poetry.get("dependencies"), Scope::Required);
        poetry_deps(poetry.get("dev-dependencies"), Scope::Excluded);
        for (group, body) in poetry
            .get("group")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flatten()
        {
            let scope = if group == "main" {
                Scope::Required
            } else {
                Scope::Excluded
            };
            poetry_deps(body.get("dependencies"), scope);
        }
    }
    let mut pep508 = |list: Option<&toml::Value>, scope: Scope| {
        for req in list
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
        {
            if let Some((name, extras)) = name_and_extras(req) {
                roots.push((name, scope, extras));
            }
        }
    };
    if let Some(project) = doc.get("project") {
        pep508(project.get("dependencies"), Scope::Required);
        for list in project
            .get("optional-dependencies")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|t| t.values())
        {
            pep508(Some(list), Scope::Optional);
        }
    }
    for list in doc
        .get("dependency-groups")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
    {
        pep508(Some(list), Scope::Excluded);
    }
    Ok(roots)
}

/// Direct flags from the manifest, and scope from a walk of the lock's graph from it.
fn apply_roots(
    components: &mut [Component],
    graph: &[GraphNode],
    roots: &[(String, Scope, Vec<String>)],
) {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in components.iter().enumerate() {
        by_name.entry(c.name.as_str()).or_default().push(i);
    }
    let mut best: Vec<Option<Scope>> = vec![None; components.len()];
    let mut active: Vec<BTreeSet<String>> = vec![BTreeSet::new(); components.len()];
    let mut work: Vec<usize> = Vec::new();
    let visit = |name: &str,
                 scope: Scope,
                 extras: &[String],
                 best: &mut [Option<Scope>],
                 active: &mut [BTreeSet<String>],
                 work: &mut Vec<usize>| {
        for &i in by_name.get(name).into_iter().flatten() {
            let new = best[i].map_or(scope, |b| stronger(b, scope));
            let mut changed = best[i] != Some(new);
            best[i] = Some(new);
            for e in extras {
                changed |= active[i].insert(e.clone());
            }
            if changed {
                work.push(i);
            }
        }
    };
    for (name, scope, extras) in roots {
        visit(name, *scope, extras, &mut best, &mut active, &mut work);
    }
    while let Some(i) = work.pop() {
        let scope = best[i].unwrap_or(Scope::Required);
        let node = &graph[i];
        for (name, optional, extras) in &node.deps {
            if !optional {
                visit(name, scope, extras, &mut best, &mut active, &mut work);
            }
        }
        let requested: Vec<String> = active[i].iter().cloned().collect();
        for e in requested {
            for (name, extras) in node.extras.get(&e).into_iter().flatten() {
                visit(name, scope, extras, &mut best, &mut active, &mut work);
            }
        }
    }
    let root_names: BTreeSet<&str> = roots.iter().map(|(n, _, _)| n.as_str()).collect();
    for (i, c) in components.iter_mut().enumerate() {
        c.direct = root_names.contains(c.name.as_str());
        if !graph[i].has_group_info {
            // Not reachable from the project: only installed for an extra or a marker nobody asked for.
            c.scope = best[i].unwrap_or(Scope::Optional);
        }
        if !active[i].is_empty() {
            c.properties.insert(
                "cutover:python:extras".to_owned(),
                active[i].iter().cloned().collect::<Vec<_>>().join(","),
            );
        }
    }
}

fn scope_of(pkg: &Package) -> Scope {
    let main = match (&pkg.groups, &pkg.category) {
        (Some(groups), _) if !groups.is_empty() => groups.iter().any(|g| g == "main"),
        (_, Some(category)) => category != "dev",
        // lock-version 2.0 records neither: nothing says it is a development dependency.
        _ => true,
    };
    match (main, pkg.optional) {
        (false, _) => Scope::Excluded,
        (true, true) => Scope::Optional,
        (true, false) => Scope::Required,
    }
}

fn source_of(src: PackageSource) -> Source {
    match src.kind.as_str() {
        "git" => Source::Git {
            url: src.url,
            rev: src.resolved_reference.or(src.reference),
        },
        "legacy" => Source::AlternateRegistry { url: src.url },
        "directory" | "file" => Source::Path { path: src.url },
        _ => Source::Url { url: src.url },
    }
}

/// Fills `depends_on` from dependency names, and marks as direct what nothing else depends on.
pub(crate) fn link(components: &mut [Component], dep_names: &[Vec<String>]) {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in components.iter().enumerate() {
        by_name.entry(c.name.clone()).or_default().push(i);
    }
    let mut depended_on = vec![false; components.len()];
    let keys: Vec<String> = components.iter().map(Component::key).collect();
    for (i, names) in dep_names.iter().enumerate() {
        let mut deps = Vec::new();
        for n in names {
            for &j in by_name.get(n).into_iter().flatten() {
                if j != i {
                    depended_on[j] = true;
                    if !deps.contains(&keys[j]) {
                        deps.push(keys[j].clone());
                    }
                }
            }
        }
        components[i].depends_on = deps;
    }
    for (c, dep) in components.iter_mut().zip(depended_on) {
        c.direct = !dep;
    }
}
