//! cutover's notifications out: a generic JSON webhook signed with HMAC-SHA256, Slack-compatible
//! incoming webhooks, email over SMTP (lettre) and the Atom feed.
//!
//! Events come from the audit log, never from hooks in the deploy engine: [`from_audit`] turns an
//! audit event into a [`Notification`] (or nothing), and [`dispatch_pending`] delivers the events
//! above each channel's cursor, recording `notification.sent` / `notification.failed`. A
//! notification never blocks anything: the dispatcher returns a report, never an error.

mod atom;
mod channel;
mod dispatch;
mod event;
pub mod http;
mod sign;

pub use atom::{atom_feed, feed_entries};
pub use channel::{
    Channel, ChannelError, ChannelKind, EmailTarget, Resolve, RetryPolicy, channels, deliver,
    deliver_with,
};
pub use dispatch::{
    ChannelReport, DEFAULT_CLI_DEADLINE, DispatchOptions, DispatchReport, dispatch_channels,
    dispatch_for_cli, dispatch_loop, dispatch_pending, dispatch_pending_with, env_resolver,
};
pub use event::{Notification, from_audit};
pub use sign::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify};

pub use cutover_config::Event;

/// Why a notification could not be delivered (never contains a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Every attempt failed (or a permanent error ended the attempts early).
    #[error("{channel}: {message} (after {attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Failed {
        /// The channel's name (`webhook:…`, `slack:…`, `email`).
        channel: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        message: String,
    },
    /// The channel cannot be used as configured (an address that does not parse, ...).
    #[error("{channel}: {message}")]
    Config {
        /// The channel's name.
        channel: String,
        /// What is wrong.
        message: String,
    },
}

impl NotifyError {
    /// Attempts made (0 for a configuration error).
    pub fn attempts(&self) -> u32 {
        match self {
            NotifyError::Failed { attempts, .. } => *attempts,
            NotifyError::Config { .. } => 0,
        }
    }
}
