//! `cutover logs ENV --host H` for a remote host: a real `cutover serve`, a real agent following it
//! over TCP (not the local shortcut), a deployed `cutover testapp`, and the logs read through the
//! control plane (tail, `--follow`, the errors).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::deploy::{Deployable, eventually, free_ports};
use crate::support::hermetic_env;

/// A child process stopped (SIGTERM) and reaped on drop; an agent given its root is told to stop
/// its services as well, so that nothing outlives the test.
struct Proc(Child, Option<std::path::PathBuf>);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(root) = &self.1 {
            let _ = std::fs::write(root.join("stop-services"), "all\n");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    spawn_with(dir, args, Stdio::null())
}

fn spawn_with(dir: &Path, args: &[&str], stderr: Stdio) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    hermetic_env(&mut cmd)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    cmd.spawn().unwrap()
}

/// The lines a child prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    read_lines(child.stdout.take().unwrap())
}

/// The lines of `out`, as they come, on a thread of their own (so that the child never blocks
/// on a full pipe).
fn read_lines(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let out = BufReader::new(out);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn logs_of_a_remote_host_come_through_the_control_plane_tail_and_follow() {
    let ports = free_ports(3);
    let prod = format!(
        "[environments.prod]\nhosts = [{{ name = \"h2\", listen = \"127.0.0.1:{}\", ports = {{ blue = {}, green = {} }} }}]\nlisten = \"127.0.0.1:1\"\nstrategy = \"blue-green\"\nobserve = \"300ms\"\n\n[environments.other]\nhosts = [\"h9\"]\nlisten = \"127.0.0.1:2\"\n",
        ports[0], ports[1], ports[2]
    );
    let d = Deployable::new("", &prod);
    d.p.write(".gitignore", "/.cutover/\n/agents/\n");
    d.p.git(&["commit", "-q", "-am", "chore: a remote host"]);
    d.release("1.0.0");
    d.release("2.0.0");
    let p = &d.p;
    p.cutover(&["host", "add", "h2", "--token-file", "h2.token"])
        .success();

    let mut serve = spawn(p.path(), &["--json", "serve", "--listen", "127.0.0.1:0"]);
    let serve_out = lines_of(&mut serve);
    let serve = Proc(serve, None);
    let mut doc = String::new();
    while serde_json::from_str::<serde_json::Value>(&doc).is_err() {
        doc.push_str(&serve_out.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let url = doc["url"].as_str().unwrap().to_owned();
    let root = p.path().join("agents/h2");
    let agent = Proc(
        spawn(
            p.path(),
            &[
                "agent",
                "--name",
                "h2",
                "--control",
                &url,
                "--token-file",
                "h2.token",
                "--root",
                root.to_str().unwrap(),
            ],
        ),
        Some(root.clone()),
    );
    eventually("h2 registers", Duration::from_secs(30), || {
        let hosts = p.cutover(&["--json", "host", "ls"]).json();
        hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "h2" && h["agent_version"].is_string())
    });
    d.cutover(&["deploy", "prod", "--version", "1.0.0"])
        .success();

    // The tail: the app's own output line, through the control plane.
    let blue = format!("listening on http://127.0.0.1:{}", ports[1]);
    let run = p.cutover(&["logs", "prod", "--host", "h2", "--control", &url]);
    run.success();
    assert!(
        run.stdout
            .lines()
            .any(|l| l.strip_prefix("blue/out | ") == Some(blue.as_str())),
        "{}",
        run.stdout
    );
    let json = p
        .cutover(&[
            "--json",
            "logs",
            "prod",
            "--host",
            "h2",
            "--control",
            &url,
            "--slot",
            "blue",
        ])
        .json();
    assert_eq!(json["host"], "h2");
    assert!(
        json["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["stream"] == "out"
                && l["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| *x == blue.as_str())),
        "{json}"
    );
    // Every read is in the audit log, with who asked.
    let audit = p.cutover(&["--json", "audit"]).json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "logs.read" && e["subject"] == "host:h2"),
        "{audit}"
    );

    // Following: the new slot's first line, written after the follow started, shows up.
    let mut follow = spawn_with(
        p.path(),
        &[
            "logs",
            "prod",
            "--host",
            "h2",
            "--control",
            &url,
            "--follow",
            "--slot",
            "green",
            "-n",
            "0",
        ],
        Stdio::piped(),
    );
    let followed = lines_of(&mut follow);
    let said = read_lines(follow.stderr.take().unwrap());
    let follow = Proc(follow, None);
    // The deployment starts once the agent follows the files (the CLI says so on stderr), so the
    // new slot's first line cannot be written before.
    let mut stderr = Vec::new();
    while !stderr.iter().any(|l: &String| l.contains("following")) {
        match said.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => stderr.push(line),
            Err(e) => panic!("the follow never started ({e}); stderr: {stderr:?}"),
        }
    }
    assert!(
        stderr.last().unwrap().contains("the logs of host `h2`"),
        "{stderr:?}"
    );
    d.cutover(&["deploy", "prod", "--version", "2.0.0"])
        .success();
    let green = format!("green/out | listening on http://127.0.0.1:{}", ports[2]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(&green) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match followed.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the new line never came; seen {seen:?}"),
        }
    }
    drop(follow);

    // Unknown hosts: not in the environment, or never registered; exit 2 with a hint.
    let unknown = p.cutover(&["logs", "prod", "--host", "nope", "--control", &url]);
    unknown.code(2);
    assert!(unknown.stderr.contains("h2"), "{}", unknown.stderr);
    let unregistered = p.cutover(&["logs", "other", "--host", "h9", "--control", &url]);
    unregistered.code(2);
    assert!(
        unregistered.stderr.contains("not registered")
            && unregistered.stderr.contains("cutover host add h9"),
        "{}",
        unregistered.stderr
    );
    // No control plane there: said, with where to look.
    let down = p.cutover(&[
        "logs",
        "prod",
        "--host",
        "h2",
        "--control",
        "http://127.0.0.1:1",
    ]);
    down.code(1);
    assert!(down.stderr.contains("cutover serve"), "{}", down.stderr);

    drop(agent);
    drop(serve);
}
