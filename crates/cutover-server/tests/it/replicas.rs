//! Two servers (two pools, two sets of workers) on ONE PostgreSQL database: every deploy job
//! asked of either is run exactly once, and both answer the same state.

use std::sync::Arc;
use std::time::Duration;

use cutover_store::{AuditFilter, JobFilter, Store, TokenScope};
use hyper::StatusCode;
use sqlx::Connection as _;

use crate::common::{Server, get, post, release, token};

/// A fresh database on the throwaway cluster. Without `CUTOVER_TEST_PG_URL` this fails: run
/// `cargo xtask pg -- cargo test -p cutover-server` (the PostgreSQL tests never skip silently).
pub async fn fresh_pg_url() -> String {
    let admin = std::env::var("CUTOVER_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "CUTOVER_TEST_PG_URL is not set: run `cargo xtask pg -- cargo test -p cutover-server`, \
             which starts a throwaway PostgreSQL"
        )
    });
    let name = format!(
        "cutover_server_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let cut = base.rfind('/').unwrap();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..cut])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_run_each_job_once() {
    let url = fresh_pg_url().await;
    let store_a: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    let store_b: Arc<dyn Store> = cutover_store::open(&url).await.unwrap();
    release(&*store_a, "1.0.0").await;
    let secret = token(&*store_a, "ci", TokenScope::Deployer, &[]).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(store_a.clone(), dir_a.path(), false).await;
    let b = Server::start(store_b.clone(), dir_b.path(), false).await;
    // The pipeline handler runs a child process per job; here the child records its argv (one
    // line, appended atomically) and answers like `cutover --json` does, so that the count of
    // runs is read from a file that every run of every replica appends to.
    let log = dir_a.path().join("runs.log");
    let exe = dir_a.path().join("record-run");
    std::fs::write(
        &exe,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho '{{\"ok\": true}}'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let registry = |root: &std::path::Path| {
        cutover_server::jobs::registry(cutover_queue::pipeline::PipelineHandler::new(
            exe.clone(),
            root.to_owned(),
            Some(url.clone()),
        ))
    };
    let (stop, listener) = cutover_queue::shutdown_signal();
    let workers_a = tokio::spawn(cutover_server::jobs::run_workers(
        store_a.clone(),
        registry(dir_a.path()),
        "a".into(),
        2,
        listener.clone(),
    ));
    let workers_b = tokio::spawn(cutover_server::jobs::run_workers(
        store_b.clone(),
        registry(dir_b.path()),
        "b".into(),
        2,
        listener.clone(),
    ));

    let mut ids = Vec::new();
    for (i, env) in ["staging", "qa", "production", "staging", "qa", "production"]
        .iter()
        .enumerate()
    {
        let server = if i % 2 == 0 { &a } else { &b };
        let body = format!(r#"{{"environment": "{env}", "version": "1.0.0"}}"#);
        let answer = post(&server.url("/api/v1/deployments"), Some(&secret), &body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
        ids.push(answer.json()["job"].as_i64().unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = store_b
            .list_jobs(&JobFilter {
                ids: ids.clone(),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        if jobs.len() == ids.len() && jobs.iter().all(|j| j.finished_at.is_some()) {
            break jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs still unfinished: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.trigger();
    let stats: Vec<_> = workers_a
        .await
        .unwrap()
        .into_iter()
        .chain(workers_b.await.unwrap())
        .collect();
    let ran: u64 = stats.iter().map(|s| s.failed + s.completed).sum();
    assert_eq!(ran, 6, "six jobs ran in all: {stats:?}");
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.lines().count(), 6, "{runs}");
    for env in ["staging", "qa", "production"] {
        let n = runs
            .lines()
            .filter(|l| l.contains(&format!(" deploy {env} --wait --version 1.0.0")))
            .count();
        assert_eq!(n, 2, "{env}: {runs}");
    }
    for job in &jobs {
        assert_eq!(
            (job.state.as_str(), job.attempts),
            ("succeeded", 1),
            "{job:#?}"
        );
        assert_eq!(
            job.result.as_ref().unwrap()["output"]["ok"],
            true,
            "{job:#?}"
        );
        let completions = store_a
            .list_audit(&AuditFilter {
                action: Some("job.complete".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.subject == format!("job/{}", job.id)
                    || e.payload["ids"]
                        .as_array()
                        .is_some_and(|ids| ids.contains(&job.id.into()))
            })
            .count();
        assert_eq!(completions, 1, "job {} completed exactly once", job.id);
    }

    for path in [
        "/api/v1/jobs",
        "/api/v1/status",
        "/api/v1/history",
        "/api/v1/releases",
    ] {
        let from_a = get(&a.url(path), Some(&secret)).await;
        let from_b = get(&b.url(path), Some(&secret)).await;
        assert_eq!(from_a.status, StatusCode::OK);
        assert_eq!(
            from_a.json(),
            from_b.json(),
            "{path} differs between the replicas"
        );
    }
    let metrics = get(&a.url("/metrics"), Some(&secret)).await.text();
    assert!(
        metrics.contains("cutover_queue_depth{class=\"release\"} 0"),
        "{metrics}"
    );
    a.stop().await;
    b.stop().await;
}
