//! `cutover status [ENV]`: what runs where. Per environment its current release and newest
//! deployment; per host whether its agent is connected, its slots and its router's split.
//! The records are read by `cutover_views`; this module renders them.

use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, GREEN, RED, Ui, YELLOW};
use cutover_views::{EnvStatus, ViewOptions, ViewsError};

pub fn run(ctx: &Ctx<'_>, args: &StatusArgs) -> Result<()> {
    let config = ctx.config()?;
    let store = ctx.store()?;
    let status = ctx
        .block_on(cutover_views::status(
            &*store,
            &config,
            args.env.as_deref(),
            &ViewOptions::at(chrono::Utc::now()),
        ))
        .map_err(views_error)?;
    for w in &status.warnings {
        ctx.ui.warn(w);
    }
    if ctx.global.json {
        ctx.ui.print_json(
            &serde_json::to_value(&status).expect("the status document always serialises"),
        );
        return Ok(());
    }
    if status.environments.is_empty() {
        ctx.ui
            .println("no environments; add `[environments.NAME]` tables to cutover.toml");
        return Ok(());
    }
    let mut out = String::new();
    for (i, env) in status.environments.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&render_env(env));
    }
    ctx.ui.print(out);
    Ok(())
}

fn render_env(env: &EnvStatus) -> String {
    let release = env.release.as_deref().map_or_else(
        || Ui::paint(DIM, "nothing live"),
        |v| format!("release {}", Ui::paint(BOLD, v)),
    );
    let deployment = env.deployment.as_ref().map_or_else(String::new, |d| {
        format!("  deployment #{} {}", d.id, paint_state(&d.state))
    });
    let mut out = format!("{}  {release}{deployment}\n", Ui::paint(BOLD, &env.name));
    let mut rows = vec![
        [
            "HOST",
            "CONNECTED",
            "LAST SEEN",
            "SLOT",
            "VERSION",
            "STATE",
            "HEALTH",
            "PID",
            "PORT",
            "SINCE",
            "TRAFFIC",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for host in &env.hosts {
        let head = vec![
            host.name.clone(),
            if host.connected { "yes" } else { "no" }.to_owned(),
            host.last_seen.map_or_else(|| "never".to_owned(), time),
        ];
        if host.slots.is_empty() {
            let mut row = head;
            row.push("-".to_owned());
            rows.push(row);
            continue;
        }
        for (i, slot) in host.slots.iter().enumerate() {
            let mut row = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); 3]
            };
            let active = host.router.active == Some(slot.slot);
            row.extend([
                format!("{}{}", slot.slot.as_str(), if active { "*" } else { "" }),
                slot.version.clone(),
                slot.state.clone(),
                slot.health.clone(),
                slot.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                slot.port.to_string(),
                slot.since.map_or_else(|| "-".to_owned(), time),
                host.router
                    .weights
                    .get(&slot.slot)
                    .map_or_else(|| "0%".to_owned(), |w| format!("{w}%")),
            ]);
            rows.push(row);
        }
    }
    out.push_str(&table(&rows, "  "));
    out
}

fn paint_state(state: &str) -> String {
    let style = match state {
        "live" => GREEN,
        "failed" | "rolled_back" | "rolling_back" => RED,
        _ => YELLOW,
    };
    Ui::paint(style, state)
}

/// A time for people: UTC, to the second.
pub(crate) fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Left-aligned columns separated by two spaces, each line prefixed by `indent`; the first row is
/// the header (dimmed). Trailing blanks are trimmed.
pub(crate) fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        let line = line.trim_end();
        if i == 0 {
            out.push_str(&Ui::paint(DIM, line));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A views error: an unknown environment or a bad time is the user's (exit 2).
pub(crate) fn views_error(e: ViewsError) -> CliError {
    let hint = e.hint();
    let err = if e.is_user_error() {
        CliError::usage(e.to_string())
    } else {
        CliError::internal(e.to_string())
    };
    err.with_hint_opt(hint)
}
