//! The integration tests of cutover-notify: one test binary, one module per area.

mod atom;
mod dispatch;
mod smtp_tls;
