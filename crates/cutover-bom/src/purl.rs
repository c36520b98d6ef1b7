//! Package URLs (purl) as the purl specification defines them: per-type name normalisation,
//! namespaces, percent-encoding and qualifiers (`repository_url`, `vcs_url`).
//!
//! Written here rather than taken from the `packageurl` crate because the type-specific rules
//! (PyPI `_` to `-`, npm scope as namespace, Go's path split, which qualifiers a non-default
//! registry or git source needs) are the part that matters, and they are a few lines; parsing
//! back (for `bom diff` of BOM files) is included.

use crate::model::{Component, Ecosystem, Source};
use std::collections::BTreeMap;

/// The purl type of an ecosystem.
pub fn purl_type(e: Ecosystem) -> &'static str {
    match e {
        Ecosystem::Cargo => "cargo",
        Ecosystem::Npm => "npm",
        Ecosystem::PyPI => "pypi",
        Ecosystem::Go => "golang",
        Ecosystem::RubyGems => "gem",
        Ecosystem::Maven => "maven",
        Ecosystem::NuGet => "nuget",
        Ecosystem::Packagist => "composer",
    }
}

/// The ecosystem of a purl type.
pub fn ecosystem_of_type(t: &str) -> Option<Ecosystem> {
    Some(match t {
        "cargo" => Ecosystem::Cargo,
        "npm" => Ecosystem::Npm,
        "pypi" => Ecosystem::PyPI,
        "golang" => Ecosystem::Go,
        "gem" => Ecosystem::RubyGems,
        "maven" => Ecosystem::Maven,
        "nuget" => Ecosystem::NuGet,
        "composer" => Ecosystem::Packagist,
        _ => return None,
    })
}

/// Percent-encodes everything except ASCII alphanumerics, `.-_~` and `:` (which the spec says
/// must never be encoded).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` triplets; invalid ones are kept as they are.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (
                char::from(bytes[i + 1]).to_digit(16),
                char::from(bytes[i + 2]).to_digit(16),
            )
        {
            // Two hex digits are at most 0xFF.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed purl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    pub ty: String,
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub qualifiers: BTreeMap<String, String>,
    pub subpath: Option<String>,
}

impl Purl {
    /// Builds the purl of a component, applying the type's normalisation rules.
    pub fn of(c: &Component) -> Purl {
        let ty = purl_type(c.ecosystem).to_owned();
        let (mut namespace, mut name) = (c.namespace.clone(), c.name.clone());
        match c.ecosystem {
            Ecosystem::PyPI => {
                name = name.to_lowercase().replace('_', "-");
            }
            Ecosystem::Go => {
                // Go keeps the whole module path in `name`; the purl splits off the last segment.
                let full = match &namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                };
                match full.rsplit_once('/') {
                    Some((ns, n)) => {
                        namespace = Some(ns.to_owned());
                        name = n.to_owned();
                    }
                    None => {
                        namespace = None;
                        name = full;
                    }
                }
            }
            Ecosystem::Npm => {
                // The spec keeps npm names as they are (lower-case in the registry anyway).
            }
            Ecosystem::Packagist => {
                namespace = namespace.map(|n| n.to_lowercase());
                name = name.to_lowercase();
            }
            _ => {}
        }
        let mut qualifiers = BTreeMap::new();
        match &c.source {
            Source::AlternateRegistry { url } => {
                qualifiers.insert("repository_url".to_owned(), url.clone());
            }
            Source::Git { url, rev } => {
                let scheme_url = if url.starts_with("git+") || url.starts_with("git://") {
                    url.clone()
                } else {
                    format!("git+{url}")
                };
                let v = match rev {
                    Some(r) => format!("{scheme_url}@{r}"),
                    None => scheme_url,
                };
                qualifiers.insert("vcs_url".to_owned(), v);
            }
            Source::Url { url } => {
                qualifiers.insert("download_url".to_owned(), url.clone());
            }
            Source::Registry | Source::Path { .. } => {}
        }
        let version = (!c.version.is_empty()).then(|| c.version.clone());
        Purl {
            ty,
            namespace,
            name,
            version,
            qualifiers,
            subpath: None,
        }
    }

    /// Parses `pkg:type/ns/name@version?k=v#subpath`.
    pub fn parse(s: &str) -> Option<Purl> {
        let rest = s.strip_prefix("pkg:")?.trim_start_matches('/');
        let (rest, subpath) = match rest.split_once('#') {
            Some((r, sp)) => (r, Some(decode(sp.trim_matches('/')))),
            None => (rest, None),
        };
        let (rest, quals) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let mut qualifiers = BTreeMap::new();
        for kv in quals.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=')?;
            qualifiers.insert(k.to_ascii_lowercase(), decode(v));
        }
        let (ty, path) = rest.split_once('/')?;
        let path = path.trim_end_matches('/');
        let (path, version) = match path.rsplit_once('@') {
            Some((p, v)) if !p.is_empty() && !p.ends_with('/') => (p, Some(decode(v))),
            _ => (path, None),
        };
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, n)) => (
                Some(ns.split('/').map(decode).collect::<Vec<_>>().join("/")),
                decode(n),
            ),
            None => (None, decode(path)),
        };
        if name.is_empty() {
            return None;
        }
        Some(Purl {
            ty: ty.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers,
            subpath,
        })
    }
}

impl std::fmt::Display for Purl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        if let Some(ns) = &self.namespace {
            for seg in ns.split('/').filter(|s| !s.is_empty()) {
                write!(f, "{}/", encode(seg))?;
            }
        }
        write!(f, "{}", encode(&self.name))?;
        if let Some(v) = &self.version {
            write!(f, "@{}", encode(v))?;
        }
        let mut first = true;
        for (k, v) in &self.qualifiers {
            if v.is_empty() {
                continue;
            }
            write!(f, "{}{}={}", if first { "?" } else { "&" }, k, encode(v))?;
            first = false;
        }
        if let Some(sp) = &self.subpath {
            let segs: Vec<String> = sp
                .split('/')
                .filter(|s| !s.is_empty() && *s != "." && *s != "..")
                .map(encode)
                .collect();
            if !segs.is_empty() {
                write!(f, "#{}", segs.join("/"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resolution, Scope};

    fn comp(e: Ecosystem, ns: Option<&str>, name: &str, v: &str, source: Source) -> Component {
        Component {
            ecosystem: e,
            namespace: ns.map(str::to_owned),
            name: name.to_owned(),
            version: v.to_owned(),
            resolution: Resolution::Resolved,
            scope: Scope::Required,
            direct: true,
            source,
            hashes: vec![],
            license: None,
            manifest: "x".to_owned(),
            depends_on: vec![],
            properties: BTreeMap::new(),
        }
    }

    #[test]
    fn spec_examples() {
        let cases = [
            (
                comp(
                    Ecosystem::Npm,
                    Some("@babel"),
                    "core",
                    "7.0.0",
                    Source::Registry,
                ),
                "pkg:npm/%40babel/core@7.0.0",
            ),
            (
                comp(
                    Ecosystem::PyPI,
                    None,
                    "Django_Rest",
                    "1.0",
                    Source::Registry,
                ),
                "pkg:pypi/django-rest@1.0",
            ),
            (
                comp(
                    Ecosystem::Go,
                    None,
                    "github.com/gorilla/context",
                    "v1.1.1",
                    Source::Registry,
                ),
                "pkg:golang/github.com/gorilla/context@v1.1.1",
            ),
            (
                comp(
                    Ecosystem::Maven,
                    Some("org.apache.xmlgraphics"),
                    "batik-anim",
                    "1.9.1",
                    Source::Registry,
                ),
                "pkg:maven/org.apache.xmlgraphics/batik-anim@1.9.1",
            ),
            (
                comp(Ecosystem::Cargo, None, "rand", "0.7.2", Source::Registry),
                "pkg:cargo/rand@0.7.2",
            ),
            (
                comp(
                    Ecosystem::RubyGems,
                    None,
                    "ruby-advisory-db-check",
                    "0.12.4",
                    Source::Registry,
                ),
                "pkg:gem/ruby-advisory-db-check@0.12.4",
            ),
            (
                comp(
                    Ecosystem::NuGet,
                    None,
                    "EnterpriseLibrary.Common",
                    "6.0.1304",
                    Source::Registry,
                ),
                "pkg:nuget/EnterpriseLibrary.Common@6.0.1304",
            ),
            (
                comp(
                    Ecosystem::Packagist,
                    Some("Laravel"),
                    "Laravel",
                    "5.5.0",
                    Source::Registry,
                ),
                "pkg:composer/laravel/laravel@5.5.0",
            ),
            (
                comp(
                    Ecosystem::Cargo,
                    None,
                    "bytes",
                    "1.2.1",
                    Source::AlternateRegistry {
                        url: "https://github.com/rustsec/rustsec".into(),
                    },
                ),
                "pkg:cargo/bytes@1.2.1?repository_url=https:%2F%2Fgithub.com%2Frustsec%2Frustsec",
            ),
            (
                comp(
                    Ecosystem::Npm,
                    None,
                    "is-number",
                    "7.0.0",
                    Source::Git {
                        url: "https://github.com/a/b.git".into(),
                        rev: Some("abc".into()),
                    },
                ),
                "pkg:npm/is-number@7.0.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Fa%2Fb.git%40abc",
            ),
        ];
        for (c, want) in cases {
            let p = Purl::of(&c);
            assert_eq!(p.to_string(), want);
            let back = Purl::parse(want).expect("parses back");
            assert_eq!(back, p, "{want}");
        }
    }

    #[test]
    fn parse_decodes() {
        let p =
            Purl::parse("pkg:npm/%40angular/animation@12.3.1?b=2&a=x%20y#sub/path").expect("valid");
        assert_eq!(p.namespace.as_deref(), Some("@angular"));
        assert_eq!(p.qualifiers["a"], "x y");
        assert_eq!(p.subpath.as_deref(), Some("sub/path"));
        assert!(Purl::parse("npm/foo").is_none());
    }
}
