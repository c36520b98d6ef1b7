//! What can stop gates from being evaluated at all (a gate that holds is not an error).

use std::path::PathBuf;

use cutover_store::StoreError;

/// Why the gates could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The environment is not in cutover.toml.
    #[error("there is no environment `{name}` in cutover.toml")]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The configured environments.
        known: Vec<String>,
    },
    /// No release with this version was recorded.
    #[error("there is no release {version}")]
    UnknownRelease {
        /// The version asked for.
        version: String,
    },
    /// Reading the store failed.
    #[error("cannot read the store")]
    Store(#[from] StoreError),
    /// The advisory database exists but cannot be read.
    #[error("cannot read the vulnerability database {}", path.display())]
    VulnDb {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: cutover_vuln::db::DbError,
    },
}

impl GateError {
    /// The user asked for something that does not exist (exit 2), rather than a failure.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            GateError::UnknownEnvironment { .. } | GateError::UnknownRelease { .. }
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            GateError::UnknownEnvironment { known, .. } if known.is_empty() => Some(
                "cutover.toml defines no environments; add e.g. [environments.staging]".into(),
            ),
            GateError::UnknownEnvironment { known, .. } => Some(format!(
                "the environments are: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            GateError::UnknownRelease { .. } => {
                Some("`cutover release` records a release; `cutover audit --action release.created` lists them".into())
            }
            GateError::Store(_) | GateError::VulnDb { .. } => None,
        }
    }
}
