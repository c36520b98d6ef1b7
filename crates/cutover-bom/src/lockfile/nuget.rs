//! NuGet packages.lock.json (versions 1 and 2): packages per target framework, `Direct`,
//! `Transitive` and `CentralTransitive` types (project references are the project, not
//! components), `contentHash` (base64 SHA-512) as hex, one component per name and version
//! across frameworks with the frameworks in `cutover:nuget:frameworks`.
//!
//! Entry point: [`parse_packages_lock_json`].

use crate::lockfile::other_support::{
    base64_to_hex, check_text, component, error, line_of_needle, push_hash,
};
use crate::model::{Component, Ecosystem, Hash, ParseError, ParseWarning, Parsed};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize)]
struct Lock {
    version: Option<i64>,
    dependencies: Option<BTreeMap<String, BTreeMap<String, Entry>>>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type", default)]
    kind: String,
    resolved: Option<String>,
    #[serde(rename = "contentHash")]
    content_hash: Option<String>,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
}

/// Parses a packages.lock.json.
pub fn parse_packages_lock_json(text: &str, path: &str) -> Result<Parsed, ParseError> {
    check_text(text, path, "a NuGet packages.lock.json")?;
    let lock: Lock = serde_json::from_str(text).map_err(|e| {
        error(
            path,
            Some(e.line()),
            format!("{e}; expected a packages.lock.json object with `version` and `dependencies`"),
            Some("the file may be truncated; `dotnet restore --force-evaluate` rewrites it"),
        )
    })?;
    match lock.version {
        Some(1 | 2) => {}
        Some(v) => {
            return Err(error(
                path,
                line_of_needle(text, "\"version\""),
                format!("unsupported packages.lock.json version {v}; expected 1 or 2"),
                None,
            ));
        }
        None => {
            return Err(error(
                path,
                None,
                "no `version` field; expected a packages.lock.json with `\"version\": 1` or 2",
                None,
            ));
        }
    }
    let Some(frameworks) = lock.dependencies else {
        return Err(error(
            path,
            None,
            "no `dependencies` object; expected target frameworks mapping to packages",
            None,
        ));
    };
    let mut parsed = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut framework_lists: Vec<Vec<String>> = Vec::new();
    let mut edges: Vec<(usize, String)> = Vec::new();
    for (framework, packages) in &frameworks {
        for (name, entry) in packages {
            if entry.kind == "Project" {
                continue;
            }
            let Some(version) = entry.resolved.as_deref().filter(|v| !v.is_empty()) else {
                parsed.warnings.push(ParseWarning {
                    line: None,
                    message: format!(
                        "{framework}/{name} has no `resolved` version; expected one for a `{}` package",
                        entry.kind
                    ),
                });
                continue;
            };
            let mut c: Component = component(
                Ecosystem::NuGet,
                None,
                name.clone(),
                version.to_owned(),
                path,
            );
            c.direct = entry.kind == "Direct";
            if let Some(h) = &entry.content_hash {
                match base64_to_hex(h).filter(|hex| hex.len() == 128) {
                    Some(hex) => c.hashes.push(Hash {
                        alg: "SHA-512".to_owned(),
                        hex,
                    }),
                    None => parsed.warnings.push(ParseWarning {
                        line: None,
                        message: format!(
                            "contentHash of {name} {version} ignored; expected base64 of a SHA-512"
                        ),
                    }),
                }
            }
            let key = c.key();
            let idx = match index.get(&key) {
                Some(&idx) => {
                    let existing = &mut parsed.components[idx];
                    existing.direct |= c.direct;
                    for h in c.hashes {
                        push_hash(&mut existing.hashes, h);
                    }
                    idx
                }
                None => {
                    parsed.components.push(c);
                    framework_lists.push(Vec::new());
                    index.insert(key, parsed.components.len() - 1);
                    parsed.components.len() - 1
                }
            };
            if !framework_lists[idx].contains(framework) {
                framework_lists[idx].push(framework.clone());
            }
            for dep in entry.dependencies.keys() {
                // The edge goes to the version resolved for the same framework.
                if let Some(target) = packages
                    .get(dep)
                    .filter(|e| e.kind != "Project")
                    .and_then(|e| e.resolved.as_deref())
                {
                    // Same text as `Component::key` of the target, without building one.
                    edges.push((idx, format!("{:?}:{dep}@{target}", Ecosystem::NuGet)));
                }
            }
        }
    }
    for (idx, key) in edges {
        let deps = &mut parsed.components[idx].depends_on;
        if !deps.contains(&key) {
            deps.push(key);
        }
    }
    for (c, fws) in parsed.components.iter_mut().zip(framework_lists) {
        c.properties
            .insert("cutover:nuget:frameworks".to_owned(), fws.join(","));
    }
    Ok(parsed)
}
