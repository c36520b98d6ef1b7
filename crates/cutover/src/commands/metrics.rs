//! `cutover metrics [--since 90d] [--until T] [--env ENV]`: the DORA metrics of an environment
//! over a period (`cutover_metrics::compute`), a table with each value and its band, or the
//! report as JSON.

use super::plan::optional_config;
use super::status::{table, time};
use crate::cli::MetricsArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};
use cutover_metrics::{Band, DoraReport, MetricsError, MetricsQuery};

pub fn run(ctx: &Ctx<'_>, args: &MetricsArgs) -> Result<()> {
    let environment = match &args.env {
        Some(env) => env.clone(),
        None => default_environment(ctx)?,
    };
    let query = MetricsQuery::parse(
        environment,
        Some(&args.since),
        args.until.as_deref(),
        chrono::Utc::now(),
    )
    .map_err(|e| match e {
        MetricsError::Time(t) => {
            CliError::usage(format!("--since/--until: {t}")).with_hint(t.hint())
        }
        other => metrics_error(other),
    })?;
    let store = ctx.store()?;
    known_environment(ctx, &*store, &query.environment)?;
    let report = ctx
        .block_on(cutover_metrics::compute(&*store, &query))
        .map_err(metrics_error)?;
    for warning in &report.warnings {
        ctx.ui.warn(warning);
    }
    if ctx.global.json {
        let doc = serde_json::to_value(&report)
            .map_err(|e| CliError::internal("cannot serialise the metrics").with_cause(e))?;
        ctx.ui.print_json(&doc);
        return Ok(());
    }
    ctx.ui.print(render(&report));
    Ok(())
}

/// Production as `hotfix start` finds it: the environment named `production`, else the end of the
/// `promote_from` chain; `production` without a configuration.
fn default_environment(ctx: &Ctx<'_>) -> Result<String> {
    Ok(optional_config(ctx)?
        .as_ref()
        .and_then(cutover_views::production_environment)
        .unwrap_or_else(|| "production".to_owned()))
}

/// An environment is known when the configuration defines it or it has deployments (one removed
/// from the configuration keeps its history); anything else is a typo.
pub(super) fn known_environment(
    ctx: &Ctx<'_>,
    store: &dyn cutover_store::Store,
    environment: &str,
) -> Result<()> {
    let config = optional_config(ctx)?;
    if config
        .as_ref()
        .is_none_or(|c| c.environments.contains_key(environment))
    {
        return Ok(());
    }
    let deployed = ctx
        .block_on(store.list_deployments(&cutover_store::DeploymentFilter {
            environment: Some(environment.to_owned()),
            unfinished_only: false,
            limit: Some(1),
        }))
        .map_err(crate::context::store_error)?;
    if !deployed.is_empty() {
        return Ok(());
    }
    let known: Vec<String> = config
        .map(|c| c.environments.keys().map(|k| format!("`{k}`")).collect())
        .unwrap_or_default();
    Err(CliError::usage(format!(
        "unknown environment `{environment}`: it is not in cutover.toml and has no deployments"
    ))
    .with_hint(format!(
        "the configuration defines {}",
        if known.is_empty() {
            "no environment".to_owned()
        } else {
            known.join(", ")
        }
    )))
}

pub(super) fn metrics_error(e: MetricsError) -> CliError {
    let hint = e.hint();
    let err = if e.is_user_error() {
        CliError::usage(e.to_string())
    } else {
        CliError::internal(e.to_string())
    };
    err.with_hint_opt(hint)
}

/// A duration for people: the two largest units (`1d 4h`, `1h 45m`, `42s`).
fn human(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let parts: Vec<String> = units
        .iter()
        .scan(total, |left, (name, size)| {
            let n = *left / size;
            *left %= size;
            Some((n, *name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

fn band(b: Option<Band>) -> String {
    b.map_or_else(|| "-".to_owned(), |b| b.as_str().to_owned())
}

fn render(r: &DoraReport) -> String {
    let f = &r.deployment_frequency;
    let l = &r.lead_time;
    let c = &r.change_failure_rate;
    let t = &r.recovery_time;
    let mut rows = vec![
        ["METRIC", "VALUE", "BAND", "FROM"]
            .map(str::to_owned)
            .to_vec(),
    ];
    rows.push(vec![
        "deployment frequency".to_owned(),
        f.per_day.map_or_else(
            || "-".to_owned(),
            |d| format!("{d:.2}/day ({:.1}/week)", d * 7.0),
        ),
        band(f.band),
        format!(
            "{} deployment{}, {} rollback{}",
            f.deployments,
            if f.deployments == 1 { "" } else { "s" },
            f.rollbacks,
            if f.rollbacks == 1 { "" } else { "s" }
        ),
    ]);
    rows.push(vec![
        "lead time for changes".to_owned(),
        l.median_seconds.map_or_else(
            || "-".to_owned(),
            |m| {
                format!(
                    "median {}, p90 {}",
                    human(m),
                    human(l.p90_seconds.unwrap_or(m))
                )
            },
        ),
        band(l.band),
        format!("{} commits", l.commits.len()),
    ]);
    rows.push(vec![
        "change failure rate".to_owned(),
        c.rate
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
        band(c.band),
        format!("{} of {} deployments failed", c.failures, c.deployments),
    ]);
    rows.push(vec![
        "failed deployment recovery time".to_owned(),
        t.median_seconds
            .map_or_else(|| "-".to_owned(), |m| format!("median {}", human(m))),
        band(t.band),
        format!("{} restored, {} not yet", t.restored, t.unrestored),
    ]);
    let mut out = format!(
        "DORA metrics of {} from {} to {} ({:.0} days)\n\n",
        r.environment,
        time(r.since),
        time(r.until),
        r.days
    );
    out.push_str(&table(&rows, ""));
    out.push_str(
        "\nbands: DORA, Accelerate State of DevOps 2023/2024 (elite, high, medium, low)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(0.0), "0s");
        assert_eq!(human(42.0), "42s");
        assert_eq!(human(6300.0), "1h 45m");
        assert_eq!(human(100_800.0), "1d 4h");
        assert_eq!(human(86_400.0), "1d");
        assert_eq!(human(-5.0), "0s");
    }
}
