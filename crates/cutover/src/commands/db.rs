//! `cutover db status | plan | migrate | rollback | snapshot | restore | drill`: the application's
//! database (`[database]`) by hand: what is applied, what a release would run, migrations up and
//! down, recovery points, restore and the restore drill. Each change is recorded in the audit log.

use cutover_appdb::{AppDb, AppDbError, Phase, Selection, recovery};
use cutover_store::Audit;
use serde_json::json;

use crate::cli::{DbArgs, DbCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &DbArgs) -> Result<()> {
    let config = ctx.config()?;
    let Some(cfg) = &config.database else {
        return Err(CliError::usage("cutover.toml has no [database] section").with_hint(
            "add [database] with `engine = \"postgres\"` (or \"sqlite\") and `url = { env = \"DATABASE_URL\" }`",
        ));
    };
    let root = ctx.project_root()?;
    let db = AppDb::from_config(cfg, &root, &|k| std::env::var(k).ok()).map_err(db_error)?;
    match &args.command {
        DbCommand::Status => status(ctx, &db),
        DbCommand::Plan => plan(ctx, &db),
        DbCommand::Migrate { phase } => migrate(ctx, &db, phase.as_deref()),
        DbCommand::Rollback { to } => rollback(ctx, &db, *to),
        DbCommand::Snapshot { env } => snapshot(ctx, &db, env),
        DbCommand::Restore { env, id, yes } => restore(ctx, &db, env, id.as_deref(), *yes),
        DbCommand::Drill { env, id, query } => {
            drill(ctx, &db, env, id.as_deref(), query.as_deref())
        }
    }
}

/// An application-database error for the terminal: bad input exits 2, the rest 1.
pub(crate) fn db_error(e: AppDbError) -> CliError {
    let hint = e.hint();
    let err = if e.is_user_error() {
        CliError::usage(e.to_string())
    } else {
        CliError::failed(e.to_string())
    };
    err.with_hint_opt(hint)
}

fn audit(ctx: &Ctx<'_>, action: &str, subject: String, payload: serde_json::Value) -> Result<()> {
    let store = ctx.store()?;
    ctx.block_on(store.append_audit(&Audit::new(ctx.actor(), action, subject, payload)))
        .map_err(store_error)?;
    Ok(())
}

fn status(ctx: &Ctx<'_>, db: &AppDb) -> Result<()> {
    let all = db.load_migrations().map_err(db_error)?;
    let s = ctx.block_on(db.status(&all)).map_err(db_error)?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&s).unwrap_or_default());
        return Ok(());
    }
    ctx.ui.println(format!("database: {}", s.target));
    for a in &s.applied {
        let drift = if s.drifted.iter().any(|d| d.version == a.version) {
            "  DRIFTED"
        } else {
            ""
        };
        ctx.ui.println(format!(
            "  applied  {}  {:<8}  {}  {}{}{}",
            a.id(),
            a.phase.as_str(),
            a.applied_at,
            a.release.as_deref().unwrap_or("(by hand)"),
            if a.irreversible || !a.has_down {
                "  irreversible"
            } else {
                ""
            },
            drift
        ));
    }
    for p in &s.pending {
        ctx.ui
            .println(format!("  pending  {}  {}", p.id(), p.phase.as_str()));
    }
    for v in &s.unknown {
        ctx.ui.warn(format!(
            "migration {v:04} is applied but has no file in {}",
            db.migrations_dir().display()
        ));
    }
    if let Some(d) = s.drifted.first() {
        return Err(db_error(AppDbError::Drift {
            id: format!("{:04}_{}", d.version, d.name),
            path: d.path.clone(),
            recorded: d.recorded.clone(),
            now: d.now.clone(),
        }));
    }
    Ok(())
}

fn plan(ctx: &Ctx<'_>, db: &AppDb) -> Result<()> {
    let all = db.load_migrations().map_err(db_error)?;
    let p = ctx.block_on(db.plan(&all)).map_err(db_error)?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&p).unwrap_or_default());
        return Ok(());
    }
    if p.is_empty() {
        ctx.ui.println("nothing to migrate");
    }
    for (what, list) in [
        ("before the switch (expand)", &p.expand),
        ("after the observation window (contract)", &p.contract),
    ] {
        if list.is_empty() {
            continue;
        }
        ctx.ui.println(format!("{what}:"));
        for m in list {
            ctx.ui.println(format!(
                "  {}{}{}",
                m.id(),
                if m.irreversible {
                    "  (irreversible)"
                } else {
                    ""
                },
                if m.no_transaction {
                    "  (no transaction: a failure may leave it partially applied)"
                } else {
                    ""
                }
            ));
        }
    }
    for d in &p.drifted {
        ctx.ui.warn(format!(
            "{:04}_{} drifted: {} was edited after it ran",
            d.version, d.name, d.path
        ));
    }
    Ok(())
}

fn migrate(ctx: &Ctx<'_>, db: &AppDb, phase: Option<&str>) -> Result<()> {
    let phase = match phase {
        None => None,
        Some(p) => Some(Phase::parse(p).ok_or_else(|| {
            CliError::usage(format!(
                "unknown phase `{p}`; expected `expand` or `contract`"
            ))
        })?),
    };
    let all = db.load_migrations().map_err(db_error)?;
    let done = ctx
        .block_on(db.migrate(&all, phase, None))
        .map_err(db_error)?;
    let ids: Vec<String> = done.iter().map(cutover_appdb::MigrationRef::id).collect();
    if !done.is_empty() {
        audit(
            ctx,
            "db.migrate",
            "db:application".into(),
            json!({ "applied": ids, "phase": phase.map(Phase::as_str) }),
        )?;
    }
    if ctx.global.json {
        ctx.ui.print_json(&json!({ "applied": ids }));
    } else if ids.is_empty() {
        ctx.ui.println("nothing to migrate");
    } else {
        for id in &ids {
            ctx.ui.status("applied", id);
        }
    }
    Ok(())
}

fn rollback(ctx: &Ctx<'_>, db: &AppDb, to: Option<i64>) -> Result<()> {
    let to = match to {
        Some(v) => v,
        None => {
            // The newest applied migration only.
            let applied = ctx.block_on(db.applied()).map_err(db_error)?;
            let Some(last) = applied.iter().map(|a| a.version).max() else {
                ctx.ui.println("nothing is applied");
                return Ok(());
            };
            applied
                .iter()
                .map(|a| a.version)
                .filter(|v| *v < last)
                .max()
                .unwrap_or(last - 1)
        }
    };
    let all = db.load_migrations().map_err(db_error)?;
    let done = ctx
        .block_on(db.rollback(&Selection::AfterVersion(to), &all))
        .map_err(db_error)?;
    let ids: Vec<String> = done
        .iter()
        .map(cutover_appdb::AppliedMigration::id)
        .collect();
    if !done.is_empty() {
        audit(
            ctx,
            "db.migrate.down",
            "db:application".into(),
            json!({ "reverted": ids }),
        )?;
    }
    if ctx.global.json {
        ctx.ui.print_json(&json!({ "reverted": ids }));
    } else if ids.is_empty() {
        ctx.ui.println(format!("nothing is applied after {to:04}"));
    } else {
        for id in &ids {
            ctx.ui.status("reverted", id);
        }
    }
    Ok(())
}

fn snapshot(ctx: &Ctx<'_>, db: &AppDb, env: &str) -> Result<()> {
    check_env(ctx, env)?;
    let point = ctx.block_on(db.snapshot(env, None)).map_err(db_error)?;
    let store = ctx.store()?;
    ctx.block_on(recovery::record(&*store, &ctx.actor(), &point))
        .map_err(db_error)?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&point).unwrap_or_default());
    } else {
        ctx.ui.status(
            "recovery point",
            format!(
                "{} ({} bytes, {}) in {}",
                point.id,
                point.size,
                point.digest_label(),
                point.dir.display()
            ),
        );
    }
    Ok(())
}

fn check_env(ctx: &Ctx<'_>, env: &str) -> Result<()> {
    let config = ctx.config()?;
    if !config.environments.contains_key(env) {
        let known: Vec<&String> = config.environments.keys().collect();
        return Err(CliError::usage(format!("unknown environment `{env}`"))
            .with_hint(format!("configured: {known:?}")));
    }
    Ok(())
}

fn restore(ctx: &Ctx<'_>, db: &AppDb, env: &str, id: Option<&str>, yes: bool) -> Result<()> {
    check_env(ctx, env)?;
    let point = recovery::find(db.project_root(), env, id).map_err(db_error)?;
    if !yes {
        return Err(CliError::usage(format!(
            "restoring recovery point {} replaces the database {}: data written since {} is lost",
            point.id,
            db.target(),
            point.created_at.to_rfc3339()
        ))
        .with_hint("add --yes to restore it"));
    }
    ctx.ui.warn(format!(
        "restoring {}: data written since {} is lost",
        point.id,
        point.created_at.to_rfc3339()
    ));
    ctx.block_on(db.restore(&point)).map_err(db_error)?;
    audit(
        ctx,
        "db.restore",
        format!("env:{env}"),
        json!({ "environment": env, "id": point.id, "digest": point.digest_label() }),
    )?;
    if ctx.global.json {
        ctx.ui.print_json(&json!({ "restored": point.id }));
    } else {
        ctx.ui.status("restored", &point.id);
    }
    Ok(())
}

fn drill(
    ctx: &Ctx<'_>,
    db: &AppDb,
    env: &str,
    id: Option<&str>,
    query: Option<&str>,
) -> Result<()> {
    check_env(ctx, env)?;
    let query = query.or(db.drill_query()).ok_or_else(|| {
        CliError::usage("no drill query").with_hint(
            "add [database.drill] query = \"SELECT 1 FROM my_table LIMIT 1\" or pass --query",
        )
    })?;
    let point = recovery::find(db.project_root(), env, id).map_err(db_error)?;
    let result = ctx.block_on(db.drill(&point, query));
    audit(
        ctx,
        if result.is_ok() {
            "db.drill"
        } else {
            "db.drill.fail"
        },
        format!("env:{env}"),
        json!({ "environment": env, "id": point.id, "ok": result.is_ok(), "rows": result.as_ref().ok().map(|r| r.rows), "error": result.as_ref().err().map(ToString::to_string) }),
    )?;
    let report = result.map_err(|e| {
        let hint = e.hint();
        CliError::failed(e.to_string()).with_hint_opt(hint)
    })?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        ctx.ui.status(
            "drill passed",
            format!(
                "recovery point {} restored into a scratch database; the query returned {} row(s)",
                report.recovery_point, report.rows
            ),
        );
    }
    Ok(())
}
