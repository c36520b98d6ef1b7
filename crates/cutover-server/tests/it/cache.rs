//! The read endpoints' response cache and ETags never show a state older than the database's:
//! a write through one replica (audited or not: a heartbeat, a job claim) is seen at once through
//! another that had the old answer cached; a revoked token is refused at once by both; 304 while
//! nothing changed, 200 with the new answer after a write. On PostgreSQL (cached by its data
//! version) and SQLite (no cache; ETags from the answer).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cutover_store::{Audit, Change, EnqueueJob, JobClass, QueuePolicy, Store, TokenScope};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Server, get, release, send, sqlite, token};
use crate::replicas::fresh_pg_url;

/// Answers `server` took from its cache so far.
fn cache_hits(server: &Server) -> u64 {
    server
        .state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("cutover_response_cache_total{result=\"hit\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Uses `secret` once through `server` and waits until its last use is recorded: that write
/// (made at most once a minute per token) would otherwise change the data version between the
/// reads whose cache hits a test counts.
async fn settle(server: &Server, store: &dyn Store, secret: &str) {
    get(&server.url("/api/v1/status"), Some(secret)).await;
    let hash = cutover_server::tokens::hash_secret(secret);
    for _ in 0..100 {
        let token = store.find_api_token(&hash).await.unwrap().unwrap();
        if token.last_used_at.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the token's use was never recorded");
}

/// GETs `path` until an answer comes from `server`'s cache (other tests writing to the same
/// PostgreSQL cluster move its data version too, which only costs misses); false if none does.
async fn until_hit(server: &Server, path: &str, secret: Option<&str>) -> bool {
    for _ in 0..100 {
        let hits = cache_hits(server);
        let answer = get(&server.url(path), secret).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        if cache_hits(server) > hits {
            return true;
        }
    }
    false
}

/// GETs `path` from `server` twice (the second may come from the cache) and returns the answer.
async fn read_twice(server: &Server, path: &str, secret: &str) -> Value {
    let first = get(&server.url(path), Some(secret)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let second = get(&server.url(path), Some(secret)).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(first.body, second.body, "nothing was written in between");
    second.json()
}

/// After each kind of write through `writer` (another replica's store, or the server's own),
/// `reader` answers the new state on its next request, whatever it answered before.
/// `round` counts the calls on one database.
async fn writes_show_at_once(
    writer: &dyn Store,
    reader: &Server,
    secret: &str,
    cached: bool,
    round: usize,
) {
    let seen = |doc: &Value| {
        let envs = doc["environments"].as_array().unwrap();
        let production = envs.iter().find(|e| e["name"] == "production").unwrap();
        production["hosts"][0]["last_seen"].clone()
    };
    // A heartbeat: not audited, and only the hosts' table changes.
    writer
        .apply_one(
            Change::UpsertHost {
                name: "web-3".into(),
                token_hash: None,
                agent_version: Some("0.1.0".into()),
                at: Utc::now(),
            },
            &Audit::new("test", "agent.register", "host:web-3", json!({})),
        )
        .await
        .unwrap();
    let before = read_twice(reader, "/api/v1/status", secret).await;
    let beat = Utc::now() + chrono::Duration::seconds(5);
    assert!(writer.touch_host("web-3", beat, None).await.unwrap());
    let after = get(&reader.url("/api/v1/status"), Some(secret))
        .await
        .json();
    assert_ne!(seen(&after), seen(&before));
    let after_seen: chrono::DateTime<Utc> = serde_json::from_value(seen(&after)).unwrap();
    assert_eq!(after_seen.timestamp_micros(), beat.timestamp_micros());

    // A check job of the release, enqueued (audited), then claimed (not audited).
    let path = "/api/v1/releases/1.0.0";
    let checks = read_twice(reader, path, secret).await["checks"]
        .as_array()
        .unwrap()
        .len();
    let mut job = EnqueueJob::new(
        JobClass::Normal,
        cutover_queue::CHECK_KIND,
        json!({"check": {"name": "unit"}}),
    );
    job.release_version = Some("1.0.0".into());
    writer
        .enqueue_job(&job, &QueuePolicy::default(), "test")
        .await
        .unwrap();
    let after = read_twice(reader, path, secret).await["checks"].clone();
    assert_eq!(after.as_array().unwrap().len(), checks + 1, "{after}");
    assert_eq!(after[0]["state"], "queued", "{after}");
    let claimed = writer
        .claim_job("w", Utc::now(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claimed.is_some());
    let checks = get(&reader.url(path), Some(secret)).await.json()["checks"].clone();
    assert_eq!(checks[0]["state"], "running", "{checks}");

    // What served at a fixed instant (tomorrow), before and after a traffic switch.
    let at =
        (Utc::now() + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/api/v1/environments/production/served?at={at}");
    let before = read_twice(reader, &path, secret).await;
    let version = format!("1.0.{round}");
    writer
        .append_audit(&Audit::new(
            "test",
            cutover_store::SWITCH_ACTION,
            "env:production",
            json!({"environment": "production", "hosts": [
                {"host": "web-3", "serving": [{"version": version, "weight": 100}]}
            ]}),
        ))
        .await
        .unwrap();
    let served = get(&reader.url(&path), Some(secret)).await.json();
    assert_eq!(served["deployed"], json!(true), "{served}");
    assert_ne!(served["hosts"], before["hosts"]);
    assert_eq!(served["hosts"][0]["serving"][0]["version"], json!(version));

    // Where there is a cache, answers do come from it.
    if cached {
        for path in ["/api/v1/status", "/api/v1/releases/1.0.0", path.as_str()] {
            assert!(until_hit(reader, path, Some(secret)).await, "{path}");
        }
    } else {
        assert_eq!(cache_hits(reader), 0);
    }
}

/// 304 while nothing changed; after a write, 200 with the new answer and a new ETag.
async fn etags(writer: &dyn Store, server: &Server, secret: &str) {
    let url = server.url("/api/v1/releases/1.0.0");
    let first = get(&url, Some(secret)).await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(first.headers["cache-control"], "no-cache");
    let again = send(
        Method::GET,
        &url,
        Some(secret),
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["etag"].to_str().unwrap(), etag);
    // Another tag, or none: the whole answer.
    let other = send(
        Method::GET,
        &url,
        Some(secret),
        &[("if-none-match", "\"elsewhere\"")],
        "",
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, first.body);

    let mut job = EnqueueJob::new(
        JobClass::Normal,
        cutover_queue::CHECK_KIND,
        json!({"check": {"name": "lint"}}),
    );
    job.release_version = Some("1.0.0".into());
    writer
        .enqueue_job(&job, &QueuePolicy::default(), "test")
        .await
        .unwrap();
    let changed = send(
        Method::GET,
        &url,
        Some(secret),
        &[("if-none-match", &etag)],
        "",
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    assert_ne!(changed.body, first.body);
    assert!(changed.text().contains("\"lint\""), "{}", changed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_write_through_one_replica_is_read_at_once_through_the_other() {
    let url = fresh_pg_url().await;
    let store_a: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    let store_b: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    release(&*store_a, "1.0.0").await;
    let viewer = token(&*store_a, "viewer", TokenScope::Viewer, &[]).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(store_a.clone(), dir_a.path(), false).await;
    let b = Server::start(store_b.clone(), dir_b.path(), false).await;
    settle(&b, &*store_a, &viewer).await;
    writes_show_at_once(&*store_a, &b, &viewer, true, 0).await;
    // And the other way round, on answers both have cached by now.
    writes_show_at_once(&*store_b, &a, &viewer, true, 1).await;
    etags(&*store_a, &b, &viewer).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_token_revoked_through_one_replica_is_refused_at_once_by_both() {
    let url = fresh_pg_url().await;
    let store_a: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    let store_b: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    release(&*store_a, "1.0.0").await;
    let (record, secret) =
        cutover_server::tokens::create_token(&*store_a, "soon-gone", TokenScope::Viewer, &[], "t")
            .await
            .unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(store_a.clone(), dir_a.path(), false).await;
    let b = Server::start(store_b.clone(), dir_b.path(), false).await;
    settle(&a, &*store_a, &secret).await;
    for server in [&a, &b] {
        for path in ["/api/v1/status", "/api/v1/releases/1.0.0"] {
            assert!(until_hit(server, path, Some(&secret)).await, "{path}");
        }
    }
    cutover_server::tokens::revoke_token(&*store_a, record.id, "test")
        .await
        .unwrap();
    for server in [&a, &b] {
        for path in ["/api/v1/status", "/api/v1/releases/1.0.0"] {
            let answer = get(&server.url(path), Some(&secret)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
            assert!(answer.text().contains("revoked"), "{}", answer.text());
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_without_a_token_are_cached_by_the_same_version() {
    let url = fresh_pg_url().await;
    let store: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    release(&*store, "1.0.0").await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(store.clone(), dir.path(), true).await;
    let url = server.url("/api/v1/releases/1.0.0");
    assert!(until_hit(&server, "/api/v1/releases/1.0.0", None).await);
    let mut job = EnqueueJob::new(
        JobClass::Normal,
        cutover_queue::CHECK_KIND,
        json!({"check": {"name": "unit"}}),
    );
    job.release_version = Some("1.0.0".into());
    store
        .enqueue_job(&job, &QueuePolicy::default(), "test")
        .await
        .unwrap();
    assert!(get(&url, None).await.text().contains("\"unit\""));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answers_are_never_cached_and_carry_etags() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    release(&*store, "1.0.0").await;
    let viewer = token(&*store, "viewer", TokenScope::Viewer, &[]).await;
    let server = Server::start(store.clone(), dir.path(), false).await;
    writes_show_at_once(&*store, &server, &viewer, false, 0).await;
    etags(&*store, &server, &viewer).await;
    assert!(server.state.cache.is_empty());
    server.stop().await;
}
