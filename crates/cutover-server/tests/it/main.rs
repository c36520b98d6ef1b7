//! cutover-server's integration tests: real servers on real sockets over real stores (SQLite in a
//! temp dir; PostgreSQL from `CUTOVER_TEST_PG_URL`, set by `cargo xtask pg -- …`).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod api;
mod auth;
mod bad_input;
mod cache;
mod common;
mod incidents;
mod openapi;
mod replicas;
