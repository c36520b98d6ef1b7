//! Tampering with audit rows directly in the database: `verify_audit` names the first broken seq.

use cutover_core::audit::{AuditEvent, BrokenReason, canonical_json};
use cutover_store::*;
use serde_json::json;

use crate::common::{TestDb, on_both};

on_both!(
    long_chain_is_read_in_batches,
    altered_row,
    deleted_row,
    inserted_forged_row,
    reordered_rows,
    rehashed_alteration_breaks_the_next_link
);

async fn chain_of(db: &TestDb, n: i64) -> Vec<AuditEvent> {
    for i in 1..=n {
        db.store
            .append_audit(&Audit::new(
                "ann",
                "x.do",
                format!("s/{i}"),
                json!({"i": i, "f": 0.1}),
            ))
            .await
            .unwrap();
    }
    let events = db.store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        db.store.verify_audit().await.unwrap(),
        VerifyReport {
            events: n as u64,
            first_broken: None
        }
    );
    events
}

async fn first_broken(db: &TestDb) -> Broken {
    let report = db.store.verify_audit().await.unwrap();
    let events = report.events;
    report
        .first_broken
        .unwrap_or_else(|| panic!("tampering was not detected ({events} events hold)"))
}

async fn altered_row(db: TestDb) {
    chain_of(&db, 8).await;
    db.raw
        .exec(&["UPDATE audit SET payload = '{\"f\":0.1,\"i\":500}' WHERE seq = 5"])
        .await;
    let broken = first_broken(&db).await;
    assert_eq!(broken.seq, 5);
    assert!(
        matches!(broken.reason, BrokenReason::HashMismatch { .. }),
        "{broken}"
    );
    assert_eq!(db.store.verify_audit().await.unwrap().events, 4);
    assert!(broken.to_string().contains("seq 5"), "{broken}");
}

async fn deleted_row(db: TestDb) {
    chain_of(&db, 8).await;
    db.raw.exec(&["DELETE FROM audit WHERE seq = 3"]).await;
    let broken = first_broken(&db).await;
    assert_eq!(
        broken,
        Broken {
            seq: 3,
            reason: BrokenReason::Missing { found: 4 }
        }
    );
}

async fn inserted_forged_row(db: TestDb) {
    let events = chain_of(&db, 6).await;
    // A forger who knows the algorithm seals a perfect event after seq 3 and renumbers the rest.
    let forged = AuditEvent::seal(
        4,
        events[2].at,
        "mallory",
        "x.do",
        "s/forged",
        json!({}),
        events[2].hash.clone(),
    );
    db.raw
        .exec(&[
            "UPDATE audit SET seq = -seq WHERE seq >= 4",
            "UPDATE audit SET seq = 1 - seq WHERE seq < 0",
            &format!(
                "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) \
                 VALUES (4, {}, 'mallory', 'x.do', 's/forged', '{}', '{}', '{}')",
                forged.at.timestamp_micros(),
                canonical_json(&forged.payload),
                forged.prev_hash,
                forged.hash
            ),
        ])
        .await;
    assert_eq!(db.raw.scalar("SELECT COUNT(*) FROM audit").await, 7);
    // The forged event itself links; the renumbered original after it cannot.
    let broken = first_broken(&db).await;
    assert_eq!(broken.seq, 5);
    assert!(
        matches!(broken.reason, BrokenReason::PrevHashMismatch { .. }),
        "{broken}"
    );
}

async fn reordered_rows(db: TestDb) {
    chain_of(&db, 6).await;
    db.raw
        .exec(&[
            "UPDATE audit SET seq = -3 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 4",
            "UPDATE audit SET seq = 4 WHERE seq = -3",
        ])
        .await;
    let broken = first_broken(&db).await;
    assert_eq!(broken.seq, 3);
    assert!(
        matches!(broken.reason, BrokenReason::PrevHashMismatch { .. }),
        "{broken}"
    );
}

async fn rehashed_alteration_breaks_the_next_link(db: TestDb) {
    let events = chain_of(&db, 5).await;
    // Alter seq 2 and recompute its own hash: the link from seq 3 still gives it away.
    let altered = AuditEvent::seal(
        2,
        events[1].at,
        "mallory",
        "x.do",
        "s/2",
        json!({"i": 2, "f": 0.1}),
        events[1].prev_hash.clone(),
    );
    db.raw
        .exec(&[&format!(
            "UPDATE audit SET actor = 'mallory', hash = '{}' WHERE seq = 2",
            altered.hash
        )])
        .await;
    let broken = first_broken(&db).await;
    assert_eq!(broken.seq, 3);
    assert!(
        matches!(broken.reason, BrokenReason::PrevHashMismatch { .. }),
        "{broken}"
    );
}

/// Writes a valid chain of `n` events straight into the table (much faster than appending).
async fn bulk_chain(db: &TestDb, n: i64) {
    let mut prev = cutover_core::audit::GENESIS_HASH.to_owned();
    let mut statements = Vec::new();
    let mut values = Vec::new();
    for seq in 1..=n {
        let e = AuditEvent::seal(
            seq,
            crate::common::t(seq),
            "bulk",
            "x.do",
            format!("s/{seq}"),
            json!({"i": seq}),
            prev,
        );
        values.push(format!(
            "({seq}, {}, 'bulk', 'x.do', 's/{seq}', '{}', '{}', '{}')",
            e.at.timestamp_micros(),
            canonical_json(&e.payload),
            e.prev_hash,
            e.hash
        ));
        prev = e.hash;
        if values.len() == 500 || seq == n {
            statements.push(format!(
                "INSERT INTO audit (seq, at_us, actor, action, subject, payload, prev_hash, hash) VALUES {}",
                values.join(", ")
            ));
            values.clear();
        }
    }
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    db.raw.exec(&refs).await;
}

async fn long_chain_is_read_in_batches(db: TestDb) {
    // More events than one verify batch (10,000), so that paging is exercised.
    bulk_chain(&db, 23_000).await;
    assert_eq!(
        db.store.verify_audit().await.unwrap(),
        VerifyReport {
            events: 23_000,
            first_broken: None
        }
    );
    // Appends continue the bulk-written chain.
    let e = db
        .store
        .append_audit(&Audit::new("ann", "x.do", "s", json!(null)))
        .await
        .unwrap();
    assert_eq!(e.seq, 23_001);
    db.raw
        .exec(&["UPDATE audit SET subject = 'moved' WHERE seq = 20001"])
        .await;
    let report = db.store.verify_audit().await.unwrap();
    assert_eq!(report.events, 20_000);
    assert_eq!(report.first_broken.map(|b| b.seq), Some(20_001));
}
