//! The token matrix: none, unknown, revoked → 401; viewer writing → 403; a deployer limited to
//! one environment → 403 on another; admin for tokens; `--public-read`; `?token=` → cookie.
//! No refused request writes anything.

use cutover_store::TokenScope;
use hyper::StatusCode;

use crate::common::{Server, audit_len, get, post, release, send, sqlite, token};

#[tokio::test]
async fn the_token_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    release(&*store, "1.0.0").await;
    let viewer = token(&*store, "viewer", TokenScope::Viewer, &[]).await;
    let staging = token(
        &*store,
        "staging-deployer",
        TokenScope::Deployer,
        &["staging"],
    )
    .await;
    let admin = token(&*store, "admin", TokenScope::Admin, &[]).await;
    let revoked = token(&*store, "old", TokenScope::Admin, &[]).await;
    let old_id = store
        .list_api_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "old")
        .unwrap()
        .id;
    cutover_server::tokens::revoke_token(&*store, old_id, "test")
        .await
        .unwrap();
    let server = Server::start(store.clone(), dir.path(), false).await;
    let before = audit_len(&*store).await;

    let status = server.url("/api/v1/status");
    let a = get(&status, None).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(a.headers.contains_key("www-authenticate"));
    let a = get(&status, Some(&revoked)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        a.text()
    );
    let forged = format!("cutover_{}", "A".repeat(43));
    assert_eq!(
        get(&status, Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&status, Some("not a token")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let basic = send(
        hyper::Method::GET,
        &status,
        None,
        &[("authorization", "Basic YTpi")],
        "",
    )
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);

    let a = get(&status, Some(&viewer)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["environments"].as_array().unwrap().len(), 3);

    let approve = server.url("/api/v1/approvals");
    let body = r#"{"environment": "staging", "version": "1.0.0"}"#;
    let a = post(&approve, Some(&viewer), body).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let a = post(&approve, None, body).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let deploy = server.url("/api/v1/deployments");
    let a = post(
        &deploy,
        Some(&staging),
        r#"{"environment": "production", "version": "1.0.0"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(a.field().as_deref(), Some("environment"));
    let a = get(&server.url("/api/v1/tokens"), Some(&staging)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        audit_len(&*store).await,
        before,
        "a refused request wrote nothing"
    );

    // Allowed: the staging deployer approves for staging; admin lists tokens without secrets.
    let a = post(&approve, Some(&staging), body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json()["approver"], "staging-deployer");
    let again = post(&approve, Some(&staging), body).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let a = get(&server.url("/api/v1/tokens"), Some(&admin)).await;
    assert_eq!(a.status, StatusCode::OK);
    let listed = a.text();
    assert!(listed.contains("staging-deployer") && !listed.contains("token_hash"));
    assert!(!listed.contains(&admin[8..]), "no secret is listed");

    let metrics = get(&server.url("/metrics"), Some(&viewer)).await.text();
    assert!(
        metrics.contains("cutover_auth_failures_total{reason=\"missing\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cutover_auth_failures_total{reason=\"revoked\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cutover_auth_failures_total{reason=\"scope\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn public_read_and_the_token_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    release(&*store, "1.0.0").await;
    let viewer = token(&*store, "viewer", TokenScope::Viewer, &[]).await;
    let public = Server::start(store.clone(), dir.path(), true).await;
    assert_eq!(
        get(&public.url("/api/v1/releases"), None).await.status,
        StatusCode::OK
    );
    let a = post(
        &public.url("/api/v1/approvals"),
        None,
        r#"{"environment": "staging", "version": "1.0.0"}"#,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "writes always need a token"
    );
    assert_eq!(
        get(&public.url("/api/v1/tokens"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    public.stop().await;

    let private = Server::start(store.clone(), dir.path(), false).await;
    let a = get(
        &private.url(&format!("/api/v1/releases?token={viewer}")),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let a = send(
        hyper::Method::GET,
        &private.url("/api/v1/releases"),
        None,
        &[("cookie", pair)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()[0]["version"], "1.0.0");
    private.stop().await;
}
