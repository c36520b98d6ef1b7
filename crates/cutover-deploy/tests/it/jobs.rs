//! A queue job run again (its worker died) adopts the deployment its earlier attempt created:
//! one deployment per job, whatever state the earlier attempt left it in.

use std::time::Duration;

use cutover_deploy::lock::{EnvLock, holder};
use cutover_deploy::{DeployOutcome, DeployRequest, Engine};
use cutover_store::{AuditFilter, DeploymentFilter, EnqueueJob, JobClass, QueuePolicy, Store};
use serde_json::json;

use crate::world::{World, WorldSpec, get_version};
use crate::{live, rt};

/// A `deploy` job of `version` in the store's queue, as the API enqueues it; its id.
async fn enqueue(store: &dyn Store, version: &str) -> i64 {
    let job = EnqueueJob::new(
        JobClass::Release,
        "deploy",
        json!({ "environment": "staging", "version": version, "actor": "tester" }),
    );
    store
        .enqueue_job(&job, &QueuePolicy::default(), "tester")
        .await
        .unwrap()
        .id
}

fn request(version: &str) -> DeployRequest {
    DeployRequest {
        environment: "staging".into(),
        version: version.into(),
        trigger: "cli".into(),
        reverts: None,
        wait_for_lock: true,
        message: None,
    }
}

async fn for_job(engine: &Engine, version: &str, job: i64) -> DeployOutcome {
    engine
        .deploy_for_job(request(version), job, &|p| {
            println!("    [{} {}] {}", p.deployment, p.state, p.message);
        })
        .await
        .unwrap()
}

/// The deployments whose `deployment.create` event names `job`.
async fn created_for(store: &dyn Store, job: i64) -> Vec<String> {
    store
        .list_audit(&AuditFilter {
            action: Some("deployment.create".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.payload["job"] == job)
        .map(|e| e.subject)
        .collect()
}

async fn transitions_to(store: &dyn Store, deployment: i64, to: &str) -> usize {
    store
        .list_audit(&AuditFilter {
            action: Some("deployment.transition".into()),
            subject: Some(format!("deployment:{deployment}")),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|e| e.payload["to"] == to)
        .count()
}

/// Starts job `job`'s deployment of `version` and drops it (as a killed process stops) once it
/// verifies; returns the deployment left unfinished.
async fn cut_off(w: &World, version: &str, job: i64) -> i64 {
    tokio::time::timeout(Duration::from_secs(30), async {
        let attempt = for_job(&w.engine, version, job);
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                out = &mut attempt => panic!("finished before it could be cut off: {out:?}"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    let d = w.store.list_deployments(&DeploymentFilter::default()).await.unwrap();
                    if let Some(d) = d.first().filter(|d| d.release_version == version && d.state == "verifying") {
                        return d.id;
                    }
                }
            }
        }
    })
    .await
    .expect("the deployment reaches `verifying` within 30 s")
}

pub fn a_job_run_again_adopts_the_deployment_of_its_earlier_attempt() {
    rt().block_on(async {
        let w = World::start(WorldSpec::default()).await;
        w.release("1.0.0", &[]).await;
        w.release("1.1.0", &[]).await;
        w.release("1.2.0", &["--wrong-version", "9.9.9"]).await;
        w.release("1.3.0", &[]).await;
        live(&w.deploy("1.0.0").await.unwrap());

        // The first attempt of job A dies once its deployment verifies (its future is dropped,
        // as a killed process stops).
        let job_a = enqueue(&*w.store, "1.1.0").await;
        let cut = cut_off(&w, "1.1.0", job_a).await;
        assert_eq!(
            created_for(&*w.store, job_a).await,
            [format!("deployment:{cut}")]
        );

        // A resume holds the environment's lock: the job's second attempt waits for it and
        // starts nothing meanwhile.
        let resumer = EnvLock::acquire(
            w.store.clone(),
            "staging",
            &holder("a resume in this test"),
            "resuming",
            "tester",
            true,
        )
        .await
        .unwrap();
        let out = {
            let second = for_job(&w.engine, "1.1.0", job_a);
            tokio::pin!(second);
            let waited = tokio::time::timeout(Duration::from_millis(1500), &mut second).await;
            assert!(
                waited.is_err(),
                "the second attempt did not wait: {waited:?}"
            );
            let cut_now = w.store.get_deployment(cut).await.unwrap().unwrap();
            assert_eq!(cut_now.state, "verifying");
            assert_eq!(created_for(&*w.store, job_a).await.len(), 1);

            // The lock is free again: the second attempt and a resume race for the deployment; one
            // drives it, the other reads it finished.
            resumer.release().await.unwrap();
            let (resumed, out) = tokio::join!(
                w.engine.resume_all(&|_| {}),
                tokio::time::timeout(Duration::from_secs(60), &mut second)
            );
            let resumed = resumed.unwrap();
            assert!(
                resumed.is_empty() || resumed == [DeployOutcome::Live { deployment: cut }],
                "{resumed:?}"
            );
            out.expect("the second attempt ends within 60 s")
        };
        assert_eq!(out, DeployOutcome::Live { deployment: cut });
        assert_eq!(get_version(w.listen(0)).await, "1.1.0");
        assert_eq!(transitions_to(&*w.store, cut, "live").await, 1);

        // A third attempt (the job's completion was lost) only reads the outcome.
        let before = w
            .store
            .list_deployments(&DeploymentFilter::default())
            .await
            .unwrap();
        assert_eq!(
            for_job(&w.engine, "1.1.0", job_a).await,
            DeployOutcome::Live { deployment: cut }
        );

        // Nobody resumes job C's cut-off deployment: its second attempt does.
        let job_c = enqueue(&*w.store, "1.3.0").await;
        let cut_c = cut_off(&w, "1.3.0", job_c).await;
        assert_eq!(
            for_job(&w.engine, "1.3.0", job_c).await,
            DeployOutcome::Live { deployment: cut_c }
        );
        assert_eq!(get_version(w.listen(0)).await, "1.3.0");
        assert_eq!(transitions_to(&*w.store, cut_c, "live").await, 1);
        assert_eq!(
            created_for(&*w.store, job_c).await,
            [format!("deployment:{cut_c}")]
        );

        // A job whose deployment was rolled back fails again with the same outcome, and
        // nothing is deployed anew.
        let job_b = enqueue(&*w.store, "1.2.0").await;
        let first = for_job(&w.engine, "1.2.0", job_b).await;
        let DeployOutcome::RolledBack { deployment, reason } = &first else {
            panic!("expected a rollback: {first:?}")
        };
        assert!(reason.contains("9.9.9"), "{reason}");
        assert_eq!(for_job(&w.engine, "1.2.0", job_b).await, first);
        assert_eq!(
            created_for(&*w.store, job_b).await,
            [format!("deployment:{deployment}")]
        );
        let after = w
            .store
            .list_deployments(&DeploymentFilter::default())
            .await
            .unwrap();
        assert_eq!(after.len(), before.len() + 2, "{after:?}");
        assert_eq!(get_version(w.listen(0)).await, "1.3.0");
        assert_eq!(created_for(&*w.store, job_a).await.len(), 1);
        assert_eq!(w.store.verify_audit().await.unwrap().first_broken, None);
        w.stop().await;
    });
}
