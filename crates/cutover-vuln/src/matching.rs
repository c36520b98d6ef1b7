//! Matching packages against advisories with the OSV algorithm: explicit `versions`, SEMVER and
//! ECOSYSTEM ranges (events sorted by the ecosystem's order; `introduced` and `last_affected`
//! inclusive, `fixed` and `limit` exclusive, `introduced: "0"` from the start), GIT ranges not
//! evaluated. Findings for one package version are merged when their ids or aliases overlap.

use crate::db::{Candidate, DbError, VulnDb};
use crate::index::IndexFile;
use crate::names;
use crate::osv::{Advisory, Affected, Event};
use crate::severity::Level;
use crate::version::{self, Scheme, Version};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
}

/// One range's events parsed in its scheme and sorted once, so that any number of versions can
/// be checked against it without parsing again.
struct CompiledRange<'a> {
    events: Vec<(Bound, EventKind, &'a str)>,
    limits: Vec<Version>,
}

impl<'a> CompiledRange<'a> {
    fn new(scheme: Scheme, events: &'a [Event]) -> Result<Self, version::VersionError> {
        let mut parsed = Vec::with_capacity(events.len());
        let mut limits = Vec::new();
        for e in events {
            let kind = match e {
                Event::Introduced(s) if s == "0" => {
                    parsed.push((Bound::Min, EventKind::Introduced, s.as_str()));
                    continue;
                }
                Event::Limit(s) if s == "*" => continue,
                Event::Limit(s) => {
                    limits.push(version::parse(scheme, s)?);
                    continue;
                }
                Event::Introduced(_) => EventKind::Introduced,
                Event::Fixed(_) => EventKind::Fixed,
                Event::LastAffected(_) => EventKind::LastAffected,
            };
            parsed.push((
                Bound::V(version::parse(scheme, e.version())?),
                kind,
                e.version(),
            ));
        }
        parsed.sort_by(|a, b| cmp_bound(&a.0, &b.0));
        Ok(CompiledRange {
            events: parsed,
            limits,
        })
    }

    fn contains(&self, v: &Version) -> bool {
        let mut affected = false;
        for (bound, kind, _) in &self.events {
            let o = match bound {
                Bound::Min => Ordering::Less,
                Bound::V(b) => b.partial_cmp(v).unwrap_or(Ordering::Greater),
            };
            // The events are sorted: none after the first one above `v` can change the outcome.
            if o == Ordering::Greater {
                break;
            }
            match kind {
                EventKind::Introduced => affected = true,
                EventKind::Fixed => affected = false,
                EventKind::LastAffected if o == Ordering::Less => affected = false,
                EventKind::LastAffected => {}
            }
        }
        if affected && !self.limits.is_empty() {
            affected = self
                .limits
                .iter()
                .any(|l| v.partial_cmp(l) == Some(Ordering::Less));
        }
        affected
    }
}

/// Evaluates one range's events for `v` (already parsed with `scheme`).
pub fn in_range(
    scheme: Scheme,
    events: &[Event],
    v: &Version,
) -> Result<bool, version::VersionError> {
    Ok(CompiledRange::new(scheme, events)?.contains(v))
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
pub(crate) fn digit_key(scheme: Scheme, s: &str) -> impl Iterator<Item = u8> + '_ {
    let s = match scheme {
        Scheme::SemVer | Scheme::Go | Scheme::NuGet => s.split('+').next().unwrap_or(s),
        _ => s,
    };
    s.bytes().filter(|b| (b'1'..=b'9').contains(b))
}

/// An `affected` entry with its ranges parsed once: checking many versions against it parses
/// only the versions.
pub struct CompiledAffected<'a> {
    affected: &'a Affected,
    eco_scheme: Option<Scheme>,
    /// The ranges of a known kind and scheme, with their index in `affected.ranges`; `None` where
    /// an event does not parse (the range is skipped, as it cannot be evaluated).
    ranges: Vec<(usize, Scheme, Option<CompiledRange<'a>>)>,
}

impl<'a> CompiledAffected<'a> {
    pub fn new(affected: &'a Affected) -> Self {
        let eco_scheme = affected
            .package
            .as_ref()
            .and_then(|p| Scheme::for_osv_ecosystem(&p.ecosystem));
        let ranges = affected
            .ranges
            .iter()
            .enumerate()
            .filter_map(|(i, range)| {
                let scheme = range.range_kind().and_then(|k| affected.scheme_for(k))?;
                Some((i, scheme, CompiledRange::new(scheme, &range.events).ok()))
            })
            .collect();
        CompiledAffected {
            affected,
            eco_scheme,
            ranges,
        }
    }

    /// The schemes a version is read in to be checked against this entry.
    fn schemes(&self) -> impl Iterator<Item = Scheme> + '_ {
        self.ranges.iter().map(|(_, s, _)| *s).chain(
            self.eco_scheme
                .filter(|_| !self.affected.versions.is_empty()),
        )
    }

    /// Checks one version (its parses cached across entries).
    pub fn check(&self, v: &mut VersionCache<'_>) -> Verdict {
        let version_str = v.text;
        let mut evaluated = !self.affected.versions.is_empty();
        for (_, scheme, range) in &self.ranges {
            let Some(range) = range else { continue };
            let Some(parsed) = v.get(*scheme) else {
                continue;
            };
            if range.contains(parsed) {
                return Verdict::Affected;
            }
            evaluated = true;
        }
        // Explicit versions: exact string, or equal in the ecosystem's order (`1.0` == `1.0.0` in
        // PyPI), parsing only the plausible ones (same non-zero digits).
        let versions = &self.affected.versions;
        if versions.iter().any(|l| l == version_str) {
            return Verdict::Affected;
        }
        if let Some(s) = self.eco_scheme
            && !versions.is_empty()
            && let Some(parsed) = v.get(s)
        {
            for listed in versions {
                if digit_key(s, listed).eq(digit_key(s, version_str))
                    && version::parse(s, listed).is_ok_and(|l| l == *parsed)
                {
                    return Verdict::Affected;
                }
            }
        }
        if evaluated || self.affected.ranges.is_empty() {
            Verdict::NotAffected
        } else {
            Verdict::NotEvaluated
        }
    }

    /// The lowest `fixed` version of the entry above `current`.
    fn nearest_fixed(&self, current: &mut VersionCache<'_>) -> Option<(Version, String)> {
        fn better(fv: &Version, cur: &Version, best: Option<&Version>) -> bool {
            fv.partial_cmp(cur) == Some(Ordering::Greater)
                && best.is_none_or(|b| fv.partial_cmp(b) == Some(Ordering::Less))
        }
        let mut best: Option<(Version, &str)> = None;
        for (i, scheme, range) in &self.ranges {
            let Some(cur) = current.get(*scheme) else {
                continue;
            };
            match range {
                Some(r) => {
                    for (bound, kind, text) in &r.events {
                        if let (Bound::V(fv), EventKind::Fixed) = (bound, kind)
                            && better(fv, cur, best.as_ref().map(|b| &b.0))
                        {
                            best = Some((fv.clone(), text));
                        }
                    }
                }
                // A range with an unreadable event still names its readable fixes.
                None => {
                    for e in &self.affected.ranges[*i].events {
                        if let Event::Fixed(f) = e
                            && let Ok(fv) = version::parse(*scheme, f)
                            && better(&fv, cur, best.as_ref().map(|b| &b.0))
                        {
                            best = Some((fv, f.as_str()));
                        }
                    }
                }
            }
        }
        best.map(|(v, s)| (v, s.to_string()))
    }
}

/// Checks one version against one `affected` entry.
pub fn check(affected: &Affected, version_str: &str) -> Verdict {
    check_cached(affected, &mut VersionCache::new(version_str))
}

/// [`check`] with the version's parses cached across entries.
pub fn check_cached(affected: &Affected, v: &mut VersionCache<'_>) -> Verdict {
    CompiledAffected::new(affected).check(v)
}

/// How long each phase of [`match_packages_timed`] took (`cargo xtask bench vulns` prints them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimes {
    /// Normalising names and grouping the packages by (ecosystem, name, version).
    pub group: Duration,
    /// The index lookup in the database.
    pub query: Duration,
    /// Decoding the index entries found (JSON).
    pub decode: Duration,
    /// Parsing the entries' range events (once per entry).
    pub parse_ranges: Duration,
    /// Parsing the packages' versions (once per version and scheme).
    pub parse_versions: Duration,
    /// Evaluating each version against each entry of its package.
    pub evaluate: Duration,
    /// Reading what a finding shows (summary, aliases, severity) for the matched advisories.
    pub details: Duration,
    /// Merging aliases and building the report.
    pub report: Duration,
}

impl PhaseTimes {
    /// Adds another run's times (to average over runs).
    pub fn add(&mut self, o: &PhaseTimes) {
        self.group += o.group;
        self.query += o.query;
        self.decode += o.decode;
        self.parse_ranges += o.parse_ranges;
        self.parse_versions += o.parse_versions;
        self.evaluate += o.evaluate;
        self.details += o.details;
        self.report += o.report;
    }

    /// The phases with their names, in order.
    pub fn phases(&self) -> [(&'static str, Duration); 8] {
        [
            ("group", self.group),
            ("query", self.query),
            ("decode", self.decode),
            ("parse ranges", self.parse_ranges),
            ("parse versions", self.parse_versions),
            ("evaluate", self.evaluate),
            ("details", self.details),
            ("report", self.report),
        ]
    }
}

/// The packages of one (ecosystem, normalised name, version): evaluated once.
pub(crate) struct Group<'p> {
    pub(crate) eco: String,
    pub(crate) norm: String,
    pub(crate) version: &'p str,
    pub(crate) packages: Vec<usize>,
}

pub(crate) fn group(packages: &[PackageRef]) -> Vec<Group<'_>> {
    let mut groups: BTreeMap<(String, String, &str), Vec<usize>> = BTreeMap::new();
    for (i, p) in packages.iter().enumerate() {
        let eco = names::base_ecosystem(&p.ecosystem);
        let norm = names::normalize(eco, &p.name);
        groups
            .entry((eco.to_string(), norm, p.version.as_str()))
            .or_default()
            .push(i);
    }
    groups
        .into_iter()
        .map(|((eco, norm, version), packages)| Group {
            eco,
            norm,
            version,
            packages,
        })
        .collect()
}

/// A candidate (index) that affects a group, with the nearest fixed version above it.
type Hit = (usize, Option<(Version, String)>);

/// Per group, the candidates that affect it.
struct Evaluation {
    hits: Vec<Vec<Hit>>,
    not_evaluated: Vec<NotEvaluated>,
}

fn evaluate(
    packages: &[PackageRef],
    groups: &[Group<'_>],
    candidates: &[Candidate],
    times: &mut PhaseTimes,
) -> Evaluation {
    let t = Instant::now();
    let compiled: Vec<CompiledAffected<'_>> = candidates
        .iter()
        .map(|c| CompiledAffected::new(&c.affected))
        .collect();
    times.parse_ranges += t.elapsed();

    let t = Instant::now();
    let mut by_key: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        by_key
            .entry((c.ecosystem.as_str(), c.norm_name.as_str()))
            .or_default()
            .push(i);
    }
    let group_cands: Vec<&[usize]> = groups
        .iter()
        .map(|g| {
            by_key
                .get(&(g.eco.as_str(), g.norm.as_str()))
                .map_or(&[][..], Vec::as_slice)
        })
        .collect();
    let mut caches: Vec<VersionCache<'_>> = groups
        .iter()
        .zip(&group_cands)
        .map(|(g, cands)| {
            let mut cache = VersionCache::new(g.version);
            for &c in *cands {
                for s in compiled[c].schemes() {
                    cache.get(s);
                }
            }
            cache
        })
        .collect();
    times.parse_versions += t.elapsed();

    let t = Instant::now();
    let mut ev = Evaluation {
        hits: Vec::with_capacity(groups.len()),
        not_evaluated: Vec::new(),
    };
    for ((g, cache), cands) in groups.iter().zip(&mut caches).zip(&group_cands) {
        let mut hits = Vec::new();
        for &c in *cands {
            match compiled[c].check(cache) {
                Verdict::Affected => hits.push((c, compiled[c].nearest_fixed(cache))),
                Verdict::NotAffected => {}
                Verdict::NotEvaluated => ev.not_evaluated.push(NotEvaluated {
                    advisory_id: candidates[c].advisory_id.clone(),
                    package: packages[g.packages[0]].clone(),
                    reason: "only GIT ranges or versions this ecosystem's order cannot read".into(),
                }),
            }
        }
        ev.hits.push(hits);
    }
    times.evaluate += t.elapsed();
    ev
}

/// What merging needs of one advisory that affects a package version.
pub(crate) struct MergeHit<'a> {
    pub(crate) id: &'a str,
    pub(crate) aliases: &'a [String],
    pub(crate) summary: Option<&'a str>,
    pub(crate) score: Option<f64>,
    pub(crate) level: Level,
    pub(crate) vector: Option<&'a str>,
    pub(crate) informational: Option<&'a str>,
    /// The nearest fixed version above the package version, parsed and as written.
    pub(crate) fixed: Option<(&'a Version, &'a str)>,
}

/// Builds the findings: per package version, the advisories that affect it, merged when their
/// ids or aliases overlap (so a CVE that is also a GHSA is one finding).
fn merge(
    packages: &[PackageRef],
    groups: &[Group<'_>],
    candidates: &[Candidate],
    ev: Evaluation,
) -> MatchReport {
    let hits = ev
        .hits
        .iter()
        .map(|hs| {
            hs.iter()
                .map(|(c, fixed)| {
                    let c = &candidates[*c];
                    MergeHit {
                        id: &c.advisory_id,
                        aliases: &c.aliases,
                        summary: c.summary.as_deref(),
                        score: c.score,
                        level: c.level,
                        vector: c.vector.as_deref(),
                        informational: c.informational.as_deref(),
                        fixed: fixed.as_ref().map(|(v, s)| (v, s.as_str())),
                    }
                })
                .collect()
        })
        .collect();
    merge_hits(packages, groups, hits, ev.not_evaluated)
}

/// [`merge`] over hits from any source (the straightforward matcher or the match index).
pub(crate) fn merge_hits(
    packages: &[PackageRef],
    groups: &[Group<'_>],
    hits: Vec<Vec<MergeHit<'_>>>,
    not_evaluated: Vec<NotEvaluated>,
) -> MatchReport {
    let mut report = MatchReport {
        findings: Vec::new(),
        not_evaluated,
    };
    for (g, mut hits) in groups.iter().zip(hits) {
        if hits.is_empty() {
            continue;
        }
        let pkg = &packages[g.packages[0]];
        // One advisory may list the package twice (several `affected` entries): dedupe by id.
        hits.sort_by(|a, b| a.id.cmp(b.id));
        hits.dedup_by(|a, b| a.id == b.id);
        let names: Vec<BTreeSet<&str>> = hits
            .iter()
            .map(|h| {
                std::iter::once(h.id)
                    .chain(h.aliases.iter().map(String::as_str))
                    .collect()
            })
            .collect();
        // Union-find over the few hits.
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
        for i in 0..n {
            for j in (i + 1)..n {
                if !names[i].is_disjoint(&names[j]) {
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
            let mut all_names: BTreeSet<&str> = BTreeSet::new();
            let mut best: Option<&MergeHit<'_>> = None;
            let mut fixed: Option<(&Version, &str)> = None;
            for &m in &members {
                let h = &hits[m];
                all_names.extend(names[m].iter().copied());
                if best.is_none_or(|b| h.score.unwrap_or(-1.0) > b.score.unwrap_or(-1.0)) {
                    best = Some(h);
                }
                if let Some(f) = h.fixed
                    && fixed.is_none_or(|(b, _)| f.0.partial_cmp(b) == Some(Ordering::Less))
                {
                    fixed = Some(f);
                }
            }
            let first = &hits[members[0]];
            let best = best.unwrap_or(first);
            all_names.remove(first.id);
            report.findings.push(Finding {
                id: first.id.to_string(),
                aliases: all_names.into_iter().map(str::to_string).collect(),
                summary: members
                    .iter()
                    .find_map(|&m| hits[m].summary.map(str::to_string)),
                score: best.score,
                level: best.level,
                vector: best.vector.map(str::to_string),
                package: pkg.clone(),
                fixed: fixed.map(|(_, s)| s.to_string()),
                informational: first.informational.map(str::to_string),
                packages: g.packages.clone(),
            });
        }
    }
    report
}

/// Matches `packages` against the candidates found in the index (with their details filled);
/// pure (no IO) so it can be tested and benchmarked on its own.
pub fn match_candidates(packages: &[PackageRef], candidates: &[Candidate]) -> MatchReport {
    let groups = group(packages);
    let ev = evaluate(packages, &groups, candidates, &mut PhaseTimes::default());
    merge(packages, &groups, candidates, ev)
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

/// Looks the packages up in the database's match index and matches them.
pub async fn match_packages(db: &VulnDb, packages: &[PackageRef]) -> Result<MatchReport, DbError> {
    Ok(match_packages_timed(db, packages).await?.0)
}

/// [`match_packages`], saying how long each phase took.
pub async fn match_packages_timed(
    db: &VulnDb,
    packages: &[PackageRef],
) -> Result<(MatchReport, PhaseTimes), DbError> {
    let mut times = PhaseTimes::default();
    // The usual case: the index file is current. Match with it while SQLite reads the database's
    // stamp on its own thread, then check the file was current (else rebuild and match again).
    if let Ok(Some(index)) = IndexFile::open(&crate::index::path_for(db.path())) {
        let t = Instant::now();
        let (stamp, report) = tokio::join!(db.current_stamp(), async {
            crate::fastmatch::match_indexed(&index, packages, &mut times)
        });
        let mut torn = false;
        if stamp? == index.stamp {
            match report {
                Ok(report) => {
                    // What the match itself did not count: opening and the stamp.
                    let counted: Duration = times.phases().iter().map(|p| p.1).sum();
                    times.query += t.elapsed().saturating_sub(counted);
                    return Ok((report, times));
                }
                // Torn by a crash (the file is not synced): rebuilt below.
                Err(crate::fastmatch::IndexReadError::Malformed(_)) => torn = true,
                Err(e) => return Err(db.index_error(e)),
            }
        }
        times = PhaseTimes::default();
        if torn {
            let t = Instant::now();
            let index = db.rebuilt_index().await?;
            times.query += t.elapsed();
            return match index {
                Some(index) => {
                    let report = crate::fastmatch::match_indexed(&index, packages, &mut times)
                        .map_err(|e| db.index_error(e))?;
                    Ok((report, times))
                }
                None => Ok((match_packages_reference(db, packages).await?, times)),
            };
        }
    }
    let t = Instant::now();
    let index = db.match_index().await?;
    times.query += t.elapsed();
    let Some(index) = index else {
        return Ok((match_packages_reference(db, packages).await?, times));
    };
    let report = crate::fastmatch::match_indexed(&index, packages, &mut times)
        .map_err(|e| db.index_error(e))?;
    Ok((report, times))
}

/// The straightforward matcher, kept as the reference the match index is checked against: the
/// candidates read from the database tables with SQL and JSON, every `affected` entry compiled
/// and checked with [`CompiledAffected`]. Same report as [`match_packages`], only slower.
pub async fn match_packages_reference(
    db: &VulnDb,
    packages: &[PackageRef],
) -> Result<MatchReport, DbError> {
    let groups = group(packages);
    let mut keys: Vec<(String, String)> = groups
        .iter()
        .map(|g| (g.eco.clone(), g.norm.clone()))
        .collect();
    keys.dedup();
    let mut candidates = db.candidates(&keys).await?;
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
