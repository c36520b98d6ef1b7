//! Known vulnerabilities, offline: the OSV model, per-ecosystem version ordering, import of OSV
//! and RustSec advisories into a local indexed database, matching of components, and policy.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bomscan;
pub mod db;
pub mod fastmatch;
pub mod import;
pub mod index;
pub mod matching;
pub mod names;
pub mod osv;
pub mod policy;
pub mod rustsec;
pub mod severity;
pub mod version;
