//! The approvals gate: `approvals` distinct people approved this version for this environment
//! (`cutover approve ENV VERSION`), each in `approvers` when that list is set, and not the
//! deployer when `separate_approver` is set.

use chrono::{DateTime, Utc};
use cutover_config::Environment;
use cutover_store::{Audit, AuditFilter, Store};
use serde::Serialize;
use serde_json::json;

use crate::{APPROVALS, GateError, GateResult, and_list};

/// The audit action of an approval.
pub const APPROVAL_ACTION: &str = "approval.grant";

/// One recorded approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who approved (the actor of the `approve` command).
    pub approver: String,
    /// Their comment, if any.
    pub comment: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The audit event's sequence number.
    pub seq: i64,
}

/// The audit event that records `approver`'s approval of `version` for `environment`.
pub fn approval_audit(
    approver: &str,
    environment: &str,
    version: &str,
    comment: Option<&str>,
) -> Audit {
    Audit::new(
        approver,
        APPROVAL_ACTION,
        format!("env:{environment}"),
        json!({
            "environment": environment,
            "version": version,
            "approver": approver,
            "comment": comment,
        }),
    )
}

/// Whether `who` may approve deployments to `env` (anyone when `approvers` is empty; names
/// compare without regard to ASCII case, as emails do).
pub fn approver_allowed(env: &Environment, who: &str) -> bool {
    env.approvers.is_empty() || env.approvers.iter().any(|a| a.eq_ignore_ascii_case(who))
}

/// The approvals of `version` for `environment`, oldest first, one per approver (their first).
pub async fn approvals(
    store: &dyn Store,
    environment: &str,
    version: &str,
) -> Result<Vec<Approval>, GateError> {
    let events = store
        .list_audit(&AuditFilter {
            action: Some(APPROVAL_ACTION.to_string()),
            subject: Some(format!("env:{environment}")),
            ..AuditFilter::default()
        })
        .await?;
    let mut out: Vec<Approval> = Vec::new();
    for e in events {
        let p = &e.payload;
        if p.get("version").and_then(|v| v.as_str()) != Some(version) {
            continue;
        }
        let approver = p
            .get("approver")
            .and_then(|v| v.as_str())
            .unwrap_or(&e.actor)
            .to_string();
        if out
            .iter()
            .any(|a| a.approver.eq_ignore_ascii_case(&approver))
        {
            continue;
        }
        out.push(Approval {
            approver,
            comment: p
                .get("comment")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            at: e.at,
            seq: e.seq,
        });
    }
    Ok(out)
}

pub(crate) async fn gate(
    store: &dyn Store,
    env: &Environment,
    environment: &str,
    version: &str,
    deployer: &str,
) -> Result<GateResult, GateError> {
    let needed = env.approvals as usize;
    if needed == 0 {
        return Ok(GateResult::open(APPROVALS, "no approvals required"));
    }
    let all = approvals(store, environment, version).await?;
    let mut counted = Vec::new();
    let mut ignored = Vec::new();
    for a in &all {
        if !approver_allowed(env, &a.approver) {
            ignored.push(format!("{} (not an approver)", a.approver));
        } else if env.separate_approver && a.approver.eq_ignore_ascii_case(deployer) {
            ignored.push(format!("{} (the deployer)", a.approver));
        } else {
            counted.push(a.approver.clone());
        }
    }
    let have = if counted.is_empty() {
        "no approval".to_string()
    } else {
        format!("approved by {}", and_list(&counted))
    };
    let not_counted = if ignored.is_empty() {
        String::new()
    } else {
        format!("; not counted: {}", and_list(&ignored))
    };
    if counted.len() >= needed {
        return Ok(GateResult::open(
            APPROVALS,
            format!("{have} ({} of {needed}){not_counted}", counted.len()),
        ));
    }
    let missing = needed - counted.len();
    let candidates: Vec<String> = env
        .approvers
        .iter()
        .filter(|a| !counted.iter().any(|c| c.eq_ignore_ascii_case(a)))
        .filter(|a| !(env.separate_approver && a.eq_ignore_ascii_case(deployer)))
        .cloned()
        .collect();
    let from = if env.approvers.is_empty() {
        if env.separate_approver {
            format!(" from someone other than {deployer}")
        } else {
            String::new()
        }
    } else {
        format!(" from {}", or_list(&candidates))
    };
    Ok(GateResult::hold(
        APPROVALS,
        format!(
            "{have} ({} of {needed}){not_counted}: needs {missing} more{from} (`cutover approve {environment} {version}`)",
            counted.len()
        ),
        None,
    ))
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
