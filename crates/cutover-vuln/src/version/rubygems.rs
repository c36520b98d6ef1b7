//! RubyGems versions ordered as `Gem::Version#<=>` orders them: segments are runs of digits or
//! letters, `-` means `.pre.`, trailing zeros of the numeric head and of the rest are dropped
//! (`canonical_segments`), a letter segment (pre-release) sorts before any number.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Num(Num),
    Str(Box<str>),
}

/// A parsed gem version.
#[derive(Debug, Clone)]
pub struct GemVersion {
    canonical: Vec<Seg>,
}

impl GemVersion {
    /// Whether the version is a pre-release (has a letter segment).
    pub fn is_prerelease(&self) -> bool {
        self.canonical.iter().any(|s| matches!(s, Seg::Str(_)))
    }
}

/// Parses a gem version. Like `Gem::Version` it needs a leading digit and accepts only ASCII
/// letters, digits, `.` and `-` (leniently also letters right after digits, as `1beta`).
pub fn parse(input: &str) -> Result<GemVersion, VersionError> {
    let s = input.trim();
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(VersionError::new(
            "RubyGems",
            input,
            "a gem version starts with a digit (e.g. 1.2.3, 1.0.0.pre1)",
        ));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
    {
        return Err(VersionError::new(
            "RubyGems",
            input,
            format!("`{bad}` is not allowed (only letters, digits, `.` and `-`)"),
        ));
    }
    let replaced = s.replace('-', ".pre.");
    // `scan(/[0-9]+|[a-z]+/i)`
    let mut segs = Vec::new();
    let b = replaced.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            segs.push(Seg::Num(
                Num::parse(&replaced[start..i]).expect("scanned a run of digits"),
            ));
        } else if b[i].is_ascii_alphabetic() {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            segs.push(Seg::Str(replaced[start..i].into()));
        } else {
            i += 1;
        }
    }
    // canonical_segments: split at the first string segment, drop trailing zeros of each part.
    let split = segs
        .iter()
        .position(|s| matches!(s, Seg::Str(_)))
        .unwrap_or(segs.len());
    let mut rest = segs.split_off(split);
    let trim = |v: &mut Vec<Seg>| {
        while matches!(v.last(), Some(Seg::Num(n)) if n.is_zero()) {
            v.pop();
        }
    };
    trim(&mut segs);
    trim(&mut rest);
    segs.extend(rest);
    Ok(GemVersion { canonical: segs })
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Seg::Num(Num::zero());
        let n = self.canonical.len().max(other.canonical.len());
        for i in 0..n {
            let l = self.canonical.get(i).unwrap_or(&zero);
            let r = other.canonical.get(i).unwrap_or(&zero);
            let o = match (l, r) {
                (Seg::Num(a), Seg::Num(b)) => a.cmp(b),
                (Seg::Str(a), Seg::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
                (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for GemVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GemVersion {}
