//! `cutover audit` (list events), `cutover audit --env ENV --at TIME` (what served where at an
//! instant) and `cutover audit verify` (check the hash chain).

use crate::cli::{AuditArgs, AuditCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, Ui};
use chrono::{DateTime, Utc};

pub fn run(ctx: &Ctx<'_>, args: &AuditArgs) -> Result<()> {
    match args.command {
        Some(AuditCommand::Verify) => verify(ctx),
        None => match (&args.env, &args.at) {
            (Some(env), Some(at)) => served_at(ctx, env, at),
            _ => list(ctx, args),
        },
    }
}

/// `audit --env ENV --at TIME`: which release served on each host of ENV at that instant, from
/// the `deployment.switch` and `proof.record` events.
fn served_at(ctx: &Ctx<'_>, env: &str, at: &str) -> Result<()> {
    let at = parse_time(at, Utc::now())?;
    let store = ctx.store()?;
    // The configured hosts come first; an environment that left the configuration (or a project
    // without one) is still answered from the records.
    let hosts = match ctx.config() {
        Ok(config) => match config.environments.get(env) {
            Some(e) => super::env_host_names(e),
            None => {
                ctx.ui.warn(format!(
                    "environment `{env}` is not in cutover.toml; answering from the records only"
                ));
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    };
    let served = ctx
        .block_on(cutover_views::served_at(&*store, env, &hosts, at))
        .map_err(super::status::views_error)?;
    for w in &served.warnings {
        ctx.ui.warn(w);
    }
    if ctx.global.json {
        ctx.ui.print_json(
            &serde_json::to_value(&served).expect("the served-at document always serialises"),
        );
        return Ok(());
    }
    let when = super::status::time(served.at);
    if !served.deployed {
        ctx.ui.println(format!(
            "nothing served on {env} at {when}: no deployment had switched traffic there yet"
        ));
        return Ok(());
    }
    let mut out = format!("{} at {when}\n", Ui::paint(BOLD, env));
    for host in &served.hosts {
        let origin = match (host.deployment, host.since) {
            (Some(d), Some(since)) => {
                format!("  (deployment #{d}, since {})", super::status::time(since))
            }
            _ => String::new(),
        };
        if host.serving.is_empty() {
            out.push_str(&format!(
                "  {}  nothing served{origin}\n",
                Ui::paint(BOLD, &host.host)
            ));
            continue;
        }
        out.push_str(&format!("  {}{origin}\n", Ui::paint(BOLD, &host.host)));
        for s in &host.serving {
            let proof = s.proof.as_ref().map_or_else(
                || Ui::paint(DIM, "no proof of delivery yet"),
                |p| {
                    format!(
                        "proven by deployment #{} at {}",
                        p.deployment,
                        super::status::time(p.at)
                    )
                },
            );
            out.push_str(&format!(
                "    {:<6} {:<12} {:>4}  commit {}  artifact {}  {proof}\n",
                s.slot.as_deref().unwrap_or("-"),
                s.version,
                s.weight.map_or_else(|| "-".to_owned(), |w| format!("{w}%")),
                s.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
                s.artifact_sha256
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |d| format!("sha256:{d}")),
            ));
        }
    }
    ctx.ui.print(out);
    Ok(())
}

fn list(ctx: &Ctx<'_>, args: &AuditArgs) -> Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time(s, Utc::now()))
        .transpose()?;
    let limit = args.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let store = ctx.store()?;
    let filter = cutover_store::AuditFilter {
        since,
        action: args.action.clone(),
        subject: args.subject.clone(),
        // With a limit the newest events are the interesting ones; they are shown oldest first.
        descending: limit.is_some(),
        limit,
        ..Default::default()
    };
    let mut events = ctx
        .block_on(store.list_audit(&filter))
        .map_err(store_error)?;
    if filter.descending {
        events.reverse();
    }
    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({ "events": events }));
        return Ok(());
    }
    if events.is_empty() {
        ctx.ui.println("no audit events match");
        return Ok(());
    }
    let mut out = String::new();
    for e in &events {
        out.push_str(&format!(
            "{:>6}  {}  {:<24} {:<28} {}\n",
            e.seq,
            Ui::paint(DIM, e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            Ui::paint(BOLD, &e.action),
            e.subject,
            e.actor,
        ));
        if ctx.ui.verbose > 0 {
            out.push_str(&format!("        {}\n", e.payload));
        }
    }
    ctx.ui.print(out);
    Ok(())
}

fn verify(ctx: &Ctx<'_>) -> Result<()> {
    let store = ctx.store()?;
    let report = ctx.block_on(store.verify_audit()).map_err(store_error)?;
    let json = serde_json::json!({
        "ok": report.first_broken.is_none(),
        "events": report.events,
        "first_broken": report.first_broken.as_ref().map(|b| serde_json::json!({
            "seq": b.seq,
            "reason": b.reason.to_string(),
        })),
    });
    match report.first_broken {
        None => {
            if ctx.global.json {
                ctx.ui.print_json(&json);
            } else {
                ctx.ui.println(format!("audit chain intact: {} events verified", report.events));
            }
            Ok(())
        }
        Some(broken) => Err(CliError::failed(format!(
            "audit chain broken at seq {}: {}",
            broken.seq, broken.reason
        ))
        .with_cause(format!("{} events before it verified", report.events))
        .with_hint(format!(
            "event {} or its neighbours were altered, deleted, inserted or reordered outside cutover; \
             restore the store from a backup and compare",
            broken.seq
        ))
        .with_json(json)),
    }
}

/// `--since` and `--at`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC or with an offset), a date
/// (midnight UTC), `now`, or a duration ago such as `90m`, `2d` or `2h ago`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    cutover_views::parse_time(text, now)
        .map_err(|e| CliError::usage(e.to_string()).with_hint(e.hint()))
}
