//! `cutover logs ENV`: the slots' rotating log files, and `--follow`.
//!
//! The local agent's files are read directly. Another host's are read through the control plane
//! its agent follows (hosts open no inbound port): the read is recorded as an audit event
//! `logs.read` carrying the hash of a one-time key, and `GET /agent/v1/logs/read` with that key
//! makes the control plane relay it to the agent (see `cutover_control::logs`).

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_agent::client::{Client, ClientError, ControlUrl};
use cutover_agent::logs::{Follower, STREAMS};
use cutover_agent::protocol::{Assignment, LogLine};
use cutover_agent::runtime::{Layout, Slot, tail_log};
use cutover_control::LogQuery;
use serde_json::json;

use crate::cli::LogsArgs;
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};
use crate::local::{LOCAL_HOST, LocalPaths};

/// Where `cutover serve` listens by default.
const DEFAULT_CONTROL: &str = "http://127.0.0.1:7447";
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// One log file shown: which service, slot and stream.
#[derive(Debug, Clone)]
struct LogId {
    service: String,
    slot: Slot,
    stream: &'static str,
}

impl LogId {
    fn label(&self, many_services: bool) -> String {
        if many_services {
            format!("{} {}/{}", self.service, self.slot, self.stream)
        } else {
            format!("{}/{}", self.slot, self.stream)
        }
    }
}

pub fn run(ctx: &Ctx<'_>, args: &LogsArgs) -> Result<()> {
    let config = ctx.config()?;
    let Some(env) = config.environments.get(&args.env) else {
        let known: Vec<&str> = config.environments.keys().map(String::as_str).collect();
        return Err(
            CliError::usage(format!("unknown environment `{}`", args.env)).with_hint(
                if known.is_empty() {
                    "cutover.toml defines no environments; add an `[environments.NAME]` table"
                        .to_owned()
                } else {
                    format!("the environments are: {}", known.join(", "))
                },
            ),
        );
    };
    let hosts = super::env_host_names(env);
    let slot = match &args.slot {
        None => None,
        Some(s) => Some(Slot::parse(s).ok_or_else(|| {
            CliError::usage(format!("unknown slot `{s}`; expected `blue` or `green`"))
        })?),
    };
    let host = match &args.host {
        Some(h) if !hosts.iter().any(|n| n == h) => {
            return Err(CliError::usage(format!(
                "host `{h}` is not in environment `{}`",
                args.env
            ))
            .with_hint(format!("its hosts are: {}", hosts.join(", "))));
        }
        Some(h) => h.clone(),
        None if hosts.iter().any(|n| n == LOCAL_HOST) => LOCAL_HOST.to_owned(),
        None => {
            return Err(CliError::usage(format!(
                "environment `{}` has no host whose agent runs here (`{LOCAL_HOST}`)",
                args.env
            ))
            .with_hint(format!(
                "its hosts ({}) keep their logs under their agent's root, in `<root>/<service>/logs/`; read them there, or pass `--host {LOCAL_HOST}` for an environment that uses this machine",
                hosts.join(", ")
            )));
        }
    };
    if host != LOCAL_HOST {
        return remote(ctx, args, env, &host, slot);
    }
    let paths = LocalPaths::new(&ctx.project_root()?);
    let layout = Layout::new(&paths.agent_root);
    let listen = super::env_host_listen(env, LOCAL_HOST);
    let services = env_services(&layout, listen.as_deref());
    if services.is_empty() {
        return Err(CliError::failed(format!(
            "nothing of environment `{}` runs on host `{LOCAL_HOST}` yet",
            args.env
        ))
        .with_hint(format!("`cutover deploy {}` starts it", args.env)));
    }
    let mut ids = Vec::new();
    for service in &services {
        for s in Slot::ALL {
            if slot.is_some_and(|want| want != s) {
                continue;
            }
            for stream in STREAMS {
                ids.push(LogId {
                    service: service.clone(),
                    slot: s,
                    stream,
                });
            }
        }
    }
    let many = services.len() > 1;
    let mut shown = Vec::new();
    for id in &ids {
        let lines =
            tail_log(&layout, &id.service, id.slot, id.stream, args.lines).map_err(|e| {
                CliError::internal(format!(
                    "cannot read {}",
                    layout.log_file(&id.service, id.slot, id.stream).display()
                ))
                .with_cause(e)
            })?;
        shown.push((id.clone(), lines));
    }
    if ctx.global.json && !args.follow {
        let logs: Vec<_> = shown
            .iter()
            .map(|(id, lines)| {
                json!({ "service": id.service, "slot": id.slot.as_str(), "stream": id.stream, "lines": lines })
            })
            .collect();
        ctx.ui
            .print_json(&json!({ "environment": args.env, "host": host, "logs": logs }));
        return Ok(());
    }
    let emit = |id: &LogId, line: &str| {
        if ctx.global.json {
            // One JSON object per line while following.
            ctx.ui.print(format!(
                "{}\n",
                json!({ "service": id.service, "slot": id.slot.as_str(), "stream": id.stream, "line": line })
            ));
        } else {
            ctx.ui.println(format!("{} | {line}", id.label(many)));
        }
    };
    for (id, lines) in &shown {
        for line in lines {
            emit(id, line);
        }
    }
    if !args.follow {
        if shown.iter().all(|(_, l)| l.is_empty()) {
            ctx.ui.status("empty", "no log lines yet");
        }
        return Ok(());
    }
    let mut followers: Vec<(LogId, Follower)> = ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                Follower::at_end(layout.log_file(&id.service, id.slot, id.stream)),
            )
        })
        .collect();
    say_following(ctx, LOCAL_HOST);
    ctx.block_on(async {
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        // Both streams are made once: a signal that arrives while lines are being printed is
        // kept for the next turn (a fresh `ctrl_c()` per turn would miss it).
        let watch = |kind| {
            tokio::signal::unix::signal(kind)
                .map_err(|e| CliError::internal("cannot watch for signals").with_cause(e))
        };
        let mut term = watch(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = watch(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {
                    for (id, f) in &mut followers {
                        for line in f.poll() {
                            emit(id, &line);
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// The services of the local agent that serve the environment: those whose router listens on
/// the environment's address for this host (every service when the address is unknown).
fn env_services(layout: &Layout, listen: Option<&str>) -> Vec<String> {
    let Ok(bytes) = std::fs::read(layout.assignment()) else {
        return Vec::new();
    };
    let Ok(assignment) = serde_json::from_slice::<Assignment>(&bytes) else {
        return Vec::new();
    };
    services_listening(&assignment, listen)
}

/// The services of `assignment` whose router listens on `listen` (all when it is unknown).
fn services_listening(assignment: &Assignment, listen: Option<&str>) -> Vec<String> {
    let by_listen: BTreeMap<&String, String> = assignment
        .services
        .iter()
        .map(|(name, s)| (name, s.listen.to_string()))
        .collect();
    let wanted = listen.and_then(|l| l.parse::<std::net::SocketAddr>().ok());
    by_listen
        .into_iter()
        .filter(|(_, l)| wanted.is_none_or(|w| l.parse().ok() == Some(w)))
        .map(|(name, _)| name.clone())
        .collect()
}

/// `cutover logs ENV --host H` for a host other than `local`: through the control plane.
fn remote(
    ctx: &Ctx<'_>,
    args: &LogsArgs,
    env: &cutover_config::Environment,
    host: &str,
    slot: Option<Slot>,
) -> Result<()> {
    let store = ctx.store()?;
    let url_text = args
        .control
        .clone()
        .or_else(|| {
            std::env::var("CUTOVER_CONTROL")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_CONTROL.to_owned());
    let url = ControlUrl::parse(&url_text, false).map_err(|e| {
        CliError::usage(e.to_string())
            .with_hint("pass `--control URL`: the URL the host's agent follows")
    })?;
    let mut client_ca = None;
    if let Some(ca) = &args.ca_file {
        // Checked before anything is recorded.
        Client::log_reader(url.clone(), String::new())
            .with_ca_file(ca)
            .map_err(|e| CliError::usage(e.to_string()))?;
        client_ca = Some(ca.clone());
    }
    let listen = super::env_host_listen(env, host);
    let (mut stream, many_services) = ctx.block_on(async {
        let known = store.get_host(host).await.map_err(store_error)?;
        if known.is_none() {
            return Err(CliError::usage(format!(
                "host `{host}` is not registered with the control plane"
            ))
            .with_hint(format!(
                "`cutover host add {host} --token-file FILE`, then on that host `cutover agent --name {host} --control URL --token-file FILE --root DIR`"
            )));
        }
        let assignment = store
            .current_assignment(host)
            .await
            .map_err(store_error)?
            .and_then(|a| serde_json::from_value::<Assignment>(a.desired).ok());
        let services = assignment
            .map(|a| services_listening(&a, listen.as_deref()))
            .unwrap_or_default();
        if services.is_empty() {
            return Err(CliError::failed(format!(
                "nothing of environment `{}` runs on host `{host}` yet",
                args.env
            ))
            .with_hint(format!("`cutover deploy {}` starts it", args.env)));
        }
        let many = services.len() > 1;
        let query = LogQuery {
            services,
            slot,
            lines: args.lines,
            follow: args.follow,
        };
        let (seq, key) =
            cutover_control::authorize_log_read(&*store, &ctx.actor(), &args.env, host, &query)
                .await
                .map_err(store_error)?;
        let mut client = Client::log_reader(url.clone(), key);
        if let Some(ca) = &client_ca {
            client = client
                .with_ca_file(ca)
                .map_err(|e| CliError::usage(e.to_string()))?;
        }
        let stream = client.read_logs(seq).await.map_err(|e| read_error(&e, host))?;
        Ok((stream, many))
    })?;
    let label = |l: &LogLine| {
        if many_services {
            format!("{} {}/{}", l.service, l.slot, l.stream)
        } else {
            format!("{}/{}", l.slot, l.stream)
        }
    };
    // Not following: gathered, then printed (grouped by log for --json, as for `local`).
    let mut shown: Vec<LogLine> = Vec::new();
    let emit = |l: &LogLine| {
        if ctx.global.json {
            ctx.ui.print(format!(
                "{}\n",
                json!({ "service": l.service, "slot": l.slot.as_str(), "stream": l.stream, "line": l.line })
            ));
        } else {
            ctx.ui.println(format!("{} | {}", label(l), l.line));
        }
    };
    ctx.block_on(async {
        let watch = |kind| {
            tokio::signal::unix::signal(kind)
                .map_err(|e| CliError::internal("cannot watch for signals").with_cause(e))
        };
        let mut term = watch(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = watch(tokio::signal::unix::SignalKind::interrupt())?;
        let mut first = true;
        loop {
            let next = tokio::select! {
                _ = int.recv() => return Ok(()),
                _ = term.recv() => return Ok(()),
                n = stream.next_line() => n,
            };
            let Some(text) = next.map_err(|e| read_error(&e, host))? else {
                break;
            };
            // The agent sends its first chunk (the tail, or an empty line when there is none)
            // only once it watches the files: from now on no new line is missed.
            if std::mem::take(&mut first) && args.follow {
                say_following(ctx, host);
            }
            if text.trim().is_empty() {
                continue; // a heartbeat
            }
            if let Ok(line) = serde_json::from_str::<LogLine>(&text) {
                if args.follow {
                    emit(&line);
                } else {
                    shown.push(line);
                }
                continue;
            }
            let error = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CliError::failed(format!(
                "the agent of host `{host}` could not read its logs: {error}"
            )));
        }
        if args.follow {
            return Err(CliError::failed(format!(
                "the control plane stopped relaying the logs of host `{host}`"
            ))
            .with_hint("the agent or the control plane went away; run the command again"));
        }
        Ok(())
    })?;
    if args.follow {
        return Ok(());
    }
    if ctx.global.json {
        let mut logs: Vec<serde_json::Value> = Vec::new();
        let mut last: Option<(String, Slot, String)> = None;
        for l in &shown {
            let key = (l.service.clone(), l.slot, l.stream.clone());
            if last.as_ref() != Some(&key) {
                logs.push(json!({ "service": l.service, "slot": l.slot.as_str(), "stream": l.stream, "lines": [] }));
                last = Some(key);
            }
            if let Some(serde_json::Value::Array(lines)) = logs.last_mut().map(|v| &mut v["lines"])
            {
                lines.push(json!(l.line));
            }
        }
        ctx.ui
            .print_json(&json!({ "environment": args.env, "host": host, "logs": logs }));
        return Ok(());
    }
    for l in &shown {
        emit(l);
    }
    if shown.is_empty() {
        ctx.ui.status("empty", "no log lines yet");
    }
    Ok(())
}

/// Said on stderr once every line written from now on will be shown (scripts and tests wait for
/// it before they make the lines they want to see).
fn say_following(ctx: &Ctx<'_>, host: &str) {
    ctx.ui.status(
        "following",
        format!("the logs of host `{host}`: new lines show as they are written (ctrl-c stops)"),
    );
}

/// What a failed read says, with where to look.
fn read_error(e: &ClientError, host: &str) -> CliError {
    match e {
        ClientError::Connect { url, .. } => CliError::failed(format!(
            "cannot reach the control plane at {url} to read the logs of host `{host}`"
        ))
        .with_cause(e.to_string())
        .with_hint(
            "remote agents follow `cutover serve`: start it, or pass `--control URL` (or set CUTOVER_CONTROL) to the URL the agent follows",
        ),
        ClientError::Status { status, body, .. } => {
            let message = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.clone());
            let err = CliError::failed(format!(
                "the control plane refused the log read ({status}): {message}"
            ));
            if *status == 504 {
                err.with_hint(format!(
                    "is `cutover agent --name {host}` running and connected to this control plane? `cutover host ls` shows when it was last seen"
                ))
            } else {
                err
            }
        }
        other => CliError::failed(format!("reading the logs of host `{host}` failed"))
            .with_cause(other.to_string()),
    }
}
