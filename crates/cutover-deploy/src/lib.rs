//! Deployment orchestration: a recorded release delivered to an environment's hosts through their
//! agents, verified, proven and reversible.
//!
//! The [`Engine`] validates first and changes nothing on bad input; then it takes the
//! environment's lock, records the deployment and walks it through its states
//! (`cutover_core::deploy::State`). Every transition is one `Store::apply` with its audit event,
//! and the intent of each step is written before the step is taken: actions are desired-state
//! writes (host assignments), so a deployment interrupted anywhere is resumed by
//! [`Engine::resume_all`] from its last intent, or rolled back. Waiting means reading the hosts'
//! reports, woken by `ControlState::reports`.
//!
//! Modules: [`desired`] (configuration → desired state), [`observe`] (reports and waiting),
//! [`lock`] (the environment lease), [`pipeline`] (queue jobs ↔ their deployments),
//! [`smoke`] (smoke commands), [`proof`] (proof-of-delivery
//! predicate and signing), `run` (recording a deployment: transitions, switches), `flow`
//! (validation and driving; `flow::steps`, `flow::strategy`, `flow::recover` for the recorded
//! steps, the strategies, and rollback/resume). The pure rules (states, batches, canary
//! analysis) are in `cutover_core::deploy`.

mod appdb;
pub mod desired;
mod error;
mod flow;
pub mod lock;
pub mod observe;
pub mod pipeline;
pub mod proof;
mod run;
pub mod smoke;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cutover_config::Config;
use cutover_control::ControlState;
use cutover_store::Store;

pub use error::DeployError;
pub use proof::ProofSigner;

/// What to deploy where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    pub environment: String,
    pub version: String,
    /// `cli`, `ship`, `promote`, `rollback`, `resume`, `webhook`.
    pub trigger: String,
    /// The deployment a rollback reverts.
    pub reverts: Option<i64>,
    /// Wait for the environment's lock instead of failing when another deployment holds it.
    pub wait_for_lock: bool,
    /// Kept with the lock (shown to whoever finds it held).
    pub message: Option<String>,
}

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Verified, observed and proven on every host.
    Live { deployment: i64 },
    /// It failed and the environment went back to the previous release.
    RolledBack { deployment: i64, reason: String },
    /// It failed with nothing to go back to (a first deployment): the environment serves nothing new.
    Failed { deployment: i64, reason: String },
}

impl DeployOutcome {
    #[must_use]
    pub fn deployment(&self) -> i64 {
        match self {
            DeployOutcome::Live { deployment }
            | DeployOutcome::RolledBack { deployment, .. }
            | DeployOutcome::Failed { deployment, .. } => *deployment,
        }
    }
}

/// A step of a deployment, for the CLI to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub deployment: i64,
    pub state: String,
    pub message: String,
    /// Where a stepped rollout is, when this message starts one of its steps (progress bars).
    pub step: Option<RolloutStep>,
}

/// A step of a rollout that goes in steps: canary weights, rolling batches (`index` from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStep {
    Canary { index: usize, of: usize, weight: u8 },
    Batch { index: usize, of: usize },
}

/// The deployment orchestrator of one project.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) control: ControlState,
    pub(crate) config: Config,
    pub(crate) project_root: PathBuf,
    pub(crate) actor: String,
    pub(crate) signer: Arc<dyn ProofSigner>,
    /// Deployments this engine is driving now (resume leaves them alone).
    pub(crate) active: Arc<Mutex<HashSet<i64>>>,
    /// A rollback across migrations restores the recovery point instead of running down
    /// migrations ([`Engine::rollback_restoring`]).
    pub(crate) restore_recovery_point: bool,
}

impl Engine {
    /// An engine over `store`, talking to agents through `control`, for the project at
    /// `project_root`, acting as `actor`, signing proofs of delivery with `key`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        control: ControlState,
        config: Config,
        project_root: PathBuf,
        actor: String,
        key: cutover_proof::SigningKey,
    ) -> Self {
        Self::with_signer(store, control, config, project_root, actor, Arc::new(key))
    }

    /// An engine over `store`, talking to agents through `control`, for the project at
    /// `project_root` (artifacts under `.cutover/artifacts/sha256/`), acting as `actor`, signing
    /// proofs with `signer`.
    #[must_use]
    pub fn with_signer(
        store: Arc<dyn Store>,
        control: ControlState,
        config: Config,
        project_root: PathBuf,
        actor: String,
        signer: Arc<dyn ProofSigner>,
    ) -> Self {
        Self {
            store,
            control,
            config,
            project_root,
            actor,
            signer,
            active: Arc::default(),
            restore_recovery_point: false,
        }
    }

    /// Where the artifact with this hex digest is kept.
    #[must_use]
    pub fn artifact_path(&self, digest_hex: &str) -> PathBuf {
        self.project_root
            .join(".cutover/artifacts/sha256")
            .join(digest_hex)
    }

    /// Deploys `req.version` to `req.environment` and waits until it is live (proof recorded on
    /// every host) or rolled back. Bad input is an error and changes nothing.
    pub async fn deploy(
        &self,
        req: DeployRequest,
        progress: &dyn Fn(Progress),
    ) -> Result<DeployOutcome, DeployError> {
        flow::deploy(self, req, progress).await
    }

    /// As [`Engine::deploy`], for queue job `job` (recorded with the deployment). When an
    /// earlier attempt of the job already created its deployment (its process was killed), that
    /// one is adopted instead of starting another: a finished one gives its outcome, an
    /// unfinished one is resumed once the environment's lock is free (whoever holds it, such as
    /// the resume at a server's start, drives it meanwhile). See [`pipeline`].
    pub async fn deploy_for_job(
        &self,
        req: DeployRequest,
        job: i64,
        progress: &dyn Fn(Progress),
    ) -> Result<DeployOutcome, DeployError> {
        flow::deploy_for_job(self, req, job, progress).await
    }

    /// Goes back to `to` (or to the release live before the current one). When it still runs
    /// healthy in a warm slot on every host only the routers switch; else it is redeployed
    /// through the environment's strategy. The rollback deployment records which one it reverts.
    pub async fn rollback(
        &self,
        environment: &str,
        to: Option<&str>,
        progress: &dyn Fn(Progress),
    ) -> Result<DeployOutcome, DeployError> {
        flow::rollback(self, environment, to, progress).await
    }

    /// As [`Engine::rollback`], but the application database goes back by restoring the
    /// recovery point taken before the reverted release (data written since is lost; the caller
    /// confirms that) instead of through down migrations: the way across an irreversible one.
    pub async fn rollback_restoring(
        &self,
        environment: &str,
        to: Option<&str>,
        progress: &dyn Fn(Progress),
    ) -> Result<DeployOutcome, DeployError> {
        let mut engine = self.clone();
        engine.restore_recovery_point = true;
        flow::rollback(&engine, environment, to, progress).await
    }

    /// Finishes or rolls back every unfinished deployment (after a crash). Deployments whose
    /// environment lock a live process holds are left to it.
    pub async fn resume_all(
        &self,
        progress: &dyn Fn(Progress),
    ) -> Result<Vec<DeployOutcome>, DeployError> {
        flow::resume_all(self, progress).await
    }
}
