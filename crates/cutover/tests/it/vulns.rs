//! `cutover vulns`: importing the real RustSec advisory-db fixture, `vulns db status`, the report
//! on a Cargo.lock with known-vulnerable crates, and the `[vulns]` gate (threshold, expired ignore).

#![allow(clippy::unwrap_used)]

use crate::support::Project;
use std::path::{Path, PathBuf};

fn vuln_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cutover-vuln/tests/fixtures")
        .join(rel)
}

fn project(config: &str) -> Project {
    let p = Project::new();
    let lock = std::fs::read_to_string(vuln_fixture("lockfiles/cargo-v1/Cargo.lock")).unwrap();
    p.write("Cargo.lock", &lock);
    p.write(
        "cutover.toml",
        &format!("[project]\nname = \"demo\"\n{config}"),
    );
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: lockfile"]);
    let rustsec = vuln_fixture("osv/rustsec");
    p.cutover(&["vulns", "import", rustsec.to_str().unwrap()])
        .success();
    p
}

#[test]
fn import_status_and_gate() {
    let p = project("[vulns]\nfail_on = \"critical\"\n");
    let st = p.cutover(&["--json", "vulns", "db", "status"]);
    st.success();
    let st = st.json();
    assert_eq!(st["sources"][0]["kind"], "rustsec");
    assert_eq!(st["sources"][0]["advisories"], 1225);
    assert_eq!(st["per_ecosystem"]["crates.io"], 1205 - 13);
    assert_eq!(st["skipped"], 0);

    // smallvec 0.6.10 has a critical advisory (RUSTSEC-2021-0003, CVSS 9.8): the gate fails,
    // and stdout still holds one JSON document with the findings and the error.
    let run = p.cutover(&["--json", "vulns"]);
    run.code(1);
    let doc = run.json();
    assert_eq!(doc["error"]["exit_code"], 1);
    let findings = doc["findings"].as_array().unwrap();
    let smallvec = findings
        .iter()
        .find(|f| f["id"] == "RUSTSEC-2021-0003")
        .unwrap();
    assert_eq!(smallvec["package"]["name"], "smallvec");
    assert_eq!(smallvec["level"], "critical");
    assert_eq!(smallvec["score"], 9.8);
    assert!(smallvec["fixed"].is_string());
    assert!(doc["policy"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| findings[v["finding"].as_u64().unwrap() as usize]["id"] == "RUSTSEC-2021-0003"));
    assert!(
        run.stderr.contains("RUSTSEC-2021-0003 in smallvec@0.6.10"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_threshold_passes_but_an_expired_ignore_fails() {
    let p = project("[vulns]\nfail_on = \"none\"\n");
    let run = p.cutover(&["vulns"]);
    run.success();
    assert!(run.stdout.contains("RUSTSEC-2024-0421"), "{}", run.stdout);
    assert!(
        run.stdout.contains("url@2.1.0 > idna@0.2.0"),
        "dependency path shown: {}",
        run.stdout
    );

    let p = project(
        "[vulns]\nfail_on = \"none\"\n[[vulns.ignore]]\nid = \"CVE-2021-25900\"\nuntil = 2020-01-01\nreason = \"old exception\"\n",
    );
    let run = p.cutover(&["vulns"]);
    run.code(1);
    assert!(
        run.stderr
            .contains("the ignore of CVE-2021-25900 expired on 2020-01-01 (old exception)"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_sources_and_a_missing_database_are_usage_errors() {
    let p = Project::new();
    p.write("cutover.toml", "[project]\nname = \"demo\"\n");
    p.cutover(&["vulns"]).code(2);
    p.write("all.zip", "PK\u{3}\u{4} not a zip");
    let run = p.cutover(&["vulns", "import", "all.zip"]);
    run.code(2);
    assert!(
        run.stderr.contains("all.zip") && run.stderr.contains("not a valid zip archive"),
        "{}",
        run.stderr
    );
}
