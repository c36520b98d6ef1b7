//! The read endpoints over recorded history: status, releases, deployments, history, audit
//! paging, "what ran at T", hosts, incidents. Answers are the CLI's `--json` documents.

use chrono::Utc;
use cutover_store::{Audit, Change, NewDeployment, NewIncident, Store, TokenScope};
use hyper::StatusCode;
use serde_json::json;

use crate::common::{Server, get, release, sqlite, token};

/// Deploys `version` to staging's web-1 as the deploy engine records it: the deployment, its
/// transition to live, the traffic switch and the proof.
async fn record_live(store: &dyn Store, version: &str) -> i64 {
    let now = Utc::now();
    let id = store
        .apply(
            &[Change::InsertDeployment(NewDeployment {
                environment: "staging".into(),
                release_version: version.into(),
                strategy: "blue-green".into(),
                state: "verifying".into(),
                trigger: "api".into(),
                actor: "ci".into(),
                reverts: None,
                created_at: now,
            })],
            &Audit::new("ci", "deployment.create", "deployment:new", json!({})),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    store
        .append_audit(&Audit::new(
            "ci",
            "deployment.switch",
            "env:staging",
            json!({"environment": "staging", "deployment": id, "hosts": [
                {"host": "web-1", "serving": [{"version": version, "slot": "blue", "weight": 100}]}
            ]}),
        ))
        .await
        .unwrap();
    store
        .append_audit(&Audit::new(
            "ci",
            "proof.record",
            format!("deployment:{id}"),
            json!({"environment": "staging", "host": "web-1", "version": version, "keyid": "SHA256:k"}),
        ))
        .await
        .unwrap();
    store
        .apply_one(
            Change::UpdateDeployment {
                id,
                expected_state: Some("verifying".into()),
                state: "live".into(),
                at: Utc::now(),
                finished_at: Some(Utc::now()),
            },
            &Audit::new(
                "ci",
                "deployment.transition",
                format!("deployment:{id}"),
                json!({"environment": "staging", "version": version, "from": "verifying", "to": "live"}),
            ),
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn reads_answer_the_recorded_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    release(&*store, "1.0.0").await;
    let id = record_live(&*store, "1.0.0").await;
    store
        .apply_one(
            Change::OpenIncident(NewIncident {
                environment: "staging".into(),
                summary: "slow pages".into(),
                caused_by: Some(id),
                opened_at: Utc::now(),
            }),
            &Audit::new("ci", "incident.open", "incident:new", json!({})),
        )
        .await
        .unwrap();
    let viewer = token(&*store, "viewer", TokenScope::Viewer, &[]).await;
    let server = Server::start(store.clone(), dir.path(), false).await;
    let v = Some(viewer.as_str());
    let ok = |a: &crate::common::Answer| assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    let a = get(&server.url("/api/v1/status/staging"), v).await;
    ok(&a);
    assert_eq!(a.json()["release"], "1.0.0");
    assert_eq!(a.json()["deployment"], json!({"id": id, "state": "live"}));
    let a = get(&server.url("/api/v1/status/nowhere"), v).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = get(&server.url("/api/v1/releases/1.0.0"), v).await;
    ok(&a);
    let r = a.json();
    assert_eq!(r["tag"], "v1.0.0");
    assert_eq!(r["bom"]["components"], 3);
    assert_eq!(
        r["bom"]["licenses"],
        json!({"MIT": 1, "MIT OR Apache-2.0": 1, "unknown": 1})
    );
    assert_eq!(r["deployments"][0]["id"], id);
    assert_eq!(r["changes"][0]["summary"], "a thing");
    assert_eq!(
        get(&server.url("/api/v1/releases/2.0.0"), v).await.status,
        StatusCode::NOT_FOUND
    );

    let a = get(&server.url(&format!("/api/v1/deployments/{id}")), v).await;
    ok(&a);
    assert_eq!(a.json()["deployment"]["state"], "live");
    assert_eq!(a.json()["proofs"], json!([]));
    let a = get(&server.url("/api/v1/deployments/abc"), v).await;
    assert_eq!(
        (a.status, a.field().as_deref()),
        (StatusCode::BAD_REQUEST, Some("id"))
    );
    let a = get(&server.url("/api/v1/deployments?env=staging&limit=1"), v).await;
    assert_eq!(a.json().as_array().unwrap().len(), 1);
    let a = get(&server.url("/api/v1/history?env=staging"), v).await;
    ok(&a);
    assert_eq!(a.json()[0]["version"], "1.0.0");

    let a = get(&server.url("/api/v1/environments/staging/served"), v).await;
    ok(&a);
    let served = a.json();
    assert_eq!(served["deployed"], true);
    assert_eq!(served["hosts"][0]["host"], "web-1");
    assert_eq!(served["hosts"][0]["serving"][0]["version"], "1.0.0");
    assert_eq!(served["hosts"][0]["serving"][0]["proof"]["deployment"], id);
    let a = get(
        &server.url("/api/v1/environments/staging/served?at=2020-01-01T00:00:00Z"),
        v,
    )
    .await;
    assert_eq!(a.json()["deployed"], false);

    // Paging through the audit log by seq.
    let first = get(&server.url("/api/v1/audit?limit=2"), v).await.json();
    assert_eq!(first.as_array().unwrap().len(), 2);
    let after = first[1]["seq"].as_i64().unwrap();
    let next = get(
        &server.url(&format!("/api/v1/audit?limit=2&after_seq={after}")),
        v,
    )
    .await
    .json();
    assert_eq!(next[0]["seq"].as_i64().unwrap(), after + 1);
    let switches = get(
        &server.url("/api/v1/audit?action=deployment.switch&subject=env%3Astaging"),
        v,
    )
    .await
    .json();
    assert_eq!(switches.as_array().unwrap().len(), 1);

    let a = get(&server.url("/api/v1/incidents?env=staging"), v).await;
    assert_eq!(a.json()[0]["caused_by"], id);
    ok(&get(&server.url("/api/v1/hosts"), v).await);
    ok(&get(&server.url("/api/v1/jobs?state=queued"), v).await);
    let a = get(&server.url("/api/v1/releases"), v).await;
    assert_eq!(a.json()[0]["version"], "1.0.0");
    assert!(a.json()[0].get("notes").is_none(), "lists are summaries");
    server.stop().await;
}
