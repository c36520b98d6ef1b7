//! The integration tests of cutover-metrics: one test binary, one module per area.

mod dora;
mod properties;
mod store;
mod svg;
