//! cutover domain types and pure logic (no IO)
