//! DORA metrics and incidents, computed from cutover's own explicit records.
//!
//! - [`compute`] reads the store into a [`History`] and calls the pure [`compute_from`]: deployment
//!   frequency, lead time for changes (per commit), change failure rate and failed deployment
//!   recovery time, each with its DORA performance [`Band`] and daily/weekly [`Series`].
//! - [`render_svg_chart`] draws one metric's series as an accessible inline SVG with the bands shaded.
//! - [`incident`]: opening and resolving incidents (`incident.open` / `incident.resolve`).
//! - [`links`]: the explicit hotfix links (`hotfix.start`, `release.link`).
//!
//! Nothing here prints.

pub mod bands;
pub mod dora;
pub mod incident;
pub mod links;
mod load;
pub mod svg;

pub use bands::Band;
pub use cutover_views::TimeError;
pub use dora::{
    ChangeFailureRate, CommitLeadTime, CommitRecord, DeploymentFrequency, DeploymentRecord,
    DoraReport, FailedDeployment, FailureReason, History, IncidentRecord, LeadTime, RecoveryTime,
    ReleaseLink, ReleaseRecord, Series, SeriesPoint, compute_from,
};
pub use incident::{IncidentOpened, IncidentResolved, open_incident, resolve_incident};
pub use load::load_history;
pub use svg::{ChartOptions, Granularity, Metric, render_svg_chart};

use cutover_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// A point in time (UTC), as the store keeps it.
pub type Timestamp = cutover_store::Timestamp;

/// Which period and environment to measure: `[since, until)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsQuery {
    pub since: Timestamp,
    pub until: Timestamp,
    pub environment: String,
}

/// The default period of `cutover metrics` and the API: the last 90 days.
pub const DEFAULT_SINCE: &str = "90d";

impl MetricsQuery {
    /// The query from user input (CLI flags, API query parameters): `since` defaults to
    /// [`DEFAULT_SINCE`] and `until` to `now`; both take the forms of [`parse_instant`]. An empty
    /// or reversed period is an error.
    pub fn parse(
        environment: impl Into<String>,
        since: Option<&str>,
        until: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, MetricsError> {
        let since = parse_instant(since.unwrap_or(DEFAULT_SINCE), now)?;
        let until = until.map_or(Ok(now), |u| parse_instant(u, now))?;
        if since >= until {
            return Err(MetricsError::EmptyPeriod { since, until });
        }
        Ok(Self {
            since,
            until,
            environment: environment.into(),
        })
    }

    /// The `days` days up to `until`.
    #[must_use]
    pub fn last_days(environment: impl Into<String>, until: Timestamp, days: i64) -> Self {
        Self {
            // Saturates at the earliest representable time rather than panicking.
            since: chrono::Duration::try_days(days)
                .and_then(|d| until.checked_sub_signed(d))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            until,
            environment: environment.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Views(#[from] cutover_views::ViewsError),
    #[error(transparent)]
    Time(#[from] TimeError),
    /// The period is empty or reversed.
    #[error("the period is empty: since ({since}) is not before until ({until})")]
    EmptyPeriod { since: Timestamp, until: Timestamp },
    /// A deployment an incident names does not exist, or belongs to another environment.
    #[error("deployment {id} {problem}")]
    BadDeployment { id: i64, problem: String },
    #[error("incident {id} does not exist")]
    NoIncident { id: i64 },
    #[error("incident {id} was already resolved at {at}")]
    AlreadyResolved { id: i64, at: Timestamp },
}

impl MetricsError {
    /// Whether the user can fix it (exit 2) rather than the machine.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            MetricsError::Store(e) => e.is_user_error(),
            MetricsError::Views(e) => e.is_user_error(),
            MetricsError::Time(_)
            | MetricsError::EmptyPeriod { .. }
            | MetricsError::BadDeployment { .. }
            | MetricsError::NoIncident { .. }
            | MetricsError::AlreadyResolved { .. } => true,
        }
    }

    /// What to do about it, when there is something to say.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            MetricsError::Store(e) => e.hint(),
            MetricsError::Views(e) => e.hint(),
            MetricsError::Time(e) => Some(e.hint().to_owned()),
            MetricsError::EmptyPeriod { .. } => {
                Some("give --since an earlier time than --until (e.g. --since 90d)".to_owned())
            }
            MetricsError::BadDeployment { .. } => {
                Some("`cutover history ENV` lists the environment's deployments".to_owned())
            }
            MetricsError::NoIncident { .. } => {
                Some("`cutover incident ls` lists the incidents".to_owned())
            }
            MetricsError::AlreadyResolved { .. } => None,
        }
    }
}

/// Parses a `--since`/`--until` value: a duration back from `now` (`90d`, `12w`, `24h`, `2h ago`),
/// an RFC 3339 time, `YYYY-MM-DD[ HH:MM[:SS]]` (UTC unless an offset follows) or `now`.
pub fn parse_instant(text: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    cutover_views::parse_time(text, now)
}

/// The DORA report of `q.environment` over `[q.since, q.until)`, from the store's records.
pub async fn compute(store: &dyn Store, q: &MetricsQuery) -> Result<DoraReport, MetricsError> {
    if q.since >= q.until {
        return Err(MetricsError::EmptyPeriod {
            since: q.since,
            until: q.until,
        });
    }
    let (history, mut warnings) = load_history(store, &q.environment).await?;
    let mut report = compute_from(&history, q);
    warnings.append(&mut report.warnings);
    report.warnings = warnings;
    Ok(report)
}
