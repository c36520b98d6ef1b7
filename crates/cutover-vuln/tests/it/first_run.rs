//! The first run on a new machine: a database created from one source in one go
//! (`VulnDb::create_from`), partial sources (only the scanned packages' advisories) and their
//! completion, an import that changes nothing keeping the match index, and a match index torn by
//! a crash (it is not synced) found and rebuilt, never read as a smaller index.

#![allow(clippy::unwrap_used)]

use crate::match_index::encode_one;
use chrono::{TimeZone, Utc};
use cutover_vuln::db::{DbError, VulnDb};
use cutover_vuln::import;
use cutover_vuln::index::{self, IndexFile};
use cutover_vuln::matching::{PackageRef, match_packages};
use proptest::prelude::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, d, 12, 0, 0).unwrap()
}

fn lockfile_project(tmp: &Path) -> (cutover_bom::Bom, Vec<PackageRef>) {
    let project = tmp.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(
        fixture("lockfiles/cargo-v1/Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();
    let bom = cutover_bom::discover_and_parse(&project);
    let packages = bom
        .components
        .iter()
        .filter_map(|c| cutover_vuln::bomscan::package_ref(&c.component))
        .collect();
    (bom, packages)
}

#[tokio::test]
async fn a_database_created_for_the_lockfiles_crates_is_partial_until_imported_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (bom, packages) = lockfile_project(tmp.path());
    let rustsec = fixture("osv/rustsec");
    let src = rustsec.display().to_string();

    // The reference: the whole advisory-db imported the usual way.
    let whole = VulnDb::open(&tmp.path().join("whole.db")).await.unwrap();
    whole
        .import(&src, import::load(&rustsec).unwrap(), day(1))
        .await
        .unwrap();
    let expected = cutover_vuln::bomscan::scan(&whole, &bom).await.unwrap();
    assert!(expected.findings.len() > 20);
    assert!(whole.partial_sources().await.unwrap().is_empty());

    // A leftover of a build that crashed is not in the way.
    let path = tmp.path().join("cache/vulns.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let leftover = PathBuf::from(format!("{}.new-{}", path.display(), std::process::id()));
    std::fs::write(&leftover, b"half a database").unwrap();

    let loaded = import::load_for(&rustsec, &packages).unwrap();
    assert!(loaded.partial);
    let (db, report) = VulnDb::create_from(&path, &src, loaded, day(1))
        .await
        .unwrap();
    assert!(
        !leftover.exists(),
        "the temporary file is renamed into place"
    );
    assert!(report.added > 20 && report.added == report.read);
    assert!(index::path_for(&path).exists(), "the match index is built");
    let found = cutover_vuln::bomscan::scan(&db, &bom).await.unwrap();
    assert_eq!(found, expected);
    let st = db.status(day(1)).await.unwrap();
    assert!(st.partial && st.sources[0].partial, "{st:?}");
    assert_eq!(st.sources[0].kind, "rustsec (partial)");
    assert_eq!(
        st.sources[0].advisories,
        i64::try_from(report.read).unwrap()
    );
    assert_eq!(db.partial_sources().await.unwrap(), vec![src.clone()]);
    db.close().await;

    // Reopened the usual way: WAL, and the same findings through the same index file.
    let db = VulnDb::open(&path).await.unwrap();
    assert_eq!(
        cutover_vuln::bomscan::scan(&db, &bom).await.unwrap(),
        expected
    );
    let err = VulnDb::create_from(&path, &src, import::load(&rustsec).unwrap(), day(2))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Exists { .. }), "{err}");

    // The same partial import again changes nothing: the index stays as it is.
    let ino = std::fs::metadata(index::path_for(&path)).unwrap().ino();
    let again = db
        .import(&src, import::load_for(&rustsec, &packages).unwrap(), day(2))
        .await
        .unwrap();
    assert_eq!((again.added, again.updated, again.withdrawn), (0, 0, 0));
    assert_eq!(
        std::fs::metadata(index::path_for(&path)).unwrap().ino(),
        ino,
        "not rewritten"
    );
    assert!(db.status(day(2)).await.unwrap().partial);

    // A whole import completes it: nothing of the partial import is taken for withdrawn.
    let rest = db
        .import(&src, import::load(&rustsec).unwrap(), day(3))
        .await
        .unwrap();
    assert!(rest.added > 1000, "{rest:?}");
    let st = db.status(day(3)).await.unwrap();
    assert!(!st.partial && !st.sources[0].partial);
    assert_eq!(st.sources[0].kind, "rustsec");
    let reference = whole.status(day(3)).await.unwrap();
    assert_eq!(
        (st.advisories, st.withdrawn, st.per_ecosystem),
        (
            reference.advisories,
            reference.withdrawn,
            reference.per_ecosystem
        ),
        "only those withdrawn in the source itself are withdrawn"
    );
    assert!(db.partial_sources().await.unwrap().is_empty());

    // A partial refresh of a whole source leaves it whole.
    db.import(&src, import::load_for(&rustsec, &packages).unwrap(), day(4))
        .await
        .unwrap();
    let st = db.status(day(4)).await.unwrap();
    assert!(!st.partial);
    assert_eq!(st.sources[0].kind, "rustsec");
    db.close().await;
    whole.close().await;
}

fn osv(id: &str, name: &str, fixed: &str) -> String {
    format!(
        r#"{{"id":"{id}","modified":"2026-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"npm","name":"{name}"}},"ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

async fn ids(db: &VulnDb, packages: &[PackageRef]) -> Vec<String> {
    match_packages(db, packages)
        .await
        .unwrap()
        .findings
        .into_iter()
        .map(|f| f.id)
        .collect()
}

#[tokio::test]
async fn a_torn_match_index_is_rebuilt_never_read_as_a_smaller_one() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Enough packages for a key table and blocks of several pages.
    let n = 600;
    for i in 0..n {
        std::fs::write(
            src.join(format!("A-{i}.json")),
            osv(&format!("A-{i}"), &format!("package-number-{i}"), "9.0.0"),
        )
        .unwrap();
    }
    let packages: Vec<PackageRef> = (0..n)
        .map(|i| PackageRef {
            ecosystem: "npm".into(),
            name: format!("package-number-{i}"),
            version: "1.0.0".into(),
        })
        .collect();
    let path = tmp.path().join("vulns.db");
    let (db, _) = VulnDb::create_from(&path, "src", import::load(&src).unwrap(), day(1))
        .await
        .unwrap();
    let mut expected = ids(&db, &packages).await;
    expected.sort();
    assert_eq!(expected.len(), n);
    let index_path = index::path_for(&path);
    let good = std::fs::read(&index_path).unwrap();
    assert!(good.len() > 3 * 4096, "{}", good.len());

    // What a crash of the machine leaves of a file that was not synced: pages of zeros, or less.
    let page = 4096;
    let mut tears: Vec<(String, Vec<u8>)> = Vec::new();
    for p in 0..good.len().div_ceil(page) {
        let mut torn = good.clone();
        let end = ((p + 1) * page).min(torn.len());
        torn[p * page..end].fill(0);
        tears.push((format!("page {p} zeroed"), torn));
    }
    tears.push(("cut in half".into(), good[..good.len() / 2].to_vec()));
    tears.push(("empty".into(), Vec::new()));
    for (what, torn) in tears {
        std::fs::write(&index_path, &torn).unwrap();
        let mut got = ids(&db, &packages).await;
        got.sort();
        assert_eq!(got, expected, "{what}");
        assert_eq!(
            std::fs::read(&index_path).unwrap(),
            good,
            "{what}: rebuilt as it was"
        );
    }
    db.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any range of the index file zeroed (a crash before the data reached the disk) is found:
    /// the file does not open, says it is of another database state, or its block fails its
    /// checksum. It is never read as an index without the key.
    #[test]
    fn a_zeroed_range_is_never_read_as_a_smaller_index(
        eco in "[a-zA-Z.]{1,10}",
        name in "\\PC{1,20}",
        versions in proptest::collection::vec("[0-9.]{1,8}", 0..5),
        start in 0usize..300,
        len in 1usize..80,
    ) {
        let good = encode_one(&eco, &name, &versions);
        let mut torn = good.clone();
        let end = (start + len).min(torn.len());
        if start < end {
            torn[start..end].fill(0);
        }
        prop_assume!(torn != good);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i");
        std::fs::write(&path, &torn).unwrap();
        let Some(file) = IndexFile::open(&path).unwrap() else {
            return Ok(()); // rebuilt
        };
        if file.stamp != (index::Stamp { db_id: 1, generation: 2 }) {
            return Ok(()); // another state: rebuilt
        }
        let blocks: Vec<_> = file.lookup(&eco, &name).collect();
        prop_assert_eq!(blocks.len(), 1, "the key is never hidden");
        prop_assert!(file.read_blocks(&blocks).is_err(), "the torn block fails its checksum");
    }
}
