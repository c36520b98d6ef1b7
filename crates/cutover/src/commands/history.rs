//! `cutover history [ENV] [--limit N]`: deployments newest first, with why the failed and
//! rolled-back ones ended so.

use super::status::{table, time, views_error};
use crate::cli::HistoryArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use cutover_views::HistoryEntry;

pub fn run(ctx: &Ctx<'_>, args: &HistoryArgs) -> Result<()> {
    let store = ctx.store()?;
    let entries = ctx
        .block_on(cutover_views::history(
            &*store,
            args.env.as_deref(),
            Some(args.limit),
        ))
        .map_err(views_error)?;
    if let Some(env) = &args.env
        && entries.is_empty()
    {
        // An environment removed from the configuration keeps its history; one that is in
        // neither is a typo.
        let known = ctx
            .config()
            .map(|c| c.environments.contains_key(env))
            .unwrap_or(false);
        if !known {
            return Err(CliError::usage(format!(
                "unknown environment `{env}`: it is not in cutover.toml and has no deployments"
            ))
            .with_hint("`cutover history` without an environment lists every deployment"));
        }
    }
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::json!({ "deployments": entries }));
        return Ok(());
    }
    if entries.is_empty() {
        ctx.ui.println("no deployments yet");
        return Ok(());
    }
    let mut rows = vec![
        [
            "ID",
            "ENVIRONMENT",
            "VERSION",
            "STRATEGY",
            "STATE",
            "TRIGGER",
            "ACTOR",
            "STARTED",
            "DURATION",
            "NOTE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for e in &entries {
        rows.push(vec![
            format!("#{}", e.id),
            e.environment.clone(),
            e.version.clone(),
            e.strategy.clone(),
            e.state.clone(),
            e.trigger.clone(),
            e.actor.clone(),
            time(e.created_at),
            e.duration_ms.map_or_else(|| "-".to_owned(), duration),
            note(e),
        ]);
    }
    ctx.ui.print(table(&rows, ""));
    Ok(())
}

fn note(e: &HistoryEntry) -> String {
    let mut parts = Vec::new();
    if let Some(id) = e.reverts {
        parts.push(format!("reverts #{id}"));
    }
    if let Some(reason) = &e.reason {
        parts.push(reason.clone());
    }
    parts.join("; ")
}

/// `850ms`, `12.3s`, `4m05s`, `2h03m`.
fn duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}
