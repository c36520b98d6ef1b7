//! `cutover check`, `cutover check log`, `cutover queue` and `cutover worker` through the real
//! binary: checks that pass, fail, are advisory, hang past their timeout or do not exist.

use crate::support::Project;

const CONFIG: &str = r#"
[project]
name = "sample"

[[checks]]
name = "unit"
run = ["sh", "-c", "echo unit tests ok; echo from-stderr >&2"]

[[checks]]
name = "lint"
run = ["sh", "-c", "echo 'lint: 2 problems'; exit 3"]

[[checks]]
name = "style"
run = ["sh", "-c", "echo nit; exit 1"]
required = false

[[checks]]
name = "hang"
run = ["sh", "-c", "echo waiting; sleep 1000"]
timeout = "300ms"

[[checks]]
name = "missing"
run = ["cutover-no-such-checker"]
"#;

fn project() -> Project {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    p
}

#[test]
fn checks_run_through_the_queue_and_fail_on_required_ones() {
    let p = project();
    let run = p.cutover(&["--json", "check", "--workers", "3"]);
    run.code(1);
    let doc = run.json();
    assert_eq!(doc["ok"], false, "{doc}");
    let summary: Vec<(String, String, bool)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["blocks"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("unit", "passed", false),
        ("lint", "failed", true),
        ("style", "failed", false),
        ("hang", "timed_out", true),
        ("missing", "error", true),
    ];
    assert_eq!(
        summary,
        expected.map(|(n, s, b)| (n.to_owned(), s.to_owned(), b))
    );
    let human = p.cutover(&["check", "--only", "unit", "--only", "style"]);
    human.success();
    assert!(human.stdout.contains("✓ unit"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .contains("! style (advisory): exited with status 1"),
        "{}",
        human.stdout
    );

    let listed = p.cutover(&["--json", "queue", "ls", "--kind", "check"]);
    listed.success();
    let jobs = listed.json()["jobs"].as_array().unwrap().clone();
    let state_of = |name: &str| {
        jobs.iter()
            .find(|j| j["payload"]["check"]["name"] == name)
            .map(|j| {
                (
                    j["state"].as_str().unwrap().to_owned(),
                    j["id"].as_i64().unwrap(),
                )
            })
            .unwrap()
    };
    assert_eq!(state_of("unit").0, "succeeded");
    assert_eq!(state_of("lint").0, "failed");
    assert_eq!(state_of("hang").0, "failed");
    assert_eq!(state_of("missing").0, "failed");

    let log = p.cutover(&["check", "log", &state_of("lint").1.to_string()]);
    log.success();
    assert_eq!(log.stdout, "lint: 2 problems\n");
    let log = p.cutover(&["--json", "check", "log", &state_of("hang").1.to_string()]);
    log.success();
    let result = &log.json()["result"];
    assert_eq!(result["status"], "timed_out");
    assert_eq!(result["output"], "waiting\n");
    assert_eq!(
        result["reason"],
        "timed out after 300ms; killed with its process group"
    );
    let log = p.cutover(&["--json", "check", "log", &state_of("missing").1.to_string()]);
    assert_eq!(log.json()["result"]["status"], "error");
    assert!(
        log.json()["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("command `cutover-no-such-checker` not found")
    );
}

#[test]
fn human_check_output_names_each_failure() {
    let p = project();
    let run = p.cutover(&[
        "check", "--only", "lint", "--only", "missing", "--only", "unit",
    ]);
    run.code(1);
    assert!(run.stdout.contains("✓ unit"), "{}", run.stdout);
    assert!(
        run.stdout.contains("✗ lint: exited with status 3"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("✗ missing: command `cutover-no-such-checker` not found"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("error: required check(s) failed: lint, missing"),
        "{}",
        run.stderr
    );
    let bad = p.cutover(&["check", "--only", "nope"]);
    bad.code(2);
    assert!(
        bad.stderr.contains("no check named `nope` in cutover.toml"),
        "{}",
        bad.stderr
    );
}

#[test]
fn queue_cancel_and_bump_report_bad_ids_clearly() {
    let p = project();
    p.cutover(&["check", "--only", "unit"]).success();
    let id = p.cutover(&["--json", "queue"]).json()["jobs"][0]["id"]
        .as_i64()
        .unwrap();
    let cancel = p.cutover(&["queue", "cancel", &id.to_string()]);
    cancel.code(2);
    assert!(
        cancel
            .stderr
            .contains(&format!("job {id} is succeeded, not queued")),
        "{}",
        cancel.stderr
    );
    let bump = p.cutover(&["queue", "bump", "4242", "--priority", "-5"]);
    bump.code(2);
    assert!(
        bump.stderr.contains("job 4242 does not exist"),
        "{}",
        bump.stderr
    );
    let log = p.cutover(&["check", "log", "4242"]);
    log.code(2);
    let empty = p.cutover(&["queue", "--state", "queued"]);
    empty.success();
    assert_eq!(empty.stdout, "no jobs\n");
}

#[test]
fn worker_runs_until_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let p = project();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    crate::support::hermetic_env(&mut cmd)
        .current_dir(p.path())
        .args([
            "worker",
            "--workers",
            "2",
            "--concurrency",
            "3",
            "--max-batch",
            "8",
            "--flush-ms",
            "5",
        ])
        .env("NO_COLOR", "1");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("2 worker(s) × 3 job(s) at once"), "{first}");
    assert!(
        first.contains("completions within 5 ms, up to 8 per transaction"),
        "{first}"
    );
    // Another process uses the queue meanwhile (its own workers or this one run the job).
    p.cutover(&["check", "--only", "unit", "--workers", "1"])
        .success();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("stopped: "), "{stdout}");
}

#[test]
fn worker_batch_settings_out_of_range_are_refused_with_exit_2() {
    let p = project();
    for (args, needle) in [
        (vec!["worker", "--concurrency", "0"], "--concurrency <N>"),
        (vec!["worker", "--workers", "0"], "--workers <N>"),
        (vec!["worker", "--max-batch", "0"], "--max-batch <N>"),
        (vec!["worker", "--flush-ms", "20000"], "--flush-ms <MS>"),
        (vec!["worker", "--concurrency", "lots"], "--concurrency <N>"),
        (
            vec!["worker", "--flush-ms", "9000"],
            "--flush-ms 9000 is too long for the 30 s job lease",
        ),
    ] {
        let run = p.cutover(&args);
        run.code(2);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    // Nothing ran: no store was even created for the refused ones.
    assert!(!p.path().join(".cutover/state.db").exists());
}
