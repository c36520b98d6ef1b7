//! Scanning a bill of materials (`cutover_bom::Bom`): components named as OSV names them, matched
//! against the database, each finding placed in the BOM (manifest, scope, direct or not, and the
//! dependency path from a direct dependency).

use crate::db::{DbError, VulnDb};
use crate::matching::{Finding, MatchReport, NotEvaluated, PackageRef, match_packages};
use cutover_bom::model::{Component, Ecosystem, Resolution, Scope, Source};
use cutover_bom::{Bom, BomComponent};
use std::collections::{HashMap, VecDeque};

/// The OSV ecosystem name of a BOM ecosystem.
pub fn osv_ecosystem(e: Ecosystem) -> &'static str {
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

/// The package as OSV names it, or `None` when it cannot be matched: no resolved version, or the
/// project's own code (a path dependency / workspace member).
pub fn package_ref(c: &Component) -> Option<PackageRef> {
    if c.resolution == Resolution::Unresolved || c.version.is_empty() {
        return None;
    }
    if matches!(c.source, Source::Path { .. }) {
        return None;
    }
    let name = match (c.ecosystem, &c.namespace) {
        (Ecosystem::Maven, Some(g)) => format!("{g}:{}", c.name),
        (Ecosystem::Npm | Ecosystem::Packagist, Some(ns)) => format!("{ns}/{}", c.name),
        (_, Some(ns)) if !ns.is_empty() => format!("{ns}/{}", c.name),
        _ => c.name.clone(),
    };
    Some(PackageRef {
        ecosystem: osv_ecosystem(c.ecosystem).to_string(),
        name,
        version: c.version.clone(),
    })
}

/// Where an affected component sits in the BOM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub bom_ref: String,
    pub manifest: String,
    pub scope: Scope,
    pub direct: bool,
    /// `name@version` from a direct dependency down to this component (just itself when direct;
    /// empty when the lockfile records no dependency graph that reaches it).
    pub path: Vec<String>,
}

/// A finding with its places in the BOM.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BomFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub placements: Vec<Placement>,
    /// The most needed scope among the placements (`required` before `optional` before `excluded`).
    pub scope: Scope,
}

/// The result of scanning a BOM.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BomReport {
    /// Components looked up (those with a registry version).
    pub checked: usize,
    pub findings: Vec<BomFinding>,
    pub not_evaluated: Vec<NotEvaluated>,
}

fn label(c: &BomComponent) -> String {
    let pkg = package_ref(&c.component);
    match pkg {
        Some(p) => format!("{}@{}", p.name, p.version),
        None => format!("{}@{}", c.component.name, c.component.version),
    }
}

/// Shortest dependency path from any direct component to each component (breadth-first).
fn paths(bom: &Bom) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = bom
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.bom_ref.as_str(), i))
        .collect();
    let mut parent: Vec<Option<usize>> = vec![None; bom.components.len()];
    let mut seen = vec![false; bom.components.len()];
    let mut queue = VecDeque::new();
    for (i, c) in bom.components.iter().enumerate() {
        if c.component.direct {
            seen[i] = true;
            queue.push_back(i);
        }
    }
    while let Some(i) = queue.pop_front() {
        for dep in &bom.components[i].dependencies {
            if let Some(&j) = index.get(dep.as_str())
                && !seen[j]
            {
                seen[j] = true;
                parent[j] = Some(i);
                queue.push_back(j);
            }
        }
    }
    (0..bom.components.len())
        .map(|i| {
            if !seen[i] {
                return Vec::new();
            }
            let mut chain = vec![label(&bom.components[i])];
            let mut cur = i;
            while let Some(p) = parent[cur] {
                chain.push(label(&bom.components[p]));
                cur = p;
            }
            chain.reverse();
            chain
        })
        .collect()
}

/// Places match results in the BOM; `refs[k]` is the BOM index of the k-th package queried.
pub fn place(bom: &Bom, refs: &[usize], report: MatchReport) -> BomReport {
    let paths = paths(bom);
    let findings = report
        .findings
        .into_iter()
        .map(|finding| {
            let placements: Vec<Placement> = finding
                .packages
                .iter()
                .map(|&k| {
                    let i = refs[k];
                    let c = &bom.components[i];
                    Placement {
                        bom_ref: c.bom_ref.clone(),
                        manifest: c.component.manifest.clone(),
                        scope: c.component.scope,
                        direct: c.component.direct,
                        path: paths[i].clone(),
                    }
                })
                .collect();
            let scope = placements
                .iter()
                .map(|p| p.scope)
                .min()
                .unwrap_or(Scope::Required);
            BomFinding {
                finding,
                placements,
                scope,
            }
        })
        .collect();
    BomReport {
        checked: refs.len(),
        findings,
        not_evaluated: report.not_evaluated,
    }
}

/// Matches every BOM component with a registry version against the database.
pub async fn scan(db: &VulnDb, bom: &Bom) -> Result<BomReport, DbError> {
    let mut packages = Vec::new();
    let mut refs = Vec::new();
    for (i, c) in bom.components.iter().enumerate() {
        if let Some(p) = package_ref(&c.component) {
            packages.push(p);
            refs.push(i);
        }
    }
    let report = match_packages(db, &packages).await?;
    Ok(place(bom, &refs, report))
}
