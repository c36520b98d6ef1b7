//! The OpenAPI document: the committed `docs/openapi.json` is the one the code generates, and the
//! server serves it.

use cutover_store::TokenScope;

use crate::common::{Server, get, sqlite, token};

#[test]
fn the_committed_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = cutover_server::openapi::openapi_json();
    // `cargo xtask codegen` is the usual way; this one avoids building the whole binary.
    if std::env::var_os("CUTOVER_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "{} is stale: run `cargo xtask codegen`",
        path.display()
    );
}

#[tokio::test]
async fn the_server_serves_it_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let _ = token(&*store, "v", TokenScope::Viewer, &[]).await;
    let server = Server::start(store, dir.path(), false).await;
    let doc = get(&server.url("/api/openapi.json"), None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/status",
        "/api/v1/releases/{version}",
        "/api/v1/environments/{env}/served",
        "/api/v1/deployments",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    assert_eq!(
        doc["components"]["schemas"]["DeploymentRequest"]["required"],
        serde_json::json!(["environment", "version"])
    );
    server.stop().await;
}
