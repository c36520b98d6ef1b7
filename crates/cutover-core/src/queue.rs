//! Job queue rules: priority classes, the aging rank that keeps anything from starving, retry
//! backoff, and superseding. Pure logic; the store applies it in SQL and the workers follow it.
//!
//! # Order: a rank computed once, when a job becomes runnable
//!
//! Every queued job carries a *rank*, a point in time in microseconds; workers claim the runnable
//! job with the lowest rank (then the lowest id). For a job of class `c` and priority `p` that
//! becomes runnable at time `r` (its `run_at`: enqueue time, or the end of a retry backoff):
//!
//! ```text
//! rank = r + delay(c) − clamp(p, −P, P) · s
//! ```
//!
//! with the [`AgingPolicy`]: `delay(hotfix) ≤ delay(release) ≤ delay(normal) ≤ delay(background)`
//! (defaults 0, 5 min, 15 min, 60 min), the priority step `s` (default 1 s) and the priority
//! bound `P` ([`PRIORITY_MAX`] = 100). This is aging: read as "effective rank = class base −
//! priority − waited time", every queued job's rank improves by one second per second waited, all
//! at the same rate, so the relative order of two jobs never changes while they wait. That is why
//! the rank can be stored and indexed (`ORDER BY rank` is an index scan, whatever the backlog).
//!
//! What it means in practice:
//! - Jobs made runnable at the same moment run strictly by class (the class gaps, 300 s and more,
//!   exceed the whole priority range `2·P·s` = 200 s), then by priority, then first come first served.
//! - A job of a lower class is overtaken only by higher-class jobs that arrive less than the class
//!   gap after it: a background job yields to hotfixes enqueued within 60 minutes after it, not to
//!   those enqueued later.
//!
//! # The bound (no starvation)
//!
//! Let job `J` become runnable at `r` with class `c`, priority `p`, rank `K`. Let `Δ = P·s` (the
//! largest priority bonus). Every job has rank `≥ (its runnable time) − Δ` because `delay ≥ 0`, so
//! a job made runnable after `T = K + Δ = r + delay(c) + (P − p)·s` has a rank above `K` and is
//! claimed after `J`. Hence from `T` on, the set `A` of queued jobs ranked before `J` only shrinks.
//! Suppose `N` workers, every job runs at most `d` (check timeouts make `d` finite), a free worker
//! claims within `ε` (its poll interval; immediate with LISTEN/NOTIFY), and `|A| ≤ M` at time `T`.
//! In every window of length `d + ε` after `T` each worker finishes its job and claims another,
//! always the lowest-ranked runnable one, so `J` — ranked first once `A` is drained — is claimed by
//!
//! ```text
//! start(J) ≤ r + delay(c) + (P − p)·s + ⌈(M + 1) / N⌉ · (d + ε)
//! ```
//!
//! [`AgingPolicy::start_bound`] computes it. Under a *constant hotfix load* that keeps `M` hotfix
//! jobs queued at all times (each finished one replaced), a background job of priority 0 with the
//! defaults starts within `60 min + 100 s + ⌈(M + 1)/N⌉·(d + ε)`. Concurrency groups can delay a job
//! further by the time its group is busy (the job of the group that runs holds it at most `d`);
//! the bound above is for jobs without a group or whose group is free. [`simulate`] is a discrete
//! model of the claim loop used by the property tests to check the bound.
//!
//! # Retries
//!
//! A failed attempt (the handler failed, or its lease expired because the worker died) is retried
//! after [`BackoffPolicy::delay`] — exponential (`base · factor^(attempt−1)`, capped at `max`) with
//! a deterministic jitter that removes up to `jitter` of it (derived from the job id and attempt
//! by [`jitter_unit`], so retries of jobs that failed together spread out without a random source)
//! — until the job has been attempted `max_attempts` times; then it fails for good. A retried job
//! gets a new rank from its new `run_at` (its wait starts again).
//!
//! # Superseding
//!
//! A job enqueued with a `supersede_key` cancels every *queued* job with the same key (see
//! [`supersedes`]); a running one finishes (its result is still wanted, and killing it midway
//! would waste the work done), and finished ones are history.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Priorities inside a class are clamped to `-PRIORITY_MAX..=PRIORITY_MAX`; higher runs first.
pub const PRIORITY_MAX: i64 = 100;

/// The priority classes, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobClass {
    Hotfix,
    Release,
    Normal,
    Background,
}

impl JobClass {
    pub const ALL: [JobClass; 4] = [
        JobClass::Hotfix,
        JobClass::Release,
        JobClass::Normal,
        JobClass::Background,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobClass::Hotfix => "hotfix",
            JobClass::Release => "release",
            JobClass::Normal => "normal",
            JobClass::Background => "background",
        }
    }

    pub fn parse(s: &str) -> Option<JobClass> {
        JobClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for JobClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The life of a job: `queued → running → succeeded | failed`, back to `queued` for a retry, or
/// `cancelled` (by a person, or superseded) while queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Finished for good: nothing will run it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The aging rank's parameters (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgingPolicy {
    /// `delay(c)` per class, in [`JobClass`] order; must not decrease.
    pub class_delay: [Duration; 4],
    /// How much one priority point is worth.
    pub priority_step: Duration,
}

impl Default for AgingPolicy {
    fn default() -> Self {
        AgingPolicy {
            class_delay: [
                Duration::ZERO,
                Duration::from_secs(5 * 60),
                Duration::from_secs(15 * 60),
                Duration::from_secs(60 * 60),
            ],
            priority_step: Duration::from_secs(1),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl AgingPolicy {
    /// The rank offset of a class and priority, in microseconds (added to `run_at`).
    pub fn offset_us(&self, class: JobClass, priority: i64) -> i64 {
        let p = clamp_priority(priority);
        micros(self.class_delay[class.index()])
            .saturating_sub(p.saturating_mul(micros(self.priority_step)))
    }

    /// The rank of a job runnable from `run_at_us` (microseconds since the epoch).
    pub fn rank_us(&self, class: JobClass, priority: i64, run_at_us: i64) -> i64 {
        run_at_us.saturating_add(self.offset_us(class, priority))
    }

    /// The latest start of a job of `class` and `priority` after it became runnable, with
    /// `workers` workers, jobs that run at most `max_run` each, a claim latency of `claim_latency`
    /// and at most `ahead` jobs ranked before it at time `T` (module docs). `None` without workers.
    pub fn start_bound(
        &self,
        class: JobClass,
        priority: i64,
        workers: u32,
        max_run: Duration,
        claim_latency: Duration,
        ahead: u32,
    ) -> Option<Duration> {
        if workers == 0 {
            return None;
        }
        let p = clamp_priority(priority);
        let bonus_room = u32::try_from(PRIORITY_MAX - p).expect("clamped priority is within range");
        let rounds = (ahead + 1).div_ceil(workers);
        Some(
            self.class_delay[class.index()]
                + self.priority_step * bonus_room
                + (max_run + claim_latency) * rounds,
        )
    }

    /// Checks that the class delays do not decrease (otherwise a lower class would go first).
    pub fn validate(&self) -> Result<(), String> {
        for pair in self.class_delay.windows(2) {
            if pair[1] < pair[0] {
                return Err(format!(
                    "class delays must not decrease from hotfix to background, got {:?}",
                    self.class_delay
                ));
            }
        }
        Ok(())
    }
}

/// Clamps a priority to the accepted range.
pub fn clamp_priority(priority: i64) -> i64 {
    priority.clamp(-PRIORITY_MAX, PRIORITY_MAX)
}

/// Retry timing after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackoffPolicy {
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// Multiplied by this after each further attempt.
    pub factor: u32,
    /// The delay never exceeds this.
    pub max: Duration,
    /// The fraction (0..=1) of the delay that jitter may remove.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(10 * 60),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// The delay before retrying after the `attempt`-th failed attempt (1-based), with the jitter
    /// unit `u` in `[0, 1)` (see [`jitter_unit`]): in `[capped·(1−jitter), capped]`.
    pub fn delay(&self, attempt: u32, u: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(64);
        let mut capped = self.base.min(self.max);
        for _ in 0..exp {
            capped = capped.saturating_mul(self.factor.max(1)).min(self.max);
            if capped == self.max {
                break;
            }
        }
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        capped.mul_f64(1.0 - jitter * u)
    }
}

/// A deterministic value in `[0, 1)` for a job's attempt (splitmix64 of both), so that jobs
/// failing together retry at spread-out times, reproducibly.
pub fn jitter_unit(job_id: i64, attempt: u32) -> f64 {
    let mut z = (job_id as u64) ^ (u64::from(attempt).rotate_left(32)) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // The top 53 bits fill an f64 mantissa exactly.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queue it again, runnable after this delay.
    Retry(Duration),
    /// It has been attempted `max_attempts` times: it fails for good.
    GiveUp,
}

/// Decides the fate of job `job_id` after its `attempts`-th attempt failed.
pub fn after_failure(
    policy: &BackoffPolicy,
    job_id: i64,
    attempts: i64,
    max_attempts: i64,
) -> AfterFailure {
    if attempts >= max_attempts {
        return AfterFailure::GiveUp;
    }
    let attempt = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
    AfterFailure::Retry(policy.delay(attempt, jitter_unit(job_id, attempt)))
}

/// The queue's policies together (what the store needs for enqueue, bump, fail and reclaim).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct QueuePolicy {
    pub aging: AgingPolicy,
    pub backoff: BackoffPolicy,
}

/// Whether a new job with `new_key` cancels an existing job with `old_key` in `old_state`:
/// same key, and the old one has not started.
pub fn supersedes(new_key: Option<&str>, old_key: Option<&str>, old_state: JobState) -> bool {
    matches!((new_key, old_key), (Some(a), Some(b)) if a == b) && old_state == JobState::Queued
}

/// A job in the [`simulate`] model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimJob {
    pub class: JobClass,
    pub priority: i64,
    /// When it becomes runnable (simulated microseconds).
    pub run_at_us: i64,
    /// How long it runs.
    pub run_us: i64,
    pub group: Option<String>,
}

/// A discrete model of `workers` workers claiming from the queue (lowest rank, then lowest index;
/// at most one running job per concurrency group; a free worker claims at once). `refill` is
/// called whenever a job starts, with its index and the start time, and may add jobs (to model a
/// constant load); the model stops when nothing is left or after `limit` starts. Returns each
/// job's start time (`None`: never started).
pub fn simulate(
    policy: &AgingPolicy,
    workers: usize,
    mut jobs: Vec<SimJob>,
    limit: usize,
    mut refill: impl FnMut(usize, i64) -> Vec<SimJob>,
) -> (Vec<SimJob>, Vec<Option<i64>>) {
    let mut started: Vec<Option<i64>> = vec![None; jobs.len()];
    // (free at, group of the job it runs)
    let mut busy: Vec<(i64, Option<String>)> = vec![(i64::MIN, None); workers];
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    let mut starts = 0;
    while starts < limit {
        // The earliest moment some worker is free and some job is runnable.
        let (w, free_at) = busy
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.0))
            .min_by_key(|&(i, t)| (t, i))
            .expect("at least one worker");
        if pending.is_empty() {
            break;
        }
        let earliest = pending
            .iter()
            .map(|&i| jobs[i].run_at_us)
            .min()
            .expect("pending is not empty");
        let now = free_at.max(earliest);
        let running_groups: Vec<&String> = busy
            .iter()
            .filter(|b| b.0 > now)
            .filter_map(|b| b.1.as_ref())
            .collect();
        let pick = pending
            .iter()
            .copied()
            .filter(|&i| jobs[i].run_at_us <= now)
            .filter(|&i| {
                jobs[i]
                    .group
                    .as_ref()
                    .is_none_or(|g| !running_groups.contains(&g))
            })
            .min_by_key(|&i| {
                (
                    policy.rank_us(jobs[i].class, jobs[i].priority, jobs[i].run_at_us),
                    i,
                )
            });
        let Some(i) = pick else {
            // Everything runnable is blocked by a busy group: wait for the next worker to free.
            let next = busy
                .iter()
                .map(|b| b.0)
                .filter(|&t| t > now)
                .min()
                .unwrap_or(now + 1);
            busy[w].0 = next;
            continue;
        };
        started[i] = Some(now);
        pending.retain(|&j| j != i);
        busy[w] = (now + jobs[i].run_us.max(1), jobs[i].group.clone());
        starts += 1;
        for job in refill(i, now) {
            pending.push(jobs.len());
            jobs.push(job);
            started.push(None);
        }
    }
    (jobs, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn classes_and_states_round_trip() {
        for c in JobClass::ALL {
            assert_eq!(JobClass::parse(c.as_str()), Some(c));
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobClass::parse("urgent"), None);
        assert_eq!(JobState::parse("Queued"), None);
        assert!(JobState::Cancelled.is_final() && !JobState::Running.is_final());
    }

    #[test]
    fn rank_table() {
        let p = AgingPolicy::default();
        // (class, priority, run_at seconds, expected rank seconds)
        let table = [
            (JobClass::Hotfix, 0, 0, 0),
            (JobClass::Hotfix, 100, 0, -100),
            (JobClass::Hotfix, 1000, 0, -100), // clamped
            (JobClass::Release, 0, 0, 300),
            (JobClass::Release, -100, 0, 400),
            (JobClass::Normal, 5, 10, 905),
            (JobClass::Background, 0, 0, 3600),
            (JobClass::Background, -5000, 0, 3700), // clamped
        ];
        for (class, prio, run_at, rank) in table {
            assert_eq!(
                p.rank_us(class, prio, run_at * SEC),
                rank * SEC,
                "{class} priority {prio}"
            );
        }
        assert!(p.validate().is_ok());
        let mut bad = p;
        bad.class_delay[1] = Duration::from_secs(3601 * 2);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn backoff_table() {
        let b = BackoffPolicy {
            base: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(10),
            jitter: 0.5,
        };
        let table = [
            (1, 0.0, 1.0),
            (2, 0.0, 2.0),
            (3, 0.0, 4.0),
            (4, 0.0, 8.0),
            (5, 0.0, 10.0),
            (60, 0.0, 10.0),
            (3, 1.0, 2.0),
            (3, 0.5, 3.0),
        ];
        for (attempt, u, secs) in table {
            assert_eq!(
                b.delay(attempt, u),
                Duration::from_secs_f64(secs),
                "attempt {attempt} u {u}"
            );
        }
        assert_eq!(after_failure(&b, 7, 3, 3), AfterFailure::GiveUp);
        assert!(
            matches!(after_failure(&b, 7, 1, 3), AfterFailure::Retry(d) if d <= Duration::from_secs(1))
        );
    }

    #[test]
    fn supersede_table() {
        assert!(supersedes(
            Some("checks:main"),
            Some("checks:main"),
            JobState::Queued
        ));
        assert!(!supersedes(
            Some("checks:main"),
            Some("checks:main"),
            JobState::Running
        ));
        assert!(!supersedes(
            Some("checks:main"),
            Some("checks:dev"),
            JobState::Queued
        ));
        assert!(!supersedes(None, None, JobState::Queued));
        assert!(!supersedes(Some("k"), None, JobState::Queued));
    }

    #[test]
    fn same_moment_runs_by_class_then_priority() {
        let p = AgingPolicy::default();
        let mut ranked: Vec<(JobClass, i64)> = Vec::new();
        for c in JobClass::ALL {
            for prio in [-PRIORITY_MAX, 0, PRIORITY_MAX] {
                ranked.push((c, prio));
            }
        }
        ranked.sort_by_key(|&(c, prio)| p.rank_us(c, prio, 0));
        let expected: Vec<(JobClass, i64)> = JobClass::ALL
            .into_iter()
            .flat_map(|c| [(c, PRIORITY_MAX), (c, 0), (c, -PRIORITY_MAX)])
            .collect();
        assert_eq!(ranked, expected);
    }

    #[test]
    fn groups_run_one_at_a_time_in_the_model() {
        let p = AgingPolicy::default();
        let job = |g: &str| SimJob {
            class: JobClass::Normal,
            priority: 0,
            run_at_us: 0,
            run_us: 10,
            group: Some(g.into()),
        };
        let (_, started) = simulate(
            &p,
            3,
            vec![job("a"), job("a"), job("b")],
            100,
            |_, _| vec![],
        );
        assert_eq!(started, vec![Some(0), Some(10), Some(0)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn backoff_stays_within_bounds(base_ms in 0u64..10_000, factor in 0u32..10, max_ms in 0u64..1_000_000,
                                       jitter in -1.0f64..2.0, attempt in 0u32..200, u in -1.0f64..2.0) {
            let b = BackoffPolicy { base: Duration::from_millis(base_ms), factor, max: Duration::from_millis(max_ms), jitter };
            let d = b.delay(attempt, u);
            prop_assert!(d <= b.max);
            let capped = b.delay(attempt, 0.0);
            prop_assert!(d <= capped);
            prop_assert!(d >= capped.mul_f64(1.0 - jitter.clamp(0.0, 1.0)).saturating_sub(Duration::from_nanos(1)));
            // Without jitter the delay never decreases with the attempt.
            prop_assert!(b.delay(attempt + 1, 0.0) >= capped);
        }

        #[test]
        fn jitter_unit_is_a_unit(id in any::<i64>(), attempt in any::<u32>()) {
            let u = jitter_unit(id, attempt);
            prop_assert!((0.0..1.0).contains(&u));
        }

        #[test]
        fn rank_order_is_class_then_priority_then_time(c1 in 0usize..4, c2 in 0usize..4, p1 in -200i64..200, p2 in -200i64..200,
                                                        t in 0i64..(100 * SEC)) {
            let p = AgingPolicy::default();
            let (c1, c2) = (JobClass::ALL[c1], JobClass::ALL[c2]);
            // Made runnable less than 100 s apart (the smallest gap between class delays, 5 min,
            // minus the whole priority spread, 200 s), the more urgent class always goes first.
            if c1 < c2 {
                prop_assert!(p.rank_us(c1, p1, t) < p.rank_us(c2, p2, 0));
            }
            // Aging: waiting never hurts.
            prop_assert!(p.rank_us(c1, p1, 0) <= p.rank_us(c1, p1, t));
        }

        /// A background job under constant hotfix load (M hotfix jobs always queued, each one
        /// replaced as it starts) starts within `start_bound`.
        #[test]
        fn background_starts_within_bound_under_hotfix_load(workers in 1usize..5, m in 1usize..30,
                                                            run_s in 1i64..120, prio in -100i64..=100,
                                                            hot_prio in -100i64..=100) {
            let policy = AgingPolicy::default();
            let hot = |at: i64| SimJob { class: JobClass::Hotfix, priority: hot_prio, run_at_us: at, run_us: run_s * SEC, group: None };
            let mut jobs: Vec<SimJob> = (0..m).map(|_| hot(0)).collect();
            jobs.push(SimJob { class: JobClass::Background, priority: prio, run_at_us: 0, run_us: run_s * SEC, group: None });
            let bg = m;
            // Replace every started job with a new hotfix until the background job has started.
            let mut done = false;
            let (_, started) = simulate(&policy, workers, jobs, 1_000_000, |i, now| {
                done |= i == bg;
                if done { vec![] } else { vec![hot(now)] }
            });
            let start = started[bg].expect("the background job starts");
            let bound = policy
                .start_bound(JobClass::Background, prio, workers as u32, Duration::from_secs(run_s as u64), Duration::ZERO, m as u32)
                .expect("workers > 0");
            prop_assert!(Duration::from_micros(start as u64) <= bound, "started at {start}us, bound {bound:?}");
        }
    }
}
