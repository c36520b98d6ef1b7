//! Pipfile.lock: `default` packages are required, `develop` ones excluded (a package in both is
//! required); `==` versions, sha256 hashes, the index each came from, git/path packages.

use crate::lockfile::other_support::{
    check_text, error, line_of_needle, pep503, prefixed_hash, push_hash, pypi_component,
};
use crate::model::{ParseError, ParseWarning, Parsed, Resolution, Scope, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Deserialize)]
struct Lock {
    #[serde(rename = "_meta")]
    meta: Meta,
    #[serde(default)]
    default: BTreeMap<String, Entry>,
    #[serde(default)]
    develop: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "pipfile-spec")]
    pipfile_spec: Option<i64>,
    #[serde(default)]
    sources: Vec<IndexSource>,
}

#[derive(Deserialize)]
struct IndexSource {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct Entry {
    version: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    markers: Option<String>,
    index: Option<String>,
    git: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    path: Option<String>,
    file: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
}

/// The last pipfile-spec this parser knows.
const PIPFILE_SPEC: i64 = 6;

/// Parses a Pipfile.lock alone. The lockfile is flat (no edges, no direct/transitive
/// distinction), so every component is reported as transitive with no `depends_on`.
pub fn parse_pipfile_lock(text: &str, path: &str) -> Result<Parsed, ParseError> {
    parse_pipfile_lock_with(text, path, None)
}

/// Parses a Pipfile.lock with the text of the Pipfile beside it, whose `[packages]` and
/// `[dev-packages]` are the direct dependencies.
pub fn parse_pipfile_lock_with(
    text: &str,
    path: &str,
    pipfile: Option<&str>,
) -> Result<Parsed, ParseError> {
    let mut parsed = parse_lock(text, path)?;
    if let Some(manifest) = pipfile {
        match toml::from_str::<toml::Table>(manifest) {
            Ok(doc) => {
                let direct: HashSet<String> = ["packages", "dev-packages"]
                    .iter()
                    .filter_map(|k| doc.get(*k).and_then(toml::Value::as_table))
                    .flat_map(|t| t.keys())
                    .map(|n| pep503(n))
                    .collect();
                for c in &mut parsed.components {
                    c.direct = direct.contains(&c.name);
                }
            }
            Err(e) => parsed.warnings.push(ParseWarning {
                line: None,
                message: format!(
                    "{} unreadable ({}); direct dependencies unknown",
                    super::sibling(path, "Pipfile"),
                    e.message()
                ),
            }),
        }
    }
    Ok(parsed)
}

fn parse_lock(text: &str, path: &str) -> Result<Parsed, ParseError> {
    check_text(text, path, "a Pipfile.lock JSON document")?;
    let lock: Lock = serde_json::from_str(text).map_err(|e| {
        error(
            path,
            Some(e.line()),
            format!(
                "{e}; expected a Pipfile.lock JSON object with `_meta`, `default` and `develop`"
            ),
            Some("the file may be truncated; regenerate it with `pipenv lock`"),
        )
    })?;
    if let Some(spec) = lock.meta.pipfile_spec
        && !(1..=PIPFILE_SPEC).contains(&spec)
    {
        return Err(error(
            path,
            line_of_needle(text, "\"pipfile-spec\""),
            format!("unsupported pipfile-spec {spec}; expected 1 to {PIPFILE_SPEC}"),
            None,
        ));
    }
    let indexes: HashMap<&str, &str> = lock
        .meta
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.url.as_str()))
        .collect();
    let mut parsed = Parsed::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (section, scope) in [
        (&lock.default, Scope::Required),
        (&lock.develop, Scope::Excluded),
    ] {
        for (name, entry) in section {
            // Pipenv writes `==1.2.3`; anything else (`*`, a range) is not a pin.
            let version = entry.version.as_deref().and_then(|v| {
                let v = v.trim();
                v.strip_prefix("===")
                    .or_else(|| v.strip_prefix("=="))
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && !v.contains('*'))
            });
            let mut c = pypi_component(name, version.unwrap_or(""), path);
            c.scope = scope;
            if let Some(git) = &entry.git {
                c.source = Source::Git {
                    url: git.clone(),
                    rev: entry.git_ref.clone(),
                };
                if version.is_none()
                    && let Some(r) = &entry.git_ref
                {
                    // A git checkout is pinned by its commit.
                    c.version.clone_from(r);
                }
            } else if let Some(p) = entry.path.as_ref().or(entry.file.as_ref()) {
                c.source = if p.contains("://") {
                    Source::Url { url: p.clone() }
                } else {
                    Source::Path { path: p.clone() }
                };
            } else if let Some(url) = entry.index.as_deref().and_then(|i| indexes.get(i))
                && url.trim_end_matches('/') != "https://pypi.org/simple"
            {
                c.source = Source::AlternateRegistry {
                    url: (*url).to_owned(),
                };
            }
            if c.version.is_empty() {
                c.resolution = Resolution::Unresolved;
                if let Some(spec) = entry.version.as_deref().filter(|v| !v.trim().is_empty()) {
                    c.properties.insert(
                        "cutover:python:specifier".to_owned(),
                        spec.trim().to_owned(),
                    );
                }
            }
            let mut bad = 0;
            for h in &entry.hashes {
                match prefixed_hash(h) {
                    Some(h) => push_hash(&mut c.hashes, h),
                    None => bad += 1,
                }
            }
            if bad > 0 {
                parsed.warnings.push(ParseWarning {
                    line: None,
                    message: format!("{bad} hash(es) of {name} are not `alg:hexdigest`; ignored"),
                });
            }
            if let Some(m) = &entry.markers {
                c.properties
                    .insert("cutover:python:markers".to_owned(), m.clone());
            }
            if !entry.extras.is_empty() {
                c.properties
                    .insert("cutover:python:extras".to_owned(), entry.extras.join(","));
            }
            let key = c.key();
            if seen.contains_key(&key) {
                // Listed in default and develop: the default (required) entry stands.
                continue;
            }
            seen.insert(key, parsed.components.len());
            parsed.components.push(c);
        }
    }
    Ok(parsed)
}
