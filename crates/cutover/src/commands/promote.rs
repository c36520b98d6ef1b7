//! `cutover promote FROM TO`: deploys the release live in FROM to TO, when FROM is TO's
//! `promote_from` (or `--force REASON`, recorded) and TO's gates are open.

use cutover_deploy::{DeployOutcome, DeployRequest, Progress};
use cutover_store::Audit;
use serde_json::json;

use super::deploy::{Session, check_environment, deploy_error, render_progress};
use super::ship::{gates, live_version};
use crate::cli::PromoteArgs;
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &PromoteArgs) -> Result<()> {
    let config = ctx.config()?;
    for env in [&args.from, &args.to] {
        check_environment(&config, env)?;
    }
    let promote_from = config
        .environments
        .get(&args.to)
        .and_then(|e| e.promote_from.clone());
    check_chain(
        &args.from,
        &args.to,
        promote_from.as_deref(),
        args.force.as_deref(),
    )?;
    let store = ctx.store()?;
    let Some(version) = ctx.block_on(live_version(&*store, &args.from))? else {
        return Err(CliError::usage(format!(
            "nothing is live in `{}`, so there is nothing to promote",
            args.from
        ))
        .with_hint(format!(
            "`cutover deploy {}` deploys a release first",
            args.from
        )));
    };
    let actor = ctx.actor();
    ctx.block_on(gates(
        ctx,
        &*store,
        &config,
        &args.to,
        &version,
        &actor,
        args.override_freeze.as_deref(),
    ))?;
    // Recorded once the promotion goes ahead (the gates are open), like a freeze override.
    if let Some(reason) = &args.force
        && promote_from.as_deref() != Some(args.from.as_str())
    {
        let event = Audit::new(
            &actor,
            "promote.force",
            format!("env:{}", args.to),
            json!({ "from": args.from, "to": args.to, "version": version,
                "promote_from": promote_from, "reason": reason }),
        );
        ctx.block_on(store.append_audit(&event))
            .map_err(store_error)?;
        ctx.ui.warn(format!(
            "promotion chain skipped ({} → {}): {reason}",
            args.from, args.to
        ));
    }
    let session = Session::open(ctx, store.clone(), config, &[args.to.as_str()])?;
    let render = |p: Progress| render_progress(ctx, &p);
    ctx.ui.status(
        "promoting",
        format!("{version} from {} to {}", args.from, args.to),
    );
    let outcome = ctx.block_on(session.engine.deploy(
        DeployRequest {
            environment: args.to.clone(),
            version: version.clone(),
            trigger: "promote".to_owned(),
            reverts: None,
            wait_for_lock: args.wait,
            message: Some(format!("cutover promote {} {}", args.from, args.to)),
        },
        &render,
    ));
    session.close(ctx);
    let doc = |state: &str, id: i64, reason: Option<&str>| json!({ "deployment": id, "state": state, "environment": args.to, "version": version, "reason": reason });
    match outcome.map_err(deploy_error)? {
        DeployOutcome::Live { deployment } => {
            if ctx.global.json {
                ctx.ui.print_json(&doc("live", deployment, None));
            } else {
                ctx.ui.println(format!(
                    "deployment {deployment}: {version} is live in {}",
                    args.to
                ));
            }
            Ok(())
        }
        DeployOutcome::RolledBack { deployment, reason }
        | DeployOutcome::Failed { deployment, reason } => Err(CliError::failed(format!(
            "deployment {deployment} of {version} to {} was rolled back: {reason}",
            args.to
        ))
        .with_json(doc("rolled_back", deployment, Some(&reason)))),
    }
}

/// A promotion follows the `promote_from` chain: FROM must be what TO promotes from, unless
/// `--force REASON` says why not (an empty reason is no reason).
fn check_chain(
    from: &str,
    to: &str,
    promote_from: Option<&str>,
    force: Option<&str>,
) -> Result<()> {
    if force.is_some_and(|reason| reason.trim().is_empty()) {
        return Err(
            CliError::usage("`--force` needs a reason (it is recorded in the audit log)")
                .with_hint(format!(
                    "e.g. `cutover promote {from} {to} --force \"hotfix verified in {from}\"`"
                )),
        );
    }
    if promote_from == Some(from) || force.is_some() {
        return Ok(());
    }
    let err = match promote_from {
        Some(expected) => CliError::usage(format!(
            "`{to}` is promoted from `{expected}` (its `promote_from`), not from `{from}`"
        ))
        .with_hint(format!(
            "`cutover promote {expected} {to}`, or `--force REASON` to skip the chain check (the reason is recorded in the audit log)"
        )),
        None => CliError::usage(format!(
            "`{to}` has no `promote_from`, so nothing is promoted to it (not from `{from}` either)"
        ))
        .with_hint(format!(
            "`cutover deploy {to} --version V` deploys to it; set `promote_from = \"{from}\"` in `[environments.{to}]`, or pass `--force REASON` to skip the chain check (recorded in the audit log)"
        )),
    };
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_promote_from_environment_promotes_unless_forced_with_a_reason() {
        assert!(check_chain("staging", "production", Some("staging"), None).is_ok());
        let wrong = check_chain("qa", "production", Some("staging"), None).unwrap_err();
        assert_eq!(wrong.exit_code(), 2);
        assert!(
            wrong.message.contains("promoted from `staging`"),
            "{}",
            wrong.message
        );
        assert!(
            wrong
                .hints
                .iter()
                .any(|h| h.contains("cutover promote staging production")),
            "{:?}",
            wrong.hints
        );
        let none = check_chain("staging", "qa", None, None).unwrap_err();
        assert!(
            none.message.contains("has no `promote_from`"),
            "{}",
            none.message
        );
        assert!(check_chain("qa", "production", Some("staging"), Some("hotfix")).is_ok());
        let blank = check_chain("qa", "production", Some("staging"), Some("  ")).unwrap_err();
        assert!(
            blank.message.contains("needs a reason"),
            "{}",
            blank.message
        );
    }
}
