//! What every benchmark shares: they measure release builds, and their sizes can be overridden
//! from the environment for a quicker run.

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::Command;

/// `var` parsed as a number, else `default`.
pub fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Debug timings say nothing about cutover: a benchmark started from a debug xtask runs itself
/// again, with the same arguments, from a release build.
pub fn rerun_in_release() -> Result<()> {
    println!("(debug build: re-running in release mode)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = Command::new(cargo)
        .args(["run", "--release", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--")
        .args(std::env::args_os().skip(1))
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "the release run failed: {status}");
    Ok(())
}

/// `cargo build --release -p cutover` and the binary's path.
pub fn build_cutover() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::workspace_root();
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "cutover",
            "--bin",
            "cutover",
        ])
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "building cutover failed: {status}");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let exe = target.join("release").join("cutover");
    ensure!(exe.exists(), "{} was not built", exe.display());
    Ok(exe)
}
