//! The API's own request and response types (with their OpenAPI schemas). Documents that the
//! CLI prints with `--json` (status, history, served-at, hosts) and the store's records are
//! answered as they are and described in the OpenAPI document as objects with a reference to the
//! command whose `--json` output they are.

use std::collections::BTreeMap;

use cutover_store::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub environment: String,
    pub version: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The answer to an approval (the `cutover approve --json` document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    pub environment: String,
    pub version: String,
    pub approver: String,
    pub comment: Option<String>,
    /// The audit event that records it.
    pub seq: i64,
    /// Everyone who approved this version for this environment so far.
    pub approvers: Vec<String>,
    /// How many the environment requires.
    pub required: u32,
}

/// `POST /api/v1/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    pub environment: String,
    pub version: String,
}

/// The answer to a deployment request: the queued `deploy` job (follow it at `/api/v1/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentAccepted {
    pub job: i64,
    pub environment: String,
    pub version: String,
    pub class: String,
}

/// A release in a list (without its notes, changes and bill of materials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseSummary {
    pub version: String,
    pub tag: String,
    pub commit: String,
    /// `normal` or `hotfix`.
    pub kind: String,
    /// `sha256:<hex>` of the artifact.
    pub artifact_digest: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// A release page: notes, changes, bill of materials summary, vulnerabilities, checks and
/// deployments.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub release: ReleaseSummary,
    /// Markdown.
    pub notes: String,
    /// The changes as `cutover plan --json` lists them.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub bom: Option<BomSummary>,
    /// The vulnerability scan recorded with the release (`{scanned_at, database, checked,
    /// findings, not_evaluated}`).
    #[schema(value_type = Option<Object>)]
    pub vulns: Option<Value>,
    pub checks: Vec<CheckRef>,
    /// Its deployments, newest first (`cutover history --json` entries).
    #[schema(value_type = Vec<Object>)]
    pub deployments: Vec<cutover_views::HistoryEntry>,
}

/// What the release's bill of materials holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BomSummary {
    /// `CycloneDX` and its spec version.
    pub format: String,
    pub components: usize,
    /// Components per license (SPDX id, expression or name; `unknown` when none is declared).
    pub licenses: BTreeMap<String, usize>,
}

/// A QA check of a release: its queue job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckRef {
    pub job: i64,
    pub name: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// A deployment with its steps and proofs of delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentDetail {
    /// The deployment record.
    #[schema(value_type = Object)]
    pub deployment: cutover_store::Deployment,
    /// Its steps (intent, result), in the order they were written.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<cutover_store::DeploymentStep>,
    /// Its proofs of delivery (in-toto statement and DSSE envelope per host).
    #[schema(value_type = Vec<Object>)]
    pub proofs: Vec<cutover_store::Proof>,
}

/// An API token as listed (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// `viewer`, `deployer` or `admin`.
    pub scope: String,
    /// Empty: every environment.
    pub environments: Vec<String>,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
}

impl From<cutover_store::ApiToken> for TokenView {
    fn from(t: cutover_store::ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scope: t.scope.as_str().to_owned(),
            environments: t.environments,
            created_by: t.created_by,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// Documents answered as the CLI prints them with `--json`.
pub mod docs {
    use serde_json::Value;
    use utoipa::ToSchema;

    /// The `cutover status --json` document: per environment its release, newest deployment and
    /// hosts (`{environments: [{name, release, deployment, hosts}]}`).
    #[derive(ToSchema)]
    #[schema(value_type = Object)]
    pub struct StatusDoc(pub Value);

    /// One environment of the status document.
    #[derive(ToSchema)]
    #[schema(value_type = Object)]
    pub struct EnvStatusDoc(pub Value);

    /// `cutover history --json` entries.
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct HistoryDoc(pub Value);

    /// `cutover audit --env E --at T --json`: what served on each host at that instant.
    #[derive(ToSchema)]
    #[schema(value_type = Object)]
    pub struct ServedAtDoc(pub Value);

    /// Audit events `{seq, at, actor, action, subject, payload, prev_hash, hash}`, by seq.
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct AuditDoc(pub Value);

    /// Deployment records, newest first.
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct DeploymentsDoc(pub Value);

    /// Queue jobs, newest first (`cutover queue ls --json`).
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct JobsDoc(pub Value);

    /// Registered hosts and what their agents run.
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct HostsDoc(pub Value);

    /// Incidents, oldest first.
    #[derive(ToSchema)]
    #[schema(value_type = Vec<Object>)]
    pub struct IncidentsDoc(pub Value);
}

/// `?limit=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// At most this many (default 100, at most 1000).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// `?env=&limit=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnvQuery {
    /// Only this environment.
    pub env: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// The audit explorer's filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub subject: Option<String>,
    /// At or after (RFC 3339, a date, `2h ago`).
    pub since: Option<String>,
    /// Before.
    pub until: Option<String>,
    /// Only events with a higher seq (paging).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// `?at=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant (RFC 3339, a date, `2h ago`); default now.
    pub at: Option<String>,
}

/// The queue's filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: Option<String>,
    pub kind: Option<String>,
    pub release: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// `GET /api/v1/metrics` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// The environment (default: production, else the end of the `promote_from` chain).
    pub env: Option<String>,
    /// `90d`, `12w`, `24h` or an RFC 3339 instant (default `90d`).
    pub since: Option<String>,
    /// RFC 3339 or a duration back from now (default: now).
    pub until: Option<String>,
}
