//! `cutover demo`: the README's first command, end to end.

use crate::support::{Project, hermetic_env};
use std::process::Command;

#[test]
fn the_demo_runs_the_whole_tour_and_keeps_the_project_when_asked() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("hello");
    let out = hermetic_env(&mut Command::new(env!("CARGO_BIN_EXE_cutover")))
        .args(["demo", "--dir"])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for step in [
        "$ cutover init",
        "$ cutover plan",
        "$ cutover check",
        "$ cutover release",
        "$ cutover audit verify",
    ] {
        assert!(stdout.contains(step), "missing step {step}:\n{stdout}");
    }
    assert!(stdout.contains("audit chain intact"), "{stdout}");
    // The release really happened in the kept project: a tag, a changelog and a verified chain.
    let p = Project {
        dir: tempfile::TempDir::new().unwrap(),
    };
    let tags = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["tag", "--list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout), "v0.1.0\nv0.2.0\n");
    assert!(
        std::fs::read_to_string(dir.join("CHANGELOG.md"))
            .unwrap()
            .contains("## 0.2.0")
    );
    let verify = p.cutover(&[
        "--project",
        dir.to_str().unwrap(),
        "--json",
        "audit",
        "verify",
    ]);
    verify.success();
    assert_eq!(verify.json()["ok"], true);
}
