//! Deployments asked for over the API are queued, not run inside the request: a `deploy`
//! pipeline job (`cutover_queue::pipeline`), so that whichever replica's worker claims it runs it
//! once (the queue's lease), one at a time per environment (its concurrency group), as a child
//! `cutover deploy` process with the same records as one started by hand.

use std::sync::Arc;

use cutover_queue::pipeline::{
    self, DEPLOY_KIND, PIPELINE_KINDS, PipelineHandler, PipelinePayload,
};
use cutover_queue::{Registry, ShutdownListener, WorkerConfig, WorkerStats};
use cutover_store::{EnqueueJob, JobClass, Store};

/// The `deploy` job of `version` to `environment` asked for by `actor`: a hotfix release goes in
/// the hotfix class, others in the release class.
#[must_use]
pub fn deploy_job(environment: &str, version: &str, actor: &str, hotfix: bool) -> EnqueueJob {
    let class = if hotfix {
        JobClass::Hotfix
    } else {
        JobClass::Release
    };
    pipeline::deploy_job(
        DEPLOY_KIND,
        class,
        &PipelinePayload {
            environment: environment.to_owned(),
            from: None,
            version: Some(version.to_owned()),
            commit: None,
            actor: actor.to_owned(),
            message: Some(format!("asked for over the API by {actor}")),
        },
    )
}

/// The job kinds `cutover serve`'s workers run: the built-in ones (`check`) and the pipeline
/// kinds (`ship`, `deploy`, `promote`, `rollback`) through `pipeline`.
#[must_use]
pub fn registry(pipeline: PipelineHandler) -> Registry {
    let mut registry = Registry::builtin();
    let handler = Arc::new(pipeline);
    for kind in PIPELINE_KINDS {
        registry.register(kind, handler.clone());
    }
    registry
}

/// Runs `count` queue workers named `name:i` (unique among the replicas sharing the database)
/// with `registry` until `shutdown` triggers; returns what each did.
pub async fn run_workers(
    store: Arc<dyn Store>,
    registry: Registry,
    name: String,
    count: usize,
    shutdown: ShutdownListener,
) -> Vec<WorkerStats> {
    let config = WorkerConfig::new(name, "cutover-serve");
    cutover_queue::run_workers(store, registry, config, count, shutdown).await
}
