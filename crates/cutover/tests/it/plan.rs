//! `cutover plan` and `cutover changelog` on hermetic repositories.

use crate::support::Project;

fn history() -> Project {
    let p = Project::new();
    p.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "feat(cli): first command",
    ]);
    p.git(&["tag", "-a", "v1.0.0", "-m", "release 1.0.0"]);
    p.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "fix: handle empty input\n\nCloses #3",
    ]);
    p.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "feat(api): add widgets (#12)",
    ]);
    p.git(&["commit", "-q", "--allow-empty", "-m", "Update readme"]);
    p
}

#[test]
fn plan_prints_the_next_version_and_notes() {
    let p = history();
    let run = p.cutover(&["plan"]);
    run.success();
    assert!(
        run.stdout.contains("next    1.1.0 (minor, tag v1.1.0)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("### Features"));
    assert!(run.stdout.contains("- **api:** add widgets (#12)"));
    assert!(run.stdout.contains("### Other"));
}

#[test]
fn plan_json_has_the_documented_shape() {
    let p = history();
    let run = p.cutover(&["--json", "plan"]);
    run.success();
    let doc = run.json();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["current", "next", "changes", "unconventional", "notes"]
    );
    assert_eq!(doc["current"]["tag"], "v1.0.0");
    assert_eq!(doc["next"]["version"], "1.1.0");
    assert_eq!(doc["next"]["bump"], "minor");
    assert_eq!(doc["changes"].as_array().unwrap().len(), 3);
    assert_eq!(doc["unconventional"][0]["summary"], "Update readme");
    assert_eq!(doc["changes"][2]["refs"][0]["number"], 3);
    assert!(doc["notes"].as_str().unwrap().starts_with("## 1.1.0"));
    // A pre-release and an explicit version.
    let rc = p.cutover(&["--json", "plan", "--pre", "rc"]);
    rc.success();
    assert_eq!(rc.json()["next"]["version"], "1.1.0-rc.1");
    let explicit = p.cutover(&["--json", "plan", "--version", "4.0.0"]);
    explicit.success();
    assert_eq!(explicit.json()["next"]["bump"], "override");
}

#[test]
fn plan_reads_the_versioning_configuration() {
    let p = history();
    p.write(
        "cutover.toml",
        "[project]\nname = \"hello\"\n\n[versioning]\nunconventional = \"error\"\n",
    );
    let run = p.cutover(&["plan"]);
    run.code(2);
    assert!(
        run.stderr.contains("are not Conventional Commits"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Update readme"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let p = history();
    p.git(&["tag", "v2.0"]);
    let run = p.cutover(&["plan"]);
    run.code(2);
    assert!(
        run.stderr.contains("tag `v2.0` looks like a release"),
        "{}",
        run.stderr
    );
    p.git(&["tag", "-d", "v2.0"]);

    p.write(
        "notes.j2",
        "{% for c in changes %}\n  {{ c.summary | nosuchfilter }}\n{% endfor %}\n",
    );
    let run = p.cutover(&["changelog", "--template", "notes.j2"]);
    run.code(2);
    assert!(run.stderr.contains("notes.j2:2:"), "{}", run.stderr);
    assert!(
        !p.path().join("CHANGELOG.md").exists(),
        "nothing written on error"
    );
}

#[test]
fn changelog_bootstraps_then_prints() {
    let p = history();
    let run = p.cutover(&["changelog"]);
    run.success();
    let text = p.read("CHANGELOG.md");
    assert!(text.starts_with("# Changelog\n\n## Unreleased"), "{text}");
    assert!(text.contains("## 1.0.0"));
    // Now that it exists, the changelog goes to stdout unless --output says otherwise.
    let again = p.cutover(&["changelog", "--all"]);
    again.success();
    assert_eq!(again.stdout, text);
    let range = p.cutover(&[
        "--json",
        "changelog",
        "--range",
        "v1.0.0..HEAD",
        "--output",
        "range.md",
    ]);
    range.success();
    assert_eq!(range.json()["sections"], 1);
    assert_eq!(range.json()["commits"], 3);
    assert!(p.read("range.md").contains("## Unreleased"));
}

#[test]
fn notice_is_rendered_recorded_and_sent_to_a_file() {
    let p = history();
    p.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "feat!: new config\n\nBREAKING CHANGE: rename old.toml to cutover.toml",
    ]);
    let run = p.cutover(&["notice", "--eta", "2026-12-01", "--send"]);
    run.success();
    assert!(
        run.stdout.starts_with("# Advance shipping notice: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("- **Expected deployment:** 2026-12-01"));
    // Breaking changes first, with their migration note.
    let changes = run.stdout.split("## Changes").nth(1).unwrap();
    assert!(
        changes
            .trim_start()
            .starts_with("- **BREAKING** feat: new config"),
        "{changes}"
    );
    assert!(changes.contains("Migration: rename old.toml to cutover.toml"));
    assert!(
        run.stdout
            .contains("## Bill of materials changes\n\n_No dependency changes._"),
        "no lockfile on either side: the diff is computed and empty\n{}",
        run.stdout
    );
    let sent: Vec<_> = std::fs::read_dir(p.path().join(".cutover/notices"))
        .unwrap()
        .collect();
    assert_eq!(sent.len(), 1);
    let audit = p.cutover(&["--json", "audit"]);
    audit.success();
    let actions: Vec<String> = audit.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["notice.created", "notice.sent"]);

    let json = p.cutover(&["--json", "notice", "--format", "json"]);
    json.success();
    let doc = json.json();
    assert_eq!(doc["version"], "2.0.0");
    let content: serde_json::Value =
        serde_json::from_str(doc["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["changes"][0]["breaking"], true);
    assert_eq!(
        content["bom_diff"],
        serde_json::json!({"added": [], "removed": [], "changed": []})
    );
    // No vulnerability database here: that slot is not computed.
    assert_eq!(content["vulnerabilities"], serde_json::Value::Null);

    let bad = p.cutover(&["notice", "--eta", "soon"]);
    bad.code(2);
    assert!(
        bad.stderr.contains("--eta `soon` is not a date"),
        "{}",
        bad.stderr
    );
}

#[test]
fn release_tags_records_and_refuses_when_dirty() {
    let p = history();
    p.write(
        "cutover.toml",
        "[project]\nname = \"hello\"\n\n[build]\nrun = [\"cp\", \"README.md\", \"dist.txt\"]\nartifact = [\"dist.txt\"]\n",
    );
    p.write(".gitignore", "/.cutover/\n/dist.txt\n");
    // Uncommitted configuration: refused, nothing changed.
    let dirty = p.cutover(&["release"]);
    dirty.code(2);
    assert!(
        dirty.stderr.contains("uncommitted changes"),
        "{}",
        dirty.stderr
    );
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "chore: configure cutover"]);

    let dry = p.cutover(&["release", "--dry-run"]);
    dry.success();
    assert!(
        dry.stdout.contains("would release 1.1.0 (v1.1.0)"),
        "{}",
        dry.stdout
    );
    assert!(!p.path().join("CHANGELOG.md").exists());

    let run = p.cutover(&["--json", "release"]);
    run.success();
    let doc = run.json();
    assert_eq!(doc["tag"], "v1.1.0");
    assert_eq!(doc["kind"], "normal");
    // (Hashes are normalised in the captured output; the stored file is named by its digest.)
    assert!(
        doc["artifact"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let stored: Vec<_> = std::fs::read_dir(p.path().join(".cutover/artifacts/sha256"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(
        p.read("CHANGELOG.md")
            .starts_with("# Changelog\n\n## 1.1.0")
    );
    let audit = p.cutover(&["--json", "audit"]);
    let events = audit.json()["events"].as_array().unwrap().clone();
    assert!(events.iter().any(|e| e["action"] == "release.created"));

    // Nothing left to release.
    let again = p.cutover(&["release"]);
    again.code(2);
    assert!(
        again.stderr.contains("nothing to release"),
        "{}",
        again.stderr
    );
}

#[test]
fn hotfix_start_and_finish() {
    let p = history();
    p.git(&["tag", "-a", "v1.1.0", "-m", "release 1.1.0"]);
    p.write(".gitignore", "/.cutover/\n");
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: next big thing"]);

    let no_source = p.cutover(&["hotfix", "start"]);
    no_source.code(2);
    assert!(no_source.stderr.contains("--from"), "{}", no_source.stderr);

    let start = p.cutover(&["hotfix", "start", "--from", "v1.0.0"]);
    start.success();
    p.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "feat: sneaky feature",
    ]);
    let refused = p.cutover(&["hotfix", "finish"]);
    refused.code(2);
    assert!(
        refused.stderr.contains("feat: sneaky feature"),
        "{}",
        refused.stderr
    );
    p.git(&["reset", "-q", "--hard", "HEAD~1"]);
    p.git(&["commit", "-q", "--allow-empty", "-m", "fix: urgent repair"]);

    let finish = p.cutover(&["hotfix", "finish"]);
    finish.success();
    assert!(
        finish.stdout.contains("git cherry-pick"),
        "{}",
        finish.stdout
    );
    let tags = std::process::Command::new("git")
        .arg("-C")
        .arg(p.path())
        .args(["tag", "-l", "v1.0.1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "v1.0.1");
    let audit = p.cutover(&["--json", "audit"]);
    let events = audit.json()["events"].as_array().unwrap().clone();
    let release = events
        .iter()
        .find(|e| e["action"] == "release.created")
        .unwrap();
    assert_eq!(release["payload"]["kind"], "hotfix");
}

#[test]
fn notice_eta_follows_production_freeze_windows() {
    let p = history();
    p.write(
        "cutover.toml",
        "[project]\nname = \"hello\"\n\n[service]\nstart = [\"./hello\"]\n\n[environments.production]\nhosts = [\"web-1\"]\nfreeze = [\"2026-01-01..2026-01-02\", \"Sat 00:00-Sat 09:00 UTC\"]\n",
    );
    // 2026-01-01T10:00:00Z, a Thursday: frozen through Friday, and Saturday until 09:00.
    let run = p.cutover_with(&["notice"], &[("SOURCE_DATE_EPOCH", "1767261600")]);
    run.success();
    assert!(
        run.stdout
            .contains("- **Expected deployment:** 2026-01-03T09:00:00Z"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("- **Drafted:** 2026-01-01T10:00:00Z"),
        "{}",
        run.stdout
    );
}
