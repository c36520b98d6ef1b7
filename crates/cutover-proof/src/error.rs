//! Why a key could not be loaded or a proof was refused: one variant per cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The key file does not exist (the project was not initialised, or the file was removed).
    #[error("the proof key `{}` does not exist", path.display())]
    MissingKey { path: PathBuf },

    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("`{}` is not a valid {expected}: {reason}", path.display())]
    KeyFile {
        path: PathBuf,
        /// What the file should hold, e.g. `PKCS#8 PEM ed25519 private key`.
        expected: &'static str,
        reason: String,
    },

    #[error("the private key `{}` is readable by others (mode {mode:o}); expected mode 600", path.display())]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error(
        "the public key `{}` (keyid {public_keyid}) does not belong to the private key `{}` (keyid {private_keyid})",
        public.display(),
        private.display()
    )]
    KeyMismatch {
        private: PathBuf,
        public: PathBuf,
        private_keyid: String,
        public_keyid: String,
    },

    #[error("the random source failed while making a new key: {0}")]
    Random(String),

    /// The envelope is not a DSSE JSON envelope (`{payloadType, payload, signatures}`).
    #[error("not a DSSE envelope: {reason}")]
    Envelope { reason: String },

    #[error("the envelope's payloadType is `{found}`; expected `{expected}`")]
    PayloadType { found: String, expected: String },

    #[error("the envelope's payload is not base64: {reason}")]
    PayloadEncoding { reason: String },

    #[error(
        "no signature by key {expected} in the envelope (keyids present: {})",
        list_or_none(found)
    )]
    UnknownKeyid {
        expected: String,
        found: Vec<String>,
    },

    #[error("the signature by key {keyid} is not a base64 ed25519 signature: {reason}")]
    SignatureEncoding { keyid: String, reason: String },

    #[error(
        "the signature by key {keyid} does not verify: the payload or its type was altered, or another key signed it"
    )]
    BadSignature { keyid: String },

    #[error("the signed payload is not an in-toto statement: {reason}")]
    Statement { reason: String },

    #[error("the statement's _type is `{found}`; expected `{expected}`")]
    StatementType {
        found: String,
        expected: &'static str,
    },

    #[error("the statement's predicateType is `{found}`; expected `{expected}`")]
    PredicateType {
        found: String,
        expected: &'static str,
    },

    #[error("the statement's subject is invalid: {reason}")]
    Subject { reason: String },
}

impl ProofError {
    /// What the user can do about it, where there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            ProofError::MissingKey { .. } => Some(
                "run `cutover init` to create the project's proof key (an existing cutover.toml is kept with `--force`)"
                    .to_owned(),
            ),
            ProofError::KeyPermissions { path, .. } => {
                Some(format!("run `chmod 600 {}`", path.display()))
            }
            ProofError::KeyFile { path, .. } => Some(format!(
                "restore `{}` from a backup; proofs signed with the lost key can only be checked with its public key",
                path.display()
            )),
            ProofError::KeyMismatch { public, .. } => Some(format!(
                "remove `{}`: it is written again from the private key",
                public.display()
            )),
            ProofError::UnknownKeyid { .. } | ProofError::BadSignature { .. } => Some(
                "this proof was not signed by this project's key, or was altered after signing".to_owned(),
            ),
            _ => None,
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}
