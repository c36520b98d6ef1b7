//! The queue's batch methods on both backends: one transaction and one audit event per batch,
//! claims in rank order that never take two jobs of one concurrency group, superseding inside a
//! batch, and the lease of a batch-claimed job expiring like any other.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cutover_core::queue::{AgingPolicy, BackoffPolicy, JobClass, QueuePolicy};
use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, on_both, t};

on_both!(
    batch_enqueue_then_claims_in_rank_order,
    batch_claim_takes_one_job_per_group,
    superseding_inside_a_batch,
    lease_of_a_batch_claimed_job_expires,
    batch_complete_is_one_event_and_skips_lost_jobs,
    parallel_batch_claims_run_each_job_once,
);

const ACTOR: &str = "ann@example.com";

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

fn grouped(group: &str, priority: i64, name: &str) -> EnqueueJob {
    EnqueueJob {
        concurrency_group: Some(group.into()),
        ..job(JobClass::Release, priority, name)
    }
}

fn keyed(key: &str, name: &str) -> EnqueueJob {
    EnqueueJob {
        supersede_key: Some(key.into()),
        ..job(JobClass::Normal, 0, name)
    }
}

fn names(jobs: &[Job]) -> Vec<&str> {
    jobs.iter()
        .map(|j| j.payload["name"].as_str().unwrap())
        .collect()
}

async fn claim(s: &Arc<dyn Store>, worker: &str, n: usize) -> Vec<Job> {
    s.claim_jobs(worker, Utc::now(), Duration::from_secs(60), n)
        .await
        .unwrap()
}

async fn events(s: &Arc<dyn Store>, action: &str) -> Vec<AuditEvent> {
    s.list_audit(&AuditFilter {
        action: Some(action.into()),
        ..AuditFilter::default()
    })
    .await
    .unwrap()
}

async fn chain_verifies(s: &Arc<dyn Store>) {
    let report = s.verify_audit().await.unwrap();
    assert_eq!(report.first_broken, None, "{report:?}");
}

async fn batch_enqueue_then_claims_in_rank_order(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let batch = [
        job(JobClass::Background, 100, "bg"),
        job(JobClass::Normal, 0, "normal"),
        job(JobClass::Hotfix, 0, "hot0"),
        job(JobClass::Release, -3, "release"),
        job(JobClass::Hotfix, 5, "hot5"),
        EnqueueJob {
            run_at: Utc::now() + chrono::Duration::hours(1),
            ..job(JobClass::Hotfix, 100, "later")
        },
    ];
    let enqueued = s.enqueue_jobs(&batch, &p, ACTOR).await.unwrap();
    assert_eq!(enqueued.len(), batch.len());
    let ids: Vec<i64> = enqueued.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    for (e, j) in enqueued.iter().zip(&batch) {
        let stored = s.get_job(e.id).await.unwrap().unwrap();
        assert_eq!(stored.payload, j.payload);
        assert_eq!(stored.state, "queued");
        assert!(e.superseded.is_empty());
    }
    // One event for the whole batch, listing its ids.
    let enq = events(s, "job.enqueue").await;
    assert_eq!(enq.len(), 1);
    assert_eq!(enq[0].subject, "jobs");
    assert_eq!(enq[0].payload["ids"], json!(ids));
    assert_eq!(enq[0].payload["count"], json!(6));
    assert_eq!(enq[0].payload["jobs"][4]["class"], json!("hotfix"));
    assert_eq!(s.enqueue_jobs(&[], &p, ACTOR).await.unwrap(), []);
    assert!(claim(s, "w", 0).await.is_empty());
    // Batches take the best ranked first, whatever their size.
    let first = claim(s, "w1", 2).await;
    assert_eq!(names(&first), ["hot5", "hot0"]);
    assert!(first.iter().all(|j| j.state == "running"
        && j.attempts == 1
        && j.lease_owner.as_deref() == Some("w1")
        && j.started_at.is_some()));
    let rest = claim(s, "w2", 10).await;
    assert_eq!(names(&rest), ["release", "normal", "bg"]);
    assert!(claim(s, "w3", 10).await.is_empty(), "`later` is not due");
    // Claims are not audited.
    assert_eq!(
        s.list_audit(&AuditFilter::default()).await.unwrap().len(),
        1
    );
    chain_verifies(s).await;
}

async fn batch_claim_takes_one_job_per_group(db: TestDb) {
    let s = &db.store;
    let p = policy();
    s.enqueue_jobs(
        &[
            grouped("deploy:production", 50, "prod-1"),
            grouped("deploy:production", 40, "prod-2"),
            grouped("deploy:staging", 30, "staging-1"),
            job(JobClass::Release, 20, "free-1"),
            grouped("deploy:production", 10, "prod-3"),
            grouped("deploy:staging", 5, "staging-2"),
            job(JobClass::Release, 0, "free-2"),
        ],
        &p,
        ACTOR,
    )
    .await
    .unwrap();
    let first = claim(s, "w1", 10).await;
    assert_eq!(names(&first), ["prod-1", "staging-1", "free-1", "free-2"]);
    // Both groups are busy now: another batch takes nothing of them.
    assert!(claim(s, "w2", 10).await.is_empty());
    let prod1 = first[0].id;
    s.complete_jobs("w1", &[(prod1, json!({"ok": true}))], ACTOR)
        .await
        .unwrap();
    assert_eq!(names(&claim(s, "w2", 10).await), ["prod-2"]);
    let staging1 = first[1].id;
    s.complete_job(staging1, "w1", &json!(null), ACTOR)
        .await
        .unwrap();
    assert_eq!(names(&claim(s, "w3", 10).await), ["staging-2"]);
    let running = s
        .list_jobs(&JobFilter {
            state: Some(JobState::Running),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let mut groups: Vec<_> = running
        .iter()
        .filter_map(|j| j.concurrency_group.clone())
        .collect();
    groups.sort();
    assert_eq!(groups, ["deploy:production", "deploy:staging"]);
}

async fn superseding_inside_a_batch(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let old = s
        .enqueue_job(&keyed("checks:main", "old"), &p, ACTOR)
        .await
        .unwrap();
    let out = s
        .enqueue_jobs(
            &[
                keyed("checks:main", "main-1"),
                keyed("checks:dev", "dev-1"),
                job(JobClass::Normal, 0, "plain"),
                keyed("checks:main", "main-2"),
                keyed("checks:main", "main-3"),
            ],
            &p,
            ACTOR,
        )
        .await
        .unwrap();
    // As if enqueued one after the other.
    assert_eq!(out[0].superseded, [old.id]);
    assert_eq!(out[1].superseded, Vec::<i64>::new());
    assert_eq!(out[3].superseded, [out[0].id]);
    assert_eq!(out[4].superseded, [out[3].id]);
    for (id, state) in [
        (old.id, "cancelled"),
        (out[0].id, "cancelled"),
        (out[1].id, "queued"),
        (out[2].id, "queued"),
        (out[3].id, "cancelled"),
        (out[4].id, "queued"),
    ] {
        let j = s.get_job(id).await.unwrap().unwrap();
        assert_eq!(j.state, state, "job {id}");
        if state == "cancelled" {
            assert_eq!(j.last_error.as_deref(), Some("superseded by a newer job"));
            assert!(j.finished_at.is_some());
        }
    }
    let event = events(s, "job.enqueue").await.pop().unwrap();
    assert_eq!(event.subject, "jobs");
    let mut superseded = vec![old.id, out[0].id, out[3].id];
    superseded.sort_unstable();
    assert_eq!(event.payload["superseded"], json!(superseded));
    let claimed = claim(s, "w", 10).await;
    let mut got = names(&claimed);
    got.sort_unstable();
    assert_eq!(got, ["dev-1", "main-3", "plain"]);
    chain_verifies(s).await;
}

async fn lease_of_a_batch_claimed_job_expires(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let jobs: Vec<EnqueueJob> = ["a", "b", "c"]
        .iter()
        .map(|n| EnqueueJob {
            max_attempts: 2,
            ..job(JobClass::Normal, 0, n)
        })
        .collect();
    s.enqueue_jobs(&jobs, &p, ACTOR).await.unwrap();
    let now = Utc::now();
    let claimed = s
        .claim_jobs("w1", now, Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(names(&claimed), ["a", "b", "c"]);
    // `a` is extended, `b` completes, `c`'s worker forgets it: only `c` expires.
    assert!(
        s.heartbeat_job(claimed[0].id, "w1", now + chrono::Duration::seconds(60))
            .await
            .unwrap()
    );
    s.complete_jobs("w1", &[(claimed[1].id, json!(1))], ACTOR)
        .await
        .unwrap();
    let later = now + chrono::Duration::seconds(6);
    let reclaimed = s.reclaim_expired_jobs(later, &p, ACTOR).await.unwrap();
    assert_eq!(names(&reclaimed), ["c"]);
    assert_eq!(
        (reclaimed[0].state.as_str(), reclaimed[0].attempts),
        ("queued", 1)
    );
    // The late completion of the reclaimed job changes nothing and records nothing.
    let before = s.list_audit(&AuditFilter::default()).await.unwrap().len();
    let late = s
        .complete_jobs("w1", &[(claimed[2].id, json!("late"))], ACTOR)
        .await
        .unwrap();
    assert!(late.is_empty());
    assert_eq!(
        s.list_audit(&AuditFilter::default()).await.unwrap().len(),
        before
    );
    let again = s
        .claim_jobs("w2", later, Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(names(&again), ["c"]);
    assert_eq!(again[0].attempts, 2);
    let failed = s
        .reclaim_expired_jobs(later + chrono::Duration::seconds(60), &p, ACTOR)
        .await
        .unwrap();
    // `a`'s lease ran out as well by then: its first attempt is retried, `c` failed for good.
    let mut states: Vec<(String, String)> = failed
        .iter()
        .map(|j| {
            (
                j.payload["name"].as_str().unwrap().to_owned(),
                j.state.clone(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [("a".into(), "queued".into()), ("c".into(), "failed".into())]
    );
    chain_verifies(s).await;
}

async fn batch_complete_is_one_event_and_skips_lost_jobs(db: TestDb) {
    let s = &db.store;
    let p = policy();
    let batch: Vec<EnqueueJob> = (0..5)
        .map(|i| job(JobClass::Normal, 0, &format!("j{i}")))
        .collect();
    s.enqueue_jobs(&batch, &p, ACTOR).await.unwrap();
    let mine = claim(s, "w1", 3).await;
    let theirs = claim(s, "w2", 2).await;
    assert_eq!(names(&mine), ["j0", "j1", "j2"]);
    let mut results: Vec<(i64, serde_json::Value)> = mine
        .iter()
        .map(|j| (j.id, json!({"n": j.id, "text": "a \"quoted\" line\n"})))
        .collect();
    // A job of another worker and a repeated id: the first is skipped, the second counted once.
    results.push((theirs[0].id, json!("not mine")));
    results.push((mine[0].id, json!("again")));
    let done = s.complete_jobs("w1", &results, ACTOR).await.unwrap();
    assert_eq!(names(&done), ["j0", "j1", "j2"]);
    for j in &done {
        assert_eq!(j.state, "succeeded");
        assert_eq!(j.lease_owner, None);
        assert!(j.finished_at.is_some());
        assert_eq!(
            j.result,
            Some(json!({"n": j.id, "text": "a \"quoted\" line\n"}))
        );
    }
    assert_eq!(
        s.get_job(theirs[0].id).await.unwrap().unwrap().state,
        "running"
    );
    let complete = events(s, "job.complete").await;
    assert_eq!(complete.len(), 1);
    assert_eq!(complete[0].subject, "jobs");
    assert_eq!(
        complete[0].payload["ids"],
        json!(mine.iter().map(|j| j.id).collect::<Vec<_>>())
    );
    assert_eq!(complete[0].payload["worker"], json!("w1"));
    // One job completed: the per-job event, as `complete_job` writes it.
    let one = s
        .complete_jobs("w2", &[(theirs[1].id, json!(null))], ACTOR)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let last = events(s, "job.complete").await.pop().unwrap();
    assert_eq!(last.subject, format!("job/{}", theirs[1].id));
    assert_eq!(last.payload["worker"], json!("w2"));
    // The single-job API reports what went wrong.
    let err = s
        .complete_job(theirs[0].id, "w1", &json!(null), ACTOR)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what } if what.contains("not running under worker w1")),
        "{err:?}"
    );
    assert!(s.complete_jobs("w1", &[], ACTOR).await.unwrap().is_empty());
    chain_verifies(s).await;
}

async fn parallel_batch_claims_run_each_job_once(db: TestDb) {
    let p = policy();
    const JOBS: usize = 240;
    let batch: Vec<EnqueueJob> = (0..JOBS)
        .map(|i| {
            let name = format!("j{i}");
            match i % 3 {
                0 => grouped(&format!("g{}", i % 4), 0, &name),
                _ => job(JobClass::ALL[i % 4], (i % 7) as i64, &name),
            }
        })
        .collect();
    db.store.enqueue_jobs(&batch, &p, ACTOR).await.unwrap();
    // Four claimers on separate connection pools (as separate processes would be).
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = open(&db.raw.url()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let mut ran = Vec::new();
            let mut empty = 0;
            while empty < 50 {
                let jobs = store
                    .claim_jobs(&name, Utc::now(), Duration::from_secs(60), 7)
                    .await
                    .unwrap();
                let mut groups: Vec<&str> = jobs
                    .iter()
                    .filter_map(|j| j.concurrency_group.as_deref())
                    .collect();
                let n = groups.len();
                groups.sort_unstable();
                groups.dedup();
                assert_eq!(groups.len(), n, "two jobs of one group in a batch");
                if jobs.is_empty() {
                    empty += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                empty = 0;
                let results: Vec<(i64, serde_json::Value)> =
                    jobs.iter().map(|j| (j.id, json!(null))).collect();
                let done = store.complete_jobs(&name, &results, ACTOR).await.unwrap();
                assert_eq!(done.len(), jobs.len());
                ran.extend(jobs.iter().map(|j| j.id));
            }
            store.close().await;
            ran
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a job was claimed twice");
    assert_eq!(n, JOBS);
    chain_verifies(&db.store).await;
}
