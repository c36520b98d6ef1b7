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

fn finding_ids(doc: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_first_scan_against_a_source_imports_what_it_needs_and_affected_imports_the_rest() {
    let p = Project::new();
    let lock = std::fs::read_to_string(vuln_fixture("lockfiles/cargo-v1/Cargo.lock")).unwrap();
    p.write("Cargo.lock", &lock);
    p.write(
        "cutover.toml",
        "[project]\nname = \"demo\"\n[vulns]\nfail_on = \"none\"\n",
    );
    let rustsec = vuln_fixture("osv/rustsec");
    let rustsec = rustsec.to_str().unwrap();

    // No database yet: made from the lockfile's crates' advisories only.
    let run = p.cutover(&["--json", "vulns", "--source", rustsec]);
    run.success();
    assert!(
        run.stderr.contains("Imported")
            && run
                .stderr
                .contains("the rest is imported when a use needs it"),
        "{}",
        run.stderr
    );
    let first = finding_ids(&run.json());
    assert!(
        first.contains(&"RUSTSEC-2021-0003".to_string()),
        "{first:?}"
    );
    // The same findings as against the whole advisory-db imported.
    let whole = project("[vulns]\nfail_on = \"none\"\n");
    let expected = whole.cutover(&["--json", "vulns"]);
    expected.success();
    assert_eq!(first, finding_ids(&expected.json()));

    // `db status` says the database is partial.
    let st = p.cutover(&["--json", "vulns", "db", "status"]);
    st.success();
    let st = st.json();
    assert_eq!(st["partial"], true);
    assert_eq!(st["sources"][0]["kind"], "rustsec (partial)");
    assert!(
        st["sources"][0]["advisories"].as_i64().unwrap() < 200,
        "{st}"
    );
    let human = p.cutover(&["vulns", "db", "status"]);
    assert!(human.stdout.contains("partial:"), "{}", human.stdout);

    // Again: nothing new to import, the same findings.
    let again = p.cutover(&["--json", "vulns", "--source", rustsec]);
    again.success();
    assert!(!again.stderr.contains("Imported"), "{}", again.stderr);
    assert_eq!(finding_ids(&again.json()), first);

    // `vulns affected` needs every advisory: the rest is imported first.
    p.cutover(&["vulns", "affected", "RUSTSEC-2021-0003"])
        .success();
    let st = p.cutover(&["--json", "vulns", "db", "status"]);
    st.success();
    let st = st.json();
    assert_eq!(st["partial"], false);
    assert_eq!(st["sources"][0]["kind"], "rustsec");
    assert_eq!(st["sources"][0]["advisories"], 1225);
}

/// A deployment record, written the way the deploy orchestration writes it: created, then moved
/// to its final `state` (finished) in a second change. Returns its id.
fn record_deployment(p: &Project, environment: &str, version: &str, state: &str) -> i64 {
    let db = p.path().join(".cutover/state.db");
    let (environment, version, state) =
        (environment.to_owned(), version.to_owned(), state.to_owned());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let store = cutover_store::open_sqlite(&db).await.unwrap();
            let now = chrono::Utc::now();
            let deployment = cutover_store::NewDeployment {
                environment: environment.clone(),
                release_version: version.clone(),
                strategy: "blue-green".into(),
                state: "queued".into(),
                trigger: "cli".into(),
                actor: "tester@example.com".into(),
                reverts: None,
                created_at: now,
            };
            let audit = cutover_store::Audit::new(
                "tester@example.com",
                "deployment.create",
                "deployment:new",
                serde_json::json!({"environment": environment, "version": version}),
            );
            let id = match store
                .apply_one(cutover_store::Change::InsertDeployment(deployment), &audit)
                .await
                .unwrap()
            {
                cutover_store::Outcome::Id(id) => id,
                other => panic!("no deployment id: {other:?}"),
            };
            let finished = matches!(state.as_str(), "live" | "rolled_back" | "failed");
            let audit = cutover_store::Audit::new(
                "tester@example.com",
                "deployment.transition",
                format!("deployment:{id}"),
                serde_json::json!({"environment": environment, "version": version,
                                   "from": "queued", "to": state, "reason": "test"}),
            );
            store
                .apply_one(
                    cutover_store::Change::UpdateDeployment {
                        id,
                        expected_state: Some("queued".into()),
                        state: state.clone(),
                        at: now,
                        finished_at: finished.then_some(now),
                    },
                    &audit,
                )
                .await
                .unwrap();
            id
        })
}

fn record_live_deployment(p: &Project, environment: &str, version: &str) {
    record_deployment(p, environment, version, "live");
}

/// The release record as the store holds it.
fn stored_release(p: &Project, version: &str) -> cutover_store::Release {
    let db = p.path().join(".cutover/state.db");
    let version = version.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let store = cutover_store::open_sqlite(&db).await.unwrap();
            store.get_release(&version).await.unwrap().unwrap()
        })
}

/// An OSV advisory (written by the test) for a crate of the lockfile fixture.
const NEW_ADVISORY: &str = r#"{"schema_version":"1.7.0","id":"TEST-2026-0001","modified":"2026-11-01T00:00:00Z",
"aliases":["CVE-2099-0001"],"summary":"test advisory published after the release",
"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
"affected":[{"package":{"ecosystem":"crates.io","name":"smallvec"},
"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.6.1"}]}]}]}"#;

#[test]
fn a_release_stores_its_findings_and_vulns_release_tells_what_is_new_since() {
    let p = project("[vulns]\nfail_on = \"none\"\n");
    let run = p.cutover(&["--json", "release"]);
    run.success();
    let found = run.json()["vulnerabilities"].as_u64().unwrap();
    assert!(
        found > 0,
        "the lockfile fixture has known-vulnerable crates"
    );

    let stored = stored_release(&p, "0.1.0").vulns.unwrap();
    let findings = stored["findings"].as_array().unwrap();
    assert_eq!(findings.len() as u64, found);
    assert!(findings.iter().any(|f| f["id"] == "RUSTSEC-2021-0003"));
    assert!(stored["scanned_at"].is_string());
    assert_eq!(stored["database"]["advisories"], 1225 - 13);

    // Right after the release nothing is new.
    let same = p.cutover(&["--json", "vulns", "--release", "0.1.0"]);
    same.success();
    assert_eq!(
        same.json()["release"]["new_since_release"],
        serde_json::json!([])
    );

    // An advisory published later: new since the release; the recorded ones are not.
    p.write(".cutover/osv-later/TEST-2026-0001.json", NEW_ADVISORY);
    p.cutover(&["vulns", "import", ".cutover/osv-later"])
        .success();
    let run = p.cutover(&["--json", "vulns", "--release", "0.1.0"]);
    run.success();
    let doc = run.json();
    assert_eq!(
        doc["release"]["new_since_release"],
        serde_json::json!(["TEST-2026-0001"])
    );
    assert_eq!(doc["release"]["no_longer_found"], serde_json::json!([]));
    let by_id = |id: &str| {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("TEST-2026-0001")["new_since_release"], true);
    assert_eq!(by_id("RUSTSEC-2021-0003")["new_since_release"], false);
    assert_eq!(
        doc["release"]["recorded"]["findings"]
            .as_array()
            .unwrap()
            .len() as u64,
        found
    );

    let human = p.cutover(&["vulns", "--release", "0.1.0"]);
    human.success();
    assert!(
        human
            .stdout
            .contains(&format!("{found} findings stored when it was recorded")),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("1 new since"), "{}", human.stdout);
    let new_row = human
        .stdout
        .lines()
        .find(|l| l.contains("TEST-2026-0001"))
        .unwrap();
    assert!(new_row.starts_with('+'), "{new_row}");
}

#[test]
fn a_release_without_a_database_stores_no_findings() {
    let p = Project::new();
    p.write("cutover.toml", "[project]\nname = \"demo\"\n");
    let lock = std::fs::read_to_string(vuln_fixture("lockfiles/cargo-v1/Cargo.lock")).unwrap();
    p.write("Cargo.lock", &lock);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: lockfile"]);
    let run = p.cutover(&["--json", "release"]);
    run.success();
    assert_eq!(run.json()["vulnerabilities"], serde_json::Value::Null);
    assert_eq!(stored_release(&p, "0.1.0").vulns, None);

    // Imported later: the re-scan reports everything, saying nothing was stored then.
    let rustsec = vuln_fixture("osv/rustsec");
    p.cutover(&["vulns", "import", rustsec.to_str().unwrap()])
        .success();
    let human = p.cutover(&["vulns", "--release", "0.1.0"]);
    human.code(1);
    assert!(
        human
            .stdout
            .contains("no findings were stored when it was recorded"),
        "{}",
        human.stdout
    );
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

const PRODUCTION: &str = "[vulns]\nfail_on = \"none\"\n\n[service]\nstart = [\"{release_dir}/app\", \"--port\", \"{port}\"]\n\n\
     [environments.production]\nhosts = [\"web-1\"]\nlisten = \"127.0.0.1:8090\"\n";

/// Two releases: the first with the vulnerable lockfile, the second without dependencies; then
/// the lockfile comes back for the coming release. Returns the two versions.
fn production_project(config: &str) -> (Project, String, String) {
    let p = project(config);
    let release = |p: &Project| {
        let run = p.cutover(&["--json", "release"]);
        run.success();
        run.json()["version"].as_str().unwrap().to_owned()
    };
    let first = release(&p);
    std::fs::remove_file(p.path().join("Cargo.lock")).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "feat: no dependencies"]);
    let second = release(&p);
    let lock = std::fs::read_to_string(vuln_fixture("lockfiles/cargo-v1/Cargo.lock")).unwrap();
    p.write("Cargo.lock", &lock);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: dependencies again"]);
    (p, first, second)
}

fn notice_vulnerability_ids(p: &Project) -> Vec<String> {
    let run = p.cutover(&["notice", "--format", "json"]);
    run.success();
    run.json()["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_notice_compares_vulnerabilities_with_the_release_live_in_production() {
    let (p, first, second) = production_project(PRODUCTION);
    // Nothing deployed: the last release (no dependencies) is the baseline.
    let ids = notice_vulnerability_ids(&p);
    assert!(ids.iter().any(|id| id == "RUSTSEC-2021-0003"), "{ids:?}");

    // Deployments that do not make a release live: unfinished, rolled back, elsewhere.
    record_deployment(&p, "production", &first, "observing");
    record_deployment(&p, "production", &first, "rolled_back");
    record_deployment(&p, "staging", &first, "live");
    assert_eq!(notice_vulnerability_ids(&p), ids);

    // The first release live in production: it runs those already, nothing is new.
    record_live_deployment(&p, "production", &first);
    assert_eq!(notice_vulnerability_ids(&p), Vec::<String>::new());
    let human = p.cutover(&["-v", "notice"]);
    human.success();
    assert!(
        human.stderr.contains(&format!(
            "vulnerabilities compared with {first}, live in production"
        )),
        "{}",
        human.stderr
    );

    // A newer live deployment supersedes it: the second release runs no dependencies.
    record_live_deployment(&p, "production", &second);
    assert_eq!(notice_vulnerability_ids(&p), ids);
}

#[test]
fn without_production_the_end_of_the_promotion_chain_is_the_baseline() {
    let config = "[vulns]\nfail_on = \"none\"\n\n[service]\nstart = [\"{release_dir}/app\", \"--port\", \"{port}\"]\n\n\
         [environments.staging]\nhosts = [\"web-1\"]\nlisten = \"127.0.0.1:8091\"\n\n\
         [environments.live]\nhosts = [\"web-2\"]\nlisten = \"127.0.0.1:8092\"\npromote_from = \"staging\"\n";
    let (p, first, _) = production_project(config);
    let ids = notice_vulnerability_ids(&p);
    assert!(!ids.is_empty());
    record_live_deployment(&p, "staging", &first);
    assert_eq!(notice_vulnerability_ids(&p), ids, "staging is not the end");
    record_live_deployment(&p, "live", &first);
    assert_eq!(notice_vulnerability_ids(&p), Vec::<String>::new());
}
