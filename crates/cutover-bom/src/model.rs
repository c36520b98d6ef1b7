//! The component model every lockfile parser produces and every writer consumes.

use serde::Serialize;
use std::collections::BTreeMap;

/// A package ecosystem, named as OSV and purl name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Ecosystem {
    /// crates.io (purl type `cargo`).
    Cargo,
    /// npm (purl type `npm`).
    Npm,
    /// PyPI (purl type `pypi`).
    PyPI,
    /// Go modules (purl type `golang`).
    Go,
    /// RubyGems (purl type `gem`).
    RubyGems,
    /// Maven (purl type `maven`), also for Gradle.
    Maven,
    /// NuGet (purl type `nuget`).
    NuGet,
    /// Packagist / Composer (purl type `composer`).
    Packagist,
}

/// How a component is needed at run time (CycloneDX `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Needed at run time.
    Required,
    /// Optional at run time (optional dependencies, extras).
    Optional,
    /// Not part of what ships: development and test dependencies.
    Excluded,
}

/// Where the package comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// The ecosystem's default registry.
    Registry,
    /// Another registry, by URL (becomes a `repository_url` purl qualifier).
    AlternateRegistry { url: String },
    /// A git repository at a revision.
    Git { url: String, rev: Option<String> },
    /// A local path (workspace member, path dependency).
    Path { path: String },
    /// Anything else the lockfile says (a tarball URL, ...).
    Url { url: String },
}

/// Whether the version comes from a resolution (lockfile) or only a declaration (pom.xml, unpinned
/// requirements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Pinned by a lockfile.
    Resolved,
    /// Declared in a manifest, not resolved (e.g. Maven pom.xml).
    Declared,
    /// Named without a usable version (e.g. `requests>=2` in requirements.txt).
    Unresolved,
}

/// A content hash from the lockfile (integrity / checksum field).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Hash {
    /// CycloneDX algorithm name: `SHA-1`, `SHA-256`, `SHA-384`, `SHA-512`, `MD5`, ...
    pub alg: String,
    /// Lower-case hex.
    pub hex: String,
}

/// One package in the bill of materials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub ecosystem: Ecosystem,
    /// Namespace where the ecosystem has one: npm scope (`@babel`), Maven groupId, Packagist vendor,
    /// Go module path prefix is NOT split (Go keeps the whole path in `name`).
    pub namespace: Option<String>,
    pub name: String,
    /// Empty only when `resolution` is `Unresolved`.
    pub version: String,
    pub resolution: Resolution,
    pub scope: Scope,
    /// A direct dependency of the project (as opposed to transitive).
    pub direct: bool,
    pub source: Source,
    pub hashes: Vec<Hash>,
    /// SPDX expression as found (normalised later), when the lockfile or a local cache carries it.
    pub license: Option<String>,
    /// The manifest/lockfile path (relative to the project root) this component came from.
    pub manifest: String,
    /// Identifiers (`Component::key`) of the components this one depends on.
    pub depends_on: Vec<String>,
    /// Format-specific extras (e.g. Python extras, markers, pnpm peer suffix), kept for output.
    pub properties: BTreeMap<String, String>,
}

impl Component {
    /// A key unique within one lockfile: ecosystem, namespace, name and version. Parsers use it for
    /// `depends_on`; the BOM derives its stable bom-ref from it and the manifest path.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{:?}:{}/{}@{}", self.ecosystem, ns, self.name, self.version),
            None => format!("{:?}:{}@{}", self.ecosystem, self.name, self.version),
        }
    }

    /// `key()` plus the source, for the rare lockfile that holds the same name and version from two
    /// sources (Cargo: crates.io and a git fork). `depends_on` may use either form.
    pub fn source_key(&self) -> String {
        format!("{}#{}", self.key(), self.source.id())
    }
}

impl Source {
    /// A short stable text for the source, used in keys and bom-refs.
    pub fn id(&self) -> String {
        match self {
            Source::Registry => "registry".to_owned(),
            Source::AlternateRegistry { url } => format!("registry+{url}"),
            Source::Git { url, rev } => match rev {
                Some(rev) => format!("git+{url}#{rev}"),
                None => format!("git+{url}"),
            },
            Source::Path { path } => format!("path+{path}"),
            Source::Url { url } => format!("url+{url}"),
        }
    }
}

/// The result of parsing one lockfile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Parsed {
    pub components: Vec<Component>,
    /// Things the parser could not use but did not fail on (e.g. unpinned requirement lines),
    /// each with its line number.
    pub warnings: Vec<ParseWarning>,
}

/// A non-fatal problem, with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseWarning {
    pub line: Option<usize>,
    pub message: String,
}

/// A fatal problem parsing one lockfile: which file, where, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ParseError {
    /// Path as given to the parser (relative to the project root).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What was wrong and what was expected.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}
