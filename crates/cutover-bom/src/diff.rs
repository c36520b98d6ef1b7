//! `bom diff A B`: components added, removed, upgraded, downgraded, and license changes, matched
//! by ecosystem, namespace and name.

use crate::bom::{Bom, BomComponent};
use crate::model::Ecosystem;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One package in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    pub ecosystem: Ecosystem,
    /// `namespace/name` or `name`.
    pub name: String,
    pub purl: String,
    pub version: String,
}

/// A version change of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub from: String,
    pub to: String,
}

/// A license change of one package (same or changed version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseChange {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// How B differs from A.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BomDiff {
    pub added: Vec<DiffEntry>,
    pub removed: Vec<DiffEntry>,
    pub upgraded: Vec<VersionChange>,
    pub downgraded: Vec<VersionChange>,
    pub license_changes: Vec<LicenseChange>,
}

impl BomDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.downgraded.is_empty()
            && self.license_changes.is_empty()
    }
}

fn full_name(c: &BomComponent) -> String {
    match &c.component.namespace {
        Some(ns) => format!("{ns}/{}", c.component.name),
        None => c.component.name.clone(),
    }
}

fn license_of(c: &BomComponent) -> Option<String> {
    c.license
        .as_ref()
        .map(|l| l.expression.clone().unwrap_or_else(|| l.raw.clone()))
}

/// Versions per package; the same package from several manifests counts once per version.
fn index(b: &Bom) -> BTreeMap<(Ecosystem, String), BTreeMap<String, &BomComponent>> {
    let mut m: BTreeMap<(Ecosystem, String), BTreeMap<String, &BomComponent>> = BTreeMap::new();
    for c in &b.components {
        m.entry((c.component.ecosystem, full_name(c)))
            .or_default()
            .entry(c.component.version.clone())
            .or_insert(c);
    }
    m
}

/// Compares two BOMs: what B (the newer) adds, removes, upgrades and downgrades relative to A.
pub fn diff(a: &Bom, b: &Bom) -> BomDiff {
    let ia = index(a);
    let ib = index(b);
    let mut d = BomDiff::default();
    let entry = |c: &BomComponent| DiffEntry {
        ecosystem: c.component.ecosystem,
        name: full_name(c),
        purl: c.purl.clone(),
        version: c.component.version.clone(),
    };
    let mut keys: Vec<&(Ecosystem, String)> = ia.keys().chain(ib.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let empty = BTreeMap::new();
        let va = ia.get(key).unwrap_or(&empty);
        let vb = ib.get(key).unwrap_or(&empty);
        for (v, ca) in va {
            if let Some(cb) = vb.get(v) {
                let (la, lb) = (license_of(ca), license_of(cb));
                if la != lb {
                    d.license_changes.push(LicenseChange {
                        ecosystem: key.0,
                        name: key.1.clone(),
                        version: v.clone(),
                        from: la,
                        to: lb,
                    });
                }
            }
        }
        let mut only_a: Vec<&String> = va.keys().filter(|v| !vb.contains_key(*v)).collect();
        let mut only_b: Vec<&String> = vb.keys().filter(|v| !va.contains_key(*v)).collect();
        only_a.sort_by(|x, y| crate::version::compare(x, y));
        only_b.sort_by(|x, y| crate::version::compare(x, y));
        // Pair the versions that disappeared with those that appeared, in order.
        let pairs = only_a.len().min(only_b.len());
        for i in 0..pairs {
            let (from, to) = (only_a[i], only_b[i]);
            let change = VersionChange {
                ecosystem: key.0,
                name: key.1.clone(),
                from: from.clone(),
                to: to.clone(),
            };
            match crate::version::compare(from, to) {
                Ordering::Greater => d.downgraded.push(change),
                _ => d.upgraded.push(change),
            }
            let (la, lb) = (license_of(va[from]), license_of(vb[to]));
            if la != lb {
                d.license_changes.push(LicenseChange {
                    ecosystem: key.0,
                    name: key.1.clone(),
                    version: to.clone(),
                    from: la,
                    to: lb,
                });
            }
        }
        for v in &only_a[pairs..] {
            d.removed.push(entry(va[*v]));
        }
        for v in &only_b[pairs..] {
            d.added.push(entry(vb[*v]));
        }
    }
    d
}
