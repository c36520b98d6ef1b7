//! The application's database around a deployment (`[database]`): before the switch a recovery
//! point and the release's expand migrations; after the observation window its contract
//! migrations (or, with `contract = "next-release"`, at the next deployment); on rollback the
//! reverted releases' down migrations, or the recovery point restored. Each is a recorded step
//! (`recovery_point`, `drill`, `migrate`) with its intent written before and its result after.
//!
//! With `[database.drill] on_release = true` every release's deployment runs the restore drill
//! right after its recovery point is taken (or, when the release brings no expand migration and
//! so takes no point, on the latest one): a failed drill fails the deployment before any
//! migration runs or traffic moves, unless `on_failure = "warn"`.
//!
//! Which migrations a release brings: the migrations directory *at the release's commit* (read
//! with `git`, argv only) when the project is a git work tree that holds the commit, so that a
//! deployment of an older release never runs migrations written after it; else the directory as
//! it is now (a project without git). The source is written in the step's intent.

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use cutover_appdb::{AppDb, AppDbError, Migration, Phase, Selection, recovery};
use cutover_config::{Contract, Drill, DrillFailure};
use cutover_core::deploy::State;
use cutover_store::{Audit, Change, DeploymentFilter, NewDeploymentStep};
use serde_json::{Value, json};

use crate::run::Run;
use crate::{DeployError, Engine};

/// The outcome of a database step: `Err(reason)` fails the deployment (before traffic moves).
pub(crate) type DbResult = Result<Result<(), String>, DeployError>;

fn open(eng: &Engine) -> Result<Option<(AppDb, Contract)>, DeployError> {
    let Some(cfg) = &eng.config.database else {
        return Ok(None);
    };
    let db = AppDb::from_config(cfg, &eng.project_root, &|k| std::env::var(k).ok())?;
    Ok(Some((db, cfg.contract)))
}

/// The migrations of `commit` (see the module's doc), with where they were read from.
pub(crate) fn release_migrations(
    db: &AppDb,
    root: &Path,
    commit: &str,
) -> Result<(Vec<Migration>, String), AppDbError> {
    let rel = db
        .migrations_dir()
        .strip_prefix(root)
        .unwrap_or(db.migrations_dir())
        .to_string_lossy()
        .into_owned();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let has_commit =
        !commit.is_empty() && git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_some();
    if !has_commit {
        return Ok((db.load_migrations()?, format!("{rel}/ (working tree)")));
    }
    let listed = git(&[
        "ls-tree",
        "-z",
        "--name-only",
        commit,
        "--",
        &format!("{rel}/"),
    ])
    .unwrap_or_default();
    let mut files = Vec::new();
    for path in listed.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let text = git(&["show", &format!("{commit}:{path}")]).ok_or_else(|| AppDbError::Io {
            path: path.clone().into(),
            source: std::io::Error::other(format!("`git show {commit}:{path}` failed")),
        })?;
        files.push((
            name,
            format!("{commit}:{path}"),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    let short = commit.get(..12).unwrap_or(commit);
    Ok((
        cutover_appdb::migrations::from_files(files)?,
        format!("{rel}/ at {short}"),
    ))
}

async fn begin_step(run: &Run<'_>, step: &str, intent: Value) -> Result<i64, DeployError> {
    let applied = run
        .eng
        .store
        .apply(
            &[Change::InsertDeploymentStep(NewDeploymentStep {
                deployment_id: run.dep.id,
                step: step.to_owned(),
                intent: intent.clone(),
                at: Utc::now(),
            })],
            &Audit::new(
                &run.eng.actor,
                format!("db.{step}.start"),
                format!("deployment:{}", run.dep.id),
                json!({ "environment": run.dep.environment, "version": run.dep.release_version, "intent": intent }),
            ),
        )
        .await?;
    applied.id(0).ok_or_else(|| DeployError::Interrupted {
        id: run.dep.id,
        reason: "the store returned no step id".into(),
    })
}

async fn end_step(run: &Run<'_>, id: i64, result: Value, audit: Audit) -> Result<(), DeployError> {
    run.eng
        .store
        .apply(
            &[Change::SetDeploymentStepResult {
                id,
                result,
                at: Utc::now(),
            }],
            &audit,
        )
        .await?;
    Ok(())
}

fn ids(v: &[cutover_appdb::MigrationRef]) -> Vec<String> {
    v.iter().map(cutover_appdb::MigrationRef::id).collect()
}

/// Runs `phase` migrations of `set` (only `only` versions when given) as a recorded `migrate`
/// step. `Ok(Err(reason))` when they failed.
async fn migrate_step(
    run: &Run<'_>,
    db: &AppDb,
    set: &[Migration],
    source: &str,
    phase: Phase,
    pending: &[cutover_appdb::MigrationRef],
) -> DbResult {
    let id = begin_step(
        run,
        "migrate",
        json!({ "phase": phase.as_str(), "migrations": ids(pending), "source": source, "target": db.target() }),
    )
    .await?;
    run.say(format!("{phase} migration(s): {}", ids(pending).join(", ")));
    let subset: Vec<Migration> = set
        .iter()
        .filter(|m| pending.iter().any(|p| p.version == m.version))
        .cloned()
        .collect();
    let subject = format!("deployment:{}", run.dep.id);
    match db
        .migrate(&subset, Some(phase), Some(&run.release.version))
        .await
    {
        Ok(done) => {
            end_step(
                run,
                id,
                json!({ "ok": true, "applied": ids(&done) }),
                Audit::new(
                    &run.eng.actor,
                    "db.migrate",
                    subject,
                    json!({ "environment": run.dep.environment, "version": run.release.version, "phase": phase.as_str(), "applied": ids(&done) }),
                ),
            )
            .await?;
            Ok(Ok(()))
        }
        Err(e) => {
            let reason = format!("{phase} migration failed: {e}");
            end_step(
                run,
                id,
                json!({ "ok": false, "error": e.to_string(), "hint": e.hint() }),
                Audit::new(
                    &run.eng.actor,
                    "db.migrate.fail",
                    subject,
                    json!({ "environment": run.dep.environment, "version": run.release.version, "phase": phase.as_str(), "error": e.to_string() }),
                ),
            )
            .await?;
            Ok(Err(reason))
        }
    }
}

/// Before anything of the release starts: deferred contract migrations (next-release), then a
/// recovery point and the expand migrations; a rollback deployment reverts instead.
pub(crate) async fn before_switch(run: &mut Run<'_>) -> DbResult {
    if !matches!(
        run.state,
        State::Queued | State::Preparing | State::Verifying
    ) {
        return Ok(Ok(()));
    }
    let Some((db, contract)) = open(run.eng)? else {
        return Ok(Ok(()));
    };
    if run.dep.trigger == "rollback" {
        return revert(run, &db).await;
    }
    let (set, source) = match release_migrations(&db, &run.eng.project_root, &run.release.commit) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("the release's migrations: {e}"))),
    };
    let plan = match db.plan(&set).await {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("application database: {e}"))),
    };
    if contract == Contract::NextRelease {
        let deferred = deferred_contract(run).await?;
        let due: Vec<_> = plan
            .contract
            .iter()
            .filter(|m| deferred.contains(&m.version))
            .cloned()
            .collect();
        if !due.is_empty()
            && let Err(reason) =
                migrate_step(run, &db, &set, &source, Phase::Contract, &due).await?
        {
            return Ok(Err(reason));
        }
    }
    // Whether a recovery point of this database can hold anything a drill query could find.
    let had_history = if release_drill(run.eng).is_some() {
        match db.applied().await {
            Ok(a) => !a.is_empty(),
            Err(e) => return Ok(Err(format!("application database: {e}"))),
        }
    } else {
        false
    };
    if plan.expand.is_empty() {
        // No new recovery point: the drill proves the latest one still restores.
        let latest = recovery::list(&run.eng.project_root, &run.dep.environment)?.pop();
        return match latest {
            Some(point) => drill_step(run, &db, &point, had_history).await,
            None => Ok(Ok(())),
        };
    }
    let rp = begin_step(
        run,
        "recovery_point",
        json!({ "environment": run.dep.environment, "before": ids(&plan.expand), "engine": db.target() }),
    )
    .await?;
    run.say("taking a recovery point of the application database");
    match db
        .snapshot(&run.dep.environment, Some(&run.release.version))
        .await
    {
        Ok(point) => {
            end_step(
                run,
                rp,
                json!({ "ok": true, "id": point.id, "file": point.file, "digest": point.digest_label(), "size": point.size }),
                recovery::audit_of(&run.eng.actor, &point),
            )
            .await?;
            if let Err(reason) = drill_step(run, &db, &point, had_history).await? {
                return Ok(Err(reason));
            }
        }
        Err(e) => {
            end_step(
                run,
                rp,
                json!({ "ok": false, "error": e.to_string() }),
                Audit::new(
                    &run.eng.actor,
                    "db.recovery_point.fail",
                    format!("env:{}", run.dep.environment),
                    json!({ "environment": run.dep.environment, "error": e.to_string() }),
                ),
            )
            .await?;
            return Ok(Err(format!("recovery point failed: {e}")));
        }
    }
    migrate_step(run, &db, &set, &source, Phase::Expand, &plan.expand).await
}

/// `[database.drill]` when it asks to run on every release.
fn release_drill(eng: &Engine) -> Option<&Drill> {
    eng.config
        .database
        .as_ref()
        .and_then(|d| d.drill.as_ref())
        .filter(|d| d.on_release)
}

/// The restore drill of `point` as a recorded `drill` step when `[database.drill] on_release`
/// asks for it, with a `db.drill` (passed), `db.drill.fail` or `db.drill.skip` audit event.
/// `Ok(Err(reason))` when it failed and `on_failure = "fail"` (the default): the deployment
/// fails before any migration runs or traffic moves. A point of a database without any
/// migration yet (the first release's) holds nothing the query could find: skipped.
async fn drill_step(
    run: &Run<'_>,
    db: &AppDb,
    point: &cutover_appdb::RecoveryPoint,
    had_history: bool,
) -> DbResult {
    let Some(drill) = release_drill(run.eng) else {
        return Ok(Ok(()));
    };
    let on_failure = match drill.on_failure {
        DrillFailure::Fail => "fail",
        DrillFailure::Warn => "warn",
    };
    let id = begin_step(
        run,
        "drill",
        json!({ "recovery_point": point.id, "digest": point.digest_label(), "query": drill.query, "on_failure": on_failure }),
    )
    .await?;
    let subject = format!("env:{}", run.dep.environment);
    if !had_history {
        let why = "the recovery point was taken before the first migration: nothing to query yet";
        end_step(
            run,
            id,
            json!({ "ok": true, "skipped": why }),
            Audit::new(
                &run.eng.actor,
                "db.drill.skip",
                subject,
                json!({ "environment": run.dep.environment, "version": run.release.version, "id": point.id, "reason": why }),
            ),
        )
        .await?;
        run.say(format!("restore drill skipped: {why}"));
        return Ok(Ok(()));
    }
    run.say(format!(
        "restore drill: recovery point {} into a scratch database",
        point.id
    ));
    let r = db.drill(point, &drill.query).await;
    let rows = r.as_ref().ok().map(|d| d.rows);
    let error = r.as_ref().err().map(ToString::to_string);
    end_step(
        run,
        id,
        json!({ "ok": r.is_ok(), "rows": rows, "error": error, "hint": r.as_ref().err().and_then(AppDbError::hint) }),
        Audit::new(
            &run.eng.actor,
            if r.is_ok() { "db.drill" } else { "db.drill.fail" },
            subject,
            json!({ "environment": run.dep.environment, "version": run.release.version, "id": point.id, "digest": point.digest_label(), "ok": r.is_ok(), "rows": rows, "error": error, "on_failure": on_failure }),
        ),
    )
    .await?;
    match r {
        Ok(report) => {
            run.say(format!(
                "restore drill passed: the query returned {} row(s)",
                report.rows
            ));
            Ok(Ok(()))
        }
        Err(e) if drill.on_failure == DrillFailure::Warn => {
            run.say(format!(
                "warning: the restore drill of recovery point {} failed: {e} (on_failure = \"warn\": the deployment goes on)",
                point.id
            ));
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(format!(
            "the restore drill of recovery point {} failed: {e}",
            point.id
        ))),
    }
}

/// The contract migrations the previous live deployment of the environment deferred.
async fn deferred_contract(run: &Run<'_>) -> Result<Vec<i64>, DeployError> {
    let Some(prev) = live_deployments(run.eng, &run.dep.environment)
        .await?
        .into_iter()
        .find(|d| d.id != run.dep.id)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in run.eng.store.list_deployment_steps(prev.id).await? {
        if s.step == "migrate"
            && s.intent["phase"] == "contract"
            && let Some(v) = s.intent["deferred"].as_array()
        {
            out.extend(v.iter().filter_map(Value::as_i64));
        }
    }
    Ok(out)
}

async fn live_deployments(
    eng: &Engine,
    environment: &str,
) -> Result<Vec<cutover_store::Deployment>, DeployError> {
    Ok(eng
        .store
        .list_deployments(&DeploymentFilter {
            environment: Some(environment.to_owned()),
            unfinished_only: false,
            limit: None,
        })
        .await?
        .into_iter()
        .filter(|d| d.state == State::Live.as_str() && d.finished_at.is_some())
        .collect())
}

/// Once the release is live (the observation window passed): its contract migrations, or their
/// deferral to the next deployment. A failure here leaves the release live (the schema stays
/// expanded, which both releases work with) and is recorded and said.
pub(crate) async fn after_live(run: &mut Run<'_>) -> Result<(), DeployError> {
    if run.dep.trigger == "rollback" {
        return Ok(());
    }
    let Some((db, contract)) = open(run.eng)? else {
        return Ok(());
    };
    let (set, source) = match release_migrations(&db, &run.eng.project_root, &run.release.commit) {
        Ok(v) => v,
        Err(e) => {
            run.say(format!("contract migrations not run: {e}"));
            return Ok(());
        }
    };
    let plan = match db.plan(&set).await {
        Ok(p) => p,
        Err(e) => {
            run.say(format!("contract migrations not run: {e}"));
            return Ok(());
        }
    };
    if plan.contract.is_empty() {
        return Ok(());
    }
    if contract == Contract::NextRelease {
        let deferred: Vec<i64> = plan.contract.iter().map(|m| m.version).collect();
        let id = begin_step(
            run,
            "migrate",
            json!({ "phase": "contract", "deferred": deferred, "migrations": ids(&plan.contract), "source": source }),
        )
        .await?;
        end_step(
            run,
            id,
            json!({ "ok": true, "deferred_to": "next-release" }),
            Audit::new(
                &run.eng.actor,
                "db.migrate.defer",
                format!("deployment:{}", run.dep.id),
                json!({ "environment": run.dep.environment, "version": run.release.version, "deferred": ids(&plan.contract) }),
            ),
        )
        .await?;
        run.say(format!(
            "contract migration(s) {} deferred to the next release",
            ids(&plan.contract).join(", ")
        ));
        return Ok(());
    }
    if let Err(reason) =
        migrate_step(run, &db, &set, &source, Phase::Contract, &plan.contract).await?
    {
        run.say(format!(
            "{reason} (the release stays live on the expanded schema)"
        ));
    }
    Ok(())
}

/// The releases a rollback to `to` reverts: those of the live deployments newer than the newest
/// live deployment of `to`.
async fn reverted_releases(
    eng: &Engine,
    environment: &str,
    to: &str,
) -> Result<Vec<String>, DeployError> {
    let mut out = Vec::new();
    for d in live_deployments(eng, environment).await? {
        if d.release_version == to {
            break;
        }
        if !out.contains(&d.release_version) {
            out.push(d.release_version);
        }
    }
    Ok(out)
}

/// The recovery point taken before the oldest of `releases` was deployed.
fn point_for(
    eng: &Engine,
    environment: &str,
    releases: &[String],
) -> Result<Option<cutover_appdb::RecoveryPoint>, DeployError> {
    let Some(oldest) = releases.last() else {
        return Ok(None);
    };
    Ok(recovery::list(&eng.project_root, environment)?
        .into_iter()
        .rev()
        .find(|p| p.release.as_deref() == Some(oldest.as_str())))
}

/// Refuses, before anything changes, a rollback whose database part cannot be done: an
/// irreversible migration (or one without a down migration) lies between, and no recovery point
/// restore was asked for (or there is none to restore).
pub(crate) async fn check_rollback(
    eng: &Engine,
    environment: &str,
    to: &str,
) -> Result<(), DeployError> {
    let Some((db, _)) = open(eng)? else {
        return Ok(());
    };
    let releases = reverted_releases(eng, environment, to).await?;
    let todo = db
        .rollback_plan(&Selection::Releases(releases.clone()))
        .await?;
    if todo.is_empty() {
        return Ok(());
    }
    if eng.restore_recovery_point {
        if point_for(eng, environment, &releases)?.is_none() {
            return Err(AppDbError::NoRecoveryPoint(environment.to_owned()).into());
        }
        return Ok(());
    }
    cutover_appdb::check_reversible(&todo)?;
    Ok(())
}

/// A rollback deployment's database part: the reverted releases' down migrations (contract
/// first), or the recovery point restored.
async fn revert(run: &mut Run<'_>, db: &AppDb) -> DbResult {
    let releases = reverted_releases(run.eng, &run.dep.environment, &run.release.version).await?;
    let todo = match db
        .rollback_plan(&Selection::Releases(releases.clone()))
        .await
    {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("application database: {e}"))),
    };
    if todo.is_empty() {
        return Ok(Ok(()));
    }
    let names: Vec<String> = todo
        .iter()
        .map(cutover_appdb::AppliedMigration::id)
        .collect();
    if run.eng.restore_recovery_point {
        let Some(point) = point_for(run.eng, &run.dep.environment, &releases)? else {
            return Ok(Err(format!(
                "no recovery point of {} to restore",
                run.dep.environment
            )));
        };
        let id = begin_step(
            run,
            "recovery_point",
            json!({ "restore": point.id, "digest": point.digest_label(), "instead_of_down": names }),
        )
        .await?;
        run.say(format!(
            "restoring recovery point {} (data written since it was taken is lost)",
            point.id
        ));
        let r = db.restore(&point).await;
        let ok = r.is_ok();
        end_step(
            run,
            id,
            json!({ "ok": ok, "error": r.as_ref().err().map(ToString::to_string) }),
            Audit::new(
                &run.eng.actor,
                if ok { "db.restore" } else { "db.restore.fail" },
                format!("env:{}", run.dep.environment),
                json!({ "environment": run.dep.environment, "id": point.id, "digest": point.digest_label(), "error": r.as_ref().err().map(ToString::to_string) }),
            ),
        )
        .await?;
        return Ok(r.map_err(|e| format!("restoring the recovery point failed: {e}")));
    }
    let id = begin_step(
        run,
        "migrate",
        json!({ "phase": "down", "migrations": names, "releases": releases }),
    )
    .await?;
    run.say(format!("down migration(s): {}", names.join(", ")));
    let r = db.rollback(&Selection::Releases(releases), &[]).await;
    let ok = r.is_ok();
    let done: Vec<String> = r
        .as_ref()
        .map(|v| v.iter().map(cutover_appdb::AppliedMigration::id).collect())
        .unwrap_or_default();
    end_step(
        run,
        id,
        json!({ "ok": ok, "reverted": done, "error": r.as_ref().err().map(ToString::to_string) }),
        Audit::new(
            &run.eng.actor,
            if ok { "db.migrate.down" } else { "db.migrate.fail" },
            format!("deployment:{}", run.dep.id),
            json!({ "environment": run.dep.environment, "version": run.release.version, "reverted": done, "error": r.as_ref().err().map(ToString::to_string) }),
        ),
    )
    .await?;
    Ok(r.map(drop)
        .map_err(|e| format!("down migrations failed: {e}")))
}
