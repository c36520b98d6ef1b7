//! A store filled the way the release, deploy and queue code write it (every record through
//! `Store::apply` with its audit event), with pinned times, and a server on a real port.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use cutover_agent::Slot;
use cutover_agent::health::Health;
use cutover_agent::protocol::{ObservedService, ObservedSlot};
use cutover_agent::runtime::ProcessState;
use cutover_store::{
    Audit, Change, EnqueueJob, JobClass, NewDeployment, NewDeploymentStep, NewObservation,
    NewProof, QueuePolicy, Release, ReleaseKind, Store, Timestamp,
};
use cutover_web::WebState;
use serde_json::json;

pub const CONFIG: &str = r#"
[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]
health = { path = "/health" }

[environments.staging]
hosts = ["local"]
strategy = "blue-green"
listen = "127.0.0.1:8080"

[environments.production]
hosts = ["web-1"]
strategy = "blue-green"
listen = "127.0.0.1:9080"
promote_from = "staging"
"#;

/// A release note that tries to inject markup: every page must show it as text.
pub const EVIL_NOTE: &str = "Fixes the login <script>alert('owned')</script> & the \"quotes\"";

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub struct Seeded {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    /// staging 1.0.0 (live, with a proof), production 1.0.0 (live), staging 1.1.0 (observing).
    pub staging_live: i64,
    pub production_live: i64,
    pub in_flight: i64,
}

impl Seeded {
    pub fn state(&self) -> WebState {
        let config = cutover_config::load_str(
            CONFIG,
            std::path::Path::new("cutover.toml"),
            &[] as &[(&str, &str)],
        )
        .unwrap();
        WebState::new(self.store.clone(), Arc::new(config))
    }
}

fn release(version: &str, notes: &str, with_bom: bool) -> Release {
    Release {
        version: version.into(),
        tag: format!("v{version}"),
        commit: format!("{:0<40}", version.replace('.', "a")),
        kind: ReleaseKind::Normal,
        notes: notes.into(),
        changes: json!([
            {"id": "1111111111111111111111111111111111111111", "type": "feat", "scope": "api",
             "breaking": false, "summary": "add the <b>greeting</b> endpoint", "body": null, "footers": [],
             "author": {"name": "Ada", "email": "ada@example.com"}, "time": "2026-11-20T10:00:00+01:00"},
            {"id": "2222222222222222222222222222222222222222", "type": "fix", "scope": null,
             "breaking": true, "summary": "reject empty names", "body": null, "footers": [],
             "author": {"name": "Grace", "email": "grace@example.com"}, "time": "2026-11-21T09:30:00Z"},
        ]),
        artifact_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        bom: with_bom.then(|| {
            json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
                {"type": "library", "name": "serde", "version": "1.0.228", "purl": "pkg:cargo/serde@1.0.228",
                 "licenses": [{"expression": "MIT OR Apache-2.0"}]},
                {"type": "library", "name": "time", "version": "0.3.20", "purl": "pkg:cargo/time@0.3.20",
                 "licenses": [{"license": {"id": "MIT"}}]},
                {"type": "library", "name": "mystery", "version": "0.1.0", "purl": "pkg:cargo/mystery@0.1.0"},
            ]})
        }),
        vulns: with_bom.then(|| {
            json!({"scanned_at": "2026-11-22T08:00:00Z", "database": "osv-2026-11-21", "checked": 3,
                   "findings": [{"id": "RUSTSEC-2026-0009", "aliases": ["CVE-2026-1234"],
                                 "summary": "Stack overflow in <format> parsing", "score": 7.5, "level": "high",
                                 "package": {"ecosystem": "crates.io", "name": "time", "version": "0.3.20"},
                                 "fixed": "0.3.21", "informational": null, "packages": [1],
                                 "placements": [], "scope": "required"}],
                   "not_evaluated": []})
        }),
        created_at: t("2026-11-22T08:00:00Z"),
    }
}

fn slot(version: &str, pid: u32, port: u16, since: &str, health: Health) -> ObservedSlot {
    ObservedSlot {
        version: version.into(),
        port,
        process: ProcessState::Running {
            pid,
            since: t(since),
        },
        restarts: 0,
        health,
        evidence: Vec::new(),
    }
}

/// Writes one transition of a deployment, as the deploy engine does.
pub async fn transition(
    store: &dyn Store,
    id: i64,
    env: &str,
    version: &str,
    from: &str,
    to: &str,
    at: Timestamp,
) {
    let terminal = matches!(to, "live" | "rolled_back" | "failed");
    store
        .apply(
            &[Change::UpdateDeployment {
                id,
                expected_state: Some(from.into()),
                state: to.into(),
                at,
                finished_at: terminal.then_some(at),
            }],
            &Audit::new(
                "ada@example.com",
                "deployment.transition",
                format!("deployment:{id}"),
                json!({"environment": env, "version": version, "from": from, "to": to, "reason": null}),
            ),
        )
        .await
        .unwrap();
}

async fn deployment(
    store: &dyn Store,
    env: &str,
    version: &str,
    created: &str,
    path: &[&str],
) -> i64 {
    let created = t(created);
    let applied = store
        .apply(
            &[Change::InsertDeployment(NewDeployment {
                environment: env.into(),
                release_version: version.into(),
                strategy: "blue-green".into(),
                state: "queued".into(),
                trigger: "cli".into(),
                actor: "ada@example.com".into(),
                reverts: None,
                created_at: created,
            })],
            &Audit::new(
                "ada@example.com",
                "deployment.create",
                "deployment:?",
                json!({"environment": env, "version": version}),
            ),
        )
        .await
        .unwrap();
    let id = applied.id(0).unwrap();
    let mut from = "queued";
    for (i, to) in path.iter().enumerate() {
        let at = created + Duration::minutes(i64::try_from(i).unwrap() + 1);
        if *to == "verifying" {
            let step = store
                .apply(
                    &[Change::InsertDeploymentStep(NewDeploymentStep {
                        deployment_id: id,
                        step: "verify".into(),
                        intent: json!({"host": "local", "slot": "green", "checks": ["health", "version"]}),
                        at,
                    })],
                    &Audit::new("ada@example.com", "deployment.step", format!("deployment:{id}"), json!({"step": "verify"})),
                )
                .await
                .unwrap()
                .id(0)
                .unwrap();
            if path.len() > i + 1 {
                store
                    .apply(
                        &[Change::SetDeploymentStepResult {
                            id: step,
                            result: json!({"passed": true, "error_rate": 0.0}),
                            at: at + Duration::seconds(30),
                        }],
                        &Audit::new(
                            "ada@example.com",
                            "deployment.step",
                            format!("deployment:{id}"),
                            json!({"step": "verify", "passed": true}),
                        ),
                    )
                    .await
                    .unwrap();
            }
        }
        transition(store, id, env, version, from, to, at).await;
        from = to;
    }
    id
}

/// Fills a new store: two releases, three deployments, steps, a proof, a switch, hosts and their
/// observations, and queue jobs.
pub async fn seed() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let store = cutover_store::open_sqlite(&dir.path().join("state.db"))
        .await
        .unwrap();
    for r in [
        release("1.0.0", EVIL_NOTE, true),
        release("1.1.0", "Faster greetings.", false),
    ] {
        let subject = format!("release/{}", r.version);
        store
            .apply_one(
                Change::InsertRelease(r),
                &Audit::new("ada@example.com", "release.created", subject, json!({})),
            )
            .await
            .unwrap();
    }
    let live_path = ["preparing", "verifying", "switching", "observing", "live"];
    let staging_live = deployment(
        &*store,
        "staging",
        "1.0.0",
        "2026-11-23T09:00:00Z",
        &live_path,
    )
    .await;
    let production_live = deployment(
        &*store,
        "production",
        "1.0.0",
        "2026-11-24T09:00:00Z",
        &live_path,
    )
    .await;
    let in_flight = deployment(
        &*store,
        "staging",
        "1.1.0",
        "2026-11-25T09:00:00Z",
        &["preparing", "verifying", "switching", "observing"],
    )
    .await;

    // The proof of delivery of staging's live deployment, and the traffic switch.
    store
        .apply(
            &[Change::InsertProof(NewProof {
                deployment_id: staging_live,
                host: "local".into(),
                statement: json!({"_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": "hello-1.0.0.tar.zst", "digest": {"sha256": "ab".repeat(32)}}],
                    "predicateType": "https://cutover.dev/delivery/v1", "predicate": {"host": "local"}}),
                envelope: json!({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                    "signatures": [{"keyid": "SHA256:key1", "sig": "c2ln"}]}),
                created_at: t("2026-11-23T09:05:00Z"),
            })],
            &Audit::new(
                "ada@example.com",
                "proof.record",
                format!("deployment:{staging_live}"),
                json!({"environment": "staging", "host": "local", "version": "1.0.0",
                       "artifact_sha256": "ab".repeat(32), "keyid": "SHA256:key1"}),
            ),
        )
        .await
        .unwrap();
    for (env, id, host) in [
        ("staging", staging_live, "local"),
        ("production", production_live, "web-1"),
    ] {
        store
            .append_audit(&Audit::new(
                "ada@example.com",
                "deployment.switch",
                format!("env:{env}"),
                json!({"environment": env, "deployment": id, "hosts": [
                    {"host": host, "serving": [{"version": "1.0.0", "commit": "1a0a0", "slot": "blue", "weight": 100}]}]}),
            ))
            .await
            .unwrap();
    }

    // Hosts: both connected (seen now); `local` runs 1.0.0 in blue and the in-flight 1.1.0 in green.
    let now = Utc::now();
    for host in ["local", "web-1"] {
        store
            .apply_one(
                Change::UpsertHost {
                    name: host.into(),
                    token_hash: Some("not-a-real-hash".into()),
                    agent_version: Some("0.1.0".into()),
                    at: t("2026-11-01T00:00:00Z"),
                },
                &Audit::new("tester", "host.add", format!("host:{host}"), json!({})),
            )
            .await
            .unwrap();
        assert!(store.touch_host(host, now, None).await.unwrap());
    }
    let observe = |host: &str, slots: Vec<(Slot, ObservedSlot)>| {
        let services = BTreeMap::from([(
            "hello".to_owned(),
            ObservedService {
                slots: slots.into_iter().collect(),
                active: Some(Slot::Blue),
                canary: None,
                paused: false,
                counters: BTreeMap::new(),
                errors: Vec::new(),
            },
        )]);
        Change::InsertObservation(NewObservation {
            host: host.into(),
            generation: 1,
            observed: json!({"at": "2026-11-25T09:04:00Z", "services": services}),
            evidence: json!({}),
            at: t("2026-11-25T09:04:00Z"),
        })
    };
    for (host, change) in [
        (
            "local",
            observe(
                "local",
                vec![
                    (
                        Slot::Blue,
                        slot("1.0.0", 4242, 8081, "2026-11-23T09:01:00Z", Health::Healthy),
                    ),
                    (
                        Slot::Green,
                        slot(
                            "1.1.0",
                            4343,
                            8082,
                            "2026-11-25T09:01:00Z",
                            Health::Starting,
                        ),
                    ),
                ],
            ),
        ),
        (
            "web-1",
            observe(
                "web-1",
                vec![(
                    Slot::Blue,
                    slot("1.0.0", 5151, 9081, "2026-11-24T09:01:00Z", Health::Healthy),
                )],
            ),
        ),
    ] {
        store
            .apply_one(
                change,
                &Audit::new(
                    format!("agent:{host}"),
                    "agent.report",
                    format!("host:{host}"),
                    json!({"generation": 1}),
                ),
            )
            .await
            .unwrap();
    }

    // The queue: a check of 1.0.0 that ran, and one waiting.
    let policy = QueuePolicy::default();
    let mut check = EnqueueJob::new(JobClass::Release, "check", json!({"name": "unit tests"}));
    check.release_version = Some("1.0.0".into());
    check.run_at = t("2026-11-22T08:00:00Z");
    store
        .enqueue_job(&check, &policy, "ada@example.com")
        .await
        .unwrap();
    let claimed = store
        .claim_job("worker-1", now, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store
        .complete_job(
            claimed.id,
            "worker-1",
            &json!({"status": "passed"}),
            "worker-1",
        )
        .await
        .unwrap();
    let mut waiting = EnqueueJob::new(
        JobClass::Hotfix,
        "deploy",
        json!({"environment": "production"}),
    );
    waiting.run_at = t("2026-11-25T10:00:00Z");
    store
        .enqueue_job(&waiting, &policy, "ada@example.com")
        .await
        .unwrap();

    Seeded {
        dir,
        store,
        staging_live,
        production_live,
        in_flight,
    }
}

/// Serves the dashboard on a free loopback port; returns its base URL.
pub async fn serve(state: WebState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cutover_web::routes(state);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}
