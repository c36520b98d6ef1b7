//! Versions that are plain lists of numbers, compared element by element with a shorter prefix
//! first: CRAN (`package_version`: numbers separated by `.` or `-`) and Hackage (`Data.Version`:
//! numbers separated by `.`).

use super::VersionError;
use super::num::Num;

/// A list of numbers; the derived order is the lexicographic one both ecosystems use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericVersion(Vec<Num>);

/// Parses numbers separated by any of `seps`.
pub fn parse(
    scheme: &'static str,
    input: &str,
    seps: &[char],
) -> Result<NumericVersion, VersionError> {
    let s = input.trim();
    let mut out = Vec::new();
    for part in s.split(seps) {
        out.push(Num::parse(part).ok_or_else(|| {
            VersionError::new(
                scheme,
                input,
                format!("`{part}` is not a number (expected e.g. 1.2-3)"),
            )
        })?);
    }
    Ok(NumericVersion(out))
}
