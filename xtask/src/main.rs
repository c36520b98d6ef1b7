//! `cargo xtask`: code generation (checked in CI), the test runner that brings its own PostgreSQL,
//! and benchmarks against the tools our users would otherwise pick.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_audit;
mod bench_bom;
mod bench_db;
mod bench_deploy;
mod bench_plan;
mod bench_queue;
mod bench_router;
mod bench_server;
mod bench_vulns;
mod codegen;
mod pg;
mod test;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate docs/cli.md and docs/cutover.schema.json (`--check`: fail when they are stale).
    Codegen {
        #[arg(long)]
        check: bool,
    },
    /// Run the whole test suite with a throwaway PostgreSQL cluster (the README's test command).
    Test {
        /// Extra arguments for the test runner (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run one command with a throwaway PostgreSQL's URL in `CUTOVER_TEST_PG_URL`.
    Pg {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Benchmarks against peers; each prints its figures and ratios.
    Bench {
        #[arg(value_enum)]
        what: Bench,
        /// `db` only: the size of each generated database, such as `1G` (the default) or `256M`.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// `db` only: how many interleaved runs of each pair (default 4).
        #[arg(long, value_name = "N")]
        runs: Option<usize>,
        /// `db` only: measure one engine (`postgres` or `sqlite`) instead of both.
        #[arg(long, value_name = "ENGINE")]
        engine: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Audit append rate (1 and 4 writers) and verify rate, on SQLite and PostgreSQL.
    Audit,
    /// BOM generation vs `cargo cyclonedx` (a Cargo workspace) and `cyclonedx-npm`
    /// (a package-lock.json with 2,000+ packages).
    Bom,
    /// `cutover changelog --all` on a 100,000-commit synthetic repository vs git-cliff and the
    /// `git log` floor; `cutover plan` over the last 500 commits.
    Plan,
    /// Vulnerability DB import (fixtures + 200,000 generated advisories), a 5,000-component
    /// match, and cutover vs `cargo audit` on a Cargo.lock with known-vulnerable crates.
    Vulns,
    /// Queue throughput (no-op jobs, 1 and 4 workers) and hotfix start latency behind a
    /// 10,000-job backlog, on SQLite and PostgreSQL.
    Queue,
    /// Blue-green deployment time on 1 and 4 local hosts, warm rollback latency (command start →
    /// first request served by the old version), failed requests under constant load during 20
    /// deploy-and-rollback cycles.
    Deploy,
    /// The cutover router vs HAProxy and nginx (installed when missing and root) on loopback:
    /// throughput, p50/p99 latency and their ratios; requests lost during 100 switches under
    /// load, and the switch latency.
    Router,
    /// `cutover serve` on PostgreSQL with 1,000,000 audit events: p50/p99 latency at 1,000
    /// requests/s (open loop) and closed-loop throughput of the status, release and
    /// "what ran at T" endpoints.
    Server,
    /// Application database recovery point and restore times (1 GB PostgreSQL database, 1 GB
    /// SQLite file) vs `pg_dump`/`pg_restore` and `sqlite3 .backup`/`.restore` by hand.
    Db,
}

fn main() -> std::process::ExitCode {
    let result = match Xtask::parse().cmd {
        Cmd::Codegen { check } => codegen::run(check),
        Cmd::Test { args } => test::run(&args),
        Cmd::Pg { cmd } => test::with_pg(&cmd),
        Cmd::Bench {
            what,
            size,
            runs,
            engine,
        } => match what {
            Bench::Db => bench_db::run(size.as_deref(), runs, engine.as_deref()).map(|()| 0),
            Bench::Audit => bench_audit::run().map(|()| 0),
            Bench::Bom => bench_bom::run().map(|()| 0),
            Bench::Plan => bench_plan::run().map(|()| 0),
            Bench::Vulns => bench_vulns::run().map(|()| 0),
            Bench::Queue => bench_queue::run().map(|()| 0),
            Bench::Router => bench_router::run().map(|()| 0),
            Bench::Server => bench_server::run().map(|()| 0),
            Bench::Deploy => bench_deploy::run().map(|()| 0),
        },
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
