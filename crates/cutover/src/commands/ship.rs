//! `cutover ship` (plan → notice → checks → release → deploy → gates → promote along the
//! `promote_from` chain) and `cutover promote FROM TO` (its single step).
//!
//! Every stage is idempotent and derived from the records, which is what makes `--resume` safe after
//! a crash: a recorded release is not released again, an environment where the version is already
//! live is skipped, and an unfinished deployment is resumed by the engine before anything new starts.
//! The run itself is recorded (`ship.start`, `ship.stage`, `ship.finish` audit events) so `--resume`
//! knows which version and target it was shipping.

use chrono::Utc;
use cutover_deploy::{DeployOutcome, DeployRequest, Progress};
use cutover_store::{Audit, AuditFilter, Store};
use serde_json::{Value, json};

use super::deploy::{Session, check_environment, deploy_error, render_progress, uses_local};
use super::plan::{Selection, optional_config, release_options};
use crate::cli::{CheckArgs, NoticeArgs, NoticeFormatArg, PromoteArgs, ReleaseArgs, ShipArgs};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn ship(ctx: &Ctx<'_>, args: &ShipArgs) -> Result<()> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    let (version, target) = if args.resume {
        last_run(ctx, &*store)?
    } else {
        let target = match &args.to {
            Some(t) => t.clone(),
            None => last_of_chain(&config)?,
        };
        (planned_version(ctx, &*store)?, target)
    };
    let chain = chain_to(&config, &target)?;
    let actor = ctx.actor();
    record(
        ctx,
        &*store,
        &actor,
        if args.resume {
            "ship.resume"
        } else {
            "ship.start"
        },
        json!({ "version": version, "to": target, "chain": chain }),
    )?;
    ctx.ui.status(
        "shipping",
        format!("{version} to {target} (through {})", chain.join(" → ")),
    );

    // Stage: the release (with its notice and checks), unless it is recorded already.
    let released = ctx
        .block_on(store.get_release(&version))
        .map_err(store_error)?
        .is_some();
    if released {
        stage(
            ctx,
            &*store,
            &actor,
            &version,
            "release",
            "already recorded",
        )?;
    } else {
        // The steps print as they do alone; under `--json` on stderr, so that stdout stays ship's
        // one document.
        let nested_ui = ctx.ui.nested();
        let sub = if ctx.global.json {
            Ctx::new(
                &nested_ui,
                crate::cli::GlobalArgs {
                    json: false,
                    ..ctx.global.clone()
                },
            )
        } else {
            Ctx::new(ctx.ui, ctx.global.clone())
        };
        if config.notify.is_some() {
            super::notice::run(
                &sub,
                &NoticeArgs {
                    eta: None,
                    format: NoticeFormatArg::Markdown,
                    send: true,
                    pre: None,
                    version: Some(version.clone()),
                },
            )?;
            stage(ctx, &*store, &actor, &version, "notice", "sent")?;
        }
        if !config.checks.is_empty() {
            super::queue::check(
                &sub,
                &CheckArgs {
                    command: None,
                    release: Some(version.clone()),
                    only: Vec::new(),
                    workers: 2,
                },
            )?;
            stage(ctx, &*store, &actor, &version, "checks", "passed")?;
        }
        super::release::run(
            &sub,
            &ReleaseArgs {
                version: Some(version.clone()),
                pre: None,
                dry_run: false,
                push: false,
                remote: "origin".to_owned(),
            },
        )?;
        stage(ctx, &*store, &actor, &version, "release", "recorded")?;
    }

    // Stages: each environment of the chain, behind its gates.
    let local = chain.iter().any(|e| uses_local(&config, e));
    let session = Session::open(ctx, store.clone(), config.clone(), local)?;
    let render = |p: Progress| render_progress(ctx, &p);
    let result = ctx.block_on(async {
        session
            .engine
            .resume_all(&render)
            .await
            .map_err(deploy_error)?;
        for env in &chain {
            if live_version(&*store, env).await?.as_deref() == Some(version.as_str()) {
                stage_async(&*store, &actor, &version, &format!("deploy:{env}"), "already live").await?;
                continue;
            }
            gates(ctx, &*store, &config, env, &version, &actor, args.override_freeze.as_deref()).await?;
            ctx.ui.status("deploying", format!("{version} to {env}"));
            let outcome = session
                .engine
                .deploy(
                    DeployRequest {
                        environment: env.clone(),
                        version: version.clone(),
                        trigger: "ship".to_owned(),
                        reverts: None,
                        wait_for_lock: true,
                        message: Some(format!("cutover ship {version}")),
                    },
                    &render,
                )
                .await
                .map_err(deploy_error)?;
            match outcome {
                DeployOutcome::Live { deployment } => {
                    stage_async(&*store, &actor, &version, &format!("deploy:{env}"), &format!("live (deployment {deployment})")).await?;
                    ctx.ui.status("live", format!("{version} in {env}"));
                }
                DeployOutcome::RolledBack { deployment, reason }
                | DeployOutcome::Failed { deployment, reason } => {
                    stage_async(&*store, &actor, &version, &format!("deploy:{env}"), &format!("failed (deployment {deployment}): {reason}")).await?;
                    return Err(CliError::failed(format!(
                        "shipping {version} stopped in {env}: deployment {deployment} was rolled back: {reason}"
                    ))
                    .with_json(json!({ "version": version, "environment": env, "deployment": deployment, "state": "rolled_back", "reason": reason })));
                }
            }
        }
        Ok::<(), CliError>(())
    });
    session.close(ctx);
    result?;
    record(
        ctx,
        &*store,
        &actor,
        "ship.finish",
        json!({ "version": version, "to": target }),
    )?;
    if ctx.global.json {
        ctx.ui.print_json(
            &json!({ "version": version, "to": target, "chain": chain, "state": "live" }),
        );
    } else {
        ctx.ui
            .println(format!("shipped {version}: live in {}", chain.join(", ")));
    }
    Ok(())
}

pub fn promote(ctx: &Ctx<'_>, args: &PromoteArgs) -> Result<()> {
    let config = ctx.config()?;
    for env in [&args.from, &args.to] {
        check_environment(&config, env)?;
    }
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
    let local = uses_local(&config, &args.to);
    ctx.block_on(gates(
        ctx,
        &*store,
        &config,
        &args.to,
        &version,
        &actor,
        args.override_freeze.as_deref(),
    ))?;
    let session = Session::open(ctx, store.clone(), config, local)?;
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

/// Evaluates `env`'s gates for `version`; a holding gate is an error that says why and when it opens.
pub(super) async fn gates(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    config: &cutover_config::Config,
    env: &str,
    version: &str,
    actor: &str,
    override_freeze: Option<&str>,
) -> Result<()> {
    let overrides = cutover_gates::Overrides {
        freeze_reason: override_freeze.map(str::to_owned),
    };
    let report =
        cutover_gates::evaluate(store, config, env, version, actor, Utc::now(), &overrides)
            .await
            .map_err(super::approve::gate_error)?;
    // The override is recorded only when the deployment goes ahead (another gate may hold).
    if report.open() && report.freeze_overridden() {
        let reason = override_freeze.unwrap_or_default();
        store
            .append_audit(&cutover_gates::freeze_override_audit(
                actor, env, version, reason,
            ))
            .await
            .map_err(store_error)?;
        ctx.ui
            .warn(format!("freeze overridden for {env}: {reason}"));
        return Ok(());
    }
    if report.open() {
        return Ok(());
    }
    let when = report
        .opens_at()
        .map(|t| {
            format!(
                "; it opens at {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    Err(CliError::failed(format!(
        "the gates of {env} hold {version}{when}"
    ))
    .with_cause(report.summary())
    .with_hint("`cutover gates ENV --version V` shows them; `cutover ship --resume` continues once they open")
    .with_json(serde_json::to_value(&report).unwrap_or(Value::Null)))
}

/// The version `ship` releases: the planned next version, or the newest recorded release when
/// nothing new was committed since it.
fn planned_version(ctx: &Ctx<'_>, store: &dyn Store) -> Result<String> {
    let planned = plan(ctx)?;
    if planned.plan.changes.is_empty() && planned.plan.current.is_some() {
        let newest = ctx
            .block_on(store.list_releases())
            .map_err(store_error)?
            .pop()
            .map(|r| r.version);
        if let Some(v) = newest {
            return Ok(v);
        }
    }
    Ok(planned.plan.next.version)
}

/// The next version `cutover release` would make now.
pub(super) fn planned_next(ctx: &Ctx<'_>) -> Result<String> {
    Ok(plan(ctx)?.plan.next.version)
}

fn plan(ctx: &Ctx<'_>) -> Result<cutover_release::Planned> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(&root, config.as_ref(), &Selection::default())?;
    cutover_release::plan(&root, &options).map_err(|e| super::plan::release_error(&e))
}

/// The version and target of the last `cutover ship` run.
fn last_run(ctx: &Ctx<'_>, store: &dyn Store) -> Result<(String, String)> {
    let events = ctx
        .block_on(store.list_audit(&AuditFilter {
            action: Some("ship.start".to_owned()),
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        }))
        .map_err(store_error)?;
    let Some(e) = events.first() else {
        return Err(CliError::usage("no `cutover ship` run to resume")
            .with_hint("`cutover ship` starts one"));
    };
    let version = e.payload["version"].as_str().unwrap_or_default().to_owned();
    let to = e.payload["to"].as_str().unwrap_or_default().to_owned();
    // A run that got past its release stage needs that release; one stopped before it releases
    // it on resume.
    let recorded = ctx
        .block_on(store.list_audit(&AuditFilter {
            action: Some("ship.stage".to_owned()),
            subject: Some(format!("release:{version}")),
            after_seq: Some(e.seq),
            ..AuditFilter::default()
        }))
        .map_err(store_error)?
        .iter()
        .any(|s| s.payload["stage"] == "release");
    if recorded
        && ctx
            .block_on(store.get_release(&version))
            .map_err(store_error)?
            .is_none()
    {
        return Err(CliError::usage(format!(
            "the last `cutover ship` run shipped release {version}, which no longer exists in the store"
        ))
        .with_hint("start a new run with `cutover ship` (it plans and records the release again)"));
    }
    Ok((version, to))
}

/// The environment at the end of the `promote_from` chain (the one nothing promotes from).
fn last_of_chain(config: &cutover_config::Config) -> Result<String> {
    let mut ends: Vec<&String> = config
        .environments
        .keys()
        .filter(|name| {
            !config
                .environments
                .values()
                .any(|e| e.promote_from.as_deref() == Some(name.as_str()))
        })
        .collect();
    match ends.len() {
        0 => Err(CliError::usage("cutover.toml defines no environments")
            .with_hint("add `[environments.staging]` with `hosts = [\"local\"]`")),
        1 => Ok(ends.remove(0).clone()),
        _ => Err(CliError::usage(format!(
            "several environments end a promotion chain ({}); say which with `--to ENV`",
            ends.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `target`'s chain, first environment first (its `promote_from` ancestors, then itself).
fn chain_to(config: &cutover_config::Config, target: &str) -> Result<Vec<String>> {
    let mut chain = vec![target.to_owned()];
    let mut at = target;
    loop {
        check_environment(config, at)?;
        match config
            .environments
            .get(at)
            .and_then(|e| e.promote_from.as_deref())
        {
            // The configuration loader refuses cycles, so this ends.
            Some(from) if !chain.iter().any(|c| c == from) => {
                chain.push(from.to_owned());
                at = from;
            }
            _ => break,
        }
    }
    chain.reverse();
    Ok(chain)
}

/// The release live in `env` now ([`cutover_views::current_release`]), if any.
async fn live_version(store: &dyn Store, env: &str) -> Result<Option<String>> {
    Ok(cutover_views::current_release(store, env)
        .await
        .map_err(super::status::views_error)?
        .map(|d| d.release_version))
}

fn record(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    actor: &str,
    action: &str,
    payload: Value,
) -> Result<()> {
    let subject = format!(
        "release:{}",
        payload["version"].as_str().unwrap_or_default()
    );
    ctx.block_on(store.append_audit(&Audit::new(actor, action, subject, payload)))
        .map_err(store_error)?;
    Ok(())
}

fn stage(
    ctx: &Ctx<'_>,
    store: &dyn Store,
    actor: &str,
    version: &str,
    name: &str,
    result: &str,
) -> Result<()> {
    ctx.ui.status(name, result);
    ctx.block_on(stage_async(store, actor, version, name, result))
}

async fn stage_async(
    store: &dyn Store,
    actor: &str,
    version: &str,
    name: &str,
    result: &str,
) -> Result<()> {
    store
        .append_audit(&Audit::new(
            actor,
            "ship.stage",
            format!("release:{version}"),
            json!({ "version": version, "stage": name, "result": result }),
        ))
        .await
        .map_err(store_error)?;
    Ok(())
}
