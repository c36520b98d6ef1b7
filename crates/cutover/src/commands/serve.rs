//! `cutover serve`: the JSON API, `/metrics`, the OpenAPI document and the agent protocol on one
//! listener (plain http, or https with `--tls-cert/--tls-key`), with queue workers in the same
//! process, until Ctrl-C or SIGTERM; then it stops gracefully: it stops accepting, ends the
//! dashboard's event streams, lets requests in flight (for at most
//! [`cutover_server::SHUTDOWN_GRACE`]) and running jobs finish, and exits 0. At start it resumes
//! the deployments a killed process left unfinished; the deploy job that created one, run again
//! once its lease (`--job-lease`) ran out, adopts it rather than deploying again
//! (`cutover_deploy::pipeline`), and the environment's lock keeps the two from driving it at
//! once. Several `cutover serve` may share one PostgreSQL database (`--database`).

use std::net::SocketAddr;

use cutover_server::ServerState;
use serde_json::json;

use crate::cli::ServeArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &ServeArgs) -> Result<()> {
    let addr: SocketAddr = args.listen.parse().map_err(|e| {
        CliError::usage(format!(
            "--listen {:?} is not an address; expected IP:PORT",
            args.listen
        ))
        .with_cause(e)
        .with_hint("e.g. `--listen 127.0.0.1:7447`, or `0.0.0.0:7447` for every interface")
    })?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(cutover_control::tls_config(cert, key).map_err(|e| {
            CliError::usage("cannot use the TLS certificate and key")
                .with_source_chain(&e)
                .with_hint(
                    "--tls-cert takes the PEM certificate chain, --tls-key its PEM private key",
                )
        })?),
        _ => None,
    };
    let root = ctx.project_root()?;
    let config = ctx.config()?;
    let store = ctx.store()?;
    // Pipeline jobs (deploy, promote, rollback, ship) run as child processes of this executable,
    // on the same project and database.
    let exe = std::env::current_exe().map_err(|e| {
        CliError::internal("cannot find the running cutover executable").with_cause(e)
    })?;
    let database = ctx.global.database.clone().filter(|d| !d.trim().is_empty());
    let pipeline =
        cutover_queue::pipeline::PipelineHandler::new(exe.clone(), root.clone(), database.clone());
    // The dashboard and the webhooks in share the listener and the server's layers (tokens,
    // metrics); the webhooks carry their own signatures.
    let mut extra = axum::Router::new();
    let webhooks = cutover_webhooks::WebhookState::from_config(store.clone(), &config, &|s| {
        s.resolve(&root, &|k| std::env::var(k).ok())
    })
    .map_err(|e| {
        CliError::usage("cannot read the secrets of [webhooks]")
            .with_cause(e)
            .with_hint("a secret is `{ env = \"VAR\" }` or `{ file = \"path\" }`")
    })?;
    if let Some(webhooks) = webhooks {
        extra = extra.merge(cutover_webhooks::routes(webhooks));
    }
    // The Atom feed of `[notify.atom]`, built from the audit log on each request.
    if let Some(notify) = config.notify.clone()
        && let Some(feed) = notify.atom.clone()
    {
        let feed_store = store.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let title = feed
            .title
            .clone()
            .unwrap_or_else(|| config.project.name.clone());
        extra = extra.route(
            "/feed.xml",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let (store, notify, mut feed) = (feed_store.clone(), notify.clone(), feed.clone());
                feed.title = Some(title.clone());
                async move {
                    let host = headers
                        .get(axum::http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("localhost");
                    let entries =
                        cutover_notify::feed_entries(store.as_ref(), &notify, &feed).await;
                    let xml =
                        cutover_notify::atom_feed(&entries, &feed, &format!("{scheme}://{host}"));
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/atom+xml; charset=utf-8",
                        )],
                        xml,
                    )
                }
            }),
        );
    }
    // The notification channels, served continuously (the CLI's commands also send what is
    // pending when they end; the cursors' compare-and-set keeps each notification single).
    let channels = config.notify.as_ref().map(|notify| {
        let (chans, problems) =
            cutover_notify::channels(notify, &cutover_notify::env_resolver(&root));
        for problem in problems {
            ctx.ui.warn(format!(
                "notification channel {}: {}",
                problem.channel, problem.message
            ));
        }
        chans
    });
    let state = ServerState::new(store.clone(), config, root.clone(), args.public_read);
    // The dashboard's event streams end when the server begins to stop (a browser left open
    // must not hold the shutdown up).
    let mut web = cutover_web::WebState::new(store.clone(), state.config.clone());
    web.shutdown = state.shutdown.clone();
    extra = extra.merge(cutover_web::routes(web));
    let router = cutover_server::app_with(state.clone(), extra);
    let workers = usize::from(args.workers);
    ctx.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            CliError::usage(format!("cannot listen on {addr}"))
                .with_cause(e)
                .with_hint("another process may use the port; pick another with --listen")
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        let scheme = if tls.is_some() { "https" } else { "http" };
        if tls.is_none() && !local.ip().is_loopback() {
            ctx.ui.warn(format!(
                "serving plain http on {local}: API and agent tokens travel in clear; keep it to a trusted network"
            ));
        }
        if ctx.global.json {
            ctx.ui.print_json(
                &json!({ "listen": local.to_string(), "url": format!("{scheme}://{local}") }),
            );
        }
        ctx.ui.status(
            "serving",
            format!(
                "the API, /metrics and the agent protocol on {scheme}://{local}, {workers} queue worker(s) on {} (Ctrl-C stops)",
                store.location()
            ),
        );
        let (stop_workers, worker_shutdown) = cutover_queue::shutdown_signal();
        let pool = (workers > 0).then(|| {
            tokio::spawn(cutover_queue::run_workers(
                store.clone(),
                cutover_server::jobs::registry(pipeline),
                worker_config(std::time::Duration::from_secs(args.job_lease)),
                workers,
                worker_shutdown,
            ))
        });
        let (stop_notify, notify_stopped) = tokio::sync::oneshot::channel::<()>();
        let notifier = channels.filter(|c| !c.is_empty()).map(|chans| {
            tokio::spawn(cutover_notify::dispatch_loop(
                store.clone(),
                chans,
                cutover_notify::DispatchOptions::default(),
                std::time::Duration::from_secs(2),
                async move {
                    let _ = notify_stopped.await;
                },
                |_report: &cutover_notify::DispatchReport| {},
            ))
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::internal("cannot watch for SIGTERM").with_cause(e))?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        // Deployments left unfinished by a process that died (this server killed while one of
        // its jobs deployed, a `cutover deploy` killed) are driven to their end now rather than
        // at the next deployment; a replica without workers leaves that to those with some.
        let resume = async {
            if workers > 0 {
                let stopping = state.shutdown.cancelled();
                resume_unfinished(ctx, &*store, &exe, &root, database.as_deref(), stopping).await;
            }
        };
        let serving = async {
            match tls {
                Some(config) => {
                    let listener = cutover_server::tls::TlsListener::new(listener, config)
                        .map_err(|e| CliError::internal("cannot serve TLS").with_cause(e))?;
                    Ok(cutover_server::serve(listener, &state, router, shutdown).await)
                }
                None => Ok::<_, CliError>(
                    cutover_server::serve(listener, &state, router, shutdown).await,
                ),
            }
        };
        let (served, ()) = tokio::join!(serving, resume);
        let served = served?;
        stop_workers.trigger();
        let _ = stop_notify.send(());
        if let Some(notifier) = notifier {
            let _ = notifier.await;
        }
        if let Some(pool) = pool {
            ctx.ui.status("stopping", "the queue workers finish their jobs");
            let _ = pool.await;
        }
        served.map_err(|e| CliError::failed("serving failed").with_source_chain(&e))?;
        ctx.ui.status("stopped", format!("serving on {scheme}://{local}"));
        Ok(())
    })
}

/// The queue workers' settings with a job lease of `lease`: heartbeats thrice per lease, and
/// expired leases looked for at least twice per lease (so a dead server's job runs again soon
/// after its lease ran out).
fn worker_config(lease: std::time::Duration) -> cutover_queue::WorkerConfig {
    let mut config = cutover_queue::WorkerConfig::new(
        cutover_queue::WorkerConfig::default_name(0),
        "cutover-serve",
    );
    config.lease = lease;
    config.heartbeat = lease / 3;
    config.reclaim_every = config.reclaim_every.min(lease / 2);
    config
}

/// Runs `cutover deploy --resume` (a child process, as pipeline jobs are) when the store holds
/// unfinished deployments. Each is resumed from its recorded state to `live`, or rolled back
/// (audited as `deployment.transition`s like any deployment). One whose environment lock is
/// still held is tried once more when that lock's lease has run out (its holder may have died on
/// another machine), unless the server stops first; one that a live process drives is left to
/// it. Never fails the server: problems are warnings.
async fn resume_unfinished(
    ctx: &Ctx<'_>,
    store: &dyn cutover_store::Store,
    exe: &std::path::Path,
    root: &std::path::Path,
    database: Option<&str>,
    stopping: impl Future<Output = ()>,
) {
    let unfinished = || async {
        store
            .list_deployments(&cutover_store::DeploymentFilter {
                unfinished_only: true,
                ..cutover_store::DeploymentFilter::default()
            })
            .await
            .map_err(|e| {
                ctx.ui.warn(format!(
                    "cannot look for unfinished deployments to resume: {e}"
                ));
            })
            .unwrap_or_default()
    };
    let first = unfinished().await;
    if first.is_empty() {
        return;
    }
    let ids: Vec<String> = first.iter().map(|d| d.id.to_string()).collect();
    ctx.ui.status(
        "resuming",
        format!("unfinished deployment(s) {}", ids.join(", ")),
    );
    let mut stopping = std::pin::pin!(stopping);
    for attempt in 1..=2 {
        if attempt == 2 {
            let left = unfinished().await;
            if !left.iter().any(|d| first.iter().any(|f| f.id == d.id)) {
                break;
            }
            let wait = cutover_deploy::lock::LEASE + std::time::Duration::from_secs(1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut stopping => break,
            }
        }
        run_resume(ctx, exe, root, database).await;
    }
    // What the records say now: each is finished, or still driven by the live process that
    // holds its environment's lock.
    for d in &first {
        let now = store.get_deployment(d.id).await.ok().flatten();
        let (state, finished) = now.as_ref().map_or(("unknown", false), |n| {
            (n.state.as_str(), n.finished_at.is_some())
        });
        let label = if finished { "resumed" } else { "unfinished" };
        ctx.ui.status(
            label,
            format!(
                "deployment {} ({} to {}): {state}",
                d.id, d.release_version, d.environment
            ),
        );
    }
}

/// One `cutover deploy --resume`; its failure is a warning.
async fn run_resume(
    ctx: &Ctx<'_>,
    exe: &std::path::Path,
    root: &std::path::Path,
    database: Option<&str>,
) {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--project").arg(root);
    if let Some(db) = database {
        cmd.arg("--database").arg(db);
    }
    cmd.args(["--json", "deploy", "--resume"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match cmd.output().await {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            ctx.ui.warn(format!(
                "resuming unfinished deployments ended with {}: {}",
                out.status,
                stderr.trim()
            ));
        }
        Err(e) => ctx.ui.warn(format!(
            "cannot start `{} deploy --resume`: {e}",
            exe.display()
        )),
    }
}
