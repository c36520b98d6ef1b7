//! The SVG charts: accessible (role, title, desc, labelled bands), escaped, deterministic.
#![allow(clippy::unwrap_used)]

use cutover_metrics::{
    ChartOptions, CommitRecord, DeploymentRecord, Granularity, History, Metric, MetricsQuery,
    ReleaseRecord, Timestamp, compute_from, render_svg_chart,
};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn report(env: &str) -> cutover_metrics::DoraReport {
    let history = History {
        releases: vec![ReleaseRecord {
            version: "1.0.0".into(),
            created_at: t("2026-11-01T00:00:00Z"),
            commits: vec![CommitRecord {
                id: "a".into(),
                time: t("2026-11-01T00:00:00Z"),
                summary: "feat: a".into(),
            }],
        }],
        deployments: vec![
            DeploymentRecord {
                id: 1,
                environment: env.into(),
                version: "1.0.0".into(),
                state: "live".into(),
                reverts: None,
                created_at: t("2026-11-02T00:00:00Z"),
                finished_at: Some(t("2026-11-02T06:00:00Z")),
                failed_at: None,
            },
            DeploymentRecord {
                id: 2,
                environment: env.into(),
                version: "1.0.0".into(),
                state: "rolled_back".into(),
                reverts: None,
                created_at: t("2026-11-03T00:00:00Z"),
                finished_at: Some(t("2026-11-03T00:30:00Z")),
                failed_at: Some(t("2026-11-03T00:10:00Z")),
            },
        ],
        ..History::default()
    };
    compute_from(
        &history,
        &MetricsQuery {
            since: t("2026-11-01T00:00:00Z"),
            until: t("2026-11-05T00:00:00Z"),
            environment: env.into(),
        },
    )
}

#[test]
fn charts_are_accessible_and_show_the_bands() {
    let r = report("production");
    for metric in Metric::ALL {
        let svg = render_svg_chart(
            &r,
            metric,
            Granularity::Daily,
            &ChartOptions {
                id: format!("chart-{}", metric.as_str()),
                ..ChartOptions::default()
            },
        );
        let id = format!("chart-{}", metric.as_str());
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains(&format!("aria-labelledby=\"{id}-title {id}-desc\"")));
        assert!(svg.contains(&format!(
            "<title id=\"{id}-title\">{} in production, daily</title>",
            metric.title()
        )));
        assert!(svg.contains(&format!("<desc id=\"{id}-desc\">")));
        // The bands are named in text, not only by colour.
        assert!(svg.contains(">elite</text>"), "{svg}");
        assert!(svg.contains("class=\"band band-elite\""));
        assert!(svg.ends_with("</svg>"));
    }
    let cfr = render_svg_chart(
        &r,
        Metric::ChangeFailureRate,
        Granularity::Daily,
        &ChartOptions::default(),
    );
    // 2 changes, 1 failed (rolled back) → 50%, low band, said in words.
    assert!(
        cfr.contains("1 of 2 deployments failed (50%); low band"),
        "{cfr}"
    );
    assert!(
        cfr.contains("<title>2026-11-03: 100 percent of deployments</title>"),
        "{cfr}"
    );
    insta::assert_snapshot!(
        "recovery_daily",
        render_svg_chart(
            &r,
            Metric::RecoveryTime,
            Granularity::Daily,
            &ChartOptions::default()
        )
    );
}

#[test]
fn text_is_escaped_and_ids_are_cleaned() {
    let r = report("prod<&>\"'");
    let svg = render_svg_chart(
        &r,
        Metric::LeadTime,
        Granularity::Weekly,
        &ChartOptions {
            width: 10,
            height: 10,
            id: "a b\"c".into(),
        },
    );
    assert!(svg.contains("prod&lt;&amp;&gt;&quot;&#39;"), "{svg}");
    assert!(!svg.contains("prod<"));
    assert!(svg.contains("id=\"a-b-c-title\""), "{svg}");
    // Too small sizes are raised to a readable minimum.
    assert!(svg.contains("width=\"160\" height=\"80\""));
    // Same input, same bytes.
    assert_eq!(
        svg,
        render_svg_chart(
            &r,
            Metric::LeadTime,
            Granularity::Weekly,
            &ChartOptions {
                width: 10,
                height: 10,
                id: "a b\"c".into(),
            }
        )
    );
}
