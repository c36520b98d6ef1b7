//! `cutover config show|schema`.

use crate::cli::ConfigCommand;
use crate::context::Ctx;
use crate::error::Result;

pub fn run(ctx: &Ctx<'_>, cmd: &ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Show => {
            let config = ctx.config()?;
            let value = config.redacted_json();
            if ctx.global.json {
                ctx.ui.print_json(&value);
            } else {
                // TOML reads best for people; secrets are already references or `***` here.
                let text = toml::to_string_pretty(&value).unwrap_or_else(|_| {
                    serde_json::to_string_pretty(&value).expect("a Value serialises")
                });
                ctx.ui.print(text);
            }
            Ok(())
        }
        ConfigCommand::Schema => {
            ctx.ui.print_json(&cutover_config::json_schema());
            Ok(())
        }
    }
}
