//! Import of the real advisory fixtures (PyPA YAML, Go JSON, RustSec Markdown) into a database
//! file, `db status`, re-import, bad input, and matching spot checks against known advisories.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use cutover_vuln::db::VulnDb;
use cutover_vuln::import::{self, ImportError};
use cutover_vuln::matching::{PackageRef, match_packages};
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/osv")
        .join(p)
}

fn pkg(eco: &str, name: &str, version: &str) -> PackageRef {
    PackageRef {
        ecosystem: eco.into(),
        name: name.into(),
        version: version.into(),
    }
}

async fn import_dir(db: &VulnDb, dir: &Path, day: u32) -> cutover_vuln::db::ImportReport {
    let loaded = import::load(dir).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 9, day, 12, 0, 0).unwrap();
    db.import(&dir.display().to_string(), loaded, now)
        .await
        .unwrap()
}

async fn ids(db: &VulnDb, p: PackageRef) -> Vec<(String, Option<String>)> {
    let r = match_packages(db, &[p]).await.unwrap();
    r.findings.into_iter().map(|f| (f.id, f.fixed)).collect()
}

#[tokio::test]
async fn imports_every_fixture_and_matches_known_advisories() {
    let tmp = tempfile::tempdir().unwrap();
    let db = VulnDb::open(&tmp.path().join(".cutover/vulns.db"))
        .await
        .unwrap();

    let pypa = import_dir(&db, &fixture("pypa"), 1).await;
    assert_eq!(
        (pypa.read, pypa.added, pypa.skipped.len(), pypa.withdrawn),
        (2661, 2661, 0, 10)
    );
    let go = import_dir(&db, &fixture("go"), 1).await;
    assert_eq!(
        (go.read, go.added, go.skipped.len(), go.withdrawn),
        (300, 300, 0, 2)
    );
    let rs = import_dir(&db, &fixture("rustsec"), 1).await;
    assert_eq!(
        (rs.read, rs.added, rs.skipped.len(), rs.withdrawn),
        (1225, 1225, 0, 13)
    );
    assert_eq!(rs.kind, "rustsec");

    let status = db
        .status(Utc.with_ymd_and_hms(2026, 9, 2, 12, 0, 0).unwrap())
        .await
        .unwrap();
    assert_eq!(status.sources.len(), 3);
    assert_eq!(status.age_seconds, Some(86_400));
    assert_eq!(status.withdrawn, 10 + 2 + 13);
    assert_eq!(status.advisories, 2661 - 10 + 300 - 2 + 1225 - 13);
    assert_eq!(status.per_ecosystem.get("PyPI"), Some(&(2661 - 10)));
    assert_eq!(status.per_ecosystem.get("Go"), Some(&298));
    assert_eq!(status.per_ecosystem.get("crates.io"), Some(&(1205 - 13)));
    assert_eq!(status.skipped, 0);

    // PyPI: AccessControl 4.0 <= v < 4.3 and 5.0 <= v < 5.2 (PYSEC-2021-335); name normalised.
    let hits = ids(&db, pkg("PyPI", "AccessControl", "4.2")).await;
    assert!(
        hits.contains(&("PYSEC-2021-335".into(), Some("4.3".into()))),
        "{hits:?}"
    );
    let hits = ids(&db, pkg("PyPI", "accesscontrol", "5.1")).await;
    assert!(
        hits.contains(&("PYSEC-2021-335".into(), Some("5.2".into()))),
        "{hits:?}"
    );
    let hits = ids(&db, pkg("PyPI", "accesscontrol", "5.2")).await;
    assert!(
        !hits.iter().any(|(id, _)| id == "PYSEC-2021-335"),
        "{hits:?}"
    );

    // Go: jwt-go v3 has no fix (introduced at a pseudo-version); /v4 is fixed in 4.0.0-preview1.
    let hits = ids(
        &db,
        pkg("Go", "github.com/dgrijalva/jwt-go", "v3.2.0+incompatible"),
    )
    .await;
    assert_eq!(hits, vec![("GO-2020-0017".to_string(), None)]);
    let hits = ids(
        &db,
        pkg("Go", "github.com/dgrijalva/jwt-go/v4", "v4.0.0-preview0"),
    )
    .await;
    assert_eq!(
        hits,
        vec![("GO-2020-0017".to_string(), Some("4.0.0-preview1".into()))]
    );
    assert!(
        ids(&db, pkg("Go", "github.com/dgrijalva/jwt-go/v4", "v4.0.0"))
            .await
            .is_empty()
    );

    // Withdrawn advisories never match (GO-2024-2442 affects every teleport version).
    let hits = ids(
        &db,
        pkg("Go", "github.com/gravitational/teleport", "v1.0.0"),
    )
    .await;
    assert!(!hits.iter().any(|(id, _)| id == "GO-2024-2442"), "{hits:?}");

    // RustSec, converted: patched = [">= 0.9.1"].
    let hits = ids(&db, pkg("crates.io", "abi_stable", "0.9.0")).await;
    assert_eq!(
        hits,
        vec![("RUSTSEC-2020-0105".to_string(), Some("0.9.1".into()))]
    );
    assert!(
        ids(&db, pkg("crates.io", "abi_stable", "0.9.1"))
            .await
            .is_empty()
    );
    // The toolchain collection is stored but never matches a crate called `std`.
    assert!(ids(&db, pkg("crates.io", "std", "1.0.0")).await.is_empty());
    assert!(db.advisory("CVE-2015-20001").await.unwrap().is_some());

    // Severity is computed from the CVSS vector at import.
    let r = match_packages(&db, &[pkg("crates.io", "abi_stable", "0.9.0")])
        .await
        .unwrap();
    let f = &r.findings[0];
    assert_eq!((f.score, f.level.as_str()), (Some(7.5), "high"));
    assert_eq!(f.aliases[0], "CVE-2020-36212");

    // "Which releases run it?": find by alias, check each release's packages.
    let found = db.find("CVE-2020-36212").await.unwrap();
    assert_eq!(found.len(), 1);
    let releases = [
        pkg("crates.io", "abi_stable", "0.8.3"),
        pkg("crates.io", "abi_stable", "0.9.1"),
        pkg("crates.io", "other", "0.8.3"),
    ];
    assert_eq!(
        cutover_vuln::matching::affected_by(&found[0], &releases),
        vec![0]
    );

    // Re-import of an unchanged source changes nothing.
    let again = import_dir(&db, &fixture("go"), 3).await;
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 300));
    db.close().await;
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn osv_json(id: &str, aliases: &[&str], name: &str, fixed: &str, extra: &str) -> String {
    format!(
        r#"{{"schema_version":"1.7.0","id":"{id}","modified":"2026-01-01T00:00:00Z",
        "aliases":{aliases:?},"summary":"{id} summary",{extra}
        "affected":[{{"package":{{"ecosystem":"npm","name":"{name}"}},
        "ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

#[tokio::test]
async fn reimport_updates_and_withdraws_and_bad_files_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(
        &src,
        "GHSA-aaaa.json",
        &osv_json(
            "GHSA-aaaa",
            &["CVE-2026-1"],
            "@scope/pkg",
            "1.2.0",
            r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
        ),
    );
    // The same CVE from another database: merged into one finding, highest score kept.
    write(
        &src,
        "OTHER-1.json",
        &osv_json("OTHER-1", &["CVE-2026-1"], "@Scope/Pkg", "1.1.0", ""),
    );
    write(
        &src,
        "GHSA-bbbb.json",
        &osv_json("GHSA-bbbb", &[], "left-pad", "2.0.0", ""),
    );
    // Bad input: each skipped with its reason, the rest imports.
    write(&src, "bad/not-json.json", "{ this is not json");
    write(&src, "bad/bad.yaml", "id: [unclosed");
    write(
        &src,
        "bad/range.json",
        &osv_json("BAD-1", &[], "x", "1.0.0", "").replace("SEMVER", "DATES"),
    );
    write(
        &src,
        "bad/order.json",
        &osv_json("BAD-2", &[], "x", "1.0.0", "")
            .replace(r#"{"introduced":"0"}"#, r#"{"introduced":"2.0.0"}"#),
    );
    write(
        &src,
        "bad/version.json",
        &osv_json("BAD-3", &[], "x", "one.two", ""),
    );
    write(&src, "README.txt", "not an advisory, ignored");

    let db = VulnDb::open(&tmp.path().join("vulns.db")).await.unwrap();
    let day1 = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
    let r = db
        .import("src", import::load(&src).unwrap(), day1)
        .await
        .unwrap();
    assert_eq!((r.read, r.added), (3, 3));
    let reasons: Vec<(String, String)> = r
        .skipped
        .iter()
        .map(|s| (s.file.clone(), s.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    let reason = |f: &str| {
        reasons
            .iter()
            .find(|(file, _)| file == f)
            .unwrap()
            .1
            .clone()
    };
    assert!(reason("bad/not-json.json").starts_with("bad JSON"));
    assert!(reason("bad/bad.yaml").starts_with("bad YAML"));
    assert!(reason("bad/range.json").contains("unknown range type `DATES`"));
    assert!(reason("bad/order.json").contains("events out of order"));
    assert!(reason("bad/version.json").contains("`one.two` is not a valid SemVer version"));
    assert_eq!(db.status(day1).await.unwrap().skipped, 5);

    let found = match_packages(
        &db,
        &[
            pkg("npm", "@scope/pkg", "1.0.0"),
            pkg("npm", "left-pad", "1.3.0"),
        ],
    )
    .await
    .unwrap();
    let summary: Vec<_> = found
        .findings
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.aliases.clone(),
                f.fixed.clone(),
                f.level.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "GHSA-aaaa",
                vec!["CVE-2026-1".to_string(), "OTHER-1".into()],
                Some("1.1.0".into()),
                "critical"
            ),
            ("GHSA-bbbb", vec![], Some("2.0.0".into()), "unknown"),
        ]
    );

    // Second import: GHSA-bbbb gone from the source, OTHER-1 withdrawn in it, GHSA-aaaa changed.
    std::fs::remove_file(src.join("GHSA-bbbb.json")).unwrap();
    write(
        &src,
        "OTHER-1.json",
        &osv_json(
            "OTHER-1",
            &["CVE-2026-1"],
            "@scope/pkg",
            "1.1.0",
            r#""withdrawn":"2026-08-30T00:00:00Z","#,
        ),
    );
    write(
        &src,
        "GHSA-aaaa.json",
        &osv_json("GHSA-aaaa", &["CVE-2026-1"], "@scope/pkg", "1.3.0", ""),
    );
    let day2 = Utc.with_ymd_and_hms(2026, 9, 2, 0, 0, 0).unwrap();
    let r = db
        .import("src", import::load(&src).unwrap(), day2)
        .await
        .unwrap();
    assert_eq!((r.added, r.updated, r.unchanged, r.withdrawn), (0, 2, 0, 2));
    let found = match_packages(
        &db,
        &[
            pkg("npm", "@scope/pkg", "1.0.0"),
            pkg("npm", "left-pad", "1.3.0"),
        ],
    )
    .await
    .unwrap();
    let summary: Vec<_> = found
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.aliases.clone(), f.fixed.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![(
            "GHSA-aaaa",
            vec!["CVE-2026-1".to_string()],
            Some("1.3.0".into())
        )]
    );
    let st = db.status(day2).await.unwrap();
    assert_eq!((st.advisories, st.withdrawn), (1, 2));
}

#[test]
fn a_corrupt_zip_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let z = tmp.path().join("all.zip");
    std::fs::write(&z, b"PK\x03\x04 definitely not a zip archive").unwrap();
    let err = import::load(&z).unwrap_err();
    assert!(matches!(err, ImportError::CorruptZip { .. }));
    assert!(err.to_string().contains("all.zip"), "{err}");
}

#[tokio::test]
async fn imports_an_osv_all_zip_export() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let z = tmp.path().join("all.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut names: Vec<_> = std::fs::read_dir(fixture("go/data/osv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names.iter().take(50) {
        w.start_file(p.file_name().unwrap().to_str().unwrap(), opts)
            .unwrap();
        w.write_all(&std::fs::read(p).unwrap()).unwrap();
    }
    w.start_file("GO-broken.json", opts).unwrap();
    w.write_all(b"{\"id\": 12}").unwrap();
    w.finish().unwrap();

    let loaded = import::load(&z).unwrap();
    assert_eq!(loaded.kind, "osv-zip");
    assert_eq!(loaded.advisories.len(), 50);
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].file, "all.zip!GO-broken.json");
    let db = VulnDb::open(&tmp.path().join("v.db")).await.unwrap();
    let r = db.import("all.zip", loaded, Utc::now()).await.unwrap();
    assert_eq!(r.added, 50);
}
