//! The narrow reads behind `cutover serve`'s busiest endpoints: deployment searches, every host's
//! newest observation in one query, and the switch index of "what ran at T" (its full equivalence
//! with a replay is tested in cutover-views).

use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, audit, on_both, t};

on_both!(deployment_search, latest_observations, switch_index);

fn release(version: &str) -> Change {
    Change::InsertRelease(Release {
        version: version.into(),
        tag: format!("v{version}"),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        kind: ReleaseKind::Normal,
        notes: String::new(),
        changes: json!([]),
        artifact_digest: None,
        bom: None,
        vulns: None,
        created_at: t(0),
    })
}

fn deployment(env: &str, version: &str, state: &str, created: i64) -> Change {
    Change::InsertDeployment(NewDeployment {
        environment: env.into(),
        release_version: version.into(),
        strategy: "blue-green".into(),
        state: state.into(),
        trigger: "cli".into(),
        actor: "ann".into(),
        reverts: None,
        created_at: t(created),
    })
}

async fn deployment_search(db: TestDb) {
    let s = &db.store;
    s.apply(
        &[release("1.0.0"), release("2.0.0")],
        &audit("release.create", "r"),
    )
    .await
    .unwrap();
    // ids 1..=5: prod 1.0.0 live, staging 2.0.0 live, prod 2.0.0 live (unfinished), prod 2.0.0
    // failed, prod 1.0.0 queued.
    let mut changes = vec![
        deployment("prod", "1.0.0", "live", 10),
        deployment("staging", "2.0.0", "live", 20),
        deployment("prod", "2.0.0", "live", 30),
        deployment("prod", "2.0.0", "failed", 40),
        deployment("prod", "1.0.0", "queued", 50),
    ];
    for id in [1, 2] {
        changes.push(Change::UpdateDeployment {
            id,
            expected_state: Some("live".into()),
            state: "live".into(),
            at: t(60),
            finished_at: Some(t(60)),
        });
    }
    s.apply(&changes, &audit("deployment.create", "d"))
        .await
        .unwrap();
    let ids = |found: Vec<Deployment>| found.iter().map(|d| d.id).collect::<Vec<_>>();
    let search = |q: DeploymentSearch| async move { ids(s.search_deployments(&q).await.unwrap()) };
    assert_eq!(
        search(DeploymentSearch::default()).await,
        vec![5, 4, 3, 2, 1]
    );
    let prod = || DeploymentSearch {
        environment: Some("prod".into()),
        ..DeploymentSearch::default()
    };
    assert_eq!(search(prod()).await, vec![5, 4, 3, 1]);
    // Live means live and finished.
    let live = DeploymentSearch {
        live_only: true,
        ..prod()
    };
    assert_eq!(search(live).await, vec![1]);
    let v2 = DeploymentSearch {
        versions: vec!["2.0.0".into()],
        ..DeploymentSearch::default()
    };
    assert_eq!(search(v2.clone()).await, vec![4, 3, 2]);
    let both = DeploymentSearch {
        versions: vec!["2.0.0".into(), "1.0.0".into()],
        created_before: Some(t(40)),
        ..prod()
    };
    assert_eq!(search(both).await, vec![3, 1]);
    let page = DeploymentSearch {
        before_id: Some(4),
        limit: Some(1),
        ..v2
    };
    assert_eq!(search(page).await, vec![3]);
    assert_eq!(
        search(DeploymentSearch {
            environment: Some("nowhere".into()),
            ..DeploymentSearch::default()
        })
        .await,
        Vec::<i64>::new()
    );
    // The listing with and without its filters still agrees with the search.
    let listed = s
        .list_deployments(&DeploymentFilter {
            environment: Some("prod".into()),
            unfinished_only: true,
            limit: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(ids(listed), vec![5, 4]);
}

async fn latest_observations(db: TestDb) {
    let s = &db.store;
    for host in ["web-1", "web-2", "web-3"] {
        s.apply_one(
            Change::UpsertHost {
                name: host.into(),
                token_hash: None,
                agent_version: None,
                at: t(0),
            },
            &audit("agent.register", host),
        )
        .await
        .unwrap();
    }
    for (i, host) in ["web-1", "web-2", "web-1", "web-2", "web-1"]
        .iter()
        .enumerate()
    {
        let n = i64::try_from(i).unwrap();
        s.apply_one(
            Change::InsertObservation(NewObservation {
                host: (*host).into(),
                generation: 3 - n,
                observed: json!({"n": n}),
                evidence: json!({}),
                at: t(n),
            }),
            &audit("observe", host),
        )
        .await
        .unwrap();
    }
    let hosts: Vec<String> = ["web-3", "web-2", "web-1", "unknown"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    let latest = s.latest_observations(&hosts).await.unwrap();
    let got: Vec<(String, serde_json::Value)> =
        latest.into_iter().map(|o| (o.host, o.observed)).collect();
    assert_eq!(
        got,
        vec![
            ("web-1".into(), json!({"n": 4})),
            ("web-2".into(), json!({"n": 3}))
        ]
    );
    for host in ["web-1", "web-2", "web-3"] {
        let one = s.latest_observation(host).await.unwrap();
        let many = s.latest_observations(&[host.to_owned()]).await.unwrap();
        assert_eq!(one.into_iter().collect::<Vec<_>>(), many);
    }
    assert!(s.latest_observations(&[]).await.unwrap().is_empty());
}

async fn switch_index(db: TestDb) {
    let s = &db.store;
    let switch = |payload: serde_json::Value| async move {
        s.append_audit(&Audit::new("ann", "deployment.switch", "env:prod", payload))
            .await
            .unwrap()
    };
    let empty = s.switches_before("prod", chrono::Utc::now()).await.unwrap();
    assert_eq!(empty, SwitchesBefore::default());
    let first = switch(json!({"environment": "prod", "deployment": 1,
        "hosts": [{"host": "a", "serving": [{"version": "1.0.0"}]}, {"host": "b"}]}))
    .await;
    let bad = switch(json!({"environment": "prod", "hosts": 7})).await;
    let foreign = switch(json!({"environment": "staging", "hosts": [{"host": "a"}]})).await;
    let second =
        switch(json!({"environment": "prod", "deployment": 2, "hosts": [{"host": "a"}]})).await;
    let none = switch(json!({"environment": "prod", "hosts": []})).await;

    let before = |e: &AuditEvent| e.at + chrono::Duration::microseconds(1);
    let at_first = s.switches_before("prod", before(&first)).await.unwrap();
    assert_eq!(
        at_first.latest,
        vec![("a".into(), first.seq), ("b".into(), first.seq)]
    );
    assert_eq!(at_first.events, vec![first.clone()]);
    assert!(at_first.deployed);
    assert!(at_first.unreadable.is_empty());

    let at_foreign = s.switches_before("prod", before(&foreign)).await.unwrap();
    assert_eq!(at_foreign.latest, at_first.latest);
    assert_eq!(at_foreign.unreadable, vec![bad.clone()]);

    let at_end = s.switches_before("prod", before(&none)).await.unwrap();
    assert_eq!(
        at_end.latest,
        vec![("a".into(), second.seq), ("b".into(), first.seq)]
    );
    assert_eq!(at_end.events, vec![first.clone(), second.clone()]);
    assert_eq!(at_end.unreadable, vec![bad]);
    // Nothing of prod shows under staging (the foreign event was filed under prod).
    let staging = s.switches_before("staging", before(&none)).await.unwrap();
    assert_eq!(staging, SwitchesBefore::default());
    // Nothing before the first switch; a switch that names no host still counts as deployed.
    assert!(!s.switches_before("prod", first.at).await.unwrap().deployed);
    let qa = s
        .append_audit(&Audit::new(
            "ann",
            "deployment.switch",
            "env:qa",
            json!({"environment": "qa", "hosts": []}),
        ))
        .await
        .unwrap();
    let at_qa = s.switches_before("qa", before(&qa)).await.unwrap();
    assert!(at_qa.deployed && at_qa.latest.is_empty() && at_qa.events.is_empty());
    assert_eq!(
        db.raw
            .scalar("SELECT COUNT(*) FROM audit_switches WHERE readable = 1")
            .await,
        4
    );
}
