//! NuGet versions ordered as `NuGet.Versioning.VersionComparer` orders them: up to four numbers
//! (missing ones are 0), SemVer 2.0 release labels compared case-insensitively, metadata ignored.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

#[derive(Debug, Clone)]
enum Label {
    Num(Num),
    /// Kept upper-cased: NuGet compares labels with `StringComparer.OrdinalIgnoreCase`.
    Text(Box<str>),
}

/// A parsed NuGet version.
#[derive(Debug, Clone)]
pub struct NuGetVersion {
    nums: [Num; 4],
    labels: Vec<Label>,
}

fn err(input: &str, reason: impl Into<String>) -> VersionError {
    VersionError::new("NuGet", input, reason)
}

/// Parses `N[.N[.N[.N]]][-label(.label)*][+metadata]`.
pub fn parse(input: &str) -> Result<NuGetVersion, VersionError> {
    let s = input.trim();
    let s = s.split_once('+').map_or(s, |(v, _)| v);
    let (core, label) = match s.split_once('-') {
        Some((c, l)) => (c, Some(l)),
        None => (s, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 4 {
        return Err(err(
            input,
            "at most four numbers (major.minor.patch.revision)",
        ));
    }
    let mut nums: [Num; 4] = Default::default();
    for (i, p) in parts.iter().enumerate() {
        nums[i] = Num::parse(p).ok_or_else(|| {
            err(
                input,
                format!("`{p}` is not a number (expected e.g. 1.2.3)"),
            )
        })?;
    }
    let mut labels = Vec::new();
    if let Some(l) = label {
        for id in l.split('.') {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(err(
                    input,
                    format!("release label `{id}` is not [0-9A-Za-z-]+"),
                ));
            }
            labels.push(match Num::parse(id) {
                Some(n) => Label::Num(n),
                None => Label::Text(id.to_ascii_uppercase().into()),
            });
        }
    }
    Ok(NuGetVersion { nums, labels })
}

impl Ord for NuGetVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nums.cmp(&other.nums).then_with(|| {
            match (self.labels.is_empty(), other.labels.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.labels.iter().zip(&other.labels) {
                        let o = match (a, b) {
                            (Label::Num(x), Label::Num(y)) => x.cmp(y),
                            (Label::Num(_), Label::Text(_)) => Ordering::Less,
                            (Label::Text(_), Label::Num(_)) => Ordering::Greater,
                            (Label::Text(x), Label::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    self.labels.len().cmp(&other.labels.len())
                }
            }
        })
    }
}

impl PartialOrd for NuGetVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for NuGetVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for NuGetVersion {}
