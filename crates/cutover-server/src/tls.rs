//! HTTPS for `cutover serve --tls-cert/--tls-key`: the agent protocol's listener, which hands
//! axum only connections whose TLS handshake completed (each handshake on a task of its own and
//! bounded in time). The certificate and key are read by `cutover_control::tls_config`.

pub use cutover_control::TlsListener;
