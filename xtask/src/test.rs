//! `cargo xtask test`: the README's test command. It starts a throwaway PostgreSQL cluster, exports
//! its URL as `CUTOVER_TEST_PG_URL`, runs the whole workspace's tests, and stops the cluster whatever
//! the outcome. PostgreSQL tests never skip: without the server binaries this command fails.

use anyhow::Context;
use std::process::Command;

pub fn run(extra: &[String]) -> anyhow::Result<u8> {
    let cluster = crate::pg::start().context("starting a throwaway PostgreSQL for the tests")?;
    eprintln!("xtask: PostgreSQL for the tests at {}", cluster.url);

    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = Command::new("cargo");
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra)
        .current_dir(crate::workspace_root())
        .env("CUTOVER_TEST_PG_URL", &cluster.url);
    let status = cmd.status().context("running the test runner");
    // Stop the cluster before reporting, also when the tests failed or could not start.
    let stopped = cluster.stop();
    let status = status?;
    stopped.context("stopping the throwaway PostgreSQL")?;
    Ok(match status.code() {
        Some(0) => 0,
        Some(code) => u8::try_from(code).unwrap_or(1),
        None => 1,
    })
}

/// `cargo xtask pg -- CMD…`: runs one command with a throwaway cluster's URL in
/// `CUTOVER_TEST_PG_URL` (e.g. `cargo xtask pg -- cargo test -p cutover-store`).
pub fn with_pg(cmd: &[String]) -> anyhow::Result<u8> {
    let Some((program, args)) = cmd.split_first() else {
        anyhow::bail!(
            "give a command after `--`, e.g. `cargo xtask pg -- cargo test -p cutover-store`"
        );
    };
    let cluster = crate::pg::start().context("starting a throwaway PostgreSQL")?;
    eprintln!("xtask: PostgreSQL at {}", cluster.url);
    let status = Command::new(program)
        .args(args)
        .env("CUTOVER_TEST_PG_URL", &cluster.url)
        .status();
    let stopped = cluster.stop();
    let status = status.with_context(|| format!("running `{program}`"))?;
    stopped.context("stopping the throwaway PostgreSQL")?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1))
}
