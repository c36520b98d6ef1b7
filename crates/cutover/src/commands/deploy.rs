//! `cutover deploy` and `cutover rollback`: the deployment engine driven from the command line,
//! with the agent protocol served on `.cutover/control.sock` (and the local agent kept alive) for
//! as long as the command runs.

use std::sync::Arc;

use cutover_deploy::{DeployError, DeployOutcome, DeployRequest, Engine, Progress, ProofSigner};
use cutover_store::{DeploymentFilter, Store};
use serde_json::json;

use crate::cli::{DeployArgs, RollbackArgs};
use crate::context::{Ctx, STATE_DIR, store_error};
use crate::error::{CliError, Result};
use crate::local::LocalControl;

pub fn deploy(ctx: &Ctx<'_>, args: &DeployArgs) -> Result<()> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    // A queue job run again after its worker died: its earlier attempt's deployment is taken
    // over, not checked and deployed again (its gates were open when it was created).
    let adopted = match args.job {
        Some(job) => ctx
            .block_on(cutover_deploy::pipeline::job_deployment(&*store, job))
            .map_err(store_error)?,
        None => None,
    };
    // Bad input is refused before anything starts or is written.
    let target = match &args.env {
        Some(env) => {
            check_environment(&config, env)?;
            let version = match &args.version {
                Some(v) => v.clone(),
                None => newest_release(ctx, &*store)?,
            };
            if !args.resume && adopted.is_none() {
                check_release(ctx, &*store, &version)?;
            }
            Some((env.clone(), version))
        }
        None => None,
    };
    let unfinished = ctx
        .block_on(store.list_deployments(&DeploymentFilter {
            unfinished_only: true,
            ..DeploymentFilter::default()
        }))
        .map_err(store_error)?;
    let mut envs: Vec<&str> = unfinished.iter().map(|d| d.environment.as_str()).collect();
    if let Some((env, _)) = &target {
        envs.push(env);
    }
    // The environment's gates (soak, approvals, freeze, checks, policies) must be open before
    // anything starts.
    if let Some((env, version)) = target
        .as_ref()
        .filter(|_| !args.resume && adopted.is_none())
    {
        ctx.block_on(super::ship::gates(
            ctx,
            &*store,
            &config,
            env,
            version,
            &ctx.actor(),
            args.override_freeze.as_deref(),
        ))?;
    }
    let session = Session::open(ctx, store.clone(), config, &envs)?;
    let render = |p: Progress| render_progress(ctx, &p);
    let result = ctx.block_on(async {
        if !unfinished.is_empty() {
            let ids: Vec<String> = unfinished.iter().map(|d| d.id.to_string()).collect();
            ctx.ui.status(
                "resuming",
                format!(
                    "{} unfinished deployment{} ({})",
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    ids.join(", ")
                ),
            );
        }
        let resumed = session.engine.resume_all(&render).await;
        let resumed = match resumed {
            Ok(r) => r,
            Err(e) => return Err(deploy_error(e)),
        };
        let Some((env, version)) = target.filter(|_| !args.resume) else {
            return Ok(Done::Resumed(resumed));
        };
        let req = DeployRequest {
            environment: env.clone(),
            version: version.clone(),
            trigger: "cli".to_owned(),
            reverts: None,
            wait_for_lock: args.wait,
            message: args.message.clone(),
        };
        let outcome = match (args.job, &adopted) {
            (Some(job), Some(dep)) => {
                ctx.ui.status(
                    "adopting",
                    format!(
                        "deployment {} ({} to {}), created by an earlier attempt of job {job}",
                        dep.id, dep.release_version, dep.environment
                    ),
                );
                session.engine.deploy_for_job(req, job, &render).await
            }
            (Some(job), None) => {
                ctx.ui
                    .status("deploying", format!("{version} to {env} for job {job}"));
                session.engine.deploy_for_job(req, job, &render).await
            }
            (None, _) => {
                ctx.ui.status("deploying", format!("{version} to {env}"));
                session.engine.deploy(req, &render).await
            }
        };
        match outcome {
            Ok(outcome) => {
                // An adopted deployment may be of another version (a job without one deploys
                // the newest release, which may have changed since).
                let version = if args.job.is_some() {
                    deployed_version(&*store, &outcome).await
                } else {
                    version
                };
                Ok(Done::One {
                    outcome,
                    environment: env,
                    version,
                })
            }
            Err(e) => Err(deploy_error(e)),
        }
    });
    session.close(ctx);
    finish(ctx, &*store, result?)
}

pub fn rollback(ctx: &Ctx<'_>, args: &RollbackArgs) -> Result<()> {
    let config = ctx.config()?;
    check_environment(&config, &args.env)?;
    if args.restore_recovery_point && !args.yes {
        return Err(CliError::usage(
            "--restore-recovery-point replaces the application database with the recovery point taken before the reverted release: data written since is lost",
        )
        .with_hint("add --yes to confirm"));
    }
    let store = ctx.store()?;
    check_rollback_target(ctx, &*store, &args.env, args.to.as_deref())?;
    tracing::debug!("rollback: configuration, store and target checked");
    let session = Session::open(ctx, store.clone(), config, &[args.env.as_str()])?;
    tracing::debug!("rollback: control plane ready");
    let render = |p: Progress| render_progress(ctx, &p);
    let result = ctx.block_on(async {
        let outcome = if args.restore_recovery_point {
            ctx.ui.warn("restoring the application database's recovery point: data written since it was taken is lost");
            session
                .engine
                .rollback_restoring(&args.env, args.to.as_deref(), &render)
                .await
        } else {
            session
                .engine
                .rollback(&args.env, args.to.as_deref(), &render)
                .await
        }
        .map_err(deploy_error)?;
        let version = deployed_version(&*store, &outcome).await;
        Ok::<_, CliError>(Done::One {
            outcome,
            environment: args.env.clone(),
            version,
        })
    });
    session.close(ctx);
    tracing::debug!("rollback: control plane closed");
    finish(ctx, &*store, result?)
}

/// What a command did.
enum Done {
    Resumed(Vec<DeployOutcome>),
    One {
        outcome: DeployOutcome,
        environment: String,
        version: String,
    },
}

/// The engine with the control plane it talks through.
pub(super) struct Session {
    control: Option<LocalControl>,
    pub(super) engine: Engine,
}

impl Session {
    /// The engine for deployments to `envs`: the control plane waits for (only) their hosts'
    /// agents, and starts the local agent when one of them is `local`.
    pub(super) fn open(
        ctx: &Ctx<'_>,
        store: Arc<dyn Store>,
        config: cutover_config::Config,
        envs: &[&str],
    ) -> Result<Self> {
        let mut hosts: Vec<String> = envs
            .iter()
            .filter_map(|e| config.environments.get(*e))
            .flat_map(super::env_host_names)
            .collect();
        hosts.sort();
        hosts.dedup();
        let root = ctx.project_root()?;
        let key = cutover_proof::load_or_create(&root.join(STATE_DIR)).map_err(|e| {
            let hint = e.hint();
            CliError::internal("cannot load the proof-of-delivery signing key")
                .with_cause(e)
                .with_hint_opt(hint)
        })?;
        let control = ctx.block_on(LocalControl::start(ctx, store.clone(), &hosts))?;
        let engine = Engine::with_signer(
            store,
            control.state().clone(),
            config,
            root,
            ctx.actor(),
            Arc::new(KeySigner(key)),
        );
        Ok(Self {
            control: Some(control),
            engine,
        })
    }

    pub(super) fn close(mut self, ctx: &Ctx<'_>) {
        if let Some(control) = self.control.take() {
            ctx.block_on(control.stop());
        }
    }
}

/// The project's ed25519 key as the engine's signer.
struct KeySigner(cutover_proof::SigningKey);

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySigner")
            .field("keyid", &self.0.keyid())
            .finish()
    }
}

impl ProofSigner for KeySigner {
    fn keyid(&self) -> String {
        self.0.keyid()
    }
    fn statement(
        &self,
        artifact_name: &str,
        artifact_sha256: &str,
        predicate: serde_json::Value,
    ) -> serde_json::Value {
        cutover_proof::statement(artifact_name, artifact_sha256, predicate)
    }
    fn sign(&self, statement: &serde_json::Value) -> serde_json::Value {
        cutover_proof::sign(&self.0, statement)
    }
}

pub(super) fn render_progress(ctx: &Ctx<'_>, p: &Progress) {
    ctx.ui.status(
        &p.state,
        format!("deployment {}: {}", p.deployment, p.message),
    );
}

pub(super) fn check_environment(config: &cutover_config::Config, env: &str) -> Result<()> {
    if config.environments.contains_key(env) {
        return Ok(());
    }
    let known: Vec<&str> = config.environments.keys().map(String::as_str).collect();
    Err(
        CliError::usage(format!("unknown environment `{env}`")).with_hint(if known.is_empty() {
            "cutover.toml defines no environments; add one, e.g. `[environments.staging]` with `hosts = [\"local\"]` and `listen = \"127.0.0.1:8080\"`".to_owned()
        } else {
            format!("the environments are: {}", known.join(", "))
        }),
    )
}

fn newest_release(ctx: &Ctx<'_>, store: &dyn Store) -> Result<String> {
    let releases = ctx.block_on(store.list_releases()).map_err(store_error)?;
    releases.last().map(|r| r.version.clone()).ok_or_else(|| {
        CliError::usage("no release is recorded yet, so there is nothing to deploy")
            .with_hint("`cutover release` records one (with its artifact, from [build])")
    })
}

fn check_release(ctx: &Ctx<'_>, store: &dyn Store, version: &str) -> Result<()> {
    let release = ctx
        .block_on(store.get_release(version))
        .map_err(store_error)?;
    let Some(release) = release else {
        let known: Vec<String> = ctx
            .block_on(store.list_releases())
            .map_err(store_error)?
            .into_iter()
            .rev()
            .take(5)
            .map(|r| r.version)
            .collect();
        return Err(
            CliError::usage(format!("no release `{version}` is recorded")).with_hint(
                if known.is_empty() {
                    "`cutover release` records one".to_owned()
                } else {
                    format!("the newest releases are: {}", known.join(", "))
                },
            ),
        );
    };
    let Some(digest) = release.artifact_digest else {
        return Err(CliError::usage(format!(
            "release `{version}` has no artifact, so it cannot be deployed"
        ))
        .with_hint("add a [build] section to cutover.toml and record a new release"));
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
    let path = ctx
        .project_root()?
        .join(STATE_DIR)
        .join("artifacts")
        .join("sha256")
        .join(hex);
    if !path.exists() {
        return Err(CliError::usage(format!(
            "the artifact of release `{version}` is missing: {} does not exist",
            path.display()
        ))
        .with_hint("record the release again on this machine, or restore .cutover/artifacts"));
    }
    Ok(())
}

/// A rollback needs something live, and a target that was live in the environment.
fn check_rollback_target(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    env: &str,
    to: Option<&str>,
) -> Result<()> {
    let deployments = ctx
        .block_on(store.list_deployments(&DeploymentFilter {
            environment: Some(env.to_owned()),
            ..DeploymentFilter::default()
        }))
        .map_err(store_error)?;
    let was_live = |d: &&cutover_store::Deployment| d.state == "live" && d.finished_at.is_some();
    if !deployments.iter().any(|d| was_live(&d)) {
        return Err(CliError::usage(format!(
            "nothing is live in environment `{env}`, so there is nothing to roll back"
        ))
        .with_hint(format!("`cutover deploy {env}` deploys a release first")));
    }
    if let Some(to) = to {
        if ctx
            .block_on(store.get_release(to))
            .map_err(store_error)?
            .is_none()
        {
            return Err(CliError::usage(format!("no release `{to}` is recorded")));
        }
        if !deployments
            .iter()
            .any(|d| was_live(&d) && d.release_version == to)
        {
            return Err(CliError::usage(format!(
                "release `{to}` was never live in environment `{env}`"
            ))
            .with_hint(format!(
                "`cutover history {env}` lists the releases that were live there"
            )));
        }
    }
    Ok(())
}

async fn deployed_version(store: &dyn Store, outcome: &DeployOutcome) -> String {
    let id = outcome_id(outcome);
    store
        .get_deployment(id)
        .await
        .ok()
        .flatten()
        .map(|d| d.release_version)
        .unwrap_or_default()
}

fn outcome_id(outcome: &DeployOutcome) -> i64 {
    match outcome {
        DeployOutcome::Live { deployment }
        | DeployOutcome::RolledBack { deployment, .. }
        | DeployOutcome::Failed { deployment, .. } => *deployment,
    }
}

pub(super) fn deploy_error(e: DeployError) -> CliError {
    let hint = e.hint();
    let err = if e.is_user_error() {
        CliError::usage(e.to_string())
    } else {
        CliError::failed(e.to_string())
    };
    err.with_hint_opt(hint)
}

fn finish(ctx: &Ctx<'_>, store: &dyn Store, done: Done) -> Result<()> {
    match done {
        Done::Resumed(outcomes) => {
            let mut docs = Vec::new();
            let mut failed = 0;
            for o in &outcomes {
                let d = ctx
                    .block_on(store.get_deployment(outcome_id(o)))
                    .map_err(store_error)?;
                let (environment, version) = d
                    .map(|d| (d.environment, d.release_version))
                    .unwrap_or_default();
                let (state, reason) = state_reason(o);
                if state != "live" {
                    failed += 1;
                }
                docs.push(json!({ "deployment": outcome_id(o), "state": state,
                    "environment": environment, "version": version, "reason": reason }));
                ctx.ui.status(
                    state,
                    format!(
                        "deployment {} ({version} to {environment}){}",
                        outcome_id(o),
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                );
            }
            if outcomes.is_empty() {
                ctx.ui
                    .status("resumed", "nothing: no deployment was unfinished");
            }
            let doc = json!({ "resumed": docs });
            if failed > 0 {
                return Err(CliError::failed(format!(
                    "{failed} of the resumed deployments did not end live"
                ))
                .with_json(doc));
            }
            if ctx.global.json {
                ctx.ui.print_json(&doc);
            }
            Ok(())
        }
        Done::One {
            outcome,
            environment,
            version,
        } => {
            let (state, reason) = state_reason(&outcome);
            let id = outcome_id(&outcome);
            let doc = json!({ "deployment": id, "state": state, "environment": environment,
                "version": version, "reason": reason });
            match outcome {
                DeployOutcome::Live { .. } => {
                    if ctx.global.json {
                        ctx.ui.print_json(&doc);
                    } else {
                        ctx.ui.println(format!(
                            "deployment {id}: {version} is live in {environment}"
                        ));
                    }
                    Ok(())
                }
                DeployOutcome::RolledBack { reason, .. } => Err(CliError::failed(format!(
                    "deployment {id} of {version} to {environment} was rolled back: {reason}"
                ))
                .with_json(doc)),
                DeployOutcome::Failed { reason, .. } => Err(CliError::failed(format!(
                    "deployment {id} of {version} to {environment} failed: {reason}"
                ))
                .with_json(doc)),
            }
        }
    }
}

fn state_reason(o: &DeployOutcome) -> (&'static str, Option<String>) {
    match o {
        DeployOutcome::Live { .. } => ("live", None),
        DeployOutcome::RolledBack { reason, .. } => ("rolled_back", Some(reason.clone())),
        DeployOutcome::Failed { reason, .. } => ("failed", Some(reason.clone())),
    }
}
