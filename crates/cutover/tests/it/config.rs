//! `cutover config show|schema` and configuration errors as the user sees them.

use crate::support::Project;

const CONFIG: &str = r#"[project]
name = "hello"

[[checks]]
name = "test"
run = ["cargo", "test"]

[notify]
[[notify.slack]]
url = { env = "SLACK_WEBHOOK_URL" }
"#;

#[test]
fn a_typo_is_located_with_a_suggestion_and_exit_2() {
    let p = Project::new();
    p.write(
        "cutover.toml",
        "[project]\nname = \"hello\"\ntag_fromat = \"v{version}\"\n",
    );
    let run = p.cutover(&["config", "show"]);
    run.code(2);
    insta::assert_snapshot!(run.stderr, @r#"
    error: invalid configuration: unknown key `tag_fromat` in `[project]`
     --> [PROJECT]/cutover.toml:3:1
      |
    3 | tag_fromat = "v{version}"
      | ^^^^^^^^^^ expected one of `name`, `tag_format`, `main_branch`
    hint: did you mean `tag_format`?
    "#);
}

#[test]
fn a_missing_config_says_how_to_make_one() {
    let p = Project::new();
    let run = p.cutover(&["config", "show"]);
    run.code(2);
    assert!(run.stderr.contains("cutover init"), "{}", run.stderr);
}

#[test]
fn show_applies_overrides_and_never_prints_secrets() {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    let run = p.cutover_with(
        &["--json", "config", "show"],
        &[
            ("CUTOVER_PROJECT__TAG_FORMAT", "release-{version}"),
            ("SLACK_WEBHOOK_URL", "https://hooks.example.com/T0/SECRET"),
        ],
    );
    run.success();
    let doc = run.json();
    assert_eq!(doc["project"]["tag_format"], "release-{version}");
    assert!(!run.stdout.contains("SECRET"), "{}", run.stdout);
    assert_eq!(doc["notify"]["slack"][0]["url"]["env"], "SLACK_WEBHOOK_URL");
    // The human form is TOML.
    let human = p.cutover(&["config", "show"]);
    human.success();
    assert!(human.stdout.contains("[project]"), "{}", human.stdout);
}

#[test]
fn a_bad_override_names_the_variable() {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    let run = p.cutover_with(&["config", "show"], &[("CUTOVER_PROJECT__TAG_FROMAT", "x")]);
    run.code(2);
    assert!(
        run.stderr.contains("CUTOVER_PROJECT__TAG_FROMAT"),
        "{}",
        run.stderr
    );
}

#[test]
fn schema_is_the_committed_one() {
    let p = Project::new();
    let run = p.cutover(&["config", "schema"]);
    run.success();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/cutover.schema.json"
    ))
    .unwrap();
    let a: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(a, b, "run `cargo xtask codegen`");
}
