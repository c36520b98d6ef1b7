//! The `cutover` binary, driven through its real command line in hermetic git repositories.
#![allow(clippy::unwrap_used)] // Test helpers panic on purpose: a failure here is a failed test.

mod agent;
mod audit;
mod basics;
mod bom;
mod config;
mod db;
mod demo;
mod deploy;
mod gates;
mod init;
mod logs;
mod metrics;
mod notify;
mod plan;
mod proof;
mod queue;
mod release_bom;
mod serve;
mod ship;
mod status;
mod support;
mod token;
mod vulns;
