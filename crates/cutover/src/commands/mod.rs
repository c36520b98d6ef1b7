//! One module per command; `run` dispatches the parsed command line to them.
//!
//! Adding a command: define its clap args in `cli.rs` (a variant of `Command` and an `…Args`
//! struct), add `mod yourcmd;` here and one dispatch arm, and write `yourcmd::run(ctx, &args)`.
//! A command gets what it needs from `Ctx` (`project_root()`, `config()`, `store()`, `actor()`,
//! `block_on()`), prints only through `ctx.ui` (`print_json` under `ctx.global.json`, else
//! `println`/`status`/`warn`), and returns `CliError::usage` (exit 2: bad input, nothing changed),
//! `CliError::failed` (exit 1: the operation ran and failed) or `CliError::internal`, with
//! `.with_cause(e)` and `.with_hint("what to do")`. Every state change goes through the store
//! together with its audit event. Integration tests go in `crates/cutover/tests/it/yourcmd.rs`
//! (see `support.rs` for hermetic git projects); after changing the CLI run `cargo xtask codegen`.

mod agent;
mod approve;
mod audit;
mod bom;
mod changelog;
mod completions;
mod config;
mod db;
mod demo;
mod deploy;
mod gates;
mod history;
mod hotfix;
mod incident;
mod init;
mod logs;
mod metrics;
mod notice;
mod plan;
mod promote;
mod proof;
mod queue;
mod release;
mod serve;
mod ship;
mod status;
mod token;
mod vulns;
mod worker;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::Result;
use crate::ui::Ui;

pub fn run(cli: Cli, ui: &Ui) -> Result<()> {
    let ctx = Ctx::new(ui, cli.global.clone());
    // Commands that write events the `[notify]` channels are told about: the dispatcher runs
    // once after them, whether they succeeded or not (a rolled-back deployment is news too).
    let notifies = matches!(
        cli.command,
        Command::Release(_)
            | Command::Hotfix(_)
            | Command::Deploy(_)
            | Command::Rollback(_)
            | Command::Incident(_)
            | Command::Ship(_)
            | Command::Promote(_)
    );
    let result = match cli.command {
        Command::Init(args) => init::run(&ctx, &args),
        Command::Config(cmd) => config::run(&ctx, &cmd),
        Command::Audit(args) => audit::run(&ctx, &args),
        Command::Demo(args) => demo::run(&ctx, &args),
        Command::Bom(args) => bom::run(&ctx, &args),
        Command::Vulns(args) => vulns::run(&ctx, &args),
        Command::Plan(args) => plan::run(&ctx, &args),
        Command::Changelog(args) => changelog::run(&ctx, &args),
        Command::Notice(args) => notice::run(&ctx, &args),
        Command::Release(args) => release::run(&ctx, &args),
        Command::Hotfix(args) => hotfix::run(&ctx, &args),
        Command::Queue(args) => queue::queue(&ctx, &args),
        Command::Check(args) => queue::check(&ctx, &args),
        Command::Worker(args) => worker::run(&ctx, &args),
        Command::Agent(args) => agent::run(&ctx, &args),
        Command::Host(args) => agent::host(&ctx, &args),
        Command::Deploy(args) => deploy::deploy(&ctx, &args),
        Command::Rollback(args) => deploy::rollback(&ctx, &args),
        Command::Db(args) => db::run(&ctx, &args),
        Command::Status(args) => status::run(&ctx, &args),
        Command::History(args) => history::run(&ctx, &args),
        Command::Metrics(args) => metrics::run(&ctx, &args),
        Command::Incident(args) => incident::run(&ctx, &args),
        Command::Proof(args) => proof::run(&ctx, &args),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Token(args) => token::run(&ctx, &args),
        Command::Logs(args) => logs::run(&ctx, &args),
        Command::Approve(args) => approve::run(&ctx, &args),
        Command::Gates(args) => gates::run(&ctx, &args),
        Command::Ship(args) => ship::ship(&ctx, &args),
        Command::Promote(args) => promote::run(&ctx, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Testapp(args) => cutover_testapp::run(args).map_err(|e| {
            crate::error::CliError::failed("the test app stopped with an error").with_cause(e)
        }),
    };
    if notifies {
        notice::dispatch_notifications(&ctx);
    }
    result
}

/// The names of an environment's hosts.
pub(crate) fn env_host_names(env: &cutover_config::Environment) -> Vec<String> {
    env.hosts.iter().map(|h| h.name().to_string()).collect()
}

/// The router address of `host` in `env`: its own, else the environment's.
pub(crate) fn env_host_listen(env: &cutover_config::Environment, host: &str) -> Option<String> {
    env.hosts
        .iter()
        .find(|h| h.name() == host)
        .and_then(|h| h.listen.clone())
        .or_else(|| env.listen.clone())
}
