//! Incidents and DORA metrics through the API: a staging deployer opens and resolves a staging
//! incident, cannot touch production's, and the metrics document answers for an environment.

use cutover_store::TokenScope;
use hyper::StatusCode;

use crate::common::{Server, audit_len, get, post, sqlite, token};

#[tokio::test]
async fn incidents_are_opened_resolved_and_scoped_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let staging = token(
        &*store,
        "ann@example.com",
        TokenScope::Deployer,
        &["staging"],
    )
    .await;
    let viewer = token(&*store, "viewer", TokenScope::Viewer, &[]).await;
    let server = Server::start(store.clone(), dir.path(), false).await;
    let incidents = server.url("/api/v1/incidents");

    // Refused requests change nothing.
    let before = audit_len(&*store).await;
    let a = post(
        &incidents,
        Some(&viewer),
        r#"{"environment":"staging","summary":"down"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let a = post(
        &incidents,
        Some(&staging),
        r#"{"environment":"production","summary":"down"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let a = post(
        &incidents,
        Some(&staging),
        r#"{"environment":"staging","summary":"  "}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("summary"))
    );
    let a = post(
        &incidents,
        Some(&staging),
        r#"{"environment":"staging","summary":"x","caused_by":99}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("caused_by")),
        "{}",
        a.text()
    );
    assert_eq!(audit_len(&*store).await, before);

    let a = post(
        &incidents,
        Some(&staging),
        r#"{"environment":"staging","summary":"checkout is down"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let id = a.json()["incident"]["id"].as_i64().expect("an incident id");
    let listed = get(&incidents, Some(&viewer)).await.json();
    assert!(listed.to_string().contains("checkout is down"), "{listed}");

    let resolve = server.url(&format!("/api/v1/incidents/{id}/resolve"));
    let a = post(&resolve, Some(&staging), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(
        a.json()["incident"]["resolved_at"].is_string(),
        "{}",
        a.text()
    );
    let again = post(&resolve, Some(&staging), "{}").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let missing = post(
        &server.url("/api/v1/incidents/4242/resolve"),
        Some(&staging),
        "{}",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let events = store
        .list_audit(&cutover_store::AuditFilter {
            action: Some("incident.resolve".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "ann@example.com");

    let m = get(
        &server.url("/api/v1/metrics?env=staging&since=30d"),
        Some(&viewer),
    )
    .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    assert_eq!(m.json()["environment"], "staging", "{}", m.text());
    let bad = get(
        &server.url("/api/v1/metrics?env=staging&since=yesterdayish"),
        Some(&viewer),
    )
    .await;
    assert_eq!(
        (bad.status, bad.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("since"))
    );
    let unknown = get(&server.url("/api/v1/metrics?env=nowhere"), Some(&viewer)).await;
    assert_eq!(
        (unknown.status, unknown.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("env"))
    );
    server.stop().await;
}
