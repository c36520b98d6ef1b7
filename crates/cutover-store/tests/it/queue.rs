//! The durable priority queue on both backends: order by class and priority, superseding,
//! concurrency groups, leases and retries, cancel and bump, and the audit events they write.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cutover_core::queue::{AgingPolicy, BackoffPolicy, JobClass, JobState, QueuePolicy};
use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, on_both, t};

on_both!(
    claims_follow_class_then_priority,
    superseding_cancels_queued_jobs_only,
    concurrency_group_runs_one_at_a_time,
    expired_lease_is_retried_then_failed,
    fail_complete_cancel_bump,
    parallel_claims_never_run_a_job_twice,
    wait_for_work_wakes_on_enqueue,
);

const ACTOR: &str = "ann@example.com";

/// Retries without waiting, so tests need no clock.
fn policy() -> QueuePolicy {
    QueuePolicy {
        aging: AgingPolicy::default(),
        backoff: BackoffPolicy {
            base: Duration::ZERO,
            factor: 2,
            max: Duration::ZERO,
            jitter: 0.0,
        },
    }
}

fn job(class: JobClass, priority: i64, name: &str) -> EnqueueJob {
    EnqueueJob {
        priority,
        run_at: t(0),
        ..EnqueueJob::new(class, "noop", json!({"name": name}))
    }
}

async fn claim(s: &Arc<dyn Store>, worker: &str) -> Option<Job> {
    s.claim_job(worker, Utc::now(), Duration::from_secs(60))
        .await
        .unwrap()
}

fn name(j: &Job) -> &str {
    j.payload["name"].as_str().unwrap()
}

async fn actions(s: &Arc<dyn Store>, subject: &str) -> Vec<String> {
    s.list_audit(&AuditFilter {
        subject: Some(subject.into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.action)
    .collect()
}

async fn claims_follow_class_then_priority(db: TestDb) {
    let s = &db.store;
    let p = policy();
    for (class, prio, n) in [
        (JobClass::Background, 100, "bg"),
        (JobClass::Normal, 0, "normal"),
        (JobClass::Hotfix, 0, "hot0"),
        (JobClass::Release, -3, "release"),
        (JobClass::Hotfix, 5, "hot5"),
    ] {
        s.enqueue_job(&job(class, prio, n), &p, ACTOR)
            .await
            .unwrap();
    }
    // Not runnable yet: never claimed before its time.
    let later = EnqueueJob {
        run_at: Utc::now() + chrono::Duration::hours(1),
        ..job(JobClass::Hotfix, 100, "later")
    };
    s.enqueue_job(&later, &p, ACTOR).await.unwrap();
    let mut order = Vec::new();
    while let Some(j) = claim(s, "w1").await {
        assert_eq!(j.state, "running");
        assert_eq!(j.attempts, 1);
        assert_eq!(j.lease_owner.as_deref(), Some("w1"));
        assert!(j.started_at.is_some());
        order.push(name(&j).to_owned());
    }
    assert_eq!(order, ["hot5", "hot0", "release", "normal", "bg"]);
    let queued = s
        .list_jobs(&JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(name(&queued[0]), "later");
    assert_eq!(
        queued[0].rank_us,
        p.aging
            .rank_us(JobClass::Hotfix, 100, later.run_at.timestamp_micros())
    );
    assert_eq!(
        actions(s, &format!("job/{}", queued[0].id)).await,
        ["job.enqueue"]
    );
}

async fn superseding_cancels_queued_jobs_only(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let keyed = |n: &str| EnqueueJob {
        supersede_key: Some("checks:main".into()),
        ..job(JobClass::Normal, 0, n)
    };
    let a = s.enqueue_job(&keyed("a"), &p, ACTOR).await.unwrap();
    assert!(a.superseded.is_empty());
    let running = claim(s, "w1").await.unwrap();
    assert_eq!(running.id, a.id);
    let b = s.enqueue_job(&keyed("b"), &p, ACTOR).await.unwrap();
    let other = s
        .enqueue_job(
            &EnqueueJob {
                supersede_key: Some("checks:dev".into()),
                ..job(JobClass::Normal, 0, "dev")
            },
            &p,
            ACTOR,
        )
        .await
        .unwrap();
    let c = s.enqueue_job(&keyed("c"), &p, ACTOR).await.unwrap();
    // The running one is kept; only the queued `b` is superseded.
    assert_eq!(c.superseded, vec![b.id]);
    let get = |id| async move { s.get_job(id).await.unwrap().unwrap() };
    assert_eq!(get(a.id).await.state, "running");
    let cancelled = get(b.id).await;
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(
        cancelled.last_error.as_deref(),
        Some("superseded by a newer job")
    );
    assert!(cancelled.finished_at.is_some());
    assert_eq!(get(other.id).await.state, "queued");
    assert_eq!(get(c.id).await.state, "queued");
    let event = s
        .list_audit(&AuditFilter {
            subject: Some(format!("job/{}", c.id)),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(event.action, "job.enqueue");
    assert_eq!(event.payload["superseded"], json!([b.id]));
    assert_eq!(event.payload["supersede_key"], json!("checks:main"));
}

async fn concurrency_group_runs_one_at_a_time(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let grouped = |n: &str, prio| EnqueueJob {
        concurrency_group: Some("deploy:production".into()),
        ..job(JobClass::Release, prio, n)
    };
    s.enqueue_job(&grouped("first", 10), &p, ACTOR)
        .await
        .unwrap();
    s.enqueue_job(&grouped("second", 5), &p, ACTOR)
        .await
        .unwrap();
    s.enqueue_job(&job(JobClass::Background, 0, "free"), &p, ACTOR)
        .await
        .unwrap();
    let first = claim(s, "w1").await.unwrap();
    assert_eq!(name(&first), "first");
    // The group is busy: the next claim passes over `second` to the lower-ranked free job.
    assert_eq!(name(&claim(s, "w2").await.unwrap()), "free");
    assert_eq!(claim(s, "w3").await, None);
    s.complete_job(first.id, "w1", &json!({"ok": true}), ACTOR)
        .await
        .unwrap();
    let second = claim(s, "w3").await.unwrap();
    assert_eq!(name(&second), "second");
}

async fn expired_lease_is_retried_then_failed(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let e = s
        .enqueue_job(
            &EnqueueJob {
                max_attempts: 2,
                ..job(JobClass::Normal, 0, "fragile")
            },
            &p,
            ACTOR,
        )
        .await
        .unwrap();
    let now = Utc::now();
    // The worker dies right after claiming: its lease runs out.
    let j = s
        .claim_job("dead-1", now, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.id, e.id);
    assert!(
        s.reclaim_expired_jobs(now, &p, ACTOR)
            .await
            .unwrap()
            .is_empty(),
        "not expired yet"
    );
    let later = now + chrono::Duration::seconds(6);
    let reclaimed = s.reclaim_expired_jobs(later, &p, ACTOR).await.unwrap();
    assert_eq!(reclaimed.len(), 1);
    let r = &reclaimed[0];
    assert_eq!(
        (r.state.as_str(), r.attempts, r.lease_owner.as_deref()),
        ("queued", 1, None)
    );
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .contains("lease of worker dead-1 expired"),
        "{r:?}"
    );
    // A heartbeat from the dead worker no longer counts.
    assert!(!s.heartbeat_job(e.id, "dead-1", later).await.unwrap());
    let again = s
        .claim_job("dead-2", later, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (e.id, 2));
    assert!(
        s.heartbeat_job(e.id, "dead-2", later + chrono::Duration::seconds(5))
            .await
            .unwrap()
    );
    let much_later = later + chrono::Duration::seconds(60);
    let failed = s.reclaim_expired_jobs(much_later, &p, ACTOR).await.unwrap();
    assert_eq!(failed[0].state, "failed");
    assert!(failed[0].finished_at.is_some());
    assert_eq!(
        actions(s, &format!("job/{}", e.id)).await,
        ["job.enqueue", "job.reclaim", "job.fail"]
    );
}

async fn fail_complete_cancel_bump(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let e = s
        .enqueue_job(
            &EnqueueJob {
                max_attempts: 2,
                release_version: Some("1.2.0".into()),
                ..job(JobClass::Normal, 0, "flaky")
            },
            &p,
            ACTOR,
        )
        .await
        .unwrap();
    let j = claim(s, "w1").await.unwrap();
    // Only the lease owner may finish it.
    let err = s
        .complete_job(j.id, "w2", &json!({}), ACTOR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let retried = s
        .fail_job(
            j.id,
            "w1",
            "exit 1",
            Some(&json!({"out": "x"})),
            true,
            &p,
            ACTOR,
        )
        .await
        .unwrap();
    assert_eq!(
        (retried.state.as_str(), retried.last_error.as_deref()),
        ("queued", Some("exit 1"))
    );
    let j = claim(s, "w1").await.unwrap();
    assert_eq!(j.attempts, 2);
    let failed = s
        .fail_job(j.id, "w1", "exit 1 again", None, true, &p, ACTOR)
        .await
        .unwrap();
    assert_eq!(failed.state, "failed");
    assert_eq!(
        actions(s, &format!("job/{}", e.id)).await,
        ["job.enqueue", "job.fail"]
    );

    // Completion keeps the result; a permanent failure does not retry.
    let ok = s
        .enqueue_job(&job(JobClass::Normal, 0, "ok"), &p, ACTOR)
        .await
        .unwrap();
    let j = claim(s, "w1").await.unwrap();
    let done = s
        .complete_job(j.id, "w1", &json!({"passed": true}), ACTOR)
        .await
        .unwrap();
    assert_eq!(
        (done.state.as_str(), done.result.clone()),
        ("succeeded", Some(json!({"passed": true})))
    );
    assert_eq!(
        actions(s, &format!("job/{}", ok.id)).await,
        ["job.enqueue", "job.complete"]
    );
    let perm = s
        .enqueue_job(&job(JobClass::Normal, 0, "perm"), &p, ACTOR)
        .await
        .unwrap();
    let j = claim(s, "w1").await.unwrap();
    assert_eq!(
        s.fail_job(j.id, "w1", "bad payload", None, false, &p, ACTOR)
            .await
            .unwrap()
            .state,
        "failed"
    );
    assert_eq!(s.get_job(perm.id).await.unwrap().unwrap().attempts, 1);

    // Cancel (queued only) and bump (re-ranks).
    let low = s
        .enqueue_job(&job(JobClass::Normal, 0, "low"), &p, ACTOR)
        .await
        .unwrap();
    let high = s
        .enqueue_job(&job(JobClass::Normal, 50, "high"), &p, ACTOR)
        .await
        .unwrap();
    let gone = s
        .enqueue_job(&job(JobClass::Normal, 0, "gone"), &p, ACTOR)
        .await
        .unwrap();
    let c = s.cancel_job(gone.id, ACTOR, "not needed").await.unwrap();
    assert_eq!(
        (c.state.as_str(), c.last_error.as_deref()),
        ("cancelled", Some("not needed"))
    );
    assert!(matches!(
        s.cancel_job(gone.id, ACTOR, "again").await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        s.cancel_job(999_999, ACTOR, "x").await,
        Err(StoreError::NotFound { .. })
    ));
    let bumped = s.bump_job(low.id, 1000, &p, ACTOR).await.unwrap();
    assert_eq!(bumped.priority, 100, "clamped");
    assert_eq!(claim(s, "w1").await.unwrap().id, low.id);
    assert_eq!(claim(s, "w1").await.unwrap().id, high.id);
    assert!(matches!(
        s.bump_job(high.id, 1, &p, ACTOR).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        actions(s, &format!("job/{}", gone.id)).await,
        ["job.enqueue", "job.cancel"]
    );
    let bump_event = s
        .list_audit(&AuditFilter {
            action: Some("job.bump".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(bump_event[0].payload["from"], json!(0));
    assert_eq!(bump_event[0].payload["priority"], json!(100));

    // Listing by release, kind, state and ids.
    let by_release = s
        .list_jobs(&JobFilter {
            release_version: Some("1.2.0".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_release.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![e.id]
    );
    let some = s
        .list_jobs(&JobFilter {
            ids: vec![ok.id, gone.id],
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        some.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![gone.id, ok.id]
    );
    let none = s
        .list_jobs(&JobFilter {
            kind: Some("deploy".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(s.verify_audit().await.unwrap().first_broken, None);
}

async fn parallel_claims_never_run_a_job_twice(db: TestDb) {
    let p = policy();
    const JOBS: usize = 200;
    for i in 0..JOBS {
        let j = EnqueueJob {
            concurrency_group: (i % 10 == 0).then(|| "serial".to_owned()),
            ..job(JobClass::ALL[i % 4], (i % 7) as i64, &format!("j{i}"))
        };
        db.store.enqueue_job(&j, &p, ACTOR).await.unwrap();
    }
    // Each worker has its own store (its own connections), as separate processes would.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = open(&db.raw.url()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut ran = Vec::new();
            while let Some(j) = store
                .claim_job(&worker, Utc::now(), Duration::from_secs(60))
                .await
                .unwrap()
            {
                if j.concurrency_group.is_some() {
                    let running = store
                        .list_jobs(&JobFilter {
                            state: Some(JobState::Running),
                            ..JobFilter::default()
                        })
                        .await
                        .unwrap();
                    let in_group = running
                        .iter()
                        .filter(|r| r.concurrency_group.is_some())
                        .count();
                    assert_eq!(
                        in_group, 1,
                        "two jobs of one group run at once: {running:?}"
                    );
                }
                store
                    .complete_job(j.id, &worker, &json!({}), ACTOR)
                    .await
                    .unwrap();
                ran.push(j.id);
            }
            store.close().await;
            ran
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "a job was claimed twice");
    // A worker may find the group busy and stop early; whoever is left runs the rest.
    while let Some(j) = claim(&db.store, "sweeper").await {
        db.store
            .complete_job(j.id, "sweeper", &json!({}), ACTOR)
            .await
            .unwrap();
        all.push(j.id);
    }
    assert_eq!(all.len(), JOBS);
    assert_eq!(db.store.verify_audit().await.unwrap().first_broken, None);
}

async fn wait_for_work_wakes_on_enqueue(db: TestDb) {
    let p = policy();
    // On PostgreSQL the enqueue comes from another store (as from another process: NOTIFY);
    // on SQLite from the same one (other processes are noticed by polling).
    let other = match db.store.backend() {
        Backend::Postgres => open(&db.raw.url()).await.unwrap(),
        Backend::Sqlite => Arc::clone(&db.store),
    };
    let waiter = Arc::clone(&db.store);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let wait = tokio::spawn(async move {
        // Subscribe first, then report readiness; a long timeout: only a wake-up ends it in time.
        let _ = ready_tx.send(());
        waiter.wait_for_work(Duration::from_secs(3600)).await
    });
    ready_rx.await.unwrap();
    // Give the waiter a moment to register before the notification is sent; repeat the
    // enqueue until it wakes (a wake-up lost to that race is covered by the next one).
    let woke = tokio::time::timeout(Duration::from_secs(60), async {
        let mut wait = wait;
        loop {
            other
                .enqueue_job(&job(JobClass::Normal, 0, "wake"), &p, ACTOR)
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), &mut wait).await {
                Ok(r) => return r.unwrap(),
                Err(_) => continue,
            }
        }
    })
    .await;
    woke.expect("wait_for_work woke up").unwrap();
}
