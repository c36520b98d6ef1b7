//! Global behaviour: exit codes, error rendering, completions, the project lookup.

use crate::support::{Project, hermetic_env};
use std::process::Command;

#[test]
fn not_a_git_work_tree_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = hermetic_env(&mut Command::new(env!("CARGO_BIN_EXE_cutover")))
        .args(["--project"])
        .arg(dir.path())
        .args(["config", "show"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = crate::support::normalise(&String::from_utf8_lossy(&out.stderr), dir.path());
    insta::assert_snapshot!(stderr, @r"
    error: `[PROJECT]` is not inside a git work tree
    hint: cutover plans releases from git history: run it inside a git repository, pass `--project DIR`, or run `git init` first
    ");
}

#[test]
fn missing_project_directory_is_a_usage_error() {
    let p = Project::new();
    let run = p.cutover(&["--project", "does/not/exist", "config", "show"]);
    run.code(2);
    assert!(
        run.stderr
            .starts_with("error: project directory `does/not/exist` cannot be read"),
        "{}",
        run.stderr
    );
}

#[test]
fn json_errors_are_one_document_on_stdout() {
    let p = Project::new();
    let run = p.cutover(&["--json", "config", "show"]);
    run.code(2);
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], "usage");
    assert_eq!(doc["error"]["exit_code"], 2);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cutover.toml")
    );
}

#[test]
fn unknown_flags_are_usage_errors() {
    let p = Project::new();
    p.cutover(&["init", "--frobnicate"]).code(2);
    p.cutover(&["--color", "sometimes", "init"]).code(2);
}

#[test]
fn completions_for_each_shell() {
    let p = Project::new();
    for (shell, marker) in [
        ("bash", "_cutover()"),
        ("zsh", "#compdef cutover"),
        ("fish", "complete -c cutover"),
    ] {
        let run = p.cutover(&["completions", shell]);
        run.success();
        assert!(
            run.stdout.contains(marker),
            "{shell}: {}",
            &run.stdout[..run.stdout.len().min(300)]
        );
        assert!(
            run.stdout.contains("audit"),
            "{shell} completes subcommands"
        );
    }
}

#[test]
fn color_follows_flag_and_no_color() {
    let p = Project::new();
    let always = p.cutover_with(&["--color", "always", "config", "show"], &[]);
    always.code(2);
    assert!(
        always.stderr.contains("\u{1b}["),
        "--color always paints: {:?}",
        always.stderr
    );
    let never = p.cutover(&["config", "show"]);
    assert!(!never.stderr.contains("\u{1b}["), "NO_COLOR is respected");
}
