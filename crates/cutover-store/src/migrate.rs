//! Schema versions: refusing databases written by a newer cutover, and deciding whether to migrate.

use sqlx::migrate::Migrator;

use crate::StoreError;

/// The highest migration version this binary knows.
pub(crate) fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Checks the versions recorded in the database against the embedded migrations: an unknown
/// version means a newer cutover wrote it. Returns true when every known migration is applied.
pub(crate) fn check_versions(
    applied: &[i64],
    migrator: &Migrator,
    url: &str,
) -> Result<bool, StoreError> {
    if let Some(found) = applied
        .iter()
        .copied()
        .filter(|v| !migrator.version_exists(*v))
        .max()
    {
        return Err(StoreError::NewerSchema {
            url: url.to_owned(),
            found,
            known: known_version(migrator),
        });
    }
    Ok(migrator.iter().all(|m| applied.contains(&m.version)))
}
