//! Version ordering per ecosystem, exactly as each ecosystem's own tooling orders versions.
//!
//! [`Scheme`] names an ordering; [`parse`] turns a string into a [`Version`] of that scheme and
//! [`compare`] orders two strings. Versions of different schemes are not comparable.

pub mod alpine;
pub mod debian;
pub mod maven;
pub mod nuget;
pub mod num;
pub mod numeric;
pub mod packagist;
pub mod pep440;
pub mod rpm;
pub mod rubygems;
pub mod semver;

use std::cmp::Ordering;
use std::fmt;

/// A version-ordering scheme: one per ecosystem (several ecosystems share SemVer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Scheme {
    /// SemVer 2.0.0, build metadata ignored: npm, crates.io, Hex.
    SemVer,
    /// Go modules: SemVer with `v` prefix, pseudo-versions, `+incompatible` ignored.
    Go,
    /// Dart's `pub_semver`: SemVer where build metadata sorts after none.
    Pub,
    /// PyPI: PEP 440 (`packaging`), legacy versions before all valid ones.
    PyPI,
    /// Maven `ComparableVersion`.
    Maven,
    /// RubyGems `Gem::Version`.
    RubyGems,
    /// NuGet `NuGetVersion`.
    NuGet,
    /// Packagist: PHP `version_compare` on Composer-normalised versions.
    Packagist,
    /// Debian and Ubuntu: dpkg.
    Debian,
    /// Alpine, Wolfi, Chainguard: apk.
    Alpine,
    /// RPM distributions (Red Hat, Rocky, AlmaLinux, SUSE, ...): `rpmvercmp`.
    Rpm,
    /// CRAN: R `package_version`.
    Cran,
    /// Hackage: Haskell `Data.Version`.
    Hackage,
}

impl Scheme {
    /// The ordering used for an OSV `package.ecosystem` value (`"PyPI"`, `"crates.io"`, ...).
    /// Ecosystem suffixes (`"Debian:12"`) are ignored; unknown ecosystems give `None`.
    pub fn for_osv_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "npm" | "crates.io" | "Hex" | "SwiftURL" | "Bitnami" => Scheme::SemVer,
            "Go" => Scheme::Go,
            "Pub" => Scheme::Pub,
            "PyPI" => Scheme::PyPI,
            "Maven" => Scheme::Maven,
            "RubyGems" => Scheme::RubyGems,
            "NuGet" => Scheme::NuGet,
            "Packagist" => Scheme::Packagist,
            "Debian" | "Ubuntu" => Scheme::Debian,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Alpine,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "SUSE" | "openSUSE" | "Mageia"
            | "openEuler" => Scheme::Rpm,
            "CRAN" => Scheme::Cran,
            "Hackage" | "GHC" => Scheme::Hackage,
            _ => return None,
        })
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::SemVer => "SemVer",
            Scheme::Go => "Go",
            Scheme::Pub => "Pub",
            Scheme::PyPI => "PyPI",
            Scheme::Maven => "Maven",
            Scheme::RubyGems => "RubyGems",
            Scheme::NuGet => "NuGet",
            Scheme::Packagist => "Packagist",
            Scheme::Debian => "Debian",
            Scheme::Alpine => "Alpine",
            Scheme::Rpm => "RPM",
            Scheme::Cran => "CRAN",
            Scheme::Hackage => "Hackage",
        }
    }

    /// Every scheme.
    pub const ALL: [Scheme; 13] = [
        Scheme::SemVer,
        Scheme::Go,
        Scheme::Pub,
        Scheme::PyPI,
        Scheme::Maven,
        Scheme::RubyGems,
        Scheme::NuGet,
        Scheme::Packagist,
        Scheme::Debian,
        Scheme::Alpine,
        Scheme::Rpm,
        Scheme::Cran,
        Scheme::Hackage,
    ];
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A version string that does not parse in its scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {scheme} version: {reason}")]
pub struct VersionError {
    /// The scheme's name.
    pub scheme: &'static str,
    /// The string as given.
    pub input: String,
    /// What was wrong and what was expected.
    pub reason: String,
}

impl VersionError {
    pub(crate) fn new(scheme: &'static str, input: &str, reason: impl Into<String>) -> Self {
        VersionError {
            scheme,
            input: input.to_string(),
            reason: reason.into(),
        }
    }
}

/// A parsed version of some scheme. Only versions of the same scheme compare
/// (`partial_cmp` gives `None` across schemes).
#[derive(Debug, Clone)]
pub enum Version {
    SemVer(semver::SemVer),
    Go(semver::SemVer),
    Pub(semver::SemVer),
    PyPI(pep440::Pep440),
    Maven(maven::MavenVersion),
    RubyGems(rubygems::GemVersion),
    NuGet(nuget::NuGetVersion),
    Packagist(packagist::PackagistVersion),
    Debian(debian::DebVersion),
    Alpine(alpine::ApkVersion),
    Rpm(rpm::RpmVersion),
    Cran(numeric::NumericVersion),
    Hackage(numeric::NumericVersion),
}

impl Version {
    /// The scheme this version belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            Version::SemVer(_) => Scheme::SemVer,
            Version::Go(_) => Scheme::Go,
            Version::Pub(_) => Scheme::Pub,
            Version::PyPI(_) => Scheme::PyPI,
            Version::Maven(_) => Scheme::Maven,
            Version::RubyGems(_) => Scheme::RubyGems,
            Version::NuGet(_) => Scheme::NuGet,
            Version::Packagist(_) => Scheme::Packagist,
            Version::Debian(_) => Scheme::Debian,
            Version::Alpine(_) => Scheme::Alpine,
            Version::Rpm(_) => Scheme::Rpm,
            Version::Cran(_) => Scheme::Cran,
            Version::Hackage(_) => Scheme::Hackage,
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        use Version as V;
        Some(match (self, other) {
            (V::SemVer(a), V::SemVer(b)) | (V::Go(a), V::Go(b)) | (V::Pub(a), V::Pub(b)) => {
                a.cmp(b)
            }
            (V::PyPI(a), V::PyPI(b)) => a.cmp(b),
            (V::Maven(a), V::Maven(b)) => a.cmp(b),
            (V::RubyGems(a), V::RubyGems(b)) => a.cmp(b),
            (V::NuGet(a), V::NuGet(b)) => a.cmp(b),
            (V::Packagist(a), V::Packagist(b)) => a.cmp(b),
            (V::Debian(a), V::Debian(b)) => a.cmp(b),
            (V::Alpine(a), V::Alpine(b)) => a.cmp(b),
            (V::Rpm(a), V::Rpm(b)) => a.cmp(b),
            (V::Cran(a), V::Cran(b)) | (V::Hackage(a), V::Hackage(b)) => a.cmp(b),
            _ => return None,
        })
    }
}

/// Parses `input` as a version of `scheme`.
pub fn parse(scheme: Scheme, input: &str) -> Result<Version, VersionError> {
    Ok(match scheme {
        Scheme::SemVer => Version::SemVer(semver::parse(input, semver::Flavor::IgnoreBuild)?),
        Scheme::Go => Version::Go(
            semver::parse(input, semver::Flavor::IgnoreBuild)
                .map_err(|e| VersionError { scheme: "Go", ..e })?,
        ),
        Scheme::Pub => Version::Pub(
            semver::parse(input, semver::Flavor::Pub)
                .map_err(|e| VersionError { scheme: "Pub", ..e })?,
        ),
        Scheme::PyPI => Version::PyPI(pep440::parse(input)?),
        Scheme::Maven => Version::Maven(maven::parse(input)?),
        Scheme::RubyGems => Version::RubyGems(rubygems::parse(input)?),
        Scheme::NuGet => Version::NuGet(nuget::parse(input)?),
        Scheme::Packagist => Version::Packagist(packagist::parse(input)?),
        Scheme::Debian => Version::Debian(debian::parse(input)?),
        Scheme::Alpine => Version::Alpine(alpine::parse(input)?),
        Scheme::Rpm => Version::Rpm(rpm::parse(input)?),
        Scheme::Cran => Version::Cran(numeric::parse("CRAN", input, &['.', '-'])?),
        Scheme::Hackage => Version::Hackage(numeric::parse("Hackage", input, &['.'])?),
    })
}

/// Orders two version strings by `scheme`'s rules.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    let a = parse(scheme, a)?;
    let b = parse(scheme, b)?;
    Ok(a.partial_cmp(&b).expect("both parsed with the same scheme"))
}
