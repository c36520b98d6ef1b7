//! Each gate over a real SQLite store in a temporary directory, with records written through the
//! store API (and real check processes run through the queue).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cutover_gates::{GateReport, Overrides, approval_audit, evaluate, evaluate_with_vulns};
use cutover_store::{Audit, Change, NewDeployment, Release, ReleaseKind, Store};
use serde_json::json;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn config(extra: &str) -> cutover_config::Config {
    let src = format!(
        r#"
[project]
name = "hello"

[service]
start = ["./hello", "--port", "{{port}}"]

{extra}
"#
    );
    cutover_config::load_str(&src, Path::new("cutover.toml"), &[] as &[(&str, &str)])
        .unwrap_or_else(|e| panic!("{e}\n{src}"))
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = cutover_store::open_sqlite(&dir.path().join("state.db"))
            .await
            .unwrap();
        Fixture { _dir: dir, store }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    async fn release(&self, version: &str, bom: Option<serde_json::Value>) {
        self.release_with(version, bom, None).await;
    }

    async fn release_with(
        &self,
        version: &str,
        bom: Option<serde_json::Value>,
        vulns: Option<serde_json::Value>,
    ) {
        let r = Release {
            version: version.into(),
            tag: format!("v{version}"),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            kind: ReleaseKind::Normal,
            notes: String::new(),
            changes: json!([]),
            artifact_digest: None,
            bom,
            vulns,
            created_at: t("2026-11-20T09:00:00Z"),
        };
        self.store
            .apply_one(
                Change::InsertRelease(r),
                &Audit::new(
                    "ci",
                    "release.created",
                    format!("release/{version}"),
                    json!({}),
                ),
            )
            .await
            .unwrap();
    }

    /// A deployment of `version` to `env` that ended in `state` at `finished`.
    async fn deployment(
        &self,
        env: &str,
        version: &str,
        state: &str,
        finished: &str,
        reverts: Option<i64>,
    ) -> i64 {
        let finished = t(finished);
        let created = finished - Duration::minutes(5);
        let applied = self
            .store
            .apply(
                &[Change::InsertDeployment(NewDeployment {
                    environment: env.into(),
                    release_version: version.into(),
                    strategy: "blue-green".into(),
                    state: "queued".into(),
                    trigger: if reverts.is_some() { "rollback" } else { "cli" }.into(),
                    actor: "ci".into(),
                    reverts,
                    created_at: created,
                })],
                &Audit::new("ci", "deployment.create", "deployment:?", json!({})),
            )
            .await
            .unwrap();
        let id = applied.id(0).unwrap();
        self.store
            .apply(
                &[Change::UpdateDeployment {
                    id,
                    expected_state: Some("queued".into()),
                    state: state.into(),
                    at: finished,
                    finished_at: Some(finished),
                }],
                &Audit::new(
                    "ci",
                    "deployment.transition",
                    format!("deployment:{id}"),
                    json!({"to": state}),
                ),
            )
            .await
            .unwrap();
        id
    }

    async fn approve(&self, who: &str, env: &str, version: &str) {
        self.store
            .append_audit(&approval_audit(who, env, version, Some("looks good")))
            .await
            .unwrap();
    }

    async fn gates(
        &self,
        c: &cutover_config::Config,
        env: &str,
        version: &str,
        deployer: &str,
        now: &str,
    ) -> GateReport {
        evaluate(
            self.store.as_ref(),
            c,
            env,
            version,
            deployer,
            t(now),
            &Overrides::default(),
        )
        .await
        .unwrap()
    }
}

const STAGED: &str = r#"
[environments.staging]
hosts = ["local"]

[environments.production]
hosts = ["local"]
listen = "127.0.0.1:9080"
promote_from = "staging"
soak = "1h"
"#;

#[tokio::test]
async fn soak_counts_from_going_live_and_stops_at_a_failure() {
    let f = Fixture::new().await;
    let c = config(STAGED);
    f.release("0.9.0", None).await;
    f.release("1.0.0", None).await;

    // Not live in staging yet: holds, and only a deployment opens it.
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T10:00:00Z")
        .await;
    let soak = r.gate("soak").unwrap();
    assert!(!soak.open);
    assert_eq!(soak.opens_at, None);
    assert!(
        soak.reason.contains("has not been live in `staging`"),
        "{}",
        soak.reason
    );
    assert!(!r.open());

    // An earlier failed attempt does not count against a later successful one.
    f.deployment(
        "staging",
        "1.0.0",
        "rolled_back",
        "2026-11-26T09:00:00Z",
        None,
    )
    .await;
    let live = f
        .deployment("staging", "1.0.0", "live", "2026-11-26T10:00:00Z", None)
        .await;
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T10:30:00Z")
        .await;
    let soak = r.gate("soak").unwrap();
    assert!(!soak.open, "{}", soak.reason);
    assert_eq!(soak.opens_at, Some(t("2026-11-26T11:00:00Z")));
    assert!(soak.reason.contains("soaked 30m of 1h"), "{}", soak.reason);
    assert_eq!(r.opens_at(), Some(t("2026-11-26T11:00:00Z")));

    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T11:00:00Z")
        .await;
    assert!(r.gate("soak").unwrap().open, "{}", r.summary());
    assert!(r.open(), "{}", r.summary());

    // Staging is an environment without promote_from: its soak gate is open.
    let r = f
        .gates(&c, "staging", "1.0.0", "alice", "2026-11-26T11:00:00Z")
        .await;
    assert!(r.gate("soak").unwrap().open);

    // A rollback away from the live deployment is a failure: the soak holds until a new
    // deployment to staging, and does not open by itself.
    f.deployment(
        "staging",
        "0.9.0",
        "live",
        "2026-11-26T11:10:00Z",
        Some(live),
    )
    .await;
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T12:00:00Z")
        .await;
    let soak = r.gate("soak").unwrap();
    assert!(!soak.open);
    assert_eq!(soak.opens_at, None);
    assert!(soak.reason.contains("rolled it back"), "{}", soak.reason);

    // Deployed again: the soak starts over from the new live time.
    f.deployment("staging", "1.0.0", "live", "2026-11-26T12:00:00Z", None)
        .await;
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T12:20:00Z")
        .await;
    assert_eq!(
        r.gate("soak").unwrap().opens_at,
        Some(t("2026-11-26T13:00:00Z"))
    );

    // A failed deployment of the same version after it went live stops it too.
    f.deployment("staging", "1.0.0", "failed", "2026-11-26T12:30:00Z", None)
        .await;
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-26T14:00:00Z")
        .await;
    let soak = r.gate("soak").unwrap();
    assert!(!soak.open);
    assert!(soak.reason.contains("ended failed"), "{}", soak.reason);
}

#[tokio::test]
async fn approvals_count_distinct_listed_people_other_than_the_deployer() {
    let f = Fixture::new().await;
    let c = config(
        r#"
[environments.production]
hosts = ["local"]
approvals = 2
approvers = ["alice@example.com", "bob@example.com", "carol@example.com"]
separate_approver = true
"#,
    );
    f.release("1.0.0", None).await;
    f.release("1.1.0", None).await;
    let now = "2026-11-26T10:00:00Z";
    let deployer = "alice@example.com";

    let r = f.gates(&c, "production", "1.0.0", deployer, now).await;
    let g = r.gate("approvals").unwrap();
    assert!(!g.open);
    assert_eq!(g.opens_at, None);
    assert!(
        g.reason.contains(
            "no approval (0 of 2): needs 2 more from bob@example.com or carol@example.com"
        ),
        "{}",
        g.reason
    );

    // The deployer's own approval, an outsider's, a repeat and another version's do not count.
    f.approve("alice@example.com", "production", "1.0.0").await;
    f.approve("mallory@example.com", "production", "1.0.0")
        .await;
    f.approve("bob@example.com", "production", "1.0.0").await;
    f.approve("BOB@example.com", "production", "1.0.0").await;
    f.approve("carol@example.com", "production", "1.1.0").await;
    f.approve("carol@example.com", "staging", "1.0.0").await;
    let r = f.gates(&c, "production", "1.0.0", deployer, now).await;
    let g = r.gate("approvals").unwrap();
    assert!(!g.open, "{}", g.reason);
    assert!(
        g.reason.starts_with("approved by bob@example.com (1 of 2)"),
        "{}",
        g.reason
    );
    assert!(
        g.reason.contains("alice@example.com (the deployer)")
            && g.reason.contains("mallory@example.com (not an approver)"),
        "{}",
        g.reason
    );
    assert!(
        g.reason.contains("needs 1 more from carol@example.com"),
        "{}",
        g.reason
    );

    // Someone else deploying: alice's approval counts.
    let r = f
        .gates(&c, "production", "1.0.0", "dave@example.com", now)
        .await;
    assert!(r.gate("approvals").unwrap().open);

    f.approve("carol@example.com", "production", "1.0.0").await;
    let r = f.gates(&c, "production", "1.0.0", deployer, now).await;
    let g = r.gate("approvals").unwrap();
    assert!(g.open, "{}", g.reason);
    assert!(
        g.reason
            .starts_with("approved by bob@example.com and carol@example.com (2 of 2)"),
        "{}",
        g.reason
    );

    let listed = cutover_gates::approvals(f.store.as_ref(), "production", "1.0.0")
        .await
        .unwrap();
    let who: Vec<&str> = listed.iter().map(|a| a.approver.as_str()).collect();
    assert_eq!(
        who,
        [
            "alice@example.com",
            "mallory@example.com",
            "bob@example.com",
            "carol@example.com"
        ]
    );
    assert_eq!(listed[0].comment.as_deref(), Some("looks good"));
}

#[tokio::test]
async fn freeze_holds_until_the_window_ends_unless_overridden() {
    let f = Fixture::new().await;
    let c = config(
        r#"
[environments.production]
hosts = ["local"]
freeze = ["Fri 16:00-Mon 08:00 Europe/Berlin", "2026-12-24..2026-12-26"]
"#,
    );
    f.release("1.0.0", None).await;

    // Friday 2026-11-27 17:00 in Berlin (UTC+1).
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-27T16:00:00Z")
        .await;
    let g = r.gate("freeze").unwrap();
    assert!(!g.open);
    assert_eq!(g.opens_at, Some(t("2026-11-30T07:00:00Z")));
    assert!(
        g.reason
            .contains("frozen (\"Fri 16:00-Mon 08:00 Europe/Berlin\") until 2026-11-30 07:00 UTC"),
        "{}",
        g.reason
    );
    assert!(!r.freeze_overridden());

    let over = evaluate(
        f.store.as_ref(),
        &c,
        "production",
        "1.0.0",
        "alice",
        t("2026-11-27T16:00:00Z"),
        &Overrides {
            freeze_reason: Some("hotfix for the checkout outage".into()),
        },
    )
    .await
    .unwrap();
    let g = over.gate("freeze").unwrap();
    assert!(g.open && g.overridden, "{g:?}");
    assert!(
        g.reason
            .contains("overridden: hotfix for the checkout outage")
    );
    assert!(over.freeze_overridden());
    assert!(over.open());

    // A Wednesday is open; Christmas (a Thursday) is not, until the 27th.
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-11-25T12:00:00Z")
        .await;
    assert!(r.gate("freeze").unwrap().open);
    let r = f
        .gates(&c, "production", "1.0.0", "alice", "2026-12-24T12:00:00Z")
        .await;
    // The dates end at Sunday 27th 00:00 UTC, inside the Berlin weekend window, so the freeze
    // lasts until Monday 08:00 Berlin.
    assert_eq!(
        r.gate("freeze").unwrap().opens_at,
        Some(t("2026-12-28T07:00:00Z"))
    );
}

#[tokio::test]
async fn required_checks_must_have_passed_for_the_release() {
    let f = Fixture::new().await;
    let c = config(
        r#"
[[checks]]
name = "unit"
run = ["true"]

[[checks]]
name = "lint"
run = ["false"]
required = false

[[checks]]
name = "e2e"
run = ["sh", "-c", "echo broken >&2; exit 3"]

[environments.production]
hosts = ["local"]
"#,
    );
    f.release("1.0.0", None).await;
    let now = "2026-11-26T10:00:00Z";

    let r = f.gates(&c, "production", "1.0.0", "alice", now).await;
    let g = r.gate("checks").unwrap();
    assert!(!g.open);
    assert!(
        g.reason
            .contains("never run: `unit` and `e2e` (`cutover check --release 1.0.0`)"),
        "{}",
        g.reason
    );

    let specs: Vec<_> = c
        .checks
        .iter()
        .map(|ch| cutover_queue::check::CheckSpec::from_config(ch, f.dir()))
        .collect();
    let (runs, _) = cutover_queue::run_checks(
        Arc::clone(&f.store),
        &specs,
        cutover_store::JobClass::Release,
        Some("1.0.0"),
        2,
        cutover_queue::WorkerConfig::new("test-worker", "ci"),
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 3);

    let r = f.gates(&c, "production", "1.0.0", "alice", now).await;
    let g = r.gate("checks").unwrap();
    assert!(!g.open);
    assert!(g.reason.contains("failed: `e2e` ("), "{}", g.reason);
    assert!(
        !g.reason.contains("lint"),
        "advisory checks do not hold: {}",
        g.reason
    );

    // The checks of another release do not count for this one.
    let fixed = cutover_queue::check::CheckSpec {
        argv: vec!["true".into()],
        ..specs[2].clone()
    };
    cutover_queue::run_checks(
        Arc::clone(&f.store),
        std::slice::from_ref(&fixed),
        cutover_store::JobClass::Release,
        Some("1.1.0"),
        1,
        cutover_queue::WorkerConfig::new("test-worker", "ci"),
    )
    .await
    .unwrap();
    assert!(
        !f.gates(&c, "production", "1.0.0", "alice", now)
            .await
            .gate("checks")
            .unwrap()
            .open
    );

    // A newer passing run of the failed check opens the gate.
    cutover_queue::run_checks(
        Arc::clone(&f.store),
        &[fixed],
        cutover_store::JobClass::Release,
        Some("1.0.0"),
        1,
        cutover_queue::WorkerConfig::new("test-worker", "ci"),
    )
    .await
    .unwrap();
    let r = f.gates(&c, "production", "1.0.0", "alice", now).await;
    let g = r.gate("checks").unwrap();
    assert!(g.open, "{}", g.reason);
    assert_eq!(g.reason, "required checks passed: `unit` and `e2e`");
}

/// A CycloneDX BOM with one Cargo component.
fn bom(name: &str, version: &str, license: &str) -> serde_json::Value {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [{
            "type": "library",
            "name": name,
            "version": version,
            "purl": format!("pkg:cargo/{name}@{version}"),
            "licenses": [{ "expression": license }],
        }]
    })
}

#[tokio::test]
async fn license_policy_is_checked_on_the_recorded_bom() {
    let f = Fixture::new().await;
    let c = config(
        r#"
[licenses]
allow = ["MIT", "Apache-2.0"]

[environments.production]
hosts = ["local"]
"#,
    );
    f.release("1.0.0", Some(bom("idna", "0.5.0", "MIT OR Apache-2.0")))
        .await;
    f.release("1.1.0", Some(bom("readline", "8.2.0", "GPL-3.0-only")))
        .await;
    f.release("1.2.0", None).await;
    let now = "2026-11-26T10:00:00Z";

    let g = f.gates(&c, "production", "1.0.0", "a", now).await;
    let g = g.gate("licenses").unwrap();
    assert!(g.open, "{}", g.reason);

    let r = f.gates(&c, "production", "1.1.0", "a", now).await;
    let g = r.gate("licenses").unwrap();
    assert!(!g.open);
    assert!(
        g.reason
            .starts_with("1 component breaks the license policy: readline@8.2.0"),
        "{}",
        g.reason
    );

    let r = f.gates(&c, "production", "1.2.0", "a", now).await;
    let g = r.gate("licenses").unwrap();
    assert!(!g.open);
    assert!(
        g.reason.contains("has no recorded bill of materials"),
        "{}",
        g.reason
    );

    // Without an allow list there is no license policy.
    let open = config("[environments.production]\nhosts = [\"local\"]\n");
    let r = f.gates(&open, "production", "1.1.0", "a", now).await;
    assert!(r.gate("licenses").unwrap().open);
}

async fn vulns(
    f: &Fixture,
    c: &cutover_config::Config,
    version: &str,
    db: Option<&Path>,
) -> cutover_gates::GateResult {
    let r = evaluate_with_vulns(
        f.store.as_ref(),
        c,
        "production",
        version,
        "a",
        t("2026-11-26T10:00:00Z"),
        &Overrides::default(),
        db,
    )
    .await
    .unwrap();
    r.gate("vulnerabilities").unwrap().clone()
}

#[tokio::test]
async fn vulnerability_policy_uses_the_advisory_database_when_there_is_one() {
    let f = Fixture::new().await;
    let env = "[environments.production]\nhosts = [\"local\"]\n";
    let c = config(env);
    f.release("1.0.0", Some(bom("idna", "0.5.0", "MIT"))).await;
    f.release("1.1.0", Some(bom("idna", "1.0.3", "MIT"))).await;
    let now = t("2026-11-26T10:00:00Z");
    let db_path = f.dir().join("vulns.db");

    let db = db_path.as_path();
    // No database yet: not evaluated, and said so.
    let g = vulns(&f, &c, "1.0.0", Some(db)).await;
    assert!(g.open);
    assert!(g.reason.starts_with("not evaluated"), "{}", g.reason);

    let advisories = cutover_vuln::db::VulnDb::open(&db_path).await.unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rustsec");
    let loaded = cutover_vuln::import::load(&fixtures).unwrap();
    advisories.import("rustsec", loaded, now).await.unwrap();
    advisories.close().await;

    let g = vulns(&f, &c, "1.0.0", Some(db)).await;
    assert!(!g.open);
    assert!(
        g.reason.starts_with(
            "1 advisory fail the policy (fail_on = high): RUSTSEC-2024-0421 in idna@0.5.0"
        ),
        "{}",
        g.reason
    );
    // Without a database now, the scan stored with the release is judged (as `cutover release`
    // stores it: the BOM findings of that time).
    let advisories = cutover_vuln::db::VulnDb::open(&db_path).await.unwrap();
    let scanned = cutover_vuln::bomscan::scan(
        &advisories,
        &cutover_bom::Bom::from_cyclonedx_json(&bom("idna", "0.5.0", "MIT").to_string()).unwrap(),
    )
    .await
    .unwrap();
    advisories.close().await;
    f.release_with(
        "1.0.1",
        Some(bom("idna", "0.5.0", "MIT")),
        Some(json!({
            "scanned_at": "2026-11-20T09:00:00Z",
            "checked": scanned.checked,
            "findings": scanned.findings,
            "not_evaluated": 0,
        })),
    )
    .await;
    let g = vulns(&f, &c, "1.0.1", None).await;
    assert!(!g.open);
    assert!(
        g.reason.starts_with(
            "1 advisory fail the policy (fail_on = high): RUSTSEC-2024-0421 in idna@0.5.0"
        ),
        "{}",
        g.reason
    );
    let ignored_now = config(&format!(
        "{env}\n[vulns]\nignore = [{{ id = \"RUSTSEC-2024-0421\", reason = \"no untrusted host names\" }}]\n"
    ));
    let g = vulns(&f, &ignored_now, "1.0.1", None).await;
    assert!(g.open, "{}", g.reason);
    assert!(
        g.reason
            .starts_with("1 component checked at 2026-11-20T09:00:00Z"),
        "{}",
        g.reason
    );

    // The fixed version passes; `evaluate` (no database) does not look.
    assert!(vulns(&f, &c, "1.1.0", Some(db)).await.open);
    assert!(vulns(&f, &c, "1.0.0", None).await.open);

    // An ignore with a reason opens it until it expires.
    let ignored = config(&format!(
        "{env}\n[vulns]\nignore = [{{ id = \"CVE-2024-12224\", until = \"2026-12-31\", reason = \"no untrusted host names\" }}]\n"
    ));
    assert!(vulns(&f, &ignored, "1.0.0", Some(db)).await.open);
    let expired = config(&format!(
        "{env}\n[vulns]\nignore = [{{ id = \"CVE-2024-12224\", until = \"2026-11-01\", reason = \"no untrusted host names\" }}]\n"
    ));
    let g = vulns(&f, &expired, "1.0.0", Some(db)).await;
    assert!(!g.open);
    assert!(
        g.reason.contains("ignore expired 2026-11-01"),
        "{}",
        g.reason
    );
}

#[tokio::test]
async fn unknown_environment_and_release_are_user_errors() {
    let f = Fixture::new().await;
    let c = config(STAGED);
    f.release("1.0.0", None).await;
    let now = t("2026-11-26T10:00:00Z");
    let err = evaluate(
        f.store.as_ref(),
        &c,
        "prod",
        "1.0.0",
        "a",
        now,
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_user_error());
    assert_eq!(
        err.to_string(),
        "there is no environment `prod` in cutover.toml"
    );
    assert_eq!(
        err.hint().as_deref(),
        Some("the environments are: `production`, `staging`")
    );
    let err = evaluate(
        f.store.as_ref(),
        &c,
        "staging",
        "9.9.9",
        "a",
        now,
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_user_error());
    assert_eq!(err.to_string(), "there is no release 9.9.9");
}

#[tokio::test]
async fn report_lists_every_gate_in_order_and_serialises() {
    let f = Fixture::new().await;
    let c = config(STAGED);
    f.release("1.0.0", None).await;
    let r = f
        .gates(&c, "production", "1.0.0", "a", "2026-11-26T10:00:00Z")
        .await;
    let names: Vec<&str> = r.gates.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, cutover_gates::GATES);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["gates"][0]["name"], "soak");
    assert_eq!(v["gates"][0]["open"], false);
    assert_eq!(v["gates"][1]["reason"], "no approvals required");
    assert_eq!(r.holding().count(), 1);
    assert!(
        r.summary()
            .starts_with("soak: 1.0.0 has not been live in `staging`")
    );
}
