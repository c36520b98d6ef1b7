//! The errors of the views: a store that cannot be read, or a request naming something unknown.

use cutover_store::StoreError;

use crate::time::TimeError;

#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown environment `{name}`; the configuration defines {}", known_list(.known))]
    UnknownEnvironment { name: String, known: Vec<String> },
    #[error(transparent)]
    Time(#[from] TimeError),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl ViewsError {
    /// Whether the user can fix it (exit 2) rather than the machine (a broken store).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            ViewsError::Store(e) => e.is_user_error(),
            ViewsError::UnknownEnvironment { .. } | ViewsError::Time(_) => true,
        }
    }

    /// What to do about it, when there is something to say.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            ViewsError::Store(e) => e.hint(),
            ViewsError::UnknownEnvironment { .. } => {
                Some("environments are the `[environments.NAME]` tables of cutover.toml".to_owned())
            }
            ViewsError::Time(e) => Some(e.hint().to_owned()),
        }
    }
}
