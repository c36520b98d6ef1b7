//! `cutover incident open --env ENV [--caused-by DEPLOYMENT] [--summary S]`,
//! `cutover incident resolve ID [--restored-by DEPLOYMENT]` and `cutover incident ls [--env ENV]`:
//! incidents linked to the deployment that caused them and the one that restored service
//! (`cutover_metrics::{open_incident, resolve_incident}`); they feed the change failure rate and
//! the recovery time of `cutover metrics`.

use super::metrics::{known_environment, metrics_error};
use super::status::{table, time};
use crate::cli::{IncidentArgs, IncidentCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &IncidentArgs) -> Result<()> {
    match &args.command {
        IncidentCommand::Open {
            env,
            caused_by,
            summary,
        } => open(ctx, env, *caused_by, summary),
        IncidentCommand::Resolve { id, restored_by } => resolve(ctx, *id, *restored_by),
        IncidentCommand::Ls { env } => ls(ctx, env.as_deref()),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| CliError::internal("cannot serialise the incident").with_cause(e))
}

fn deployment_text(id: Option<i64>) -> String {
    id.map_or_else(|| "-".to_owned(), |id| format!("#{id}"))
}

fn open(ctx: &Ctx<'_>, env: &str, caused_by: Option<i64>, summary: &str) -> Result<()> {
    let store = ctx.store()?;
    known_environment(ctx, &*store, env)?;
    let opened = ctx
        .block_on(cutover_metrics::open_incident(
            &*store,
            env,
            summary,
            caused_by,
            &ctx.actor(),
            chrono::Utc::now(),
        ))
        .map_err(metrics_error)?;
    if ctx.global.json {
        ctx.ui.print_json(&json(&opened)?);
        return Ok(());
    }
    let i = &opened.incident;
    let cause = match (i.caused_by, opened.caused_by_default) {
        (Some(id), true) => format!("caused by deployment #{id} (live now)"),
        (Some(id), false) => format!("caused by deployment #{id}"),
        (None, _) => "no deployment is live there, so no cause is recorded".to_owned(),
    };
    ctx.ui
        .status("Opened", format!("incident #{} in {env}, {cause}", i.id));
    ctx.ui.println(format!(
        "resolve it with `cutover incident resolve {}` once service is restored",
        i.id
    ));
    Ok(())
}

fn resolve(ctx: &Ctx<'_>, id: i64, restored_by: Option<i64>) -> Result<()> {
    let store = ctx.store()?;
    let resolved = ctx
        .block_on(cutover_metrics::resolve_incident(
            &*store,
            id,
            restored_by,
            &ctx.actor(),
            chrono::Utc::now(),
        ))
        .map_err(metrics_error)?;
    if ctx.global.json {
        ctx.ui.print_json(&json(&resolved)?);
        return Ok(());
    }
    let i = &resolved.incident;
    let how = match i.restored_by {
        Some(by) => format!("restored by deployment #{by}"),
        None => "restored without a deployment".to_owned(),
    };
    ctx.ui.status(
        "Resolved",
        format!("incident #{} in {}, {how}", i.id, i.environment),
    );
    Ok(())
}

fn ls(ctx: &Ctx<'_>, env: Option<&str>) -> Result<()> {
    let store = ctx.store()?;
    let incidents = ctx
        .block_on(store.list_incidents(env))
        .map_err(store_error)?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::json!({ "incidents": json(&incidents)? }));
        return Ok(());
    }
    if incidents.is_empty() {
        ctx.ui.println("no incidents");
        return Ok(());
    }
    let mut rows = vec![
        [
            "ID",
            "ENVIRONMENT",
            "OPENED",
            "RESOLVED",
            "CAUSED BY",
            "RESTORED BY",
            "SUMMARY",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for i in &incidents {
        rows.push(vec![
            format!("#{}", i.id),
            i.environment.clone(),
            time(i.opened_at),
            i.resolved_at.map_or_else(|| "open".to_owned(), time),
            deployment_text(i.caused_by),
            deployment_text(i.restored_by),
            i.summary.clone(),
        ]);
    }
    ctx.ui.print(table(&rows, ""));
    Ok(())
}
