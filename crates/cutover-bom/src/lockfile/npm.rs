//! `package-lock.json` (lockfileVersion 1, 2 and 3) and `npm-shrinkwrap.json`. Version 2 and 3 are
//! read from `packages` (paths, with Node's module resolution for edges); version 1 from the nested
//! `dependencies` tree.

use super::common::{
    err, infer_direct, json_err, line_of_needle, mark_direct, merge_duplicates, sri_hashes,
};
use crate::model::{Component, Ecosystem, ParseWarning, Parsed, Resolution, Scope, Source};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Registries whose tarball URLs mean "the default npm registry".
const DEFAULT_REGISTRIES: [&str; 3] = [
    "https://registry.npmjs.org",
    "https://registry.yarnpkg.com",
    "http://registry.npmjs.org",
];

/// Splits `@scope/name` into (Some("@scope"), "name").
pub(crate) fn split_scope(full: &str) -> (Option<String>, String) {
    if full.starts_with('@')
        && let Some((ns, n)) = full.split_once('/')
    {
        return (Some(ns.to_owned()), n.to_owned());
    }
    (None, full.to_owned())
}

/// Drops `user:password@` from a URL so credentials never reach a BOM, and turns scp-like git
/// addresses (`git@host:org/repo`, `ssh://git@host:org/repo`) into real URLs.
pub(crate) fn strip_userinfo(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_owned(), r.to_owned()),
        None => match url.split_once(':') {
            // `git@github.com:org/repo`
            Some((host, path))
                if host.contains('@') && !host.contains('/') && !path.starts_with("//") =>
            {
                ("ssh".to_owned(), format!("{host}/{path}"))
            }
            _ => return url.to_owned(),
        },
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest.as_str(), ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // `host:org` (not a port): the scp form written with a scheme.
    let (host, path) = match hostport.split_once(':') {
        Some((h, p)) if !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_owned(), format!("/{p}{path}"))
        }
        _ => (hostport.to_owned(), path.to_owned()),
    };
    match userinfo {
        // `git@` is ssh's conventional user name, not a secret.
        Some("git") => format!("{scheme}://git@{host}{path}"),
        _ => format!("{scheme}://{host}{path}"),
    }
}

/// Where an npm package came from, judged by its `resolved` (or v1 `version`) URL.
pub(crate) fn npm_source(resolved: Option<&str>, full_name: &str) -> Source {
    let Some(r) = resolved else {
        return Source::Registry;
    };
    if r.starts_with("git+") || r.starts_with("git://") || r.starts_with("github:") {
        let r = r.strip_prefix("git+").unwrap_or(r);
        let (url, rev) = match r.rsplit_once('#') {
            Some((u, rev)) => (u, Some(rev.to_owned())),
            None => (r, None),
        };
        return Source::Git {
            url: strip_userinfo(url),
            rev,
        };
    }
    if let Some(p) = r.strip_prefix("file:") {
        return Source::Path { path: p.to_owned() };
    }
    if r.starts_with("http://") || r.starts_with("https://") {
        if let Some(idx) = r.find("/-/") {
            let mut base = &r[..idx];
            // Drop the package path: `/name`, `/@scope%2fname` or `/@scope/name`.
            let (ns, _) = split_scope(full_name);
            base = base.rsplit_once('/').map_or(base, |(b, _)| b);
            if let Some(ns) = ns
                && base.ends_with(&ns)
            {
                base = base.rsplit_once('/').map_or(base, |(b, _)| b);
            }
            let base = base.trim_end_matches('/');
            if DEFAULT_REGISTRIES.contains(&base) {
                return Source::Registry;
            }
            return Source::AlternateRegistry {
                url: strip_userinfo(base),
            };
        }
        return Source::Url {
            url: strip_userinfo(r),
        };
    }
    Source::Registry
}

/// Dependency names a `package.json` declares, by kind (for direct/scope when the lock lacks them).
#[derive(Default, Debug)]
pub(crate) struct Declared {
    /// name -> range
    pub(crate) prod: BTreeMap<String, String>,
    pub(crate) dev: BTreeMap<String, String>,
    pub(crate) optional: BTreeMap<String, String>,
}

pub(crate) fn declared_from(v: &Value) -> Declared {
    let names = |k: &str| -> BTreeMap<String, String> {
        v.get(k)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    Declared {
        prod: names("dependencies"),
        dev: names("devDependencies"),
        optional: names("optionalDependencies"),
    }
}

/// The `package.json` beside a lockfile, when there is one and it parses.
pub(crate) fn read_package_json(dir: Option<&Path>) -> Option<Declared> {
    let text = std::fs::read_to_string(dir?.join("package.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(declared_from(&v))
}

fn license_of(entry: &Map<String, Value>) -> Option<String> {
    match entry.get("license") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("type").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Parses a package-lock.json or npm-shrinkwrap.json.
pub fn parse(file: &str, text: &str, dir: Option<&Path>) -> Result<Parsed, super::ParseError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        json_err(
            file,
            &e,
            "a package-lock.json object with `lockfileVersion`",
        )
    })?;
    let Some(obj) = root.as_object() else {
        return Err(err(
            file,
            Some(1),
            "the top level is not a JSON object; expected a package-lock.json object with `lockfileVersion`",
            None,
        ));
    };
    let version = match obj.get("lockfileVersion") {
        Some(Value::Number(n)) => n.as_u64(),
        None => None,
        Some(other) => {
            return Err(err(
                file,
                line_of_needle(text, "\"lockfileVersion\""),
                format!("`lockfileVersion` is {other}; expected the number 1, 2 or 3"),
                None,
            ));
        }
    };
    match version {
        Some(1..=3) => {}
        None if obj.contains_key("dependencies") || obj.contains_key("packages") => {}
        None => {
            return Err(err(
                file,
                Some(1),
                "no `lockfileVersion` and no `packages` or `dependencies`; expected a package-lock.json",
                None,
            ));
        }
        Some(v) => {
            return Err(err(
                file,
                line_of_needle(text, "\"lockfileVersion\""),
                format!("unknown lockfileVersion {v}; this parser understands 1, 2 and 3"),
                Some("a newer npm wrote this file; update cutover"),
            ));
        }
    }
    match obj.get("packages") {
        Some(Value::Object(packages)) => Ok(parse_packages(file, text, packages)),
        Some(_) => Err(err(
            file,
            line_of_needle(text, "\"packages\""),
            "`packages` is not an object; expected a map from install path to package entry",
            None,
        )),
        None => parse_v1(file, text, obj, dir),
    }
}

/// Parent path of an install path: `a/node_modules/b` -> `a`, `node_modules/b` -> ``.
fn parent_path(path: &str) -> &str {
    match path.rfind("node_modules/") {
        Some(0) => "",
        Some(i) => path[..i].trim_end_matches('/'),
        None => "",
    }
}

/// Node's resolution: `from/node_modules/name`, then each ancestor's, up to the root.
fn resolve_path<'a>(packages: &'a Map<String, Value>, from: &str, name: &str) -> Option<&'a str> {
    let mut cur = from.to_owned();
    loop {
        let candidate = if cur.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{cur}/node_modules/{name}")
        };
        if let Some((k, _)) = packages.get_key_value(&candidate) {
            return Some(k.as_str());
        }
        if cur.is_empty() {
            return None;
        }
        cur = if cur.contains("node_modules/") {
            parent_path(&cur).to_owned()
        } else {
            // A workspace folder: its parent is the root.
            String::new()
        };
    }
}

fn parse_packages(file: &str, text: &str, packages: &Map<String, Value>) -> Parsed {
    let mut warnings = Vec::new();
    let mut comps: Vec<Component> = Vec::new();
    let mut key_of_path: BTreeMap<&str, String> = BTreeMap::new();
    let mut roots: Vec<&str> = Vec::new();
    for (path, entry) in packages {
        let Some(e) = entry.as_object() else {
            warnings.push(ParseWarning {
                line: line_of_needle(text, &format!("\"{path}\"")),
                message: format!("entry \"{path}\" is not an object; skipped"),
            });
            continue;
        };
        if path.is_empty() || !path.contains("node_modules/") {
            // The project itself or a workspace member.
            roots.push(path.as_str());
            continue;
        }
        if e.get("link").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let installed_as = path.rsplit("node_modules/").next().unwrap_or(path);
        let full = e
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(installed_as);
        let Some(version) = e.get("version").and_then(Value::as_str) else {
            warnings.push(ParseWarning {
                line: line_of_needle(text, &format!("\"{path}\"")),
                message: format!("package \"{path}\" has no `version`; skipped"),
            });
            continue;
        };
        let (namespace, name) = split_scope(full);
        let resolved = e.get("resolved").and_then(Value::as_str);
        let flag = |k: &str| e.get(k).and_then(Value::as_bool) == Some(true);
        let scope = if flag("dev") {
            Scope::Excluded
        } else if flag("optional") || flag("devOptional") {
            Scope::Optional
        } else {
            Scope::Required
        };
        let mut properties = BTreeMap::new();
        properties.insert("cutover:npm:path".to_owned(), path.clone());
        if installed_as != full {
            properties.insert("cutover:npm:alias".to_owned(), installed_as.to_owned());
        }
        if flag("inBundle") {
            properties.insert("cutover:npm:bundled".to_owned(), "true".to_owned());
        }
        let c = Component {
            ecosystem: Ecosystem::Npm,
            namespace,
            name,
            version: version.to_owned(),
            resolution: Resolution::Resolved,
            scope,
            direct: false,
            source: npm_source(resolved, full),
            hashes: e
                .get("integrity")
                .and_then(Value::as_str)
                .map(sri_hashes)
                .unwrap_or_default(),
            license: license_of(e),
            manifest: file.to_owned(),
            depends_on: Vec::new(),
            properties,
        };
        key_of_path.insert(path.as_str(), c.key());
        comps.push(c);
    }
    let dep_names = |e: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for k in ["dependencies", "optionalDependencies", "peerDependencies"] {
            if let Some(m) = e.get(k).and_then(Value::as_object) {
                out.extend(m.keys().cloned());
            }
        }
        out
    };
    let mut direct = BTreeSet::new();
    for r in &roots {
        let mut names = dep_names(&packages[*r]);
        if let Some(m) = packages[*r]
            .get("devDependencies")
            .and_then(Value::as_object)
        {
            names.extend(m.keys().cloned());
        }
        for n in names {
            if let Some(p) = resolve_path(packages, r, &n)
                && let Some(k) = key_of_path.get(p)
            {
                direct.insert(k.clone());
            }
        }
    }
    for c in &mut comps {
        let Some(path) = c.properties.get("cutover:npm:path").cloned() else {
            continue;
        };
        let mut deps = Vec::new();
        for n in dep_names(&packages[&path]) {
            if let Some(p) = resolve_path(packages, &path, &n)
                && let Some(k) = key_of_path.get(p)
            {
                deps.push(k.clone());
            }
        }
        c.depends_on = deps;
    }
    mark_direct(&mut comps, &direct);
    Parsed {
        components: merge_duplicates(comps),
        warnings,
    }
}

/// Version 1: a nested tree of `dependencies`; `requires` names are resolved like Node does,
/// from the requiring entry's own `dependencies` up through its ancestors.
fn parse_v1(
    file: &str,
    text: &str,
    obj: &Map<String, Value>,
    dir: Option<&Path>,
) -> Result<Parsed, super::ParseError> {
    let Some(tree) = obj.get("dependencies") else {
        return Ok(Parsed::default());
    };
    let Some(tree) = tree.as_object() else {
        return Err(err(
            file,
            line_of_needle(text, "\"dependencies\""),
            "`dependencies` is not an object; expected a map from package name to entry",
            None,
        ));
    };
    let mut comps = Vec::new();
    let mut warnings = Vec::new();
    let mut stack: Vec<&Map<String, Value>> = vec![tree];
    walk_v1(file, text, tree, "", &mut stack, &mut comps, &mut warnings);
    let declared = read_package_json(dir);
    match declared {
        Some(d) => {
            let top: BTreeSet<String> = comps
                .iter()
                .filter(|c| {
                    c.properties.get("cutover:npm:path").is_some_and(|p| {
                        let n = p.trim_start_matches("node_modules/");
                        !n.contains("node_modules/")
                            && (d.prod.contains_key(n)
                                || d.dev.contains_key(n)
                                || d.optional.contains_key(n))
                    })
                })
                .map(Component::key)
                .collect();
            mark_direct(&mut comps, &top);
        }
        None => infer_direct(&mut comps),
    }
    Ok(Parsed {
        components: merge_duplicates(comps),
        warnings,
    })
}

fn walk_v1<'a>(
    file: &str,
    text: &str,
    level: &'a Map<String, Value>,
    prefix: &str,
    stack: &mut Vec<&'a Map<String, Value>>,
    comps: &mut Vec<Component>,
    warnings: &mut Vec<ParseWarning>,
) {
    // Bound the nesting so hostile input cannot overflow the stack.
    if stack.len() > 200 {
        warnings.push(ParseWarning {
            line: None,
            message: "dependency tree nested more than 200 levels; deeper entries skipped"
                .to_owned(),
        });
        return;
    }
    for (key, entry) in level {
        // Some generators write install paths as keys; a package name never contains them.
        let installed_as = &key.rsplit("node_modules/").next().unwrap_or(key).to_owned();
        let Some(e) = entry.as_object() else {
            warnings.push(ParseWarning {
                line: line_of_needle(text, &format!("\"{installed_as}\"")),
                message: format!("dependency \"{installed_as}\" is not an object; skipped"),
            });
            continue;
        };
        let Some(raw_version) = e.get("version").and_then(Value::as_str) else {
            warnings.push(ParseWarning {
                line: line_of_needle(text, &format!("\"{installed_as}\"")),
                message: format!("dependency \"{installed_as}\" has no `version`; skipped"),
            });
            continue;
        };
        if raw_version.starts_with("file:") {
            // A workspace member or local folder: part of the project.
            if let Some(children) = e.get("dependencies").and_then(Value::as_object) {
                stack.push(children);
                walk_v1(file, text, children, prefix, stack, comps, warnings);
                stack.pop();
            }
            continue;
        }
        let (full, version, source) = if let Some(alias) = raw_version.strip_prefix("npm:") {
            // `npm:@babel/code-frame@7.0.0`
            let at = alias[1..].find('@').map(|i| i + 1);
            match at {
                Some(i) => (
                    alias[..i].to_owned(),
                    alias[i + 1..].to_owned(),
                    npm_source(e.get("resolved").and_then(Value::as_str), &alias[..i]),
                ),
                None => (installed_as.clone(), alias.to_owned(), Source::Registry),
            }
        } else if raw_version.contains("://")
            || raw_version.starts_with("github:")
            || raw_version.starts_with("git")
        {
            let src = npm_source(Some(raw_version), installed_as);
            let rev = match &src {
                Source::Git { rev: Some(r), .. } => r.clone(),
                _ => raw_version.to_owned(),
            };
            (installed_as.clone(), rev, src)
        } else {
            (
                installed_as.clone(),
                raw_version.to_owned(),
                npm_source(e.get("resolved").and_then(Value::as_str), installed_as),
            )
        };
        let flag = |k: &str| e.get(k).and_then(Value::as_bool) == Some(true);
        let scope = if flag("dev") {
            Scope::Excluded
        } else if flag("optional") {
            Scope::Optional
        } else {
            Scope::Required
        };
        let (namespace, name) = split_scope(&full);
        // Resolve `requires` through this entry's children, then the ancestors' levels.
        let children = e.get("dependencies").and_then(Value::as_object);
        let mut depends_on = Vec::new();
        if let Some(req) = e.get("requires").and_then(Value::as_object) {
            for dep in req.keys() {
                let found = children
                    .and_then(|c| c.get(dep))
                    .or_else(|| stack.iter().rev().find_map(|lvl| lvl.get(dep)));
                if let Some(key) = found.and_then(|f| v1_key(dep, f)) {
                    depends_on.push(key);
                }
            }
        }
        let my_path = if prefix.is_empty() {
            format!("node_modules/{installed_as}")
        } else {
            format!("{prefix}/node_modules/{installed_as}")
        };
        let mut properties = BTreeMap::new();
        properties.insert("cutover:npm:path".to_owned(), my_path.clone());
        if *installed_as != full {
            properties.insert("cutover:npm:alias".to_owned(), installed_as.clone());
        }
        comps.push(Component {
            ecosystem: Ecosystem::Npm,
            namespace,
            name,
            version,
            resolution: Resolution::Resolved,
            scope,
            direct: false,
            source,
            hashes: e
                .get("integrity")
                .and_then(Value::as_str)
                .map(sri_hashes)
                .unwrap_or_default(),
            license: license_of(e),
            manifest: file.to_owned(),
            depends_on,
            properties,
        });
        if let Some(children) = children {
            stack.push(children);
            walk_v1(file, text, children, &my_path, stack, comps, warnings);
            stack.pop();
        }
    }
}

/// The key a v1 entry named `installed_as` will get, for edges.
fn v1_key(installed_as: &str, entry: &Value) -> Option<String> {
    let raw = entry.get("version")?.as_str()?;
    if raw.starts_with("file:") {
        return None;
    }
    let (full, version) = if let Some(alias) = raw.strip_prefix("npm:") {
        let i = alias.get(1..)?.find('@')? + 1;
        (alias[..i].to_owned(), alias[i + 1..].to_owned())
    } else if raw.contains("://") || raw.starts_with("github:") || raw.starts_with("git") {
        let rev = match npm_source(Some(raw), installed_as) {
            Source::Git { rev: Some(r), .. } => r,
            _ => raw.to_owned(),
        };
        (installed_as.to_owned(), rev)
    } else {
        (installed_as.to_owned(), raw.to_owned())
    };
    let (namespace, name) = split_scope(&full);
    Some(
        Component {
            ecosystem: Ecosystem::Npm,
            namespace,
            name,
            version,
            resolution: Resolution::Resolved,
            scope: Scope::Required,
            direct: false,
            source: Source::Registry,
            hashes: Vec::new(),
            license: None,
            manifest: String::new(),
            depends_on: Vec::new(),
            properties: BTreeMap::new(),
        }
        .key(),
    )
}
