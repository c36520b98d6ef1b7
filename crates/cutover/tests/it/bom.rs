//! `cutover bom`: CycloneDX and SPDX output (byte-identical per commit), the summary, the license
//! check's exit code and table, `bom diff` of two BOM files, and a broken lockfile reported.

use crate::support::Project;

fn fixture(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cutover-bom/tests/fixtures/lockfiles")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn npm_project() -> Project {
    let p = Project::new();
    p.write(
        "web/package-lock.json",
        &fixture("npm/v2-workspace-alias-dev-peer/package-lock.json"),
    );
    p.write("Cargo.lock", &fixture("cargo/v3-path-deps/Cargo.lock"));
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: lockfiles"]);
    p
}

#[test]
fn cyclonedx_and_spdx_are_byte_identical_for_the_same_commit() {
    let p = npm_project();
    let a = p.cutover(&["bom", "--format", "cyclonedx-json"]);
    a.success();
    let b = p.cutover(&["bom", "--format", "cyclonedx-json"]);
    assert_eq!(a.stdout, b.stdout);
    let doc = a.json();
    assert_eq!(doc["specVersion"], "1.6");
    assert_eq!(
        doc["metadata"]["timestamp"], "2026-01-02T03:04:05Z",
        "the HEAD commit's time"
    );
    let purls: Vec<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    assert!(
        purls
            .contains(&"pkg:npm/%40fake-registry/a@1.2.3?repository_url=http:%2F%2Flocalhost:4873"),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:cargo/memchr@2.7.4"), "{purls:?}");
    p.cutover(&["bom", "--format", "spdx-json", "--output", "bom.spdx.json"])
        .success();
    let spdx: serde_json::Value = serde_json::from_str(&p.read("bom.spdx.json")).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let again = p.cutover(&["bom", "--format", "spdx-json"]);
    assert_eq!(
        again.stdout,
        crate::support::normalise(&p.read("bom.spdx.json"), p.path())
    );
}

#[test]
fn the_license_check_fails_with_a_table_of_violations() {
    let p = npm_project();
    p.cutover(&["init"]).success();
    let config = p.read("cutover.toml").replace(
        "#allow = [\"MIT\", \"Apache-2.0\", \"BSD-3-Clause\", \"ISC\"]",
        "allow = [\"MIT\"]",
    );
    p.write("cutover.toml", &config);
    let run = p.cutover(&["bom", "--check"]);
    run.code(1);
    assert!(run.stdout.contains("PACKAGE"), "{}", run.stdout);
    assert!(
        run.stdout.contains("@fake-registry/a")
            && run.stdout.contains("1.2.3")
            && run.stdout.contains("ISC"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("violate the license policy"),
        "{}",
        run.stderr
    );
    let allowed = config.replace("allow = [\"MIT\"]", "allow = [\"MIT\", \"ISC\"]");
    p.write("cutover.toml", &allowed);
    p.cutover(&["bom", "--check"]).success();
}

#[test]
fn diff_of_two_bom_files_lists_the_changes() {
    let p = Project::new();
    p.write(
        "pnpm-lock.yaml",
        &fixture("pnpm/v6-dev-optional-groups/pnpm-lock.yaml"),
    );
    p.cutover(&["bom", "--output", "old.json"]).success();
    p.write(
        "pnpm-lock.yaml",
        &fixture("pnpm/v9-dev-optional-groups/pnpm-lock.yaml"),
    );
    p.cutover(&["bom", "--output", "new.json"]).success();
    let run = p.cutover(&["bom", "diff", "old.json", "new.json"]);
    run.success();
    assert!(
        run.stdout.contains("ansi-regex") && run.stdout.contains("5.0.0 → 5.0.1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("0 added, 0 removed, 2 upgraded, 0 downgraded"),
        "{}",
        run.stdout
    );
    let json = p
        .cutover(&["--json", "bom", "diff", "new.json", "old.json"])
        .json();
    assert_eq!(json["downgraded"].as_array().unwrap().len(), 2);
    p.cutover(&["bom", "diff", "old.json", "missing.json"])
        .code(2);
}

#[test]
fn a_broken_lockfile_is_reported_and_the_others_still_count() {
    let p = npm_project();
    let full = fixture("composer/two-packages/composer.lock");
    p.write("php/composer.lock", &full[..full.len() / 3]);
    let run = p.cutover(&["bom", "--format", "cyclonedx-json"]);
    run.code(1);
    assert!(run.stderr.contains("php/composer.lock:"), "{}", run.stderr);
    assert!(run.stderr.contains("expected"), "{}", run.stderr);
    let doc = run.json();
    // The six npm packages and memchr (telemetry is a source-less workspace crate: the project).
    assert_eq!(
        doc["components"].as_array().unwrap().len(),
        7,
        "the other lockfiles' components are there"
    );
}

#[test]
fn diff_and_bom_of_release_versions_read_the_tags() {
    let p = Project::new();
    p.write(
        "pnpm-lock.yaml",
        &fixture("pnpm/v6-dev-optional-groups/pnpm-lock.yaml"),
    );
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: deps"]);
    p.git(&["tag", "v1.0.0"]);
    p.write(
        "pnpm-lock.yaml",
        &fixture("pnpm/v9-dev-optional-groups/pnpm-lock.yaml"),
    );
    p.git(&["commit", "-q", "-am", "fix: bump deps"]);
    p.git(&["tag", "v1.1.0"]);
    let run = p.cutover(&["bom", "diff", "1.0.0", "1.1.0"]);
    run.success();
    assert!(
        run.stdout.contains("uuid") && run.stdout.contains("8.0.0 → 8.3.2"),
        "{}",
        run.stdout
    );
    let doc = p
        .cutover(&["bom", "--release", "1.0.0", "--format", "cyclonedx-json"])
        .json();
    assert_eq!(doc["metadata"]["component"]["version"], "1.0.0");
    assert_eq!(doc["components"].as_array().unwrap().len(), 3);
    p.cutover(&["bom", "--release", "7.7.7"]).code(2);
}
