//! The queue's integration tests: real processes for checks, real workers on SQLite and on a real
//! PostgreSQL (`CUTOVER_TEST_PG_URL`, set by `cargo xtask test` / `cargo xtask pg`).

#![allow(clippy::unwrap_used)]

mod check;
mod common;
mod workers;
