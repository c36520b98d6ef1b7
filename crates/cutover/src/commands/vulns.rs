//! `cutover vulns` (known vulnerabilities in the project's bill of materials, offline, gated by
//! `[vulns]` in cutover.toml), `cutover vulns import PATH…` (OSV directories, OSV `all.zip`
//! exports, RustSec advisory-db checkouts) and `cutover vulns db status`.
//!
//! `cutover vulns --source PATH` on a new machine does not wait for a whole import: it imports the
//! advisories of the scanned packages only and marks the source partial. Later scans import what
//! their packages add; uses that need every advisory (`vulns affected`, the findings recorded
//! with a release) import partial sources whole first.

use crate::cli::{VulnsArgs, VulnsCommand, VulnsDbCommand};
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{BOLD, DIM, Ui};
use cutover_vuln::bomscan::{self, BomReport};
use cutover_vuln::db::{self, VulnDb};
use cutover_vuln::matching::PackageRef;
use cutover_vuln::policy::{self, Ignore, Policy, Violation};
use cutover_vuln::severity::Level;
use std::path::{Path, PathBuf};

pub fn run(ctx: &Ctx<'_>, args: &VulnsArgs) -> Result<()> {
    match &args.command {
        Some(VulnsCommand::Import { paths }) => import(ctx, args, paths),
        Some(VulnsCommand::Db(VulnsDbCommand::Status)) => status(ctx, args),
        Some(VulnsCommand::Affected { id }) => affected(ctx, args, id),
        None => report(ctx, args),
    }
}

/// The project's configuration when it has a cutover.toml (these commands also work without one).
fn config(ctx: &Ctx<'_>) -> Result<Option<cutover_config::Config>> {
    if ctx.config_path()?.exists() {
        ctx.config().map(Some)
    } else {
        Ok(None)
    }
}

/// `--db`, else `[vulns] db` (a directory holds `vulns.db`), else `.cutover/vulns.db`.
fn db_path(
    ctx: &Ctx<'_>,
    args: &VulnsArgs,
    config: Option<&cutover_config::Config>,
) -> Result<PathBuf> {
    match &args.db {
        Some(p) => Ok(p.clone()),
        None => Ok(configured_db_path(&ctx.project_root()?, config)),
    }
}

/// `[vulns] db` (a directory holds `vulns.db`), else `.cutover/vulns.db`, under `root`.
pub(super) fn configured_db_path(root: &Path, config: Option<&cutover_config::Config>) -> PathBuf {
    match config.and_then(|c| c.vulns.db.clone()) {
        Some(p) => {
            let p = root.join(p);
            if p.is_dir() || p.extension().is_none() {
                p.join("vulns.db")
            } else {
                p
            }
        }
        None => root.join(db::DEFAULT_PATH),
    }
}

/// The bill of materials recorded with a release, if it has one.
pub(super) fn recorded_bom(release: &cutover_store::Release) -> Result<Option<cutover_bom::Bom>> {
    let Some(bom) = &release.bom else {
        return Ok(None);
    };
    cutover_bom::Bom::from_cyclonedx_json(&bom.to_string())
        .map(Some)
        .map_err(|e| {
            CliError::internal(format!(
                "the bill of materials of release {} cannot be read",
                release.version
            ))
            .with_cause(e)
        })
}

/// The findings to store with a release: its BOM scanned against the project's vulnerability
/// database (`[vulns] db`, else `.cutover/vulns.db`) now. `None` (nothing stored) when there is
/// no database or it holds no advisories; a database that cannot be read is a warning, so that it
/// never stops a release.
pub(super) fn scan_for_record(
    ctx: &Ctx<'_>,
    root: &Path,
    config: Option<&cutover_config::Config>,
    bom: &cutover_bom::Bom,
) -> Option<serde_json::Value> {
    let path = configured_db_path(root, config);
    if !path.exists() {
        return None;
    }
    let now = chrono::Utc::now();
    let warn = |m: String| ctx.ui.warn(m);
    let scanned = ctx.block_on(async {
        let db = VulnDb::open(&path).await?;
        complete_partial_sources(&db, &warn).await?;
        let st = db.status(now).await?;
        let report = if st.advisories == 0 {
            None
        } else {
            Some(bomscan::scan(&db, bom).await?)
        };
        db.close().await;
        Ok::<_, db::DbError>(report.map(|r| (st, r)))
    });
    match scanned {
        Ok(Some((st, r))) => Some(serde_json::json!({
            "scanned_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "database": { "advisories": st.advisories, "newest_modified": st.newest_modified },
            "checked": r.checked,
            "findings": r.findings,
            "not_evaluated": r.not_evaluated.len(),
        })),
        Ok(None) => None,
        Err(e) => {
            ctx.ui.warn(format!(
                "the vulnerability database {} cannot be read ({e}): no findings stored with the release",
                path.display()
            ));
            None
        }
    }
}

/// Whether a finding stored with a release (JSON) is the same vulnerability of the same package
/// version as `f`: one id or alias in common (merging may have chosen another id since).
fn same_finding(stored: &serde_json::Value, f: &cutover_vuln::matching::Finding) -> bool {
    if stored["package"]["name"].as_str() != Some(f.package.name.as_str())
        || stored["package"]["version"].as_str() != Some(f.package.version.as_str())
    {
        return false;
    }
    let stored_ids: Vec<&str> = std::iter::once(&stored["id"])
        .chain(stored["aliases"].as_array().into_iter().flatten())
        .filter_map(|v| v.as_str())
        .collect();
    std::iter::once(&f.id)
        .chain(&f.aliases)
        .any(|id| stored_ids.contains(&id.as_str()))
}

fn open(ctx: &Ctx<'_>, path: &Path) -> Result<VulnDb> {
    ctx.block_on(VulnDb::open(path)).map_err(|e| {
        CliError::failed(format!(
            "cannot open the vulnerability database {}",
            path.display()
        ))
        .with_source_chain(&e)
    })
}

fn import_error(path: &Path, e: &cutover_vuln::import::ImportError) -> CliError {
    CliError::usage(format!("cannot import {}", path.display()))
        .with_cause(e)
        .with_hint("give a directory of OSV .json/.yaml files, an OSV all.zip export or a RustSec advisory-db checkout")
}

fn db_error(e: &db::DbError) -> CliError {
    CliError::failed("the import failed; the database is unchanged").with_source_chain(e)
}

fn report_partial_import(ctx: &Ctx<'_>, report: &db::ImportReport, packages: usize) {
    for s in &report.skipped {
        ctx.ui.warn(format!("skipped {}: {}", s.file, s.reason));
    }
    ctx.ui.status(
        "Imported",
        format!(
            "{} ({}): {} advisories for the {packages} packages scanned ({} new, {} updated; the rest is imported when a use needs it)",
            report.source,
            report.kind,
            report.read,
            report.added,
            report.updated,
        ),
    );
}

/// Before a scan of `packages`: imports what the database lacks for them from the `--source`
/// paths and from the sources it holds only in part. Creates the database when there is none
/// and sources are given. `None` when there is no database (and no source to make one).
fn import_for_scan(
    ctx: &Ctx<'_>,
    path: &Path,
    sources: &[PathBuf],
    packages: &[PackageRef],
) -> Result<Option<VulnDb>> {
    let sources: Vec<PathBuf> = sources
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let now = chrono::Utc::now();
    let load = |src: &Path| cutover_vuln::import::load_for(src, packages);
    let (db, rest) = if path.exists() {
        (open(ctx, path)?, &sources[..])
    } else {
        let Some((first, rest)) = sources.split_first() else {
            return Ok(None);
        };
        let loaded = load(first).map_err(|e| import_error(first, &e))?;
        let (db, report) = ctx
            .block_on(VulnDb::create_from(
                path,
                &first.display().to_string(),
                loaded,
                now,
            ))
            .map_err(|e| {
                CliError::failed(format!(
                    "cannot create the vulnerability database {}",
                    path.display()
                ))
                .with_source_chain(&e)
            })?;
        report_partial_import(ctx, &report, packages.len());
        (db, rest)
    };
    let st = ctx.block_on(db.status(now)).map_err(|e| {
        CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
    })?;
    let whole = |src: &str| st.sources.iter().any(|s| s.path == src && !s.partial);
    let mut todo: Vec<PathBuf> = rest
        .iter()
        .filter(|p| !whole(&p.display().to_string()))
        .cloned()
        .collect();
    for s in st.sources.iter().filter(|s| s.partial) {
        let p = PathBuf::from(&s.path);
        if !todo.contains(&p) && !sources.contains(&p) {
            todo.push(p);
        }
    }
    for src in todo {
        if !src.exists() {
            ctx.ui.warn(format!(
                "{} was imported only for the packages scanned then and is gone: findings in other packages are missed (hint: `cutover vulns import PATH` a whole source)",
                src.display()
            ));
            continue;
        }
        let loaded = load(&src).map_err(|e| import_error(&src, &e))?;
        let report = ctx
            .block_on(db.import(&src.display().to_string(), loaded, now))
            .map_err(|e| db_error(&e))?;
        if report.added + report.updated + report.withdrawn > 0 {
            report_partial_import(ctx, &report, packages.len());
        }
    }
    Ok(Some(db))
}

/// Imports whole the sources the database holds only in part, for a use that needs every
/// advisory. A source that is gone is a warning: what it lacks stays missing.
async fn complete_partial_sources(
    db: &VulnDb,
    warn: &dyn Fn(String),
) -> std::result::Result<(), db::DbError> {
    for src in db.partial_sources().await? {
        let p = Path::new(&src);
        match cutover_vuln::import::load(p) {
            Ok(loaded) => {
                db.import(&src, loaded, chrono::Utc::now()).await?;
            }
            Err(e) => warn(format!(
                "{src} was imported only in part and cannot be read now ({e}): findings in packages it was not imported for are missed"
            )),
        }
    }
    Ok(())
}

fn import(ctx: &Ctx<'_>, args: &VulnsArgs, paths: &[PathBuf]) -> Result<()> {
    let config = config(ctx)?;
    let db = open(ctx, &db_path(ctx, args, config.as_ref())?)?;
    let mut reports = Vec::new();
    for path in paths {
        let source = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        let loaded = cutover_vuln::import::load(&source).map_err(|e| import_error(path, &e))?;
        let report = ctx
            .block_on(db.import(&source.display().to_string(), loaded, chrono::Utc::now()))
            .map_err(|e| db_error(&e))?;
        for s in &report.skipped {
            ctx.ui.warn(format!("skipped {}: {}", s.file, s.reason));
        }
        ctx.ui.status(
            "Imported",
            format!(
                "{} ({}): {} advisories read, {} added, {} updated, {} unchanged, {} withdrawn, {} skipped",
                source.display(),
                report.kind,
                report.read,
                report.added,
                report.updated,
                report.unchanged,
                report.withdrawn,
                report.skipped.len()
            ),
        );
        reports.push(report);
    }
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::json!({ "imports": reports }));
    }
    ctx.block_on(db.close());
    Ok(())
}

fn age(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(
        u64::try_from(seconds.max(0)).unwrap_or(0),
    ))
    .to_string()
    .split(' ')
    .take(2)
    .collect::<Vec<_>>()
    .join(" ")
}

fn status(ctx: &Ctx<'_>, args: &VulnsArgs) -> Result<()> {
    let config = config(ctx)?;
    let path = db_path(ctx, args, config.as_ref())?;
    let db = open(ctx, &path)?;
    let st = ctx.block_on(db.status(chrono::Utc::now())).map_err(|e| {
        CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
    })?;
    let skipped = ctx.block_on(db.skipped()).map_err(|e| {
        CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
    })?;
    ctx.block_on(db.close());
    if ctx.global.json {
        let mut v = serde_json::to_value(&st).unwrap_or_default();
        v["skipped_files"] = serde_json::json!(skipped
            .iter()
            .map(|(src, s)| serde_json::json!({"source": src, "file": s.file, "reason": s.reason}))
            .collect::<Vec<_>>());
        ctx.ui.print_json(&v);
        return Ok(());
    }
    let mut out = format!(
        "{}  {}\n  {} advisories, {} withdrawn, {} skipped files{}\n",
        Ui::paint(BOLD, "Vulnerability database"),
        st.path,
        st.advisories,
        st.withdrawn,
        st.skipped,
        st.age_seconds
            .map(|a| format!(", last import {} ago", age(a)))
            .unwrap_or_default()
    );
    out.push_str(&format!("{}\n", Ui::paint(BOLD, "Sources")));
    if st.sources.is_empty() {
        out.push_str("  none yet: run `cutover vulns import PATH`\n");
    }
    for s in &st.sources {
        out.push_str(&format!(
            "  {}  {} ({}): {} advisories, {} skipped, imported {} ago\n",
            s.imported_at,
            s.path,
            s.kind,
            s.advisories,
            s.skipped,
            age(s.age_seconds)
        ));
    }
    if st.partial {
        out.push_str(&format!(
            "  {} some sources hold only the advisories of the packages scanned so far: \
             other packages' advisories are imported when a scan, `vulns affected` or a release \
             needs them (`cutover vulns import PATH` imports a source whole now)\n",
            Ui::paint(BOLD, "partial:")
        ));
    }
    out.push_str(&format!("{}\n", Ui::paint(BOLD, "By ecosystem")));
    for (eco, n) in &st.per_ecosystem {
        out.push_str(&format!("  {eco:<16} {n:>8}\n"));
    }
    for (src, s) in skipped
        .iter()
        .take(if ctx.ui.verbose > 0 { usize::MAX } else { 0 })
    {
        out.push_str(&format!(
            "  {} {src}: {}: {}\n",
            Ui::paint(DIM, "skipped"),
            s.file,
            s.reason
        ));
    }
    ctx.ui.print(out);
    Ok(())
}

fn policy_from(config: Option<&cutover_config::Config>) -> Policy {
    let Some(c) = config else {
        return Policy {
            fail_on: Some(Level::High),
            ignore: Vec::new(),
        };
    };
    use cutover_config::Severity as S;
    Policy {
        fail_on: match c.vulns.fail_on {
            S::None => None,
            S::Low => Some(Level::Low),
            S::Medium => Some(Level::Medium),
            S::High => Some(Level::High),
            S::Critical => Some(Level::Critical),
        },
        ignore: c
            .vulns
            .ignore
            .iter()
            .map(|ig| Ignore {
                id: ig.id.clone(),
                until: ig.until.and_then(|d| {
                    chrono::NaiveDate::from_ymd_opt(
                        i32::from(d.year),
                        u32::from(d.month),
                        u32::from(d.day),
                    )
                }),
                reason: ig.reason.clone(),
            })
            .collect(),
    }
}

fn row(f: &bomscan::BomFinding) -> String {
    let sev = match (f.finding.score, &f.finding.informational) {
        (_, Some(kind)) => kind.clone(),
        (Some(s), None) => format!("{} {s:.1}", f.finding.level),
        (None, None) => f.finding.level.to_string(),
    };
    let path = f
        .placements
        .first()
        .map(|p| p.path.join(" > "))
        .unwrap_or_default();
    format!(
        "  {:<20} {:<28} {:<14} {:<14} {:<12} {:<9} {}",
        f.finding.id,
        f.finding.package.name,
        f.finding.package.version,
        sev,
        f.finding.fixed.as_deref().unwrap_or("-"),
        format!("{:?}", f.scope).to_lowercase(),
        path
    )
}

fn report(ctx: &Ctx<'_>, args: &VulnsArgs) -> Result<()> {
    let config = config(ctx)?;
    let path = db_path(ctx, args, config.as_ref())?;
    if !path.exists() && args.source.is_empty() {
        return Err(CliError::usage(format!("no vulnerability database at {}", path.display()))
            .with_hint("import advisories first: `cutover vulns import PATH` (an OSV directory or all.zip, or a RustSec advisory-db checkout), or scan against one with `cutover vulns --source PATH`"));
    }
    let (bom, release) = match &args.release {
        Some(version) => {
            let (bom, release) = release_bom(ctx, version)?;
            (bom, Some(release))
        }
        None => (cutover_bom::discover_and_parse(&ctx.project_root()?), None),
    };
    let packages: Vec<PackageRef> = bom
        .components
        .iter()
        .filter_map(|c| bomscan::package_ref(&c.component))
        .collect();
    let db = match import_for_scan(ctx, &path, &args.source, &packages)? {
        Some(db) => db,
        None => open(ctx, &path)?,
    };
    let st = ctx.block_on(db.status(chrono::Utc::now())).map_err(|e| {
        CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
    })?;
    if st.advisories == 0 {
        return Err(CliError::usage(format!(
            "the vulnerability database {} holds no advisories",
            path.display()
        ))
        .with_hint("run `cutover vulns import PATH` first"));
    }
    let r: BomReport = ctx.block_on(bomscan::scan(&db, &bom)).map_err(|e| {
        CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
    })?;
    ctx.block_on(db.close());
    let policy = policy_from(config.as_ref());
    let findings: Vec<_> = r.findings.iter().map(|f| f.finding.clone()).collect();
    let outcome = policy::evaluate(&policy, &findings, chrono::Utc::now().date_naive());
    // With --release: the findings stored when it was recorded, and which of today's are new.
    let recorded = release.as_ref().and_then(|r| r.vulns.clone());
    let recorded_findings: Vec<serde_json::Value> = recorded
        .as_ref()
        .and_then(|v| v["findings"].as_array().cloned())
        .unwrap_or_default();
    let is_new: Vec<bool> = r
        .findings
        .iter()
        .map(|f| {
            recorded.is_some()
                && !recorded_findings
                    .iter()
                    .any(|s| same_finding(s, &f.finding))
        })
        .collect();
    let gone: Vec<&serde_json::Value> = recorded_findings
        .iter()
        .filter(|s| !r.findings.iter().any(|f| same_finding(s, &f.finding)))
        .collect();
    let mut doc = serde_json::json!({
        "checked": r.checked,
        "findings": r.findings,
        "not_evaluated": r.not_evaluated,
        "policy": { "fail_on": policy.fail_on, "passed": outcome.passed(), "violations": outcome.violations,
                    "ignored": outcome.ignored, "unused_ignores": outcome.unused_ignores },
    });
    if let Some(release) = &release {
        for (f, new) in doc["findings"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&is_new)
        {
            f["new_since_release"] = serde_json::json!(new);
        }
        doc["release"] = serde_json::json!({
            "version": release.version,
            "recorded": recorded,
            "new_since_release": r.findings.iter().zip(&is_new).filter(|(_, n)| **n)
                .map(|(f, _)| &f.finding.id).collect::<Vec<_>>(),
            "no_longer_found": gone.iter().map(|s| &s["id"]).collect::<Vec<_>>(),
        });
    }
    if ctx.global.json {
        // One document on stdout: a failing gate sends it with the error (see below).
        if outcome.passed() {
            ctx.ui.print_json(&doc);
        }
    } else {
        let mut out = format!(
            "{}  {} components checked against {} advisories: {} findings\n",
            Ui::paint(BOLD, "Known vulnerabilities"),
            r.checked,
            st.advisories,
            r.findings.len()
        );
        if let Some(release) = &release {
            out.push_str(&match &recorded {
                Some(rec) => format!(
                    "  release {}: {} findings stored when it was recorded ({}); {} new since (marked {}), {} no longer found\n",
                    release.version,
                    recorded_findings.len(),
                    rec["scanned_at"].as_str().unwrap_or("unknown time"),
                    is_new.iter().filter(|n| **n).count(),
                    Ui::paint(BOLD, "+"),
                    gone.len()
                ),
                None => format!(
                    "  release {}: no findings were stored when it was recorded (no vulnerability database then)\n",
                    release.version
                ),
            });
        }
        if !r.findings.is_empty() {
            out.push_str(&format!(
                "{}\n",
                Ui::paint(
                    BOLD,
                    format!(
                        "  {:<20} {:<28} {:<14} {:<14} {:<12} {:<9} {}",
                        "ID", "PACKAGE", "VERSION", "SEVERITY", "FIXED IN", "SCOPE", "PATH"
                    )
                )
            ));
            for (f, new) in r.findings.iter().zip(&is_new) {
                let line = row(f);
                if *new {
                    out.push_str(&Ui::paint(BOLD, "+"));
                    out.push_str(&line[1..]);
                } else {
                    out.push_str(&line);
                }
                out.push('\n');
                if ctx.ui.verbose > 0 {
                    if let Some(s) = &f.finding.summary {
                        out.push_str(&format!("      {}\n", Ui::paint(DIM, s)));
                    }
                    if !f.finding.aliases.is_empty() {
                        out.push_str(&format!(
                            "      {}\n",
                            Ui::paint(DIM, f.finding.aliases.join(", "))
                        ));
                    }
                }
            }
        }
        for g in &gone {
            out.push_str(&format!(
                "  {} {} in {}@{} (found when the release was recorded)\n",
                Ui::paint(DIM, "no longer found:"),
                g["id"].as_str().unwrap_or_default(),
                g["package"]["name"].as_str().unwrap_or_default(),
                g["package"]["version"].as_str().unwrap_or_default()
            ));
        }
        for (i, reason) in &outcome.ignored {
            out.push_str(&format!(
                "  {} {}: {reason}\n",
                Ui::paint(DIM, "ignored"),
                findings[*i].id
            ));
        }
        ctx.ui.print(out);
        for id in &outcome.unused_ignores {
            ctx.ui.warn(format!(
                "[[vulns.ignore]] {id} matches no finding: remove it?"
            ));
        }
    }
    if !outcome.passed() {
        let lines: Vec<String> = outcome
            .violations
            .iter()
            .map(|v| match v {
                Violation::Severity {
                    finding,
                    level,
                    threshold,
                } => {
                    let f = &findings[*finding];
                    format!(
                        "{} in {}@{}: severity {level} (fail_on = {threshold})",
                        f.id, f.package.name, f.package.version
                    )
                }
                Violation::ExpiredIgnore {
                    finding,
                    ignore_id,
                    until,
                    reason,
                } => {
                    let f = &findings[*finding];
                    format!(
                        "{} in {}@{}: the ignore of {ignore_id} expired on {until} ({reason})",
                        f.id, f.package.name, f.package.version
                    )
                }
            })
            .collect();
        let err = CliError::failed(format!("{} findings fail the vulnerability policy", lines.len()))
            .with_cause(lines.join("\n"))
            .with_hint("upgrade to the FIXED IN version, or add a [[vulns.ignore]] entry with a reason and an `until` date");
        if ctx.global.json {
            doc["error"] = err.to_json()["error"].clone();
            return Err(err.with_json(doc));
        }
        return Err(err);
    }
    Ok(())
}

/// The bill of materials recorded with release `version`, and the release.
fn release_bom(ctx: &Ctx<'_>, version: &str) -> Result<(cutover_bom::Bom, cutover_store::Release)> {
    let store = ctx.store()?;
    let release = ctx
        .block_on(store.get_release(version))
        .map_err(crate::context::store_error)?
        .ok_or_else(|| {
            CliError::usage(format!("there is no release {version}"))
                .with_hint("`cutover audit --action release.created` lists the recorded releases")
        })?;
    let Some(bom) = &release.bom else {
        return Err(CliError::usage(format!("release {version} has no recorded bill of materials"))
            .with_hint(format!(
                "it was recorded without one; `cutover bom --release {version}` rebuilds it from its tag"
            )));
    };
    let bom = cutover_bom::Bom::from_cyclonedx_json(&bom.to_string()).map_err(|e| {
        CliError::internal(format!(
            "the bill of materials of release {version} cannot be read"
        ))
        .with_cause(e)
    })?;
    Ok((bom, release))
}

/// The deployment whose release is live in `environment` now
/// ([`cutover_views::current_release`]).
pub(super) fn live_deployment(
    ctx: &Ctx<'_>,
    store: &dyn cutover_store::Store,
    environment: &str,
) -> Result<Option<cutover_store::Deployment>> {
    ctx.block_on(cutover_views::current_release(store, environment))
        .map_err(super::status::views_error)
}

/// `cutover vulns affected ID`: which recorded releases hold an affected version, and where such a
/// release is live now (the newest `live` deployment of each environment).
fn affected(ctx: &Ctx<'_>, args: &VulnsArgs, id: &str) -> Result<()> {
    let config = config(ctx)?;
    let path = db_path(ctx, args, config.as_ref())?;
    if !path.exists() {
        return Err(
            CliError::usage(format!("no vulnerability database at {}", path.display()))
                .with_hint("import advisories first: `cutover vulns import PATH`"),
        );
    }
    let db = open(ctx, &path)?;
    let warn = |m: String| ctx.ui.warn(m);
    ctx.block_on(complete_partial_sources(&db, &warn))
        .map_err(|e| db_error(&e))?;
    let store = ctx.store()?;
    let releases = ctx
        .block_on(store.list_releases())
        .map_err(crate::context::store_error)?;
    let wanted = id.to_ascii_uppercase();
    let mut hits = Vec::new();
    let mut without_bom = Vec::new();
    for release in &releases {
        let Some(bom_json) = &release.bom else {
            without_bom.push(release.version.clone());
            continue;
        };
        let bom = cutover_bom::Bom::from_cyclonedx_json(&bom_json.to_string()).map_err(|e| {
            CliError::internal(format!(
                "the bill of materials of release {} cannot be read",
                release.version
            ))
            .with_cause(e)
        })?;
        let report = ctx.block_on(bomscan::scan(&db, &bom)).map_err(|e| {
            CliError::failed("cannot read the vulnerability database").with_source_chain(&e)
        })?;
        let packages: Vec<_> = report
            .findings
            .iter()
            .filter(|f| {
                f.finding.id.eq_ignore_ascii_case(&wanted)
                    || f.finding
                        .aliases
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(&wanted))
            })
            .map(|f| {
                serde_json::json!({
                    "advisory": f.finding.id,
                    "package": f.finding.package.name,
                    "version": f.finding.package.version,
                    "fixed": f.finding.fixed,
                    "scope": f.scope,
                })
            })
            .collect();
        if !packages.is_empty() {
            hits.push((release.version.clone(), packages));
        }
    }
    ctx.block_on(db.close());

    // Where each affected release is live: the newest live deployment per configured environment.
    let mut live = Vec::new();
    if let Some(config) = &config {
        for (env, settings) in &config.environments {
            if let Some(d) = live_deployment(ctx, store.as_ref(), env)?
                && hits.iter().any(|(v, _)| *v == d.release_version)
            {
                live.push(serde_json::json!({
                    "environment": env,
                    "release": d.release_version,
                    "deployment": d.id,
                    "hosts": settings.hosts,
                }));
            }
        }
    }
    let doc = serde_json::json!({
        "advisory": id,
        "releases": hits.iter().map(|(v, p)| serde_json::json!({"version": v, "packages": p})).collect::<Vec<_>>(),
        "live": live,
        "releases_without_bom": without_bom,
        "releases_checked": releases.len() - without_bom.len(),
    });
    if ctx.global.json {
        ctx.ui.print_json(&doc);
        return Ok(());
    }
    let mut out = String::new();
    if hits.is_empty() {
        out.push_str(&format!(
            "no recorded release is affected by {id} ({} releases checked)\n",
            releases.len() - without_bom.len()
        ));
    } else {
        out.push_str(&format!(
            "{}\n",
            Ui::paint(BOLD, format!("Releases affected by {id}"))
        ));
        for (version, packages) in &hits {
            for p in packages {
                out.push_str(&format!(
                    "  {version:<12} {}@{}  fixed in {}\n",
                    p["package"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default(),
                    p["fixed"].as_str().unwrap_or("(no fix)"),
                ));
            }
        }
        if live.is_empty() {
            out.push_str(&format!(
                "{}\n",
                Ui::paint(DIM, "none of them is live in any environment")
            ));
        } else {
            out.push_str(&format!("{}\n", Ui::paint(BOLD, "Live now")));
            for l in &live {
                out.push_str(&format!(
                    "  {:<12} {} on {}\n",
                    l["environment"].as_str().unwrap_or_default(),
                    l["release"].as_str().unwrap_or_default(),
                    l["hosts"]
                        .as_array()
                        .map(|h| h
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                ));
            }
        }
    }
    if !without_bom.is_empty() {
        out.push_str(&format!(
            "{}\n",
            Ui::paint(
                DIM,
                format!("not checked (no recorded BOM): {}", without_bom.join(", "))
            )
        ));
    }
    ctx.ui.print(out);
    Ok(())
}
