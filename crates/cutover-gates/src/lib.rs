//! Deployment gates of an environment, evaluated over the store: soak in the `promote_from`
//! environment, approvals, freeze windows, required checks, and the vulnerability and license
//! policies over the release's bill of materials.
//!
//! [`evaluate`] reads the records and the configuration and never writes: it says, for each gate,
//! whether it is open, why, and when a holding gate will open if that is known. The caller decides
//! what to do with a holding gate, and records what it does (an approval with [`approval_audit`],
//! a freeze override with [`freeze_override_audit`]).
//!
//! Record conventions (shared with the deploy engine):
//! - the release is live in an environment from the `finished_at` of a deployment of it in state
//!   `live`; a deployment of the same version in that environment that ended `rolled_back` or
//!   `failed` after it, or a rollback deployment that reverts it, is a failure that stops the soak;
//! - `approval.grant`, subject `env:<environment>`, payload `{environment, version, approver,
//!   comment}`; `freeze.override`, subject `env:<environment>`, payload `{environment, version,
//!   reason}`;
//! - QA check runs are `check` queue jobs carrying the release's version (`cutover-queue`).

mod approvals;
mod checks;
mod error;
mod freeze;
mod policy;
mod soak;

use std::path::Path;

use chrono::{DateTime, Utc};
use cutover_config::Config;
use cutover_store::Store;
use serde::Serialize;

pub use approvals::{Approval, approval_audit, approvals, approver_allowed};
pub use error::GateError;
pub use freeze::freeze_override_audit;

/// Gate names, in the order they are evaluated and shown.
pub const GATES: [&str; 6] = [SOAK, APPROVALS, FREEZE, CHECKS, VULNERABILITIES, LICENSES];
/// The release has been live in `promote_from` for `soak` without a failure.
pub const SOAK: &str = "soak";
/// Enough distinct, allowed approvers approved this version for this environment.
pub const APPROVALS: &str = "approvals";
/// No freeze window covers now (or the freeze is overridden with a reason).
pub const FREEZE: &str = "freeze";
/// Every required QA check passed for the release.
pub const CHECKS: &str = "checks";
/// The release's bill of materials passes the `[vulns]` policy.
pub const VULNERABILITIES: &str = "vulnerabilities";
/// The release's bill of materials passes the `[licenses]` policy.
pub const LICENSES: &str = "licenses";

/// What the operator chose to override for this deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--override-freeze REASON`: deploy through a freeze; the caller records `freeze.override`.
    pub freeze_reason: Option<String>,
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateResult {
    /// One of [`GATES`].
    pub name: String,
    /// Whether the gate lets the deployment through.
    pub open: bool,
    /// Why, in words (for a holding gate: what is missing).
    pub reason: String,
    /// When a holding gate opens by itself (soak, freeze); `None` when that takes an action.
    pub opens_at: Option<DateTime<Utc>>,
    /// The gate would hold but an override opened it (only `freeze`).
    pub overridden: bool,
}

impl GateResult {
    fn open(name: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            open: true,
            reason: reason.into(),
            opens_at: None,
            overridden: false,
        }
    }

    fn hold(name: &str, reason: impl Into<String>, opens_at: Option<DateTime<Utc>>) -> Self {
        Self {
            name: name.to_string(),
            open: false,
            reason: reason.into(),
            opens_at,
            overridden: false,
        }
    }
}

/// Every gate of an environment for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateReport {
    /// The environment.
    pub environment: String,
    /// The release's version.
    pub version: String,
    /// When it was evaluated.
    pub evaluated_at: DateTime<Utc>,
    /// One result per gate, in the order of [`GATES`].
    pub gates: Vec<GateResult>,
}

impl GateReport {
    /// Every gate is open.
    pub fn open(&self) -> bool {
        self.gates.iter().all(|g| g.open)
    }

    /// The gates that hold.
    pub fn holding(&self) -> impl Iterator<Item = &GateResult> {
        self.gates.iter().filter(|g| !g.open)
    }

    /// The gate named `name`.
    pub fn gate(&self, name: &str) -> Option<&GateResult> {
        self.gates.iter().find(|g| g.name == name)
    }

    /// When every holding gate will have opened by itself; `None` when one needs an action (or
    /// when nothing holds).
    pub fn opens_at(&self) -> Option<DateTime<Utc>> {
        let mut latest: Option<DateTime<Utc>> = None;
        for g in self.holding() {
            let at = g.opens_at?;
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
        latest
    }

    /// The freeze was passed with `--override-freeze`: the caller records
    /// [`freeze_override_audit`] with the deployment.
    pub fn freeze_overridden(&self) -> bool {
        self.gate(FREEZE).is_some_and(|g| g.overridden)
    }

    /// One line per holding gate: `gate: reason (opens at …)`.
    pub fn summary(&self) -> String {
        self.holding()
            .map(|g| match g.opens_at {
                Some(t) => format!("{}: {} (opens at {})", g.name, g.reason, fmt_time(t)),
                None => format!("{}: {}", g.name, g.reason),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Evaluates every gate of `environment` for release `version`, deployed by `deployer`, at `now`.
/// The vulnerability gate is not evaluated here (it needs the advisory database): see
/// [`evaluate_with_vulns`].
pub async fn evaluate(
    store: &dyn Store,
    config: &Config,
    environment: &str,
    version: &str,
    deployer: &str,
    now: DateTime<Utc>,
    overrides: &Overrides,
) -> Result<GateReport, GateError> {
    evaluate_with_vulns(
        store,
        config,
        environment,
        version,
        deployer,
        now,
        overrides,
        None,
    )
    .await
}

/// [`evaluate`], with the vulnerability gate checking the release's bill of materials against the
/// advisory database at `vuln_db` (the CLI's `.cutover/vulns.db`, or `[vulns] db`). Without a
/// database (`None`, or no file there), the vulnerability gate is open and says it was not evaluated.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_with_vulns(
    store: &dyn Store,
    config: &Config,
    environment: &str,
    version: &str,
    deployer: &str,
    now: DateTime<Utc>,
    overrides: &Overrides,
    vuln_db: Option<&Path>,
) -> Result<GateReport, GateError> {
    let env = config
        .environment(environment)
        .ok_or_else(|| GateError::UnknownEnvironment {
            name: environment.to_string(),
            known: config.environments.keys().cloned().collect(),
        })?;
    let release = store
        .get_release(version)
        .await?
        .ok_or_else(|| GateError::UnknownRelease {
            version: version.to_string(),
        })?;
    let gates = vec![
        soak::gate(store, env, version, now).await?,
        approvals::gate(store, env, environment, version, deployer).await?,
        freeze::gate(env, environment, now, overrides),
        checks::gate(store, config, version).await?,
        policy::vulnerabilities(config, &release, now, vuln_db).await?,
        policy::licenses(config, &release),
    ];
    Ok(GateReport {
        environment: environment.to_string(),
        version: version.to_string(),
        evaluated_at: now,
        gates,
    })
}

/// `2026-11-27 15:00 UTC`: times in reasons, to the minute.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `1h 30m`: durations in reasons, to the second.
pub(crate) fn fmt_duration(d: chrono::Duration) -> String {
    let secs = u64::try_from(d.num_seconds()).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// `a, b and c`.
pub(crate) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
