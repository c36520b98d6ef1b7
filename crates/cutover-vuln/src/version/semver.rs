//! Semantic Versioning 2.0.0 as npm (node-semver), crates.io, Go modules, Hex and Pub order it.
//!
//! One parser serves all of them; they differ only in what they do with build metadata: SemVer
//! proper (npm, crates.io, Hex) and Go (`+incompatible`) ignore it, Pub (`pub_semver`) sorts a
//! version with build metadata after the same version without, comparing the build identifiers
//! like pre-release ones.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

/// One dot-separated pre-release or build identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ident {
    /// Digits only: compared numerically.
    Numeric(Num),
    /// Anything else: compared as ASCII text.
    Alpha(Box<str>),
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ident::Numeric(a), Ident::Numeric(b)) => a.cmp(b),
            (Ident::Numeric(_), Ident::Alpha(_)) => Ordering::Less,
            (Ident::Alpha(_), Ident::Numeric(_)) => Ordering::Greater,
            (Ident::Alpha(a), Ident::Alpha(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A parsed semantic version.
#[derive(Debug, Clone)]
pub struct SemVer {
    /// major, minor, patch (missing ones are 0: `1.2` is `1.2.0`, as Go's shorthand allows).
    pub core: [Num; 3],
    /// Pre-release identifiers; empty for a release.
    pub pre: Vec<Ident>,
    /// Build identifiers (numeric components past the third are kept here too, as osv does).
    pub build: Vec<Ident>,
    /// Whether build metadata takes part in ordering (Pub).
    compare_build: bool,
}

/// Which flavour of build-metadata handling to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Build metadata ignored (SemVer 2.0.0 §10; npm, crates.io, Hex, Go).
    IgnoreBuild,
    /// Build metadata sorts after none and is compared (Dart's `pub_semver`).
    Pub,
}

fn err(input: &str, reason: impl Into<String>) -> VersionError {
    VersionError::new("SemVer", input, reason)
}

fn parse_idents(input: &str, part: &str, what: &str) -> Result<Vec<Ident>, VersionError> {
    part.split('.')
        .map(|id| {
            if id.is_empty() {
                return Err(err(input, format!("empty {what} identifier")));
            }
            if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(err(
                    input,
                    format!("{what} identifier `{id}` may hold only ASCII letters, digits and `-`"),
                ));
            }
            Ok(match Num::parse(id) {
                Some(n) => Ident::Numeric(n),
                None => Ident::Alpha(id.into()),
            })
        })
        .collect()
}

/// Parses `v?MAJOR[.MINOR[.PATCH[.MORE...]]][-PRE][+BUILD]`.
pub fn parse(input: &str, flavor: Flavor) -> Result<SemVer, VersionError> {
    let s = input.trim();
    let s = s
        .strip_prefix('v')
        .or_else(|| s.strip_prefix('V'))
        .unwrap_or(s);
    let (rest, build_str) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    // The pre-release starts at the first `-`; the core before it is digits and dots only.
    let (core_str, pre_str) = match rest.find('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if core_str.is_empty() {
        return Err(err(input, "expected a version number like 1.2.3"));
    }
    let mut nums = Vec::new();
    for part in core_str.split('.') {
        match Num::parse(part) {
            Some(n) => nums.push(n),
            None => {
                return Err(err(
                    input,
                    format!("`{part}` is not a number (expected MAJOR.MINOR.PATCH)"),
                ));
            }
        }
    }
    let mut build = match build_str {
        Some(b) => parse_idents(input, b, "build")?,
        None => Vec::new(),
    };
    if nums.len() > 3 {
        let extra: Vec<Ident> = nums.drain(3..).map(Ident::Numeric).collect();
        build.splice(0..0, extra);
    }
    let mut it = nums.into_iter();
    let core = [
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    ];
    let pre = match pre_str {
        Some(p) => parse_idents(input, p, "pre-release")?,
        None => Vec::new(),
    };
    Ok(SemVer {
        core,
        pre,
        build,
        compare_build: flavor == Flavor::Pub,
    })
}

fn cmp_lists(a: &[Ident], b: &[Ident]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => cmp_lists(&self.pre, &other.pre),
            })
            .then_with(|| {
                if self.compare_build || other.compare_build {
                    cmp_lists(&self.build, &other.build)
                } else {
                    Ordering::Equal
                }
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SemVer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SemVer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in [
            "",
            "v",
            "a.b.c",
            "1.2.x",
            "1.0.0-",
            "1.0.0-a..b",
            "1.0.0+",
            "1.0.0-a_b",
        ] {
            assert!(parse(bad, Flavor::IgnoreBuild).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn go_pseudo_versions_and_incompatible() {
        let p = |s| parse(s, Flavor::IgnoreBuild).unwrap();
        assert!(p("v0.0.0-20191109021931-daa7c04131f5") < p("v0.0.0-20200101000000-aaaaaaaaaaaa"));
        assert!(p("v1.2.3") < p("v1.2.4-0.20191109021931-daa7c04131f5"));
        assert!(p("v1.2.4-0.20191109021931-daa7c04131f5") < p("v1.2.4"));
        assert_eq!(p("v2.0.0+incompatible"), p("2.0.0"));
        assert_eq!(p("v1.2"), p("1.2.0"));
    }
}
