//! `compute`, incidents and hotfix links over a real SQLite store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cutover_metrics::links::{HotfixStart, link_hotfix_release, record_hotfix_start};
use cutover_metrics::{
    FailureReason, MetricsError, MetricsQuery, Timestamp, compute, open_incident, resolve_incident,
};
use cutover_store::{Audit, AuditFilter, Change, NewDeployment, Release, ReleaseKind, Store};
use serde_json::json;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    cutover_store::open_sqlite(&dir.path().join("state.db"))
        .await
        .unwrap()
}

async fn release(store: &dyn Store, version: &str, created: &str, changes: serde_json::Value) {
    let release = Release {
        version: version.into(),
        tag: format!("v{version}"),
        commit: "0".repeat(40),
        kind: ReleaseKind::Normal,
        notes: String::new(),
        changes,
        artifact_digest: None,
        bom: None,
        vulns: None,
        created_at: t(created),
    };
    store
        .apply_one(
            Change::InsertRelease(release),
            &Audit::new(
                "t",
                "release.created",
                format!("release/{version}"),
                json!({}),
            ),
        )
        .await
        .unwrap();
}

/// A deployment moved through `path` (a transition a minute), finished by the last one.
async fn deployment(
    store: &dyn Store,
    env: &str,
    version: &str,
    created: &str,
    path: &[&str],
) -> i64 {
    let created = t(created);
    let id = store
        .apply(
            &[Change::InsertDeployment(NewDeployment {
                environment: env.into(),
                release_version: version.into(),
                strategy: "blue-green".into(),
                state: "queued".into(),
                trigger: "cli".into(),
                actor: "t".into(),
                reverts: None,
                created_at: created,
            })],
            &Audit::new("t", "deployment.create", "deployment:new", json!({})),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    let mut from = "queued".to_owned();
    for (i, to) in path.iter().enumerate() {
        let at = created + chrono::Duration::minutes(i64::try_from(i).unwrap() + 1);
        store
            .apply(
                &[Change::UpdateDeployment {
                    id,
                    expected_state: Some(from.clone()),
                    state: (*to).into(),
                    at,
                    finished_at: (i + 1 == path.len()).then_some(at),
                }],
                &Audit::new(
                    "t",
                    "deployment.transition",
                    format!("deployment:{id}"),
                    json!({"from": from, "to": to, "at": at}),
                ),
            )
            .await
            .unwrap();
        from = (*to).to_owned();
    }
    id
}

#[tokio::test]
async fn compute_reads_the_records_and_the_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let s = &*store;
    release(
        s,
        "1.0.0",
        "2026-11-01T00:00:00Z",
        json!([
            {"id": "a", "time": "2026-11-01T00:00:00Z", "summary": "feat: a"},
            {"id": "b", "summary": "no time"},
        ]),
    )
    .await;
    release(s, "1.1.0", "2026-11-02T00:00:00Z", json!({"not": "a list"})).await;
    let first = deployment(
        s,
        "production",
        "1.0.0",
        "2026-11-01T10:00:00Z",
        &["preparing", "live"],
    )
    .await;
    let second = deployment(
        s,
        "production",
        "1.1.0",
        "2026-11-02T10:00:00Z",
        &["preparing", "failed", "rolling_back", "rolled_back"],
    )
    .await;
    let q = MetricsQuery {
        since: t("2026-11-01T00:00:00Z"),
        until: t("2026-11-03T00:00:00Z"),
        environment: "production".into(),
    };
    let r = compute(s, &q).await.unwrap();
    // a: 11-01 10:02 − 11-01 00:00 = 10h02m = 36120 s.
    assert_eq!(r.lead_time.commits.len(), 1);
    assert_eq!(r.lead_time.commits[0].lead_time_seconds, 36_120);
    assert_eq!(r.lead_time.commits[0].deployment, first);
    // The rolled-back one failed at its `failed` transition (10:02) and finished at 10:04: 120 s.
    let f = &r.change_failure_rate.failed[0];
    assert_eq!(f.deployment, second);
    assert_eq!(f.failed_at, t("2026-11-02T10:02:00Z"));
    assert_eq!(f.recovery_seconds, Some(120));
    // Unreadable changes are named, not fatal.
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("release 1.0.0, change 1"),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings[1].contains("release 1.1.0: its changes are not a list"),
        "{:?}",
        r.warnings
    );
    // An empty period is refused.
    let empty = MetricsQuery {
        until: q.since,
        ..q.clone()
    };
    assert!(matches!(
        compute(s, &empty).await,
        Err(MetricsError::EmptyPeriod { .. })
    ));
}

#[tokio::test]
async fn incidents_link_causes_and_restorations() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let s = &*store;
    release(s, "1.0.0", "2026-11-01T00:00:00Z", json!([])).await;
    release(s, "1.1.0", "2026-11-02T00:00:00Z", json!([])).await;
    // Nothing live: an incident without a cause.
    let none = open_incident(
        s,
        "production",
        "down",
        None,
        "ada",
        t("2026-11-01T09:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(none.incident.caused_by, None);
    let bad = deployment(
        s,
        "production",
        "1.0.0",
        "2026-11-01T10:00:00Z",
        &["preparing", "live"],
    )
    .await;
    let opened = open_incident(
        s,
        "production",
        "errors",
        None,
        "ada",
        t("2026-11-01T11:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(
        (opened.incident.caused_by, opened.caused_by_default),
        (Some(bad), true)
    );
    let err = open_incident(
        s,
        "staging",
        "x",
        Some(bad),
        "ada",
        t("2026-11-01T11:00:00Z"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("deployed to `production`, not to `staging`"),
        "{err}"
    );
    assert!(err.is_user_error());
    let good = deployment(
        s,
        "production",
        "1.1.0",
        "2026-11-01T12:00:00Z",
        &["preparing", "live"],
    )
    .await;
    let resolved = resolve_incident(
        s,
        opened.incident.id,
        None,
        "ada",
        t("2026-11-01T12:30:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(resolved.incident.restored_by, Some(good));
    assert_eq!(
        resolved.incident.resolved_at,
        Some(t("2026-11-01T12:30:00Z"))
    );
    assert!(matches!(
        resolve_incident(
            s,
            opened.incident.id,
            None,
            "ada",
            t("2026-11-01T13:00:00Z")
        )
        .await,
        Err(MetricsError::AlreadyResolved { .. })
    ));
    assert!(matches!(
        resolve_incident(s, 99, None, "ada", t("2026-11-01T13:00:00Z")).await,
        Err(MetricsError::NoIncident { id: 99 })
    ));
    let events = s
        .list_audit(&AuditFilter {
            action: Some("incident.resolve".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].subject,
        format!("incident:{}", opened.incident.id)
    );
    assert_eq!(
        events[0].payload,
        json!({"environment": "production", "summary": "errors", "caused_by": bad, "restored_by": good})
    );

    // The metrics: 2 changes, `bad` failed (incident opened 11:00 → `good` live at 12:02 = 3720 s).
    let q = MetricsQuery {
        since: t("2026-11-01T00:00:00Z"),
        until: t("2026-11-02T00:00:00Z"),
        environment: "production".into(),
    };
    let r = compute(s, &q).await.unwrap();
    assert_eq!(
        r.change_failure_rate.failed[0].reasons,
        vec![FailureReason::Incident {
            id: opened.incident.id
        }]
    );
    assert_eq!(r.change_failure_rate.failed[0].recovery_seconds, Some(3720));
}

#[tokio::test]
async fn a_hotfix_is_linked_once_to_what_it_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let s = &*store;
    assert_eq!(link_hotfix_release(s, "1.0.1", "ada").await.unwrap(), None);
    let start = HotfixStart {
        version: "1.0.1".into(),
        branch: "hotfix/1.0.1".into(),
        from: "v1.0.0".into(),
        environment: "production".into(),
        live_deployment: 7,
    };
    record_hotfix_start(s, &start, "ada").await.unwrap();
    let first = link_hotfix_release(s, "1.0.1", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.fixes_deployment, first.environment.as_str()),
        (7, "production")
    );
    // Again (e.g. a retried finish): the same link, no second event.
    let again = link_hotfix_release(s, "1.0.1", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.seq, first.seq);
    let links = s
        .list_audit(&AuditFilter {
            action: Some("release.link".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        links[0].payload,
        json!({"version": "1.0.1", "fixes_deployment": 7, "environment": "production"})
    );
}

#[tokio::test]
async fn a_failure_time_from_another_clock_stays_inside_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let s = &*store;
    release(s, "1.0.0", "2026-11-01T00:00:00Z", json!([])).await;
    // Its recorded path has no `failed` transition of its own (10:01 preparing, 10:02 rolling
    // back, 10:03 rolled back).
    let id = deployment(
        s,
        "production",
        "1.0.0",
        "2026-11-01T10:00:00Z",
        &["preparing", "rolling_back", "rolled_back"],
    )
    .await;
    // A `failed` transition whose event claims no time of its own: the event was written now
    // (after the deployment's recorded end), so the failure is taken at the end: 0 s to recover.
    s.append_audit(&Audit::new(
        "t",
        "deployment.transition",
        format!("deployment:{id}"),
        json!({"to": "failed"}),
    ))
    .await
    .unwrap();
    let events = s
        .list_audit(&AuditFilter {
            subject: Some(format!("deployment:{id}")),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(events.last().unwrap().at > t("2026-11-02T00:00:00Z"));
    let q = MetricsQuery {
        since: t("2026-11-01T00:00:00Z"),
        until: t("2026-11-02T00:00:00Z"),
        environment: "production".into(),
    };
    let r = compute(s, &q).await.unwrap();
    let f = &r.change_failure_rate.failed[0];
    assert_eq!(f.failed_at, t("2026-11-01T10:03:00Z"));
    assert_eq!(f.recovery_seconds, Some(0));
}

#[test]
fn queries_parse_from_user_input() {
    let now = t("2026-11-26T12:00:00Z");
    let q = MetricsQuery::parse("production", None, None, now).unwrap();
    // The default: 90 days back from now.
    assert_eq!((q.since, q.until), (t("2026-08-28T12:00:00Z"), now));
    let q = MetricsQuery::parse("staging", Some("12w"), Some("2026-11-20"), now).unwrap();
    assert_eq!(
        (q.since, q.until),
        (t("2026-09-03T12:00:00Z"), t("2026-11-20T00:00:00Z"))
    );
    let err =
        MetricsQuery::parse("production", Some("2026-11-20"), Some("2026-11-01"), now).unwrap_err();
    assert!(matches!(err, MetricsError::EmptyPeriod { .. }), "{err}");
    let err = MetricsQuery::parse("production", Some("soon"), None, now).unwrap_err();
    assert!(err.is_user_error() && err.hint().is_some(), "{err}");
}

#[test]
fn last_days_counts_back_and_saturates() {
    let now = t("2026-11-26T12:00:00Z");
    assert_eq!(
        MetricsQuery::last_days("production", now, 7).since,
        t("2026-11-19T12:00:00Z")
    );
    assert_eq!(
        MetricsQuery::last_days("production", now, i64::MAX).since,
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    );
}
