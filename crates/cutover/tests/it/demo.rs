//! `cutover demo`: the README's first command, end to end.

use crate::support::{Project, hermetic_env};
use std::process::Command;

#[test]
fn the_demo_runs_the_whole_tour_and_keeps_the_project_when_asked() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("hello");
    let _stop = StopAgent(dir.clone());
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
        "$ cutover ship --to production",
        "$ cutover status",
        "$ cutover proof production --verify",
        "$ cutover audit verify",
        "$ cutover metrics --env production",
    ] {
        assert!(stdout.contains(step), "missing step {step}:\n{stdout}");
    }
    assert!(stdout.contains("audit chain intact"), "{stdout}");
    assert!(
        stdout.contains("shipped 0.1.0: live in staging, production"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shipped 0.2.0: live in staging, production"),
        "{stdout}"
    );
    // The faulty 0.3.0 never reached production.
    assert!(stdout.contains("deployment #5 rolled_back"), "{stdout}");
    // Kept, the demo leaves its dashboard running: the board names what production runs.
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the dashboard: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dashboard URL:\n{stdout}"));
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut conn,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut conn, &mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("0.2.0"), "{page}");
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
    assert_eq!(
        String::from_utf8_lossy(&tags.stdout),
        "v0.1.0\nv0.2.0\nv0.3.0\n"
    );
    assert!(
        std::fs::read_to_string(dir.join("CHANGELOG.md"))
            .unwrap()
            .contains("## 0.3.0")
    );
    let project = dir.to_str().unwrap();
    let status = p.cutover(&["--project", project, "--json", "status"]);
    let status = status.success().json();
    let releases: Vec<_> = status["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].clone(), e["release"].clone()))
        .collect();
    assert_eq!(
        releases,
        [
            ("production".into(), "0.2.0".into()),
            ("staging".into(), "0.2.0".into())
        ],
        "{status}"
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

/// Kept means still running: whatever happens, nothing the demo started outlives the test.
struct StopAgent(std::path::PathBuf);

impl Drop for StopAgent {
    fn drop(&mut self) {
        let _ = hermetic_env(&mut Command::new(env!("CARGO_BIN_EXE_cutover")))
            .arg("--project")
            .arg(&self.0)
            .args(["agent", "stop", "--local", "--all"])
            .output();
        crate::deploy::kill_processes_under(&self.0);
    }
}
