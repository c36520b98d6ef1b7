//! Log reads relayed over the agent's outbound connection: a real control plane on loopback TCP,
//! a real agent daemon following it over `http://`, a real slot process writing lines (one of them
//! a secret), read as the CLI reads them (an audit event as the permission, then
//! `GET /agent/v1/logs/read`).

use std::time::Duration;

use cutover_agent::Slot;
use cutover_agent::client::{Client, ClientError, ControlUrl, LogStream};
use cutover_agent::daemon::{self, AgentConfig, Backoff};
use cutover_agent::protocol::LogLine;
use cutover_agent::runtime::SecretSource;
use cutover_control::{ControlState, LogError, LogQuery};
use sha2::Digest as _;
use tokio::sync::oneshot;

use super::{HUNG, TOKEN, artifacts_dir, assignment, setup, until};

const SECRET: &str = "tops3cret-value-42";

/// An artifact whose `run.sh` prints a greeting and its secret, then a line whenever the file
/// `poke` appears in its directory.
fn put_chatty_artifact(dir: &std::path::Path) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let script = b"#!/bin/sh\necho \"hello from $CUTOVER_VERSION\"\necho \"key=$API_KEY\"\nwhile true; do\n  if [ -f poke ]; then rm -f poke; echo \"poked\"; fi\n  sleep 0.05\ndone\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, "run.sh", &script[..]).unwrap();
    let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    std::fs::create_dir_all(artifacts_dir(dir)).unwrap();
    std::fs::write(artifacts_dir(dir).join(&digest), bytes).unwrap();
    digest
}

/// Reads JSON lines from `stream` until `done` says so (or the stream ends); the log lines seen.
async fn read_until(
    stream: &mut LogStream,
    mut done: impl FnMut(&[LogLine]) -> bool,
) -> Vec<LogLine> {
    let mut seen = Vec::new();
    tokio::time::timeout(HUNG, async {
        while let Some(text) = stream.next_line().await.unwrap() {
            if text.trim().is_empty() {
                continue;
            }
            assert!(
                !text.contains(SECRET),
                "a secret reached the reader: {text}"
            );
            seen.push(
                serde_json::from_str::<LogLine>(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
            );
            if done(&seen) {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the lines never came; seen {seen:?}"));
    seen
}

fn has(lines: &[LogLine], text: &str) -> bool {
    lines.iter().any(|l| l.line == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_tcp_agent_are_read_tailed_and_followed_through_the_control_plane() {
    let (dir, store) = setup().await;
    cutover_control::add_host(&*store, "web-2", "another-token-0123456789", "test")
        .await
        .unwrap();
    let state = ControlState::with_timing(
        store.clone(),
        artifacts_dir(dir.path()),
        Duration::from_secs(2),
        Duration::from_millis(100),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url =
        ControlUrl::parse(&format!("http://{}", listener.local_addr().unwrap()), false).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(cutover_control::serve_tcp_until(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let root = dir.path().join("agent");
    let mut cfg = AgentConfig::new("web-1", Client::new(url.clone(), "web-1", TOKEN), &root);
    cfg.report_interval = Duration::from_millis(200);
    cfg.route_tick = Duration::from_millis(20);
    cfg.backoff = Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let mut agent = daemon::spawn(cfg).await;
    until(&mut agent, "registered", |s| s.connected).await;

    let secret_file = dir.path().join("api-key");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let digest = put_chatty_artifact(dir.path());
    let mut a = assignment(1, "1.0.0", &digest);
    let svc = a.services.get_mut("hello").unwrap();
    svc.process.argv = vec!["{release_dir}/run.sh".into()];
    svc.process
        .secrets
        .insert("API_KEY".into(), SecretSource::File(secret_file));
    state.put_assignment("web-1", &a, "test").await.unwrap();
    until(&mut agent, "generation 1 applied", |s| s.generation == 1).await;
    let out_log = root.join("hello/logs/blue.out.log");
    super::eventually("the slot wrote its lines", || async {
        (std::fs::read_to_string(&out_log)
            .unwrap_or_default()
            .lines()
            .count()
            >= 2)
            .then_some(())
    })
    .await;

    // The tail, as the CLI asks for it: the audit event is the permission.
    let query = LogQuery {
        services: vec!["hello".into()],
        slot: Some(Slot::Blue),
        lines: 10,
        follow: false,
    };
    let (seq, key) =
        cutover_control::authorize_log_read(&*store, "ops@example.com", "prod", "web-1", &query)
            .await
            .unwrap();
    let mut stream = Client::log_reader(url.clone(), key.clone())
        .read_logs(seq)
        .await
        .unwrap();
    let tail = read_until(&mut stream, |_| false).await;
    assert!(has(&tail, "hello from 1.0.0"), "{tail:?}");
    assert!(has(&tail, "key=[redacted]"), "{tail:?}");
    assert!(
        tail.iter()
            .all(|l| l.service == "hello" && l.slot == Slot::Blue)
    );
    assert!(
        tail.iter().any(|l| l.stream == "err"),
        "the agent's notes are in err: {tail:?}"
    );
    // The permission is good once, and only with its key.
    let again = Client::log_reader(url.clone(), key).read_logs(seq).await;
    assert!(
        matches!(again, Err(ClientError::Unauthorized { .. })),
        "{again:?}"
    );
    let (seq2, _) =
        cutover_control::authorize_log_read(&*store, "ops@example.com", "prod", "web-1", &query)
            .await
            .unwrap();
    let wrong = Client::log_reader(url.clone(), "not-the-key")
        .read_logs(seq2)
        .await;
    assert!(
        matches!(wrong, Err(ClientError::Unauthorized { .. })),
        "{wrong:?}"
    );
    let events = store
        .list_audit(&cutover_store::AuditFilter {
            action: Some("logs.read".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].subject, "host:web-1");
    assert_eq!(events[0].actor, "ops@example.com");

    // Following: a line written later arrives.
    let follow = LogQuery {
        follow: true,
        lines: 1,
        ..query.clone()
    };
    let (seq3, key3) =
        cutover_control::authorize_log_read(&*store, "ops", "prod", "web-1", &follow)
            .await
            .unwrap();
    let mut stream = Client::log_reader(url.clone(), key3)
        .read_logs(seq3)
        .await
        .unwrap();
    std::fs::write(root.join("hello/releases/1.0.0/poke"), "").unwrap();
    let followed = read_until(&mut stream, |seen| has(seen, "poked")).await;
    assert!(has(&followed, "poked"), "{followed:?}");
    drop(stream);

    // In-process reads (the server's API): an unknown service is the agent's error, an unknown
    // host or one whose agent is not connected are refused.
    let mut reader = state
        .read_logs(
            "web-1",
            LogQuery {
                services: vec!["nope".into()],
                ..query.clone()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(
        HUNG,
        tokio::io::AsyncReadExt::read_to_string(&mut reader.pipe, &mut text),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        text.contains("\"error\"") && text.contains("`nope`"),
        "{text}"
    );
    let unknown = state.read_logs("web-9", query.clone()).await;
    assert!(
        matches!(unknown, Err(LogError::UnknownHost { .. })),
        "{unknown:?}"
    );
    let absent = state.read_logs("web-2", query).await;
    assert!(
        matches!(absent, Err(LogError::NotConnected { .. })),
        "{absent:?}"
    );

    agent.stop().await.unwrap().stop_all().await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
