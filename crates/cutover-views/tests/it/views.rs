//! The views over a real SQLite store, filled through the Store API the way the deploy engine and
//! the control plane write it (deployments and their transitions, `deployment.switch` and
//! `proof.record` audit events, observations built from the agent's protocol types).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cutover_agent::Slot;
use cutover_agent::health::Health;
use cutover_agent::protocol::{ObservedService, ObservedSlot};
use cutover_agent::router::Canary;
use cutover_agent::runtime::ProcessState;
use cutover_store::{
    Audit, Change, NewDeployment, NewObservation, Release, ReleaseKind, Store, Timestamp,
};
use cutover_views::{ViewOptions, ViewsError};
use serde_json::json;

const CONFIG: &str = r#"
[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]
health = { path = "/health" }

[environments.staging]
hosts = ["local", "web-2"]
strategy = "blue-green"
listen = "127.0.0.1:8080"

[environments.production]
hosts = ["web-1"]
strategy = { canary = [25, 100], step = "1m" }
listen = "127.0.0.1:9080"
promote_from = "staging"
"#;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn config(text: &str) -> cutover_config::Config {
    cutover_config::load_str(
        text,
        std::path::Path::new("cutover.toml"),
        &[] as &[(&str, &str)],
    )
    .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt
            .block_on(cutover_store::open_sqlite(&dir.path().join("state.db")))
            .unwrap();
        Self {
            _dir: dir,
            rt,
            store,
        }
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn release(&self, version: &str, commit: &str) {
        let r = Release {
            version: version.into(),
            tag: format!("v{version}"),
            commit: commit.into(),
            kind: ReleaseKind::Normal,
            notes: String::new(),
            changes: json!([]),
            artifact_digest: Some(format!("sha256:{}", digest(version))),
            bom: None,
            vulns: None,
            created_at: t("2026-11-01T00:00:00Z"),
        };
        self.block(self.store.apply_one(
            Change::InsertRelease(r),
            &Audit::new(
                "tester",
                "release.create",
                format!("release/{version}"),
                json!({}),
            ),
        ))
        .unwrap();
    }

    /// A deployment created at `created` that went through `path` (states after `queued`), one
    /// transition a minute, each one `apply` with its audit event as the spec says; the last
    /// state is terminal when it is `live`, `rolled_back` or `failed`.
    fn deployment(
        &self,
        env: &str,
        version: &str,
        trigger: &str,
        reverts: Option<i64>,
        created: &str,
        path: &[(&str, Option<&str>)],
    ) -> i64 {
        if self
            .block(self.store.get_release(version))
            .unwrap()
            .is_none()
        {
            self.release(version, &format!("commit-of-{version}"));
        }
        let created = t(created);
        let applied = self
            .block(self.store.apply(
                &[Change::InsertDeployment(NewDeployment {
                    environment: env.into(),
                    release_version: version.into(),
                    strategy: "blue-green".into(),
                    state: "queued".into(),
                    trigger: trigger.into(),
                    actor: "ada@example.com".into(),
                    reverts,
                    created_at: created,
                })],
                &Audit::new(
                    "ada@example.com",
                    "deployment.create",
                    "deployment:?",
                    json!({"environment": env, "version": version, "strategy": "blue-green",
                           "trigger": trigger, "reverts": reverts}),
                ),
            ))
            .unwrap();
        let id = applied.id(0).unwrap();
        let mut from = "queued".to_owned();
        for (i, (to, reason)) in path.iter().enumerate() {
            let at = created + Duration::minutes(i64::try_from(i).unwrap() + 1);
            let terminal = matches!(*to, "live" | "rolled_back" | "failed") && i + 1 == path.len();
            self.block(self.store.apply(
                &[Change::UpdateDeployment {
                    id,
                    expected_state: Some(from.clone()),
                    state: (*to).into(),
                    at,
                    finished_at: terminal.then_some(at),
                }],
                &Audit::new(
                    "ada@example.com",
                    "deployment.transition",
                    format!("deployment:{id}"),
                    json!({"environment": env, "version": version, "from": from, "to": to,
                           "reason": reason}),
                ),
            ))
            .unwrap();
            from = (*to).to_owned();
        }
        id
    }

    fn switch(&self, env: &str, deployment: i64, hosts: serde_json::Value) -> Timestamp {
        self.block(self.store.append_audit(&Audit::new(
            "ada@example.com",
            "deployment.switch",
            format!("env:{env}"),
            json!({"environment": env, "deployment": deployment, "hosts": hosts}),
        )))
        .unwrap()
        .at
    }

    fn proof(&self, env: &str, deployment: i64, host: &str, version: &str) -> Timestamp {
        self.block(self.store.append_audit(&Audit::new(
            "ada@example.com",
            "proof.record",
            format!("deployment:{deployment}"),
            json!({"environment": env, "host": host, "version": version,
                   "artifact_sha256": digest(version), "keyid": "SHA256:key1"}),
        )))
        .unwrap()
        .at
    }

    fn host(&self, name: &str, last_seen: Option<Timestamp>) {
        self.block(self.store.apply_one(
            Change::UpsertHost {
                name: name.into(),
                token_hash: Some("not-a-real-hash".into()),
                agent_version: Some("0.1.0".into()),
                at: t("2026-11-01T00:00:00Z"),
            },
            &Audit::new("tester", "host.add", format!("host:{name}"), json!({})),
        ))
        .unwrap();
        if let Some(at) = last_seen {
            assert!(self.block(self.store.touch_host(name, at, None)).unwrap());
        }
    }

    fn observe(
        &self,
        host: &str,
        generation: i64,
        at: &str,
        services: &BTreeMap<String, ObservedService>,
    ) {
        self.observe_raw(
            host,
            generation,
            at,
            json!({"at": t(at), "services": services}),
        );
    }

    fn observe_raw(&self, host: &str, generation: i64, at: &str, observed: serde_json::Value) {
        self.block(self.store.apply_one(
            Change::InsertObservation(NewObservation {
                host: host.into(),
                generation,
                observed,
                evidence: json!({}),
                at: t(at),
            }),
            &Audit::new(
                format!("agent:{host}"),
                "agent.report",
                format!("host:{host}"),
                json!({"generation": generation}),
            ),
        ))
        .unwrap();
    }
}

fn digest(version: &str) -> String {
    let byte = version.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("{byte:02x}").repeat(32)
}

fn running(version: &str, pid: u32, port: u16, since: &str, health: Health) -> ObservedSlot {
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

fn service(
    slots: Vec<(Slot, ObservedSlot)>,
    active: Option<Slot>,
    canary: Option<Canary>,
) -> BTreeMap<String, ObservedService> {
    BTreeMap::from([(
        "hello".to_owned(),
        ObservedService {
            slots: slots.into_iter().collect(),
            active,
            canary,
            paused: false,
            counters: BTreeMap::new(),
            errors: Vec::new(),
        },
    )])
}

fn now() -> DateTime<Utc> {
    t("2026-11-26T12:00:00Z")
}

/// Staging: 1.0.0 live, 1.1.0 rolled back, 1.2.0 in flight (observing a canary).
fn staging(f: &Fixture) -> (i64, i64, i64) {
    let live = f.deployment(
        "staging",
        "1.0.0",
        "cli",
        None,
        "2026-11-26T08:00:00Z",
        &[
            ("preparing", None),
            ("verifying", None),
            ("switching", None),
            ("observing", None),
            ("live", None),
        ],
    );
    let bad = f.deployment(
        "staging",
        "1.1.0",
        "cli",
        None,
        "2026-11-26T09:00:00Z",
        &[
            ("preparing", None),
            ("verifying", None),
            ("failed", Some("health check of local/green: 503 after 30s")),
            ("rolling_back", Some("verification failed")),
            ("rolled_back", None),
        ],
    );
    let flight = f.deployment(
        "staging",
        "1.2.0",
        "cli",
        None,
        "2026-11-26T11:00:00Z",
        &[
            ("preparing", None),
            ("verifying", None),
            ("switching", None),
            ("observing", None),
        ],
    );
    (live, bad, flight)
}

#[test]
fn status_shows_the_live_release_the_newest_deployment_and_each_hosts_slots_and_router() {
    let f = Fixture::new();
    let (_, _, flight) = staging(&f);
    f.host("local", Some(now() - Duration::seconds(5)));
    f.host("web-2", Some(now() - Duration::minutes(10)));
    f.observe(
        "local",
        1,
        "2026-11-26T11:00:00Z",
        &service(
            vec![(
                Slot::Blue,
                running("1.0.0", 100, 9001, "2026-11-26T08:01:00Z", Health::Healthy),
            )],
            Some(Slot::Blue),
            None,
        ),
    );
    f.observe(
        "local",
        3,
        "2026-11-26T11:59:58Z",
        &service(
            vec![
                (
                    Slot::Blue,
                    running("1.0.0", 100, 9001, "2026-11-26T08:01:00Z", Health::Healthy),
                ),
                (
                    Slot::Green,
                    running(
                        "1.2.0",
                        4242,
                        9002,
                        "2026-11-26T11:01:00Z",
                        Health::Starting,
                    ),
                ),
            ],
            Some(Slot::Blue),
            Some(Canary {
                slot: Slot::Green,
                weight_percent: 25,
            }),
        ),
    );
    let status = f
        .block(cutover_views::status(
            &*f.store,
            &config(CONFIG),
            None,
            &ViewOptions::at(now()),
        ))
        .unwrap();
    assert!(status.warnings.is_empty(), "{:?}", status.warnings);
    let got = serde_json::to_value(&status).unwrap();
    let want = json!({"environments": [
        {"name": "production", "release": null, "deployment": null, "hosts": [
            {"name": "web-1", "connected": false, "last_seen": null, "slots": [],
             "router": {"active": null, "weights": {}}}
        ]},
        {"name": "staging", "release": "1.0.0", "deployment": {"id": flight, "state": "observing"}, "hosts": [
            {"name": "local", "connected": true, "last_seen": "2026-11-26T11:59:55Z",
             "slots": [
                {"slot": "blue", "version": "1.0.0", "state": "running", "healthy": true, "pid": 100,
                 "port": 9001, "since": "2026-11-26T08:01:00Z"},
                {"slot": "green", "version": "1.2.0", "state": "running", "healthy": false, "pid": 4242,
                 "port": 9002, "since": "2026-11-26T11:01:00Z"}
             ],
             "router": {"active": "blue", "weights": {"blue": 75, "green": 25}}},
            {"name": "web-2", "connected": false, "last_seen": "2026-11-26T11:50:00Z", "slots": [],
             "router": {"active": null, "weights": {}}}
        ]}
    ]});
    assert_eq!(got, want);
    assert_eq!(status.environments[1].hosts[0].slots[1].health, "starting");

    // One environment only; an unknown one is the user's mistake, with the known ones named.
    let only = f
        .block(cutover_views::status(
            &*f.store,
            &config(CONFIG),
            Some("staging"),
            &ViewOptions::at(now()),
        ))
        .unwrap();
    assert_eq!(only.environments.len(), 1);
    let err = f
        .block(cutover_views::status(
            &*f.store,
            &config(CONFIG),
            Some("prod"),
            &ViewOptions::at(now()),
        ))
        .unwrap_err();
    assert!(matches!(err, ViewsError::UnknownEnvironment { .. }));
    assert!(err.is_user_error());
    assert_eq!(
        err.to_string(),
        "unknown environment `prod`; the configuration defines `production`, `staging`"
    );
}

#[test]
fn a_newer_live_deployment_supersedes_and_a_rollback_deployment_counts_as_live() {
    let f = Fixture::new();
    let (first, _, flight) = staging(&f);
    assert_eq!(
        f.block(cutover_views::current_release(&*f.store, "staging"))
            .unwrap()
            .unwrap()
            .id,
        first
    );
    // The in-flight one is rolled back: still 1.0.0.
    f.block(f.store.apply(
        &[Change::UpdateDeployment {
            id: flight,
            expected_state: Some("observing".into()),
            state: "rolled_back".into(),
            at: now(),
            finished_at: Some(now()),
        }],
        &Audit::new(
            "a",
            "deployment.transition",
            format!("deployment:{flight}"),
            json!({}),
        ),
    ))
    .unwrap();
    assert_eq!(
        f.block(cutover_views::current_release(&*f.store, "staging"))
            .unwrap()
            .unwrap()
            .release_version,
        "1.0.0"
    );
    let second = f.deployment(
        "staging",
        "1.2.1",
        "ship",
        None,
        "2026-11-26T12:30:00Z",
        &[("preparing", None), ("live", None)],
    );
    let back = f.deployment(
        "staging",
        "1.0.0",
        "rollback",
        Some(second),
        "2026-11-26T13:00:00Z",
        &[("switching", None), ("live", None)],
    );
    let current = f
        .block(cutover_views::current_release(&*f.store, "staging"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (current.id, current.release_version.as_str()),
        (back, "1.0.0")
    );
    assert!(
        f.block(cutover_views::current_release(&*f.store, "production"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn history_lists_newest_first_with_durations_and_why_deployments_failed() {
    let f = Fixture::new();
    let (live, bad, flight) = staging(&f);
    f.deployment(
        "production",
        "1.0.0",
        "promote",
        None,
        "2026-11-26T11:30:00Z",
        &[("preparing", None), ("live", None)],
    );
    let all = f
        .block(cutover_views::history(&*f.store, Some("staging"), None))
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![flight, bad, live]);
    assert_eq!(all[0].state, "observing");
    assert_eq!(all[0].duration_ms, None);
    assert_eq!(all[0].reason, None);
    assert_eq!(all[1].state, "rolled_back");
    assert_eq!(all[1].duration_ms, Some(5 * 60_000));
    assert_eq!(
        all[1].reason.as_deref(),
        Some("health check of local/green: 503 after 30s")
    );
    assert_eq!(all[2].reason, None);
    assert_eq!(all[2].duration_ms, Some(5 * 60_000));
    let json = serde_json::to_value(&all[1]).unwrap();
    assert_eq!(json["version"], "1.1.0");
    assert_eq!(json["trigger"], "cli");
    assert_eq!(json["actor"], "ada@example.com");
    assert_eq!(json["created_at"], "2026-11-26T09:00:00Z");

    let limited = f
        .block(cutover_views::history(&*f.store, None, Some(2)))
        .unwrap();
    assert_eq!(limited.len(), 2);
    // Newest first: the production deployment was created last.
    assert_eq!(limited[0].environment, "production");
    assert_eq!(limited[1].id, flight);
}

#[test]
fn served_at_replays_switches_and_proofs_up_to_the_instant() {
    let f = Fixture::new();
    f.release("1.0.0", "c0ffee1");
    f.release("1.1.0", "c0ffee2");
    let hosts = vec!["local".to_owned(), "web-2".to_owned()];
    let before = now() - Duration::days(400);
    let d1 = f.deployment(
        "staging",
        "1.0.0",
        "cli",
        None,
        "2026-11-26T08:00:00Z",
        &[("live", None)],
    );
    let s1 = f.switch(
        "staging",
        d1,
        json!([
            {"host": "local", "serving": [{"version": "1.0.0", "commit": "c0ffee1",
              "artifact_sha256": digest("1.0.0"), "slot": "blue", "weight": 100}]},
            {"host": "web-2", "serving": [{"version": "1.0.0", "slot": "blue", "weight": 100}]}
        ]),
    );
    let p1 = f.proof("staging", d1, "local", "1.0.0");
    // A switch of another environment is not this one's.
    f.switch("production", d1, json!([{"host": "local", "serving": []}]));
    let d2 = f.deployment(
        "staging",
        "1.1.0",
        "cli",
        None,
        "2026-11-26T09:00:00Z",
        &[("rolled_back", None)],
    );
    let s2 = f.switch("staging", d2, json!([
        {"host": "local", "serving": [
            {"version": "1.0.0", "commit": "c0ffee1", "artifact_sha256": digest("1.0.0"), "slot": "blue", "weight": 75},
            {"version": "1.1.0", "commit": "c0ffee2", "artifact_sha256": digest("1.1.0"), "slot": "green", "weight": 25}]}
    ]));
    let s3 = f.switch(
        "staging",
        d2,
        json!([
            {"host": "local", "serving": [{"version": "1.0.0", "commit": "c0ffee1",
              "artifact_sha256": digest("1.0.0"), "slot": "blue", "weight": 100}]},
            {"host": "old-host", "serving": []}
        ]),
    );

    let at = |when| {
        f.block(cutover_views::served_at(&*f.store, "staging", &hosts, when))
            .unwrap()
    };

    let nothing = at(before);
    assert!(!nothing.deployed);
    assert_eq!(nothing.hosts.len(), 2);
    assert!(
        nothing
            .hosts
            .iter()
            .all(|h| h.serving.is_empty() && h.deployment.is_none())
    );

    // At exactly the switch's instant it counts; the proof came later.
    let first = at(s1);
    assert!(first.deployed);
    assert_eq!(first.hosts[0].deployment, Some(d1));
    assert_eq!(first.hosts[0].since, Some(s1));
    assert_eq!(first.hosts[0].serving[0].proof, None);
    // web-2's switch entry has no commit or digest: they come from the release record.
    let web2 = &first.hosts[1].serving[0];
    assert_eq!(web2.commit.as_deref(), Some("c0ffee1"));
    assert_eq!(web2.artifact_sha256, Some(digest("1.0.0")));

    let canary = at(s2);
    let local = &canary.hosts[0];
    assert_eq!(local.deployment, Some(d2));
    let split: Vec<(&str, Option<u32>)> = local
        .serving
        .iter()
        .map(|s| (s.version.as_str(), s.weight))
        .collect();
    assert_eq!(split, vec![("1.0.0", Some(75)), ("1.1.0", Some(25))]);
    let proof = local.serving[0].proof.clone().unwrap();
    assert_eq!(
        (proof.deployment, proof.at, proof.keyid.as_deref()),
        (d1, p1, Some("SHA256:key1"))
    );
    assert_eq!(local.serving[1].proof, None);
    // web-2 was not switched by d2: it still serves what d1 set.
    assert_eq!(canary.hosts[1].deployment, Some(d1));

    let just_before_rollback = at(s3 - Duration::microseconds(1));
    assert_eq!(just_before_rollback.hosts[0].serving.len(), 2);
    let after = at(s3 + Duration::hours(1));
    assert_eq!(after.hosts[0].serving.len(), 1);
    assert_eq!(after.hosts[0].serving[0].weight, Some(100));
    // A host only the switches name still shows, after the configured ones.
    assert_eq!(after.hosts[2].host, "old-host");
    assert!(after.hosts[2].serving.is_empty());
    assert_eq!(after.hosts[2].deployment, Some(d2));

    let json = serde_json::to_value(&canary).unwrap();
    assert_eq!(json["hosts"][0]["serving"][1]["commit"], "c0ffee2");
    assert_eq!(json["hosts"][0]["serving"][1]["slot"], "green");
}

#[test]
fn hosts_show_connection_and_what_runs_and_a_bad_observation_is_a_warning() {
    let f = Fixture::new();
    f.host("local", Some(now() - Duration::seconds(90)));
    f.host("web-1", Some(now() - Duration::seconds(91)));
    f.host("web-2", None);
    f.observe(
        "local",
        2,
        "2026-11-26T11:59:00Z",
        &service(
            vec![(
                Slot::Green,
                running("1.2.0", 77, 9002, "2026-11-26T11:00:00Z", Health::Healthy),
            )],
            Some(Slot::Green),
            None,
        ),
    );
    f.observe_raw(
        "web-1",
        1,
        "2026-11-26T11:00:00Z",
        json!({"services": "not this"}),
    );
    let (hosts, warnings) = f
        .block(cutover_views::hosts(&*f.store, &ViewOptions::at(now())))
        .unwrap();
    let names: Vec<(&str, bool)> = hosts
        .iter()
        .map(|h| (h.name.as_str(), h.connected))
        .collect();
    // 90 s is 3 poll timeouts of 30 s: still connected; a second more is not.
    assert_eq!(
        names,
        vec![("local", true), ("web-1", false), ("web-2", false)]
    );
    let local = serde_json::to_value(&hosts[0]).unwrap();
    assert_eq!(local["observed_at"], "2026-11-26T11:59:00Z");
    assert_eq!(local["services"][0]["name"], "hello");
    assert_eq!(local["services"][0]["slots"][0]["version"], "1.2.0");
    assert_eq!(
        local["services"][0]["router"],
        json!({"active": "green", "weights": {"green": 100}})
    );
    assert!(local.get("token_hash").is_none());
    assert!(hosts[1].services.is_empty());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("host web-1"), "{}", warnings[0]);
}

#[test]
fn production_is_named_so_or_ends_the_promotion_chain() {
    assert_eq!(
        cutover_views::production_environment(&config(CONFIG)).as_deref(),
        Some("production")
    );
    let chain = r#"
[project]
name = "hello"
[service]
start = ["x"]
health = { path = "/health" }
[environments.dev]
hosts = ["local"]
listen = "127.0.0.1:8081"
[environments.qa]
hosts = ["local"]
listen = "127.0.0.1:8082"
promote_from = "dev"
[environments.live]
hosts = ["local"]
listen = "127.0.0.1:8083"
promote_from = "qa"
[environments.lab]
hosts = ["local"]
listen = "127.0.0.1:8084"
promote_from = "dev"
"#;
    assert_eq!(
        cutover_views::production_environment(&config(chain)).as_deref(),
        Some("live")
    );
    let alone = r#"
[project]
name = "hello"
[service]
start = ["x"]
health = { path = "/health" }
[environments.staging]
hosts = ["local"]
listen = "127.0.0.1:8081"
"#;
    // An environment nothing is promoted into is not taken for production.
    assert_eq!(cutover_views::production_environment(&config(alone)), None);
    let none = "[project]\nname = \"hello\"\n";
    assert_eq!(cutover_views::production_environment(&config(none)), None);
}

#[test]
fn an_unreadable_switch_event_is_a_warning_and_float_weights_are_read() {
    let f = Fixture::new();
    let hosts = vec!["local".to_owned()];
    let d = f.deployment(
        "staging",
        "2.0.0",
        "cli",
        None,
        "2026-11-26T08:00:00Z",
        &[("live", None)],
    );
    f.switch(
        "staging",
        d,
        json!([{"host": "local", "serving": [{"version": "2.0.0", "weight": 99.6}]}]),
    );
    let bad = f
        .block(f.store.append_audit(&Audit::new(
            "a",
            "deployment.switch",
            "env:staging",
            json!({"environment": "staging", "hosts": "not a list"}),
        )))
        .unwrap();
    let served = f
        .block(cutover_views::served_at(
            &*f.store, "staging", &hosts, bad.at,
        ))
        .unwrap();
    assert_eq!(served.hosts[0].serving[0].weight, Some(100));
    assert_eq!(served.warnings.len(), 1);
    assert!(
        served.warnings[0].contains(&format!("audit event {}", bad.seq)),
        "{:?}",
        served.warnings
    );
}
