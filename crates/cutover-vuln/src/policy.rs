//! The `[vulns]` policy: `fail_on` a severity level and `ignore` entries with an expiry date.
//! A finding at or above the level that no live ignore covers is a violation; so is a finding
//! covered only by an expired ignore (the exception lapsed and must be renewed or fixed).

use crate::matching::Finding;
use crate::severity::Level;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The policy as configured (`[vulns]` in `cutover.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Fail on findings of this level or above. Findings without a usable CVSS score
    /// (`unknown`) fail too: an unscored advisory is not known to be harmless.
    #[serde(default)]
    pub fail_on: Option<Level>,
    #[serde(default)]
    pub ignore: Vec<Ignore>,
}

/// An accepted risk: an advisory id (or one of its aliases), until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    pub id: String,
    /// Last day the ignore holds (inclusive); none: for good. A TOML date or a `YYYY-MM-DD` string.
    #[serde(default, deserialize_with = "date_opt")]
    pub until: Option<NaiveDate>,
    pub reason: String,
}

fn date_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Toml(toml::value::Datetime),
    }
    let text = match Option::<Repr>::deserialize(d)? {
        None => return Ok(None),
        Some(Repr::Text(s)) => s,
        Some(Repr::Toml(t)) => t.to_string(),
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| {
            serde::de::Error::custom(format!("`until = {text}`: {e} (expected YYYY-MM-DD)"))
        })
}

/// Why a finding fails the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// At or above `fail_on` and not ignored.
    Severity {
        finding: usize,
        level: Level,
        threshold: Level,
    },
    /// Covered by an ignore whose `until` has passed.
    ExpiredIgnore {
        finding: usize,
        ignore_id: String,
        until: NaiveDate,
        reason: String,
    },
}

/// The gate's verdict over a set of findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// Findings (indexes) silenced by a live ignore, with its reason.
    pub ignored: Vec<(usize, String)>,
    /// Ignore entries that match no finding (candidates for removal).
    pub unused_ignores: Vec<String>,
}

impl Outcome {
    /// Whether the gate passes.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

fn covers(ignore: &Ignore, f: &Finding) -> bool {
    ignore.id.eq_ignore_ascii_case(&f.id)
        || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(&ignore.id))
}

/// Applies `policy` to `findings` on `today`. Informational findings (RustSec unmaintained,
/// unsound) are warnings and never fail the gate.
pub fn evaluate(policy: &Policy, findings: &[Finding], today: NaiveDate) -> Outcome {
    let mut out = Outcome::default();
    for (i, f) in findings.iter().enumerate() {
        let applicable: Vec<&Ignore> = policy.ignore.iter().filter(|ig| covers(ig, f)).collect();
        if let Some(live) = applicable
            .iter()
            .find(|ig| ig.until.is_none_or(|u| u >= today))
        {
            out.ignored.push((i, live.reason.clone()));
            continue;
        }
        if let Some(expired) = applicable.first() {
            out.violations.push(Violation::ExpiredIgnore {
                finding: i,
                ignore_id: expired.id.clone(),
                until: expired.until.expect("not live, so it has an end date"),
                reason: expired.reason.clone(),
            });
            continue;
        }
        if f.informational.is_some() {
            continue;
        }
        if let Some(threshold) = policy.fail_on
            && (f.level >= threshold || f.level == Level::Unknown)
        {
            out.violations.push(Violation::Severity {
                finding: i,
                level: f.level,
                threshold,
            });
        }
    }
    for ig in &policy.ignore {
        if !findings.iter().any(|f| covers(ig, f)) {
            out.unused_ignores.push(ig.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::PackageRef;

    fn finding(id: &str, aliases: &[&str], level: Level, informational: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            summary: None,
            score: None,
            level,
            vector: None,
            package: PackageRef {
                ecosystem: "npm".into(),
                name: "x".into(),
                version: "1.0.0".into(),
            },
            fixed: None,
            informational: informational.map(str::to_string),
            packages: vec![0],
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 9, d).unwrap()
    }

    #[test]
    fn fail_on_ignore_and_expiry() {
        let policy: Policy = toml::from_str(
            r#"
            fail_on = "high"
            ignore = [
              { id = "CVE-2026-1", until = 2026-09-10, reason = "not reachable" },
              { id = "GHSA-old", until = 2026-08-01, reason = "waiting for upstream" },
              { id = "GHSA-gone", reason = "stale" },
            ]
            "#,
        )
        .unwrap();
        let findings = [
            finding("GHSA-a", &["CVE-2026-1"], Level::Critical, None),
            finding("GHSA-old", &[], Level::Low, None),
            finding("GHSA-b", &[], Level::High, None),
            finding("GHSA-c", &[], Level::Medium, None),
            finding("GHSA-d", &[], Level::Unknown, None),
            finding("RUSTSEC-1", &[], Level::Unknown, Some("unmaintained")),
        ];
        let out = evaluate(&policy, &findings, day(10));
        assert_eq!(out.ignored, vec![(0, "not reachable".to_string())]);
        assert_eq!(
            out.violations,
            vec![
                Violation::ExpiredIgnore {
                    finding: 1,
                    ignore_id: "GHSA-old".into(),
                    until: day(1).with_month(8).unwrap(),
                    reason: "waiting for upstream".into()
                },
                Violation::Severity {
                    finding: 2,
                    level: Level::High,
                    threshold: Level::High
                },
                Violation::Severity {
                    finding: 4,
                    level: Level::Unknown,
                    threshold: Level::High
                },
            ]
        );
        assert_eq!(out.unused_ignores, vec!["GHSA-gone".to_string()]);
        assert!(!out.passed());
        // The day after `until`, the first ignore has expired too.
        let later = evaluate(&policy, &findings, day(11));
        assert!(matches!(
            later.violations[0],
            Violation::ExpiredIgnore { finding: 0, .. }
        ));
        // No threshold: only expired ignores fail.
        let lax = Policy {
            fail_on: None,
            ..policy
        };
        assert_eq!(evaluate(&lax, &findings, day(10)).violations.len(), 1);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Policy>("fail_on = \"high\"\nignored = []").unwrap_err();
        assert!(err.to_string().contains("ignored"), "{err}");
        assert!(toml::from_str::<Policy>("fail_on = \"severe\"").is_err());
    }

    use chrono::Datelike;
}
