//! Parallel writers never fork the audit chain: tasks sharing a pool and separate pools on both
//! backends, and separate OS processes on SQLite (this test binary re-executed as a child).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, on_both, t};

on_both!(parallel_tasks_and_pools_keep_one_chain);

const WRITERS: usize = 6;
const EVENTS_EACH: usize = 40;

async fn write_events(store: Arc<dyn Store>, writer: usize, n: usize) {
    for i in 0..n {
        let job = NewJob {
            class: "normal".into(),
            priority: 0,
            kind: "noop".into(),
            payload: json!({"writer": writer, "i": i}),
            supersede_key: None,
            concurrency_group: None,
            run_at: t(0),
            created_at: t(0),
        };
        store
            .apply(
                &[Change::InsertJob(job)],
                &Audit::new(
                    format!("writer-{writer}"),
                    "job.enqueue",
                    "job",
                    json!({"i": i}),
                ),
            )
            .await
            .unwrap();
    }
}

async fn check_chain(store: &dyn Store, writers: usize, each: usize) {
    let report = store.verify_audit().await.unwrap();
    assert_eq!(
        report,
        VerifyReport {
            events: (writers * each) as u64,
            first_broken: None
        }
    );
    let events = store.list_audit(&AuditFilter::default()).await.unwrap();
    let mut per_writer: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &events {
        per_writer
            .entry(e.actor.clone())
            .or_default()
            .push(e.payload["i"].as_i64().unwrap());
    }
    assert_eq!(per_writer.len(), writers);
    for (writer, seen) in per_writer {
        // Each writer's events are all there, in the order it wrote them.
        assert_eq!(seen, (0..each as i64).collect::<Vec<_>>(), "{writer}");
    }
}

async fn parallel_tasks_and_pools_keep_one_chain(db: TestDb) {
    let url = db.raw.url();
    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        // Half the writers share the test's store (one pool), half open their own (own connections).
        let store = if writer % 2 == 0 {
            db.store.clone()
        } else {
            open(&url).await.unwrap()
        };
        handles.push(tokio::spawn(write_events(store, writer, EVENTS_EACH)));
    }
    for h in handles {
        h.await.unwrap();
    }
    check_chain(db.store.as_ref(), WRITERS, EVENTS_EACH).await;
}

const CHILD_DB: &str = "CUTOVER_STORE_TEST_CHILD_DB";
const CHILD_WRITER: &str = "CUTOVER_STORE_TEST_CHILD_WRITER";

/// Not a test of its own: the body of a child process started by
/// `sqlite_parallel_processes_keep_one_chain` (does nothing when run without its variables).
#[tokio::test]
async fn sqlite_child_writer() {
    let (Some(path), Some(writer)) = (std::env::var_os(CHILD_DB), std::env::var(CHILD_WRITER).ok())
    else {
        return;
    };
    let store = open_sqlite(std::path::Path::new(&path)).await.unwrap();
    write_events(store, writer.parse().unwrap(), EVENTS_EACH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_parallel_processes_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // The processes race to create and migrate the database, too.
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|writer| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrency::sqlite_child_writer",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(CHILD_DB, &path)
                .env(CHILD_WRITER, writer.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a writer process failed: {status}");
    }
    let store = open_sqlite(&path).await.unwrap();
    check_chain(store.as_ref(), 4, EVENTS_EACH).await;
}
