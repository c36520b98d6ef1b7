//! Running one QA check (`[[checks]]`): its own process group, a timeout that kills the whole
//! group, stdout and stderr captured together into a bounded buffer, and a result that says why.
//!
//! The command is an argv array (never a shell string). It runs in the project directory (or its
//! `workdir` below it) with the check's `env` added to cutover's environment and stdin closed.
//! Output: both streams go into one pipe, so the log keeps their interleaving; when it exceeds the
//! limit, its first and last halves are kept with a marker saying how many bytes were left out.
//! At the timeout the group gets SIGTERM, then SIGKILL after [`KILL_GRACE`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a check's process group has between SIGTERM and SIGKILL at its timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the output pipe to close after the check's process exited (a process
/// that left the group may hold it open).
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// The default bound of a check's stored output.
pub const DEFAULT_MAX_OUTPUT: usize = 256 * 1024;

/// What to run: the check's configuration resolved against a project directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub name: String,
    pub argv: Vec<String>,
    /// Milliseconds.
    pub timeout_ms: u64,
    pub env: Vec<(String, String)>,
    /// Where it runs (absolute: the project directory joined with `workdir`).
    pub dir: PathBuf,
    pub required: bool,
}

impl CheckSpec {
    /// The spec of a configured check in `project_dir`.
    pub fn from_config(check: &cutover_config::Check, project_dir: &Path) -> CheckSpec {
        CheckSpec {
            name: check.name.clone(),
            argv: check.run.as_slice().to_vec(),
            timeout_ms: u64::try_from(check.timeout.get().as_millis()).unwrap_or(u64::MAX),
            env: check
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dir: match &check.workdir {
                Some(w) => project_dir.join(w),
                None => project_dir.to_path_buf(),
            },
            required: check.required,
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Exit status 0.
    Passed,
    /// It ran and exited non-zero (or was killed by a signal).
    Failed,
    /// It ran past its timeout and was killed with its process group.
    TimedOut,
    /// It could not be started (command not found, not executable, bad working directory).
    Error,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::TimedOut => "timed_out",
            CheckStatus::Error => "error",
        }
    }
}

/// The result of one check run, stored as the job's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub required: bool,
    pub status: CheckStatus,
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// Why it did not pass, in words (`None` when it passed).
    pub reason: Option<String>,
    /// stdout and stderr, interleaved, bounded (lossy UTF-8).
    pub output: String,
    /// Bytes of output left out to respect the bound.
    pub omitted_bytes: u64,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }
}

/// Keeps the first and the last `max / 2` bytes of a stream.
#[derive(Debug)]
struct Bounded {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    half: usize,
    omitted: u64,
}

impl Bounded {
    fn new(max: usize) -> Bounded {
        Bounded {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            half: max / 2,
            omitted: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let room = self.half.saturating_sub(self.head.len());
        let take = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if self.half == 0 {
            self.omitted += bytes.len() as u64;
            return;
        }
        for &b in bytes {
            if self.tail.len() == self.half {
                self.tail.pop_front();
                self.omitted += 1;
            }
            self.tail.push_back(b);
        }
    }

    fn finish(self) -> (String, u64) {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            text.push_str(&format!(
                "\n[… {} bytes of output omitted …]\n",
                self.omitted
            ));
        }
        let tail: Vec<u8> = self.tail.into_iter().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        (text, self.omitted)
    }
}

fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // The group may be gone already (everything exited): nothing to do then.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0, rustix::process::Signal::KILL);
    }
}

/// Runs the check to its end (or its timeout), keeping at most `max_output` bytes of output.
pub async fn run_check(spec: &CheckSpec, max_output: usize) -> CheckResult {
    let started = Instant::now();
    let result =
        |status, reason: Option<String>, exit_code, signal, out: (String, u64)| CheckResult {
            name: spec.name.clone(),
            required: spec.required,
            status,
            exit_code,
            signal,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            reason,
            output: out.0,
            omitted_bytes: out.1,
        };
    let error = |reason: String| {
        result(
            CheckStatus::Error,
            Some(reason),
            None,
            None,
            (String::new(), 0),
        )
    };

    let Some(program) = spec.argv.first().filter(|p| !p.is_empty()) else {
        return error(format!("check `{}` has an empty command", spec.name));
    };
    if !spec.dir.is_dir() {
        return error(format!(
            "check `{}`: its working directory {} does not exist",
            spec.name,
            spec.dir.display()
        ));
    }
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return error(format!("cannot create a pipe for the output: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return error(format!("cannot create a pipe for the output: {e}")),
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.dir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the write end must go, or the reader never sees end-of-file.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "command `{program}` not found (check `{}`: is it installed and on PATH, or is the path right?)",
                    spec.name
                ),
                std::io::ErrorKind::PermissionDenied => {
                    format!(
                        "command `{program}` is not executable (check `{}`)",
                        spec.name
                    )
                }
                _ => format!("cannot start `{program}` (check `{}`): {e}", spec.name),
            };
            return error(reason);
        }
    };
    let pgid = child.id().unwrap_or(0);
    // If this future is dropped midway (the worker was stopped), the group dies with it.
    let _group = GroupGuard(pgid);

    let max = max_output.max(2);
    let collector = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut out = Bounded::new(max);
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.push(&buf[..n]),
            }
        }
        out.finish()
    });

    let timeout = Duration::from_millis(spec.timeout_ms);
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status, false),
        Err(_) => {
            kill_group(pgid, rustix::process::Signal::TERM);
            let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    kill_group(pgid, rustix::process::Signal::KILL);
                    child.wait().await
                }
            };
            (status, true)
        }
    };
    // Whatever the group left behind goes too (a check's children must not outlive it).
    kill_group(pgid, rustix::process::Signal::KILL);
    let output = match tokio::time::timeout(DRAIN_WAIT, collector).await {
        Ok(Ok(out)) => out,
        _ => (
            "[output unavailable: the output pipe stayed open after the check ended]".to_owned(),
            0,
        ),
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return result(
                CheckStatus::Error,
                Some(format!("waiting for check `{}` failed: {e}", spec.name)),
                None,
                None,
                output,
            );
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let (code, signal) = (status.code(), status.signal());
    if timed_out {
        let reason = format!(
            "timed out after {}; killed with its process group",
            humanize(timeout)
        );
        return result(CheckStatus::TimedOut, Some(reason), code, signal, output);
    }
    if status.success() {
        return result(CheckStatus::Passed, None, code, signal, output);
    }
    let reason = match (code, signal) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "ended abnormally".to_owned(),
    };
    result(CheckStatus::Failed, Some(reason), code, signal, output)
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounded_keeps_head_and_tail() {
        let mut b = Bounded::new(10);
        b.push(b"0123456789abcdefghij");
        let (text, omitted) = b.finish();
        assert_eq!(omitted, 10);
        assert!(text.starts_with("01234"), "{text}");
        assert!(text.ends_with("fghij"), "{text}");
        assert!(text.contains("10 bytes of output omitted"), "{text}");
    }

    proptest! {
        #[test]
        fn bounded_accounts_for_every_byte(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20), max in 0usize..64) {
            let mut b = Bounded::new(max);
            let total: usize = chunks.iter().map(Vec::len).sum();
            let all: Vec<u8> = chunks.concat();
            for c in &chunks { b.push(c); }
            let (head, tail, omitted) = (b.head.clone(), b.tail.iter().copied().collect::<Vec<u8>>(), b.omitted);
            prop_assert_eq!(head.len() + tail.len() + omitted as usize, total);
            prop_assert!(head.len() + tail.len() <= max);
            prop_assert_eq!(&all[..head.len()], &head[..]);
            prop_assert_eq!(&all[total - tail.len()..], &tail[..]);
        }
    }
}
