//! Test support shared by cutover's test suites (a dev-dependency only): loopback ports that stay
//! free until the test binds them.
//!
//! Binding port 0 and closing the listener again is the usual way to "find a free port", and it
//! races: the kernel hands that port straight back out as the source port of the next outgoing
//! connection, or to another test process doing the same. A service that binds it a few seconds
//! later (a slot started by an agent) then fails with "address already in use". These ports are
//! taken below the kernel's ephemeral range, where no outgoing connection lands, and each is held
//! by an advisory lock on a file under the temporary directory for the life of the test process
//! (the kernel drops the lock when the process ends), so parallel test processes never share one.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// A loopback port no other test process holds and nothing listens on now; it stays reserved
/// until this process exits.
///
/// # Panics
/// When every port of the claimable range is taken (a test-environment failure).
pub fn free_port() -> u16 {
    static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
    let (lo, hi) = claimable_ports();
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    let span = u32::from(hi - lo);
    // Processes start at different places, so that they rarely contend for the same lock.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let start = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
    for i in 0..span {
        let port = lo + u16::try_from((start + i) % span).expect("below the range's span");
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        // Something outside the tests may listen there: then the lock is dropped with `file`.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(file);
            return port;
        }
    }
    panic!("no claimable loopback port left in {lo}..{hi}");
}

/// `n` ports from [`free_port`].
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("cutover-test-ports")
}

/// The ports below the kernel's ephemeral range (or above it, when it starts low).
fn claimable_ports() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".to_owned());
    let mut it = range
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (first, last) = (it.next().unwrap_or(32768), it.next().unwrap_or(60999));
    if first >= 4096 {
        (first / 2, first)
    } else {
        assert!(
            last < 61440,
            "the ephemeral port range {first}-{last} leaves no ports for the tests"
        );
        (last + 1, 65535)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports = free_ports(20);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len(), "{ports:?}");
        let (lo, hi) = claimable_ports();
        for p in ports {
            assert!((lo..hi).contains(&p), "{p} outside {lo}..{hi}");
            TcpListener::bind(("127.0.0.1", p)).expect("a reserved port is free");
        }
    }
}
