//! Log reads over the agent's outbound connection: hosts open no inbound port, so an operator's
//! `cutover logs ENV --host H` becomes a request the agent picks up with a long poll
//! (`GET /agent/v1/logs/requests`) and answers with `POST /agent/v1/logs/{id}` chunks: the tail of
//! each selected log first, then (when following) the lines written since, across rotation.
//!
//! What is read is what the runtime wrote, and the runtime already replaced the configured secret
//! values in the slots' output (see [`crate::runtime::Redactor`]), so no secret leaves the host
//! this way.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{Client, ClientError};
use crate::daemon::{AgentStatus, Backoff};
use crate::protocol::{Assignment, LogChunk, LogLine, LogRequest};
use crate::runtime::{Layout, Slot, tail_log};

/// The streams a slot writes (`err` also holds the agent's notes on starts and exits).
pub const STREAMS: [&str; 2] = ["out", "err"];
/// How often followed files are looked at.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// A follow with nothing new still sends an empty chunk this often, to learn whether the reader
/// is still there.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// A chunk is sent once it holds this many bytes of lines (the control plane's body limit is
/// far above).
const CHUNK_BYTES: usize = 256 * 1024;
/// Longer lines are cut (a binary blob written to stdout must not make one huge chunk).
const MAX_LINE: usize = 16 * 1024;
/// Before the control plane is asked again after a `404` (a control plane without log reads).
const UNSUPPORTED_RETRY: Duration = Duration::from_secs(60);

/// Follows one log file across rotation (`x.log` renamed to `x.log.1`, a new `x.log` created)
/// and truncation, yielding whole lines only.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// (inode, offset) of the file read so far.
    at: Option<(u64, u64)>,
    partial: Vec<u8>,
}

impl Follower {
    /// Follows `path` from its current end (or from its start once it appears).
    #[must_use]
    pub fn at_end(path: PathBuf) -> Self {
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

    /// The whole lines written since the last call.
    pub fn poll(&mut self) -> Vec<String> {
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

    /// The unfinished last line kept so far.
    #[must_use]
    pub fn partial(&self) -> &[u8] {
        &self.partial
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

/// One log file of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogId {
    service: String,
    slot: Slot,
    stream: &'static str,
}

/// The logs `req` selects on this host, or why it cannot be served.
fn selected(layout: &Layout, req: &LogRequest) -> Result<Vec<LogId>, String> {
    let known: Vec<String> = std::fs::read(layout.assignment())
        .ok()
        .and_then(|b| serde_json::from_slice::<Assignment>(&b).ok())
        .map(|a| a.services.into_keys().collect())
        .unwrap_or_default();
    let services: Vec<String> = if req.services.is_empty() {
        known
    } else {
        if let Some(unknown) = req.services.iter().find(|s| !known.contains(s)) {
            return Err(format!(
                "service `{unknown}` does not run on this host (it runs: {})",
                if known.is_empty() {
                    "nothing".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        req.services.clone()
    };
    let mut ids = Vec::new();
    for service in services {
        for slot in Slot::ALL {
            if req.slot.is_some_and(|want| want != slot) {
                continue;
            }
            for stream in STREAMS {
                ids.push(LogId {
                    service: service.clone(),
                    slot,
                    stream,
                });
            }
        }
    }
    Ok(ids)
}

fn log_line(id: &LogId, mut line: String) -> LogLine {
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(" …");
    }
    LogLine {
        service: id.service.clone(),
        slot: id.slot,
        stream: id.stream.to_owned(),
        line,
    }
}

/// Sends `lines` in chunks of about [`CHUNK_BYTES`]; the last one carries `done`. `Ok(false)`
/// when the reader left.
async fn send_lines(
    client: &Client,
    id: &str,
    lines: Vec<LogLine>,
    done: bool,
) -> Result<bool, ClientError> {
    let mut chunk = LogChunk::default();
    let mut bytes = 0;
    for line in lines {
        bytes += line.line.len() + 64;
        chunk.lines.push(line);
        if bytes >= CHUNK_BYTES {
            if !client.send_log_chunk(id, &chunk).await? {
                return Ok(false);
            }
            chunk.lines.clear();
            bytes = 0;
        }
    }
    chunk.done = done;
    client.send_log_chunk(id, &chunk).await
}

/// Answers one read: the tail of every selected log, then, when following, new lines until the
/// reader leaves or the control plane cannot be reached.
///
/// The tail goes first (at least one chunk, an empty one when there is no tail), sent only once
/// the files are followed: a reader takes its arrival as "every line written from now on will come" (see
/// `cutover_control::logs`), so this order is part of the protocol.
pub async fn answer(client: &Client, layout: &Layout, req: &LogRequest) {
    let ids = match selected(layout, req) {
        Ok(ids) => ids,
        Err(error) => {
            let chunk = LogChunk {
                lines: Vec::new(),
                done: true,
                error: Some(error),
            };
            let _ = client.send_log_chunk(&req.id, &chunk).await;
            return;
        }
    };
    // Followers are placed before the tail is read: a line written in between is sent twice
    // rather than lost.
    let mut followers: Vec<(LogId, Follower)> = ids
        .iter()
        .map(|id| {
            let path = layout.log_file(&id.service, id.slot, id.stream);
            (id.clone(), Follower::at_end(path))
        })
        .collect();
    let mut tail = Vec::new();
    for id in &ids {
        match tail_log(layout, &id.service, id.slot, id.stream, req.lines) {
            Ok(lines) => tail.extend(lines.into_iter().map(|l| log_line(id, l))),
            Err(e) => {
                let chunk = LogChunk {
                    lines: Vec::new(),
                    done: true,
                    error: Some(format!(
                        "cannot read {}: {e}",
                        layout.log_file(&id.service, id.slot, id.stream).display()
                    )),
                };
                let _ = client.send_log_chunk(&req.id, &chunk).await;
                return;
            }
        }
    }
    if !matches!(
        send_lines(client, &req.id, tail, !req.follow).await,
        Ok(true)
    ) || !req.follow
    {
        return;
    }
    let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let mut lines = Vec::new();
        for (id, f) in &mut followers {
            lines.extend(f.poll().into_iter().map(|l| log_line(id, l)));
        }
        if lines.is_empty() && last_sent.elapsed() < HEARTBEAT {
            continue;
        }
        if !matches!(send_lines(client, &req.id, lines, false).await, Ok(true)) {
            return;
        }
        last_sent = tokio::time::Instant::now();
    }
}

/// The agent's log loop: long-polls for reads and answers each on a task of its own, until the
/// returned future is dropped. After a failure it waits with `backoff`, or until the daemon
/// registers again (`status`), whichever comes first.
pub async fn serve_requests(
    client: Client,
    layout: Layout,
    backoff: Backoff,
    mut status: watch::Receiver<AgentStatus>,
) {
    let mut attempt = 0u32;
    let mut answering = tokio::task::JoinSet::new();
    loop {
        // Reap the finished reads.
        while answering.try_join_next().is_some() {}
        let delay = match client.log_requests().await {
            Ok(found) => {
                attempt = 0;
                for req in found.requests {
                    let (client, layout) = (client.clone(), layout.clone());
                    answering.spawn(async move { answer(&client, &layout, &req).await });
                }
                continue;
            }
            Err(ClientError::Status { status: 404, .. }) => UNSUPPORTED_RETRY,
            Err(_) => {
                let random = std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    attempt,
                );
                let d = backoff.delay(attempt, random);
                attempt = attempt.saturating_add(1);
                d
            }
        };
        let registrations = status.borrow().registrations;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = status.wait_for(|s| s.registrations != registrations) => {
                attempt = 0;
            }
        }
    }
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

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let id = LogId {
            service: "s".into(),
            slot: Slot::Blue,
            stream: "out",
        };
        let line = log_line(&id, "é".repeat(MAX_LINE));
        assert!(line.line.len() <= MAX_LINE + " …".len());
        assert!(line.line.ends_with(" …"));
        assert_eq!(log_line(&id, "short".into()).line, "short");
    }

    #[test]
    fn a_read_of_an_unknown_service_is_refused_with_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let req = LogRequest {
            id: "ab".into(),
            services: vec!["web".into()],
            slot: Some(Slot::Green),
            lines: 5,
            follow: false,
        };
        let err = selected(&layout, &req).unwrap_err();
        assert!(err.contains("`web`") && err.contains("nothing"), "{err}");
        let all = LogRequest {
            services: Vec::new(),
            ..req
        };
        assert!(selected(&layout, &all).unwrap().is_empty());
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
            proptest::prop_assert_eq!(f.partial(), rest.as_bytes());
        }
    }
}
