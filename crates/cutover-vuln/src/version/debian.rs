//! Debian (and Ubuntu) versions ordered as dpkg orders them: `[epoch:]upstream[-revision]`, each
//! part compared with `verrevcmp` (`~` before everything, even the end; letters before other
//! symbols; digit runs numerically).

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

/// A parsed Debian version.
#[derive(Debug, Clone)]
pub struct DebVersion {
    epoch: Num,
    upstream: Box<str>,
    revision: Box<str>,
}

fn err(input: &str, reason: impl Into<String>) -> VersionError {
    VersionError::new("Debian", input, reason)
}

/// Parses `[epoch:]upstream_version[-debian_revision]` (Debian Policy §5.6.12).
pub fn parse(input: &str) -> Result<DebVersion, VersionError> {
    let s = input.trim();
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) => (
            Num::parse(e).ok_or_else(|| err(input, format!("epoch `{e}` is not a number")))?,
            r,
        ),
        None => (Num::zero(), s),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err(err(input, "empty upstream version"));
    }
    let ok =
        |c: char, extra: &str| c.is_ascii_alphanumeric() || ".+~".contains(c) || extra.contains(c);
    if let Some(c) = upstream.chars().find(|c| !ok(*c, "-")) {
        return Err(err(
            input,
            format!("`{c}` is not allowed in the upstream version"),
        ));
    }
    if let Some(c) = revision.chars().find(|c| !ok(*c, "")) {
        return Err(err(
            input,
            format!("`{c}` is not allowed in the Debian revision"),
        ));
    }
    Ok(DebVersion {
        epoch,
        upstream: upstream.into(),
        revision: revision.into(),
    })
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        let mut first_diff = Ordering::Equal;
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}
