//! `cargo xtask bench router`: the cutover router against HAProxy and nginx on loopback, in one
//! run. The measuring lives in the agent's end-to-end test binary (its bench mode), which already
//! has the test app, the load generator and the peers' configurations; this installs the peers
//! when it can and runs that binary from a release build.

use std::process::Command;

use anyhow::{Context, Result, ensure};

/// The peers the bench compares with (Debian packages, same names as their binaries).
const PEERS: [&str; 2] = ["haproxy", "nginx"];

fn on_path(binary: &str) -> bool {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(binary).is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the missing peers with apt-get when running as root; otherwise says which will be
/// skipped.
fn ensure_peers() {
    let missing: Vec<&str> = PEERS.iter().copied().filter(|p| !on_path(p)).collect();
    if missing.is_empty() {
        return;
    }
    if !is_root() {
        println!(
            "{} not installed and not root: skipped (install with `apt-get install -y {}`)",
            missing.join(" and "),
            missing.join(" ")
        );
        return;
    }
    println!("installing {} (apt-get)", missing.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        // A fresh machine has no package lists yet.
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if !install() {
            println!("apt-get could not install {}: skipped", missing.join(" "));
        }
    }
}

pub fn run() -> Result<()> {
    ensure_peers();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = crate::workspace_root().join("Cargo.toml");
    // The peers are started by the bench binary; it finds them on PATH.
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d == std::path::Path::new("/usr/sbin")) {
        let mut dirs: Vec<_> = std::env::split_paths(&path).collect();
        dirs.push("/usr/sbin".into());
        path = std::env::join_paths(dirs).context("building PATH")?;
    }
    println!("(building the agent's bench in release mode)");
    let status = Command::new(cargo)
        .args(["test", "--release", "--quiet", "--manifest-path"])
        .arg(manifest)
        .args(["-p", "cutover-agent", "--test", "e2e", "--", "bench"])
        .env("PATH", path)
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "the router bench failed: {status}");
    Ok(())
}
