//! The integration tests of cutover-webhooks: one test binary, one module per area.

mod parse;
mod routes;
