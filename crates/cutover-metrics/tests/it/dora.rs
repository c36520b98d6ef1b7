//! The DORA arithmetic on constructed histories with hand-computed expected values: commits that
//! span several releases, rollbacks, reverted deployments, incidents, hotfix links, empty periods,
//! and environments that must not pollute each other.
#![allow(clippy::unwrap_used)]

use cutover_metrics::{
    Band, DeploymentRecord, FailureReason, History, IncidentRecord, MetricsQuery, ReleaseLink,
    ReleaseRecord, Timestamp, compute_from,
};
use cutover_metrics::{CommitRecord, DoraReport};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const H: i64 = 3600;

/// A small builder so that each history reads like a timeline.
#[derive(Default)]
struct Timeline(History);

impl Timeline {
    fn release(mut self, version: &str, created: &str, commits: &[(&str, &str)]) -> Self {
        self.0.releases.push(ReleaseRecord {
            version: version.into(),
            created_at: t(created),
            commits: commits
                .iter()
                .map(|(id, time)| CommitRecord {
                    id: (*id).into(),
                    time: t(time),
                    summary: format!("change {id}"),
                })
                .collect(),
        });
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn deployment(
        mut self,
        id: i64,
        env: &str,
        version: &str,
        state: &str,
        reverts: Option<i64>,
        created: &str,
        finished: Option<&str>,
        failed: Option<&str>,
    ) -> Self {
        self.0.deployments.push(DeploymentRecord {
            id,
            environment: env.into(),
            version: version.into(),
            state: state.into(),
            reverts,
            created_at: t(created),
            finished_at: finished.map(t),
            failed_at: failed.map(t),
        });
        self
    }

    fn live(self, id: i64, env: &str, version: &str, created: &str, finished: &str) -> Self {
        self.deployment(
            id,
            env,
            version,
            "live",
            None,
            created,
            Some(finished),
            None,
        )
    }

    fn incident(
        mut self,
        id: i64,
        env: &str,
        caused_by: Option<i64>,
        restored_by: Option<i64>,
        opened: &str,
        resolved: Option<&str>,
    ) -> Self {
        self.0.incidents.push(IncidentRecord {
            id,
            environment: env.into(),
            caused_by,
            restored_by,
            opened_at: t(opened),
            resolved_at: resolved.map(t),
        });
        self
    }

    fn link(mut self, version: &str, fixes: i64) -> Self {
        self.0.links.push(ReleaseLink {
            version: version.into(),
            fixes_deployment: fixes,
        });
        self
    }
}

/// Ten days: 2026-11-01 (a Sunday) 00:00 to 2026-11-11 00:00 UTC.
fn query(env: &str) -> MetricsQuery {
    MetricsQuery {
        since: t("2026-11-01T00:00:00Z"),
        until: t("2026-11-11T00:00:00Z"),
        environment: env.into(),
    }
}

fn leads(report: &DoraReport) -> Vec<(&str, i64, i64)> {
    report
        .lead_time
        .commits
        .iter()
        .map(|c| (c.commit.as_str(), c.deployment, c.lead_time_seconds))
        .collect()
}

#[test]
fn commits_spanning_several_releases() {
    let history = Timeline::default()
        .release(
            "1.0.0",
            "2026-11-01T09:00:00Z",
            &[("a", "2026-10-31T12:00:00Z"), ("b", "2026-11-01T08:00:00Z")],
        )
        .release(
            "1.1.0",
            "2026-11-02T09:00:00Z",
            &[("c", "2026-11-02T06:00:00Z")],
        )
        .release(
            "1.2.0",
            "2026-11-03T09:00:00Z",
            &[("d", "2026-11-03T08:00:00Z")],
        )
        // Staging got 1.0.0 first: it must not make production's lead times shorter.
        .live(
            1,
            "staging",
            "1.0.0",
            "2026-11-01T09:30:00Z",
            "2026-11-01T10:00:00Z",
        )
        .live(
            2,
            "production",
            "1.0.0",
            "2026-11-01T11:00:00Z",
            "2026-11-01T12:00:00Z",
        )
        // 1.1.0 never went to production alone: 1.2.0 brings its commit along.
        .live(
            3,
            "production",
            "1.2.0",
            "2026-11-03T11:00:00Z",
            "2026-11-03T12:00:00Z",
        )
        .0;
    let r = compute_from(&history, &query("production"));
    assert_eq!(
        leads(&r),
        vec![
            ("a", 2, 24 * H), // 11-01 12:00 − 10-31 12:00
            ("b", 2, 4 * H),  // 11-01 12:00 − 11-01 08:00
            ("c", 3, 30 * H), // 11-03 12:00 − 11-02 06:00 (released in 1.1.0, deployed with 1.2.0)
            ("d", 3, 4 * H),  // 11-03 12:00 − 11-03 08:00
        ]
    );
    assert_eq!(r.lead_time.commits[2].release, "1.1.0");
    // Sorted: 4h, 4h, 24h, 30h → median (4h + 24h) / 2 = 14h; p90 rank ⌈0.9·4⌉ = 4 → 30h.
    assert_eq!(r.lead_time.median_seconds, Some((14 * H) as f64));
    assert_eq!(r.lead_time.p90_seconds, Some((30 * H) as f64));
    assert_eq!(r.lead_time.band, Some(Band::Elite)); // 14h < 1 day
    // 2 deployments in 10 days = 0.2/day (1.4/week) ≥ 1/7 per day → high.
    assert_eq!(r.deployment_frequency.deployments, 2);
    assert_eq!(r.deployment_frequency.per_day, Some(0.2));
    assert!((r.deployment_frequency.per_week.unwrap() - 1.4).abs() < 1e-9);
    assert_eq!(r.deployment_frequency.band, Some(Band::High));
    // Nothing failed: 0 / 2 → elite; no recovery to measure.
    assert_eq!(r.change_failure_rate.deployments, 2);
    assert_eq!(r.change_failure_rate.rate, Some(0.0));
    assert_eq!(r.change_failure_rate.band, Some(Band::Elite));
    assert_eq!(r.recovery_time.median_seconds, None);
    assert_eq!(r.recovery_time.band, None);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// Production: a revert by a rollback deployment, a rolled-back deployment, an incident restored
/// by a later deployment, a hotfix linked to the deployment it fixes (and a link whose hotfix was
/// never deployed), an incident with no cause; staging has its own failure and incident.
fn failures_history() -> History {
    Timeline::default()
        .release(
            "1.9.0",
            "2026-10-19T00:00:00Z",
            &[("z", "2026-10-18T00:00:00Z")],
        )
        .release(
            "2.0.0",
            "2026-11-01T00:00:00Z",
            &[("e", "2026-10-31T00:00:00Z")],
        )
        .release(
            "2.1.0",
            "2026-11-02T00:00:00Z",
            &[("f", "2026-11-01T12:00:00Z")],
        )
        .release(
            "2.1.1",
            "2026-11-04T00:00:00Z",
            &[("g", "2026-11-03T20:00:00Z")],
        )
        .release(
            "2.2.0",
            "2026-11-05T00:00:00Z",
            &[("h", "2026-11-04T00:00:00Z")],
        )
        .release(
            "2.3.0",
            "2026-11-06T00:00:00Z",
            &[("i", "2026-11-05T00:00:00Z")],
        )
        .release(
            "2.3.1",
            "2026-11-07T00:00:00Z",
            &[("j", "2026-11-06T20:00:00Z")],
        )
        // Before the period: counts for nothing, but 1.9.0 is "already deployed".
        .live(
            9,
            "production",
            "1.9.0",
            "2026-10-20T09:00:00Z",
            "2026-10-20T10:00:00Z",
        )
        .live(
            10,
            "production",
            "2.0.0",
            "2026-11-01T09:00:00Z",
            "2026-11-01T10:00:00Z",
        )
        .live(
            11,
            "production",
            "2.1.0",
            "2026-11-02T09:00:00Z",
            "2026-11-02T10:00:00Z",
        )
        .deployment(
            12,
            "production",
            "2.0.0",
            "live",
            Some(11),
            "2026-11-02T11:00:00Z",
            Some("2026-11-02T11:30:00Z"),
            None,
        )
        .deployment(
            13,
            "production",
            "2.2.0",
            "rolled_back",
            None,
            "2026-11-05T09:00:00Z",
            Some("2026-11-05T09:30:00Z"),
            Some("2026-11-05T09:20:00Z"),
        )
        .live(
            14,
            "production",
            "2.2.0",
            "2026-11-05T12:00:00Z",
            "2026-11-05T13:00:00Z",
        )
        .live(
            15,
            "production",
            "2.3.0",
            "2026-11-05T16:00:00Z",
            "2026-11-05T17:00:00Z",
        )
        .live(
            16,
            "production",
            "2.3.1",
            "2026-11-07T09:00:00Z",
            "2026-11-07T10:00:00Z",
        )
        // Still running: neither a deployment nor a failure yet.
        .deployment(
            17,
            "production",
            "2.3.1",
            "preparing",
            None,
            "2026-11-10T09:00:00Z",
            None,
            None,
        )
        .incident(
            1,
            "production",
            Some(14),
            Some(15),
            "2026-11-05T15:00:00Z",
            Some("2026-11-05T18:00:00Z"),
        )
        .incident(2, "production", None, None, "2026-11-08T00:00:00Z", None)
        .link("2.3.1", 15)
        // A hotfix of 16 that was never deployed: 16 did not (yet) fail.
        .link("2.4.1", 16)
        .deployment(
            20,
            "staging",
            "2.3.0",
            "rolled_back",
            None,
            "2026-11-06T09:00:00Z",
            Some("2026-11-06T09:30:00Z"),
            None,
        )
        .incident(
            3,
            "staging",
            Some(20),
            None,
            "2026-11-06T09:10:00Z",
            Some("2026-11-06T09:40:00Z"),
        )
        .0
}

#[test]
fn rollbacks_reverts_incidents_and_hotfixes() {
    let r = compute_from(&failures_history(), &query("production"));

    // Frequency: live change deployments finished in the period: 10, 11, 14, 15, 16 = 5
    // (12 is a rollback, 13 rolled back, 9 is before the period, 17 unfinished).
    // 5 / 10 days = 0.5/day → high (≥ 1/7, < 1).
    assert_eq!(r.deployment_frequency.deployments, 5);
    assert_eq!(r.deployment_frequency.rollbacks, 1);
    assert_eq!(r.deployment_frequency.per_day, Some(0.5));
    assert_eq!(r.deployment_frequency.band, Some(Band::High));

    // Lead times (first successful production deployment containing the commit):
    assert_eq!(
        leads(&r),
        vec![
            ("e", 10, 34 * H), // 11-01 10:00 − 10-31 00:00
            ("f", 11, 22 * H), // 11-02 10:00 − 11-01 12:00 (reverted later: still its first deployment)
            ("g", 14, 41 * H), // 11-05 13:00 − 11-03 20:00 (2.1.1 created before 2.2.0, not yet deployed)
            ("h", 14, 37 * H), // 11-05 13:00 − 11-04 00:00 (13 rolled back: not a successful deployment)
            ("i", 15, 17 * H), // 11-05 17:00 − 11-05 00:00
            ("j", 16, 14 * H), // 11-07 10:00 − 11-06 20:00
        ]
    );
    // Sorted 14, 17, 22, 34, 37, 41 h → median (22 + 34) / 2 = 28h → high; p90 rank ⌈5.4⌉ = 6 → 41h.
    assert_eq!(r.lead_time.median_seconds, Some((28 * H) as f64));
    assert_eq!(r.lead_time.p90_seconds, Some((41 * H) as f64));
    assert_eq!(r.lead_time.band, Some(Band::High));

    // Change failures: changes 10, 11, 13, 14, 15, 16 = 6; failed 11 (reverted by 12),
    // 13 (rolled back), 14 (incident 1), 15 (hotfix 2.3.1 deployed as 16) = 4 → 4/6 → low.
    let cfr = &r.change_failure_rate;
    assert_eq!((cfr.deployments, cfr.failures), (6, 4));
    assert!((cfr.rate.unwrap() - 4.0 / 6.0).abs() < 1e-12);
    assert_eq!(cfr.band, Some(Band::Low));
    let failed: Vec<_> = cfr
        .failed
        .iter()
        .map(|f| {
            (
                f.deployment,
                f.reasons.clone(),
                f.restored_by,
                f.recovery_seconds,
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            // 11-02 10:00 (finished) → 11:30 (rollback 12 finished) = 1.5h
            (
                11,
                vec![FailureReason::Reverted { by: 12 }],
                Some(12),
                Some(5400)
            ),
            // failed at 09:20 → rolled back at 09:30 = 10 min
            (13, vec![FailureReason::RolledBack], Some(13), Some(600)),
            // incident opened 15:00 → restored by 15, finished 17:00 = 2h
            (
                14,
                vec![FailureReason::Incident { id: 1 }],
                Some(15),
                Some(2 * H)
            ),
            // 11-05 17:00 (finished) → hotfix 16 finished 11-07 10:00 = 41h
            (
                15,
                vec![FailureReason::Hotfix {
                    version: "2.3.1".into(),
                    deployment: 16
                }],
                Some(16),
                Some(41 * H)
            ),
        ]
    );
    // Recovery: sorted 600, 5400, 7200, 147600 s → median (5400 + 7200) / 2 = 6300 s (1h45) → high.
    assert_eq!(r.recovery_time.median_seconds, Some(6300.0));
    assert_eq!(
        (r.recovery_time.restored, r.recovery_time.unrestored),
        (4, 0)
    );
    assert_eq!(r.recovery_time.band, Some(Band::High));

    // The daily series: 10 days from 11-01; 11-05 has 14 and 15 live (2 deployments), 13, 14, 15
    // finished (3 changes, all failed), lead times g, h, i = 41h, 37h, 17h → median 37h,
    // recoveries of 13, 14, 15 = 600, 7200, 147600 → median 7200.
    assert_eq!(r.series.daily.len(), 10);
    let nov5 = &r.series.daily[4];
    assert_eq!(nov5.start, t("2026-11-05T00:00:00Z"));
    assert_eq!((nov5.deployments, nov5.changes, nov5.failures), (2, 3, 3));
    assert_eq!(nov5.change_failure_rate, Some(1.0));
    assert_eq!(nov5.lead_time_median_seconds, Some((37 * H) as f64));
    assert_eq!(nov5.recovery_median_seconds, Some(7200.0));
    let total: u64 = r.series.daily.iter().map(|p| p.deployments).sum();
    assert_eq!(total, 5);
    // Weekly buckets start on Mondays: 10-26 (holds 11-01: deployment 10), 11-02 (11, 14, 15, 16;
    // changes 11, 13, 14, 15, 16 with 4 failures → 0.8), 11-09 (nothing).
    let weeks: Vec<_> = r
        .series
        .weekly
        .iter()
        .map(|p| (p.start, p.deployments, p.changes, p.failures))
        .collect();
    assert_eq!(
        weeks,
        vec![
            (t("2026-10-26T00:00:00Z"), 1, 1, 0),
            (t("2026-11-02T00:00:00Z"), 4, 5, 4),
            (t("2026-11-09T00:00:00Z"), 0, 0, 0),
        ]
    );
    assert_eq!(r.series.weekly[1].change_failure_rate, Some(0.8));
}

#[test]
fn one_environment_does_not_pollute_another() {
    let r = compute_from(&failures_history(), &query("staging"));
    // Staging: only deployment 20 (rolled back) → no successful deployment: frequency 0, no band.
    assert_eq!(r.deployment_frequency.deployments, 0);
    assert_eq!(r.deployment_frequency.per_day, Some(0.0));
    assert_eq!(r.deployment_frequency.band, None);
    assert!(r.lead_time.commits.is_empty());
    // 1 change, 1 failure (rolled back, and incident 3) → 1.0 → low.
    assert_eq!(r.change_failure_rate.rate, Some(1.0));
    assert_eq!(r.change_failure_rate.band, Some(Band::Low));
    let f = &r.change_failure_rate.failed[0];
    assert_eq!(
        f.reasons,
        vec![FailureReason::RolledBack, FailureReason::Incident { id: 3 }]
    );
    // Failure from the incident (09:10); the rollback finished 09:30, before the incident was
    // resolved (09:40): 20 minutes, restored by deployment 20 itself.
    assert_eq!(f.failed_at, t("2026-11-06T09:10:00Z"));
    assert_eq!((f.restored_by, f.recovery_seconds), (Some(20), Some(1200)));
    assert_eq!(r.recovery_time.band, Some(Band::Elite)); // 20 min < 1h
    // And production's figures never see staging's incident or deployment.
    let p = compute_from(&failures_history(), &query("production"));
    assert!(
        p.change_failure_rate
            .failed
            .iter()
            .all(|f| f.deployment != 20)
    );
}

#[test]
fn empty_periods_have_no_bands() {
    // Nothing at all.
    let r = compute_from(&History::default(), &query("production"));
    assert_eq!(r.deployment_frequency.deployments, 0);
    assert_eq!(r.deployment_frequency.band, None);
    assert_eq!(r.lead_time.median_seconds, None);
    assert_eq!(r.change_failure_rate.rate, None);
    assert_eq!(r.recovery_time.median_seconds, None);
    assert_eq!(r.series.daily.len(), 10);
    assert!(
        r.series
            .daily
            .iter()
            .all(|p| p.deployments == 0 && p.change_failure_rate.is_none())
    );
    // A busy history, but a period (2026-12) after all of it.
    let later = MetricsQuery {
        since: t("2026-12-01T00:00:00Z"),
        until: t("2026-12-08T00:00:00Z"),
        environment: "production".into(),
    };
    let r = compute_from(&failures_history(), &later);
    assert_eq!(r.deployment_frequency.deployments, 0);
    assert!(r.lead_time.commits.is_empty());
    assert_eq!(r.change_failure_rate.deployments, 0);
    assert_eq!(r.days, 7.0);
    // 2026-12-01 is a Tuesday: the weekly buckets start Monday 11-30.
    assert_eq!(r.series.weekly[0].start, t("2026-11-30T00:00:00Z"));
    assert_eq!(r.series.weekly.len(), 2);
}

#[test]
fn an_unresolved_incident_leaves_the_failure_unrestored() {
    let history = Timeline::default()
        .release(
            "1.0.0",
            "2026-11-01T00:00:00Z",
            &[("a", "2026-11-01T00:00:00Z")],
        )
        .live(
            1,
            "production",
            "1.0.0",
            "2026-11-02T00:00:00Z",
            "2026-11-02T01:00:00Z",
        )
        .incident(1, "production", Some(1), None, "2026-11-02T02:00:00Z", None)
        .0;
    let r = compute_from(&history, &query("production"));
    // 1 change, 1 failure; service not restored: no recovery median, 1 unrestored.
    assert_eq!(r.change_failure_rate.rate, Some(1.0));
    assert_eq!(r.recovery_time.unrestored, 1);
    assert_eq!(r.recovery_time.median_seconds, None);
    // The commit: 11-02 01:00 − 11-01 00:00 = 25h.
    assert_eq!(leads(&r), vec![("a", 1, 25 * H)]);
}

#[test]
fn a_release_deployed_again_brings_no_commit_twice() {
    let history = Timeline::default()
        .release(
            "1.0.0",
            "2026-11-01T00:00:00Z",
            &[("a", "2026-11-01T00:00:00Z")],
        )
        .release(
            "1.1.0",
            "2026-11-02T00:00:00Z",
            &[
                ("b", "2026-11-02T00:00:00Z"),
                // A commit listed again (e.g. a re-cut release): its first deployment counts.
                ("a", "2026-11-01T00:00:00Z"),
            ],
        )
        .live(
            1,
            "production",
            "1.0.0",
            "2026-11-01T00:00:00Z",
            "2026-11-01T06:00:00Z",
        )
        .live(
            2,
            "production",
            "1.1.0",
            "2026-11-02T00:00:00Z",
            "2026-11-02T02:00:00Z",
        )
        .deployment(
            3,
            "production",
            "1.0.0",
            "live",
            Some(2),
            "2026-11-02T03:00:00Z",
            Some("2026-11-02T03:10:00Z"),
            None,
        )
        .live(
            4,
            "production",
            "1.1.0",
            "2026-11-02T05:00:00Z",
            "2026-11-02T06:00:00Z",
        )
        .0;
    let r = compute_from(&history, &query("production"));
    // a: 6h (deployment 1); b: 2h (deployment 2); deployment 4 brings nothing new.
    assert_eq!(leads(&r), vec![("a", 1, 6 * H), ("b", 2, 2 * H)]);
    // Deployment 2 reverted by 3 after 1h10 (02:00 → 03:10 = 4200 s); 3 changes (1, 2, 4), 1 failed.
    assert_eq!(r.change_failure_rate.failed[0].recovery_seconds, Some(4200));
    assert_eq!(
        (
            r.change_failure_rate.deployments,
            r.change_failure_rate.failures
        ),
        (3, 1)
    );
}
