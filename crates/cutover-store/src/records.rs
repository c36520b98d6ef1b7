//! The records the store keeps, the changes that write them, and the filters that read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cutover_core::audit::{AuditEvent, Broken, BrokenReason};

/// A point in time as the store keeps it (UTC, microsecond precision: finer parts are truncated).
pub type Timestamp = DateTime<Utc>;

/// Who did what to what: the audit event written in the same transaction as a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub actor: String,
    pub action: String,
    /// What the event is about, `kind:name`. [`ID_PLACEHOLDER`] in it is replaced by the id the
    /// first change of the same `apply` was given, so that an insert's event names the record
    /// it created (`incident:{id}` becomes `incident:12`), in the same transaction.
    pub subject: String,
    pub payload: Value,
}

/// See [`Audit::subject`].
pub const ID_PLACEHOLDER: &str = "{id}";

/// `audit` with [`ID_PLACEHOLDER`] in its subject replaced by the first outcome's id; `None`
/// when there is nothing to replace.
pub(crate) fn subject_with_id(audit: &Audit, outcomes: &[Outcome]) -> Option<Audit> {
    if !audit.subject.contains(ID_PLACEHOLDER) {
        return None;
    }
    let Some(Outcome::Id(id)) = outcomes.first() else {
        return None;
    };
    let mut named = audit.clone();
    named.subject = audit.subject.replace(ID_PLACEHOLDER, &id.to_string());
    Some(named)
}

impl Audit {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        payload: Value,
    ) -> Audit {
        Audit {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            payload,
        }
    }
}

/// Normal release or hotfix (hotfix jobs go first in the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseKind {
    Normal,
    Hotfix,
}

impl ReleaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Normal => "normal",
            ReleaseKind::Hotfix => "hotfix",
        }
    }

    pub fn parse(s: &str) -> Option<ReleaseKind> {
        match s {
            "normal" => Some(ReleaseKind::Normal),
            "hotfix" => Some(ReleaseKind::Hotfix),
            _ => None,
        }
    }
}

/// A recorded release; `version` is its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub version: String,
    pub tag: String,
    pub commit: String,
    pub kind: ReleaseKind,
    pub notes: String,
    /// The changes as `cutover plan --json` lists them.
    pub changes: Value,
    /// `sha256:<hex>` of the artifact; `None` when the project has no `[build]`.
    pub artifact_digest: Option<String>,
    /// The bill of materials (CycloneDX JSON), once the BOM issue produces it.
    pub bom: Option<Value>,
    /// The known vulnerabilities found in `bom` when the release was recorded (JSON written by
    /// `cutover release`: `{scanned_at, database, checked, findings, not_evaluated}`); `None`
    /// when there was no vulnerability database to scan with.
    #[serde(default)]
    pub vulns: Option<Value>,
    pub created_at: Timestamp,
}

/// An advance shipping notice to insert (its id is assigned by the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNotice {
    pub version: String,
    pub content: String,
    /// `markdown`, `html` or `json`.
    pub format: String,
    pub recipients: Vec<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: i64,
    pub version: String,
    pub content: String,
    pub format: String,
    pub recipients: Vec<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// A deployment to insert. `state` is the deploy crate's state name (`queued`, `preparing`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub environment: String,
    pub release_version: String,
    pub strategy: String,
    pub state: String,
    /// `cli`, `webhook`, `ship`, `rollback`, …
    pub trigger: String,
    pub actor: String,
    /// The deployment this one reverts (rollbacks).
    pub reverts: Option<i64>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub environment: String,
    pub release_version: String,
    pub strategy: String,
    pub state: String,
    pub trigger: String,
    pub actor: String,
    pub reverts: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// An intent written before a deployment step is taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeploymentStep {
    pub deployment_id: i64,
    pub step: String,
    pub intent: Value,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStep {
    pub id: i64,
    pub deployment_id: i64,
    pub step: String,
    pub intent: Value,
    pub result: Option<Value>,
    pub at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// Which deployments to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFilter {
    pub environment: Option<String>,
    /// Only deployments whose `finished_at` is not set (to resume after a crash).
    pub unfinished_only: bool,
    pub limit: Option<i64>,
}

/// Which deployments to search for (newest first): every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSearch {
    pub environment: Option<String>,
    /// Of one of these release versions; any version when empty.
    pub versions: Vec<String>,
    /// Only `live` deployments whose `finished_at` is set (those that make a current release).
    pub live_only: bool,
    /// Created strictly before this time.
    pub created_before: Option<Timestamp>,
    /// Only ids below this one (to page newest first).
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// An agent host. `token_hash` is a hash, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub token_hash: Option<String>,
    pub agent_version: Option<String>,
    pub last_seen: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The desired state of a host at a generation; (host, generation) is the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub host: String,
    pub generation: i64,
    pub desired: Value,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewObservation {
    pub host: String,
    pub generation: i64,
    pub observed: Value,
    pub evidence: Value,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub id: i64,
    pub host: String,
    pub generation: i64,
    pub observed: Value,
    pub evidence: Value,
    pub at: Timestamp,
}

/// A proof of delivery: the in-toto statement and its signed DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewProof {
    pub deployment_id: i64,
    pub host: String,
    pub statement: Value,
    pub envelope: Value,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    pub id: i64,
    pub deployment_id: i64,
    pub host: String,
    pub statement: Value,
    pub envelope: Value,
    pub created_at: Timestamp,
}

/// A queue job to insert; it starts in state `queued` with 0 attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// `hotfix`, `release`, `normal` or `background`.
    pub class: String,
    pub priority: i64,
    pub kind: String,
    pub payload: Value,
    pub supersede_key: Option<String>,
    pub concurrency_group: Option<String>,
    pub run_at: Timestamp,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub class: String,
    pub priority: i64,
    pub kind: String,
    pub payload: Value,
    pub state: String,
    pub supersede_key: Option<String>,
    pub concurrency_group: Option<String>,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub run_at: Timestamp,
    pub created_at: Timestamp,
    /// The aging rank (microseconds; lower is claimed first; see `cutover_core::queue`).
    pub rank_us: i64,
    pub max_attempts: i64,
    /// The release whose result this is (e.g. its QA checks).
    pub release_version: Option<String>,
    /// The last attempt's result (e.g. a check's output and status).
    pub result: Option<Value>,
    /// Why the last attempt failed, or why the job was cancelled.
    pub last_error: Option<String>,
    /// When the last attempt was claimed.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state (succeeded, failed, cancelled).
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewIncident {
    pub environment: String,
    pub summary: String,
    pub caused_by: Option<i64>,
    pub opened_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub environment: String,
    pub summary: String,
    pub caused_by: Option<i64>,
    pub restored_by: Option<i64>,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// The lock that makes one deployment at a time per environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvLock {
    pub environment: String,
    pub holder: String,
    pub message: String,
    pub acquired_at: Timestamp,
    pub lease_until: Timestamp,
}

/// One change, applied with others and one audit event in a single transaction by
/// [`crate::Store::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Conflict when the version exists.
    InsertRelease(Release),
    /// Replaces every field of the release with this version; NotFound when absent.
    UpdateRelease(Release),
    /// Outcome: the notice id.
    InsertNotice(NewNotice),
    MarkNoticeSent {
        id: i64,
        at: Timestamp,
    },
    /// Outcome: the deployment id.
    InsertDeployment(NewDeployment),
    /// Moves a deployment to `state`; with `expected_state`, Conflict unless it is in that state
    /// (compare-and-set, for several orchestrators on one database).
    UpdateDeployment {
        id: i64,
        expected_state: Option<String>,
        state: String,
        at: Timestamp,
        finished_at: Option<Timestamp>,
    },
    /// Outcome: the step id.
    InsertDeploymentStep(NewDeploymentStep),
    SetDeploymentStepResult {
        id: i64,
        result: Value,
        at: Timestamp,
    },
    /// Registers a host or replaces its token hash / agent version; keeps `last_seen`.
    UpsertHost {
        name: String,
        token_hash: Option<String>,
        agent_version: Option<String>,
        at: Timestamp,
    },
    /// Conflict unless `generation` is above the host's current one.
    PutAssignment(Assignment),
    /// Outcome: the observation id.
    InsertObservation(NewObservation),
    /// Outcome: the proof id.
    InsertProof(NewProof),
    /// Outcome: the job id.
    InsertJob(NewJob),
    /// Outcome: the incident id.
    OpenIncident(NewIncident),
    ResolveIncident {
        id: i64,
        restored_by: Option<i64>,
        at: Timestamp,
    },
    /// Takes (or, for the same holder, renews) the lock; [`crate::StoreError::LockHeld`] when another
    /// holder's lease has not expired at `at`.
    AcquireLock {
        environment: String,
        holder: String,
        message: String,
        at: Timestamp,
        lease_until: Timestamp,
    },
    /// Conflict when `holder` does not hold the lock.
    ReleaseLock {
        environment: String,
        holder: String,
    },
    /// Outcome: the token id. Conflict when a token of that name (or hash) exists.
    InsertApiToken(NewApiToken),
    /// NotFound when absent; Conflict when already revoked.
    RevokeApiToken {
        id: i64,
        at: Timestamp,
    },
    /// Conflict when this provider's delivery was seen before: a replay.
    RecordWebhookDelivery {
        provider: String,
        delivery_id: String,
        at: Timestamp,
    },
}

/// What an API token may do. Ordered: each scope can do everything the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Read everything.
    Viewer,
    /// Read everything; deploy, promote, roll back, approve and handle incidents in its environments.
    Deployer,
    /// Everything, tokens included.
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Viewer => "viewer",
            TokenScope::Deployer => "deployer",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "viewer" => Some(TokenScope::Viewer),
            "deployer" => Some(TokenScope::Deployer),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// An API token of `cutover serve`. Only the sha256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    /// The environments it may act on; empty = every environment.
    pub environments: Vec<String>,
    /// Lowercase hex sha256 of the whole secret.
    #[serde(skip_serializing)]
    pub token_hash: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether it may act on `environment` (scope aside).
    pub fn allows_environment(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == environment)
    }
}

/// An API token to insert (its id is assigned by the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApiToken {
    pub name: String,
    pub scope: TokenScope,
    pub environments: Vec<String>,
    pub token_hash: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// What one change produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The id the store assigned to the inserted record.
    Id(i64),
    Done,
}

/// The result of [`crate::Store::apply`]: one outcome per change, and the audit event written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub event: AuditEvent,
}

impl Applied {
    /// The id produced by the `index`-th change, if it inserted a record with an id.
    pub fn id(&self, index: usize) -> Option<i64> {
        match self.outcomes.get(index) {
            Some(Outcome::Id(id)) => Some(*id),
            _ => None,
        }
    }
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Strictly before this time.
    pub until: Option<Timestamp>,
    pub action: Option<String>,
    pub subject: Option<String>,
    /// Only events with a seq above this (for paging).
    pub after_seq: Option<i64>,
    /// Newest first (then `limit` keeps the newest).
    pub descending: bool,
    pub limit: Option<i64>,
}

/// The result of [`crate::Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Events that verified (those before the first broken one).
    pub events: u64,
    /// The first broken link, if any.
    pub first_broken: Option<Broken>,
}

/// Which database a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_takes_the_first_changes_id() {
        let audit = Audit::new("a", "incident.open", "incident:{id}", Value::Null);
        let named = subject_with_id(&audit, &[Outcome::Id(12), Outcome::Id(13)]).unwrap();
        assert_eq!(named.subject, "incident:12");
        assert_eq!(subject_with_id(&audit, &[Outcome::Done]), None);
        let plain = Audit::new("a", "x", "env:prod", Value::Null);
        assert_eq!(subject_with_id(&plain, &[Outcome::Id(1)]), None);
    }
}
