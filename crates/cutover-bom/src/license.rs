//! Licenses: normalising what packages declare into SPDX expressions (with the `spdx` crate), and
//! finding licenses offline in local package caches when the lockfile does not carry them.

use crate::model::{Component, Ecosystem};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CycloneDX's `acknowledgement`: the package said so, or we worked it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acknowledgement {
    /// Exactly as the package's metadata states it (a valid SPDX expression).
    Declared,
    /// Derived by cutover: an imprecise name mapped to SPDX, or a trove classifier.
    Concluded,
}

/// A component's license as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseInfo {
    /// What the metadata said.
    pub raw: String,
    /// The SPDX expression, when the raw text is or could be made one.
    pub expression: Option<String>,
    pub acknowledgement: Acknowledgement,
    /// Where it was found: `lockfile`, `cargo-registry`, `vendor`, `node_modules`, `dist-info`.
    pub origin: String,
}

/// Full names seen in the wild that the `spdx` crate's imprecise-name table does not cover.
const EXTRA_NAMES: &[(&str, &str)] = &[
    ("apache 2.0", "Apache-2.0"),
    ("apache 2", "Apache-2.0"),
    ("apache-2", "Apache-2.0"),
    ("apache license 2.0", "Apache-2.0"),
    ("apache license, version 2.0", "Apache-2.0"),
    ("apache software license", "Apache-2.0"),
    ("the apache software license, version 2.0", "Apache-2.0"),
    ("mit license", "MIT"),
    ("the mit license", "MIT"),
    ("bsd license", "BSD-3-Clause"),
    ("new bsd license", "BSD-3-Clause"),
    ("bsd-3", "BSD-3-Clause"),
    ("bsd 3-clause", "BSD-3-Clause"),
    ("simplified bsd", "BSD-2-Clause"),
    ("isc license", "ISC"),
    ("mozilla public license 2.0 (mpl 2.0)", "MPL-2.0"),
    ("gnu general public license v3 (gplv3)", "GPL-3.0-only"),
    (
        "gnu lesser general public license v3 (lgplv3)",
        "LGPL-3.0-only",
    ),
    ("python software foundation license", "PSF-2.0"),
    ("public domain", "LicenseRef-Public-Domain"),
];

/// Normalises a license text into (SPDX expression, acknowledgement). `None` when it is not
/// one and cannot be made one.
pub fn normalise(raw: &str) -> Option<(String, Acknowledgement)> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 1024 {
        return None;
    }
    if spdx::Expression::parse(t).is_ok() {
        return Some((t.to_owned(), Acknowledgement::Declared));
    }
    let lower = t.to_ascii_lowercase();
    if let Some((_, id)) = EXTRA_NAMES.iter().find(|(n, _)| *n == lower) {
        return Some(((*id).to_owned(), Acknowledgement::Concluded));
    }
    // `(MIT OR Apache-2.0)` style leftovers and `MIT/Apache-2.0` go through the crate's fixups.
    let stripped = t.trim_start_matches('(').trim_end_matches(')');
    for candidate in [t, stripped] {
        if let Ok(Some(c)) = spdx::Expression::canonicalize(candidate)
            && spdx::Expression::parse(&c).is_ok()
        {
            return Some((c, Acknowledgement::Concluded));
        }
    }
    // `MIT, Apache-2.0` or `MIT; Apache-2.0`: a list of alternatives in several ecosystems.
    for sep in [",", ";"] {
        if t.contains(sep) {
            let parts: Option<Vec<String>> =
                t.split(sep).map(|p| normalise(p).map(|(e, _)| e)).collect();
            if let Some(parts) = parts
                && parts.len() > 1
            {
                let joined = parts
                    .iter()
                    .map(|p| {
                        if p.contains(' ') {
                            format!("({p})")
                        } else {
                            p.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" OR ");
                if spdx::Expression::parse(&joined).is_ok() {
                    return Some((joined, Acknowledgement::Concluded));
                }
            }
        }
    }
    None
}

/// Builds a [`LicenseInfo`] for `raw` found at `origin`.
pub fn info(raw: &str, origin: &str) -> LicenseInfo {
    match normalise(raw) {
        Some((expression, acknowledgement)) => LicenseInfo {
            raw: raw.trim().to_owned(),
            expression: Some(expression),
            acknowledgement,
            origin: origin.to_owned(),
        },
        None => LicenseInfo {
            raw: raw.trim().to_owned(),
            expression: None,
            acknowledgement: Acknowledgement::Declared,
            origin: origin.to_owned(),
        },
    }
}

/// Trove classifiers (`License :: OSI Approved :: MIT License`) to SPDX.
fn classifier_to_spdx(c: &str) -> Option<&'static str> {
    let last = c.rsplit("::").next()?.trim();
    Some(match last {
        "MIT License" => "MIT",
        "Apache Software License" => "Apache-2.0",
        "BSD License" => "BSD-3-Clause",
        "ISC License (ISCL)" => "ISC",
        "Mozilla Public License 2.0 (MPL 2.0)" => "MPL-2.0",
        "Python Software Foundation License" => "PSF-2.0",
        "GNU General Public License v3 (GPLv3)" => "GPL-3.0-only",
        "GNU General Public License v2 (GPLv2)" => "GPL-2.0-only",
        "GNU Lesser General Public License v3 (LGPLv3)" => "LGPL-3.0-only",
        "GNU Lesser General Public License v2 or later (LGPLv2+)" => "LGPL-2.0-or-later",
        "The Unlicense (Unlicense)" => "Unlicense",
        _ => return None,
    })
}

/// Looks licenses up in local caches: the Cargo registry source directory and `vendor/`,
/// `node_modules/`, and virtualenvs' `.dist-info`. Reads only; never touches the network.
#[derive(Debug, Default)]
pub struct LocalCaches {
    /// `~/.cargo/registry/src/*` directories.
    cargo_src_dirs: Vec<PathBuf>,
    /// site-packages directories per project directory, found lazily.
    site_packages: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// `normalised-name==version` -> dist-info dir, per site-packages.
    dist_info: BTreeMap<PathBuf, BTreeMap<String, PathBuf>>,
}

impl LocalCaches {
    /// Caches found from the environment (`CARGO_HOME` or `~/.cargo`).
    pub fn from_env() -> Self {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        let mut cargo_src_dirs: Vec<PathBuf> = cargo_home
            .map(|h| h.join("registry").join("src"))
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        cargo_src_dirs.sort();
        Self {
            cargo_src_dirs,
            ..Self::default()
        }
    }

    /// No caches at all (for tests that must not depend on the machine).
    pub fn none() -> Self {
        Self::default()
    }

    /// Caches with the given Cargo registry source directories (`.../registry/src/<index>`).
    pub fn with_cargo_src_dirs(cargo_src_dirs: Vec<PathBuf>) -> Self {
        Self {
            cargo_src_dirs,
            ..Self::default()
        }
    }

    /// The license of `c` from a local cache; `project_root` is the project, `lock_dir` the
    /// directory of the lockfile the component came from.
    pub fn lookup(
        &mut self,
        c: &Component,
        project_root: &Path,
        lock_dir: &Path,
    ) -> Option<LicenseInfo> {
        match c.ecosystem {
            Ecosystem::Cargo => self.cargo(c, project_root, lock_dir),
            Ecosystem::Npm => npm(c, lock_dir),
            Ecosystem::PyPI => self.python(c, lock_dir),
            _ => None,
        }
    }

    fn cargo(&self, c: &Component, project_root: &Path, lock_dir: &Path) -> Option<LicenseInfo> {
        let dir_name = format!("{}-{}", c.name, c.version);
        for vendor in [lock_dir.join("vendor"), project_root.join("vendor")] {
            for d in [vendor.join(&dir_name), vendor.join(&c.name)] {
                if let Some(l) = cargo_manifest_license(&d.join("Cargo.toml"), &c.version) {
                    return Some(info(&l, "vendor"));
                }
            }
        }
        for src in &self.cargo_src_dirs {
            if let Some(l) =
                cargo_manifest_license(&src.join(&dir_name).join("Cargo.toml"), &c.version)
            {
                return Some(info(&l, "cargo-registry"));
            }
        }
        None
    }

    fn python(&mut self, c: &Component, lock_dir: &Path) -> Option<LicenseInfo> {
        let sps = self
            .site_packages
            .entry(lock_dir.to_path_buf())
            .or_insert_with(|| find_site_packages(lock_dir))
            .clone();
        let want = format!("{}=={}", pep503(&c.name), c.version.to_ascii_lowercase());
        for sp in sps {
            let index = self
                .dist_info
                .entry(sp.clone())
                .or_insert_with(|| index_dist_info(&sp));
            if let Some(dir) = index.get(&want)
                && let Ok(meta) = std::fs::read_to_string(dir.join("METADATA"))
            {
                return license_from_metadata(&meta);
            }
        }
        None
    }
}

fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for ch in name.chars() {
        if matches!(ch, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(ch.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

fn cargo_manifest_license(path: &Path, version: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    // Published manifests are normalised by Cargo (`key = "value"` lines under `[package]`), so a
    // line scan finds the two keys without a full TOML parse, which dominated the BOM's time.
    let (mut found_version, mut license, mut in_package) = (None, None, false);
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_package {
                break;
            }
            in_package = t == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let unquoted = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        match k.trim() {
            "version" => found_version = unquoted.map(str::to_owned),
            "license" => license = unquoted.map(str::to_owned),
            _ => {}
        }
    }
    if found_version.is_none() && license.is_none() {
        // Not the normalised form (a hand-written vendored manifest): parse it properly.
        let t: toml::Table = text.parse().ok()?;
        let pkg = t.get("package")?;
        found_version = pkg
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        license = pkg
            .get("license")
            .and_then(|l| l.as_str())
            .map(str::to_owned);
    }
    if found_version.as_deref() != Some(version) {
        return None;
    }
    license
}

fn npm(c: &Component, lock_dir: &Path) -> Option<LicenseInfo> {
    let full = match &c.namespace {
        Some(ns) => format!("{ns}/{}", c.name),
        None => c.name.clone(),
    };
    let mut candidates = Vec::new();
    if let Some(p) = c.properties.get("cutover:npm:path") {
        candidates.push(lock_dir.join(p).join("package.json"));
    }
    candidates.push(
        lock_dir
            .join("node_modules")
            .join(&full)
            .join("package.json"),
    );
    for p in candidates {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if v.get("version").and_then(|x| x.as_str()) != Some(c.version.as_str()) {
            continue;
        }
        let lic = match v.get("license") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => {
                o.get("type").and_then(|t| t.as_str()).map(str::to_owned)
            }
            _ => v
                .get("licenses")
                .and_then(|l| l.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("type").and_then(|t| t.as_str()))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                })
                .filter(|s| !s.is_empty()),
        };
        if let Some(l) = lic {
            return Some(info(&l, "node_modules"));
        }
    }
    None
}

fn find_site_packages(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for venv in [".venv", "venv", ".env", "env"] {
        let lib = dir.join(venv).join("lib");
        let Ok(rd) = std::fs::read_dir(&lib) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path().join("site-packages"))
            .filter(|p| p.is_dir())
            .collect();
        pys.sort();
        out.extend(pys);
        let win = dir.join(venv).join("Lib").join("site-packages");
        if win.is_dir() {
            out.push(win);
        }
    }
    out
}

fn index_dist_info(sp: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(sp) else {
        return out;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = n.strip_suffix(".dist-info")
            && let Some((name, ver)) = stem.rsplit_once('-')
        {
            out.insert(
                format!("{}=={}", pep503(name), ver.to_ascii_lowercase()),
                e.path(),
            );
        }
    }
    out
}

/// The license in a core-metadata file: `License-Expression` (PEP 639), else a short `License`,
/// else the trove classifiers.
pub fn license_from_metadata(meta: &str) -> Option<LicenseInfo> {
    let headers = meta.split("\n\n").next().unwrap_or(meta);
    let field = |name: &str| -> Option<String> {
        headers
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            })
            .filter(|v| !v.is_empty() && v != "UNKNOWN")
    };
    if let Some(e) = field("License-Expression") {
        return Some(info(&e, "dist-info"));
    }
    if let Some(l) = field("License")
        && l.len() < 100
        && normalise(&l).is_some()
    {
        return Some(info(&l, "dist-info"));
    }
    let ids: Vec<&str> = headers
        .lines()
        .filter_map(|l| l.strip_prefix("Classifier:"))
        .filter(|c| c.trim().starts_with("License ::"))
        .filter_map(classifier_to_spdx)
        .collect();
    if !ids.is_empty() {
        let expr = ids.join(" OR ");
        return Some(LicenseInfo {
            raw: expr.clone(),
            expression: Some(expr),
            acknowledgement: Acknowledgement::Concluded,
            origin: "dist-info".to_owned(),
        });
    }
    field("License").map(|l| info(&l, "dist-info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imprecise_names_become_spdx() {
        let cases = [
            ("MIT", "MIT", Acknowledgement::Declared),
            (
                "MIT OR Apache-2.0",
                "MIT OR Apache-2.0",
                Acknowledgement::Declared,
            ),
            (
                "MIT/Apache-2.0",
                "MIT OR Apache-2.0",
                Acknowledgement::Concluded,
            ),
            ("Apache 2.0", "Apache-2.0", Acknowledgement::Concluded),
            (
                "Apache License, Version 2.0",
                "Apache-2.0",
                Acknowledgement::Concluded,
            ),
            ("GPL-2.0", "GPL-2.0-only", Acknowledgement::Concluded),
            (
                "(MIT OR Apache-2.0)",
                "(MIT OR Apache-2.0)",
                Acknowledgement::Declared,
            ),
            (
                "MIT, Apache-2.0",
                "MIT OR Apache-2.0",
                Acknowledgement::Concluded,
            ),
        ];
        for (raw, want, ack) in cases {
            assert_eq!(normalise(raw), Some((want.to_owned(), ack)), "{raw}");
        }
        assert_eq!(normalise("SEE LICENSE IN LICENSE.md"), None);
        assert_eq!(normalise(""), None);
    }

    #[test]
    fn metadata_fields() {
        let m = "Metadata-Version: 2.4\nName: x\nLicense-Expression: BSD-3-Clause\n\nbody";
        assert_eq!(
            license_from_metadata(m)
                .and_then(|l| l.expression)
                .as_deref(),
            Some("BSD-3-Clause")
        );
        let m = "Name: x\nClassifier: License :: OSI Approved :: MIT License\n";
        let l = license_from_metadata(m).expect("classifier");
        assert_eq!(l.expression.as_deref(), Some("MIT"));
        assert_eq!(l.acknowledgement, Acknowledgement::Concluded);
    }
}
