//! `cutover agent` (the host agent daemon) and `cutover host [ls | add]` (the hosts it runs on).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use cutover_agent::client::{Client, ControlUrl};
use cutover_agent::daemon::{self, AgentConfig};
use serde_json::json;

use crate::cli::{AgentArgs, AgentCommand, HostArgs, HostCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::local::{LocalControl, LocalPaths, running_agent, signal_agent};

/// Under an agent's root: present when the agent is told to stop, it also stops its services.
pub const STOP_SERVICES_FILE: &str = "stop-services";

pub fn run(ctx: &Ctx<'_>, args: &AgentArgs) -> Result<()> {
    match &args.command {
        Some(AgentCommand::Stop { local: _, all }) => return stop_local(ctx, *all),
        Some(AgentCommand::Start { local: _ }) => return start_local(ctx),
        None => {}
    }
    let missing = |flag: &str| CliError::usage(format!("`cutover agent` needs {flag}"));
    let name = args.name.as_deref().ok_or_else(|| missing("--name"))?;
    let control = args
        .control
        .as_deref()
        .ok_or_else(|| missing("--control"))?;
    let token_file = args
        .token_file
        .as_deref()
        .ok_or_else(|| missing("--token-file"))?;
    let root = args.root.as_deref().ok_or_else(|| missing("--root"))?;
    // A stop request left by an agent that died before honouring it is stale.
    let _ = std::fs::remove_file(root.join(STOP_SERVICES_FILE));
    let text = std::fs::read_to_string(token_file).map_err(|e| {
        CliError::usage(format!(
            "cannot read the token file {}",
            token_file.display()
        ))
        .with_cause(e)
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage(format!(
            "the token file {} is empty; expected the agent's token on its first line",
            token_file.display()
        ))
        .with_hint("`cutover host add NAME --token-file FILE` creates one"));
    }
    let url = ControlUrl::parse(control, args.allow_remote_http)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let mut client = Client::new(url.clone(), name, token);
    if let Some(ca_file) = &args.ca_file {
        client = client
            .with_ca_file(ca_file)
            .map_err(|e| CliError::usage(e.to_string()))?;
    }
    let mut config = AgentConfig::new(name, client, root);
    // The CLI wakes its local agent with SIGUSR1 after binding the control socket.
    config.wake_on_sigusr1 = true;
    ctx.ui.status(
        "agent",
        format!("{name} following {url}, state in {}", root.display()),
    );
    ctx.block_on(async {
        // The handlers come first: `agent stop` may send SIGTERM as soon as the agent exists,
        // and without a handler that would kill it before it stops its services.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CliError::internal("cannot watch for SIGTERM").with_cause(e))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| CliError::internal("cannot watch for SIGINT").with_cause(e))?;
        let mut handle = daemon::spawn(config).await;
        let mut last = handle.status.borrow().clone();
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                changed = handle.status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = handle.status.borrow().clone();
                    if now.connected != last.connected {
                        if now.connected {
                            ctx.ui.status("connected", format!("to {url}"));
                        } else {
                            ctx.ui.warn(format!(
                                "control plane unreachable ({}); still serving, retrying",
                                now.last_error.as_deref().unwrap_or("unknown error")
                            ));
                        }
                    }
                    if now.generation != last.generation {
                        ctx.ui.status("applied", format!("generation {}", now.generation));
                        for e in &now.apply_errors {
                            ctx.ui.warn(e);
                        }
                    }
                    last = now;
                }
            }
        }
        // A stopped agent leaves its services running (an agent restart or upgrade must not
        // interrupt them), unless `agent stop --all` asked for them to stop too; an assignment
        // without services stops them as well.
        let reconciler = handle
            .stop()
            .await
            .map_err(|e| CliError::internal("the agent loop panicked").with_cause(e))?;
        let stop_file = root.join(STOP_SERVICES_FILE);
        if stop_file.exists() {
            reconciler.stop_all().await;
            let _ = std::fs::remove_file(&stop_file);
            ctx.ui.status("stopped", "the agent and its services");
        } else {
            reconciler.detach().await;
            ctx.ui
                .status("stopped", "the agent; its services keep running");
        }
        Ok(())
    })
}

/// `cutover agent start --local`: the local agent runs and has registered with this process.
fn start_local(ctx: &Ctx<'_>) -> Result<()> {
    let store = ctx.store()?;
    let paths = LocalPaths::new(&ctx.project_root()?);
    let was = running_agent(&paths);
    ctx.block_on(async {
        let control =
            LocalControl::start(ctx, store, &[crate::local::LOCAL_HOST.to_owned()]).await?;
        control.stop().await;
        Ok::<_, CliError>(())
    })?;
    let pid = running_agent(&paths);
    if ctx.global.json {
        ctx.ui
            .print_json(&json!({ "pid": pid, "started": was.is_none(), "log": paths.log }));
    } else if was.is_none() {
        ctx.ui.status(
            "started",
            format!(
                "the local agent (pid {}); its output goes to {}",
                pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                paths.log.display()
            ),
        );
    } else {
        ctx.ui.status(
            "running",
            format!(
                "the local agent (pid {})",
                pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
            ),
        );
    }
    Ok(())
}

/// `cutover agent stop --local [--all]`: SIGTERM to the project's local agent daemon, wait for it
/// to exit, remove its pidfile.
fn stop_local(ctx: &Ctx<'_>, all: bool) -> Result<()> {
    let paths = LocalPaths::new(&ctx.project_root()?);
    let Some(pid) = running_agent(&paths) else {
        let _ = std::fs::remove_file(&paths.pidfile);
        if ctx.global.json {
            ctx.ui
                .print_json(&json!({ "stopped": false, "pid": null, "services_stopped": false }));
        } else {
            ctx.ui
                .status("stopped", "nothing: the local agent does not run");
        }
        return Ok(());
    };
    if all {
        std::fs::create_dir_all(&paths.agent_root)
            .and_then(|()| std::fs::write(paths.agent_root.join(STOP_SERVICES_FILE), b"all\n"))
            .map_err(|e| {
                CliError::internal(format!(
                    "cannot ask the agent to stop its services in {}",
                    paths.agent_root.display()
                ))
                .with_cause(e)
            })?;
    }
    signal_agent(pid, rustix::process::Signal::TERM);
    // Stopping the services waits for each slot's graceful stop (`stop_timeout`).
    let limit = if all {
        std::time::Duration::from_secs(120)
    } else {
        std::time::Duration::from_secs(20)
    };
    let deadline = std::time::Instant::now() + limit;
    while running_agent(&paths).is_some() {
        if std::time::Instant::now() >= deadline {
            return Err(CliError::failed(format!(
                "the local agent (pid {pid}) did not stop within {}s",
                limit.as_secs()
            ))
            .with_hint(format!(
                "see {}; `kill -KILL {pid}` stops it hard",
                paths.log.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&paths.pidfile);
    if ctx.global.json {
        ctx.ui
            .print_json(&json!({ "stopped": true, "pid": pid, "services_stopped": all }));
    } else if all {
        ctx.ui.status(
            "stopped",
            format!("the local agent (pid {pid}) and its services"),
        );
    } else {
        ctx.ui.status(
            "stopped",
            format!("the local agent (pid {pid}); its services keep serving"),
        );
    }
    Ok(())
}

pub fn host(ctx: &Ctx<'_>, args: &HostArgs) -> Result<()> {
    let store = ctx.store()?;
    match &args.command {
        None | Some(HostCommand::Ls) => {
            let (hosts, warnings) = ctx
                .block_on(cutover_views::hosts(
                    &*store,
                    &cutover_views::ViewOptions::at(chrono::Utc::now()),
                ))
                .map_err(super::status::views_error)?;
            for w in &warnings {
                ctx.ui.warn(w);
            }
            if ctx.global.json {
                // `HostRuns` never carries the token hash.
                ctx.ui.print_json(&json!({ "hosts": hosts }));
            } else if hosts.is_empty() {
                ctx.ui
                    .println("no hosts; `cutover host add NAME --token-file FILE` adds one");
            } else {
                let mut rows = vec![
                    ["NAME", "AGENT", "CONNECTED", "LAST SEEN", "RUNS"]
                        .map(str::to_owned)
                        .to_vec(),
                ];
                for h in &hosts {
                    rows.push(vec![
                        h.name.clone(),
                        h.agent_version.clone().unwrap_or_else(|| "-".to_owned()),
                        if h.connected { "yes" } else { "no" }.to_owned(),
                        h.last_seen
                            .map_or_else(|| "never".to_owned(), super::status::time),
                        runs(h),
                    ]);
                }
                ctx.ui.print(super::status::table(&rows, ""));
            }
            Ok(())
        }
        Some(HostCommand::Add { name, token_file }) => {
            let token = cutover_control::new_token()
                .map_err(|e| CliError::internal("cannot draw a random token").with_cause(e))?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(token_file)
                .map_err(|e| {
                    CliError::usage(format!("cannot create {}", token_file.display()))
                        .with_cause(e)
                        .with_hint("the token file must not exist yet")
                })?;
            writeln!(file, "{token}").map_err(|e| {
                CliError::failed(format!("cannot write {}", token_file.display())).with_cause(e)
            })?;
            ctx.block_on(cutover_control::add_host(
                &*store,
                name,
                &token,
                &ctx.actor(),
            ))
            .map_err(store_error)?;
            if ctx.global.json {
                ctx.ui
                    .print_json(&json!({ "host": name, "token_file": token_file }));
            } else {
                ctx.ui.status(
                    "added",
                    format!("host {name}; its token is in {}", token_file.display()),
                );
            }
            Ok(())
        }
    }
}

/// What a host runs, on one line: `hello: blue 1.0.0 75%, green 1.1.0 25%` (`*` marks the
/// router's active slot), or `nothing reported`.
fn runs(h: &cutover_views::HostRuns) -> String {
    if h.services.is_empty() {
        return "nothing reported".to_owned();
    }
    h.services
        .iter()
        .map(|svc| {
            let slots: Vec<String> = svc
                .slots
                .iter()
                .map(|s| {
                    let active = if svc.router.active == Some(s.slot) {
                        "*"
                    } else {
                        ""
                    };
                    let weight = svc
                        .router
                        .weights
                        .get(&s.slot)
                        .map_or_else(String::new, |w| format!(" {w}%"));
                    format!(
                        "{}{active} {} ({}){weight}",
                        s.slot.as_str(),
                        s.version,
                        s.health
                    )
                })
                .collect();
            let slots = if slots.is_empty() {
                "no slots".to_owned()
            } else {
                slots.join(", ")
            };
            format!("{}: {slots}", svc.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
