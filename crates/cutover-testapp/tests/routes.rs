//! Spawns the built test app and checks every route and fault switch over real sockets.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cutover-testapp");

struct App {
    child: Child,
    addr: SocketAddr,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in [
        "PORT",
        "CUTOVER_VERSION",
        "TESTAPP_UNHEALTHY",
        "TESTAPP_SLOW_START",
        "TESTAPP_CRASH_AFTER",
        "TESTAPP_ERROR_RATE",
        "TESTAPP_WRONG_VERSION",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Starts the app and waits for its "listening on" line.
fn start(args: &[&str], env: &[(&str, &str)]) -> App {
    let mut child = command(args, env).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    App { child, addr }
}

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nX-Probe: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, "")
}

use cutover_testkit::free_port;

#[test]
fn routes_answer() {
    let app = start(&["--port", "0", "--version", "1.2.3"], &[]);
    assert_eq!(
        get(app.addr, "/"),
        (200, "hello from cutover-testapp 1.2.3\n".into())
    );
    assert_eq!(get(app.addr, "/health"), (200, "ok".into()));
    assert_eq!(get(app.addr, "/version"), (200, "1.2.3".into()));
    assert_eq!(
        get(app.addr, "/slow?ms=20"),
        (200, "slept 20ms on 1.2.3\n".into())
    );
    assert_eq!(get(app.addr, "/slow").0, 400);
    assert_eq!(
        get(app.addr, "/stream?chunks=3&ms=10"),
        (200, "chunk 1\nchunk 2\nchunk 3\n".into())
    );
    assert_eq!(get(app.addr, "/stream?chunks=3").0, 400);
    assert_eq!(get(app.addr, "/nope").0, 404);
    let (status, headers) = get(app.addr, "/headers");
    assert_eq!(status, 200);
    assert!(headers.contains("x-probe: yes\n"), "{headers}");
    assert_eq!(
        request(app.addr, "POST", "/echo", "some body"),
        (200, "some body".into())
    );
}

#[test]
fn env_sets_port_and_version() {
    let port = free_port().to_string();
    let app = start(&[], &[("PORT", &port), ("CUTOVER_VERSION", "9.9.9")]);
    assert_eq!(app.addr.port().to_string(), port);
    assert_eq!(get(app.addr, "/version"), (200, "9.9.9".into()));
}

#[test]
fn default_version_is_zero() {
    let app = start(&["--port", "0"], &[]);
    assert_eq!(get(app.addr, "/version"), (200, "0.0.0".into()));
}

#[test]
fn unhealthy_by_flag_and_env() {
    let app = start(&["--port", "0", "--unhealthy"], &[]);
    assert_eq!(get(app.addr, "/health").0, 503);
    assert_eq!(get(app.addr, "/").0, 200);
    let app = start(&["--port", "0"], &[("TESTAPP_UNHEALTHY", "1")]);
    assert_eq!(get(app.addr, "/health").0, 503);
    let app = start(&["--port", "0"], &[("TESTAPP_UNHEALTHY", "false")]);
    assert_eq!(get(app.addr, "/health").0, 200);
}

#[test]
fn wrong_version_by_flag_and_env() {
    let app = start(
        &[
            "--port",
            "0",
            "--version",
            "2.0.0",
            "--wrong-version",
            "1.0.0",
        ],
        &[],
    );
    assert_eq!(get(app.addr, "/version"), (200, "1.0.0".into()));
    assert_eq!(
        get(app.addr, "/"),
        (200, "hello from cutover-testapp 2.0.0\n".into())
    );
    let app = start(
        &["--port", "0", "--version", "2.0.0"],
        &[("TESTAPP_WRONG_VERSION", "0.9.0")],
    );
    assert_eq!(get(app.addr, "/version"), (200, "0.9.0".into()));
}

#[test]
fn error_rate_fails_an_exact_fraction() {
    let app = start(&["--port", "0", "--error-rate", "0.25"], &[]);
    let statuses: Vec<u16> = (0..8).map(|_| get(app.addr, "/").0).collect();
    assert_eq!(statuses, [200, 200, 200, 500, 200, 200, 200, 500]);
    // Health is never failed by the switch: the fault is in the app, not its probe.
    assert!((0..8).all(|_| get(app.addr, "/health").0 == 200));
    let app = start(&["--port", "0"], &[("TESTAPP_ERROR_RATE", "1")]);
    assert_eq!(get(app.addr, "/").0, 500);
}

#[test]
fn error_rate_out_of_range_is_refused() {
    let out = command(&["--port", "0", "--error-rate", "1.5"], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("between 0 and 1"), "{stderr}");
}

#[test]
fn slow_start_binds_late() {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let mut child = command(&["--port", &port.to_string(), "--slow-start", "2"], &[])
        .spawn()
        .unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port must not be bound during the slow start"
    );
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(get(addr, "/health"), (200, "ok".into()));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn crash_after_exits_with_one() {
    let mut app = start(&["--port", "0", "--crash-after", "0.3"], &[]);
    let status = app.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    // Also through the environment.
    let mut app = start(&["--port", "0"], &[("TESTAPP_CRASH_AFTER", "0.2")]);
    assert_eq!(app.child.wait().unwrap().code(), Some(1));
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let mut app = start(&["--port", "0", "--version", "3.0.0"], &[]);
    let addr = app.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow?ms=1500"));
    // Make sure the request is in flight before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let pid = app.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        slow.join().unwrap(),
        (200, "slept 1500ms on 3.0.0\n".into())
    );
    assert_eq!(app.child.wait().unwrap().code(), Some(0));
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn upgrade_echoes_raw_bytes() {
    let app = start(&["--port", "0"], &[]);
    let mut s = TcpStream::connect(app.addr).unwrap();
    write!(
        s,
        "GET /upgrade HTTP/1.1\r\nHost: test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    s.write_all(b"ping 1").unwrap();
    let mut buf = [0u8; 6];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping 1");
}
