//! Properties: the `--since` parser never panics and reads durations back from now; the metrics
//! never panic on arbitrary record sets, rates stay in [0, 1], failures never exceed deployments,
//! lead times are never negative, and every chart is well-formed XML.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use cutover_metrics::{
    ChartOptions, CommitRecord, DeploymentRecord, Granularity, History, IncidentRecord, Metric,
    MetricsQuery, ReleaseLink, ReleaseRecord, Timestamp, compute_from, parse_instant,
    render_svg_chart,
};
use proptest::prelude::*;

fn base() -> Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    base() + Duration::minutes(minutes)
}

const STATES: [&str; 5] = ["live", "rolled_back", "failed", "preparing", "rolling_back"];
const ENVS: [&str; 2] = ["production", "staging"];

prop_compose! {
    fn deployment(id: i64)(
        env in 0usize..2, version in 0usize..6, state in 0usize..5,
        reverts in proptest::option::weighted(0.2, 1i64..12),
        created in -20_000i64..20_000, took in 0i64..600,
        finished in proptest::bool::weighted(0.9), failed in proptest::option::of(0i64..600),
    ) -> DeploymentRecord {
        DeploymentRecord {
            id,
            environment: ENVS[env].into(),
            version: format!("1.{version}.0"),
            state: STATES[state].into(),
            reverts,
            created_at: at(created),
            finished_at: finished.then(|| at(created + took)),
            failed_at: failed.map(|f| at(created + f)),
        }
    }
}

prop_compose! {
    fn history()(
        releases in proptest::collection::vec((-30_000i64..20_000, proptest::collection::vec((0u8..20, -40_000i64..20_000), 0..4)), 0..7),
        deployments in (0usize..12).prop_flat_map(|n| (0..n).map(|i| deployment(i64::try_from(i).unwrap() + 1)).collect::<Vec<_>>()),
        incidents in proptest::collection::vec((0usize..2, proptest::option::of(1i64..12), proptest::option::of(1i64..12), -20_000i64..20_000, proptest::option::of(0i64..5_000)), 0..4),
        links in proptest::collection::vec((0usize..6, 1i64..12), 0..3),
    ) -> History {
        History {
            releases: releases.into_iter().enumerate().map(|(i, (created, commits))| ReleaseRecord {
                version: format!("1.{i}.0"),
                created_at: at(created),
                commits: commits.into_iter().map(|(c, time)| CommitRecord {
                    id: format!("c{c}"), time: at(time), summary: String::new(),
                }).collect(),
            }).collect(),
            deployments,
            incidents: incidents.into_iter().enumerate().map(|(i, (env, caused, restored, opened, took))| IncidentRecord {
                id: i64::try_from(i).unwrap() + 1,
                environment: ENVS[env].into(),
                caused_by: caused,
                restored_by: restored,
                opened_at: at(opened),
                resolved_at: took.map(|t| at(opened + t)),
            }).collect(),
            links: links.into_iter().map(|(v, fixes)| ReleaseLink { version: format!("1.{v}.0"), fixes_deployment: fixes }).collect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn metrics_never_panic_and_rates_stay_in_range(
        h in history(), since in -30_000i64..20_000, len in -2_000i64..60_000, env in 0usize..2,
    ) {
        let q = MetricsQuery { since: at(since), until: at(since + len), environment: ENVS[env].into() };
        let r = compute_from(&h, &q);
        let c = &r.change_failure_rate;
        prop_assert!(c.failures <= c.deployments);
        if let Some(rate) = c.rate {
            prop_assert!((0.0..=1.0).contains(&rate));
        }
        for p in r.series.daily.iter().chain(&r.series.weekly) {
            if let Some(rate) = p.change_failure_rate {
                prop_assert!((0.0..=1.0).contains(&rate));
            }
            prop_assert!(p.failures <= p.changes);
        }
        // The series add up to the totals.
        let daily: u64 = r.series.daily.iter().map(|p| p.deployments).sum();
        prop_assert_eq!(daily, r.deployment_frequency.deployments);
        let weekly: u64 = r.series.weekly.iter().map(|p| p.failures).sum();
        prop_assert_eq!(weekly, c.failures);
        for l in &r.lead_time.commits {
            prop_assert!(l.lead_time_seconds >= 0);
            prop_assert!(l.deployed_at >= q.since && l.deployed_at < q.until);
        }
        // Each commit is counted once.
        let mut ids: Vec<&str> = r.lead_time.commits.iter().map(|c| c.commit.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), n);
        if let (Some(m), Some(p90)) = (r.lead_time.median_seconds, r.lead_time.p90_seconds) {
            prop_assert!(m <= p90);
        }
        for f in &c.failed {
            prop_assert!(f.recovery_seconds.is_none_or(|s| s >= 0));
            prop_assert!(!f.reasons.is_empty());
        }
        prop_assert!(r.recovery_time.restored + r.recovery_time.unrestored == c.failures);
        for metric in Metric::ALL {
            for g in [Granularity::Daily, Granularity::Weekly] {
                let svg = render_svg_chart(&r, metric, g, &ChartOptions::default());
                let mut reader = quick_xml::Reader::from_str(&svg);
                loop {
                    match reader.read_event() {
                        Ok(quick_xml::events::Event::Eof) => break,
                        Ok(_) => {}
                        Err(e) => prop_assert!(false, "not well-formed: {e}: {svg}"),
                    }
                }
            }
        }
    }

    #[test]
    fn the_since_parser_never_panics(text in "\\PC{0,30}") {
        let _ = parse_instant(&text, base());
    }

    #[test]
    fn durations_count_back_from_now(n in 0i64..5_000, unit in 0usize..4) {
        let (suffix, seconds) = [("d", 86_400), ("w", 604_800), ("h", 3_600), ("m", 60)][unit];
        let got = parse_instant(&format!("{n}{suffix}"), base()).unwrap();
        prop_assert_eq!(base() - got, Duration::seconds(n * seconds));
    }

    #[test]
    fn rfc3339_times_parse_to_themselves(secs in 0i64..4_000_000_000) {
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        prop_assert_eq!(parse_instant(&t.to_rfc3339(), base()).unwrap(), t);
    }
}

#[test]
fn a_huge_period_keeps_the_series_bounded() {
    let q = MetricsQuery {
        since: "1000-01-01T00:00:00Z".parse().unwrap(),
        until: "9000-01-01T00:00:00Z".parse().unwrap(),
        environment: "production".into(),
    };
    let r = compute_from(&History::default(), &q);
    assert_eq!(r.series.daily.len(), 731);
    assert_eq!(r.series.weekly.len(), 520);
    assert_eq!(r.series.daily.last().unwrap().end, q.until);
}
