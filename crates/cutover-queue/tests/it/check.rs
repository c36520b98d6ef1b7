//! Real processes through the check runner: output capture, exit codes, missing commands,
//! timeouts that kill the whole process group.

use std::path::Path;

use cutover_queue::check::{CheckSpec, CheckStatus, run_check};

fn spec(name: &str, argv: &[&str], dir: &Path, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        timeout_ms,
        env: vec![("CHECK_GREETING".into(), "hello from env".into())],
        dir: dir.to_path_buf(),
        required: true,
    }
}

#[tokio::test]
async fn passing_check_captures_both_streams_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let s = spec(
        "greet",
        &[
            "sh",
            "-c",
            "echo \"$CHECK_GREETING\"; pwd; echo to-stderr >&2",
        ],
        &dir.path().join("sub"),
        10_000,
    );
    let r = run_check(&s, 4096).await;
    assert_eq!(r.status, CheckStatus::Passed, "{r:?}");
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.reason, None);
    let sub = dir.path().join("sub").canonicalize().unwrap();
    assert_eq!(
        r.output,
        format!("hello from env\n{}\nto-stderr\n", sub.display())
    );
}

#[tokio::test]
async fn failing_check_reports_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_check(
        &spec(
            "fail",
            &["sh", "-c", "echo boom; exit 3"],
            dir.path(),
            10_000,
        ),
        4096,
    )
    .await;
    assert_eq!(r.status, CheckStatus::Failed);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.reason.as_deref(), Some("exited with status 3"));
    assert_eq!(r.output, "boom\n");
}

#[tokio::test]
async fn missing_command_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_check(
        &spec(
            "lint",
            &["cutover-no-such-linter", "--all"],
            dir.path(),
            10_000,
        ),
        4096,
    )
    .await;
    assert_eq!(r.status, CheckStatus::Error);
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "command `cutover-no-such-linter` not found (check `lint`: is it installed and on PATH, or is the path right?)"
        )
    );
    let gone = run_check(
        &spec("lint", &["true"], &dir.path().join("nope"), 10_000),
        4096,
    )
    .await;
    assert_eq!(gone.status, CheckStatus::Error);
    assert!(gone.reason.unwrap().contains("working directory"));
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose; /proc says which.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn hanging_check_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    // The grandchild ignores SIGTERM and holds the output pipe open: only killing the whole
    // group ends it.
    let script = format!(
        "(trap '' TERM; sleep 1000) & echo $! > {}; echo started; sleep 1000",
        pidfile.display()
    );
    let r = run_check(&spec("hang", &["sh", "-c", &script], dir.path(), 300), 4096).await;
    assert_eq!(r.status, CheckStatus::TimedOut, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some("timed out after 300ms; killed with its process group")
    );
    assert_eq!(r.output, "started\n");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The kill is asynchronous; give the kernel a moment to reap.
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "grandchild {pid} survived the timeout");
}

#[tokio::test]
async fn large_output_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_check(
        &spec(
            "loud",
            &[
                "sh",
                "-c",
                "echo first; head -c 100000 /dev/zero | tr '\\0' x; echo; echo last",
            ],
            dir.path(),
            10_000,
        ),
        1000,
    )
    .await;
    assert_eq!(r.status, CheckStatus::Passed);
    assert!(r.output.starts_with("first\n"), "{}", r.output);
    assert!(r.output.ends_with("x\nlast\n"), "{}", r.output);
    assert_eq!(r.omitted_bytes, 6 + 100_000 + 1 + 5 - 1000);
}
