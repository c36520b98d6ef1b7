//! The vulnerability and license gates over the bill of materials recorded with the release.
//!
//! The release record keeps its BOM (CycloneDX JSON) but no policy verdict, so both policies are
//! evaluated here from the configuration of now: the license policy from the BOM alone, the
//! vulnerability policy from the BOM scanned against the local advisory database when there is
//! one (today's advisories), else from the scan stored with the release (`Release::vulns`).

use std::path::Path;

use chrono::{DateTime, Utc};
use cutover_bom::Bom;
use cutover_bom::policy::{LicensePolicy, PackageException, Severity, UnknownLicense};
use cutover_config::Config;
use cutover_store::Release;
use cutover_vuln::matching::{Finding, PackageRef};
use cutover_vuln::policy::{Ignore, Policy, Violation};
use cutover_vuln::severity::Level;
use serde_json::Value;

use crate::{GateError, GateResult, LICENSES, VULNERABILITIES, and_list};

/// The release's BOM, or why there is none to check.
fn bom(release: &Release) -> Result<Bom, String> {
    let Some(json) = &release.bom else {
        return Err(format!(
            "release {} has no recorded bill of materials",
            release.version
        ));
    };
    Bom::from_cyclonedx_json(&json.to_string()).map_err(|e| {
        format!(
            "the bill of materials of release {} cannot be read: {e}",
            release.version
        )
    })
}

/// Lists at most a few items, then says how many more.
fn some(items: Vec<String>) -> String {
    const SHOWN: usize = 3;
    let n = items.len();
    if n <= SHOWN {
        return and_list(&items);
    }
    format!("{} and {} more", items[..SHOWN].join(", "), n - SHOWN)
}

pub(crate) fn license_policy(c: &Config) -> LicensePolicy {
    LicensePolicy {
        allow: c.licenses.allow.clone(),
        exceptions: c
            .licenses
            .exceptions
            .iter()
            .map(|e| PackageException {
                name: e.package.clone(),
                version: e.version.clone(),
                allow: e.allow.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        unknown: match c.licenses.unknown {
            cutover_config::UnknownLicense::Allow => UnknownLicense::Allow,
            cutover_config::UnknownLicense::Warn => UnknownLicense::Warn,
            cutover_config::UnknownLicense::Deny => UnknownLicense::Deny,
        },
        include_dev: false,
    }
}

pub(crate) fn licenses(config: &Config, release: &Release) -> GateResult {
    if config.licenses.allow.is_empty() {
        return GateResult::open(LICENSES, "no license policy (`[licenses] allow` is empty)");
    }
    let bom = match bom(release) {
        Ok(b) => b,
        Err(why) => {
            return GateResult::hold(
                LICENSES,
                format!("{why}: the license policy cannot be checked"),
                None,
            );
        }
    };
    let violations = cutover_bom::policy::check(&bom, &license_policy(config));
    let (errors, warnings): (Vec<_>, Vec<_>) = violations
        .iter()
        .partition(|v| v.severity == Severity::Error);
    let describe = |v: &&cutover_bom::Violation| format!("{}@{} ({})", v.package, v.version, v.why);
    let warned = if warnings.is_empty() {
        String::new()
    } else {
        format!(
            "; warnings: {}",
            some(warnings.iter().map(describe).collect())
        )
    };
    if errors.is_empty() {
        return GateResult::open(
            LICENSES,
            format!(
                "{} component{} pass{} the license policy{warned}",
                bom.components.len(),
                if bom.components.len() == 1 { "" } else { "s" },
                if bom.components.len() == 1 { "es" } else { "" },
            ),
        );
    }
    GateResult::hold(
        LICENSES,
        format!(
            "{} component{} the license policy: {}{warned}",
            errors.len(),
            if errors.len() == 1 {
                " breaks"
            } else {
                "s break"
            },
            some(errors.iter().map(describe).collect())
        ),
        None,
    )
}

pub(crate) fn vuln_policy(c: &Config) -> Policy {
    use cutover_config::Severity as S;
    Policy {
        fail_on: match c.vulns.fail_on {
            S::None => None,
            S::Low => Some(Level::Low),
            S::Medium => Some(Level::Medium),
            S::High => Some(Level::High),
            S::Critical => Some(Level::Critical),
        },
        ignore: c
            .vulns
            .ignore
            .iter()
            .map(|ig| Ignore {
                id: ig.id.clone(),
                until: ig.until.and_then(|d| {
                    chrono::NaiveDate::from_ymd_opt(
                        i32::from(d.year),
                        u32::from(d.month),
                        u32::from(d.day),
                    )
                }),
                reason: ig.reason.clone(),
            })
            .collect(),
    }
}

pub(crate) async fn vulnerabilities(
    config: &Config,
    release: &Release,
    now: DateTime<Utc>,
    db: Option<&Path>,
) -> Result<GateResult, GateError> {
    let policy = vuln_policy(config);
    if policy.fail_on.is_none() {
        return Ok(GateResult::open(
            VULNERABILITIES,
            "no vulnerability policy (`[vulns] fail_on = \"none\"`)",
        ));
    }
    let Some(path) = db.filter(|p| p.is_file()) else {
        // No database to scan with now: judge the findings stored with the release, if any.
        let Some(stored) = &release.vulns else {
            return Ok(GateResult::open(
                VULNERABILITIES,
                "not evaluated: no vulnerability database (`cutover vulns import PATH` creates one)",
            ));
        };
        let Some(findings) = stored_findings(stored) else {
            return Ok(GateResult::hold(
                VULNERABILITIES,
                format!(
                    "the vulnerability scan stored with release {} cannot be read",
                    release.version
                ),
                None,
            ));
        };
        let scanned_at = stored
            .get("scanned_at")
            .and_then(Value::as_str)
            .unwrap_or("release time");
        let checked = stored.get("checked").and_then(Value::as_u64).unwrap_or(0);
        return Ok(verdict(
            &policy,
            &findings,
            now,
            release,
            &format!("{} checked at {scanned_at}", components(checked)),
        ));
    };
    let bom = match bom(release) {
        Ok(b) => b,
        Err(why) => {
            return Ok(GateResult::hold(
                VULNERABILITIES,
                format!("{why}: the vulnerability policy cannot be checked"),
                None,
            ));
        }
    };
    let vuln_err = |source| GateError::VulnDb {
        path: path.to_path_buf(),
        source,
    };
    let db = cutover_vuln::db::VulnDb::open(path)
        .await
        .map_err(vuln_err)?;
    let report = cutover_vuln::bomscan::scan(&db, &bom).await;
    db.close().await;
    let report = report.map_err(vuln_err)?;
    let findings: Vec<_> = report.findings.iter().map(|f| f.finding.clone()).collect();
    Ok(verdict(
        &policy,
        &findings,
        now,
        release,
        &format!("{} checked", components(report.checked as u64)),
    ))
}

fn verdict(
    policy: &Policy,
    findings: &[Finding],
    now: DateTime<Utc>,
    release: &Release,
    checked: &str,
) -> GateResult {
    let outcome = cutover_vuln::policy::evaluate(policy, findings, now.date_naive());
    let threshold = policy.fail_on.map(|l| l.to_string()).unwrap_or_default();
    if outcome.passed() {
        return GateResult::open(
            VULNERABILITIES,
            format!("{checked}: no unignored advisory at {threshold} or above"),
        );
    }
    let described: Vec<String> = outcome
        .violations
        .iter()
        .map(|v| match v {
            Violation::Severity { finding, level, .. } => {
                let f = &findings[*finding];
                format!(
                    "{} in {}@{} ({level})",
                    f.id, f.package.name, f.package.version
                )
            }
            Violation::ExpiredIgnore { finding, until, .. } => {
                let f = &findings[*finding];
                format!(
                    "{} in {}@{} (ignore expired {until})",
                    f.id, f.package.name, f.package.version
                )
            }
        })
        .collect();
    GateResult::hold(
        VULNERABILITIES,
        format!(
            "{} advisor{} fail the policy (fail_on = {threshold}): {} (`cutover vulns --release {}`)",
            described.len(),
            if described.len() == 1 { "y" } else { "ies" },
            some(described),
            release.version
        ),
        None,
    )
}

/// The findings of a scan stored with a release (`Release::vulns`: `{findings: [BomFinding]}`),
/// read back field by field (findings are written, not read, by cutover-vuln).
fn stored_findings(stored: &Value) -> Option<Vec<Finding>> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
    stored
        .get("findings")?
        .as_array()?
        .iter()
        .map(|f| {
            let package = f.get("package")?;
            Some(Finding {
                id: text(f, "id")?,
                aliases: strings(f.get("aliases")),
                summary: text(f, "summary"),
                score: f.get("score").and_then(Value::as_f64),
                level: serde_json::from_value::<Level>(f.get("level")?.clone()).ok()?,
                vector: text(f, "vector"),
                package: PackageRef {
                    ecosystem: text(package, "ecosystem")?,
                    name: text(package, "name")?,
                    version: text(package, "version")?,
                },
                fixed: text(f, "fixed"),
                informational: text(f, "informational"),
                packages: Vec::new(),
            })
        })
        .collect()
}

fn components(n: u64) -> String {
    format!("{n} component{}", if n == 1 { "" } else { "s" })
}
