//! Deployment logic without IO: the state machine, strategy plans and canary analysis.
//!
//! The orchestrator (`cutover-deploy`) drives hosts through these rules; everything here is a pure
//! function of its arguments so that it can be tested exhaustively.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a deployment is in its life. Stored as its [`State::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Preparing,
    Verifying,
    Switching,
    Observing,
    Live,
    Failed,
    RollingBack,
    RolledBack,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Queued,
        State::Preparing,
        State::Verifying,
        State::Switching,
        State::Observing,
        State::Live,
        State::Failed,
        State::RollingBack,
        State::RolledBack,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Preparing => "preparing",
            State::Verifying => "verifying",
            State::Switching => "switching",
            State::Observing => "observing",
            State::Live => "live",
            State::Failed => "failed",
            State::RollingBack => "rolling_back",
            State::RolledBack => "rolled_back",
        }
    }

    /// The state named `s` (as stored).
    #[must_use]
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether nothing more happens to a deployment in this state. `failed` is terminal only once
    /// its `finished_at` is set (nothing could be rolled back); see [`State::can_move_to`].
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Live | State::RolledBack)
    }

    /// Whether the deployment moves forward (towards `live`) in this state.
    #[must_use]
    pub fn is_forward(self) -> bool {
        matches!(
            self,
            State::Queued
                | State::Preparing
                | State::Verifying
                | State::Switching
                | State::Observing
        )
    }

    /// The allowed transitions: the forward path one step at a time (a warm rollback goes from
    /// `queued` straight to `switching`; rolling and canary go back
    /// from `observing` to `switching` or `preparing` for their next batch or step), any forward
    /// state to `failed`, `failed` to `rolling_back`, and `rolling_back` to `rolled_back` (or to
    /// `failed` when rolling back itself failed).
    #[must_use]
    pub fn can_move_to(self, to: State) -> bool {
        use State::*;
        match (self, to) {
            (Queued, Preparing)
            // A warm rollback: the release runs already, only the routers switch.
            | (Queued, Switching)
            | (Preparing, Verifying)
            | (Verifying, Switching)
            | (Switching, Observing)
            | (Observing, Live)
            | (Observing, Switching)
            | (Observing, Preparing)
            | (Failed, RollingBack)
            | (RollingBack, RolledBack)
            | (RollingBack, Failed) => true,
            (from, Failed) => from.is_forward(),
            _ => false,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rolling batch size: a host count or a percentage of the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Hosts(u32),
    Percent(u8),
}

impl BatchSize {
    /// Hosts per batch out of `hosts`: at least one (when there are hosts), at most all;
    /// percentages round up.
    #[must_use]
    pub fn per_batch(self, hosts: usize) -> usize {
        if hosts == 0 {
            return 0;
        }
        let n = match self {
            BatchSize::Hosts(n) => usize::try_from(n).unwrap_or(usize::MAX),
            BatchSize::Percent(p) => (hosts * usize::from(p.min(100))).div_ceil(100),
        };
        n.clamp(1, hosts)
    }
}

/// The batches of a rolling deployment over `hosts` hosts: index ranges, in order, covering
/// every host exactly once.
#[must_use]
pub fn rolling_batches(hosts: usize, batch: BatchSize) -> Vec<std::ops::Range<usize>> {
    let per = batch.per_batch(hosts);
    (0..hosts)
        .step_by(per.max(1))
        .map(|start| start..(start + per).min(hosts))
        .collect()
}

/// Whether a rolling deployment may go on with `unavailable` hosts down (not reporting or not
/// healthy) when `max_unavailable` are allowed.
#[must_use]
pub fn may_continue(unavailable: usize, max_unavailable: u32) -> bool {
    unavailable <= usize::try_from(max_unavailable).unwrap_or(usize::MAX)
}

/// Why a list of canary steps is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepsError {
    #[error(
        "canary steps are empty; expected increasing percentages ending at 100, e.g. [5, 25, 100]"
    )]
    Empty,
    #[error("canary step {0}% is out of range; expected 1 to 100")]
    OutOfRange(u32),
    #[error("canary steps must increase strictly; {0}% follows {1}%")]
    NotIncreasing(u32, u32),
}

/// The canary weight steps to walk: the configured ones, checked, with 100 appended when the last
/// one is below it (the final step switches all traffic).
pub fn canary_weights(steps: &[u32]) -> Result<Vec<u8>, StepsError> {
    if steps.is_empty() {
        return Err(StepsError::Empty);
    }
    let mut out: Vec<u8> = Vec::with_capacity(steps.len() + 1);
    let mut prev = 0u32;
    for &s in steps {
        if s == 0 || s > 100 {
            return Err(StepsError::OutOfRange(s));
        }
        if s <= prev {
            return Err(StepsError::NotIncreasing(s, prev));
        }
        prev = s;
        out.push(u8::try_from(s).expect("checked to be at most 100"));
    }
    if prev < 100 {
        out.push(100);
    }
    Ok(out)
}

/// What a router counted for one slot over a window (differences of two counter snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub requests: u64,
    pub errors_5xx: u64,
    /// p99 latency in microseconds (upper bound of its histogram bucket), when there was traffic.
    pub p99_us: Option<u64>,
}

impl Window {
    /// The 5xx rate (0 without requests).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors_5xx.min(self.requests) as f64 / self.requests as f64
        }
    }

    /// Adds another host's window (p99: the worse of the two).
    #[must_use]
    pub fn merge(self, other: Window) -> Window {
        Window {
            requests: self.requests.saturating_add(other.requests),
            errors_5xx: self.errors_5xx.saturating_add(other.errors_5xx),
            p99_us: match (self.p99_us, other.p99_us) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// A counter that went from `before` to `after`; a router restart resets counters, then `after`
/// alone is the window.
#[must_use]
pub fn counter_delta(before: u64, after: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// Latency-histogram bucket counts over a window, bucket by bucket (see [`counter_delta`]).
#[must_use]
pub fn buckets_delta(before: &[u64], after: &[u64]) -> Vec<u64> {
    let reset = after.iter().sum::<u64>() < before.iter().sum::<u64>();
    after
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if reset {
                *a
            } else {
                counter_delta(before.get(i).copied().unwrap_or(0), *a)
            }
        })
        .collect()
}

/// The thresholds of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_error_rate: f64,
    pub max_latency_ratio: Option<f64>,
    pub min_requests: u64,
}

/// The analysis' judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The canary does as well as allowed.
    Pass { reason: String },
    /// Too few requests to judge.
    Inconclusive { reason: String },
    /// The canary is worse than allowed: roll back.
    Fail { reason: String },
}

impl Verdict {
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Pass { reason }
            | Verdict::Inconclusive { reason }
            | Verdict::Fail { reason } => reason,
        }
    }
}

/// Compares the canary's window with the stable slot's: its 5xx rate must stay at or under
/// `max_error_rate`, and its p99 latency at or under `max_latency_ratio` times the stable one's.
/// A canary that failed more requests than `max_error_rate` allows of `min_requests` fails even
/// before it reached `min_requests` (more traffic could not make it pass).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn analyze(canary: &Window, stable: &Window, t: &Thresholds) -> Verdict {
    let rate = canary.error_rate();
    let allowed_errors = (t.max_error_rate.max(0.0) * t.min_requests.max(1) as f64).floor();
    if canary.requests < t.min_requests {
        if canary.errors_5xx as f64 > allowed_errors && canary.errors_5xx > 0 {
            return Verdict::Fail {
                reason: format!(
                    "the canary answered {} of {} requests with 5xx, more than {:.2}% of the {} needed to judge",
                    canary.errors_5xx,
                    canary.requests,
                    t.max_error_rate * 100.0,
                    t.min_requests
                ),
            };
        }
        return Verdict::Inconclusive {
            reason: format!(
                "the canary served {} requests, {} are needed to judge",
                canary.requests, t.min_requests
            ),
        };
    }
    if rate > t.max_error_rate {
        return Verdict::Fail {
            reason: format!(
                "the canary's 5xx rate is {:.2}% ({} of {}), above the allowed {:.2}% (stable: {:.2}%)",
                rate * 100.0,
                canary.errors_5xx,
                canary.requests,
                t.max_error_rate * 100.0,
                stable.error_rate() * 100.0
            ),
        };
    }
    if let (Some(max_ratio), Some(c), Some(s)) = (t.max_latency_ratio, canary.p99_us, stable.p99_us)
        && s > 0
    {
        let ratio = c as f64 / s as f64;
        if ratio > max_ratio {
            return Verdict::Fail {
                reason: format!(
                    "the canary's p99 latency is {:.1}x the stable slot's ({c} µs vs {s} µs), above the allowed {max_ratio}x",
                    ratio
                ),
            };
        }
    }
    Verdict::Pass {
        reason: format!(
            "the canary's 5xx rate is {:.2}% over {} requests (allowed {:.2}%)",
            rate * 100.0,
            canary.requests,
            t.max_error_rate * 100.0
        ),
    }
}

/// Percent of traffic each slot gets at a canary weight: (stable, canary).
#[must_use]
pub fn split(weight: u8) -> (u8, u8) {
    let w = weight.min(100);
    (100 - w, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn states_round_trip_and_terminals() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("nope"), None);
        let terminal: Vec<_> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [State::Live, State::RolledBack]);
    }

    #[test]
    fn transitions_follow_the_spec() {
        use State::*;
        let forward = [Queued, Preparing, Verifying, Switching, Observing, Live];
        for w in forward.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        for s in [Queued, Preparing, Verifying, Switching, Observing] {
            assert!(s.can_move_to(Failed));
        }
        assert!(Failed.can_move_to(RollingBack));
        assert!(RollingBack.can_move_to(RolledBack));
        assert!(!Live.can_move_to(Failed));
        assert!(!RolledBack.can_move_to(Live));
        assert!(!Queued.can_move_to(Live));
        assert!(Queued.can_move_to(Switching));
        assert!(!Failed.can_move_to(Live));
    }

    #[test]
    fn batches_and_percentages() {
        assert_eq!(
            rolling_batches(3, BatchSize::Hosts(1)),
            vec![0..1, 1..2, 2..3]
        );
        assert_eq!(
            rolling_batches(5, BatchSize::Hosts(2)),
            vec![0..2, 2..4, 4..5]
        );
        assert_eq!(
            rolling_batches(4, BatchSize::Percent(25)),
            vec![0..1, 1..2, 2..3, 3..4]
        );
        assert_eq!(rolling_batches(3, BatchSize::Percent(50)), vec![0..2, 2..3]);
        assert_eq!(rolling_batches(2, BatchSize::Hosts(9)), vec![0..2]);
        assert!(rolling_batches(0, BatchSize::Hosts(1)).is_empty());
        assert!(may_continue(1, 1));
        assert!(!may_continue(2, 1));
        assert!(may_continue(0, 0));
    }

    #[test]
    fn canary_weights_are_checked() {
        assert_eq!(canary_weights(&[5, 25, 100]).unwrap(), vec![5, 25, 100]);
        assert_eq!(canary_weights(&[10, 50]).unwrap(), vec![10, 50, 100]);
        assert_eq!(canary_weights(&[]), Err(StepsError::Empty));
        assert_eq!(canary_weights(&[0]), Err(StepsError::OutOfRange(0)));
        assert_eq!(
            canary_weights(&[50, 20]),
            Err(StepsError::NotIncreasing(20, 50))
        );
    }

    fn t() -> Thresholds {
        Thresholds {
            max_error_rate: 0.01,
            max_latency_ratio: Some(2.0),
            min_requests: 100,
        }
    }

    #[test]
    fn analysis_judges_errors_latency_and_volume() {
        let stable = Window {
            requests: 1000,
            errors_5xx: 0,
            p99_us: Some(1000),
        };
        let good = Window {
            requests: 200,
            errors_5xx: 1,
            p99_us: Some(1000),
        };
        assert!(matches!(
            analyze(&good, &stable, &t()),
            Verdict::Pass { .. }
        ));
        let bad = Window {
            errors_5xx: 20,
            ..good
        };
        let v = analyze(&bad, &stable, &t());
        assert!(
            matches!(v, Verdict::Fail { .. }) && v.reason().contains("10.00%"),
            "{v:?}"
        );
        let slow = Window {
            p99_us: Some(5000),
            ..good
        };
        assert!(matches!(
            analyze(&slow, &stable, &t()),
            Verdict::Fail { .. }
        ));
        let few = Window {
            requests: 10,
            errors_5xx: 0,
            p99_us: None,
        };
        assert!(matches!(
            analyze(&few, &stable, &t()),
            Verdict::Inconclusive { .. }
        ));
        let few_bad = Window {
            requests: 10,
            errors_5xx: 5,
            p99_us: None,
        };
        assert!(matches!(
            analyze(&few_bad, &stable, &t()),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn deltas_survive_a_counter_reset() {
        assert_eq!(counter_delta(10, 15), 5);
        assert_eq!(counter_delta(10, 3), 3);
        assert_eq!(buckets_delta(&[1, 2], &[3, 2, 1]), vec![2, 0, 1]);
        assert_eq!(buckets_delta(&[5, 5], &[1, 0]), vec![1, 0]);
    }

    proptest! {
        #[test]
        fn batches_cover_every_host_once(hosts in 0usize..200, n in 1u32..50, p in 1u8..=100, pct in any::<bool>()) {
            let size = if pct { BatchSize::Percent(p) } else { BatchSize::Hosts(n) };
            let batches = rolling_batches(hosts, size);
            let flat: Vec<usize> = batches.iter().flat_map(Clone::clone).collect();
            prop_assert_eq!(flat, (0..hosts).collect::<Vec<_>>());
            let per = size.per_batch(hosts);
            for b in &batches {
                prop_assert!(!b.is_empty() && b.len() <= per);
            }
        }

        #[test]
        fn canary_weights_end_at_100_and_increase(steps in proptest::collection::vec(0u32..130, 0..8)) {
            if let Ok(w) = canary_weights(&steps) {
                prop_assert_eq!(w.last().copied(), Some(100));
                prop_assert!(w.windows(2).all(|p| p[0] < p[1]));
                prop_assert!(w.iter().all(|x| (1..=100).contains(x)));
            }
        }

        #[test]
        fn analysis_never_passes_an_error_rate_above_the_threshold(
            requests in 0u64..10_000, errors in 0u64..10_000, rate in 0.0f64..1.0,
            min in 0u64..500, c99 in proptest::option::of(1u64..10_000_000), s99 in proptest::option::of(1u64..10_000_000),
        ) {
            let canary = Window { requests, errors_5xx: errors.min(requests), p99_us: c99 };
            let stable = Window { requests: 1000, errors_5xx: 0, p99_us: s99 };
            let th = Thresholds { max_error_rate: rate, max_latency_ratio: Some(1.5), min_requests: min };
            let v = analyze(&canary, &stable, &th);
            prop_assert!(!v.reason().is_empty());
            if matches!(v, Verdict::Pass { .. }) {
                prop_assert!(canary.error_rate() <= rate);
                prop_assert!(canary.requests >= min);
            }
            if canary.requests >= min && canary.error_rate() > rate {
                prop_assert!(matches!(v, Verdict::Fail { .. }), "{:?}", v);
            }
        }

        #[test]
        fn only_listed_transitions_are_allowed(a in 0usize..9, b in 0usize..9) {
            let (from, to) = (State::ALL[a], State::ALL[b]);
            if from.is_terminal() {
                prop_assert!(!from.can_move_to(to));
            }
            if from.can_move_to(to) {
                prop_assert!(from != to);
            }
        }
    }
}
