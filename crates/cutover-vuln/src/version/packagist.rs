//! Packagist (Composer) versions: PHP's `version_compare` on versions as Composer normalises them
//! (a `v`/`V` prefix dropped). `-`, `_` and `+` separate like `.`, a digit/letter transition is a
//! separator too, and the special forms rank `dev < alpha = a < beta = b < RC = rc < # (a number)
//! < pl = p`; other words rank below `dev`. `dev-<branch>` versions therefore sort before releases.

use super::VersionError;
use super::num::{Num, is_digits};
use std::cmp::Ordering;

#[derive(Debug, Clone)]
enum Part {
    Num(Num),
    Word(Box<str>),
}

/// A parsed Packagist version.
#[derive(Debug, Clone)]
pub struct PackagistVersion {
    parts: Vec<Part>,
}

fn canonical_parts(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for c in v.chars() {
        if matches!(c, '.' | '-' | '_' | '+') {
            flush(&mut cur, &mut out);
        } else {
            if let Some(p) = prev
                && p != '.'
                && !matches!(p, '-' | '_' | '+')
                && p.is_ascii_digit() != c.is_ascii_digit()
            {
                flush(&mut cur, &mut out);
            }
            cur.push(c);
        }
        prev = Some(c);
    }
    flush(&mut cur, &mut out);
    out
}

/// `version_compare`'s special-form order; a number weighs as `#`.
fn weight(word: &str) -> i8 {
    const FORMS: [(&str, i8); 10] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("RC", 3),
        ("rc", 3),
        ("#", 4),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS
        .iter()
        .find(|(name, _)| word.starts_with(name))
        .map_or(-1, |(_, w)| *w)
}

fn part_weight(p: &Part) -> i8 {
    match p {
        Part::Num(_) => 4,
        Part::Word(w) => weight(w),
    }
}

/// Parses a Packagist version. Any non-empty string is a version to PHP.
pub fn parse(input: &str) -> Result<PackagistVersion, VersionError> {
    let s = input.trim();
    let s = s
        .strip_prefix('v')
        .or_else(|| s.strip_prefix('V'))
        .unwrap_or(s);
    if s.is_empty() {
        return Err(VersionError::new("Packagist", input, "empty version"));
    }
    let parts = canonical_parts(s)
        .into_iter()
        .map(|p| {
            if is_digits(&p) {
                Part::Num(Num::parse(&p).expect("checked digits"))
            } else {
                Part::Word(p.into())
            }
        })
        .collect();
    Ok(PackagistVersion { parts })
}

fn cmp_parts(a: &[Part], b: &[Part]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Part::Num(m), Part::Num(n)) => m.cmp(n),
            _ => part_weight(x).cmp(&part_weight(y)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    let hash = [Part::Word("#".into())];
    match a.len().cmp(&b.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater => match &a[b.len()] {
            Part::Num(_) => Ordering::Greater,
            Part::Word(_) => cmp_parts(&a[b.len()..], &hash),
        },
        Ordering::Less => match &b[a.len()] {
            Part::Num(_) => Ordering::Less,
            Part::Word(_) => cmp_parts(&hash, &b[a.len()..]),
        },
    }
}

impl Ord for PackagistVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_parts(&self.parts, &other.parts)
    }
}

impl PartialOrd for PackagistVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PackagistVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PackagistVersion {}
