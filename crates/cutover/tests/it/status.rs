//! `cutover status`, `history`, `audit --env --at`, `host ls` and `hotfix start` over a store
//! filled the way the deploy engine and the control plane write it (deployments and their
//! transitions, `deployment.switch` and `proof.record` events, agents' observations).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use cutover_agent::Slot;
use cutover_agent::health::Health;
use cutover_agent::protocol::{ObservedService, ObservedSlot};
use cutover_agent::router::Canary;
use cutover_agent::runtime::ProcessState;
use cutover_store::{
    Audit, Change, NewDeployment, NewObservation, Release, ReleaseKind, Store, Timestamp,
};
use serde_json::json;

use crate::support::Project;

const CONFIG: &str = r#"[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]
health = { path = "/health" }

[environments.staging]
hosts = ["local", "web-2"]
strategy = "blue-green"
listen = "127.0.0.1:8080"

[environments.prod]
hosts = ["web-1"]
strategy = "blue-green"
listen = "127.0.0.1:9080"
promote_from = "staging"
"#;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

struct Records {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
}

impl Records {
    fn open(p: &Project) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt
            .block_on(cutover_store::open_sqlite(
                &p.path().join(".cutover/state.db"),
            ))
            .unwrap();
        Self { rt, store }
    }

    fn release(&self, version: &str, commit: &str) {
        let release = Release {
            version: version.into(),
            tag: format!("v{version}"),
            commit: commit.into(),
            kind: ReleaseKind::Normal,
            notes: String::new(),
            changes: json!([]),
            artifact_digest: Some(format!("sha256:{}", "ab".repeat(32))),
            bom: None,
            vulns: None,
            created_at: t("2026-11-01T00:00:00Z"),
        };
        self.rt
            .block_on(self.store.apply_one(
                Change::InsertRelease(release),
                &Audit::new(
                    "tester",
                    "release.create",
                    format!("release/{version}"),
                    json!({}),
                ),
            ))
            .unwrap();
    }

    /// A deployment through `path` (one transition a minute after `created`), each transition
    /// one `apply` with its `deployment.transition` event.
    fn deployment(
        &self,
        env: &str,
        version: &str,
        trigger: &str,
        reverts: Option<i64>,
        created: &str,
        path: &[(&str, Option<&str>)],
    ) -> i64 {
        let created = t(created);
        let id = self
            .rt
            .block_on(self.store.apply(
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
                    "deployment:new",
                    json!({"environment": env, "version": version, "strategy": "blue-green",
                           "trigger": trigger, "reverts": reverts}),
                ),
            ))
            .unwrap()
            .id(0)
            .unwrap();
        let mut from = "queued".to_owned();
        for (i, (to, reason)) in path.iter().enumerate() {
            let at = created + Duration::minutes(i64::try_from(i).unwrap() + 1);
            let last = i + 1 == path.len();
            let terminal = last && matches!(*to, "live" | "rolled_back" | "failed");
            self.rt
                .block_on(self.store.apply(
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

    fn event(&self, action: &str, subject: String, payload: serde_json::Value) {
        self.rt
            .block_on(self.store.append_audit(&Audit::new(
                "ada@example.com",
                action,
                subject,
                payload,
            )))
            .unwrap();
    }

    fn host(&self, name: &str, last_seen: Option<Timestamp>) {
        self.rt
            .block_on(self.store.apply_one(
                Change::UpsertHost {
                    name: name.into(),
                    token_hash: Some("secret-token-hash".into()),
                    agent_version: Some("0.1.0".into()),
                    at: t("2026-11-01T00:00:00Z"),
                },
                &Audit::new("tester", "host.add", format!("host:{name}"), json!({})),
            ))
            .unwrap();
        if let Some(at) = last_seen {
            assert!(
                self.rt
                    .block_on(self.store.touch_host(name, at, None))
                    .unwrap()
            );
        }
    }

    fn observe(
        &self,
        host: &str,
        at: &str,
        slots: Vec<(Slot, ObservedSlot)>,
        canary: Option<Canary>,
    ) {
        let services = BTreeMap::from([(
            "hello".to_owned(),
            ObservedService {
                slots: slots.into_iter().collect(),
                active: Some(Slot::Blue),
                canary,
                paused: false,
                counters: BTreeMap::new(),
                errors: Vec::new(),
            },
        )]);
        self.rt
            .block_on(self.store.apply_one(
                Change::InsertObservation(NewObservation {
                    host: host.into(),
                    generation: 3,
                    observed: json!({"at": t(at), "services": services}),
                    evidence: json!({}),
                    at: t(at),
                }),
                &Audit::new(
                    format!("agent:{host}"),
                    "agent.report",
                    format!("host:{host}"),
                    json!({"generation": 3}),
                ),
            ))
            .unwrap();
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

/// Staging: 1.0.0 live on both hosts (proven on `local`), 1.1.0 rolled back after its canary,
/// 1.2.0 in flight; `local` connected and reporting, `web-2` silent for a while.
fn project() -> (Project, Records) {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "chore: configure cutover"]);
    let r = Records::open(&p);
    r.release("1.0.0", "1111111aaaaaaa");
    r.release("1.1.0", "2222222bbbbbbb");
    r.release("1.2.0", "3333333ccccccc");
    let steps = [
        ("preparing", None),
        ("verifying", None),
        ("switching", None),
        ("observing", None),
    ];
    let mut live_path = steps.to_vec();
    live_path.push(("live", None));
    let d1 = r.deployment(
        "staging",
        "1.0.0",
        "cli",
        None,
        "2026-11-20T08:00:00Z",
        &live_path,
    );
    let serving_100 = |host: &str| {
        json!({"host": host, "serving": [{"version": "1.0.0", "commit": "1111111aaaaaaa",
               "artifact_sha256": "ab".repeat(32), "slot": "blue", "weight": 100}]})
    };
    r.event(
        "deployment.switch",
        "env:staging".into(),
        json!({"environment": "staging", "deployment": d1, "hosts": [serving_100("local"), serving_100("web-2")]}),
    );
    r.event(
        "proof.record",
        format!("deployment:{d1}"),
        json!({"environment": "staging", "host": "local", "version": "1.0.0",
               "artifact_sha256": "ab".repeat(32), "keyid": "SHA256:testkey"}),
    );
    let d2 = r.deployment(
        "staging",
        "1.1.0",
        "cli",
        None,
        "2026-11-21T09:00:00Z",
        &[
            ("preparing", None),
            ("verifying", None),
            ("switching", None),
            ("observing", None),
            (
                "failed",
                Some("canary error rate 12.5% above 1% (local/green)"),
            ),
            ("rolling_back", Some("observation failed")),
            ("rolled_back", None),
        ],
    );
    r.event(
        "deployment.switch",
        "env:staging".into(),
        json!({"environment": "staging", "deployment": d2, "hosts": [{"host": "local", "serving": [
            {"version": "1.0.0", "commit": "1111111aaaaaaa", "artifact_sha256": "ab".repeat(32), "slot": "blue", "weight": 95},
            {"version": "1.1.0", "commit": "2222222bbbbbbb", "artifact_sha256": "ab".repeat(32), "slot": "green", "weight": 5}]}]}),
    );
    r.event(
        "deployment.switch",
        "env:staging".into(),
        json!({"environment": "staging", "deployment": d2, "hosts": [serving_100("local")]}),
    );
    r.deployment(
        "staging",
        "1.0.0",
        "rollback",
        Some(d2),
        "2026-11-21T09:30:00Z",
        &[("switching", None), ("live", None)],
    );
    r.deployment(
        "staging",
        "1.2.0",
        "ship",
        None,
        "2026-11-22T10:00:00Z",
        &steps[..2],
    );
    r.host("local", Some(Utc::now()));
    r.host("web-2", Some(t("2026-11-22T10:00:00Z")));
    r.observe(
        "local",
        "2026-11-22T10:01:00Z",
        vec![
            (
                Slot::Blue,
                slot("1.0.0", 4100, 9001, "2026-11-20T08:01:00Z", Health::Healthy),
            ),
            (
                Slot::Green,
                slot(
                    "1.2.0",
                    4200,
                    9002,
                    "2026-11-22T10:00:30Z",
                    Health::Starting,
                ),
            ),
        ],
        Some(Canary {
            slot: Slot::Green,
            weight_percent: 10,
        }),
    );
    (p, r)
}

/// Times written by the store's own clock (audit events, heartbeats) vary between runs.
fn redact_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    // `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` of today's (or a recent) clock, and `YYYY-MM-DD HH:MM:SSZ`.
    while let Some(i) = rest.find("20") {
        let candidate = &rest[i..];
        let b = candidate.as_bytes();
        let is_time = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b'T' || b[10] == b' ')
            && b[13] == b':'
            && b[16] == b':';
        if is_time {
            let end = candidate.find('Z').map_or(19, |z| z + 1);
            let stamp = &candidate[..end];
            out.push_str(&rest[..i]);
            // Fixed data of the tests (November 20-22) stays; the clock's own times go.
            if stamp.starts_with("2026-11-2") && ["0", "1", "2"].contains(&&stamp[9..10]) {
                out.push_str(stamp);
            } else {
                out.push_str("[TIME]");
            }
            rest = &candidate[end..];
        } else {
            out.push_str(&rest[..i + 2]);
            rest = &rest[i + 2..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn status_json_follows_the_contract() {
    let (p, _r) = project();
    let run = p.cutover(&["--json", "status"]);
    run.success();
    let mut doc = run.json();
    let local = &mut doc["environments"][1]["hosts"][0];
    assert_eq!(local["name"], "local");
    assert!(local["last_seen"].is_string());
    local["last_seen"] = json!("[NOW]");
    insta::assert_snapshot!(serde_json::to_string_pretty(&doc).unwrap(), @r#"
    {
      "environments": [
        {
          "name": "prod",
          "release": null,
          "deployment": null,
          "hosts": [
            {
              "name": "web-1",
              "connected": false,
              "last_seen": null,
              "slots": [],
              "router": {
                "active": null,
                "weights": {}
              }
            }
          ]
        },
        {
          "name": "staging",
          "release": "1.0.0",
          "deployment": {
            "id": 4,
            "state": "verifying"
          },
          "hosts": [
            {
              "name": "local",
              "connected": true,
              "last_seen": "[NOW]",
              "slots": [
                {
                  "slot": "blue",
                  "version": "1.0.0",
                  "state": "running",
                  "healthy": true,
                  "pid": 4100,
                  "port": 9001,
                  "since": "2026-11-20T08:01:00Z"
                },
                {
                  "slot": "green",
                  "version": "1.2.0",
                  "state": "running",
                  "healthy": false,
                  "pid": 4200,
                  "port": 9002,
                  "since": "2026-11-22T10:00:30Z"
                }
              ],
              "router": {
                "active": "blue",
                "weights": {
                  "blue": 90,
                  "green": 10
                }
              }
            },
            {
              "name": "web-2",
              "connected": false,
              "last_seen": "2026-11-22T10:00:00Z",
              "slots": [],
              "router": {
                "active": null,
                "weights": {}
              }
            }
          ]
        }
      ]
    }
    "#);
}

#[test]
fn status_for_people_is_a_table_per_environment() {
    let (p, _r) = project();
    let run = p.cutover(&["status", "staging"]);
    run.success();
    insta::assert_snapshot!("status_table", redact_times(&run.stdout));
    let unknown = p.cutover(&["status", "stagin"]);
    unknown.code(2);
    insta::assert_snapshot!("status_unknown_env", unknown.stderr);
}

#[test]
fn history_lists_deployments_with_reasons() {
    let (p, _r) = project();
    let run = p.cutover(&["history", "staging"]);
    run.success();
    insta::assert_snapshot!("history_table", run.stdout);
    let json = p.cutover(&["--json", "history", "--limit", "2"]);
    json.success();
    insta::assert_snapshot!(
        "history_json",
        serde_json::to_string_pretty(&json.json()).unwrap()
    );
    p.cutover(&["history", "nowhere"]).code(2);
}

#[test]
fn audit_at_says_what_served_on_each_host() {
    let (p, _r) = project();
    let before = p.cutover(&["audit", "--env", "staging", "--at", "2020-01-01 00:00"]);
    before.success();
    insta::assert_snapshot!("audit_at_before", before.stdout);
    let now = p.cutover(&["audit", "--env", "staging", "--at", "now"]);
    now.success();
    insta::assert_snapshot!("audit_at_now", redact_times(&now.stdout));
    let json = p.cutover(&["--json", "audit", "--env", "staging", "--at", "0s ago"]);
    json.success();
    insta::assert_snapshot!(
        "audit_at_json",
        redact_times(&serde_json::to_string_pretty(&json.json()).unwrap())
    );
    let bad = p.cutover(&["audit", "--env", "staging", "--at", "yesterday"]);
    bad.code(2);
    insta::assert_snapshot!("audit_at_bad_time", bad.stderr);
    p.cutover(&["audit", "--at", "now"]).code(2);
}

#[test]
fn host_ls_shows_connection_and_what_runs() {
    let (p, _r) = project();
    let run = p.cutover(&["host", "ls"]);
    run.success();
    insta::assert_snapshot!("host_ls_table", redact_times(&run.stdout));
    let json = p.cutover(&["--json", "host", "ls"]);
    json.success();
    assert!(!json.stdout.contains("secret-token-hash"));
    let doc = json.json();
    assert_eq!(doc["hosts"][0]["name"], "local");
    assert_eq!(doc["hosts"][0]["connected"], true);
    assert_eq!(
        doc["hosts"][0]["services"][0]["slots"][1]["version"],
        "1.2.0"
    );
    assert_eq!(doc["hosts"][1]["connected"], false);
}

#[test]
fn hotfix_start_branches_from_what_production_runs() {
    let (p, r) = project();
    // No live deployment in `prod` (the end of the promotion chain) yet: the user must say.
    let none = p.cutover(&["hotfix", "start"]);
    none.code(2);
    insta::assert_snapshot!("hotfix_no_live", none.stderr);
    p.git(&["tag", "-a", "v1.0.0", "-m", "v1.0.0"]);
    r.deployment(
        "prod",
        "1.0.0",
        "promote",
        None,
        "2026-11-21T12:00:00Z",
        &[("preparing", None), ("live", None)],
    );
    r.deployment(
        "prod",
        "1.1.0",
        "promote",
        None,
        "2026-11-21T13:00:00Z",
        &[("preparing", None), ("failed", Some("no agent connected"))],
    );
    let run = p.cutover(&["--json", "hotfix", "start"]);
    run.success();
    insta::assert_snapshot!(
        "hotfix_json",
        serde_json::to_string_pretty(&run.json()).unwrap()
    );
}
