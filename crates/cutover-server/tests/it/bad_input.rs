//! Bad bodies and queries: 400 naming the field, 413 above the limit; each counted in `/metrics`;
//! nothing written; the server keeps serving.

use cutover_store::TokenScope;
use hyper::StatusCode;

use crate::common::{Server, audit_len, get, post, release, sqlite, token};

#[tokio::test]
async fn bad_bodies_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    release(&*store, "1.0.0").await;
    let deployer = token(&*store, "ci", TokenScope::Deployer, &[]).await;
    let server = Server::start(store.clone(), dir.path(), false).await;
    let before = audit_len(&*store).await;
    let url = server.url("/api/v1/deployments");

    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"{"environment": 7, "version": "1.0.0"}"#,
            Some("environment"),
        ),
        (r#"{"environment": "staging"}"#, Some("version")),
        (
            r#"{"environment": "staging", "version": "1.0.0", "force": true}"#,
            None,
        ),
        (r#"{"environment": "staging", "#, None),
        ("", None),
        (
            r#"{"environment": "nowhere", "version": "1.0.0"}"#,
            Some("environment"),
        ),
        (
            r#"{"environment": "staging", "version": "9.9.9"}"#,
            Some("version"),
        ),
    ];
    for (body, field) in cases {
        let a = post(&url, Some(&deployer), body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.code(), "bad_request");
        if field.is_some() {
            assert_eq!(a.field().as_deref(), *field, "{body}: {}", a.text());
        }
    }
    let huge = format!(
        r#"{{"environment": "{}", "version": "1"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let a = post(&url, Some(&deployer), &huge).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    let a = get(&server.url("/api/v1/audit?limit=0"), Some(&deployer)).await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let a = get(
        &server.url("/api/v1/audit?since=yesterday-ish"),
        Some(&deployer),
    )
    .await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("since"))
    );
    let a = get(
        &server.url("/api/v1/environments/staging/served?at=2026-13-01"),
        Some(&deployer),
    )
    .await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("at"))
    );
    let a = get(&server.url("/api/v1/jobs?state=sleeping"), Some(&deployer)).await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("state"))
    );
    let a = get(&server.url("/api/v1/nothing-here"), Some(&deployer)).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    assert_eq!(audit_len(&*store).await, before, "nothing was written");
    assert!(
        store
            .list_jobs(&cutover_store::JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    let metrics = get(&server.url("/metrics"), Some(&deployer)).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains("cutover_http_rejections_total{code=\"bad_request\"} 11"),
        "{text}"
    );
    assert!(
        text.contains("cutover_http_rejections_total{code=\"payload_too_large\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("cutover_http_requests_total{route=\"/api/v1/deployments\",method=\"POST\",status=\"400\"} 7"),
        "{text}"
    );
    assert!(
        text.contains(
            "cutover_http_request_duration_seconds_bucket{route=\"/api/v1/audit\",le=\"+Inf\"} 2"
        ),
        "{text}"
    );
    assert_eq!(
        server
            .state
            .metrics
            .rejections(cutover_server::error::ErrorCode::BadRequest),
        11
    );

    // Still serving, and a good request goes through.
    let a = post(
        &url,
        Some(&deployer),
        r#"{"environment": "staging", "version": "1.0.0"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["class"], "release");
    server.stop().await;
}
