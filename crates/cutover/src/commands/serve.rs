//! `cutover serve`: the agent protocol over TCP (plain http, or https with `--tls-cert/--tls-key`)
//! for remote agents, until interrupted.

use std::net::SocketAddr;

use cutover_control::ControlState;
use serde_json::json;

use crate::cli::ServeArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::local::LocalPaths;

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
    let store = ctx.store()?;
    let paths = LocalPaths::new(&root);
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
                "serving plain http on {local}: agent tokens travel in clear; keep it to a trusted network"
            ));
        }
        let state = ControlState::new(store, paths.artifacts.clone());
        if ctx.global.json {
            ctx.ui
                .print_json(&json!({ "listen": local.to_string(), "url": format!("{scheme}://{local}") }));
        }
        ctx.ui.status(
            "serving",
            format!("the agent protocol on {scheme}://{local} (Ctrl-C stops)"),
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::internal("cannot watch for SIGTERM").with_cause(e))?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        match tls {
            Some(config) => cutover_control::serve_tls_on(listener, config, state, shutdown).await,
            None => cutover_control::serve_tcp_until(listener, state, shutdown).await,
        }
            .map_err(|e| CliError::failed("serving the agent protocol failed").with_source_chain(&e))?;
        ctx.ui.status("stopped", "serving the agent protocol");
        Ok(())
    })
}
