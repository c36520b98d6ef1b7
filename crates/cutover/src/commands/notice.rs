//! `cutover notice`: the advance shipping notice of the coming release (version, date drafted,
//! expected deployment, changes with breaking ones first and their migration notes, early access,
//! slots for the BOM diff and the vulnerabilities new since the release live in production),
//! recorded in the store with its audit event.
//! `--send` marks it sent (audit `notice.sent`), keeps a copy under `.cutover/notices/`, and
//! runs the notification dispatcher once, which delivers it (and anything else pending) to the
//! `[notify]` channels that take the `notice` event.

use super::plan::{Selection, optional_config, release_error, release_options};
use crate::cli::{NoticeArgs, NoticeFormatArg};
use crate::context::{Ctx, STATE_DIR, store_error};
use crate::error::{CliError, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use cutover_notes::RenderOptions;
use cutover_notes::notice::{Notice, NoticeFormat};

pub fn run(ctx: &Ctx<'_>, args: &NoticeArgs) -> Result<()> {
    let root = ctx.project_root()?;
    let config = optional_config(ctx)?;
    let options = release_options(
        &root,
        config.as_ref(),
        &Selection {
            pre: args.pre.as_deref(),
            version: args.version.as_deref(),
            ..Selection::default()
        },
    )?;
    let planned = cutover_release::plan(&root, &options).map_err(|e| release_error(&e))?;
    for warning in &planned.warnings {
        ctx.ui.warn(warning);
    }
    if planned.plan.next.bump == cutover_core::version::BumpKind::None {
        return Err(CliError::usage(format!(
            "nothing to announce: no releasable change since {}",
            planned.plan.current.as_ref().map_or("the start", |c| c.tag.as_str())
        ))
        .with_hint("only feat, fix, perf, reverts and breaking changes make a release; `--version V` forces one"));
    }

    // SOURCE_DATE_EPOCH pins the drafting time too, so a notice can be reproduced byte for byte.
    let now: DateTime<Utc> = options
        .source_date_epoch
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(Utc::now);
    // Without --eta: the first moment production's freeze windows allow (now, if none applies).
    let eta = match &args.eta {
        Some(text) => Some(parse_eta(text)?),
        None => config
            .as_ref()
            .and_then(|c| c.environments.get("production"))
            .and_then(|prod| next_deploy_window(&prod.freeze, now))
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    };
    let name = config.as_ref().map_or_else(
        || {
            root.file_name().map_or_else(
                || "project".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            )
        },
        |c| c.project.name.clone(),
    );
    let early_access = config.as_ref().and_then(|c| {
        c.environments
            .iter()
            .filter(|(env, _)| env.as_str() != "production")
            .find_map(|(_, e)| e.url.clone())
    });
    let mut notice = Notice::from_plan(
        &planned.plan,
        &name,
        &planned.next_tag,
        &now.to_rfc3339_opts(SecondsFormat::Secs, true),
        eta,
        early_access,
    );
    if let Some((base, next)) = boms_since(ctx, &root, planned.plan.current.as_ref()) {
        notice.bom_diff = Some(bom_diff(&base, &next));
        // New vulnerabilities are those production does not run yet: compared with the release
        // live there when the deployment records know one, else with the last release.
        let live = config.as_ref().and_then(|c| live_in_production(ctx, c));
        if let Some((env, version, _)) = &live {
            ctx.ui.detail(format!(
                "vulnerabilities compared with {version}, live in {env}"
            ));
        }
        let vuln_base = live.as_ref().map_or(&base, |(_, _, bom)| bom);
        notice.vulnerabilities = new_vulnerabilities(ctx, config.as_ref(), &root, vuln_base, &next);
    }
    let format = match args.format {
        NoticeFormatArg::Markdown => NoticeFormat::Markdown,
        NoticeFormatArg::Html => NoticeFormat::Html,
        NoticeFormatArg::Json => NoticeFormat::Json,
    };
    let render = RenderOptions {
        issue_url: options.issue_url,
    };
    let content = notice
        .render(format, &render)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let format_name = match format {
        NoticeFormat::Markdown => "markdown",
        NoticeFormat::Html => "html",
        NoticeFormat::Json => "json",
    };
    let recipients: Vec<String> = config
        .as_ref()
        .and_then(|c| c.notify.as_ref())
        .map(|n| n.recipients.clone())
        .unwrap_or_default();

    let store = ctx.store()?;
    let version = notice.version;
    let outcome = ctx
        .block_on(store.apply_one(
            cutover_store::Change::InsertNotice(cutover_store::NewNotice {
                version: version.clone(),
                content: content.clone(),
                format: format_name.to_owned(),
                recipients: recipients.clone(),
                created_at: now,
            }),
            &cutover_store::Audit::new(
                ctx.actor(),
                "notice.created",
                format!("release/{version}"),
                serde_json::json!({ "version": version, "format": format_name, "recipients": recipients }),
            ),
        ))
        .map_err(store_error)?;
    let id = match outcome {
        cutover_store::Outcome::Id(id) => id,
        cutover_store::Outcome::Done => {
            return Err(CliError::internal(
                "the store did not return the notice's id",
            ));
        }
    };

    let mut sent_to = None;
    let mut notifications = None;
    if args.send {
        let dir = root.join(STATE_DIR).join("notices");
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::internal(format!("cannot create `{}`", dir.display())).with_cause(e)
        })?;
        let ext = match format {
            NoticeFormat::Markdown => "md",
            NoticeFormat::Html => "html",
            NoticeFormat::Json => "json",
        };
        let path = dir.join(format!("{version}-{id}.{ext}"));
        // With `[notify]` the dispatcher delivers it below; the file stays as the sent copy.
        let channel = if config.as_ref().is_some_and(|c| c.notify.is_some()) {
            "notify"
        } else {
            "file"
        };
        std::fs::write(&path, &content).map_err(|e| {
            CliError::internal(format!("cannot write `{}`", path.display())).with_cause(e)
        })?;
        ctx.block_on(store.apply_one(
            cutover_store::Change::MarkNoticeSent { id, at: Utc::now() },
            &cutover_store::Audit::new(
                ctx.actor(),
                "notice.sent",
                format!("release/{version}"),
                serde_json::json!({ "id": id, "channel": channel, "path": path }),
            ),
        ))
        .map_err(store_error)?;
        sent_to = Some(path);
        notifications = dispatch_notifications(ctx);
    }

    if ctx.global.json {
        ctx.ui.print_json(&serde_json::json!({
            "id": id,
            "version": version,
            "format": format_name,
            "content": content,
            "recipients": recipients,
            "sent_to": sent_to,
            "notifications": notifications,
        }));
    } else {
        ctx.ui.print(&content);
        ctx.ui
            .status("Recorded", format!("notice {id} for {version}"));
        if let Some(path) = &sent_to {
            ctx.ui.status("Sent", path.display());
        }
    }
    Ok(())
}

/// Runs the notification dispatcher once (bounded by [`cutover_notify::DEFAULT_CLI_DEADLINE`]):
/// what is pending in the audit log goes to the `[notify]` channels. Call it at the end of the
/// commands that write notifying events (deploy, rollback, release, notice --send, incident).
/// Never fails: problems become warnings. `None` without a `[notify]` section (or a readable
/// config and store).
pub(crate) fn dispatch_notifications(ctx: &Ctx<'_>) -> Option<cutover_notify::DispatchReport> {
    let config = optional_config(ctx).ok()??;
    config.notify.as_ref()?;
    let root = ctx.project_root().ok()?;
    let store = ctx.store().ok()?;
    let report = ctx.block_on(cutover_notify::dispatch_for_cli(
        store.as_ref(),
        &config,
        &root,
    ));
    for problem in report.problems() {
        ctx.ui.warn(problem);
    }
    for channel in &report.channels {
        if !channel.sent.is_empty() {
            ctx.ui.status(
                "Notified",
                format!(
                    "{} ({} notification{})",
                    channel.channel,
                    channel.sent.len(),
                    if channel.sent.len() == 1 { "" } else { "s" }
                ),
            );
        }
    }
    if report.deadline_reached {
        ctx.ui
            .warn("notifications left to send: the next command (or `cutover serve`) sends them");
    }
    Some(report)
}

/// The first moment at or after `now`, in quarter-hour steps over the next 60 days, that no
/// freeze window covers; `None` when every step is frozen or a window's time zone is unknown.
fn next_deploy_window(
    windows: &[cutover_config::FreezeWindow],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let zones: Vec<jiff::tz::TimeZone> = windows
        .iter()
        .map(|w| {
            if w.tz.eq_ignore_ascii_case("UTC") {
                Ok(jiff::tz::TimeZone::UTC)
            } else {
                jiff::tz::TimeZone::get(&w.tz)
            }
        })
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    let start = now.timestamp();
    (0..60 * 24 * 4)
        .map(|step| start + step * 900)
        .find_map(|t| {
            let at = jiff::Timestamp::from_second(t).ok()?;
            let frozen = windows.iter().zip(&zones).any(|(window, zone)| {
                let local = at.to_zoned(zone.clone());
                let date = cutover_config::Date {
                    year: u16::try_from(local.year()).unwrap_or(0),
                    month: u8::try_from(local.month()).unwrap_or(1),
                    day: u8::try_from(local.day()).unwrap_or(1),
                };
                let weekday = cutover_config::Weekday::from_index(
                    u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0),
                );
                let minute =
                    u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
                        .unwrap_or(0);
                window.contains_local(date, weekday, minute)
            });
            if frozen {
                None
            } else {
                DateTime::from_timestamp(t, 0)
            }
        })
}

/// `--eta`: an RFC 3339 time or a `YYYY-MM-DD` date, kept as the user wrote it once validated.
fn parse_eta(text: &str) -> Result<String> {
    let text = text.trim();
    if DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
    {
        return Ok(text.to_owned());
    }
    Err(CliError::usage(format!("--eta `{text}` is not a date"))
        .with_hint("write a date such as 2026-12-01 or a time such as 2026-12-01T09:00:00Z"))
}

/// The bills of materials of the last release and of this one: the release record's BOM when it
/// has one, else the BOM of its tag. `None` (the slots stay empty, with a warning) when the base
/// cannot be computed.
fn boms_since(
    ctx: &Ctx<'_>,
    root: &std::path::Path,
    current: Option<&cutover_notes::Current>,
) -> Option<(cutover_bom::Bom, cutover_bom::Bom)> {
    let options = cutover_bom::DiscoverOptions::default();
    let base = match current {
        None => cutover_bom::Bom::default(),
        Some(current) => {
            let recorded = ctx.store().ok().and_then(|store| {
                let release = ctx.block_on(store.get_release(&current.version)).ok()??;
                super::vulns::recorded_bom(&release).ok()?
            });
            match recorded {
                Some(bom) => bom,
                None => {
                    match cutover_bom::gitrev::discover_at_revision(root, &current.tag, &options) {
                        Ok(bom) => bom,
                        Err(e) => {
                            ctx.ui
                                .warn(format!("no bill of materials for {}: {e}", current.tag));
                            return None;
                        }
                    }
                }
            }
        }
    };
    Some((base, cutover_bom::discover_and_parse_with(root, &options)))
}

/// The release live in production now (see [`cutover_views::production_environment`]) per the deployment
/// records, with its recorded bill of materials: `(environment, version, bom)`. `None` when
/// nothing is live there, or the release has no readable BOM.
fn live_in_production(
    ctx: &Ctx<'_>,
    config: &cutover_config::Config,
) -> Option<(String, String, cutover_bom::Bom)> {
    let env = cutover_views::production_environment(config)?;
    let store = ctx.store().ok()?;
    let deployment = super::vulns::live_deployment(ctx, store.as_ref(), &env).ok()??;
    let release = ctx
        .block_on(store.get_release(&deployment.release_version))
        .ok()??;
    let bom = super::vulns::recorded_bom(&release).ok()??;
    Some((env, release.version, bom))
}

fn bom_diff(base: &cutover_bom::Bom, next: &cutover_bom::Bom) -> cutover_notes::notice::BomDiff {
    let diff = cutover_bom::diff(base, next);
    let entry = |e: &cutover_bom::diff::DiffEntry| cutover_notes::notice::Component {
        name: e.name.clone(),
        version: e.version.clone(),
    };
    let change = |c: &cutover_bom::diff::VersionChange| cutover_notes::notice::ComponentChange {
        name: c.name.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
    };
    cutover_notes::notice::BomDiff {
        added: diff.added.iter().map(entry).collect(),
        removed: diff.removed.iter().map(entry).collect(),
        changed: diff
            .upgraded
            .iter()
            .chain(&diff.downgraded)
            .map(change)
            .collect(),
    }
}

/// Findings of this release's BOM that the baseline's (the release live in production, else the
/// last release) did not have, from the local vulnerability database (`[vulns] db`, else
/// `.cutover/vulns.db`); `None` without a database.
fn new_vulnerabilities(
    ctx: &Ctx<'_>,
    config: Option<&cutover_config::Config>,
    root: &std::path::Path,
    base: &cutover_bom::Bom,
    next: &cutover_bom::Bom,
) -> Option<Vec<cutover_notes::notice::Vulnerability>> {
    let path = super::vulns::configured_db_path(root, config);
    if !path.exists() {
        return None;
    }
    let scanned = ctx.block_on(async {
        let db = cutover_vuln::db::VulnDb::open(&path).await.ok()?;
        let before = cutover_vuln::bomscan::scan(&db, base).await.ok()?;
        let after = cutover_vuln::bomscan::scan(&db, next).await.ok()?;
        db.close().await;
        Some((before, after))
    });
    let Some((before, after)) = scanned else {
        ctx.ui.warn(format!(
            "the vulnerability database {} cannot be read",
            path.display()
        ));
        return None;
    };
    let known: std::collections::BTreeSet<(String, String, String)> = before
        .findings
        .iter()
        .map(|f| {
            (
                f.finding.id.clone(),
                f.finding.package.name.clone(),
                f.finding.package.version.clone(),
            )
        })
        .collect();
    Some(
        after
            .findings
            .iter()
            .filter(|f| {
                !known.contains(&(
                    f.finding.id.clone(),
                    f.finding.package.name.clone(),
                    f.finding.package.version.clone(),
                ))
            })
            .map(|f| cutover_notes::notice::Vulnerability {
                id: f.finding.id.clone(),
                package: f.finding.package.name.clone(),
                version: f.finding.package.version.clone(),
                severity: Some(match f.finding.score {
                    Some(score) => format!("{:?} ({score})", f.finding.level).to_lowercase(),
                    None => format!("{:?}", f.finding.level).to_lowercase(),
                }),
                summary: f.finding.summary.clone(),
                fixed_in: f.finding.fixed.clone(),
            })
            .collect(),
    )
}
