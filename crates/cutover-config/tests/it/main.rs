//! Integration tests of cutover-config: fixture files, overrides, secrets, schema, init, properties.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod durations;
mod init;
mod invalid;
mod overrides;
mod props;
mod schema;
mod secrets;
mod valid;

use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// No environment overrides.
pub const NO_VARS: &[(&str, &str)] = &[];

/// Loads a configuration from text with no overrides.
pub fn load(src: &str) -> Result<cutover_config::Config, cutover_config::ConfigError> {
    cutover_config::load_str(src, Path::new("cutover.toml"), NO_VARS)
}

/// An error as the binary would print it: the message, then the hint.
pub fn render(err: &cutover_config::ConfigError) -> String {
    let mut s = format!("error: {err}");
    if let Some(h) = err.hint() {
        s.push_str(&format!("\nhint: {h}"));
    }
    s
}
