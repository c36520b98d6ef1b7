//! One DORA metric's daily or weekly series as an accessible inline SVG chart: `role="img"` with a
//! `<title>` and a `<desc>` that states the figures in words, the performance bands shaded and
//! labelled in text (never by colour alone), and a `<title>` tooltip on every data point.
//! Deterministic: the same report gives the same bytes.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::bands::{self, Band};
use crate::dora::{DoraReport, SeriesPoint};

/// Which metric to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    DeploymentFrequency,
    LeadTime,
    ChangeFailureRate,
    RecoveryTime,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::DeploymentFrequency,
        Metric::LeadTime,
        Metric::ChangeFailureRate,
        Metric::RecoveryTime,
    ];

    /// The name people read.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency => "Deployment frequency",
            Metric::LeadTime => "Lead time for changes",
            Metric::ChangeFailureRate => "Change failure rate",
            Metric::RecoveryTime => "Failed deployment recovery time",
        }
    }

    /// A stable slug (`deployment_frequency`, …) for ids and CSS classes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::DeploymentFrequency => "deployment_frequency",
            Metric::LeadTime => "lead_time",
            Metric::ChangeFailureRate => "change_failure_rate",
            Metric::RecoveryTime => "recovery_time",
        }
    }

    /// The band the report gives this metric.
    #[must_use]
    pub fn band(self, report: &DoraReport) -> Option<Band> {
        match self {
            Metric::DeploymentFrequency => report.deployment_frequency.band,
            Metric::LeadTime => report.lead_time.band,
            Metric::ChangeFailureRate => report.change_failure_rate.band,
            Metric::RecoveryTime => report.recovery_time.band,
        }
    }
}

/// Which series of the report to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Daily,
    Weekly,
}

/// Size and the id prefix of the chart's `<title>`/`<desc>` elements (unique per page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartOptions {
    pub width: u32,
    pub height: u32,
    /// Prefix of the element ids (`{id}-title`, `{id}-desc`); letters, digits, `-` and `_` are
    /// kept, anything else becomes `-`.
    pub id: String,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            width: 640,
            height: 220,
            id: "dora-chart".to_owned(),
        }
    }
}

const LEFT: f64 = 52.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

fn band_fill(band: Band) -> &'static str {
    match band {
        Band::Elite => "#cdebd3",
        Band::High => "#e4f1c6",
        Band::Medium => "#fbeec1",
        Band::Low => "#f6d3cc",
    }
}

/// The value of `p` in the chart's unit (per bucket count, hours, or percent).
fn value(metric: Metric, p: &SeriesPoint) -> Option<f64> {
    match metric {
        Metric::DeploymentFrequency => Some(p.deployments as f64),
        Metric::LeadTime => p.lead_time_median_seconds.map(|s| s / bands::HOUR),
        Metric::ChangeFailureRate => p.change_failure_rate.map(|r| r * 100.0),
        Metric::RecoveryTime => p.recovery_median_seconds.map(|s| s / bands::HOUR),
    }
}

fn unit(metric: Metric, granularity: Granularity) -> &'static str {
    match (metric, granularity) {
        (Metric::DeploymentFrequency, Granularity::Daily) => "deployments per day",
        (Metric::DeploymentFrequency, Granularity::Weekly) => "deployments per week",
        (Metric::LeadTime | Metric::RecoveryTime, _) => "hours (median)",
        (Metric::ChangeFailureRate, _) => "percent of deployments",
    }
}

/// The bands as value ranges `[low, high)` in the chart's unit, best first.
fn band_ranges(metric: Metric, granularity: Granularity) -> Vec<(Band, f64, f64)> {
    let bucket_days = match granularity {
        Granularity::Daily => 1.0,
        Granularity::Weekly => 7.0,
    };
    let inf = f64::INFINITY;
    match metric {
        Metric::DeploymentFrequency => {
            let t: Vec<f64> = bands::FREQUENCY_PER_DAY
                .iter()
                .map(|(_, v)| v * bucket_days)
                .collect();
            vec![
                (Band::Elite, t[0], inf),
                (Band::High, t[1], t[0]),
                (Band::Medium, t[2], t[1]),
                (Band::Low, 0.0, t[2]),
            ]
        }
        Metric::ChangeFailureRate => {
            let t: Vec<f64> = bands::CHANGE_FAILURE_RATE
                .iter()
                .map(|(_, v)| v * 100.0)
                .collect();
            vec![
                (Band::Elite, 0.0, t[0]),
                (Band::High, t[0], t[1]),
                (Band::Medium, t[1], t[2]),
                (Band::Low, t[2], inf),
            ]
        }
        Metric::LeadTime | Metric::RecoveryTime => {
            let source = if metric == Metric::LeadTime {
                &bands::LEAD_TIME_SECONDS
            } else {
                &bands::RECOVERY_SECONDS
            };
            let t: Vec<f64> = source.iter().map(|(_, v)| v / bands::HOUR).collect();
            vec![
                (Band::Elite, 0.0, t[0]),
                (Band::High, t[0], t[1]),
                (Band::Medium, t[1], t[2]),
                (Band::Low, t[2], inf),
            ]
        }
    }
}

/// Escapes text for XML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn clean_id(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() {
        "dora-chart".to_owned()
    } else {
        id
    }
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The chart of `metric`'s `granularity` series of `report`, as an SVG element to inline in HTML.
#[must_use]
pub fn render_svg_chart(
    report: &DoraReport,
    metric: Metric,
    granularity: Granularity,
    options: &ChartOptions,
) -> String {
    let points = match granularity {
        Granularity::Daily => &report.series.daily,
        Granularity::Weekly => &report.series.weekly,
    };
    let id = clean_id(&options.id);
    let width = f64::from(options.width.max(160));
    let height = f64::from(options.height.max(80));
    let plot_w = width - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let values: Vec<Option<f64>> = points.iter().map(|p| value(metric, p)).collect();
    let data_max = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let ranges = band_ranges(metric, granularity);
    // Always show the boundary between the best two bands, with some room above it.
    let anchor = match metric {
        Metric::DeploymentFrequency => ranges[0].1,
        _ => ranges[0].2,
    };
    let y_max = (data_max * 1.15).max(anchor * 1.5).max(1e-9);
    let y = |v: f64| TOP + plot_h - (v.clamp(0.0, y_max) / y_max) * plot_h;
    let n = points.len().max(1) as f64;
    let slot = plot_w / n;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let unit = unit(metric, granularity);
    let granularity_word = match granularity {
        Granularity::Daily => "daily",
        Granularity::Weekly => "weekly",
    };
    let title = format!(
        "{} in {}, {granularity_word}",
        metric.title(),
        report.environment
    );
    let desc = describe(report, metric, granularity, &values, unit);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dora-chart dora-{slug}" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}" aria-labelledby="{id}-title {id}-desc" font-family="system-ui, sans-serif" font-size="11">"#,
        slug = metric.as_str(),
        w = options.width.max(160),
        h = options.height.max(80),
    );
    let _ = write!(
        s,
        r#"<title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        esc(&title),
        esc(&desc)
    );
    // Bands: shaded rectangles with their names written at the right edge.
    s.push_str(r#"<g class="bands">"#);
    for (band, lo, hi) in &ranges {
        let top = y(hi.min(y_max));
        let bottom = y(*lo);
        if bottom - top < 0.5 {
            continue;
        }
        let _ = write!(
            s,
            r#"<rect class="band band-{b}" x="{LEFT:.1}" y="{top:.1}" width="{plot_w:.1}" height="{:.1}" fill="{}"><title>{} band: {}</title></rect>"#,
            bottom - top,
            band_fill(*band),
            band.as_str(),
            esc(&band_range_text(*lo, *hi, unit)),
            b = band.as_str(),
        );
        let _ = write!(
            s,
            r##"<text class="band-label" x="{:.1}" y="{:.1}" fill="#333">{}</text>"##,
            LEFT + plot_w + 6.0,
            f64::midpoint(top, bottom) + 4.0,
            band.as_str()
        );
    }
    s.push_str("</g>");
    // Axes: the baseline and a few y ticks.
    let _ = write!(
        s,
        r##"<g class="axes" fill="#333" stroke="#666"><line x1="{LEFT:.1}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}"/><line x1="{LEFT:.1}" y1="{TOP:.1}" x2="{LEFT:.1}" y2="{b:.1}"/>"##,
        b = TOP + plot_h,
        r = LEFT + plot_w,
    );
    for k in 0..=3 {
        let v = y_max * f64::from(k) / 3.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" stroke="none">{}</text>"#,
            LEFT - 4.0,
            y(v) + 4.0,
            number(v)
        );
    }
    let label_at = |i: usize| points[i].start.format("%Y-%m-%d").to_string();
    if !points.is_empty() {
        let mut shown = vec![0, points.len() - 1];
        if points.len() > 2 {
            shown.insert(1, points.len() / 2);
        }
        shown.dedup();
        for i in shown {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" stroke="none">{}</text>"#,
                x(i),
                height - 8.0,
                label_at(i)
            );
        }
    }
    let _ = write!(
        s,
        r#"<text class="unit" x="{:.1}" y="{:.1}" stroke="none">{}</text>"#,
        LEFT + 4.0,
        TOP + 11.0,
        esc(unit)
    );
    s.push_str("</g>");
    // Data: bars for counts and rates, points joined by a line for medians.
    s.push_str(r##"<g class="data" fill="#2f5d8a" stroke="#2f5d8a">"##);
    let bars = matches!(
        metric,
        Metric::DeploymentFrequency | Metric::ChangeFailureRate
    );
    if !bars {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                s,
                r#"<path d="{}" fill="none" stroke-width="1.5"/>"#,
                path.trim_end()
            );
        }
    }
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let tip = format!("{}: {} {unit}", label_at(i), number(*v));
        if bars {
            let w = (slot * 0.7).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" stroke="none"><title>{}</title></rect>"#,
                x(i) - w / 2.0,
                y(*v),
                (TOP + plot_h - y(*v)).max(0.0),
                esc(&tip)
            );
        } else {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3"><title>{}</title></circle>"#,
                x(i),
                y(*v),
                esc(&tip)
            );
        }
    }
    s.push_str("</g></svg>");
    s
}

fn band_range_text(lo: f64, hi: f64, unit: &str) -> String {
    if hi.is_infinite() {
        format!("{} or more {unit}", number(lo))
    } else if lo <= 0.0 {
        format!("below {} {unit}", number(hi))
    } else {
        format!("{} to {} {unit}", number(lo), number(hi))
    }
}

/// The chart in words, for screen readers: period, what is drawn, the overall value and band.
fn describe(
    report: &DoraReport,
    metric: Metric,
    granularity: Granularity,
    values: &[Option<f64>],
    unit: &str,
) -> String {
    let buckets = match granularity {
        Granularity::Daily => "days",
        Granularity::Weekly => "weeks",
    };
    let with_data = values.iter().flatten().count();
    let overall = match metric {
        Metric::DeploymentFrequency => {
            let f = &report.deployment_frequency;
            format!(
                "{} deployments in the period ({} per day)",
                f.deployments,
                f.per_day.map_or_else(|| "n/a".to_owned(), number)
            )
        }
        Metric::LeadTime => report.lead_time.median_seconds.map_or_else(
            || "no commit was deployed in the period".to_owned(),
            |m| {
                format!(
                    "median lead time {} hours over {} commit{}",
                    number(m / bands::HOUR),
                    report.lead_time.commits.len(),
                    if report.lead_time.commits.len() == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            },
        ),
        Metric::ChangeFailureRate => {
            let c = &report.change_failure_rate;
            c.rate.map_or_else(
                || "no deployment finished in the period".to_owned(),
                |r| {
                    format!(
                        "{} of {} deployments failed ({}%)",
                        c.failures,
                        c.deployments,
                        number(r * 100.0)
                    )
                },
            )
        }
        Metric::RecoveryTime => report.recovery_time.median_seconds.map_or_else(
            || "no failed deployment was restored in the period".to_owned(),
            |m| {
                format!(
                    "median recovery time {} hours over {} restored failure{}",
                    number(m / bands::HOUR),
                    report.recovery_time.restored,
                    if report.recovery_time.restored == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            },
        ),
    };
    let band = metric.band(report).map_or_else(
        || "no band (not enough data)".to_owned(),
        |b| format!("{b} band"),
    );
    format!(
        "{} of {} from {} to {}: {} {buckets}, {with_data} with data, in {unit}. Overall: {overall}; {band}. Shaded areas are the DORA performance bands (elite, high, medium, low).",
        metric.title(),
        report.environment,
        report.since.format("%Y-%m-%d %H:%M UTC"),
        report.until.format("%Y-%m-%d %H:%M UTC"),
        values.len(),
    )
}
