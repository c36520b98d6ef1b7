//! `cutover metrics`, `cutover incident open|resolve|ls` and the `release.link` that `cutover
//! hotfix finish` records, through the real binary over a store filled the way the deploy engine
//! writes it (deployments with their `deployment.transition` events) and by real commands.

use std::sync::Arc;

use chrono::Duration;
use cutover_store::{
    Audit, AuditFilter, Change, NewDeployment, NewIncident, Release, ReleaseKind, Store, Timestamp,
};
use serde_json::{Value, json};

use crate::support::Project;

const CONFIG: &str = r#"[project]
name = "hello"

[service]
start = ["{release_dir}/hello", "--port", "{port}"]
health = { path = "/health" }

[environments.staging]
hosts = ["local"]
strategy = "blue-green"

[environments.production]
hosts = ["web-1"]
strategy = "blue-green"
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

    /// A release listing `changes` as `(commit, time, summary)`.
    fn release(&self, version: &str, created: &str, changes: &[(&str, &str, &str)]) {
        let changes: Vec<Value> = changes
            .iter()
            .map(|(id, time, summary)| json!({"id": id, "time": time, "summary": summary}))
            .collect();
        let release = Release {
            version: version.into(),
            tag: format!("v{version}"),
            commit: "0".repeat(40),
            kind: ReleaseKind::Normal,
            notes: String::new(),
            changes: Value::Array(changes),
            artifact_digest: None,
            bom: None,
            vulns: None,
            created_at: t(created),
        };
        self.rt
            .block_on(self.store.apply_one(
                Change::InsertRelease(release),
                &Audit::new(
                    "tester",
                    "release.created",
                    format!("release/{version}"),
                    json!({}),
                ),
            ))
            .unwrap();
    }

    /// A deployment through `path`, one transition a minute after `created`, each with its
    /// `deployment.transition` event; the last one finishes it.
    fn deployment(
        &self,
        env: &str,
        version: &str,
        reverts: Option<i64>,
        created: Timestamp,
        path: &[&str],
    ) -> i64 {
        let id = self
            .rt
            .block_on(self.store.apply(
                &[Change::InsertDeployment(NewDeployment {
                    environment: env.into(),
                    release_version: version.into(),
                    strategy: "blue-green".into(),
                    state: "queued".into(),
                    trigger: if reverts.is_some() { "rollback" } else { "cli" }.into(),
                    actor: "ada@example.com".into(),
                    reverts,
                    created_at: created,
                })],
                &Audit::new(
                    "ada@example.com",
                    "deployment.create",
                    "deployment:new",
                    json!({"environment": env, "version": version, "reverts": reverts}),
                ),
            ))
            .unwrap()
            .id(0)
            .unwrap();
        let mut from = "queued".to_owned();
        for (i, to) in path.iter().enumerate() {
            let at = created + Duration::minutes(i64::try_from(i).unwrap() + 1);
            let last = i + 1 == path.len();
            self.rt
                .block_on(self.store.apply(
                    &[Change::UpdateDeployment {
                        id,
                        expected_state: Some(from.clone()),
                        state: (*to).into(),
                        at,
                        finished_at: last.then_some(at),
                    }],
                    &Audit::new(
                        "ada@example.com",
                        "deployment.transition",
                        format!("deployment:{id}"),
                        json!({"environment": env, "version": version, "from": from, "to": to,
                               "at": at}),
                    ),
                ))
                .unwrap();
            from = (*to).to_owned();
        }
        id
    }

    fn live(&self, env: &str, version: &str, created: &str) -> i64 {
        self.deployment(env, version, None, t(created), &["preparing", "live"])
    }

    fn audit(&self, action: &str) -> Vec<cutover_store::AuditEvent> {
        self.rt
            .block_on(self.store.list_audit(&AuditFilter {
                action: Some(action.into()),
                ..AuditFilter::default()
            }))
            .unwrap()
    }
}

fn project() -> (Project, Records) {
    let p = Project::new();
    p.write("cutover.toml", CONFIG);
    p.write(".gitignore", "/.cutover/\n");
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "chore: configure cutover"]);
    let r = Records::open(&p);
    (p, r)
}

/// Seven days from Sunday 2026-11-01: a revert, an incident that a hotfix also fixed, a rolled
/// back deployment, a commit time that cannot be read, and staging next door.
fn seven_days(r: &Records) {
    r.release(
        "1.0.0",
        "2026-11-01T00:00:00Z",
        &[(
            "a000000000000000000000000000000000000001",
            "2026-10-31T00:00:00+02:00",
            "feat: a",
        )],
    );
    r.release(
        "1.1.0",
        "2026-11-02T00:00:00Z",
        &[
            (
                "b000000000000000000000000000000000000002",
                "2026-11-01T12:00:00Z",
                "feat: b",
            ),
            (
                "c000000000000000000000000000000000000003",
                "yesterday",
                "fix: c",
            ),
        ],
    );
    r.release(
        "1.1.1",
        "2026-11-03T00:00:00Z",
        &[(
            "d000000000000000000000000000000000000004",
            "2026-11-02T22:00:00Z",
            "fix: d",
        )],
    );
    r.release(
        "1.2.0",
        "2026-11-04T00:00:00Z",
        &[(
            "e000000000000000000000000000000000000005",
            "2026-11-03T12:00:00Z",
            "feat: e",
        )],
    );
    assert_eq!(r.live("staging", "1.0.0", "2026-11-01T08:00:00Z"), 1);
    assert_eq!(r.live("production", "1.0.0", "2026-11-01T10:00:00Z"), 2);
    assert_eq!(r.live("production", "1.1.0", "2026-11-02T10:00:00Z"), 3);
    let rollback = r.deployment(
        "production",
        "1.0.0",
        Some(3),
        t("2026-11-02T11:00:00Z"),
        &["switching", "live"],
    );
    assert_eq!(rollback, 4);
    assert_eq!(r.live("production", "1.1.0", "2026-11-02T12:00:00Z"), 5);
    assert_eq!(r.live("production", "1.1.1", "2026-11-03T10:00:00Z"), 6);
    let rolled_back = r.deployment(
        "production",
        "1.2.0",
        None,
        t("2026-11-04T10:00:00Z"),
        &["preparing", "failed", "rolling_back", "rolled_back"],
    );
    assert_eq!(rolled_back, 7);
    // Incident 1: caused by 5, opened 11-02 13:00, restored by 6 (which the hotfix link also names).
    let id =
        r.rt.block_on(r.store.apply(
            &[Change::OpenIncident(NewIncident {
                environment: "production".into(),
                summary: "checkout errors".into(),
                caused_by: Some(5),
                opened_at: t("2026-11-02T13:00:00Z"),
            })],
            &Audit::new("tester", "incident.open", "incident:new", json!({})),
        ))
        .unwrap()
        .id(0)
        .unwrap();
    r.rt.block_on(r.store.apply_one(
        Change::ResolveIncident {
            id,
            restored_by: Some(6),
            at: t("2026-11-03T11:00:00Z"),
        },
        &Audit::new(
            "tester",
            "incident.resolve",
            format!("incident:{id}"),
            json!({}),
        ),
    ))
    .unwrap();
    r.rt.block_on(r.store.append_audit(&Audit::new(
        "tester",
        "release.link",
        "release/1.1.1",
        json!({"version": "1.1.1", "fixes_deployment": 5, "environment": "production"}),
    )))
    .unwrap();
}

#[test]
fn metrics_over_a_recorded_history() {
    let (p, r) = project();
    seven_days(&r);
    let run = p.cutover(&[
        "--json",
        "metrics",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-08T00:00:00Z",
    ]);
    run.success();
    let doc = run.json();
    // The default environment is production (the end of the promote_from chain).
    assert_eq!(doc["environment"], "production");
    // Frequency: 2, 3, 5, 6 live (4 is a rollback, 7 rolled back, 1 is staging): 4 / 7 days
    // = 0.571/day → high.
    assert_eq!(doc["deployment_frequency"]["deployments"], 4);
    assert_eq!(doc["deployment_frequency"]["rollbacks"], 1);
    assert_eq!(doc["deployment_frequency"]["band"], "high");
    // Lead times (deployments finish 2 minutes after they start):
    //   a: 11-01 10:02 − 10-30 22:00 = 36h02m = 129720 s (deployment 2)
    //   b: 11-02 10:02 − 11-01 12:00 = 22h02m =  79320 s (deployment 3; c has no readable time)
    //   d: 11-03 10:02 − 11-02 22:00 = 12h02m =  43320 s (deployment 6)
    // median 79320 s (< 1 day → elite); p90 rank ⌈2.7⌉ = 3 → 129720 s.
    let leads: Vec<(String, i64)> = doc["lead_time"]["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["commit"].as_str().unwrap()[..1].to_owned(),
                c["lead_time_seconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        leads,
        [
            ("a".into(), 129_720),
            ("b".into(), 79_320),
            ("d".into(), 43_320)
        ]
    );
    assert_eq!(doc["lead_time"]["median_seconds"], 79_320.0);
    assert_eq!(doc["lead_time"]["p90_seconds"], 129_720.0);
    assert_eq!(doc["lead_time"]["band"], "elite");
    // Changes 2, 3, 5, 6, 7; failed 3 (reverted by 4), 5 (incident 1, hotfix 1.1.1), 7 (rolled
    // back) → 3/5 = 0.6 → low.
    assert_eq!(doc["change_failure_rate"]["deployments"], 5);
    assert_eq!(doc["change_failure_rate"]["failures"], 3);
    assert_eq!(doc["change_failure_rate"]["rate"], 0.6);
    assert_eq!(doc["change_failure_rate"]["band"], "low");
    // Recovery: 3: 10:02 → rollback 4 at 11:02 = 3600 s; 5: incident opened 11-02 13:00 → 6
    // finished 11-03 10:02 = 75720 s; 7: failed 10:02 → rolled back 10:04 = 120 s.
    // Median of 120, 3600, 75720 = 3600 s (1h is not under an hour → high).
    let recoveries: Vec<i64> = doc["change_failure_rate"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["recovery_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(recoveries, [3600, 75_720, 120]);
    assert_eq!(doc["recovery_time"]["median_seconds"], 3600.0);
    assert_eq!(doc["recovery_time"]["band"], "high");
    assert!(
        run.stderr.contains("`yesterday` is not RFC 3339"),
        "{}",
        run.stderr
    );
    insta::assert_snapshot!("metrics_json", serde_json::to_string_pretty(&doc).unwrap());

    let table = p.cutover(&[
        "metrics",
        "--env",
        "production",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-08",
    ]);
    table.success();
    insta::assert_snapshot!("metrics_table", table.stdout);

    // Staging is measured on its own: one deployment, nothing failed.
    let staging = p.cutover(&[
        "--json",
        "metrics",
        "--env",
        "staging",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-08",
    ]);
    let staging = staging.json();
    assert_eq!(staging["deployment_frequency"]["deployments"], 1);
    assert_eq!(staging["change_failure_rate"]["failures"], 0);
    // a: 11-01 08:02 − 10-30 22:00 = 34h02m.
    assert_eq!(
        staging["lead_time"]["commits"][0]["lead_time_seconds"],
        122_520
    );
}

#[test]
fn metrics_refuse_bad_periods_and_unknown_environments() {
    let (p, _r) = project();
    let bad = p.cutover(&["metrics", "--since", "a fortnight"]);
    bad.code(2);
    assert!(bad.stderr.contains("--since"), "{}", bad.stderr);
    let reversed = p.cutover(&["metrics", "--since", "2026-11-08", "--until", "2026-11-01"]);
    reversed.code(2);
    assert!(
        reversed.stderr.contains("the period is empty"),
        "{}",
        reversed.stderr
    );
    let unknown = p.cutover(&["metrics", "--env", "prod"]);
    unknown.code(2);
    assert!(
        unknown.stderr.contains("unknown environment `prod`"),
        "{}",
        unknown.stderr
    );
    // An empty history is no error: no bands yet.
    let empty = p.cutover(&["--json", "metrics", "--since", "12w"]);
    empty.success();
    assert_eq!(empty.json()["deployment_frequency"]["band"], Value::Null);
    assert_eq!(
        empty.json()["series"]["weekly"].as_array().unwrap().len(),
        13
    );
}

#[test]
fn incidents_open_resolve_and_list() {
    let (p, r) = project();
    r.release("1.0.0", "2026-11-01T00:00:00Z", &[]);
    r.release("1.1.0", "2026-11-02T00:00:00Z", &[]);
    let first = r.live("production", "1.0.0", "2026-11-01T10:00:00Z");

    // Without --caused-by: the live deployment.
    let open = p.cutover(&[
        "--json",
        "incident",
        "open",
        "--env",
        "production",
        "--summary",
        "checkout errors",
    ]);
    open.success();
    let opened = open.json();
    assert_eq!(opened["incident"]["caused_by"], first);
    assert_eq!(opened["caused_by_default"], true);
    let id = opened["incident"]["id"].as_i64().unwrap();

    // Bad input changes nothing.
    let typo = p.cutover(&["incident", "open", "--env", "prod"]);
    typo.code(2);
    assert!(
        typo.stderr.contains("unknown environment `prod`"),
        "{}",
        typo.stderr
    );
    let missing = p.cutover(&[
        "incident",
        "open",
        "--env",
        "production",
        "--caused-by",
        "99",
    ]);
    missing.code(2);
    assert!(
        missing.stderr.contains("deployment 99 does not exist"),
        "{}",
        missing.stderr
    );
    let elsewhere = r.live("staging", "1.1.0", "2026-11-02T08:00:00Z");
    let wrong_env = p.cutover(&[
        "incident",
        "open",
        "--env",
        "production",
        "--caused-by",
        &elsewhere.to_string(),
    ]);
    wrong_env.code(2);
    assert!(
        wrong_env
            .stderr
            .contains("deployed to `staging`, not to `production`"),
        "{}",
        wrong_env.stderr
    );
    assert_eq!(r.audit("incident.open").len(), 1);

    // A newer live deployment restored service: it is the default restored_by.
    let fix = r.live("production", "1.1.0", "2026-11-02T10:00:00Z");
    let resolve = p.cutover(&["--json", "incident", "resolve", &id.to_string()]);
    resolve.success();
    assert_eq!(resolve.json()["incident"]["restored_by"], fix);
    assert_eq!(resolve.json()["restored_by_default"], true);
    let again = p.cutover(&["incident", "resolve", &id.to_string()]);
    again.code(2);
    assert!(
        again.stderr.contains("already resolved"),
        "{}",
        again.stderr
    );
    let unknown = p.cutover(&["incident", "resolve", "42"]);
    unknown.code(2);
    assert!(
        unknown.stderr.contains("incident 42 does not exist"),
        "{}",
        unknown.stderr
    );

    // An incident resolved while the deployment that caused it still runs: no restored_by.
    let second = p.cutover(&["--json", "incident", "open", "--env", "production"]);
    let second_id = second.json()["incident"]["id"].as_i64().unwrap();
    assert_eq!(second.json()["incident"]["caused_by"], fix);
    let resolved = p.cutover(&["--json", "incident", "resolve", &second_id.to_string()]);
    assert_eq!(resolved.json()["incident"]["restored_by"], Value::Null);

    let ls = p.cutover(&["--json", "incident", "ls", "--env", "production"]);
    ls.success();
    let incidents = ls.json()["incidents"].as_array().unwrap().clone();
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0]["summary"], "checkout errors");
    let human = p.cutover(&["incident", "ls"]);
    human.success();
    let times = regex_free_times(&human.stdout);
    insta::assert_snapshot!("incident_ls", times);

    // The audit events name the links (subject `incident:<id>` once the id exists).
    let opens = r.audit("incident.open");
    assert_eq!(opens[0].subject, format!("incident:{id}"));
    assert_eq!(opens[0].payload["environment"], "production");
    assert_eq!(opens[0].payload["caused_by"], first);
    assert_eq!(opens[0].payload["summary"], "checkout errors");
    let resolves = r.audit("incident.resolve");
    assert_eq!(resolves[0].subject, format!("incident:{id}"));
    assert_eq!(resolves[0].payload["restored_by"], fix);
    assert_eq!(resolves[0].payload["caused_by"], first);
}

/// Replaces `YYYY-MM-DD HH:MM:SSZ` (times of now) with `[TIME]`, column widths kept.
fn regex_free_times(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let candidate = text.get(i..i + 20);
        let is_time = candidate.is_some_and(|c| {
            c.bytes().enumerate().all(|(k, b)| match k {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                19 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
        });
        if is_time {
            out.push_str("[TIME]              ");
            i += 20;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[test]
fn hotfix_finish_links_the_production_deployment_it_fixes() {
    let (p, r) = project();
    p.git(&["commit", "-q", "--allow-empty", "-m", "feat: first"]);
    p.git(&["tag", "-a", "v1.0.0", "-m", "release 1.0.0"]);
    r.release("1.0.0", "2026-01-02T04:00:00Z", &[]);
    let broken = r.live("production", "1.0.0", "2026-01-03T10:00:00Z");

    p.cutover(&["hotfix", "start"]).success();
    let starts = r.audit("hotfix.start");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].subject, "hotfix/1.0.1");
    assert_eq!(starts[0].payload["live_deployment"], broken);
    p.git(&["commit", "-q", "--allow-empty", "-m", "fix: urgent repair"]);
    let finish = p.cutover(&["hotfix", "finish"]);
    finish.success();
    assert!(
        finish.stderr.contains(&format!(
            "1.0.1 as the fix of deployment #{broken} in production"
        )),
        "{}",
        finish.stderr
    );
    let links = r.audit("release.link");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].subject, "release/1.0.1");
    assert_eq!(
        links[0].payload,
        json!({"version": "1.0.1", "fixes_deployment": broken, "environment": "production"})
    );

    // Once the hotfix is deployed, the deployment it fixes counts as a change failure, recovered
    // when the hotfix went live.
    let now = chrono::Utc::now();
    let hotfix = r.deployment("production", "1.0.1", None, now, &["preparing", "live"]);
    let until = (now + Duration::days(1)).to_rfc3339();
    let metrics = p.cutover(&[
        "--json",
        "metrics",
        "--since",
        "2026-01-01",
        "--until",
        &until,
    ]);
    metrics.success();
    let doc = metrics.json();
    assert_eq!(doc["change_failure_rate"]["failures"], 1);
    let failed = &doc["change_failure_rate"]["failed"][0];
    assert_eq!(failed["deployment"], broken);
    assert_eq!(
        failed["reasons"],
        json!([{"kind": "hotfix", "version": "1.0.1", "deployment": hotfix}])
    );
    assert_eq!(failed["restored_by"], hotfix);
}
