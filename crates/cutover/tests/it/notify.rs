//! `cutover notice --send` delivers through the `[notify]` channels: a real HTTP receiver on
//! loopback checks the signature; a dead one gets the failure recorded and the command succeeds.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;

use crate::support::Project;

/// One HTTP request as received: lower-cased header names, and the body.
type Request = (Vec<(String, String)>, Vec<u8>);

/// An HTTP/1.1 server on loopback answering 200 to every request; requests arrive on the channel.
fn receiver() -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn project(url: &str) -> Project {
    let p = Project::new();
    p.write(
        "cutover.toml",
        &format!(
            "[project]\nname = \"hello\"\n\n[notify]\nevents = [\"notice\"]\n\n[[notify.webhook]]\nurl = \"{url}\"\nsecret = {{ env = \"HOOK_SECRET\" }}\n"
        ),
    );
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: greet"]);
    p
}

fn actions(p: &Project) -> Vec<String> {
    let audit = p.cutover(&["--json", "audit"]);
    audit.success();
    audit.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn notice_send_goes_to_the_webhook_signed() {
    let (url, rx) = receiver();
    let p = project(&url);
    let run = p.cutover_with(
        &["--json", "notice", "--eta", "2026-12-01", "--send"],
        &[("HOOK_SECRET", "s3cret")],
    );
    run.success();
    let doc = run.json();
    let channels = doc["notifications"]["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1, "{doc}");
    assert_eq!(channels[0]["channel"], format!("webhook:{url}"));
    assert_eq!(channels[0]["sent"].as_array().unwrap().len(), 1);

    let (headers, body) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("x-cutover-event"), "notice");
    let ts: i64 = header("x-cutover-timestamp").parse().unwrap();
    assert!(cutover_notify::verify(
        b"s3cret",
        ts,
        &body,
        &header("x-cutover-signature-256")
    ));
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["event"], "notice");
    assert_eq!(sent["title"], "Advance shipping notice: 0.1.0");
    assert!(
        sent["payload"]["content"]
            .as_str()
            .unwrap()
            .starts_with("# Advance shipping notice: "),
        "{sent}"
    );
    assert_eq!(
        actions(&p),
        ["notice.created", "notice.sent", "notification.sent"]
    );
}

#[test]
fn a_dead_channel_is_recorded_and_the_notice_still_succeeds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let p = project(&url);
    let run = p.cutover_with(&["notice", "--send"], &[("HOOK_SECRET", "s3cret")]);
    run.success();
    assert!(
        run.stderr.contains("notification of audit event"),
        "{}",
        run.stderr
    );
    assert_eq!(
        actions(&p),
        ["notice.created", "notice.sent", "notification.failed"]
    );
}
