//! Matching against the match index ([`crate::index`]): the same OSV algorithm as
//! [`crate::matching`]'s straightforward matcher (which stays the reference: a test checks both
//! give identical reports), over entries borrowed from the index bytes, with every distinct
//! (scheme, version string) parsed once per match however many entries name it.

use crate::index::{self, BlockReadError, Entries, EventKind, IndexFile, Malformed};
use crate::matching::{
    MatchReport, MergeHit, NotEvaluated, PackageRef, PhaseTimes, Verdict, digit_key, group,
    merge_hits,
};
use crate::version::{self, Scheme, Version};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

/// FNV-1a for the interner's short keys (the default SipHash costs more than the parse it saves).
#[derive(Default)]
struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Every (scheme, text) parsed once; `None` where it does not parse.
#[derive(Default)]
struct Interner<'a> {
    map: HashMap<(Scheme, &'a str), Option<u32>, BuildHasherDefault<Fnv>>,
    versions: Vec<Version>,
}

impl<'a> Interner<'a> {
    fn get(&mut self, scheme: Scheme, text: &'a str) -> Option<u32> {
        let versions = &mut self.versions;
        *self.map.entry((scheme, text)).or_insert_with(|| {
            let v = version::parse(scheme, text).ok()?;
            versions.push(v);
            u32::try_from(versions.len() - 1).ok()
        })
    }

    fn v(&self, i: u32) -> &Version {
        &self.versions[i as usize]
    }
}

/// A range's events parsed and sorted (`ok` false where one does not parse: the range is then
/// not evaluated, but its readable fixes still count for the nearest fixed version).
struct Compiled {
    ok: bool,
    events: (usize, usize),
    limits: (usize, usize),
}

/// `None` is the start (`introduced: "0"`).
type Bound<'a> = (Option<u32>, EventKind, &'a str);

fn cmp_bound(iv: &Interner<'_>, a: Option<u32>, b: Option<u32>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => iv.v(x).partial_cmp(iv.v(y)).unwrap_or(Ordering::Equal),
    }
}

struct Ctx<'a> {
    ents: Entries<'a>,
    iv: Interner<'a>,
    compiled: Vec<Compiled>,
    bounds: Vec<Bound<'a>>,
    limits: Vec<u32>,
}

impl<'a> Ctx<'a> {
    fn compile(&mut self) {
        self.compiled.reserve(self.ents.ranges.len());
        for r in &self.ents.ranges {
            let e0 = self.bounds.len();
            let l0 = self.limits.len();
            let mut ok = r.scheme.is_some();
            if let Some(s) = r.scheme {
                for &(kind, text) in &self.ents.events[r.events.0..r.events.1] {
                    match kind {
                        EventKind::Introduced if text == "0" => {
                            self.bounds.push((None, kind, text));
                        }
                        EventKind::Limit if text == "*" => {}
                        EventKind::Limit => match self.iv.get(s, text) {
                            Some(i) => self.limits.push(i),
                            None => ok = false,
                        },
                        _ => match self.iv.get(s, text) {
                            Some(i) => self.bounds.push((Some(i), kind, text)),
                            None => ok = false,
                        },
                    }
                }
            }
            if ok {
                let iv = &self.iv;
                self.bounds[e0..].sort_by(|a, b| cmp_bound(iv, a.0, b.0));
            }
            self.compiled.push(Compiled {
                ok,
                events: (e0, self.bounds.len()),
                limits: (l0, self.limits.len()),
            });
        }
    }

    fn contains(&self, c: &Compiled, v: &Version) -> bool {
        let mut affected = false;
        for &(bound, kind, _) in &self.bounds[c.events.0..c.events.1] {
            let o = match bound {
                None => Ordering::Less,
                Some(b) => self.iv.v(b).partial_cmp(v).unwrap_or(Ordering::Greater),
            };
            if o == Ordering::Greater {
                break;
            }
            match kind {
                EventKind::Introduced => affected = true,
                EventKind::Fixed => affected = false,
                EventKind::LastAffected if o == Ordering::Less => affected = false,
                EventKind::LastAffected | EventKind::Limit => {}
            }
        }
        let limits = &self.limits[c.limits.0..c.limits.1];
        if affected && !limits.is_empty() {
            affected = limits
                .iter()
                .any(|&l| v.partial_cmp(self.iv.v(l)) == Some(Ordering::Less));
        }
        affected
    }

    /// The parses a check of `text` against entry `e` needs, made before evaluating.
    fn warm(&mut self, e: usize, text: &'a str) {
        let ent = self.ents.entries[e];
        for r in ent.ranges.0..ent.ranges.1 {
            if let Some(s) = self.ents.ranges[r].scheme {
                self.iv.get(s, text);
            }
        }
        if let Some(s) = ent.eco_scheme
            && ent.versions.0 != ent.versions.1
        {
            self.iv.get(s, text);
        }
    }

    fn check(&mut self, e: usize, text: &'a str) -> Verdict {
        let ent = self.ents.entries[e];
        let mut evaluated = ent.versions.0 != ent.versions.1;
        for r in ent.ranges.0..ent.ranges.1 {
            let Some(s) = self.ents.ranges[r].scheme else {
                continue;
            };
            if !self.compiled[r].ok {
                continue;
            }
            let Some(v) = self.iv.get(s, text) else {
                continue;
            };
            if self.contains(&self.compiled[r], self.iv.v(v)) {
                return Verdict::Affected;
            }
            evaluated = true;
        }
        let (v0, v1) = ent.versions;
        if self.ents.versions[v0..v1].contains(&text) {
            return Verdict::Affected;
        }
        if let Some(s) = ent.eco_scheme
            && v0 != v1
            && let Some(cur) = self.iv.get(s, text)
        {
            for i in v0..v1 {
                let listed = self.ents.versions[i];
                if digit_key(s, listed).eq(digit_key(s, text))
                    && self
                        .iv
                        .get(s, listed)
                        .is_some_and(|l| self.iv.v(l) == self.iv.v(cur))
                {
                    return Verdict::Affected;
                }
            }
        }
        if evaluated || ent.ranges.0 == ent.ranges.1 {
            Verdict::NotAffected
        } else {
            Verdict::NotEvaluated
        }
    }

    fn nearest_fixed(&mut self, e: usize, text: &'a str) -> Option<(u32, &'a str)> {
        let ent = self.ents.entries[e];
        let mut best: Option<(u32, &'a str)> = None;
        let better = |iv: &Interner<'_>, fv: u32, cur: u32, best: Option<(u32, &str)>| {
            iv.v(fv).partial_cmp(iv.v(cur)) == Some(Ordering::Greater)
                && best.is_none_or(|(b, _)| iv.v(fv).partial_cmp(iv.v(b)) == Some(Ordering::Less))
        };
        for r in ent.ranges.0..ent.ranges.1 {
            let range = self.ents.ranges[r];
            let Some(s) = range.scheme else { continue };
            let Some(cur) = self.iv.get(s, text) else {
                continue;
            };
            let c = &self.compiled[r];
            if c.ok {
                for &(bound, kind, t) in &self.bounds[c.events.0..c.events.1] {
                    if let (Some(fv), EventKind::Fixed) = (bound, kind)
                        && better(&self.iv, fv, cur, best)
                    {
                        best = Some((fv, t));
                    }
                }
            } else {
                for i in range.events.0..range.events.1 {
                    let (kind, t) = self.ents.events[i];
                    if kind == EventKind::Fixed
                        && let Some(fv) = self.iv.get(s, t)
                        && better(&self.iv, fv, cur, best)
                    {
                        best = Some((fv, t));
                    }
                }
            }
        }
        best
    }
}

/// An entry (index) that affects a group, with the nearest fixed version above it.
type Hit<'a> = (usize, Option<(u32, &'a str)>);

/// Why the index could not be used: reading it, or its contents.
#[derive(Debug)]
pub enum IndexReadError {
    Io(std::io::Error),
    Malformed(Malformed),
}

/// Matches `packages` against the index.
pub fn match_indexed(
    index: &IndexFile,
    packages: &[PackageRef],
    times: &mut PhaseTimes,
) -> Result<MatchReport, IndexReadError> {
    let t = Instant::now();
    let groups = group(packages);
    // Groups are sorted by (ecosystem, name, version): a key's groups are consecutive.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        match keys.last_mut() {
            Some((s, e)) if groups[*s].eco == g.eco && groups[*s].norm == g.norm => *e = i + 1,
            _ => keys.push((i, i + 1)),
        }
    }
    times.group += t.elapsed();

    let t = Instant::now();
    let mut blocks = Vec::new();
    let mut block_key = Vec::new();
    for (k, &(s, _)) in keys.iter().enumerate() {
        for b in index.lookup(&groups[s].eco, &groups[s].norm) {
            blocks.push(b);
            block_key.push(k);
        }
    }
    let (buf, places) = index.read_blocks(&blocks).map_err(|e| match e {
        BlockReadError::Io(e) => IndexReadError::Io(e),
        BlockReadError::Malformed(m) => IndexReadError::Malformed(m),
    })?;
    times.query += t.elapsed();

    let t = Instant::now();
    let mut cx = Ctx {
        ents: Entries::default(),
        iv: Interner::default(),
        compiled: Vec::new(),
        bounds: Vec::new(),
        limits: Vec::new(),
    };
    let mut key_entries = vec![(0, 0); keys.len()];
    for (b, &(s, e)) in places.iter().enumerate() {
        let k = block_key[b];
        let g = &groups[keys[k].0];
        if let Some(r) = cx
            .ents
            .decode_block(&buf[s..e], &g.eco, &g.norm)
            .map_err(IndexReadError::Malformed)?
        {
            key_entries[k] = r;
        }
    }
    times.decode += t.elapsed();

    let t = Instant::now();
    cx.compile();
    times.parse_ranges += t.elapsed();

    let t = Instant::now();
    for (k, &(gs, ge)) in keys.iter().enumerate() {
        for g in &groups[gs..ge] {
            for e in key_entries[k].0..key_entries[k].1 {
                cx.warm(e, g.version);
            }
        }
    }
    times.parse_versions += t.elapsed();

    let t = Instant::now();
    let mut hits: Vec<Vec<Hit<'_>>> = vec![Vec::new(); groups.len()];
    let mut not_evaluated = Vec::new();
    for (k, &(gs, ge)) in keys.iter().enumerate() {
        for (gi, g) in groups.iter().enumerate().take(ge).skip(gs) {
            for e in key_entries[k].0..key_entries[k].1 {
                match cx.check(e, g.version) {
                    Verdict::Affected => {
                        let fixed = cx.nearest_fixed(e, g.version);
                        hits[gi].push((e, fixed));
                    }
                    Verdict::NotAffected => {}
                    Verdict::NotEvaluated => not_evaluated.push(NotEvaluated {
                        advisory_id: cx.ents.entries[e].advisory_id.to_string(),
                        package: packages[g.packages[0]].clone(),
                        reason: "only GIT ranges or versions this ecosystem's order cannot read"
                            .into(),
                    }),
                }
            }
        }
    }
    times.evaluate += t.elapsed();

    let t = Instant::now();
    let mut details: HashMap<usize, index::Details> = HashMap::new();
    for &(e, _) in hits.iter().flatten() {
        if let std::collections::hash_map::Entry::Vacant(v) = details.entry(e) {
            v.insert(
                index::decode_details(cx.ents.entries[e].details)
                    .map_err(IndexReadError::Malformed)?,
            );
        }
    }
    times.details += t.elapsed();

    let t = Instant::now();
    let merge: Vec<Vec<MergeHit<'_>>> = hits
        .iter()
        .map(|hs| {
            hs.iter()
                .map(|&(e, fixed)| {
                    let d = &details[&e];
                    MergeHit {
                        id: cx.ents.entries[e].advisory_id,
                        aliases: &d.aliases,
                        summary: d.summary.as_deref(),
                        score: d.score,
                        level: d.level,
                        vector: d.vector.as_deref(),
                        informational: d.informational.as_deref(),
                        fixed: fixed.map(|(v, s)| (cx.iv.v(v), s)),
                    }
                })
                .collect()
        })
        .collect();
    let report = merge_hits(packages, &groups, merge, not_evaluated);
    times.report += t.elapsed();
    Ok(report)
}
