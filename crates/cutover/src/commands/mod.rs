//! One module per command; `run` dispatches the parsed command line to them.

mod audit;
mod completions;
mod config;
mod init;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::Result;
use crate::ui::Ui;

pub fn run(cli: Cli, ui: &Ui) -> Result<()> {
    let ctx = Ctx::new(ui, cli.global.clone());
    match cli.command {
        Command::Init(args) => init::run(&ctx, &args),
        Command::Config(cmd) => config::run(&ctx, &cmd),
        Command::Audit(args) => audit::run(&ctx, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Testapp(args) => cutover_testapp::run(args)
            .map_err(|e| crate::error::CliError::failed("the test app stopped with an error").with_cause(e)),
    }
}
