//! Scanning real lockfiles (parsed by cutover-bom) against the real RustSec and PyPA fixtures:
//! findings carry the nearest fix, the scope and the path from a direct dependency.

#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, TimeZone, Utc};
use cutover_bom::model::Scope;
use cutover_vuln::bomscan::{self, BomReport};
use cutover_vuln::db::VulnDb;
use cutover_vuln::import;
use cutover_vuln::policy::{self, Policy, Violation};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

async fn db_with(tmp: &Path, sources: &[&str]) -> VulnDb {
    let db = VulnDb::open(&tmp.join("vulns.db")).await.unwrap();
    let when = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
    for s in sources {
        let loaded = import::load(&fixtures().join("osv").join(s)).unwrap();
        db.import(s, loaded, when).await.unwrap();
    }
    db
}

fn finding<'a>(r: &'a BomReport, id: &str) -> &'a bomscan::BomFinding {
    r.findings
        .iter()
        .find(|f| f.finding.id == id)
        .unwrap_or_else(|| panic!("{id} not found"))
}

#[tokio::test]
async fn cargo_lock_findings_with_paths_and_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db_with(tmp.path(), &["rustsec"]).await;
    let bom = cutover_bom::discover_and_parse(&fixtures().join("lockfiles/cargo-v1"));
    let r = bomscan::scan(&db, &bom).await.unwrap();
    assert_eq!(r.checked, bom.components.len());

    let idna = finding(&r, "RUSTSEC-2024-0421");
    assert_eq!(idna.finding.package.name, "idna");
    assert_eq!(idna.finding.fixed.as_deref(), Some("1.0.0"));
    assert_eq!(idna.scope, Scope::Required);
    let path = &idna.placements[0].path;
    assert_eq!(
        path.last().map(String::as_str),
        Some(format!("idna@{}", idna.finding.package.version).as_str())
    );
    assert!(
        path.len() >= 2,
        "idna is reached through another crate: {path:?}"
    );

    // Unmaintained crates are reported as informational, and do not fail the gate.
    let ansi = finding(&r, "RUSTSEC-2021-0139");
    assert_eq!(ansi.finding.informational.as_deref(), Some("unmaintained"));
    let findings: Vec<_> = r.findings.iter().map(|f| f.finding.clone()).collect();
    let gate = policy::evaluate(
        &Policy {
            fail_on: Some("critical".parse().unwrap()),
            ignore: Vec::new(),
        },
        &findings,
        NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
    );
    assert!(gate.violations.iter().all(|v| match v {
        Violation::Severity { finding, .. } => findings[*finding].informational.is_none(),
        Violation::ExpiredIgnore { .. } => false,
    }));
    // Every finding names a real advisory id and the component's version is affected by it.
    for f in &r.findings {
        assert!(f.finding.id.starts_with("RUSTSEC-"), "{}", f.finding.id);
        let adv = db.advisory(&f.finding.id).await.unwrap().unwrap();
        assert!(adv.withdrawn.is_none());
        assert!(adv.affected.iter().any(|a| cutover_vuln::matching::check(
            a,
            &f.finding.package.version
        ) == cutover_vuln::matching::Verdict::Affected));
    }
}

#[tokio::test]
async fn requirements_txt_against_pypa() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db_with(tmp.path(), &["pypa"]).await;
    let bom = cutover_bom::discover_and_parse(&fixtures().join("lockfiles/pip-compile"));
    let r = bomscan::scan(&db, &bom).await.unwrap();
    // django 2.2.24: the nearest fix of PYSEC-2021-439 is 2.2.25 (not the 3.x or 4.x fixes).
    let f = finding(&r, "PYSEC-2021-439");
    assert_eq!(f.finding.package.version, "2.2.24");
    assert_eq!(f.finding.fixed.as_deref(), Some("2.2.25"));
    assert!(f.placements[0].direct);
    assert!(
        r.findings
            .iter()
            .all(|f| f.finding.package.name == "django")
    );
}
