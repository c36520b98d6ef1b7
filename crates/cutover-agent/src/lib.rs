//! The host agent: runs releases in blue/green slots, checks their health and routes traffic to them.
//!
//! The pieces, each usable on its own:
//! - [`runtime`]: supervised processes in slots (process groups, graceful stop, restart with backoff,
//!   rotating logs);
//! - [`health`]: HTTP, TCP and command probes, the version probe, and the evidence they leave;
//! - [`router`]: the reverse proxy that owns the service's listen address (switch, drain, canary,
//!   counters, pause, persisted routing state; a restarted agent's router takes the listening socket
//!   over a unix socket, with `SO_REUSEPORT` as the fallback);
//! - [`reconcile`]: applies an assignment (desired state) to slots and routers, reports what it
//!   sees, and survives an agent restart (adopting running slots);
//! - [`protocol`]: the serde types of the agent ↔ control plane protocol (`/agent/v1/…`);
//! - [`loadgen`]: a bounded closed-loop HTTP/1.1 load generator (tests, `cargo xtask bench router`);
//! - [`artifact`]: release artifacts, verified by sha256 before anything is unpacked;
//! - [`client`]: the agent's HTTP client to the control plane (`unix:PATH`, loopback `http://`);
//! - [`daemon`]: the `cutover agent` loop (register, long-poll, apply, report, reconnect);
//! - [`logs`]: log reads asked through the control plane (tail and follow over the outbound
//!   connection).
//!
//! The agent never reads the store: everything it knows comes through [`protocol`].
//!
//! The daemon around these pieces (the `cutover agent` command) is a loop: at start
//! [`reconcile::Reconciler::resume`]; on every new assignment from a poll
//! [`reconcile::Reconciler::apply`]; on a short tick (say 100 ms) [`reconcile::Reconciler::route`],
//! so that routing waiting for health happens as soon as it can; at an interval and after each
//! apply, send [`reconcile::Reconciler::report`]. On SIGTERM for a restart,
//! [`reconcile::Reconciler::detach`] (slots keep running; the next agent adopts them and takes the
//! listeners); for an uninstall, [`reconcile::Reconciler::stop_all`].

pub mod artifact;
pub mod client;
pub mod daemon;
mod handoff;
pub mod health;
pub mod loadgen;
pub mod logs;
pub mod protocol;
pub mod reconcile;
pub mod router;
pub mod runtime;

pub use runtime::Slot;
