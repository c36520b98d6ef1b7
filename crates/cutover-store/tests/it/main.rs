//! The store's integration tests: one conformance suite, generic over `Store`, run on SQLite and
//! on a real PostgreSQL (`CUTOVER_TEST_PG_URL`, set by `cargo xtask test`).

#![allow(clippy::unwrap_used)]

mod common;
mod concurrency;
mod conformance;
mod errors;
mod queue;
mod queue_batch;
mod reads;
mod tamper;
