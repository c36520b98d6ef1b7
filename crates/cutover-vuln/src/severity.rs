//! Severity: CVSS v3.0/v3.1/v4.0 base scores (RustSec's `cvss` crate, which implements the 3.1
//! formula and the 4.0 macro-vector lookup of the FIRST calculator) and qualitative levels.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Qualitative severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No usable CVSS vector.
    Unknown,
    /// Score 0.0.
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    /// The CVSS qualitative rating of a base score.
    pub fn from_score(score: f64) -> Level {
        if score >= 9.0 {
            Level::Critical
        } else if score >= 7.0 {
            Level::High
        } else if score >= 4.0 {
            Level::Medium
        } else if score > 0.0 {
            Level::Low
        } else {
            Level::None
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unknown => "unknown",
            Level::None => "none",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "unknown" => Level::Unknown,
            "none" => Level::None,
            "low" => Level::Low,
            "medium" | "moderate" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            other => {
                return Err(format!(
                    "unknown severity level `{other}` (expected low, medium, high or critical)"
                ));
            }
        })
    }
}

/// A computed base score with the vector it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0.0 ..= 10.0, one decimal.
    pub value: f64,
    pub level: Level,
    /// The vector string as given.
    pub vector: String,
}

/// Scores an OSV severity entry (`type`, `score`). CVSS v2 and non-CVSS types give `None`, as do
/// vectors that do not parse.
pub fn score(kind: &str, vector: &str) -> Option<Score> {
    if !matches!(kind, "CVSS_V3" | "CVSS_V4") {
        return None;
    }
    let vector = vector.trim();
    // The parser tolerates missing base metrics (and then scores them as 0); a vector without
    // all of them has no defined base score.
    let keys: Vec<&str> = vector
        .split('/')
        .skip(1)
        .filter_map(|m| m.split_once(':').map(|(k, _)| k))
        .collect();
    let required: &[&str] = if vector.starts_with("CVSS:4.0/") {
        &[
            "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
        ]
    } else {
        &["AV", "AC", "PR", "UI", "S", "C", "I", "A"]
    };
    if !required.iter().all(|r| keys.contains(r)) {
        return None;
    }
    let parsed = cvss::Cvss::from_str(vector).ok()?;
    let value = parsed.score();
    Some(Score {
        value,
        level: Level::from_score(value),
        vector: vector.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_known_vectors() {
        // Reference values from the FIRST calculators.
        let cases = [
            (
                "CVSS_V3",
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                9.8,
                Level::Critical,
            ),
            (
                "CVSS_V3",
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
                7.5,
                Level::High,
            ),
            (
                "CVSS_V3",
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
                6.1,
                Level::Medium,
            ),
            (
                "CVSS_V3",
                "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
                1.8,
                Level::Low,
            ),
            (
                "CVSS_V4",
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                9.3,
                Level::Critical,
            ),
            (
                "CVSS_V4",
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N",
                5.1,
                Level::Medium,
            ),
        ];
        for (kind, vector, value, level) in cases {
            let s = score(kind, vector).unwrap();
            assert_eq!((s.value, s.level), (value, level), "{vector}");
        }
        assert_eq!(score("CVSS_V3", "CVSS:3.1/AV:N"), None);
        assert_eq!(score("Ubuntu", "high"), None);
    }
}
