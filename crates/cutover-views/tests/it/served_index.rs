//! "What ran at T" read through the store's switch index gives exactly the answer of a full replay
//! of the audit log (`served_at_replay`), on SQLite and on PostgreSQL (`CUTOVER_TEST_PG_URL`, set
//! by `cargo xtask pg -- cargo test -p cutover-views`), over constructed histories: switches of
//! random host sets (with a host that left the configuration, repeated hosts, no hosts), switches
//! whose payload names another environment, payloads that cannot be read, other environments'
//! switches, proofs, and instants before, at and between every event. Then the index is dropped
//! and rebuilt by the store's backfill, and compared again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use cutover_store::{
    Audit, AuditEvent, Change, NewDeployment, Release, ReleaseKind, Store, Timestamp,
};
use serde_json::{Value, json};

/// The configured hosts of `prod`; `gone` was removed from the configuration.
const CONFIG_HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];
const ALL_HOSTS: [&str; 4] = ["web-1", "web-2", "web-3", "gone"];
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];

/// A small deterministic generator (xorshift), so that each seed is one reproducible history.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % u64::try_from(n).unwrap()).unwrap()
    }
}

async fn append(store: &dyn Store, action: &str, subject: &str, payload: Value) -> AuditEvent {
    store
        .append_audit(&Audit::new("tester", action, subject, payload))
        .await
        .unwrap()
}

async fn releases(store: &dyn Store) {
    for v in VERSIONS {
        store
            .apply_one(
                Change::InsertRelease(Release {
                    version: v.into(),
                    tag: format!("v{v}"),
                    commit: format!("commit-of-{v}"),
                    kind: ReleaseKind::Normal,
                    notes: String::new(),
                    changes: json!([]),
                    artifact_digest: Some(format!("sha256:digest-of-{v}")),
                    bom: None,
                    vulns: None,
                    created_at: Utc::now(),
                }),
                &Audit::new(
                    "tester",
                    "release.create",
                    format!("release/{v}"),
                    json!({}),
                ),
            )
            .await
            .unwrap();
    }
}

/// Writes one history of about `steps` events; returns every event written.
async fn history(store: &dyn Store, seed: u64, steps: usize) -> Vec<AuditEvent> {
    let mut rng = Rng(seed);
    let mut events = Vec::new();
    let mut deployments: Vec<(i64, &str, &str)> = Vec::new();
    for _ in 0..steps {
        let roll = rng.below(20);
        let v = VERSIONS[rng.below(VERSIONS.len())];
        let env = if rng.below(4) == 0 { "staging" } else { "prod" };
        let event = match roll {
            0..=2 => {
                let applied = store
                    .apply(
                        &[Change::InsertDeployment(NewDeployment {
                            environment: env.into(),
                            release_version: v.into(),
                            strategy: "blue-green".into(),
                            state: "live".into(),
                            trigger: "cli".into(),
                            actor: "tester".into(),
                            reverts: None,
                            created_at: Utc::now(),
                        })],
                        &Audit::new(
                            "tester",
                            "deployment.create",
                            "deployment:?",
                            json!({"environment": env, "version": v}),
                        ),
                    )
                    .await
                    .unwrap();
                deployments.push((applied.id(0).unwrap(), env, v));
                applied.event
            }
            3..=10 => {
                // A switch naming a random set of hosts (maybe none, maybe one twice).
                let n = rng.below(4);
                let hosts: Vec<Value> = (0..n)
                    .map(|_| {
                        let h = ALL_HOSTS[rng.below(ALL_HOSTS.len())];
                        let weight: Value = if rng.below(3) == 0 {
                            json!(33.4)
                        } else {
                            json!(100)
                        };
                        let serving = match rng.below(4) {
                            0 => json!([]),
                            1 => json!([{"version": v, "slot": "blue", "weight": 90},
                                        {"version": VERSIONS[0], "slot": "green", "weight": 10}]),
                            _ => json!([{"version": v, "slot": "blue", "weight": weight}]),
                        };
                        json!({"host": h, "serving": serving})
                    })
                    .collect();
                let deployment = deployments.last().map(|d| d.0);
                append(
                    store,
                    "deployment.switch",
                    &format!("env:{env}"),
                    json!({"environment": env, "deployment": deployment, "hosts": hosts}),
                )
                .await
            }
            11 => {
                // Filed under prod, but the payload says staging: the replay skips it silently.
                append(
                    store,
                    "deployment.switch",
                    "env:prod",
                    json!({"environment": "staging", "hosts": [{"host": "web-1", "serving": []}]}),
                )
                .await
            }
            12 => {
                let bad = match rng.below(4) {
                    0 => json!({"environment": "prod", "hosts": "not a list"}),
                    1 => json!({"hosts": [{"host": "web-2"}]}),
                    2 => {
                        json!({"environment": "prod", "hosts": [{"host": "web-2", "serving": [{"weight": 5}]}]})
                    }
                    _ => json!("just a string"),
                };
                append(store, "deployment.switch", &format!("env:{env}"), bad).await
            }
            13..=16 => {
                let Some((id, denv, dv)) = deployments.get(rng.below(deployments.len().max(1)))
                else {
                    continue;
                };
                let host = ALL_HOSTS[rng.below(ALL_HOSTS.len())];
                append(
                    store,
                    "proof.record",
                    &format!("deployment:{id}"),
                    json!({"environment": denv, "host": host, "version": dv, "keyid": format!("key-{}", rng.below(9))}),
                )
                .await
            }
            _ => append(store, "job.enqueue", "job/1", json!({"kind": "check"})).await,
        };
        events.push(event);
    }
    events
}

/// Instants before, at and just before every event, and after the last.
fn instants(events: &[AuditEvent]) -> Vec<Timestamp> {
    let mut out = vec![events[0].at - Duration::seconds(1)];
    for e in events {
        out.push(e.at - Duration::microseconds(1));
        out.push(e.at);
    }
    out.push(events[events.len() - 1].at + Duration::seconds(1));
    out
}

/// What the compared answers covered.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    compared: usize,
    proofs: usize,
    removed_host: usize,
    warnings: usize,
    not_deployed: usize,
}

async fn compare(store: &dyn Store, events: &[AuditEvent]) -> Seen {
    let config: Vec<String> = CONFIG_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    let mut seen = Seen::default();
    for at in instants(events) {
        for (env, hosts) in [("prod", config.clone()), ("staging", Vec::new())] {
            let fast = cutover_views::served_at(store, env, &hosts, at)
                .await
                .unwrap();
            let slow = cutover_views::served_at_replay(store, env, &hosts, at)
                .await
                .unwrap();
            assert_eq!(fast, slow, "{env} at {at}");
            seen.compared += 1;
            let serving = || fast.hosts.iter().flat_map(|h| &h.serving);
            seen.proofs += usize::from(serving().any(|s| s.proof.is_some()));
            seen.removed_host += usize::from(fast.hosts.iter().any(|h| h.host == "gone"));
            seen.warnings += usize::from(!fast.warnings.is_empty());
            seen.not_deployed += usize::from(!fast.deployed);
        }
    }
    seen
}

/// Checks one backend: the indexed answer equals the replay, before and after a rebuild of the
/// index by the backfill (`wipe` empties the index and marks the backfill pending; `reopen` opens
/// the store again, which runs it).
async fn check<W, R>(store: Arc<dyn Store>, wipe: W, reopen: R)
where
    W: AsyncFnOnce(),
    R: AsyncFnOnce() -> Arc<dyn Store>,
{
    releases(&*store).await;
    let mut all = Vec::new();
    for seed in [7, 1_234_567, 0xdead_beef] {
        all.extend(history(&*store, seed, 50).await);
    }
    let seen = compare(&*store, &all).await;
    // The histories reach every case.
    assert!(seen.compared > 300, "{seen:?}");
    assert!(seen.proofs > 0, "{seen:?}");
    assert!(seen.removed_host > 0, "{seen:?}");
    assert!(seen.warnings > 0, "{seen:?}");
    assert!(seen.not_deployed > 0, "{seen:?}");
    store.close().await;
    wipe().await;
    let store = reopen().await;
    assert_eq!(compare(&*store, &all).await, seen);
    store.close().await;
}

const WIPE: [&str; 5] = [
    "DELETE FROM audit_switches",
    "DELETE FROM audit_switch_hosts",
    "DELETE FROM audit_switch_env_hosts",
    "DELETE FROM audit_switch_backfill",
    "INSERT INTO audit_switch_backfill (pending) VALUES (1)",
];

#[tokio::test]
async fn the_index_answers_as_the_replay_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = cutover_store::open_sqlite(&path).await.unwrap();
    check(
        store,
        async || {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            for sql in WIPE {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            c.close().await.unwrap();
        },
        async || cutover_store::open_sqlite(&path).await.unwrap(),
    )
    .await;
}

#[tokio::test]
async fn the_index_answers_as_the_replay_on_postgres() {
    use sqlx::Connection;
    let admin = std::env::var("CUTOVER_TEST_PG_URL").expect(
        "CUTOVER_TEST_PG_URL is not set: run `cargo xtask pg -- cargo test -p cutover-views`, \
         which starts a throwaway PostgreSQL",
    );
    let name = format!(
        "views_served_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("CUTOVER_TEST_PG_URL {admin} has no database part"),
    };
    let store = cutover_store::open(&url).await.unwrap();
    check(
        store,
        async || {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            for sql in WIPE {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            c.close().await.unwrap();
        },
        async || cutover_store::open(&url).await.unwrap(),
    )
    .await;
}
