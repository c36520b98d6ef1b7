//! RPM versions (Red Hat, Rocky, AlmaLinux, SUSE, ...) ordered by `rpmvercmp` on
//! `[epoch:]version[-release]` (a missing epoch is 0; a non-numeric "epoch" is part of the version).

use super::VersionError;
use std::cmp::Ordering;

/// A parsed RPM EVR.
#[derive(Debug, Clone)]
pub struct RpmVersion {
    epoch: Box<str>,
    version: Box<str>,
    release: Box<str>,
}

/// Parses an EVR; any non-empty string is one.
pub fn parse(input: &str) -> Result<RpmVersion, VersionError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(VersionError::new("RPM", input, "empty version"));
    }
    let (epoch, vr) = match s.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e, r),
        _ => ("0", s),
    };
    let (version, release) = match vr.split_once('-') {
        // The release keeps its separator: "1.0-" has a (non-alphanumeric) release, "1.0" none.
        Some((v, r)) => (v.to_string(), format!("-{r}")),
        None => (vr.to_string(), String::new()),
    };
    Ok(RpmVersion {
        epoch: epoch.into(),
        version: version.into(),
        release: release.into(),
    })
}

/// `rpmvercmp`, with the empty string older than any non-empty one.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let skip = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && skip(a[i]) {
            i += 1;
        }
        while j < b.len() && skip(b[j]) {
            j += 1;
        }
        let (at, bt) = (a.get(i) == Some(&b'~'), b.get(j) == Some(&b'~'));
        if at && bt {
            i += 1;
            j += 1;
            continue;
        }
        if at {
            return Ordering::Less;
        }
        if bt {
            return Ordering::Greater;
        }
        let (ac, bc) = (a.get(i) == Some(&b'^'), b.get(j) == Some(&b'^'));
        if ac && bc {
            i += 1;
            j += 1;
            continue;
        }
        if ac {
            return if j == b.len() {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        if bc {
            return if i == a.len() {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if i == a.len() || j == b.len() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let run = |s: &[u8], k: &mut usize| {
            let start = *k;
            while *k < s.len()
                && (if numeric {
                    s[*k].is_ascii_digit()
                } else {
                    s[*k].is_ascii_alphabetic()
                })
            {
                *k += 1;
            }
            start
        };
        let (sa, sb) = (run(a, &mut i), run(b, &mut j));
        let (mut x, mut y) = (&a[sa..i], &b[sb..j]);
        if y.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        if numeric {
            while x.first() == Some(&b'0') {
                x = &x[1..];
            }
            while y.first() == Some(&b'0') {
                y = &y[1..];
            }
            match x.len().cmp(&y.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(&self.epoch, &other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| rpmvercmp(&self.release, &other.release))
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RpmVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RpmVersion {}
