//! `cutover host add/ls` and `cutover agent` through the real binary, against a real control plane
//! on a unix socket (served in-process from the same SQLite store).

use std::time::Duration;

use crate::support::Project;

#[test]
fn host_add_writes_a_private_token_and_ls_never_shows_its_hash() {
    let p = Project::new();
    p.cutover(&["host", "ls"]).success();
    p.cutover(&["host", "add", "web-1", "--token-file", "web-1.token"])
        .success();
    let token = p.read("web-1.token");
    assert_eq!(token.trim().len(), 64, "{token}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p.path().join("web-1.token"))
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The file is never overwritten.
    p.cutover(&["host", "add", "web-1", "--token-file", "web-1.token"])
        .code(2);
    let run = p.cutover(&["--json", "host", "ls"]);
    let hosts = run.success().json();
    assert_eq!(hosts["hosts"][0]["name"], "web-1");
    assert!(hosts["hosts"][0]["last_seen"].is_null());
    assert!(!run.stdout.contains("sha256") && !run.stdout.contains(token.trim()));
}

#[test]
fn agent_refuses_bad_input_before_starting() {
    let p = Project::new();
    p.write("empty.token", "\n");
    p.write("ok.token", "abc\n");
    let root = p.path().join("agent");
    let root = root.to_str().expect("utf-8 path");
    for (token, url) in [
        ("empty.token", "unix:/tmp/none.sock"),
        ("missing.token", "unix:/tmp/none.sock"),
        ("ok.token", "http://10.1.2.3:7000"),
        ("ok.token", "ftp://x"),
    ] {
        let run = p.cutover(&[
            "agent",
            "--name",
            "web-1",
            "--control",
            url,
            "--token-file",
            token,
            "--root",
            root,
        ]);
        run.code(2);
    }
}

#[test]
fn the_agent_registers_with_a_control_plane_and_stops_on_sigterm() {
    let p = Project::new();
    p.cutover(&["host", "add", "web-1", "--token-file", "web-1.token"])
        .success();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let store = rt
        .block_on(cutover_store::open_sqlite(
            &p.path().join(".cutover/state.db"),
        ))
        .expect("store");
    let socket = p.path().join(".cutover/control.sock");
    let state = cutover_control::ControlState::new(
        store.clone(),
        p.path().join(".cutover/artifacts/sha256"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(cutover_control::serve_unix_until(
        socket.clone(),
        state,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    crate::support::hermetic_env(&mut cmd)
        .current_dir(p.path())
        .args([
            "agent",
            "--name",
            "web-1",
            "--token-file",
            "web-1.token",
            "--root",
            "agent",
        ])
        .arg("--control")
        .arg(format!("unix:{}", socket.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("cutover agent starts");
    // A liveness bound, not a timing assertion.
    let mut registered = false;
    for _ in 0..600 {
        let host = rt
            .block_on(store.get_host("web-1"))
            .expect("read")
            .expect("host");
        if host.agent_version.is_some() && host.last_seen.is_some() {
            registered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    let out = child.wait_with_output().expect("agent exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(registered, "the agent never registered: {stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(p.path().join("agent/agent.json").exists());
    let token = p.read("web-1.token");
    assert!(!stderr.contains(token.trim()));
    let _ = stop.send(());
    rt.block_on(server).expect("server task").expect("server");
}
