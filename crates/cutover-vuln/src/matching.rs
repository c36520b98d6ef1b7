//! Matching packages against advisories with the OSV algorithm: explicit `versions`, SEMVER and
//! ECOSYSTEM ranges (events sorted by the ecosystem's order; `introduced` and `last_affected`
//! inclusive, `fixed` and `limit` exclusive, `introduced: "0"` from the start), GIT ranges not
//! evaluated. Findings for one package version are merged when their ids or aliases overlap.

use crate::db::{Candidate, DbError, VulnDb};
use crate::names;
use crate::osv::{Advisory, Affected, Event};
use crate::severity::Level;
use crate::version::{self, Scheme, Version};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A package version to check, named as OSV names it (`@scope/name` for npm,
/// `group:artifact` for Maven, the module path for Go).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PackageRef {
    /// OSV ecosystem: `crates.io`, `npm`, `PyPI`, `Go`, `Maven`, `RubyGems`, `NuGet`, `Packagist`, ...
    pub ecosystem: String,
    pub name: String,
    pub version: String,
}

/// The outcome of checking one version against one `affected` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Affected,
    NotAffected,
    /// Only GIT ranges (or an ecosystem whose versions this crate cannot order) decide.
    NotEvaluated,
}

/// One vulnerability found in one package version (merged over aliases).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The advisory id shown (the smallest of the merged advisory ids).
    pub id: String,
    /// Every other id and alias of the merged advisories, sorted.
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    /// The highest CVSS base score of the merged advisories.
    pub score: Option<f64>,
    pub level: Level,
    pub vector: Option<String>,
    pub package: PackageRef,
    /// The lowest fixed version above the current one, if any.
    pub fixed: Option<String>,
    /// RustSec informational kind (`unmaintained`, `unsound`, ...): a warning, not a vulnerability.
    pub informational: Option<String>,
    /// Indexes into the queried packages that this finding is about.
    pub packages: Vec<usize>,
}

/// A package whose ranges could not be evaluated (GIT only, or an unparseable version).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotEvaluated {
    pub advisory_id: String,
    pub package: PackageRef,
    pub reason: String,
}

/// Everything a match run found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MatchReport {
    pub findings: Vec<Finding>,
    pub not_evaluated: Vec<NotEvaluated>,
}

enum Bound {
    Min,
    V(Version),
}

fn cmp_bound(a: &Bound, b: &Bound) -> Ordering {
    match (a, b) {
        (Bound::Min, Bound::Min) => Ordering::Equal,
        (Bound::Min, _) => Ordering::Less,
        (_, Bound::Min) => Ordering::Greater,
        (Bound::V(x), Bound::V(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
    }
}

/// Evaluates one range's events for `v` (already parsed with `scheme`).
pub fn in_range(
    scheme: Scheme,
    events: &[Event],
    v: &Version,
) -> Result<bool, version::VersionError> {
    let mut parsed: Vec<(Bound, &Event)> = Vec::with_capacity(events.len());
    let mut limits = Vec::new();
    for e in events {
        match e {
            Event::Introduced(s) if s == "0" => parsed.push((Bound::Min, e)),
            Event::Limit(s) if s == "*" => {}
            Event::Limit(s) => limits.push(version::parse(scheme, s)?),
            _ => parsed.push((Bound::V(version::parse(scheme, e.version())?), e)),
        }
    }
    parsed.sort_by(|a, b| cmp_bound(&a.0, &b.0));
    let mut affected = false;
    for (bound, e) in &parsed {
        let o = match bound {
            Bound::Min => Ordering::Less,
            Bound::V(b) => b.partial_cmp(v).unwrap_or(Ordering::Greater),
        };
        match e {
            Event::Introduced(_) if o != Ordering::Greater => affected = true,
            Event::Fixed(_) if o != Ordering::Greater => affected = false,
            Event::LastAffected(_) if o == Ordering::Less => affected = false,
            _ => {}
        }
    }
    if affected && !limits.is_empty() {
        affected = limits
            .iter()
            .any(|l| v.partial_cmp(l) == Some(Ordering::Less));
    }
    Ok(affected)
}

/// One version string with its parses per scheme, made once however many entries it meets.
pub struct VersionCache<'a> {
    text: &'a str,
    parsed: Vec<(Scheme, Option<Version>)>,
}

impl<'a> VersionCache<'a> {
    pub fn new(text: &'a str) -> Self {
        VersionCache {
            text,
            parsed: Vec::new(),
        }
    }

    fn get(&mut self, scheme: Scheme) -> Option<&Version> {
        let i = match self.parsed.iter().position(|(s, _)| *s == scheme) {
            Some(i) => i,
            None => {
                self.parsed
                    .push((scheme, version::parse(scheme, self.text).ok()));
                self.parsed.len() - 1
            }
        };
        self.parsed[i].1.as_ref()
    }
}

/// The non-zero digits of a version (before SemVer build metadata): versions that are equal in
/// any scheme here have the same ones, so listed versions are parsed only when these agree.
fn digit_key(scheme: Scheme, s: &str) -> impl Iterator<Item = u8> + '_ {
    let s = match scheme {
        Scheme::SemVer | Scheme::Go | Scheme::NuGet => s.split('+').next().unwrap_or(s),
        _ => s,
    };
    s.bytes().filter(|b| (b'1'..=b'9').contains(b))
}

/// Checks one version against one `affected` entry.
pub fn check(affected: &Affected, version_str: &str) -> Verdict {
    check_cached(affected, &mut VersionCache::new(version_str))
}

/// [`check`] with the version's parses cached across entries.
pub fn check_cached(affected: &Affected, v: &mut VersionCache<'_>) -> Verdict {
    let version_str = v.text;
    let eco = affected
        .package
        .as_ref()
        .map(|p| p.ecosystem.as_str())
        .unwrap_or("");
    let eco_scheme = Scheme::for_osv_ecosystem(eco);
    let mut evaluated = !affected.versions.is_empty();
    for range in &affected.ranges {
        let Some(kind) = range.range_kind() else {
            continue;
        };
        let Some(scheme) = affected.scheme_for(kind) else {
            continue;
        };
        let Some(parsed) = v.get(scheme) else {
            continue;
        };
        match in_range(scheme, &range.events, parsed) {
            Ok(true) => return Verdict::Affected,
            Ok(false) => evaluated = true,
            Err(_) => {}
        }
    }
    // Explicit versions: exact string, or equal in the ecosystem's order (`1.0` == `1.0.0` in
    // PyPI), parsing only the plausible ones (same non-zero digits).
    if affected.versions.iter().any(|l| l == version_str) {
        return Verdict::Affected;
    }
    if let Some(s) = eco_scheme
        && !affected.versions.is_empty()
        && let Some(parsed) = v.get(s)
    {
        for listed in &affected.versions {
            if digit_key(s, listed).eq(digit_key(s, version_str))
                && version::parse(s, listed).is_ok_and(|l| l == *parsed)
            {
                return Verdict::Affected;
            }
        }
    }
    if evaluated || affected.ranges.is_empty() {
        Verdict::NotAffected
    } else {
        Verdict::NotEvaluated
    }
}

/// The lowest `fixed` version of the entry above `current`.
fn nearest_fixed(affected: &Affected, current: &mut VersionCache<'_>) -> Option<(Version, String)> {
    let mut best: Option<(Version, String)> = None;
    for range in &affected.ranges {
        let Some(scheme) = range.range_kind().and_then(|k| affected.scheme_for(k)) else {
            continue;
        };
        let Some(cur) = current.get(scheme) else {
            continue;
        };
        for e in &range.events {
            let Event::Fixed(f) = e else { continue };
            let Ok(fv) = version::parse(scheme, f) else {
                continue;
            };
            if fv.partial_cmp(cur) != Some(Ordering::Greater) {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(b, _)| fv.partial_cmp(b) == Some(Ordering::Less))
            {
                best = Some((fv, f.clone()));
            }
        }
    }
    best
}

/// Matches `packages` against the candidates found in the index; pure (no IO) so it can be
/// tested and benchmarked on its own.
pub fn match_candidates(packages: &[PackageRef], candidates: &[Candidate]) -> MatchReport {
    let mut by_key: HashMap<(&str, &str), Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        by_key
            .entry((c.ecosystem.as_str(), c.norm_name.as_str()))
            .or_default()
            .push(c);
    }
    let mut report = MatchReport::default();
    // Group identical package versions so each is evaluated once.
    let mut groups: HashMap<(String, String, &str), Vec<usize>> = HashMap::new();
    for (i, p) in packages.iter().enumerate() {
        let eco = names::base_ecosystem(&p.ecosystem).to_string();
        let norm = names::normalize(&eco, &p.name);
        groups
            .entry((eco, norm, p.version.as_str()))
            .or_default()
            .push(i);
    }
    let mut keys: Vec<_> = groups.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let idxs = &groups[&key];
        let (eco, norm, version_str) = &key;
        let pkg = &packages[idxs[0]];
        let Some(cands) = by_key.get(&(eco.as_str(), norm.as_str())) else {
            continue;
        };
        let mut hits: Vec<(&Candidate, Option<(Version, String)>)> = Vec::new();
        let mut cache = VersionCache::new(version_str);
        for c in cands {
            match check_cached(&c.affected, &mut cache) {
                Verdict::Affected => hits.push((c, nearest_fixed(&c.affected, &mut cache))),
                Verdict::NotAffected => {}
                Verdict::NotEvaluated => report.not_evaluated.push(NotEvaluated {
                    advisory_id: c.advisory_id.clone(),
                    package: pkg.clone(),
                    reason: "only GIT ranges or versions this ecosystem's order cannot read".into(),
                }),
            }
        }
        // One advisory may list the package twice (several `affected` entries): dedupe by id.
        hits.sort_by(|a, b| a.0.advisory_id.cmp(&b.0.advisory_id));
        hits.dedup_by(|a, b| a.0.advisory_id == b.0.advisory_id);
        // Merge advisories whose id/alias sets overlap (union-find over the few hits).
        let n = hits.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], i: usize) -> usize {
            let mut r = i;
            while p[r] != r {
                r = p[r];
            }
            p[i] = r;
            r
        }
        let names_of = |c: &Candidate| -> BTreeSet<String> {
            std::iter::once(c.advisory_id.clone())
                .chain(c.aliases.iter().cloned())
                .collect()
        };
        for i in 0..n {
            for j in (i + 1)..n {
                if !names_of(hits[i].0).is_disjoint(&names_of(hits[j].0)) {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[b] = a;
                }
            }
        }
        let mut merged: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            merged.entry(r).or_default().push(i);
        }
        let mut roots: Vec<_> = merged.into_values().collect();
        roots.sort();
        for members in roots {
            let mut all_names = BTreeSet::new();
            let mut best: Option<&Candidate> = None;
            let mut fixed: Option<(Version, String)> = None;
            for &m in &members {
                let (c, f) = &hits[m];
                all_names.extend(names_of(c));
                if best.is_none_or(|b| c.score.unwrap_or(-1.0) > b.score.unwrap_or(-1.0)) {
                    best = Some(c);
                }
                if let Some((fv, fs)) = f
                    && fixed
                        .as_ref()
                        .is_none_or(|(b, _)| fv.partial_cmp(b) == Some(Ordering::Less))
                {
                    fixed = Some((fv.clone(), fs.clone()));
                }
            }
            let first = hits[members[0]].0;
            let best = best.unwrap_or(first);
            let id = first.advisory_id.clone();
            all_names.remove(&id);
            report.findings.push(Finding {
                id,
                aliases: all_names.into_iter().collect(),
                summary: members.iter().find_map(|&m| hits[m].0.summary.clone()),
                score: best.score,
                level: best.level,
                vector: best.vector.clone(),
                package: pkg.clone(),
                fixed: fixed.map(|(_, s)| s),
                informational: first.informational.clone(),
                packages: idxs.clone(),
            });
        }
    }
    report
}

/// Which of `packages` one advisory affects (indexes), for "which releases run it?": each release's
/// BOM is checked against the advisory found by id or alias. Withdrawn advisories affect nothing.
pub fn affected_by(advisory: &Advisory, packages: &[PackageRef]) -> Vec<usize> {
    if advisory.withdrawn.is_some() {
        return Vec::new();
    }
    packages
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let eco = names::base_ecosystem(&p.ecosystem);
            let norm = names::normalize(eco, &p.name);
            advisory.affected.iter().any(|a| {
                a.package.as_ref().is_some_and(|pkg| {
                    names::base_ecosystem(&pkg.ecosystem) == eco
                        && names::normalize(eco, &pkg.name) == norm
                }) && check(a, &p.version) == Verdict::Affected
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// Looks the packages up in the database and matches them.
pub async fn match_packages(db: &VulnDb, packages: &[PackageRef]) -> Result<MatchReport, DbError> {
    let mut keys: Vec<(String, String)> = packages
        .iter()
        .map(|p| {
            let eco = names::base_ecosystem(&p.ecosystem).to_string();
            let norm = names::normalize(&eco, &p.name);
            (eco, norm)
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut candidates = db.candidates(&keys).await?;
    // Only the entries that affect (or cannot be evaluated for) a queried version need the
    // details a finding shows; fetching them for the rest would dominate the time.
    let mut versions: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for (p, (eco, norm)) in packages.iter().zip(packages.iter().map(|p| {
        let eco = names::base_ecosystem(&p.ecosystem);
        (eco, names::normalize(eco, &p.name))
    })) {
        let key = keys
            .binary_search(&(eco.to_string(), norm))
            .map(|i| (keys[i].0.as_str(), keys[i].1.as_str()))
            .expect("every package's key is in the sorted key list");
        versions.entry(key).or_default().push(p.version.as_str());
    }
    candidates.retain(|c| {
        versions
            .get(&(c.ecosystem.as_str(), c.norm_name.as_str()))
            .is_some_and(|vs| {
                vs.iter()
                    .any(|v| check(&c.affected, v) != Verdict::NotAffected)
            })
    });
    db.fill_details(&mut candidates).await?;
    Ok(match_candidates(packages, &candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osv::{Package, Range};

    fn affected(eco: &str, kind: &str, events: &[(&str, &str)], versions: &[&str]) -> Affected {
        Affected {
            package: Some(Package {
                ecosystem: eco.into(),
                name: "p".into(),
                purl: None,
            }),
            severity: Vec::new(),
            ranges: vec![Range {
                kind: kind.into(),
                repo: None,
                events: events
                    .iter()
                    .map(|(k, v)| {
                        let v = v.to_string();
                        match *k {
                            "introduced" => Event::Introduced(v),
                            "fixed" => Event::Fixed(v),
                            "last_affected" => Event::LastAffected(v),
                            _ => Event::Limit(v),
                        }
                    })
                    .collect(),
            }],
            versions: versions.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn verdicts(a: &Affected, versions: &[&str]) -> Vec<bool> {
        versions
            .iter()
            .map(|v| check(a, v) == Verdict::Affected)
            .collect()
    }

    #[test]
    fn fixed_is_exclusive_and_introduced_zero_is_the_start() {
        let a = affected(
            "npm",
            "SEMVER",
            &[("introduced", "0"), ("fixed", "1.2.0")],
            &[],
        );
        assert_eq!(
            verdicts(&a, &["0.0.0", "1.2.0-rc.1", "1.1.9", "1.2.0", "2.0.0"]),
            [true, true, true, false, false]
        );
    }

    #[test]
    fn last_affected_is_inclusive() {
        let a = affected(
            "PyPI",
            "ECOSYSTEM",
            &[("introduced", "1.0"), ("last_affected", "1.4")],
            &[],
        );
        assert_eq!(
            verdicts(&a, &["0.9", "1.0", "1.4", "1.4.0", "1.4.post1", "1.5"]),
            [false, true, true, true, false, false]
        );
    }

    #[test]
    fn several_introductions_in_any_order() {
        // As PyPA lists them: newest series first.
        let a = affected(
            "PyPI",
            "ECOSYSTEM",
            &[
                ("introduced", "5.0"),
                ("fixed", "5.2"),
                ("introduced", "4.0"),
                ("fixed", "4.3"),
            ],
            &[],
        );
        assert_eq!(
            verdicts(
                &a,
                &[
                    "3.9", "4.0", "4.2.9", "4.3", "4.9", "5.0rc1", "5.0", "5.1.1", "5.2"
                ]
            ),
            [false, true, true, false, false, false, true, true, false]
        );
    }

    #[test]
    fn limit_bounds_the_range() {
        let a = affected(
            "Maven",
            "ECOSYSTEM",
            &[("introduced", "0"), ("limit", "2.0")],
            &[],
        );
        assert_eq!(
            verdicts(&a, &["1.0", "1.9-SNAPSHOT", "2.0", "2.1"]),
            [true, true, false, false]
        );
    }

    #[test]
    fn explicit_versions_match_by_ecosystem_equality() {
        let a = Affected {
            ranges: Vec::new(),
            ..affected("PyPI", "ECOSYSTEM", &[], &["1.0", "2.0.post1"])
        };
        assert_eq!(
            verdicts(&a, &["1.0.0", "2.0-1", "2.0"]),
            [true, true, false]
        );
    }

    #[test]
    fn git_ranges_are_not_evaluated() {
        let a = affected(
            "PyPI",
            "GIT",
            &[("introduced", "0"), ("fixed", "abc123")],
            &[],
        );
        assert_eq!(check(&a, "1.0"), Verdict::NotEvaluated);
    }

    #[test]
    fn maven_ordering_decides_ranges() {
        let a = affected(
            "Maven",
            "ECOSYSTEM",
            &[("introduced", "2.0-beta9"), ("fixed", "2.15.0")],
            &[],
        );
        assert_eq!(
            verdicts(
                &a,
                &[
                    "2.0-alpha1",
                    "2.0-beta9",
                    "2.0",
                    "2.14.1",
                    "2.15.0-rc1",
                    "2.15.0"
                ]
            ),
            [false, true, true, true, true, false]
        );
    }
}
