//! The dispatcher end to end: a real SQLite store, real HTTP receivers (axum on loopback) that
//! check the HMAC, a real SMTP sink speaking SMTP to lettre, a receiver that fails once, a dead
//! one, and two dispatchers racing on one database.
#![allow(clippy::unwrap_used)] // Tests panic on purpose: a failure here is a failed test.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cutover_config::{Notify, Secret, SecretError, SecretValue};
use cutover_notify::{
    DispatchOptions, DispatchReport, Event, RetryPolicy, dispatch_pending_with, verify,
};
use cutover_store::{
    Audit, AuditFilter, Change, NewDeployment, NewNotice, NewProof, Release, ReleaseKind, Store,
    Timestamp,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

const HOOK_SECRET: &str = "hook-secret";

// ------------------------------------------------------------------------------------------
// Receivers
// ------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    /// Statuses to answer first (then 200).
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Requests whose signature did not verify.
    bad_signatures: Arc<Mutex<u32>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Some(sig) = headers.get("x-cutover-signature-256") {
        let ts: i64 = headers["x-cutover-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if !verify(HOOK_SECRET.as_bytes(), ts, &body, sig.to_str().unwrap()) {
            *r.bad_signatures.lock().unwrap() += 1;
            return StatusCode::UNAUTHORIZED;
        }
    }
    if let Some(status) = r.script.lock().unwrap().pop_front() {
        return StatusCode::from_u16(status).unwrap();
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    r.got.lock().unwrap().push((headers, value));
    StatusCode::OK
}

async fn http_receiver(r: Receiver) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

/// A port nothing listens on.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

#[derive(Debug, Default, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server (RFC 5321: EHLO, MAIL, RCPT, DATA with dot-unstuffing, RSET, QUIT).
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let mails = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink.test ESMTP\r\n").await.unwrap();
                let mut mail = Mail::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink.test\r\n250 SIZE 10000000\r\n"
                    } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                        b"250 OK\r\n"
                    } else if upper.starts_with("RSET") {
                        mail = Mail::default();
                        b"250 OK\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line.trim_end()[10..].trim().to_owned();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.to.push(line.trim_end()[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        w.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        mail.data = data;
                        mails.lock().unwrap().push(std::mem::take(&mut mail));
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

// ------------------------------------------------------------------------------------------
// Store, config, events
// ------------------------------------------------------------------------------------------

fn notify(toml: &str) -> Notify {
    let src = format!("[project]\nname = \"hello\"\n\n{toml}");
    cutover_config::load_str(&src, Path::new("cutover.toml"), &[] as &[(&str, &str)])
        .unwrap()
        .notify
        .unwrap()
}

fn resolver(slack: Option<String>) -> impl Fn(&Secret) -> Result<SecretValue, SecretError> + Sync {
    move |s: &Secret| {
        let slack = slack.clone();
        s.resolve(Path::new("."), &move |k| match k {
            "HOOK_SECRET" => Some(HOOK_SECRET.to_owned()),
            "SLACK_URL" => slack.clone(),
            _ => None,
        })
    }
}

fn fast() -> DispatchOptions {
    DispatchOptions {
        retry: RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(5),
        },
        ..DispatchOptions::default()
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn now() -> Timestamp {
    chrono::Utc::now()
}

/// A release, a live deployment with two proofs, a notice; with unrelated events in between.
/// Returns the seqs of the three notifying events.
async fn history(store: &dyn Store) -> [i64; 3] {
    let release = Release {
        version: "1.4.0".into(),
        tag: "v1.4.0".into(),
        commit: "9f2c8b1e4d7a3f60c5b2e8d1a4f7c0b3e6d9a2f5".into(),
        kind: ReleaseKind::Normal,
        notes: "### Features\n- greet in Portuguese".into(),
        changes: json!([]),
        artifact_digest: None,
        bom: None,
        vulns: None,
        created_at: now(),
    };
    let released = store
        .apply(
            &[Change::InsertRelease(release)],
            &Audit::new("ada", "release.created", "release/1.4.0", json!({
                "version": "1.4.0", "tag": "v1.4.0", "commit": "9f2c8b1e4d7a3f60c5b2e8d1a4f7c0b3e6d9a2f5", "kind": "normal"
            })),
        )
        .await
        .unwrap()
        .event
        .seq;
    let dep = store
        .apply(
            &[Change::InsertDeployment(NewDeployment {
                environment: "staging".into(),
                release_version: "1.4.0".into(),
                strategy: "blue-green".into(),
                state: "queued".into(),
                trigger: "cli".into(),
                actor: "ada".into(),
                reverts: None,
                created_at: now(),
            })],
            &Audit::new("ada", "deployment.create", "deployment:1", json!({})),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    for host in ["web-1", "web-2"] {
        store
            .apply(
                &[
                    Change::UpsertHost { name: host.into(), token_hash: None, agent_version: None, at: now() },
                    Change::InsertProof(NewProof {
                        deployment_id: dep,
                        host: host.into(),
                        statement: json!({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": host}]}),
                        envelope: json!({"payloadType": "application/vnd.in-toto+json", "signatures": []}),
                        created_at: now(),
                    }),
                ],
                &Audit::new("cutover", "proof.record", format!("deployment:{dep}"), json!({"host": host})),
            )
            .await
            .unwrap();
    }
    // A transition that notifies nobody, and one of the dispatcher's own records.
    for (action, payload) in [
        (
            "deployment.transition",
            json!({"environment": "staging", "version": "1.4.0", "from": "queued", "to": "verifying"}),
        ),
        ("notification.sent", json!({"channel": "x", "seq": 1})),
    ] {
        store
            .append_audit(&Audit::new(
                "cutover",
                action,
                format!("deployment:{dep}"),
                payload,
            ))
            .await
            .unwrap();
    }
    let delivered = store
        .append_audit(&Audit::new("cutover", "deployment.transition", format!("deployment:{dep}"), json!({
            "environment": "staging", "version": "1.4.0", "from": "observing", "to": "live", "reason": null
        })))
        .await
        .unwrap()
        .seq;
    let notice = store
        .apply_one(
            Change::InsertNotice(NewNotice {
                version: "1.5.0".into(),
                content: "# hello 1.5.0\n\nComing on 2026-12-01.\n".into(),
                format: "markdown".into(),
                recipients: vec!["stakeholders@example.com".into()],
                created_at: now(),
            }),
            &Audit::new("ada", "notice.created", "release/1.5.0", json!({})),
        )
        .await
        .unwrap();
    let cutover_store::Outcome::Id(notice) = notice else {
        panic!("no notice id")
    };
    let sent = store
        .apply(
            &[Change::MarkNoticeSent {
                id: notice,
                at: now(),
            }],
            &Audit::new(
                "ada",
                "notice.sent",
                "release/1.5.0",
                json!({"id": notice, "channel": "notify"}),
            ),
        )
        .await
        .unwrap()
        .event
        .seq;
    [released, delivered, sent]
}

async fn store_in(dir: &Path) -> Arc<dyn Store> {
    cutover_store::open_sqlite(&dir.join("state.db"))
        .await
        .unwrap()
}

async fn audit(store: &dyn Store, action: &str) -> Vec<cutover_store::AuditEvent> {
    store
        .list_audit(&AuditFilter {
            action: Some(action.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

async fn run(store: &dyn Store, n: &Notify, slack: Option<String>) -> DispatchReport {
    let resolve = resolver(slack);
    dispatch_pending_with(store, n, &resolve, &fast(), deadline()).await
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_channel_gets_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let hook = Receiver::default();
    let slack = Receiver::default();
    let hook_url = http_receiver(hook.clone()).await;
    let slack_url = http_receiver(slack.clone()).await;
    let (smtp_port, mails) = smtp_sink().await;
    let n = notify(&format!(
        r#"
[notify]
recipients = ["stakeholders@example.com"]

[[notify.webhook]]
url = "{hook_url}"
secret = {{ env = "HOOK_SECRET" }}

[[notify.slack]]
url = {{ env = "SLACK_URL" }}

[notify.email]
from = "cutover@example.com"
to = ["team@example.com"]
smtp = {{ host = "127.0.0.1", port = {smtp_port}, tls = "none" }}
"#
    ));
    let seqs = history(&*store).await;
    let report = run(&*store, &n, Some(slack_url.clone())).await;
    assert_eq!(report.sent(), 9, "{report:#?}");
    assert_eq!(report.failed(), 0);
    assert!(!report.deadline_reached);

    // The webhook: signed (the receiver verified every HMAC), in order, with the proofs.
    assert_eq!(*hook.bad_signatures.lock().unwrap(), 0);
    let got = hook.got.lock().unwrap().clone();
    let events: Vec<(&str, i64)> = got
        .iter()
        .map(|(h, v)| {
            (
                h["x-cutover-event"].to_str().unwrap(),
                v["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("released", seqs[0]),
            ("delivered", seqs[1]),
            ("notice", seqs[2])
        ]
    );
    for (h, v) in &got {
        assert_eq!(
            h["x-cutover-delivery"].to_str().unwrap(),
            v["seq"].to_string()
        );
        assert!(
            h["x-cutover-signature-256"]
                .to_str()
                .unwrap()
                .starts_with("sha256=")
        );
    }
    let delivered = &got[1].1;
    assert_eq!(delivered["title"], "1.4.0 delivered to staging");
    let hosts: Vec<&str> = delivered["payload"]["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-1", "web-2"]);
    assert_eq!(
        delivered["payload"]["proofs"][0]["statement"]["_type"],
        "https://in-toto.io/Statement/v1"
    );
    assert_eq!(
        got[0].1["payload"]["notes"],
        "### Features\n- greet in Portuguese"
    );
    assert_eq!(
        got[2].1["payload"]["content"],
        "# hello 1.5.0\n\nComing on 2026-12-01.\n"
    );

    // Slack: the incoming-webhook shape.
    let slack_got = slack.got.lock().unwrap().clone();
    assert_eq!(slack_got.len(), 3);
    let first = &slack_got[0].1;
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .starts_with("Released 1.4.0: ")
    );
    assert_eq!(first["blocks"][0]["type"], "header");
    assert_eq!(first["blocks"][0]["text"]["text"], "Released 1.4.0");
    assert_eq!(first["blocks"][1]["text"]["type"], "mrkdwn");
    assert!(
        slack_got
            .iter()
            .all(|(h, _)| h.get("x-cutover-signature-256").is_none())
    );

    // Email: real SMTP; the notice also goes to notify.recipients.
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 3);
    assert_eq!(mails[0].from, "<cutover@example.com>");
    assert_eq!(mails[0].to, ["<team@example.com>"]);
    assert!(
        mails[0].data.contains("Subject: [cutover] Released 1.4.0"),
        "{}",
        mails[0].data
    );
    assert!(mails[1].data.contains("web-1"), "{}", mails[1].data);
    assert_eq!(
        mails[2].to,
        ["<team@example.com>", "<stakeholders@example.com>"]
    );
    assert!(
        mails[2].data.contains("Coming on 2026-12-01."),
        "{}",
        mails[2].data
    );

    // Recorded, and the cursors are past everything.
    let sent = audit(&*store, "notification.sent").await;
    // One fake record from `history` plus nine real ones.
    assert_eq!(sent.len(), 10);
    let channels: std::collections::BTreeSet<String> = sent[1..]
        .iter()
        .map(|e| e.payload["channel"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        channels.into_iter().collect::<Vec<_>>(),
        [
            "email".to_owned(),
            "slack:env:SLACK_URL".to_owned(),
            format!("webhook:{}", hook_url)
        ]
    );
    assert!(
        sent[1..]
            .iter()
            .all(|e| e.payload["attempts"] == 1 && e.payload["error"].is_null())
    );
    for c in &report.channels {
        assert!(c.cursor >= seqs[2], "{c:?}");
        assert_eq!(
            store.notification_cursor(&c.channel).await.unwrap(),
            c.cursor
        );
    }

    // A second run sends nothing again (its own records are skipped).
    let again = run(&*store, &n, Some(slack_url)).await;
    assert_eq!(again.sent() + again.failed(), 0, "{again:#?}");
    assert!(again.problems().is_empty(), "{again:#?}");
    assert_eq!(hook.got.lock().unwrap().len(), 3);
    assert!(store.verify_audit().await.unwrap().first_broken.is_none());
}

#[tokio::test]
async fn a_failing_receiver_gets_it_on_a_later_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let hook = Receiver::default();
    hook.script.lock().unwrap().extend([500, 503]);
    let url = http_receiver(hook.clone()).await;
    let n = notify(&format!(
        "[notify]\nevents = [\"released\"]\n\n[[notify.webhook]]\nurl = \"{url}\"\n"
    ));
    let seqs = history(&*store).await;
    let report = run(&*store, &n, None).await;
    assert_eq!(report.channels[0].sent, [seqs[0]], "{report:#?}");
    let sent = audit(&*store, "notification.sent").await;
    let last = sent.last().unwrap();
    assert_eq!(last.payload["attempts"], 3);
    assert_eq!(last.payload["event"], "released");
    assert_eq!(last.subject, format!("notification:webhook:{url}"));
    assert_eq!(hook.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_receiver_is_recorded_as_failed_and_the_cursor_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let url = dead_url().await;
    let n = notify(&format!(
        "[notify]\n\n[[notify.webhook]]\nurl = \"{url}\"\n"
    ));
    let seqs = history(&*store).await;
    let report = run(&*store, &n, None).await;
    let c = &report.channels[0];
    assert!(c.sent.is_empty());
    assert_eq!(c.failed.iter().map(|f| f.0).collect::<Vec<_>>(), seqs);
    assert!(c.cursor >= seqs[2]);
    let failed = audit(&*store, "notification.failed").await;
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0].payload["attempts"], 3);
    let error = failed[0].payload["error"].as_str().unwrap();
    assert!(
        error.contains("cannot connect to http://127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("after 3 attempts"), "{error}");
    // Not retried by the next run: a notification never blocks anything.
    let again = run(&*store, &n, None).await;
    assert_eq!(again.failed(), 0);
    assert_eq!(audit(&*store, "notification.failed").await.len(), 3);
}

#[tokio::test]
async fn two_dispatchers_on_one_database_never_send_twice() {
    let dir = tempfile::tempdir().unwrap();
    let a = store_in(dir.path()).await;
    let b = store_in(dir.path()).await;
    let hook = Receiver::default();
    let url = http_receiver(hook.clone()).await;
    let n = notify(&format!(
        "[notify]\n\n[[notify.webhook]]\nurl = \"{url}\"\n"
    ));
    let mut expected = history(&*a).await.to_vec();
    // More events, so that the two runs overlap.
    for i in 0..20 {
        let seq = a
            .append_audit(&Audit::new(
                "ada",
                "incident.open",
                format!("incident:{i}"),
                json!({"environment": "production", "summary": format!("outage {i}")}),
            ))
            .await
            .unwrap()
            .seq;
        expected.push(seq);
    }
    let (ra, rb) = tokio::join!(run(&*a, &n, None), run(&*b, &n, None));
    assert_eq!(ra.sent() + rb.sent(), expected.len(), "{ra:#?} {rb:#?}");
    let mut seqs: Vec<i64> = hook
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, expected);
    assert_eq!(
        audit(&*a, "notification.sent").await.len(),
        expected.len() + 1
    );
}

#[tokio::test]
async fn channels_get_their_events_and_a_missing_secret_blocks_only_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let hook = Receiver::default();
    let url = http_receiver(hook.clone()).await;
    let n = notify(&format!(
        "[notify]\n\n[[notify.webhook]]\nurl = \"{url}\"\nevents = [\"delivered\", \"incident\"]\n\n[[notify.slack]]\nurl = {{ env = \"SLACK_URL\" }}\n"
    ));
    let seqs = history(&*store).await;
    let report = run(&*store, &n, None).await;
    let slack = report
        .channels
        .iter()
        .find(|c| c.channel == "slack:env:SLACK_URL")
        .unwrap();
    let error = slack.error.as_deref().unwrap();
    assert!(error.contains("SLACK_URL is not set"), "{error}");
    assert_eq!(slack.cursor, 0);
    let problems = report.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let got: Vec<i64> = hook
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [seqs[1]]);
}

#[tokio::test]
async fn events_past_the_deadline_or_too_old_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let hook = Receiver::default();
    let url = http_receiver(hook.clone()).await;
    let n = notify(&format!(
        "[notify]\n\n[[notify.webhook]]\nurl = \"{url}\"\n"
    ));
    history(&*store).await;
    let resolve = resolver(None);
    // A deadline already past: nothing is claimed, the next run sends everything.
    let report = dispatch_pending_with(&*store, &n, &resolve, &fast(), Instant::now()).await;
    assert!(report.deadline_reached);
    assert_eq!(report.sent(), 0);
    // Events older than max_age are skipped.
    let old = DispatchOptions {
        max_age: Some(chrono::Duration::zero()),
        ..fast()
    };
    let report = dispatch_pending_with(&*store, &n, &resolve, &old, deadline()).await;
    assert_eq!(report.sent(), 0);
    let report = run(&*store, &n, None).await;
    assert_eq!(report.sent(), 3);
}

#[tokio::test]
async fn failed_required_checks_notify_and_advisory_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let policy = cutover_store::QueuePolicy::default();
    let mut ids = Vec::new();
    for (name, required) in [("test", true), ("lint", false)] {
        let job = cutover_store::EnqueueJob {
            release_version: Some("1.4.0".into()),
            ..cutover_store::EnqueueJob::new(
                cutover_store::JobClass::Release,
                "check",
                json!({"check": {"name": name, "required": required}, "release": "1.4.0"}),
            )
        };
        ids.push(store.enqueue_job(&job, &policy, "ada").await.unwrap().id);
    }
    let mut notes = Vec::new();
    for id in ids {
        let ev = store
            .append_audit(&Audit::new(
                "worker",
                "job.fail",
                format!("job/{id}"),
                json!({"kind": "check", "error": "exit status 1"}),
            ))
            .await
            .unwrap();
        notes.push(cutover_notify::from_audit(&ev, &*store).await);
    }
    let required = notes[0].as_ref().unwrap();
    assert_eq!(required.event, Event::Failed);
    assert_eq!(required.title, "Required check test failed for 1.4.0");
    assert_eq!(required.summary, "exit status 1");
    assert!(notes[1].is_none());
}

#[tokio::test]
async fn transitions_map_to_failed_and_rolled_back_and_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let cases = [
        (
            "deployment.transition",
            "deployment:7",
            json!({"environment": "production", "version": "2.0.0", "to": "failed", "reason": "health check failed on web-1"}),
            Some((Event::Failed, "Deployment of 2.0.0 to production failed")),
        ),
        (
            "deployment.transition",
            "deployment:7",
            json!({"environment": "production", "version": "2.0.0", "to": "rolled_back"}),
            Some((
                Event::RolledBack,
                "Deployment of 2.0.0 to production rolled back",
            )),
        ),
        (
            "deployment.transition",
            "deployment:7",
            json!({"environment": "production", "version": "2.0.0", "to": "switching"}),
            None,
        ),
        (
            "incident.open",
            "incident:3",
            json!({"environment": "production", "summary": "checkout errors"}),
            Some((Event::Incident, "Incident 3 opened in production")),
        ),
        (
            "incident.resolve",
            "incident:3",
            json!({"environment": "production"}),
            Some((Event::Incident, "Incident 3 resolved in production")),
        ),
        ("agent.report", "host:web-1", json!({}), None),
        ("job.fail", "job/1", json!({"kind": "deploy"}), None),
    ];
    for (action, subject, payload, expected) in cases {
        let ev = store
            .append_audit(&Audit::new("x", action, subject, payload))
            .await
            .unwrap();
        let got = cutover_notify::from_audit(&ev, &*store)
            .await
            .map(|n| (n.event, n.title));
        assert_eq!(
            got,
            expected.map(|(e, t)| (e, t.to_owned())),
            "{action} {subject}"
        );
    }
}

#[tokio::test]
async fn the_feed_reads_the_newest_notifying_events_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let seqs = history(&*store).await;
    let n = notify("[notify]\n\n[notify.atom]\nmax_entries = 2\n");
    let atom = n.atom.clone().unwrap();
    let entries = cutover_notify::feed_entries(&*store, &n, &atom).await;
    let got: Vec<(i64, Event)> = entries.iter().map(|e| (e.seq, e.event)).collect();
    assert_eq!(got, [(seqs[2], Event::Notice), (seqs[1], Event::Delivered)]);
    let xml = cutover_notify::atom_feed(&entries, &atom, "http://127.0.0.1:8080");
    assert_eq!(xml.matches("<entry>").count(), 2);
}

#[test]
fn channel_names_hold_no_secrets_and_are_unique() {
    let mut n = notify(
        "[notify]\n\n[[notify.webhook]]\nurl = \"http://127.0.0.1:9/hook?token=abc\"\n\n[[notify.webhook]]\nurl = \"http://127.0.0.1:9/hook\"\n\n[[notify.webhook]]\nurl = \"http://127.0.0.1:9/other\"\n\n[[notify.slack]]\nurl = { env = \"SLACK_URL\" }\n",
    );
    // The config validates URLs; a Notify built in code may still hold a bad one.
    n.webhook[2].url = "not a url".into();
    let resolve = resolver(Some("https://hooks.slack.com/services/T0/B0/SECRET".into()));
    let (channels, errors) = cutover_notify::channels(&n, &resolve);
    let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "webhook:http://127.0.0.1:9/hook",
            "webhook:http://127.0.0.1:9/hook#2",
            "slack:env:SLACK_URL"
        ]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].channel, "webhook:invalid");
    assert!(
        !format!("{channels:?}").contains("SECRET"),
        "Debug must not show secrets"
    );
}

#[tokio::test]
async fn the_server_loop_sends_new_events_until_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    let hook = Receiver::default();
    let url = http_receiver(hook.clone()).await;
    let n = notify(&format!(
        "[notify]\n\n[[notify.webhook]]\nurl = \"{url}\"\n"
    ));
    let resolve = resolver(None);
    let (chans, errors) = cutover_notify::channels(&n, &resolve);
    assert!(errors.is_empty());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reports = Arc::new(Mutex::new(0usize));
    let counted = reports.clone();
    let task = tokio::spawn(cutover_notify::dispatch_loop(
        store.clone(),
        chans,
        fast(),
        Duration::from_millis(50),
        async move {
            let _ = stopped.await;
        },
        move |r| *counted.lock().unwrap() += r.sent(),
    ));
    // Events written while the loop runs are picked up by its next round.
    let seqs = history(&*store).await;
    let waited = Instant::now() + Duration::from_secs(20);
    while hook.got.lock().unwrap().len() < 3 && Instant::now() < waited {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    let got: Vec<i64> = hook
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got, seqs);
    assert_eq!(*reports.lock().unwrap(), 3);
}

#[tokio::test]
async fn starttls_is_required_and_never_falls_back_to_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path()).await;
    // The sink offers no STARTTLS: a `starttls` channel must refuse to send in the clear.
    let (port, mails) = smtp_sink().await;
    let n = notify(&format!(
        "[notify]\nevents = [\"released\"]\n\n[notify.email]\nfrom = \"cutover@example.com\"\nto = [\"team@example.com\"]\nsmtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"starttls\" }}\n"
    ));
    history(&*store).await;
    let report = run(&*store, &n, None).await;
    assert_eq!(report.sent(), 0);
    assert_eq!(report.failed(), 1, "{report:#?}");
    assert!(mails.lock().unwrap().is_empty());
    let failed = audit(&*store, "notification.failed").await;
    assert_eq!(failed[0].payload["channel"], "email");
    let error = failed[0].payload["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("email: smtp 127.0.0.1:{port}: ")),
        "{error}"
    );
}
