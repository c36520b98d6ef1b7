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

/// A deployment record, written the way the deploy orchestration will write it.
fn record_live_deployment(p: &Project, environment: &str, version: &str) {
    let db = p.path().join(".cutover/state.db");
    let (environment, version) = (environment.to_owned(), version.to_owned());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let store = cutover_store::open_sqlite(&db).await.unwrap();
            let deployment = cutover_store::NewDeployment {
                environment: environment.clone(),
                release_version: version.clone(),
                strategy: "blue-green".into(),
                state: "live".into(),
                trigger: "cli".into(),
                actor: "tester@example.com".into(),
                reverts: None,
                created_at: chrono::Utc::now(),
            };
            let audit = cutover_store::Audit::new(
                "tester@example.com",
                "deployment.created",
                format!("deployment/{environment}"),
                serde_json::json!({"release": version}),
            );
            store
                .apply_one(cutover_store::Change::InsertDeployment(deployment), &audit)
                .await
                .unwrap();
        });
}

#[test]
fn affected_names_the_releases_and_where_they_are_live() {
    let p = project(
        "[vulns]\nfail_on = \"none\"\n\n[service]\nstart = [\"{release_dir}/app\", \"--port\", \"{port}\"]\n\n\
         [environments.production]\nhosts = [\"web-1\", \"web-2\"]\nlisten = \"127.0.0.1:8090\"\n",
    );
    p.cutover(&["release"]).success();

    // By id and by alias: the same release and package.
    for id in ["RUSTSEC-2021-0003", "cve-2021-25900"] {
        let run = p.cutover(&["--json", "vulns", "affected", id]);
        run.success();
        let doc = run.json();
        assert_eq!(doc["releases"][0]["version"], "0.1.0", "{id}: {doc}");
        assert_eq!(doc["releases"][0]["packages"][0]["package"], "smallvec");
        assert_eq!(doc["live"], serde_json::json!([]), "nothing deployed yet");
    }

    record_live_deployment(&p, "production", "0.1.0");
    let run = p.cutover(&["--json", "vulns", "affected", "GHSA-43w2-9j62-hq99"]);
    run.success();
    let live = &run.json()["live"];
    assert_eq!(live[0]["environment"], "production");
    assert_eq!(live[0]["hosts"], serde_json::json!(["web-1", "web-2"]));
    let human = p.cutover(&["vulns", "affected", "RUSTSEC-2021-0003"]);
    assert!(human.stdout.contains("production"), "{}", human.stdout);

    // An advisory that touches nothing we shipped.
    let none = p.cutover(&["--json", "vulns", "affected", "RUSTSEC-0000-0000"]);
    none.success();
    assert_eq!(none.json()["releases"], serde_json::json!([]));

    // The report on a release's recorded BOM.
    let rel = p.cutover(&["--json", "vulns", "--release", "0.1.0"]);
    rel.success();
    assert!(
        rel.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "RUSTSEC-2021-0003")
    );
    let missing = p.cutover(&["vulns", "--release", "9.9.9"]);
    missing.code(2);
    assert!(
        missing.stderr.contains("there is no release 9.9.9"),
        "{}",
        missing.stderr
    );
}

#[test]
fn the_shipping_notice_lists_vulnerabilities_new_since_the_last_release() {
    let p = Project::new();
    p.write("cutover.toml", "[project]\nname = \"demo\"\n");
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: start"]);
    let rustsec = vuln_fixture("osv/rustsec");
    p.cutover(&["vulns", "import", rustsec.to_str().unwrap()])
        .success();
    p.cutover(&["release"]).success();

    let lock = std::fs::read_to_string(vuln_fixture("lockfiles/cargo-v1/Cargo.lock")).unwrap();
    p.write("Cargo.lock", &lock);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: dependencies"]);
    let run = p.cutover(&["notice", "--format", "json"]);
    run.success();
    let notice = run.json();
    let vulns = notice["vulnerabilities"].as_array().unwrap();
    let smallvec = vulns
        .iter()
        .find(|v| v["id"] == "RUSTSEC-2021-0003")
        .unwrap();
    assert_eq!(smallvec["package"], "smallvec");
    assert!(
        smallvec["severity"]
            .as_str()
            .unwrap()
            .starts_with("critical"),
        "{smallvec}"
    );
    assert!(!notice["bom_diff"]["added"].as_array().unwrap().is_empty());

    // Once released, the same findings are no longer new.
    p.cutover(&["release"]).success();
    p.write("NOTES.md", "more\n");
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "fix: notes"]);
    let later = p.cutover(&["notice", "--format", "json"]);
    later.success();
    assert_eq!(later.json()["vulnerabilities"], serde_json::json!([]));
}
