//! `cutover init`.

use crate::support::Project;

#[test]
fn init_writes_a_loading_config_and_ignores_state() {
    let p = Project::new();
    p.write("Cargo.lock", "version = 4\n");
    p.write(
        "Cargo.toml",
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    let run = p.cutover(&["--json", "init"]);
    run.success();
    let doc = run.json();
    assert_eq!(doc["replaced"], false);
    assert!(
        doc["detected"]["lockfiles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "Cargo.lock")
    );
    assert!(p.path().join(".cutover").is_dir());
    assert!(p.read(".gitignore").lines().any(|l| l == "/.cutover/"));
    let config = p.read("cutover.toml");
    assert!(config.contains("[project]"));
    assert!(
        config.lines().any(|l| l.trim_start().starts_with('#')),
        "the file is commented"
    );
    // The written file loads, and `config show` reports the detected project.
    let shown = p.cutover(&["--json", "config", "show"]);
    shown.success();
    assert_eq!(shown.json()["project"]["name"], "hello");
    // init is recorded in the audit log.
    let audit = p.cutover(&["--json", "audit"]);
    audit.success();
    let events = audit.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "project.initialized");
    assert_eq!(events[0]["actor"], "tester@example.com");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let p = Project::new();
    p.write("cutover.toml", "# mine\n");
    let run = p.cutover(&["init"]);
    run.code(2);
    insta::assert_snapshot!(run.stderr, @r"
    error: `[PROJECT]/cutover.toml` already exists
    hint: keep it, or run `cutover init --force` to replace it
    ");
    assert_eq!(p.read("cutover.toml"), "# mine\n", "nothing changed");
    assert!(!p.path().join(".cutover").exists(), "nothing created");
    p.cutover(&["init", "--force"]).success();
    assert_ne!(p.read("cutover.toml"), "# mine\n");
}

#[test]
fn init_keeps_an_existing_ignore_rule() {
    let p = Project::new();
    p.write(".gitignore", "target\n.cutover/\n");
    p.cutover(&["init"]).success();
    assert_eq!(p.read(".gitignore"), "target\n.cutover/\n");
}

#[test]
fn init_detects_node_projects() {
    let p = Project::new();
    p.write(
        "package.json",
        r#"{"name":"web-shop","version":"1.0.0","scripts":{"build":"vite build","test":"vitest"}}"#,
    );
    p.write(
        "package-lock.json",
        r#"{"lockfileVersion":3,"packages":{}}"#,
    );
    let run = p.cutover(&["--json", "init"]);
    run.success();
    let doc = run.json();
    assert!(
        doc["detected"]["lockfiles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "package-lock.json")
    );
    assert_eq!(doc["detected"]["name"], "web-shop");
}
