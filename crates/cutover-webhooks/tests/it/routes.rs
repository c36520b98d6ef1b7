//! The webhook routes on a real loopback server over a real SQLite store: a merge enqueues the
//! pipeline job once, replays and the second event of one merge are ignored, refusals are
//! audited and change nothing else.
#![allow(clippy::unwrap_used)] // Tests panic on purpose: a failure here is a failed test.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cutover_config::{Config, Secret, SecretValue};
use cutover_store::{AuditFilter, JobFilter, Store};
use cutover_webhooks::{WebhookState, first_environment, routes};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const GITHUB_SECRET: &str = "gh-webhook-secret";
const GITLAB_TOKEN: &str = "gl-webhook-token";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn secret(value: &str) -> SecretValue {
    let v = value.to_owned();
    Secret::Env {
        env: "WEBHOOK_SECRET".into(),
    }
    .resolve(Path::new("."), &move |_| Some(v.clone()))
    .unwrap()
}

fn config() -> Config {
    let src = r#"
[project]
name = "hello"
main_branch = "main"

[service]
start = ["./hello", "--port", "{port}"]

[environments.staging]
hosts = ["local"]

[environments.production]
hosts = ["web-1"]
promote_from = "staging"
"#;
    cutover_config::load_str(src, Path::new("cutover.toml"), &[] as &[(&str, &str)]).unwrap()
}

struct Server {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn start(github: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = cutover_store::open_sqlite(&dir.path().join("state.db"))
        .await
        .unwrap();
    let mut state = WebhookState::new(
        store.clone(),
        &config(),
        github.then(|| secret(GITHUB_SECRET)),
        Some(secret(GITLAB_TOKEN)),
    )
    .unwrap();
    state.max_body = 64 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = routes(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        addr,
        store,
        _dir: dir,
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(
    s: &Server,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let url = format!("http://{}{path}", s.addr);
    let r = cutover_notify::http::post(&url, headers, body.to_vec(), Duration::from_secs(10))
        .await
        .unwrap();
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null),
    )
}

fn github_headers(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_owned()),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("X-Hub-Signature-256", sign(body)),
        ("Content-Type", "application/json".to_owned()),
    ]
}

async fn jobs(store: &dyn Store) -> Vec<cutover_store::Job> {
    store.list_jobs(&JobFilter::default()).await.unwrap()
}

async fn actions(store: &dyn Store, action: &str) -> Vec<cutover_store::AuditEvent> {
    store
        .list_audit(&AuditFilter {
            action: Some(action.into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

#[test]
fn the_first_environment_is_the_start_of_the_chain() {
    assert_eq!(first_environment(&config()).as_deref(), Some("staging"));
}

#[tokio::test]
async fn the_state_comes_from_the_webhooks_section() {
    let dir = tempfile::tempdir().unwrap();
    let store = cutover_store::open_sqlite(&dir.path().join("state.db"))
        .await
        .unwrap();
    let resolve = |s: &Secret| {
        s.resolve(Path::new("."), &|k| {
            (k == "GH_SECRET").then(|| GITHUB_SECRET.to_owned())
        })
    };
    assert!(
        WebhookState::from_config(store.clone(), &config(), &resolve)
            .unwrap()
            .is_none()
    );
    let mut c = config();
    c.webhooks = Some(cutover_config::Webhooks {
        github_secret: Some(Secret::Env {
            env: "GH_SECRET".into(),
        }),
        gitlab_token: None,
        branch: Some("trunk".into()),
    });
    let state = WebhookState::from_config(store.clone(), &c, &resolve)
        .unwrap()
        .unwrap();
    assert_eq!(state.branch, "trunk");
    assert_eq!(state.environment, "staging");
    assert_eq!(
        state.github_secret.as_ref().map(SecretValue::expose),
        Some(GITHUB_SECRET)
    );
    assert!(state.gitlab_token.is_none());
    c.webhooks.as_mut().unwrap().gitlab_token = Some(Secret::Env {
        env: "MISSING".into(),
    });
    let err = WebhookState::from_config(store, &c, &resolve).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret environment variable MISSING is not set"
    );
}

#[tokio::test]
async fn a_merge_enqueues_the_pipeline_once() {
    let s = start(true).await;
    let body = fixture("github/pull_request_merged.json");
    let (status, answer) = post(
        &s,
        "/webhooks/github",
        &github_headers("pull_request", "d-1", &body),
        &body,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["enqueued"]["kind"], "ship");
    assert_eq!(answer["enqueued"]["to"], "staging");
    let jobs_now = jobs(&*s.store).await;
    assert_eq!(jobs_now.len(), 1);
    let job = &jobs_now[0];
    assert_eq!(job.kind, "ship");
    assert_eq!(Some(job.id), answer["enqueued"]["job"].as_i64());
    // The payload is the pipeline's own, readable by the worker that runs it.
    let pipeline: cutover_queue::pipeline::PipelinePayload =
        serde_json::from_value(job.payload.clone()).unwrap();
    assert_eq!(pipeline.environment, "staging");
    assert!(
        pipeline.actor.starts_with("webhook:github:"),
        "{}",
        pipeline.actor
    );
    assert_eq!(job.class, "release");
    assert_eq!(job.concurrency_group.as_deref(), Some("pipeline"));
    assert_eq!(
        job.payload["commit"],
        "9f2c8b1e4d7a3f60c5b2e8d1a4f7c0b3e6d9a2f5"
    );
    let received = actions(&*s.store, "webhook.receive").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].subject, "webhook:github:d-1");
    assert_eq!(received[0].payload["branch"], "main");
    assert_eq!(received[0].payload["event"], "pull_request");

    // The same delivery again: a replay, nothing changes.
    let (status, answer) = post(
        &s,
        "/webhooks/github",
        &github_headers("pull_request", "d-1", &body),
        &body,
    )
    .await;
    assert_eq!((status, answer["ignored"].as_str()), (200, Some("replay")));
    // GitHub's push event for the same merge: recorded, but no second job.
    let push = fixture("github/push_main.json");
    let (status, answer) = post(
        &s,
        "/webhooks/github",
        &github_headers("push", "d-2", &push),
        &push,
    )
    .await;
    assert_eq!(
        (status, answer["ignored"].as_str()),
        (200, Some("duplicate commit"))
    );
    assert_eq!(jobs(&*s.store).await.len(), 1);
    assert_eq!(actions(&*s.store, "webhook.receive").await.len(), 2);
    assert!(s.store.verify_audit().await.unwrap().first_broken.is_none());
}

#[tokio::test]
async fn bad_or_missing_signatures_get_401_and_change_nothing_but_the_audit() {
    let s = start(true).await;
    let body = fixture("github/pull_request_merged.json");
    let mut h = github_headers("pull_request", "d-9", &body);
    h[2].1 = sign(b"another body");
    let (status, answer) = post(&s, "/webhooks/github", &h, &body).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized");
    h.remove(2);
    let (status, _) = post(&s, "/webhooks/github", &h, &body).await;
    assert_eq!(status, 401);
    let gl = fixture("gitlab/push_main.json");
    let (status, _) = post(
        &s,
        "/webhooks/gitlab",
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", "guess".into()),
            ("X-Gitlab-Event-UUID", "u-1".into()),
        ],
        &gl,
    )
    .await;
    assert_eq!(status, 401);
    assert!(jobs(&*s.store).await.is_empty());
    assert!(actions(&*s.store, "webhook.receive").await.is_empty());
    let rejects = actions(&*s.store, "webhook.reject").await;
    assert_eq!(rejects.len(), 3);
    assert_eq!(rejects[0].payload["provider"], "github");
    assert!(
        rejects[0].payload["reason"]
            .as_str()
            .unwrap()
            .starts_with("bad signature")
    );
    assert_eq!(rejects[1].payload["reason"], "missing X-Hub-Signature-256");
    assert!(
        rejects[0].payload["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // A refused delivery id is not burnt: the genuine delivery still goes through.
    let (status, _) = post(
        &s,
        "/webhooks/github",
        &github_headers("pull_request", "d-9", &body),
        &body,
    )
    .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn other_branches_malformed_bodies_oversize_and_unconfigured_providers() {
    let s = start(false).await;
    // GitHub has no secret here: 404.
    let body = fixture("github/push_main.json");
    let (status, _) = post(
        &s,
        "/webhooks/github",
        &github_headers("push", "d-1", &body),
        &body,
    )
    .await;
    assert_eq!(status, 404);

    let token = || ("X-Gitlab-Token", GITLAB_TOKEN.to_owned());
    let mut mr: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab/merge_request_merged.json")).unwrap();
    mr["object_attributes"]["target_branch"] = "release-1.x".into();
    let other = serde_json::to_vec(&mr).unwrap();
    let headers = |uuid: &str| {
        vec![
            ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
            token(),
            ("X-Gitlab-Event-UUID", uuid.to_owned()),
        ]
    };
    let (status, answer) = post(&s, "/webhooks/gitlab", &headers("u-1"), &other).await;
    assert_eq!(status, 200);
    assert!(
        answer["ignored"].as_str().unwrap().contains("release-1.x"),
        "{answer}"
    );

    let (status, answer) = post(
        &s,
        "/webhooks/gitlab",
        &headers("u-2"),
        b"{\"object_attributes\": [",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "bad_request");
    let mut mr: serde_json::Value =
        serde_json::from_slice(&fixture("gitlab/merge_request_merged.json")).unwrap();
    mr["user"] = serde_json::Value::Null;
    let (status, answer) = post(
        &s,
        "/webhooks/gitlab",
        &headers("u-3"),
        &serde_json::to_vec(&mr).unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "user.username");

    let big = vec![b' '; 65 * 1024];
    let (status, answer) = post(&s, "/webhooks/gitlab", &headers("u-4"), &big).await;
    assert_eq!(status, 413, "{answer}");

    assert!(jobs(&*s.store).await.is_empty());
    let reasons: Vec<String> = actions(&*s.store, "webhook.reject")
        .await
        .iter()
        .map(|e| e.payload["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "not configured",
            "malformed JSON",
            "bad field user.username",
            "body too large"
        ]
    );

    // And the merge into main goes through.
    let good = fixture("gitlab/merge_request_merged.json");
    let (status, answer) = post(&s, "/webhooks/gitlab", &headers("u-5"), &good).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["enqueued"]["commit"],
        "5c1e9a7b3d2f4e6a8c0b1d3f5e7a9c2b4d6f8e0a"
    );
}
