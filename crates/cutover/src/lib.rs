//! The `cutover` command-line program: argument parsing, one module per command, rendering.
//!
//! Domain logic lives in the library crates; this crate only wires them to the terminal.

pub mod cli;
mod commands;
mod context;
mod error;
pub mod local;
mod stages;
mod ui;

use clap::Parser;
use std::process::ExitCode;

pub use error::{CliError, Kind};

/// Parses the command line, runs the command, renders any error and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap renders its own usage errors; they are bad input (exit 2), help/version exit 0.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let ui = ui::Ui::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.verbose,
        cli.global.color,
    );
    init_tracing(&cli.global);
    match commands::run(cli, &ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}

fn init_tracing(global: &cli::GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,sqlx=warn",
        (false, 2) => "debug,sqlx=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
