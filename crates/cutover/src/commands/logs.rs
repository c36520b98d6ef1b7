//! `cutover logs ENV`: the slots' rotating log files kept by the local agent, and `--follow`.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cutover_agent::protocol::Assignment;
use cutover_agent::runtime::{Layout, Slot, tail_log};
use serde_json::json;

use crate::cli::LogsArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::local::{LOCAL_HOST, LocalPaths};

/// The streams a slot writes (`err` also holds the agent's notes on starts and exits).
const STREAMS: [&str; 2] = ["out", "err"];
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
        return Err(CliError::usage(format!(
            "the logs of host `{host}` are kept on that host, by its agent"
        ))
        .with_hint(format!(
            "read `<root>/<service>/logs/<slot>.<out|err>.log` under the `--root` of `cutover agent --name {host}`; only `{LOCAL_HOST}` is read from here"
        )));
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

/// Follows one log file across rotation (`x.log` renamed to `x.log.1`, a new `x.log` created)
/// and truncation, printing whole lines only.
#[derive(Debug)]
struct Follower {
    path: PathBuf,
    /// (inode, offset) of the file read so far.
    at: Option<(u64, u64)>,
    partial: Vec<u8>,
}

impl Follower {
    fn at_end(path: PathBuf) -> Self {
        let at = std::fs::metadata(&path).ok().map(|m| (m.ino(), m.len()));
        Self {
            path,
            at,
            partial: Vec::new(),
        }
    }

    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        p.into()
    }

    fn poll(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let current = std::fs::metadata(&self.path).ok();
        match (self.at, current) {
            (Some((ino, offset)), Some(meta)) if meta.ino() == ino => {
                // Truncated in place (a policy that keeps no rotated files): start over.
                let from = if meta.len() < offset { 0 } else { offset };
                let end = read_from(&self.path, from, &mut self.partial, &mut lines);
                self.at = Some((ino, end.unwrap_or(from)));
            }
            (Some((ino, offset)), current) => {
                // Rotated: finish the old file (now `.1`) before starting the new one.
                let old = self.rotated();
                if std::fs::metadata(&old).is_ok_and(|m| m.ino() == ino) {
                    let _ = read_from(&old, offset, &mut self.partial, &mut lines);
                }
                self.flush_partial(&mut lines);
                self.at = None;
                if let Some(meta) = current {
                    let end = read_from(&self.path, 0, &mut self.partial, &mut lines);
                    self.at = Some((meta.ino(), end.unwrap_or(0)));
                }
            }
            (None, Some(meta)) => {
                let end = read_from(&self.path, 0, &mut self.partial, &mut lines);
                self.at = Some((meta.ino(), end.unwrap_or(0)));
            }
            (None, None) => {}
        }
        lines
    }

    fn flush_partial(&mut self, lines: &mut Vec<String>) {
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}

/// Reads `path` from `offset` to its end, appending whole lines to `lines` and keeping an
/// unfinished last line in `partial`; returns the new offset.
fn read_from(
    path: &Path,
    offset: u64,
    partial: &mut Vec<u8>,
    lines: &mut Vec<String>,
) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    let end = offset + buf.len() as u64;
    partial.extend_from_slice(&buf);
    while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = partial.drain(..=pos).collect();
        lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_follower_reads_new_lines_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blue.out.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = Follower::at_end(path.clone());
        assert!(f.poll().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "one\ntw").unwrap();
        assert_eq!(f.poll(), vec!["one"]);
        writeln!(file, "o").unwrap();
        // Rotation: the rest of the old file is read from `.1`, then the new file from its start.
        writeln!(file, "three").unwrap();
        std::fs::rename(&path, dir.path().join("blue.out.log.1")).unwrap();
        std::fs::write(&path, "four\n").unwrap();
        assert_eq!(f.poll(), vec!["two", "three", "four"]);
        // Truncation in place.
        std::fs::write(&path, "5\n").unwrap();
        assert_eq!(f.poll(), vec!["5"]);
    }

    proptest::proptest! {
        /// Whatever a slot writes, in whatever pieces, following yields exactly its lines.
        #[test]
        fn following_yields_every_line_whole(chunks in proptest::collection::vec("(?s).{0,40}", 0..12)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.log");
            std::fs::write(&path, "").unwrap();
            let mut f = Follower::at_end(path.clone());
            let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            let mut seen = Vec::new();
            let mut all = String::new();
            for c in &chunks {
                file.write_all(c.as_bytes()).unwrap();
                all.push_str(c);
                seen.extend(f.poll());
            }
            let mut expected: Vec<String> = all.split('\n').map(str::to_owned).collect();
            // The unfinished last piece is not a line yet.
            let rest = expected.pop().unwrap_or_default();
            proptest::prop_assert_eq!(&seen, &expected);
            proptest::prop_assert_eq!(f.partial, rest.into_bytes());
        }
    }
}
