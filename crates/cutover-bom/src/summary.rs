//! A human summary of a BOM: counts per ecosystem, direct and transitive, per license, failures.

use crate::bom::Bom;
use crate::model::{Ecosystem, Scope};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts for the binary to print.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub components: usize,
    pub direct: usize,
    pub transitive: usize,
    /// required / optional / excluded (dev, test)
    pub by_scope: BTreeMap<String, usize>,
    pub by_ecosystem: BTreeMap<String, usize>,
    /// SPDX expression (or raw text, or `unknown`) -> count.
    pub by_license: BTreeMap<String, usize>,
    pub lockfiles: usize,
    /// `file: error` for every lockfile that could not be used.
    pub failures: Vec<String>,
    pub warnings: usize,
}

impl Bom {
    /// Counts per ecosystem, direct/transitive, scope and license.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            components: self.components.len(),
            lockfiles: self.files.len(),
            ..Summary::default()
        };
        for bc in &self.components {
            let c = &bc.component;
            if c.direct {
                s.direct += 1;
            } else {
                s.transitive += 1;
            }
            let scope = match c.scope {
                Scope::Required => "required",
                Scope::Optional => "optional",
                Scope::Excluded => "excluded",
            };
            *s.by_scope.entry(scope.to_owned()).or_default() += 1;
            *s.by_ecosystem
                .entry(ecosystem_label(c.ecosystem).to_owned())
                .or_default() += 1;
            let lic = bc
                .license
                .as_ref()
                .map(|l| l.expression.clone().unwrap_or_else(|| l.raw.clone()))
                .unwrap_or_else(|| "unknown".to_owned());
            *s.by_license.entry(lic).or_default() += 1;
        }
        for f in &self.files {
            s.warnings += f.warnings.len();
            if let Some(e) = &f.error {
                s.failures.push(e.to_string());
            }
        }
        s
    }
}

/// The usual name of an ecosystem.
pub fn ecosystem_label(e: Ecosystem) -> &'static str {
    match e {
        Ecosystem::Cargo => "crates.io",
        Ecosystem::Npm => "npm",
        Ecosystem::PyPI => "PyPI",
        Ecosystem::Go => "Go",
        Ecosystem::RubyGems => "RubyGems",
        Ecosystem::Maven => "Maven",
        Ecosystem::NuGet => "NuGet",
        Ecosystem::Packagist => "Packagist",
    }
}
