//! `cutover approve ENV VERSION [--comment C]`: records the actor's approval of a release for an
//! environment (`approval.grant`), which the environment's `approvals` gate counts.

use crate::cli::ApproveArgs;
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &ApproveArgs) -> Result<()> {
    let config = ctx.config()?;
    let env = config
        .environment(&args.env)
        .ok_or_else(|| super::gates::unknown_environment(&config, &args.env))?;
    let store = ctx.store()?;
    if ctx
        .block_on(store.get_release(&args.version))
        .map_err(store_error)?
        .is_none()
    {
        return Err(
            CliError::usage(format!("there is no release {}", args.version)).with_hint(
                "`cutover release` records a release; `cutover audit --action release.created` lists them",
            ),
        );
    }
    let approver = ctx.actor();
    if !cutover_gates::approver_allowed(env, &approver) {
        return Err(CliError::usage(format!(
            "{approver} may not approve deployments to `{}`",
            args.env
        ))
        .with_hint(format!(
            "the approvers of `{}` are {}; the approver is CUTOVER_ACTOR, else the git user's email",
            args.env,
            env.approvers.join(", ")
        )));
    }
    let existing = ctx
        .block_on(cutover_gates::approvals(
            store.as_ref(),
            &args.env,
            &args.version,
        ))
        .map_err(gate_error)?;
    if let Some(prev) = existing
        .iter()
        .find(|a| a.approver.eq_ignore_ascii_case(&approver))
    {
        return Err(CliError::usage(format!(
            "{approver} already approved {} for `{}` (at {})",
            args.version,
            args.env,
            prev.at.format("%Y-%m-%d %H:%M UTC")
        ))
        .with_hint("approvals count distinct people: another approver has to approve"));
    }
    let comment = args
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let event = ctx
        .block_on(store.append_audit(&cutover_gates::approval_audit(
            &approver,
            &args.env,
            &args.version,
            comment,
        )))
        .map_err(store_error)?;
    let mut approvers: Vec<String> = existing.into_iter().map(|a| a.approver).collect();
    approvers.push(approver.clone());
    let needed = env.approvals;
    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "environment": args.env,
            "version": args.version,
            "approver": approver,
            "comment": comment,
            "seq": event.seq,
            "approvers": approvers,
            "required": needed,
        }));
        return Ok(());
    }
    ctx.ui.status(
        "Approved",
        format!("{} for {} by {approver}", args.version, args.env),
    );
    if needed == 0 {
        ctx.ui.warn(format!(
            "`{}` requires no approvals; this one is recorded all the same",
            args.env
        ));
    } else {
        ctx.ui.println(format!(
            "approvals of {} for {}: {} of {} required ({})",
            args.version,
            args.env,
            approvers.len(),
            needed,
            approvers.join(", ")
        ));
        if env.separate_approver {
            ctx.ui.println(
                "separate_approver: the deployer's own approval will not count for their deployment",
            );
        }
    }
    Ok(())
}

pub(super) fn gate_error(e: cutover_gates::GateError) -> CliError {
    let hint = e.hint();
    if e.is_user_error() {
        return CliError::usage(e.to_string()).with_hint_opt(hint);
    }
    let mut err = CliError::failed(e.to_string());
    if let Some(source) = std::error::Error::source(&e) {
        err = err.with_source_chain(source);
    }
    err.with_hint_opt(hint)
}
