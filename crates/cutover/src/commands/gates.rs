//! `cutover gates ENV [--version V] [--at TIME]`: every gate of an environment for a release,
//! open or holding, why, and when a holding gate opens.

use chrono::{DateTime, Utc};
use cutover_store::DeploymentFilter;

use crate::cli::GatesArgs;
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::ui::{GREEN, RED, Ui};

pub fn run(ctx: &Ctx<'_>, args: &GatesArgs) -> Result<()> {
    let config = ctx.config()?;
    let env = config
        .environment(&args.env)
        .ok_or_else(|| unknown_environment(&config, &args.env))?;
    let now = match &args.at {
        Some(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                CliError::usage(format!("--at `{text}` is not a time"))
                    .with_cause(e)
                    .with_hint("write an RFC 3339 time such as 2026-12-24T09:00:00Z")
            })?,
        None => Utc::now(),
    };
    let store = ctx.store()?;
    let (version, chosen) = match &args.version {
        Some(v) => (v.clone(), None),
        None => default_version(ctx, store.as_ref(), env.promote_from.as_deref())?,
    };
    let root = ctx.project_root()?;
    let vuln_db = super::vulns::configured_db_path(&root, Some(&config));
    let deployer = ctx.actor();
    let report = ctx
        .block_on(cutover_gates::evaluate_with_vulns(
            store.as_ref(),
            &config,
            &args.env,
            &version,
            &deployer,
            now,
            &cutover_gates::Overrides::default(),
            Some(&vuln_db),
        ))
        .map_err(super::approve::gate_error)?;
    if ctx.global.json {
        let mut doc = serde_json::to_value(&report)
            .map_err(|e| CliError::internal("cannot encode the gate report").with_cause(e))?;
        doc["open"] = report.open().into();
        doc["opens_at"] = serde_json::to_value(report.opens_at()).unwrap_or_default();
        doc["deployer"] = deployer.into();
        ctx.ui.print_json(&doc);
        return Ok(());
    }
    let mut out = format!(
        "Gates of {} for {version}{}, deployed by {deployer}, at {}\n",
        args.env,
        chosen.map(|c| format!(" ({c})")).unwrap_or_default(),
        fmt_time(now)
    );
    let width = report.gates.iter().map(|g| g.name.len()).max().unwrap_or(0);
    for g in &report.gates {
        let state = if g.open {
            Ui::paint(GREEN, "open   ")
        } else {
            Ui::paint(RED, "holding")
        };
        out.push_str(&format!("  {:<width$}  {state}  {}\n", g.name, g.reason));
        if let Some(at) = g.opens_at {
            out.push_str(&format!(
                "  {:<width$}           opens at {}\n",
                "",
                fmt_time(at)
            ));
        }
    }
    let holding = report.holding().count();
    out.push_str(&if holding == 0 {
        format!("all gates open: {version} may be deployed to {}", args.env)
    } else {
        let when = match report.opens_at() {
            Some(t) => format!("; they open by themselves at {}", fmt_time(t)),
            None => "; at least one needs an action".to_string(),
        };
        format!(
            "{holding} gate{} holding{when}",
            if holding == 1 { "" } else { "s" }
        )
    });
    ctx.ui.println(out);
    Ok(())
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The newest release live in `promote_from` (what a promotion would take), else the newest
/// recorded release; with a word on which it is.
fn default_version(
    ctx: &Ctx<'_>,
    store: &dyn cutover_store::Store,
    promote_from: Option<&str>,
) -> Result<(String, Option<String>)> {
    if let Some(from) = promote_from {
        let deployments = ctx
            .block_on(store.list_deployments(&DeploymentFilter {
                environment: Some(from.to_string()),
                ..DeploymentFilter::default()
            }))
            .map_err(store_error)?;
        if let Some(d) = deployments
            .iter()
            .filter(|d| d.state == "live" && d.finished_at.is_some())
            .max_by_key(|d| (d.finished_at, d.id))
        {
            return Ok((d.release_version.clone(), Some(format!("live in {from}"))));
        }
    }
    let releases = ctx.block_on(store.list_releases()).map_err(store_error)?;
    match releases.last() {
        Some(r) => Ok((r.version.clone(), Some("the newest release".to_string()))),
        None => Err(CliError::usage("there is no release yet")
            .with_hint("`cutover release` records one; or pass --version V")),
    }
}

/// The error for an environment that is not configured, naming the ones that are.
pub(super) fn unknown_environment(config: &cutover_config::Config, name: &str) -> CliError {
    let known: Vec<String> = config
        .environments
        .keys()
        .map(|k| format!("`{k}`"))
        .collect();
    let err = CliError::usage(format!("there is no environment `{name}` in cutover.toml"));
    if known.is_empty() {
        err.with_hint("cutover.toml defines no environments; add an `[environments.NAME]` table")
    } else {
        err.with_hint(format!("the environments are: {}", known.join(", ")))
    }
}
