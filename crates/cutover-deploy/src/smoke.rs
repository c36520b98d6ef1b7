//! Smoke commands: argv arrays (never a shell) run against a new slot's URL, each with a timeout.

use std::process::Stdio;
use std::time::{Duration, Instant};

use cutover_config::Argv;
use serde_json::{Value, json};

/// How long one smoke command may run.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The result of one smoke command.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeResult {
    pub argv: Vec<String>,
    pub ok: bool,
    pub detail: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub latency_ms: f64,
}

impl SmokeResult {
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "argv": self.argv,
            "ok": self.ok,
            "detail": self.detail,
            "at": self.at,
            "latency_ms": self.latency_ms,
        })
    }
}

/// Runs `commands` in order against the slot on `port` (`{url}` = `http://127.0.0.1:<port>`);
/// stops at the first failure.
pub async fn run(
    commands: &[Argv],
    port: u16,
    version: &str,
    slot: &str,
    timeout: Duration,
) -> Vec<SmokeResult> {
    let url = format!("http://127.0.0.1:{port}");
    let port_s = port.to_string();
    let mut out = Vec::new();
    for cmd in commands {
        let argv = cmd.render(&[
            ("url", &url),
            ("port", &port_s),
            ("version", version),
            ("slot", slot),
        ]);
        let at = chrono::Utc::now();
        let started = Instant::now();
        let (ok, detail) = run_one(&argv, timeout).await;
        out.push(SmokeResult {
            argv,
            ok,
            detail,
            at,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        if !ok {
            break;
        }
    }
    out
}

async fn run_one(argv: &[String], timeout: Duration) -> (bool, String) {
    let Some((program, args)) = argv.split_first() else {
        return (false, "empty command; expected an argv array".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(o)) if o.status.success() => (true, "exit 0".into()),
        Ok(Ok(o)) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: String = err
                .trim()
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (false, format!("{}: {tail}", o.status))
        }
        Ok(Err(e)) => (false, format!("cannot run {program:?}: {e}")),
        Err(_) => (false, format!("timed out after {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        Argv::new(parts.iter().map(|s| (*s).to_owned()).collect()).unwrap()
    }

    #[tokio::test]
    async fn substitutes_inside_arguments_and_stops_at_the_first_failure() {
        let r = run(
            &[
                argv(&[
                    "sh",
                    "-c",
                    "test \"$0\" = http://127.0.0.1:9 && test \"$1\" = 1.2.0",
                    "{url}",
                    "{version}",
                ]),
                argv(&["sh", "-c", "echo broken >&2; exit 3"]),
                argv(&["true"]),
            ],
            9,
            "1.2.0",
            "blue",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].ok, "{r:?}");
        assert!(!r[1].ok && r[1].detail.contains("broken"), "{r:?}");
        let r = run(
            &[argv(&["sleep", "5"])],
            9,
            "1",
            "blue",
            Duration::from_millis(100),
        )
        .await;
        assert!(!r[0].ok && r[0].detail.contains("timed out"));
        let r = run(
            &[argv(&["/nonexistent/smoke"])],
            9,
            "1",
            "blue",
            SMOKE_TIMEOUT,
        )
        .await;
        assert!(!r[0].ok && r[0].detail.contains("cannot run"));
    }
}
