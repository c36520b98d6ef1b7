//! RustSec advisory-db advisories (Markdown with a ```` ```toml ```` front-matter block) converted
//! to OSV: one `crates.io` package, a SEMVER range that is the complement of the `patched` and
//! `unaffected` version requirements, the title as summary, `cvss` as severity.

use crate::osv::{Advisory, Affected, Event, Package, Range, Reference, Severity};
use crate::version::semver::{self, Flavor, SemVer};
use serde::Deserialize;
use std::cmp::Ordering;

#[derive(Debug, Deserialize)]
struct FrontMatter {
    advisory: AdvisoryMeta,
    #[serde(default)]
    versions: Versions,
}

#[derive(Debug, Deserialize)]
struct AdvisoryMeta {
    id: String,
    package: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    cvss: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    informational: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

/// Which RustSec collection a file belongs to: `crates/` (crates.io packages) or `rust/` (the
/// toolchain: std, cargo, rustdoc, which no Cargo.lock entry is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Crates,
    Rust,
}

/// The OSV ecosystem given to advisories of the `rust/` collection: not `crates.io`, so that the
/// toolchain's `cargo` is never confused with the `cargo` crate.
pub const TOOLCHAIN_ECOSYSTEM: &str = "RustToolchain";

/// Converts one RustSec advisory file's text to OSV.
pub fn to_osv(text: &str, collection: Collection) -> Result<Advisory, String> {
    let text = text.trim_start_matches('\u{feff}');
    let body = text
        .trim_start()
        .strip_prefix("```toml")
        .ok_or("expected the file to start with a ```toml front-matter block")?;
    let end = body
        .find("\n```")
        .ok_or("the ```toml front-matter block is not closed with ```")?;
    let (toml_text, rest) = (&body[..end], &body[end + 4..]);
    let fm: FrontMatter =
        toml::from_str(toml_text).map_err(|e| format!("bad TOML front matter: {e}"))?;
    let markdown = rest.trim_start_matches('`').trim();
    let (summary, details) = match markdown.strip_prefix("# ") {
        Some(m) => match m.split_once('\n') {
            Some((title, rest)) => (Some(title.trim().to_string()), rest.trim().to_string()),
            None => (Some(m.trim().to_string()), String::new()),
        },
        None => (None, markdown.to_string()),
    };
    let a = fm.advisory;
    let date = a.date.map(|d| format!("{d}T00:00:00Z"));
    let events = affected_events(&fm.versions.patched, &fm.versions.unaffected)?;
    let severity = a
        .cvss
        .iter()
        .map(|v| Severity {
            kind: if v.starts_with("CVSS:4") {
                "CVSS_V4".into()
            } else {
                "CVSS_V3".into()
            },
            score: v.clone(),
        })
        .collect();
    let mut references: Vec<Reference> = a
        .url
        .iter()
        .map(|u| Reference {
            kind: "REPORT".into(),
            url: u.clone(),
        })
        .collect();
    references.extend(a.references.iter().map(|u| Reference {
        kind: "WEB".into(),
        url: u.clone(),
    }));
    references.push(Reference {
        kind: "ADVISORY".into(),
        url: format!("https://rustsec.org/advisories/{}.html", a.id),
    });
    let (ecosystem, purl) = match collection {
        Collection::Crates => ("crates.io", Some(format!("pkg:cargo/{}", a.package))),
        Collection::Rust => (TOOLCHAIN_ECOSYSTEM, None),
    };
    let mut database_specific = serde_json::Map::new();
    if let Some(i) = &a.informational {
        database_specific.insert("informational".into(), i.clone().into());
    }
    if !a.categories.is_empty() {
        database_specific.insert("categories".into(), a.categories.clone().into());
    }
    Ok(Advisory {
        schema_version: Some("1.7.0".into()),
        id: a.id,
        modified: date.clone().unwrap_or_default(),
        published: date,
        withdrawn: a.withdrawn.map(|d| format!("{d}T00:00:00Z")),
        aliases: a.aliases,
        related: a.related,
        summary,
        details: (!details.is_empty()).then_some(details),
        severity,
        affected: vec![Affected {
            package: Some(Package {
                ecosystem: ecosystem.into(),
                name: a.package,
                purl,
            }),
            severity: Vec::new(),
            ranges: vec![Range {
                kind: "SEMVER".into(),
                repo: None,
                events,
            }],
            versions: Vec::new(),
        }],
        references,
        database_specific: (!database_specific.is_empty())
            .then(|| serde_json::Value::Object(database_specific)),
    })
}

/// A point on the version line; `after` marks "just above `v`" (from `> v` / `<= v`).
#[derive(Debug, Clone)]
struct Point {
    v: SemVer,
    text: String,
    after: bool,
}

impl Point {
    fn at(text: &str) -> Result<Point, String> {
        Ok(Point {
            v: semver::parse(text, Flavor::IgnoreBuild).map_err(|e| e.to_string())?,
            text: text.to_string(),
            after: false,
        })
    }
    fn after(text: &str) -> Result<Point, String> {
        Ok(Point {
            after: true,
            ..Point::at(text)?
        })
    }
    /// The version that starts the interval, as OSV can only say "from v inclusive": the
    /// immediate successor of `v` when `after` (`1.2.3` → `1.2.4-0`, `1.0.0-a` → `1.0.0-a.0`).
    fn introduced_text(&self) -> String {
        if !self.after {
            return self.text.clone();
        }
        if self.v.pre.is_empty() {
            let [ma, mi, pa] = &self.v.core;
            let next = bump(pa.as_str());
            format!("{ma}.{mi}.{next}-0")
        } else {
            format!("{}.0", self.text.split('+').next().unwrap_or(&self.text))
        }
    }
}

fn bump(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    let mut i = out.len();
    loop {
        if i == 0 {
            out.insert(0, b'1');
            break;
        }
        i -= 1;
        if out[i] == b'9' {
            out[i] = b'0';
        } else {
            out[i] += 1;
            break;
        }
    }
    String::from_utf8(out).expect("ASCII digits")
}

fn cmp_points(a: &Point, b: &Point) -> Ordering {
    a.v.cmp(&b.v).then(a.after.cmp(&b.after))
}

/// A half-open interval [lo, hi) on the version line; `None` is unbounded.
#[derive(Debug, Clone)]
struct Interval {
    lo: Option<Point>,
    hi: Option<Point>,
}

fn cmp_lo(a: &Option<Point>, b: &Option<Point>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_points(x, y),
    }
}

fn cmp_hi(a: &Option<Point>, b: &Option<Point>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => cmp_points(x, y),
    }
}

/// Fills a partial version (`1`, `1.2`) to three components and says how many were given.
fn complete(v: &str) -> Result<(String, usize), String> {
    let core_end = v.find(['-', '+']).unwrap_or(v.len());
    let given = v[..core_end].split('.').count();
    let mut s = v[..core_end].to_string();
    for _ in given..3 {
        s.push_str(".0");
    }
    s.push_str(&v[core_end..]);
    semver::parse(&s, Flavor::IgnoreBuild).map_err(|e| e.to_string())?;
    Ok((s, given))
}

/// The exclusive upper bound of `^v`/`~v`/`=v` for a version with `given` components.
fn upper_of(v: &SemVer, given: usize, caret: bool) -> String {
    let n = |i: usize| v.core[i].as_str().to_string();
    let zero = |i: usize| v.core[i].is_zero();
    if caret {
        if !zero(0) || given == 1 {
            format!("{}.0.0-0", bump(&n(0)))
        } else if !zero(1) || given == 2 {
            format!("0.{}.0-0", bump(&n(1)))
        } else {
            format!("0.0.{}-0", bump(&n(2)))
        }
    } else {
        match given {
            1 => format!("{}.0.0-0", bump(&n(0))),
            2 => format!("{}.{}.0-0", n(0), bump(&n(1))),
            _ => format!("{}.{}.{}-0", n(0), n(1), bump(&n(2))),
        }
    }
}

/// Parses one Cargo version requirement (`>= 1.2.3, < 1.4`) into an interval.
fn requirement(req: &str) -> Result<Interval, String> {
    let mut iv = Interval { lo: None, hi: None };
    let req = req.trim();
    if req == "*" {
        return Ok(iv);
    }
    for comp in req.split(',') {
        let comp = comp.trim();
        let (op, ver) = [">=", "<=", ">", "<", "=", "^", "~"]
            .iter()
            .find_map(|op| comp.strip_prefix(op).map(|v| (*op, v.trim())))
            .unwrap_or(("^", comp));
        if ver.is_empty() {
            return Err(format!(
                "version requirement `{req}` has an operator without a version"
            ));
        }
        let (full, given) =
            complete(ver).map_err(|e| format!("version requirement `{req}`: {e}"))?;
        let p = Point::at(&full)?;
        let (lo, hi) = match op {
            ">=" => (Some(p), None),
            ">" if given < 3 => (Some(Point::at(&upper_of(&p.v, given, false))?), None),
            ">" => (Some(Point::after(&full)?), None),
            "<" => (None, Some(p)),
            "<=" if given < 3 => (None, Some(Point::at(&upper_of(&p.v, given, false))?)),
            "<=" => (None, Some(Point::after(&full)?)),
            "=" if given < 3 => (
                Some(p.clone()),
                Some(Point::at(&upper_of(&p.v, given, false))?),
            ),
            "=" => (Some(p), Some(Point::after(&full)?)),
            "~" => {
                let hi = upper_of(&p.v, given.min(2), false);
                (Some(p), Some(Point::at(&hi)?))
            }
            _ => {
                let hi = upper_of(&p.v, given, true);
                (Some(p), Some(Point::at(&hi)?))
            }
        };
        if let Some(lo) = lo
            && cmp_lo(&Some(lo.clone()), &iv.lo) == Ordering::Greater
        {
            iv.lo = Some(lo);
        }
        if let Some(hi) = hi
            && cmp_hi(&Some(hi.clone()), &iv.hi) == Ordering::Less
        {
            iv.hi = Some(hi);
        }
    }
    Ok(iv)
}

/// The OSV events for "everything not in `patched` or `unaffected`".
pub fn affected_events(patched: &[String], unaffected: &[String]) -> Result<Vec<Event>, String> {
    let mut safe: Vec<Interval> = patched
        .iter()
        .chain(unaffected)
        .map(|r| requirement(r))
        .collect::<Result<_, _>>()?;
    safe.retain(|iv| match (&iv.lo, &iv.hi) {
        (Some(l), Some(h)) => cmp_points(l, h) == Ordering::Less,
        _ => true,
    });
    safe.sort_by(|a, b| cmp_lo(&a.lo, &b.lo));
    // Walk the sorted safe intervals; the gaps between them are affected.
    let mut events = Vec::new();
    let mut cursor: Option<Option<Point>> = Some(None); // Some(None): -inf, None: +inf reached
    for iv in &safe {
        let Some(start) = &cursor else { break };
        // A gap exists if the interval starts above the cursor.
        if cmp_lo(&iv.lo, start) == Ordering::Greater {
            events.push(match start {
                None => Event::Introduced("0".into()),
                Some(p) => Event::Introduced(p.introduced_text()),
            });
            let end = iv.lo.as_ref().expect("above the cursor, so bounded");
            events.push(if end.after {
                Event::LastAffected(end.text.clone())
            } else {
                Event::Fixed(end.text.clone())
            });
        }
        // Advance the cursor to the furthest end seen.
        let new_end = match (&iv.hi, start) {
            (None, _) => None,
            (Some(h), None) => Some(Some(h.clone())),
            (Some(h), Some(s)) if cmp_points(h, s) == Ordering::Greater => Some(Some(h.clone())),
            (Some(_), Some(s)) => Some(Some(s.clone())),
        };
        cursor = new_end;
    }
    if let Some(start) = cursor {
        events.push(match start {
            None => Event::Introduced("0".into()),
            Some(p) => Event::Introduced(p.introduced_text()),
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(patched: &[&str], unaffected: &[&str]) -> Vec<Event> {
        let p: Vec<String> = patched.iter().map(|s| s.to_string()).collect();
        let u: Vec<String> = unaffected.iter().map(|s| s.to_string()).collect();
        affected_events(&p, &u).unwrap()
    }

    #[test]
    fn converts_version_requirements_to_events() {
        use Event::*;
        let s = |x: &str| x.to_string();
        assert_eq!(ev(&[], &[]), vec![Introduced(s("0"))]);
        assert_eq!(
            ev(&[">= 0.9.1"], &[]),
            vec![Introduced(s("0")), Fixed(s("0.9.1"))]
        );
        assert_eq!(
            ev(&[">= 1.2.0"], &["< 1.0.0"]),
            vec![Introduced(s("1.0.0")), Fixed(s("1.2.0"))]
        );
        assert_eq!(
            ev(&[">= 0.2.5, < 0.3.0", ">= 0.3.2"], &[]),
            vec![
                Introduced(s("0")),
                Fixed(s("0.2.5")),
                Introduced(s("0.3.0")),
                Fixed(s("0.3.2"))
            ]
        );
        assert_eq!(
            ev(&["^1.2.3", ">= 2.0.1"], &[]),
            vec![
                Introduced(s("0")),
                Fixed(s("1.2.3")),
                Introduced(s("2.0.0-0")),
                Fixed(s("2.0.1"))
            ]
        );
        assert_eq!(
            ev(&["> 1.2.3"], &[]),
            vec![Introduced(s("0")), LastAffected(s("1.2.3"))]
        );
        assert_eq!(
            ev(&[">= 2.0.0"], &["<= 1.0.0"]),
            vec![Introduced(s("1.0.1-0")), Fixed(s("2.0.0"))]
        );
        assert_eq!(
            ev(&[">= 1.0"], &[]),
            vec![Introduced(s("0")), Fixed(s("1.0.0"))]
        );
        assert_eq!(ev(&["*"], &[]), vec![]);
        assert!(affected_events(&[s(">= x")], &[]).is_err());
    }
}
