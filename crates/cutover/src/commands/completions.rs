//! `cutover completions SHELL`: a completion script generated from the clap model.

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;
use clap::CommandFactory;

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "cutover", &mut std::io::stdout());
    Ok(())
}
