//! Deploying: validation, the deployment record, and driving a strategy to its end.
//!
//! Submodules: `steps` (the recorded steps every strategy is made of), `strategy`
//! (blue-green, recreate, rolling, canary) and `recover` (automatic rollback, the rollback
//! command, resuming unfinished deployments).

mod recover;
mod steps;
mod strategy;

use recover::*;
pub(crate) use recover::{NOTHING_TO_ROLL_BACK, ROLLED_BACK, resume_all, rollback};
use steps::*;
use strategy::*;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use cutover_agent::Slot;
use cutover_agent::health::Health;
use cutover_agent::protocol::DesiredService;
use cutover_agent::router::Canary as RouterCanary;
use cutover_agent::runtime::ProcessState;
use cutover_config::Strategy;
use cutover_core::deploy::{
    BatchSize, State, Thresholds, Verdict, Window, analyze, canary_weights, may_continue,
    rolling_batches,
};
use cutover_store::{
    Audit, Change, Deployment, DeploymentFilter, NewDeployment, NewDeploymentStep, NewProof,
    Release,
};
use serde_json::{Value, json};

use crate::desired::start_timeout;
use crate::lock::{EnvLock, holder};
use crate::observe::{
    Check, HostView, WaitError, counters, evidence_of, routed, slot_healthy, slot_present,
    wait_hosts, window,
};
use crate::proof::{HostEvidence, predicate};
use crate::run::{Edit, HostPlan, Run, Target, current_assignment, strategy_name};
use crate::{DeployError, DeployOutcome, DeployRequest, Engine, Progress};

/// An agent seen this recently is taken as connected (its long poll and its reports touch it).
const CONNECTED_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Why a deployment cannot go on: a failure (roll back) or an error (stop; resume later).
enum Stop {
    Fail(String),
    Error(Box<DeployError>),
}

impl From<DeployError> for Stop {
    fn from(e: DeployError) -> Self {
        Stop::Error(Box::new(e))
    }
}

/// The routing a host should report: active slot and canary.
type WantRouting = (Option<Slot>, Option<RouterCanary>);

type Flow<T = ()> = Result<T, Stop>;

fn wait_failure(e: WaitError, what: &str) -> Stop {
    match e {
        WaitError::Failed { host, reason } => {
            Stop::Fail(format!("{what} on host {host}: {reason}"))
        }
        WaitError::Timeout { hosts } => Stop::Fail(format!(
            "{what}: {}",
            hosts
                .iter()
                .map(|(h, r)| format!("host {h} did not get there in time ({r})"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        WaitError::Store(e) => Stop::from(DeployError::from(e)),
    }
}

/// Removes the deployment from the engine's active set when dropped.
struct Active<'a>(&'a Engine, i64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.1);
    }
}

fn activate(engine: &Engine, id: i64) -> Option<Active<'_>> {
    let mut set = engine
        .active
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.insert(id).then_some(Active(engine, id))
}

/// The release, checked to have an artifact file; returns it with its hex digest.
async fn release_with_artifact(
    engine: &Engine,
    version: &str,
) -> Result<(Release, String), DeployError> {
    let release = engine
        .store
        .get_release(version)
        .await?
        .ok_or_else(|| DeployError::NoRelease(version.to_owned()))?;
    let digest = release
        .artifact_digest
        .as_deref()
        .ok_or_else(|| DeployError::NoArtifact(version.to_owned()))?;
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest).to_owned();
    let path = engine.artifact_path(&hex);
    if !path.is_file() {
        return Err(DeployError::ArtifactMissing {
            version: version.to_owned(),
            path: path.display().to_string(),
        });
    }
    Ok((release, hex))
}

/// Checks what a deployment needs and changes nothing: the environment, the release and its
/// artifact, the hosts' agents, and addresses unchanged since what runs (unless `recreate`).
async fn validate(
    engine: &Engine,
    environment: &str,
    version: &str,
) -> Result<(Target, Release, String), DeployError> {
    let target = Target::resolve(engine, environment)?;
    let (release, digest) = release_with_artifact(engine, version).await?;
    let mut stale = Vec::new();
    for (spec, addr) in &target.hosts {
        let host = engine.store.get_host(&spec.name).await?;
        if let Some(seen) = host.as_ref().and_then(|h| h.last_seen)
            && Utc::now() - seen > CONNECTED_WITHIN
        {
            stale.push(format!(
                "{} (last seen {})",
                spec.name,
                cutover_core::audit::format_at(&seen)
            ));
        }
        match host {
            None => {
                return Err(DeployError::UnknownHost {
                    environment: environment.to_owned(),
                    host: spec.name.clone(),
                });
            }
            Some(h) if h.last_seen.is_none() => {
                return Err(DeployError::HostNeverSeen {
                    environment: environment.to_owned(),
                    host: spec.name.clone(),
                });
            }
            Some(_) => {}
        }
        if matches!(target.env.strategy, Strategy::Recreate) {
            continue;
        }
        let (_, a) = current_assignment(engine, &spec.name).await?;
        let Some(live) = a.services.get(&target.service_name) else {
            continue;
        };
        if live.slots.is_empty() {
            continue;
        }
        let changed = |what: &str, from: String, to: String| DeployError::AddressChanged {
            environment: environment.to_owned(),
            host: spec.name.clone(),
            what: what.to_owned(),
            from,
            to,
        };
        if live.listen != addr.listen {
            return Err(changed(
                "listen address",
                live.listen.to_string(),
                addr.listen.to_string(),
            ));
        }
        for slot in Slot::ALL {
            let (old, new) = (live.ports.get(&slot), addr.ports.get(&slot));
            if old.is_some() && old != new {
                let show = |p: Option<&u16>| p.map_or("none".to_owned(), u16::to_string);
                return Err(changed(&format!("{slot} slot port"), show(old), show(new)));
            }
        }
    }
    if stale.len() == target.hosts.len() {
        return Err(DeployError::NotConnected {
            environment: environment.to_owned(),
            hosts: stale.join(", "),
        });
    }
    Ok((target, release, digest))
}

async fn insert_deployment(
    engine: &Engine,
    target: &Target,
    version: &str,
    trigger: &str,
    reverts: Option<i64>,
    job: Option<i64>,
) -> Result<Deployment, DeployError> {
    let strategy = strategy_name(&target.env.strategy);
    let mut payload = json!({
        "environment": target.environment,
        "version": version,
        "strategy": strategy,
        "trigger": trigger,
        "reverts": reverts,
    });
    // The explicit link to the queue job it was created for (`crate::pipeline`), in the same
    // transaction as the deployment; absent for deployments no job asked for.
    if let (Some(job), Some(map)) = (job, payload.as_object_mut()) {
        map.insert(crate::pipeline::JOB_FIELD.to_owned(), json!(job));
    }
    let applied = engine
        .store
        .apply(
            &[Change::InsertDeployment(NewDeployment {
                environment: target.environment.clone(),
                release_version: version.to_owned(),
                strategy: strategy.to_owned(),
                state: State::Queued.as_str().to_owned(),
                trigger: trigger.to_owned(),
                actor: engine.actor.clone(),
                reverts,
                created_at: Utc::now(),
            })],
            &Audit::new(
                &engine.actor,
                "deployment.create",
                "deployment:{id}",
                payload,
            ),
        )
        .await?;
    let id = applied.id(0).ok_or_else(|| DeployError::Interrupted {
        id: 0,
        reason: "the store returned no deployment id".into(),
    })?;
    engine
        .store
        .get_deployment(id)
        .await?
        .ok_or_else(|| DeployError::Interrupted {
            id,
            reason: "the new deployment cannot be read back".into(),
        })
}

pub(crate) async fn deploy(
    engine: &Engine,
    req: DeployRequest,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    deploy_linked(engine, req, None, progress).await
}

/// Deploys for queue job `job`, unless an earlier attempt of the job created its deployment:
/// then that one is adopted (see [`crate::pipeline`]).
pub(crate) async fn deploy_for_job(
    engine: &Engine,
    req: DeployRequest,
    job: i64,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    if let Some(dep) = crate::pipeline::job_deployment(&*engine.store, job).await? {
        if let Some(outcome) = crate::pipeline::finished_outcome(&*engine.store, &dep).await? {
            say_adopted(progress, &dep, job);
            return Ok(outcome);
        }
        // Unfinished: whoever holds the lock (the resume at start, or the earlier attempt's
        // process if it still runs) drives it; once it is free the deployment is read again.
        let lock = EnvLock::acquire(
            engine.store.clone(),
            &dep.environment,
            &holder(&format!("resume {}", dep.id)),
            &format!("resume deployment {} for job {job}", dep.id),
            &engine.actor,
            true,
        )
        .await?;
        return adopt(engine, dep.id, job, lock, progress).await;
    }
    deploy_linked(engine, req, Some(job), progress).await
}

fn say_adopted(progress: &dyn Fn(Progress), dep: &Deployment, job: i64) {
    progress(Progress {
        deployment: dep.id,
        state: dep.state.clone(),
        message: format!(
            "job {job} created this deployment ({} to {}) in an earlier attempt: {}",
            dep.release_version,
            dep.environment,
            if dep.finished_at.is_some() {
                "it is finished, no new deployment"
            } else {
                "resuming it"
            }
        ),
        step: None,
    });
}

/// Takes over deployment `id` of `job` with the environment's `lock` held: its outcome when it
/// was finished meanwhile, else it is resumed.
async fn adopt(
    engine: &Engine,
    id: i64,
    job: i64,
    lock: EnvLock,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    let dep = engine
        .store
        .get_deployment(id)
        .await?
        .ok_or_else(|| DeployError::Interrupted {
            id,
            reason: "it disappeared from the store".into(),
        })?;
    say_adopted(progress, &dep, job);
    if let Some(outcome) = crate::pipeline::finished_outcome(&*engine.store, &dep).await? {
        lock.release().await?;
        return Ok(outcome);
    }
    let Some(_active) = activate(engine, id) else {
        lock.release().await?;
        return Err(DeployError::Interrupted {
            id,
            reason: "another task of this process drives it".into(),
        });
    };
    resume_one(engine, dep, lock, progress).await
}

async fn deploy_linked(
    engine: &Engine,
    req: DeployRequest,
    job: Option<i64>,
    progress: &dyn Fn(Progress),
) -> Result<DeployOutcome, DeployError> {
    let (target, release, digest) = validate(engine, &req.environment, &req.version).await?;
    let message = req
        .message
        .clone()
        .unwrap_or_else(|| format!("deploy {} to {}", req.version, req.environment));
    let lock = EnvLock::acquire(
        engine.store.clone(),
        &req.environment,
        &holder(&format!("{} {}", req.trigger, req.environment)),
        &message,
        &engine.actor,
        req.wait_for_lock,
    )
    .await?;
    // Validated again under the lock: another deployment may have changed the hosts meanwhile.
    let (target, release, digest) = if req.wait_for_lock {
        validate(engine, &req.environment, &req.version).await?
    } else {
        (target, release, digest)
    };
    // An earlier attempt of the job whose process still ran may have created it meanwhile.
    if let Some(job) = job
        && let Some(dep) = crate::pipeline::job_deployment(&*engine.store, job).await?
    {
        return adopt(engine, dep.id, job, lock, progress).await;
    }
    let dep = insert_deployment(
        engine,
        &target,
        &req.version,
        &req.trigger,
        req.reverts,
        job,
    )
    .await?;
    let _active = activate(engine, dep.id);
    let run = Run {
        eng: engine,
        progress,
        state: State::Queued,
        dep,
        target,
        release,
        digest,
        plans: Vec::new(),
        open_steps: Vec::new(),
        reports: engine.control.reports(),
        lock,
        smoke: BTreeMap::new(),
        observation: BTreeMap::new(),
        commits: HashMap::new(),
    };
    run.say(format!(
        "deploying {} to {} ({}, {} host(s))",
        run.release.version,
        run.target.environment,
        strategy_name(&run.target.env.strategy),
        run.target.hosts.len()
    ));
    drive(run).await
}

/// Runs the deployment's strategy from its current state, rolls back on failure, and releases the
/// lock once it is finished.
async fn drive(run: Run<'_>) -> Result<DeployOutcome, DeployError> {
    let strategy = run.target.env.strategy.clone();
    drive_as(run, strategy).await
}

/// As [`drive`] with `strategy` instead of the environment's.
async fn drive_as(mut run: Run<'_>, strategy: Strategy) -> Result<DeployOutcome, DeployError> {
    if let Err(stop) = database_before_switch(&mut run).await {
        return finish(run, Err(stop)).await;
    }
    let result = match strategy {
        Strategy::BlueGreen => blue_green(&mut run, false).await,
        Strategy::Recreate => blue_green(&mut run, true).await,
        Strategy::Rolling(r) => {
            let batch = match r.batch {
                cutover_config::Batch::Hosts(n) => BatchSize::Hosts(n),
                cutover_config::Batch::Percent(p) => BatchSize::Percent(p),
            };
            rolling(&mut run, batch, r.max_unavailable).await
        }
        Strategy::Canary(c) => {
            let weights =
                canary_weights(&c.steps).map_err(|e| DeployError::Config(e.to_string()))?;
            let t = Thresholds {
                max_error_rate: c.max_error_rate,
                max_latency_ratio: c.max_latency_ratio,
                min_requests: c.min_requests,
            };
            canary(&mut run, &weights, c.step.get(), t).await
        }
    };
    finish(run, result).await
}

/// Live (then the contract migrations) or rolled back; releases the lock.
async fn finish(mut run: Run<'_>, result: Flow) -> Result<DeployOutcome, DeployError> {
    let outcome = match result {
        Ok(()) => {
            database_after_live(&mut run).await?;
            DeployOutcome::Live {
                deployment: run.dep.id,
            }
        }
        Err(Stop::Fail(reason)) => roll_back(&mut run, &reason).await?,
        Err(Stop::Error(e)) => return Err(*e),
    };
    let Run { lock, .. } = run;
    lock.release().await?;
    Ok(outcome)
}
