//! `cutover token create|ls|revoke`, and `cutover serve` answering with those tokens: a real
//! server process on a loopback port, stopped by SIGTERM.

use std::io::{BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

use crate::support::{Project, hermetic_env};

const CONFIG: &str = r#"[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]

[environments.staging]
hosts = ["web-1"]
listen = "127.0.0.1:18080"
"#;

/// One HTTP/1.1 GET on a fresh connection: (status, body).
fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn tokens_are_created_listed_revoked_and_honoured_by_serve() {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);

    let created = p
        .cutover(&[
            "token", "create", "--name", "ci", "--scope", "deployer", "--env", "staging", "--json",
        ])
        .success()
        .json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("cutover_") && secret.len() == 51,
        "{secret}"
    );
    assert_eq!(created["scope"], "deployer");
    assert_eq!(created["environments"], serde_json::json!(["staging"]));
    let human = p.cutover(&["token", "create", "--name", "viewer", "--scope", "viewer"]);
    human.success();
    let viewer = human.stdout.trim().to_owned();
    assert!(viewer.starts_with("cutover_"), "{}", human.stdout);
    assert!(human.stderr.contains("only time"), "{}", human.stderr);

    // Bad input changes nothing and exits 2.
    p.cutover(&["token", "create", "--name", "ci", "--scope", "viewer"])
        .code(2);
    p.cutover(&["token", "create", "--name", "x", "--scope", "root"])
        .code(2);
    p.cutover(&[
        "token", "create", "--name", "x", "--scope", "deployer", "--env", "nowhere",
    ])
    .code(2);
    p.cutover(&["token", "revoke", "99"]).code(2);

    let listed = p.cutover(&["token", "ls", "--json"]).success().json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci", "viewer"]);
    let all = p.cutover(&["token", "ls"]).success().stdout.clone();
    assert!(
        !all.contains(&secret[8..]) && !all.contains(&viewer[8..]),
        "no secret is listed"
    );
    assert!(all.contains("ci") && all.contains("staging"), "{all}");

    let ci_id = listed[0]["id"].as_i64().unwrap().to_string();
    p.cutover(&["token", "revoke", &ci_id]).success();
    p.cutover(&["token", "revoke", &ci_id]).code(2);
    let audit = p.cutover(&["audit", "--json"]).success().stdout.clone();
    assert!(audit.contains("token.create") && audit.contains("token.revoke"));
    assert!(
        !audit.contains(&secret[8..]),
        "the audit log never holds a secret"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    hermetic_env(&mut cmd)
        .current_dir(p.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The first JSON document on stdout says where it listens (kept open until the end).
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let started: serde_json::Value = serde_json::Deserializer::from_reader(&mut stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let addr = started["listen"].as_str().unwrap().to_owned();

    let (status, body) = http_get(&addr, "/api/v1/status", Some(&viewer));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"staging\""), "{body}");
    assert_eq!(
        http_get(&addr, "/api/v1/status", Some(&secret)).0,
        401,
        "revoked"
    );
    assert_eq!(http_get(&addr, "/api/v1/status", None).0, 401);
    assert_eq!(http_get(&addr, "/api/openapi.json", None).0, 200);
    // The dashboard is on the same listener, behind the same tokens.
    assert_eq!(http_get(&addr, "/", None).0, 401);
    let (status, page) = http_get(&addr, "/", Some(&viewer));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("staging"), "{page}");
    let (status, metrics) = http_get(&addr, "/metrics", Some(&viewer));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cutover_auth_failures_total{reason=\"revoked\"} 1"),
        "{metrics}"
    );

    // SIGTERM: a graceful stop, exit 0.
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
