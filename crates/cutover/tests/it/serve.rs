//! `cutover serve` as a process: a graceful stop that open dashboard event streams do not hold
//! up and that lets a request in flight finish; a deployment cut off by a killed server is
//! resumed when the server starts again, and its job, run again, adopts it.

use std::io::{BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::{Deployable, eventually, served_version};
use crate::support::{Project, hermetic_env};

const CONFIG: &str = r#"[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]

[environments.staging]
hosts = ["web-1"]
listen = "127.0.0.1:18080"
"#;

/// A running `cutover serve --json` on a loopback port, and where it listens.
struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Server {
    fn start(p: &Project, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        hermetic_env(&mut cmd)
            .current_dir(p.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // The first JSON document on stdout says where it listens.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let started: serde_json::Value = serde_json::Deserializer::from_reader(&mut stdout)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        let addr = started["listen"].as_str().unwrap().to_owned();
        Self {
            child,
            _stdout: stdout,
            addr,
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits at most `bound` for the process to end: its exit status and stderr.
    fn wait(mut self, bound: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                let _ = self.child.wait();
                panic!("cutover serve did not stop within {bound:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    }
}

/// Reads an HTTP/1.1 response head (through the blank line): the status line and the headers.
fn read_head(r: &mut impl std::io::BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert_ne!(
            r.read_line(&mut line).unwrap(),
            0,
            "EOF inside a head: {head}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

#[test]
fn sigterm_ends_event_streams_lets_requests_in_flight_finish_and_exits_0() {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    let token = p
        .cutover(&[
            "token", "create", "--name", "ops", "--scope", "deployer", "--json",
        ])
        .success()
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = Server::start(&p, &["--workers", "1"]);
    let addr = server.addr.clone();

    // A browser's event stream, left open.
    let mut sse = TcpStream::connect(&addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        sse,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut sse = BufReader::new(sse);
    let head = read_head(&mut sse);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");

    // A request in flight: the server has read its head and its handler waits for the body
    // (`100 Continue` says so) when the signal comes.
    let body = r#"{"environment":"staging","summary":"sent across the shutdown"}"#;
    let mut api = TcpStream::connect(&addr).unwrap();
    api.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        api,
        "POST /api/v1/incidents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut api_reader = BufReader::new(api.try_clone().unwrap());
    let interim = read_head(&mut api_reader);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    server.signal(rustix::process::Signal::TERM);

    // The event stream ends by itself (a bounded read: the socket's timeout fails the test),
    // and properly: with the last chunk of its chunked body, not cut off (as it would be once the
    // shutdown grace ran out).
    let mut rest = Vec::new();
    sse.read_to_end(&mut rest)
        .expect("the event stream ends at shutdown");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");

    // The request in flight still completes, after the stream ended (so during the shutdown).
    api.write_all(body.as_bytes()).unwrap();
    let head = read_head(&mut api_reader);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let mut answer = String::new();
    api_reader.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("sent across the shutdown"), "{answer}");

    // Generous: the point is "promptly, not when the browser goes away".
    let (status, stderr) = server.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    let incidents = p.cutover(&["incident", "ls", "--json"]).success().json();
    assert_eq!(
        incidents["incidents"][0]["summary"], "sent across the shutdown",
        "{incidents}"
    );
}

/// The deployments of the project, newest first, read from its store.
fn deployments(p: &Project) -> Vec<cutover_store::Deployment> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cutover_store::open_sqlite(&p.path().join(".cutover/state.db"))
            .await
            .unwrap();
        let list = store
            .list_deployments(&cutover_store::DeploymentFilter::default())
            .await
            .unwrap();
        store.close().await;
        list
    })
}

/// Job `id` of the project's queue, read from its store.
fn job(p: &Project, id: i64) -> cutover_store::Job {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cutover_store::open_sqlite(&p.path().join(".cutover/state.db"))
            .await
            .unwrap();
        let job = store.get_job(id).await.unwrap().unwrap();
        store.close().await;
        job
    })
}

/// The processes whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn kill_9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// The server and its deploy job's process are killed mid-deployment. Started again, the server
/// resumes the deployment, and the job, run again once its lease ran out, adopts it: one
/// deployment for the job, live once, and the job succeeds with it.
#[test]
fn a_deployment_cut_off_by_a_killed_server_is_resumed_when_it_starts_again() {
    // The app takes a few seconds to start: the deployment is surely under way when it is cut.
    let d = Deployable::new("env = { TESTAPP_SLOW_START = \"4\" }", "");
    d.release("1.0.0");
    d.release("2.0.0");
    d.cutover(&["deploy", "staging", "--version", "1.0.0"])
        .success();
    let token = d
        .cutover(&[
            "token", "create", "--name", "ops", "--scope", "deployer", "--json",
        ])
        .success()
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // A short job lease, so that the killed server's job runs again soon after the restart (not
    // so short that a late heartbeat on a loaded machine loses it while the first server lives).
    let serve_args = ["--workers", "1", "--job-lease", "5"];
    let server = Server::start(&d.p, &serve_args);
    let body = r#"{"environment":"staging","version":"2.0.0"}"#;
    let mut api = TcpStream::connect(&server.addr).unwrap();
    write!(
        api,
        "POST /api/v1/deployments HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    api.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let accepted: serde_json::Value =
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let job_id = accepted["job"].as_i64().unwrap();

    let started = |p: &Project| {
        deployments(p)
            .into_iter()
            .find(|x| x.release_version == "2.0.0" && x.finished_at.is_none())
    };
    eventually(
        "the server's job starts deploying 2.0.0",
        Duration::from_secs(60),
        || started(&d.p).is_some(),
    );
    // The server and the job it runs die at once (kill -9), mid-deployment.
    let jobs = children_of(server.child.id());
    assert!(!jobs.is_empty(), "the deploy job runs as a child process");
    kill_9(server.child.id());
    for pid in jobs {
        kill_9(pid);
    }
    let (status, _) = server.wait(Duration::from_secs(10));
    assert!(!status.success());
    let cut = started(&d.p).expect("the deployment was cut off unfinished");

    // Started again, the server drives it to its end, and the job, run again once its lease
    // ran out, takes the deployment over instead of deploying 2.0.0 a second time.
    let server = Server::start(&d.p, &serve_args);
    eventually(
        "the cut-off deployment is finished",
        Duration::from_secs(120),
        || {
            deployments(&d.p)
                .iter()
                .any(|x| x.id == cut.id && x.finished_at.is_some())
        },
    );
    eventually(
        "the deploy job, run again, ends",
        Duration::from_secs(120),
        || ["succeeded", "failed"].contains(&job(&d.p, job_id).state.as_str()),
    );
    let ended = job(&d.p, job_id);
    assert_eq!(ended.state, "succeeded", "{ended:?}");
    assert_eq!(ended.attempts, 2, "{ended:?}");
    let result = ended.result.unwrap();
    assert_eq!(result["output"]["deployment"], cut.id, "{result}");
    assert_eq!(result["output"]["state"], "live", "{result}");
    let said = result["stderr"].as_str().unwrap();
    assert!(
        said.contains(&format!(
            "adopting deployment {} (2.0.0 to staging)",
            cut.id
        )),
        "{said}"
    );
    server.signal(rustix::process::Signal::TERM);
    let (status, stderr) = server.wait(Duration::from_secs(120));
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains(&format!("deployment {} (2.0.0 to staging): live", cut.id)),
        "{stderr}"
    );
    let all = deployments(&d.p);
    let resumed = all.iter().find(|x| x.id == cut.id).unwrap();
    assert_eq!(resumed.state, "live");
    for x in &all {
        assert!(
            x.finished_at.is_some(),
            "deployment {} is left {}",
            x.id,
            x.state
        );
    }
    assert_eq!(served_version(d.listen).as_deref(), Some("2.0.0"));
    // The audit log tells the resumption like any other step of the deployment.
    let audit = d.cutover(&["--json", "audit"]).success().json();
    let to_live = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "deployment.transition"
                && e["subject"] == format!("deployment:{}", cut.id)
                && e["payload"]["to"] == "live"
        })
        .count();
    assert_eq!(to_live, 1, "{audit}");
    // One deployment of 2.0.0, the one the job created, linked to it in its creation event.
    let of_2 = all.iter().filter(|x| x.release_version == "2.0.0").count();
    assert_eq!(of_2, 1, "{all:?}");
    let created: Vec<&serde_json::Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "deployment.create" && e["payload"]["job"] == job_id)
        .collect();
    assert_eq!(created.len(), 1, "{audit}");
    assert_eq!(created[0]["subject"], format!("deployment:{}", cut.id));
    d.cutover(&["audit", "verify"]).success();
}
