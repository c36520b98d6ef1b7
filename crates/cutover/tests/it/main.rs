//! The `cutover` binary, driven through its real command line in hermetic git repositories.

mod audit;
mod basics;
mod bom;
mod config;
mod demo;
mod init;
mod plan;
mod queue;
mod support;
mod vulns;
