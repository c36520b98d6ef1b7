//! The dashboard's integration tests: every page over a real SQLite store (`pages`), and a real
//! headless Chromium driven over WebDriver (`browser`).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod browser;
mod common;
mod pages;
mod webdriver;
