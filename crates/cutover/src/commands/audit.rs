//! `cutover audit` (list events) and `cutover audit verify` (check the hash chain).

use crate::cli::{AuditArgs, AuditCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, Ui};
use chrono::{DateTime, NaiveDate, Utc};

pub fn run(ctx: &Ctx<'_>, args: &AuditArgs) -> Result<()> {
    match args.command {
        Some(AuditCommand::Verify) => verify(ctx),
        None => list(ctx, args),
    }
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

/// `--since`: RFC 3339, a date (midnight UTC), or a duration ago such as `90m` or `2d`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(ago) = humantime::parse_duration(text)
        && let Ok(ago) = chrono::Duration::from_std(ago)
    {
        return Ok(now - ago);
    }
    Err(CliError::usage(format!("`{text}` is not a time"))
        .with_hint("give an RFC 3339 time (2026-11-26T14:32:00Z), a date (2026-11-26) or a duration ago (90m, 2d)"))
}
