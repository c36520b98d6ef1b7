//! The DORA performance bands (elite, high, medium, low) and the thresholds that place a value in one.
//!
//! Source: DORA (Google Cloud), *Accelerate State of DevOps Report 2023*, "Software delivery
//! performance" cluster table, kept by the 2024 report: elite deploys on demand (several times a
//! day) with a change lead time under one day, a change failure rate around 5% and a failed
//! deployment recovery time under one hour; high deploys between daily and weekly, lead time one
//! day to one week, ~10%, under one day; medium deploys between weekly and monthly, lead time one
//! week to one month, ~15%, one day to one week; low is everything slower or worse.
//!
//! The report describes clusters of survey answers, not cut-offs; cutover turns them into
//! thresholds the way Four Keys does: each band's upper bound is the next better band's lower one.

use serde::{Deserialize, Serialize};

/// A DORA performance band; `Elite` is the best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

impl Band {
    pub const ALL: [Band; 4] = [Band::Elite, Band::High, Band::Medium, Band::Low];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Elite => "elite",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
        }
    }
}

impl std::fmt::Display for Band {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const HOUR: f64 = 3600.0;
pub const DAY: f64 = 24.0 * HOUR;
pub const WEEK: f64 = 7.0 * DAY;
/// The report's "once per month".
pub const MONTH: f64 = 30.0 * DAY;

/// Deployments per day at or above which each band starts: elite at least daily ("on demand"),
/// high at least weekly, medium at least monthly.
pub const FREQUENCY_PER_DAY: [(Band, f64); 3] = [
    (Band::Elite, 1.0),
    (Band::High, 1.0 / 7.0),
    (Band::Medium, 1.0 / 30.0),
];

/// Median lead time (seconds) below which each band is: elite under a day, high under a week,
/// medium under a month.
pub const LEAD_TIME_SECONDS: [(Band, f64); 3] = [
    (Band::Elite, DAY),
    (Band::High, WEEK),
    (Band::Medium, MONTH),
];

/// Change failure rate at or below which each band is: 5%, 10%, 15% (the 2023 clusters).
pub const CHANGE_FAILURE_RATE: [(Band, f64); 3] = [
    (Band::Elite, 0.05),
    (Band::High, 0.10),
    (Band::Medium, 0.15),
];

/// Median recovery time (seconds) below which each band is: elite under an hour, high under a
/// day, medium under a week.
pub const RECOVERY_SECONDS: [(Band, f64); 3] =
    [(Band::Elite, HOUR), (Band::High, DAY), (Band::Medium, WEEK)];

/// The band of a deployment rate (deployments per day); `None` for a rate that is not a number.
#[must_use]
pub fn frequency_band(per_day: f64) -> Option<Band> {
    if per_day.is_nan() {
        return None;
    }
    Some(
        FREQUENCY_PER_DAY
            .iter()
            .find(|(_, min)| per_day >= *min)
            .map_or(Band::Low, |(band, _)| *band),
    )
}

/// The band of a median lead time in seconds.
#[must_use]
pub fn lead_time_band(seconds: f64) -> Option<Band> {
    below(seconds, &LEAD_TIME_SECONDS)
}

/// The band of a change failure rate in [0, 1].
#[must_use]
pub fn change_failure_band(rate: f64) -> Option<Band> {
    if rate.is_nan() {
        return None;
    }
    Some(
        CHANGE_FAILURE_RATE
            .iter()
            .find(|(_, max)| rate <= *max)
            .map_or(Band::Low, |(band, _)| *band),
    )
}

/// The band of a median recovery time in seconds.
#[must_use]
pub fn recovery_band(seconds: f64) -> Option<Band> {
    below(seconds, &RECOVERY_SECONDS)
}

fn below(value: f64, thresholds: &[(Band, f64)]) -> Option<Band> {
    if value.is_nan() {
        return None;
    }
    Some(
        thresholds
            .iter()
            .find(|(_, max)| value < *max)
            .map_or(Band::Low, |(band, _)| *band),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_place_values_in_the_reports_bands() {
        // Deployment frequency: 2/day elite; exactly 1/day elite; 1/week high; 1/month medium.
        assert_eq!(frequency_band(2.0), Some(Band::Elite));
        assert_eq!(frequency_band(1.0), Some(Band::Elite));
        assert_eq!(frequency_band(0.5), Some(Band::High));
        assert_eq!(frequency_band(1.0 / 7.0), Some(Band::High));
        assert_eq!(frequency_band(1.0 / 8.0), Some(Band::Medium));
        assert_eq!(frequency_band(1.0 / 30.0), Some(Band::Medium));
        assert_eq!(frequency_band(1.0 / 31.0), Some(Band::Low));
        assert_eq!(frequency_band(0.0), Some(Band::Low));
        // Lead time: 23h elite, 1 day high, 6 days high, 7 days medium, 30 days low.
        assert_eq!(lead_time_band(23.0 * HOUR), Some(Band::Elite));
        assert_eq!(lead_time_band(DAY), Some(Band::High));
        assert_eq!(lead_time_band(6.0 * DAY), Some(Band::High));
        assert_eq!(lead_time_band(WEEK), Some(Band::Medium));
        assert_eq!(lead_time_band(MONTH), Some(Band::Low));
        // Change failure rate: 0 and 5% elite, 10% high, 15% medium, 16% low.
        assert_eq!(change_failure_band(0.0), Some(Band::Elite));
        assert_eq!(change_failure_band(0.05), Some(Band::Elite));
        assert_eq!(change_failure_band(0.10), Some(Band::High));
        assert_eq!(change_failure_band(0.15), Some(Band::Medium));
        assert_eq!(change_failure_band(0.16), Some(Band::Low));
        // Recovery: 59 min elite, 1h high, 1 day medium, 1 week low.
        assert_eq!(recovery_band(59.0 * 60.0), Some(Band::Elite));
        assert_eq!(recovery_band(HOUR), Some(Band::High));
        assert_eq!(recovery_band(DAY), Some(Band::Medium));
        assert_eq!(recovery_band(WEEK), Some(Band::Low));
        assert_eq!(recovery_band(f64::NAN), None);
    }
}
