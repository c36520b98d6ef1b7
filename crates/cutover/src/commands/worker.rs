//! `cutover worker`: queue workers in this process until Ctrl-C, with their batch settings
//! (`--workers`, `--concurrency`, `--max-batch`, `--flush-ms`).

use std::time::Duration;

use cutover_queue::{Registry, WorkerConfig, run_workers, shutdown_signal};
use serde_json::json;

use crate::cli::WorkerArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &WorkerArgs) -> Result<()> {
    let config = worker_config(args, ctx.actor())?;
    let store = ctx.store()?;
    let count = usize::from(args.workers);
    let settings = json!({
        "workers": count,
        "concurrency": config.capacity,
        "max_batch": config.max_batch,
        "flush_ms": config.flush.as_millis() as u64,
    });
    ctx.ui.status(
        "Working",
        format!(
            "{count} worker(s) × {} job(s) at once as {} on {}; completions within {} ms, up to {} per transaction; Ctrl-C stops them after their jobs",
            config.capacity,
            config.name,
            store.location(),
            config.flush.as_millis(),
            config.max_batch,
        ),
    );
    let stats = ctx.block_on(async move {
        let (stop, listener) = shutdown_signal();
        let pool = tokio::spawn(run_workers(
            store,
            Registry::builtin(),
            config,
            count,
            listener,
        ));
        // An error here means no signal handler could be installed: then run until killed.
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.trigger();
        }
        pool.await
    });
    let stats =
        stats.map_err(|e| CliError::internal("the workers stopped abnormally").with_cause(e))?;
    let (done, failed) = stats
        .iter()
        .fold((0, 0), |(d, f), s| (d + s.completed, f + s.failed));
    if ctx.global.json {
        ctx.ui
            .print_json(&json!({ "completed": done, "failed": failed, "settings": settings }));
    } else {
        ctx.ui
            .println(format!("stopped: {done} job(s) completed, {failed} failed"));
    }
    Ok(())
}

/// The workers' configuration from the flags (clap checked each range); what only makes sense
/// together is checked here.
fn worker_config(args: &WorkerArgs, actor: String) -> Result<WorkerConfig> {
    let mut config = WorkerConfig::new(WorkerConfig::default_name(0), actor);
    config.capacity = usize::from(args.concurrency);
    config.max_batch = usize::from(args.max_batch);
    config.flush = Duration::from_millis(args.flush_ms);
    // A finished job waits up to `flush` with its lease still running: it must not expire meanwhile.
    if config.flush * 4 > config.lease {
        return Err(CliError::usage(format!(
            "--flush-ms {} is too long for the {} s job lease",
            args.flush_ms,
            config.lease.as_secs()
        ))
        .with_hint(format!(
            "use at most {} ms (a quarter of the lease)",
            config.lease.as_millis() / 4
        )));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> std::result::Result<WorkerArgs, clap::Error> {
        let mut argv = vec!["cutover", "worker"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv)?.command {
            crate::cli::Command::Worker(w) => Ok(w),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn batch_flags_reach_the_worker_configuration() {
        let args = parse(&["--concurrency", "8", "--max-batch", "64", "--flush-ms", "0"]).unwrap();
        let c = worker_config(&args, "me".into()).unwrap();
        assert_eq!(c.capacity, 8);
        assert_eq!(c.max_batch, 64);
        assert_eq!(c.flush, Duration::ZERO);
        let defaults = worker_config(&parse(&[]).unwrap(), "me".into()).unwrap();
        let lib = WorkerConfig::new("x", "me");
        assert_eq!(
            (defaults.capacity, defaults.max_batch, defaults.flush),
            (lib.capacity, lib.max_batch, lib.flush),
            "the flags' defaults are the library's"
        );
    }
}
