//! The `cutover` binary, driven through its real command line in hermetic git repositories.

mod audit;
mod basics;
mod config;
mod demo;
mod bom;
mod init;
mod plan;
mod queue;
mod vulns;
mod support;
