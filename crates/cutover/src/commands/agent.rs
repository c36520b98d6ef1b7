//! `cutover agent` (the host agent daemon) and `cutover host [ls | add]` (the hosts it runs on).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use cutover_agent::client::{Client, ControlUrl};
use cutover_agent::daemon::{self, AgentConfig};
use serde_json::json;

use crate::cli::{AgentArgs, HostArgs, HostCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &AgentArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.token_file).map_err(|e| {
        CliError::usage(format!(
            "cannot read the token file {}",
            args.token_file.display()
        ))
        .with_cause(e)
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage(format!(
            "the token file {} is empty; expected the agent's token on its first line",
            args.token_file.display()
        ))
        .with_hint("`cutover host add NAME --token-file FILE` creates one"));
    }
    let url = ControlUrl::parse(&args.control, args.allow_remote_http)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let client = Client::new(url.clone(), &args.name, token);
    let config = AgentConfig::new(&args.name, client, &args.root);
    ctx.ui.status(
        "agent",
        format!(
            "{} following {url}, state in {}",
            args.name,
            args.root.display()
        ),
    );
    ctx.block_on(async {
        let mut handle = daemon::spawn(config).await;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::internal("cannot watch for SIGTERM").with_cause(e))?;
        let mut last = handle.status.borrow().clone();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
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
        // interrupt them); an assignment without services stops them.
        let reconciler = handle
            .stop()
            .await
            .map_err(|e| CliError::internal("the agent loop panicked").with_cause(e))?;
        reconciler.detach().await;
        ctx.ui
            .status("stopped", "the agent; its services keep running");
        Ok(())
    })
}

pub fn host(ctx: &Ctx<'_>, args: &HostArgs) -> Result<()> {
    let store = ctx.store()?;
    match &args.command {
        None | Some(HostCommand::Ls) => {
            let hosts = ctx.block_on(store.list_hosts()).map_err(store_error)?;
            if ctx.global.json {
                // Never the token hash.
                let hosts: Vec<_> = hosts
                    .iter()
                    .map(|h| {
                        json!({
                            "name": h.name,
                            "agent_version": h.agent_version,
                            "last_seen": h.last_seen,
                            "created_at": h.created_at,
                        })
                    })
                    .collect();
                ctx.ui.print_json(&json!({ "hosts": hosts }));
            } else if hosts.is_empty() {
                ctx.ui
                    .println("no hosts; `cutover host add NAME --token-file FILE` adds one");
            } else {
                for h in &hosts {
                    ctx.ui.println(format!(
                        "{:<20} {:<10} {}",
                        h.name,
                        h.agent_version.as_deref().unwrap_or("-"),
                        h.last_seen
                            .map_or_else(|| "never seen".to_owned(), |t| format!("last seen {t}"))
                    ));
                }
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
