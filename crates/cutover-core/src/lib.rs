//! cutover domain types and pure logic (no IO)
pub mod audit;
pub mod commit;
pub mod deploy;
pub mod queue;
pub mod tag;
pub mod version;
