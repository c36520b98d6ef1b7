//! The match index file: matching through it gives exactly the straightforward matcher's report
//! (real fixtures plus generated advisories with every range feature), a stale, foreign or corrupt
//! index is rebuilt, an old database format is upgraded and a newer one refused, and a first scan
//! that imports only the lockfile's crates finds what a whole import finds.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use chrono::{TimeZone, Utc};
use cutover_vuln::db::{DbError, FORMAT_VERSION, VulnDb};
use cutover_vuln::import::{self, Loaded};
use cutover_vuln::index::{self, Entries, IndexFile};
use cutover_vuln::matching::{PackageRef, match_packages, match_packages_reference};
use cutover_vuln::osv::Event;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn pkg(eco: &str, name: &str, version: &str) -> PackageRef {
    PackageRef {
        ecosystem: eco.into(),
        name: name.into(),
        version: version.into(),
    }
}

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, d, 12, 0, 0).unwrap()
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const ECOS: [&str; 8] = [
    "npm",
    "PyPI",
    "Maven",
    "Go",
    "crates.io",
    "RubyGems",
    "NuGet",
    "Packagist",
];

fn gen_name(eco: &str, n: usize) -> String {
    match eco {
        "npm" if n.is_multiple_of(3) => format!("@Scope{}/Pkg-{n}", n % 5),
        "Maven" => format!("org.example{}:artifact-{n}", n % 3),
        "Go" => format!("github.com/example{}/module-{n}", n % 4),
        "Packagist" => format!("vendor{}/package-{n}", n % 3),
        "PyPI" => format!("Pkg_{n}.lib"),
        _ => format!("pkg-{n}"),
    }
}

fn gen_version(eco: &str, rng: &mut Lcg) -> String {
    let (a, b, c) = (rng.next(3), rng.next(6), rng.next(6));
    let v = if eco == "Go" {
        format!("v{a}.{b}.{c}")
    } else {
        format!("{a}.{b}.{c}")
    };
    match rng.next(12) {
        0 => format!("{v}-rc.1"),
        1 if eco == "PyPI" => format!("{a}.{b}"),
        2 if eco == "Maven" => format!("{v}-SNAPSHOT"),
        3 if eco == "PyPI" => format!("{v}.post1"),
        _ => v,
    }
}

/// Generated advisories using every feature matching looks at: several ranges and entries,
/// `last_affected`, `limit`, `introduced: "0"`, listed versions, GIT ranges, SEMVER ranges,
/// unparseable versions in lists, shared aliases and withdrawn advisories.
fn generated(dir: &Path, count: usize) {
    let mut rng = Lcg(99);
    for i in 0..count {
        let eco = ECOS[i % ECOS.len()];
        let name = gen_name(eco, rng.next(60));
        let mut ranges = Vec::new();
        for _ in 0..1 + rng.next(2) {
            let kind = if rng.next(5) == 0 && eco != "Maven" && eco != "PyPI" {
                "SEMVER"
            } else {
                "ECOSYSTEM"
            };
            let mut lo = gen_version(eco, &mut rng);
            let mut hi = gen_version(eco, &mut rng);
            if cutover_vuln::version::compare(
                cutover_vuln::version::Scheme::for_osv_ecosystem(eco).unwrap(),
                &lo,
                &hi,
            )
            .unwrap()
            .is_ge()
            {
                std::mem::swap(&mut lo, &mut hi);
            }
            let intro = if rng.next(4) == 0 {
                "0".to_string()
            } else {
                lo
            };
            let close = match rng.next(4) {
                0 => format!(r#"{{"last_affected":"{hi}"}}"#),
                1 => format!(r#"{{"limit":"{hi}"}}"#),
                2 => String::new(),
                _ => format!(r#"{{"fixed":"{hi}"}}"#),
            };
            let events = if close.is_empty() {
                format!(r#"{{"introduced":"{intro}"}}"#)
            } else {
                format!(r#"{{"introduced":"{intro}"}},{close}"#)
            };
            if kind == "SEMVER" && eco == "Go" {
                ranges.push(format!(r#"{{"type":"SEMVER","events":[{events}]}}"#));
            } else {
                ranges.push(format!(r#"{{"type":"{kind}","events":[{events}]}}"#));
            }
        }
        if rng.next(6) == 0 {
            ranges.push(
                r#"{"type":"GIT","repo":"https://example.invalid/r","events":[{"introduced":"0"},{"fixed":"abc123"}]}"#
                    .into(),
            );
        }
        if rng.next(15) == 0 {
            // Only a GIT range: not evaluated.
            ranges = vec![
                r#"{"type":"GIT","repo":"https://example.invalid/r","events":[{"introduced":"0"}]}"#
                    .into(),
            ];
        }
        let versions = match rng.next(4) {
            0 => format!(
                r#","versions":["{}","{}","not a version"]"#,
                gen_version(eco, &mut rng),
                gen_version(eco, &mut rng)
            ),
            _ => String::new(),
        };
        let mut affected = vec![format!(
            r#"{{"package":{{"ecosystem":"{eco}","name":"{name}"}},"ranges":[{}]{versions}}}"#,
            ranges.join(",")
        )];
        if rng.next(8) == 0 {
            // The same package listed twice in one advisory.
            affected.push(format!(
                r#"{{"package":{{"ecosystem":"{eco}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{}"}}]}}]}}"#,
                gen_version(eco, &mut rng)
            ));
        }
        let aliases = format!(r#"["CVE-2099-{}"]"#, i / 2 * 2 + rng.next(2) * 1_000_000);
        let withdrawn = if rng.next(25) == 0 {
            r#""withdrawn":"2026-02-01T00:00:00Z","#
        } else {
            ""
        };
        let severity = match rng.next(3) {
            0 => {
                r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#
            }
            1 => {
                r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"}],"#
            }
            _ => "",
        };
        let text = format!(
            r#"{{"schema_version":"1.7.0","id":"GEN-{i:05}","modified":"2026-01-01T00:00:00Z",{withdrawn}{severity}"aliases":{aliases},"summary":"generated {i}","affected":[{}]}}"#,
            affected.join(",")
        );
        std::fs::write(dir.join(format!("GEN-{i:05}.json")), text).unwrap();
    }
}

/// Packages named by the loaded advisories, at versions around their events and listed versions.
fn bom_from(loaded: &[&Loaded], rng: &mut Lcg, out: &mut Vec<PackageRef>) {
    for l in loaded {
        for (_, adv) in &l.advisories {
            for aff in &adv.affected {
                let Some(p) = &aff.package else { continue };
                let mut versions: BTreeSet<String> = aff.versions.iter().cloned().collect();
                for r in &aff.ranges {
                    for e in &r.events {
                        if !matches!(e, Event::Introduced(v) if v == "0") {
                            versions.insert(e.version().to_string());
                        }
                    }
                }
                versions.insert("0.0.1".into());
                // A few of them (PyPA lists hundreds of versions per entry).
                let versions: Vec<String> = versions.into_iter().collect();
                for _ in 0..3 {
                    let v = &versions[rng.next(versions.len())];
                    if rng.next(2) == 0 {
                        let name = if rng.next(2) == 0 {
                            p.name.to_uppercase()
                        } else {
                            p.name.clone()
                        };
                        out.push(pkg(&p.ecosystem, &name, v));
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn the_index_gives_exactly_the_straightforward_matchers_report() {
    let tmp = tempfile::tempdir().unwrap();
    let db = VulnDb::open(&tmp.path().join("vulns.db")).await.unwrap();
    let gen_dir = tmp.path().join("gen");
    std::fs::create_dir_all(&gen_dir).unwrap();
    generated(&gen_dir, 3_000);
    let mut loaded = Vec::new();
    for (i, dir) in [
        fixture("osv/pypa"),
        fixture("osv/go"),
        fixture("osv/rustsec"),
        gen_dir,
    ]
    .iter()
    .enumerate()
    {
        let l = import::load(dir).unwrap();
        let keep = Loaded {
            advisories: l.advisories.clone(),
            skipped: Vec::new(),
            kind: l.kind.clone(),
            partial: false,
        };
        db.import(&format!("source-{i}"), l, day(1)).await.unwrap();
        loaded.push(keep);
    }
    let mut rng = Lcg(5);
    let mut packages = Vec::new();
    bom_from(&loaded.iter().collect::<Vec<_>>(), &mut rng, &mut packages);
    // Random versions of generated names too (most not affected), and unknown packages.
    for i in 0..2_000 {
        let eco = ECOS[i % ECOS.len()];
        packages.push(pkg(
            eco,
            &gen_name(eco, rng.next(80)),
            &gen_version(eco, &mut rng),
        ));
    }
    packages.push(pkg("crates.io", "no-such-crate", "1.0.0"));
    packages.push(pkg("npm", "left-pad", "not.a.version"));
    assert!(packages.len() > 5_000, "{}", packages.len());
    let started = std::time::Instant::now();

    let fast = match_packages(&db, &packages).await.unwrap();
    let fast_took = started.elapsed();
    let reference = match_packages_reference(&db, &packages).await.unwrap();
    eprintln!(
        "{} packages: index {fast_took:?}, reference {:?}",
        packages.len(),
        started.elapsed() - fast_took
    );
    assert!(fast.findings.len() > 1_000, "{}", fast.findings.len());
    assert!(!fast.not_evaluated.is_empty());
    assert!(fast.findings.iter().any(|f| !f.aliases.is_empty()));
    assert!(fast.findings.iter().any(|f| f.fixed.is_some()));
    if fast != reference {
        let n = fast.findings.len().min(reference.findings.len());
        let first = (0..n).find(|&i| fast.findings[i] != reference.findings[i]);
        panic!(
            "index and reference differ: {} vs {} findings, {} vs {} not evaluated; first differing finding: {:#?}",
            fast.findings.len(),
            reference.findings.len(),
            fast.not_evaluated.len(),
            reference.not_evaluated.len(),
            first.map(|i| (&fast.findings[i], &reference.findings[i]))
        );
    }
    db.close().await;
}

fn osv(id: &str, fixed: &str) -> String {
    format!(
        r#"{{"id":"{id}","modified":"2026-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"npm","name":"left-pad"}},"ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

async fn fixed_of(db: &VulnDb) -> Vec<Option<String>> {
    match_packages(db, &[pkg("npm", "left-pad", "1.0.0")])
        .await
        .unwrap()
        .findings
        .into_iter()
        .map(|f| f.fixed)
        .collect()
}

#[tokio::test]
async fn a_stale_foreign_or_corrupt_index_file_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = tmp.path().join("vulns.db");
    let index_path = index::path_for(&path);
    let db = VulnDb::open(&path).await.unwrap();
    std::fs::write(src.join("A.json"), osv("A", "1.2.0")).unwrap();
    db.import("src", import::load(&src).unwrap(), day(1))
        .await
        .unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.2.0".to_string())]);
    let old = std::fs::read(&index_path).unwrap();

    std::fs::write(src.join("A.json"), osv("A", "1.3.0")).unwrap();
    db.import("src", import::load(&src).unwrap(), day(2))
        .await
        .unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.3.0".to_string())]);

    // An index of an earlier state (as after a crash between an import and the index write).
    std::fs::write(&index_path, &old).unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.3.0".to_string())]);
    assert_ne!(std::fs::read(&index_path).unwrap(), old, "rebuilt");

    // Garbage, and a missing file.
    std::fs::write(&index_path, b"not an index").unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.3.0".to_string())]);
    std::fs::remove_file(&index_path).unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.3.0".to_string())]);

    // The index of another database with the same history: different database id.
    let other_path = tmp.path().join("other.db");
    let other = VulnDb::open(&other_path).await.unwrap();
    std::fs::write(src.join("A.json"), osv("A", "9.0.0")).unwrap();
    other
        .import("src", import::load(&src).unwrap(), day(1))
        .await
        .unwrap();
    other
        .import("src", import::load(&src).unwrap(), day(2))
        .await
        .unwrap();
    std::fs::copy(index::path_for(&other_path), &index_path).unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.3.0".to_string())]);
    assert_eq!(fixed_of(&other).await, [Some("9.0.0".to_string())]);
    other.close().await;
    db.close().await;
}

async fn sql(path: &Path, statements: &str) {
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
    sqlx::raw_sql(statements).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_format_1_database_is_upgraded_and_a_newer_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("A.json"), osv("A", "1.2.0")).unwrap();
    let path = tmp.path().join("vulns.db");
    let db = VulnDb::open(&path).await.unwrap();
    db.import("src", import::load(&src).unwrap(), day(1))
        .await
        .unwrap();
    db.close().await;
    // Made what format 1 wrote: no meta table and no index file, a package_index table, user
    // version 0.
    sql(
        &path,
        "DROP TABLE meta; \
         CREATE TABLE package_index (ecosystem TEXT NOT NULL, norm_name TEXT NOT NULL, \
         entries TEXT NOT NULL, PRIMARY KEY (ecosystem, norm_name)) WITHOUT ROWID; \
         PRAGMA user_version = 0;",
    )
    .await;
    std::fs::remove_file(index::path_for(&path)).unwrap();

    let db = VulnDb::open(&path).await.unwrap();
    assert_eq!(fixed_of(&db).await, [Some("1.2.0".to_string())]);
    assert!(index::path_for(&path).is_file());
    db.close().await;
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    let old_table: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'package_index'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!((version, old_table), (FORMAT_VERSION, 0));

    sql(&path, "PRAGMA user_version = 99;").await;
    let err = VulnDb::open(&path).await.unwrap_err();
    assert!(
        matches!(err, DbError::NewerFormat { found: 99, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("database format 99 is newer than this cutover reads (format 2)")
            && msg.contains("hint:"),
        "{msg}"
    );
}

#[tokio::test]
async fn importing_only_the_lockfiles_crates_finds_what_a_whole_import_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(
        fixture("lockfiles/cargo-v1/Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();
    let bom = cutover_bom::discover_and_parse(&project);
    let packages: Vec<PackageRef> = bom
        .components
        .iter()
        .filter_map(|c| cutover_vuln::bomscan::package_ref(&c.component))
        .collect();
    let rustsec = fixture("osv/rustsec");

    let whole = VulnDb::open(&tmp.path().join("whole.db")).await.unwrap();
    let all = import::load(&rustsec).unwrap();
    assert!(!all.partial);
    whole.import("rustsec", all, day(1)).await.unwrap();
    let expected = cutover_vuln::bomscan::scan(&whole, &bom).await.unwrap();

    let part = import::load_for(&rustsec, &packages).unwrap();
    assert!(part.partial);
    assert!(
        part.advisories.len() < 200,
        "only the lockfile's crates: {}",
        part.advisories.len()
    );
    let first = VulnDb::open(&tmp.path().join("first.db")).await.unwrap();
    let report = first.import("rustsec", part, day(1)).await.unwrap();
    let found = cutover_vuln::bomscan::scan(&first, &bom).await.unwrap();
    assert!(expected.findings.len() > 20);
    assert_eq!(found, expected);
    let status = first.status(day(1)).await.unwrap();
    assert_eq!(status.sources[0].kind, "rustsec (partial)");

    // A partial import over a whole one withdraws nothing it did not read.
    let before = whole.status(day(2)).await.unwrap().withdrawn;
    let again = whole
        .import(
            "rustsec",
            import::load_for(&rustsec, &packages).unwrap(),
            day(2),
        )
        .await
        .unwrap();
    assert_eq!(again.added + again.updated, 0);
    assert_eq!(whole.status(day(2)).await.unwrap().withdrawn, before);
    assert!(report.withdrawn <= 13);
    first.close().await;
    whole.close().await;
}

/// One index entry of `eco`/`name` encoded as an index file (stamp: db 1, generation 2).
pub(crate) fn encode_one(eco: &str, name: &str, versions: &[String]) -> Vec<u8> {
    let entry = index::IndexEntry {
        ecosystem: eco.to_string(),
        norm_name: name.to_string(),
        advisory_id: "ID-1".to_string(),
        position: 0,
        affected: cutover_vuln::osv::Affected {
            package: Some(cutover_vuln::osv::Package {
                ecosystem: eco.to_string(),
                name: name.to_string(),
                purl: None,
            }),
            severity: Vec::new(),
            ranges: Vec::new(),
            versions: versions.to_vec(),
        },
        details: std::sync::Arc::new(index::Details {
            summary: Some("s".into()),
            aliases: vec!["CVE-1".into()],
            score: Some(7.5),
            level: cutover_vuln::severity::Level::High,
            vector: None,
            informational: None,
        }),
    };
    index::encode(
        index::Stamp {
            db_id: 1,
            generation: 2,
        },
        vec![entry],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Index bytes are read back exactly, and arbitrary or cut bytes never panic the reader.
    #[test]
    fn index_blocks_round_trip_and_bad_bytes_never_panic(
        eco in "[a-zA-Z.]{1,10}",
        name in "\\PC{0,20}",
        versions in proptest::collection::vec("\\PC{0,12}", 0..5),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..400,
    ) {
        let bytes = encode_one(&eco, &name, &versions);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i");
        std::fs::write(&path, &bytes).unwrap();
        let file = IndexFile::open(&path).unwrap().unwrap();
        prop_assert_eq!(file.stamp, index::Stamp { db_id: 1, generation: 2 });
        let blocks: Vec<_> = file.lookup(&eco, &name).collect();
        prop_assert_eq!(blocks.len(), 1);
        let (buf, places) = file.read_blocks(&blocks).unwrap();
        let mut entries = Entries::default();
        let block = &buf[places[0].0..places[0].1];
        let r = entries.decode_block(block, &eco, &name).unwrap().unwrap();
        prop_assert_eq!(r, (0, 1));
        prop_assert_eq!(entries.entries[0].advisory_id, "ID-1");
        prop_assert_eq!(&entries.versions, &versions.iter().map(String::as_str).collect::<Vec<_>>());
        let d = index::decode_details(entries.entries[0].details).unwrap();
        prop_assert_eq!(d.aliases, vec!["CVE-1".to_string()]);
        prop_assert_eq!(d.score, Some(7.5));
        // Another key is not found; bad bytes are errors, never panics.
        prop_assert!(entries.decode_block(block, &eco, "another name").unwrap().is_none());
        let _ = Entries::default().decode_block(&junk, &eco, &name);
        let _ = index::decode_details(&junk);
        let cut = cut.min(block.len());
        let _ = Entries::default().decode_block(&block[..cut], &eco, &name);
        std::fs::write(&path, &bytes[..cut.min(bytes.len())]).unwrap();
        if let Ok(Some(f)) = IndexFile::open(&path) {
            let blocks: Vec<_> = f.lookup(&eco, &name).collect();
            let _ = f.read_blocks(&blocks);
        }
    }
}
