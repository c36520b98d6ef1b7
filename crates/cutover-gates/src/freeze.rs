//! The freeze gate: no freeze window of the environment covers now, or the deployment overrides
//! the freeze with a reason (which the caller records as `freeze.override`).

use chrono::{DateTime, Utc};
use cutover_config::Environment;
use cutover_store::Audit;
use serde_json::json;

use crate::{FREEZE, GateResult, Overrides, fmt_time};

/// The audit action of a freeze override.
pub const FREEZE_OVERRIDE_ACTION: &str = "freeze.override";

/// The audit event that records `actor` deploying `version` to `environment` through a freeze.
pub fn freeze_override_audit(actor: &str, environment: &str, version: &str, reason: &str) -> Audit {
    Audit::new(
        actor,
        FREEZE_OVERRIDE_ACTION,
        format!("env:{environment}"),
        json!({ "environment": environment, "version": version, "reason": reason }),
    )
}

pub(crate) fn gate(
    env: &Environment,
    environment: &str,
    now: DateTime<Utc>,
    overrides: &Overrides,
) -> GateResult {
    if env.freeze.is_empty() {
        return GateResult::open(FREEZE, "no freeze windows");
    }
    let Some(frozen) = cutover_config::is_frozen(&env.freeze, now) else {
        return GateResult::open(FREEZE, "no freeze window covers now");
    };
    let what = format!(
        "`{environment}` is frozen (\"{}\") until {}",
        frozen.window,
        fmt_time(frozen.ends_at)
    );
    match overrides.freeze_reason.as_deref().map(str::trim) {
        Some(reason) if !reason.is_empty() => GateResult {
            overridden: true,
            ..GateResult::open(FREEZE, format!("{what}; overridden: {reason}"))
        },
        _ => GateResult::hold(
            FREEZE,
            format!("{what} (`--override-freeze REASON` deploys anyway)"),
            Some(frozen.ends_at),
        ),
    }
}
