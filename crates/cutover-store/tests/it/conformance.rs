//! Round trips of every record type, and the one-transaction rule (invariant 1).

use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, audit, on_both, t};

on_both!(
    records_round_trip,
    failed_change_leaves_no_audit_event,
    audit_listing_filters,
    environment_locks,
    tokens_deliveries_and_cursors
);

fn release(version: &str, bom: Option<serde_json::Value>) -> Release {
    Release {
        version: version.into(),
        tag: format!("v{version}"),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        kind: ReleaseKind::Normal,
        notes: "## Features\n\n- ünïcode ✓\n".into(),
        changes: json!([{"type": "feat", "summary": "x", "breaking": false}]),
        artifact_digest: Some("sha256:00ff".into()),
        bom,
        vulns: None,
        created_at: t(0),
    }
}

async fn records_round_trip(db: TestDb) {
    let s = &db.store;
    let mut applied = 0u64;

    // Releases.
    let r1 = release("1.0.0", None);
    let r2 = Release {
        kind: ReleaseKind::Hotfix,
        artifact_digest: None,
        vulns: Some(
            json!({"scanned_at": "2026-11-26T08:00:00Z", "findings": [{"id": "RUSTSEC-2021-0003", "score": 9.8}]}),
        ),
        created_at: t(10),
        ..release("1.0.1", Some(json!({"bomFormat": "CycloneDX"})))
    };
    s.apply(
        &[
            Change::InsertRelease(r1.clone()),
            Change::InsertRelease(r2.clone()),
        ],
        &audit("release.create", "release/1.0.x"),
    )
    .await
    .unwrap();
    applied += 1;
    assert_eq!(s.get_release("1.0.0").await.unwrap(), Some(r1.clone()));
    assert_eq!(s.get_release("9.9.9").await.unwrap(), None);
    assert_eq!(
        s.list_releases().await.unwrap(),
        vec![r1.clone(), r2.clone()]
    );
    let r1b = Release {
        bom: Some(json!({"components": []})),
        vulns: Some(json!({"findings": []})),
        ..r1.clone()
    };
    s.apply_one(
        Change::UpdateRelease(r1b.clone()),
        &audit("release.bom", "release/1.0.0"),
    )
    .await
    .unwrap();
    applied += 1;
    assert_eq!(s.get_release("1.0.0").await.unwrap(), Some(r1b));

    // Notices.
    let n = NewNotice {
        version: "1.0.1".into(),
        content: "# 1.0.1".into(),
        format: "markdown".into(),
        recipients: vec!["a@x".into(), "b@x".into()],
        created_at: t(20),
    };
    let id = match s
        .apply_one(
            Change::InsertNotice(n.clone()),
            &audit("notice.create", "release/1.0.1"),
        )
        .await
        .unwrap()
    {
        Outcome::Id(id) => id,
        other => panic!("{other:?}"),
    };
    applied += 1;
    s.apply_one(
        Change::MarkNoticeSent { id, at: t(21) },
        &audit("notice.send", "notice"),
    )
    .await
    .unwrap();
    applied += 1;
    let got = s.get_notice(id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Notice {
            id,
            version: n.version,
            content: n.content,
            format: n.format,
            recipients: n.recipients,
            created_at: t(20),
            sent_at: Some(t(21))
        }
    );
    assert_eq!(
        s.list_notices(Some("1.0.1")).await.unwrap(),
        vec![got.clone()]
    );
    assert_eq!(s.list_notices(Some("1.0.0")).await.unwrap(), vec![]);
    assert_eq!(s.list_notices(None).await.unwrap(), vec![got]);

    // Deployments and steps.
    let nd = NewDeployment {
        environment: "staging".into(),
        release_version: "1.0.0".into(),
        strategy: "blue-green".into(),
        state: "queued".into(),
        trigger: "cli".into(),
        actor: "ann@example.com".into(),
        reverts: None,
        created_at: t(30),
    };
    let applied_dep = s
        .apply(
            &[Change::InsertDeployment(nd.clone())],
            &audit("deploy.start", "staging"),
        )
        .await
        .unwrap();
    applied += 1;
    let dep = applied_dep.id(0).unwrap();
    assert_eq!(applied_dep.event.action, "deploy.start");
    let step = s
        .apply_one(
            Change::InsertDeploymentStep(NewDeploymentStep {
                deployment_id: dep,
                step: "prepare".into(),
                intent: json!({"slot": "blue"}),
                at: t(31),
            }),
            &audit("deploy.intent", "deployment"),
        )
        .await
        .unwrap();
    applied += 1;
    let Outcome::Id(step) = step else {
        panic!("no step id")
    };
    s.apply(
        &[
            Change::SetDeploymentStepResult {
                id: step,
                result: json!({"ok": true}),
                at: t(32),
            },
            Change::UpdateDeployment {
                id: dep,
                expected_state: Some("queued".into()),
                state: "live".into(),
                at: t(33),
                finished_at: Some(t(34)),
            },
        ],
        &audit("deploy.live", "deployment"),
    )
    .await
    .unwrap();
    applied += 1;
    let d = s.get_deployment(dep).await.unwrap().unwrap();
    assert_eq!(
        d,
        Deployment {
            id: dep,
            environment: nd.environment.clone(),
            release_version: "1.0.0".into(),
            strategy: nd.strategy.clone(),
            state: "live".into(),
            trigger: "cli".into(),
            actor: nd.actor.clone(),
            reverts: None,
            created_at: t(30),
            updated_at: t(33),
            finished_at: Some(t(34))
        }
    );
    let steps = s.list_deployment_steps(dep).await.unwrap();
    assert_eq!(
        steps,
        vec![DeploymentStep {
            id: step,
            deployment_id: dep,
            step: "prepare".into(),
            intent: json!({"slot": "blue"}),
            result: Some(json!({"ok": true})),
            at: t(31),
            finished_at: Some(t(32))
        }]
    );
    // Compare-and-set: the deployment is live, not queued.
    let err = s
        .apply_one(
            Change::UpdateDeployment {
                id: dep,
                expected_state: Some("queued".into()),
                state: "failed".into(),
                at: t(35),
                finished_at: None,
            },
            &audit("deploy.fail", "deployment"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("`live`"), "{err}");
    let rollback = NewDeployment {
        reverts: Some(dep),
        release_version: "1.0.1".into(),
        trigger: "rollback".into(),
        state: "queued".into(),
        created_at: t(40),
        ..nd.clone()
    };
    let rb = s
        .apply(
            &[Change::InsertDeployment(rollback)],
            &audit("deploy.start", "staging"),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    applied += 1;
    assert_eq!(
        s.get_deployment(rb).await.unwrap().unwrap().reverts,
        Some(dep)
    );
    let unfinished = s
        .list_deployments(&DeploymentFilter {
            unfinished_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        unfinished.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![rb]
    );
    let staging = s
        .list_deployments(&DeploymentFilter {
            environment: Some("staging".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        staging.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![rb, dep],
        "newest first"
    );
    assert_eq!(
        s.list_deployments(&DeploymentFilter {
            environment: Some("production".into()),
            ..Default::default()
        })
        .await
        .unwrap(),
        vec![]
    );
    assert_eq!(
        s.list_deployments(&DeploymentFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );

    // Hosts, assignments, observations, proofs.
    s.apply_one(
        Change::UpsertHost {
            name: "web-1".into(),
            token_hash: Some("sha256:aa".into()),
            agent_version: None,
            at: t(50),
        },
        &audit("host.register", "host/web-1"),
    )
    .await
    .unwrap();
    applied += 1;
    assert!(s.touch_host("web-1", t(51), Some("0.1.0")).await.unwrap());
    assert!(!s.touch_host("web-9", t(51), None).await.unwrap());
    s.apply_one(
        Change::UpsertHost {
            name: "web-1".into(),
            token_hash: Some("sha256:bb".into()),
            agent_version: Some("0.2.0".into()),
            at: t(52),
        },
        &audit("host.rotate", "host/web-1"),
    )
    .await
    .unwrap();
    applied += 1;
    let host = s.get_host("web-1").await.unwrap().unwrap();
    assert_eq!(
        host,
        Host {
            name: "web-1".into(),
            token_hash: Some("sha256:bb".into()),
            agent_version: Some("0.2.0".into()),
            last_seen: Some(t(51)),
            created_at: t(50)
        }
    );
    assert_eq!(s.list_hosts().await.unwrap(), vec![host]);
    let a1 = Assignment {
        host: "web-1".into(),
        generation: 1,
        desired: json!({"version": "1.0.0"}),
        created_at: t(53),
    };
    s.apply_one(
        Change::PutAssignment(a1.clone()),
        &audit("assign", "host/web-1"),
    )
    .await
    .unwrap();
    applied += 1;
    let err = s
        .apply_one(
            Change::PutAssignment(a1.clone()),
            &audit("assign", "host/web-1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let a2 = Assignment {
        generation: 2,
        desired: json!({"version": "1.0.1"}),
        ..a1.clone()
    };
    s.apply_one(
        Change::PutAssignment(a2.clone()),
        &audit("assign", "host/web-1"),
    )
    .await
    .unwrap();
    applied += 1;
    assert_eq!(s.current_assignment("web-1").await.unwrap(), Some(a2));
    assert_eq!(s.current_assignment("web-2").await.unwrap(), None);
    let err = s
        .apply_one(
            Change::PutAssignment(Assignment {
                host: "web-2".into(),
                ..a1.clone()
            }),
            &audit("assign", "host/web-2"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { .. }),
        "unknown host: {err}"
    );
    let obs = NewObservation {
        host: "web-1".into(),
        generation: 2,
        observed: json!({"slots": []}),
        evidence: json!({"health": "ok"}),
        at: t(54),
    };
    let oid = s
        .apply(
            &[Change::InsertObservation(obs.clone())],
            &audit("observe", "host/web-1"),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    applied += 1;
    let want = Observation {
        id: oid,
        host: obs.host,
        generation: 2,
        observed: obs.observed,
        evidence: obs.evidence,
        at: t(54),
    };
    assert_eq!(
        s.list_observations("web-1", Some(2)).await.unwrap(),
        vec![want.clone()]
    );
    assert_eq!(s.list_observations("web-1", Some(1)).await.unwrap(), vec![]);
    assert_eq!(
        s.list_observations("web-1", None).await.unwrap(),
        vec![want]
    );
    let p = NewProof {
        deployment_id: dep,
        host: "web-1".into(),
        statement: json!({"_type": "https://in-toto.io/Statement/v1"}),
        envelope: json!({"payloadType": "application/vnd.in-toto+json", "signatures": []}),
        created_at: t(55),
    };
    let pid = s
        .apply(
            &[Change::InsertProof(p.clone())],
            &audit("proof", "deployment"),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    applied += 1;
    assert_eq!(
        s.list_proofs(dep).await.unwrap(),
        vec![Proof {
            id: pid,
            deployment_id: dep,
            host: p.host,
            statement: p.statement,
            envelope: p.envelope,
            created_at: t(55)
        }]
    );

    // Jobs.
    let j = NewJob {
        class: "hotfix".into(),
        priority: 5,
        kind: "check".into(),
        payload: json!({"argv": ["cargo", "test"]}),
        supersede_key: Some("checks:main".into()),
        concurrency_group: None,
        run_at: t(60),
        created_at: t(59),
    };
    let jid = s
        .apply(
            &[Change::InsertJob(j.clone())],
            &audit("job.enqueue", "job"),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    applied += 1;
    assert_eq!(
        s.get_job(jid).await.unwrap(),
        Some(Job {
            id: jid,
            class: j.class,
            priority: 5,
            kind: j.kind,
            payload: j.payload,
            state: "queued".into(),
            supersede_key: j.supersede_key,
            concurrency_group: None,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            run_at: t(60),
            created_at: t(59),
            // Hotfix, priority 5: 5 s ahead of its run_at (default aging policy).
            rank_us: t(60).timestamp_micros() - 5_000_000,
            max_attempts: 3,
            release_version: None,
            result: None,
            last_error: None,
            started_at: None,
            finished_at: None,
        })
    );
    assert_eq!(s.get_job(jid + 1000).await.unwrap(), None);

    // Incidents.
    let iid = s
        .apply(
            &[Change::OpenIncident(NewIncident {
                environment: "staging".into(),
                summary: "500s".into(),
                caused_by: Some(dep),
                opened_at: t(70),
            })],
            &audit("incident.open", "staging"),
        )
        .await
        .unwrap()
        .id(0)
        .unwrap();
    applied += 1;
    s.apply_one(
        Change::ResolveIncident {
            id: iid,
            restored_by: Some(rb),
            at: t(71),
        },
        &audit("incident.resolve", "incident"),
    )
    .await
    .unwrap();
    applied += 1;
    let err = s
        .apply_one(
            Change::ResolveIncident {
                id: iid,
                restored_by: None,
                at: t(72),
            },
            &audit("incident.resolve", "incident"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let inc = Incident {
        id: iid,
        environment: "staging".into(),
        summary: "500s".into(),
        caused_by: Some(dep),
        restored_by: Some(rb),
        opened_at: t(70),
        resolved_at: Some(t(71)),
    };
    assert_eq!(s.get_incident(iid).await.unwrap(), Some(inc.clone()));
    assert_eq!(s.list_incidents(Some("staging")).await.unwrap(), vec![inc]);
    assert_eq!(s.list_incidents(Some("production")).await.unwrap(), vec![]);

    // Every successful apply wrote exactly one event, and the chain holds.
    let report = s.verify_audit().await.unwrap();
    assert_eq!(
        report,
        VerifyReport {
            events: applied,
            first_broken: None
        }
    );
}

async fn failed_change_leaves_no_audit_event(db: TestDb) {
    let s = &db.store;
    s.apply_one(
        Change::InsertRelease(release("1.0.0", None)),
        &audit("release.create", "release/1.0.0"),
    )
    .await
    .unwrap();
    // The second change fails, so the first one and the audit event must not be written either.
    let err = s
        .apply(
            &[
                Change::InsertRelease(release("2.0.0", None)),
                Change::InsertRelease(release("1.0.0", None)),
            ],
            &audit("release.create", "release/2.0.0"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.is_user_error());
    assert_eq!(s.get_release("2.0.0").await.unwrap(), None);
    // A deployment of a release that does not exist: a foreign key, also rolled back whole.
    let err = s
        .apply_one(
            Change::InsertDeployment(NewDeployment {
                environment: "staging".into(),
                release_version: "7.7.7".into(),
                strategy: "rolling".into(),
                state: "queued".into(),
                trigger: "cli".into(),
                actor: "ann".into(),
                reverts: None,
                created_at: t(1),
            }),
            &audit("deploy.start", "staging"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = s
        .apply_one(
            Change::MarkNoticeSent { id: 42, at: t(2) },
            &audit("notice.send", "notice/42"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let events = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.action.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "release.create")]
    );
    assert_eq!(db.raw.scalar("SELECT COUNT(*) FROM audit").await, 1);
    assert_eq!(db.raw.scalar("SELECT COUNT(*) FROM deployments").await, 0);
    // The chain continues after failures without a gap.
    let e = s
        .append_audit(&audit("webhook.reject", "webhook/github"))
        .await
        .unwrap();
    assert_eq!(e.seq, 2);
    assert_eq!(e.prev_hash, events[0].hash);
    assert_eq!(
        s.verify_audit().await.unwrap(),
        VerifyReport {
            events: 2,
            first_broken: None
        }
    );
}

async fn audit_listing_filters(db: TestDb) {
    let s = &db.store;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut written = Vec::new();
    for i in 0..10 {
        let action = if i % 2 == 0 {
            "deploy.start"
        } else {
            "release.create"
        };
        let payload = json!({"i": i, "z": "last", "a": {"y": 1.5, "b": [true, null, "é\"\\\n"]}, "big": u64::MAX});
        written.push(
            s.append_audit(&Audit::new("ann", action, format!("s/{}", i % 3), payload))
                .await
                .unwrap(),
        );
    }
    let all = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all, written, "events read back equal the events written");
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(all[0].at >= before);
    let deploys = s
        .list_audit(&AuditFilter {
            action: Some("deploy.start".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        deploys.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3, 5, 7, 9]
    );
    let s1 = s
        .list_audit(&AuditFilter {
            subject: Some("s/1".into()),
            action: Some("release.create".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(s1.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 8]);
    let newest = s
        .list_audit(&AuditFilter {
            descending: true,
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 9, 8]
    );
    let page = s
        .list_audit(&AuditFilter {
            after_seq: Some(4),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6]);
    let window = s
        .list_audit(&AuditFilter {
            since: Some(all[3].at),
            until: Some(all[6].at),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(window.iter().all(|e| e.at >= all[3].at && e.at < all[6].at));
    assert!(window.iter().any(|e| e.seq == 4));
    assert!(!window.iter().any(|e| e.seq == 7));
    let future = s
        .list_audit(&AuditFilter {
            since: Some(chrono::Utc::now() + chrono::Duration::days(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(future, vec![]);
    assert_eq!(
        s.verify_audit().await.unwrap(),
        VerifyReport {
            events: 10,
            first_broken: None
        }
    );
}

async fn environment_locks(db: TestDb) {
    let s = &db.store;
    let acquire = |holder: &str, at: i64, until: i64| Change::AcquireLock {
        environment: "production".into(),
        holder: holder.into(),
        message: format!("deploy by {holder}"),
        at: t(at),
        lease_until: t(until),
    };
    s.apply_one(
        acquire("ann", 0, 100),
        &audit("lock.acquire", "environment/production"),
    )
    .await
    .unwrap();
    let err = s
        .apply_one(
            acquire("bob", 50, 150),
            &audit("lock.acquire", "environment/production"),
        )
        .await
        .unwrap_err();
    match &err {
        StoreError::LockHeld {
            environment,
            holder,
            message,
            ..
        } => {
            assert_eq!(
                (environment.as_str(), holder.as_str(), message.as_str()),
                ("production", "ann", "deploy by ann")
            );
        }
        other => panic!("expected LockHeld, got {other}"),
    }
    assert!(err.to_string().contains("locked by ann"), "{err}");
    assert!(err.hint().is_some());
    // The same holder renews.
    s.apply_one(
        acquire("ann", 60, 200),
        &audit("lock.acquire", "environment/production"),
    )
    .await
    .unwrap();
    assert!(s.renew_lock("production", "ann", t(300)).await.unwrap());
    assert!(!s.renew_lock("production", "bob", t(400)).await.unwrap());
    assert_eq!(
        s.get_lock("production").await.unwrap().unwrap().lease_until,
        t(300)
    );
    // A dead holder's lease expires and the lock is taken over.
    s.apply_one(
        acquire("bob", 300, 500),
        &audit("lock.takeover", "environment/production"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_lock("production").await.unwrap(),
        Some(EnvLock {
            environment: "production".into(),
            holder: "bob".into(),
            message: "deploy by bob".into(),
            acquired_at: t(300),
            lease_until: t(500)
        })
    );
    let err = s
        .apply_one(
            Change::ReleaseLock {
                environment: "production".into(),
                holder: "ann".into(),
            },
            &audit("lock.release", "environment/production"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    s.apply_one(
        Change::ReleaseLock {
            environment: "production".into(),
            holder: "bob".into(),
        },
        &audit("lock.release", "environment/production"),
    )
    .await
    .unwrap();
    assert_eq!(s.get_lock("production").await.unwrap(), None);
    // One event per successful change, none for the refused ones.
    assert_eq!(
        s.verify_audit().await.unwrap(),
        VerifyReport {
            events: 4,
            first_broken: None
        }
    );
}

async fn tokens_deliveries_and_cursors(db: TestDb) {
    let s = &db.store;
    let token = |name: &str, hash: &str, envs: &[&str]| NewApiToken {
        name: name.into(),
        scope: TokenScope::Deployer,
        environments: envs.iter().map(|e| e.to_string()).collect(),
        token_hash: hash.into(),
        created_by: "ann".into(),
        created_at: t(10),
    };
    let id = match s
        .apply_one(
            Change::InsertApiToken(token("ci", "aa11", &["staging"])),
            &audit("token.create", "token"),
        )
        .await
        .unwrap()
    {
        Outcome::Id(id) => id,
        other => panic!("expected an id, got {other:?}"),
    };
    // A second token of the same name is a conflict, and leaves no audit event.
    let before = s.list_audit(&AuditFilter::default()).await.unwrap().len();
    let err = s
        .apply_one(
            Change::InsertApiToken(token("ci", "bb22", &[])),
            &audit("token.create", "token"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        s.list_audit(&AuditFilter::default()).await.unwrap().len(),
        before
    );

    let found = s.find_api_token("aa11").await.unwrap().unwrap();
    assert_eq!(
        (
            found.id,
            found.name.as_str(),
            found.scope,
            found.environments.clone()
        ),
        (id, "ci", TokenScope::Deployer, vec!["staging".to_string()])
    );
    assert!(found.allows_environment("staging") && !found.allows_environment("production"));
    assert_eq!(found.last_used_at, None);
    s.touch_api_token(id, t(20)).await.unwrap();
    assert_eq!(
        s.find_api_token("aa11")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(t(20))
    );
    assert_eq!(s.find_api_token("nope").await.unwrap(), None);

    s.apply_one(
        Change::RevokeApiToken { id, at: t(30) },
        &audit("token.revoke", "token"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_api_tokens().await.unwrap()[0].revoked_at,
        Some(t(30))
    );
    let again = s
        .apply_one(
            Change::RevokeApiToken { id, at: t(40) },
            &audit("token.revoke", "token"),
        )
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict { .. }), "{again}");
    let missing = s
        .apply_one(
            Change::RevokeApiToken { id: 999, at: t(40) },
            &audit("token.revoke", "token"),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");

    // A delivery is recorded once; its replay is a conflict; another provider's same id is not.
    let delivery = |provider: &str| Change::RecordWebhookDelivery {
        provider: provider.into(),
        delivery_id: "d-1".into(),
        at: t(50),
    };
    s.apply_one(delivery("github"), &audit("webhook.receive", "webhook"))
        .await
        .unwrap();
    let replay = s
        .apply_one(delivery("github"), &audit("webhook.receive", "webhook"))
        .await
        .unwrap_err();
    assert!(matches!(replay, StoreError::Conflict { .. }), "{replay}");
    s.apply_one(delivery("gitlab"), &audit("webhook.receive", "webhook"))
        .await
        .unwrap();

    // Cursors: compare-and-set from 0, then from the value read.
    assert_eq!(s.notification_cursor("slack").await.unwrap(), 0);
    assert!(!s.advance_notification_cursor("slack", 3, 7).await.unwrap());
    assert!(s.advance_notification_cursor("slack", 0, 7).await.unwrap());
    assert!(!s.advance_notification_cursor("slack", 0, 9).await.unwrap());
    assert_eq!(s.notification_cursor("slack").await.unwrap(), 7);
    assert!(s.advance_notification_cursor("slack", 7, 12).await.unwrap());
    assert!(!s.advance_notification_cursor("slack", 7, 13).await.unwrap());
    assert_eq!(s.notification_cursor("slack").await.unwrap(), 12);
    assert_eq!(s.notification_cursor("email").await.unwrap(), 0);
}
