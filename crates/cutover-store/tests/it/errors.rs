//! Bad input: unreachable databases, bad URLs, and stores written by a newer cutover.

use cutover_store::*;

use crate::common::{TestDb, audit, on_both};

on_both!(newer_schema_is_refused_and_nothing_changes);

async fn newer_schema_is_refused_and_nothing_changes(db: TestDb) {
    db.store.append_audit(&audit("x.do", "s")).await.unwrap();
    db.store.close().await;
    db.raw
        .exec(&["INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (99990101000000, 'from the future', TRUE, '', 0)"])
        .await;
    let tables_before = db.raw.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await;
    let err = open(&db.raw.url()).await.unwrap_err();
    match &err {
        StoreError::NewerSchema { found, known, .. } => {
            assert_eq!(*found, 99990101000000);
            assert_eq!(*known, SqliteStore::known_schema_version());
            assert_eq!(*known, PgStore::known_schema_version());
        }
        other => panic!("expected NewerSchema, got {other}"),
    }
    assert!(err.is_user_error());
    assert!(
        err.to_string().contains("newer version of cutover"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("upgrade cutover"));
    assert_eq!(
        db.raw.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
        tables_before
    );
    assert_eq!(db.raw.scalar("SELECT COUNT(*) FROM audit").await, 1);
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let err = open("postgres://ann:s3cr%40t@127.0.0.1:1/cutover")
        .await
        .unwrap_err();
    let text = err.to_string();
    let debug = format!("{err:?}");
    assert!(matches!(err, StoreError::Unreachable { .. }), "{debug}");
    assert!(err.is_user_error());
    assert!(
        text.contains("postgres://ann:***@127.0.0.1:1/cutover"),
        "{text}"
    );
    for leaked in ["s3cr", "%40t"] {
        assert!(
            !text.contains(leaked) && !debug.contains(leaked),
            "{text} / {debug}"
        );
    }
    assert!(err.hint().unwrap().contains("PostgreSQL"));
}

#[tokio::test]
async fn bad_urls_and_paths_are_user_errors() {
    let err = open("mysql://root:pw@localhost/db").await.unwrap_err();
    assert!(
        matches!(err, StoreError::BadUrl { .. }) && err.is_user_error(),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains(":pw@"), "{err:?}");
    let err = open("postgres://ann:pw@[bad/db").await.unwrap_err();
    assert!(err.is_user_error(), "{err}");
    assert!(!format!("{err} {err:?}").contains(":pw@"), "{err:?}");
    // A SQLite path whose parent is a regular file cannot be created.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = open(file.join("state.db").to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unreachable { .. }) && err.is_user_error(),
        "{err}"
    );
    assert!(err.to_string().contains("state.db"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let url = format!("sqlite:{}", path.display());
    let store = open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let e = store.append_audit(&audit("x.do", "s")).await.unwrap();
    store.close().await;
    let again = open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(
        again.list_audit(&AuditFilter::default()).await.unwrap(),
        vec![e]
    );
    assert_eq!(again.verify_audit().await.unwrap().events, 1);
}
