//! `cargo xtask bench vulns`: in one run, import of the advisory fixtures (PyPA, Go, RustSec) and
//! of a generated 200,000-advisory OSV `all.zip`; matching of a 5,000-component BOM against it;
//! and, on a Cargo.lock with known-vulnerable crates, cutover against
//! `cargo audit --no-fetch --db <advisory-db as a git repository>`: the advisory ids found by each
//! and the ratio of times. Like for like is warm: `--no-fetch` reads an advisory-db already on
//! disk, as cutover reads its database already imported. Cold (a new machine: no database yet;
//! the first run imports the lockfile's crates as `cutover vulns --source` does, or the whole
//! advisory-db) is printed too.
//!
//! Built in debug mode it re-runs itself in release mode. Sizes can be lowered for a quick look:
//! `CUTOVER_BENCH_VULNS_ADVISORIES`, `CUTOVER_BENCH_VULNS_COMPONENTS`.

use crate::bench::{rerun_in_release, size};
use anyhow::{Context, Result, bail};
use chrono::Utc;
use cutover_vuln::db::VulnDb;
use cutover_vuln::import;
use cutover_vuln::matching::{PackageRef, PhaseTimes, match_packages, match_packages_timed};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ADVISORIES: usize = 200_000;
const COMPONENTS: usize = 5_000;
/// Timed repetitions (the median is reported).
const RUNS: usize = 15;
/// Timed repetitions of the cold runs and of cargo-audit.
const COLD_RUNS: usize = 7;
const ECOSYSTEMS: [&str; 8] = [
    "npm",
    "PyPI",
    "Maven",
    "Go",
    "crates.io",
    "RubyGems",
    "NuGet",
    "Packagist",
];
/// Package names per ecosystem that have advisories; BOM names are drawn from twice as many.
const NAMES_PER_ECOSYSTEM: usize = 5_000;

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time of this process so far (user + system, all threads; SQLite works on its own threads)
/// from /proc/self/stat, in clock ticks of 10 ms: on a shared machine the wall time mostly says
/// how long the other processes kept the CPU.
fn cpu_time() -> Option<Duration> {
    cpu_ticks(11)
}

/// CPU time of the children waited for so far (cargo-audit runs), as [`cpu_time`].
fn children_cpu_time() -> Option<Duration> {
    cpu_ticks(13)
}

fn cpu_ticks(first: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks =
        fields.get(first)?.parse::<u64>().ok()? + fields.get(first + 1)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Median wall time and mean CPU time of `runs` runs of `f`, CPU read by `cpu`.
async fn timed<F, Fut>(
    runs: usize,
    cpu: fn() -> Option<Duration>,
    mut f: F,
) -> Result<(Duration, Option<Duration>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut times = Vec::new();
    let before = cpu();
    for _ in 0..runs {
        let t = Instant::now();
        f().await?;
        times.push(t.elapsed());
    }
    let per_run = match (before, cpu()) {
        (Some(a), Some(b)) => Some((b - a) / u32::try_from(runs).expect("few runs")),
        _ => None,
    };
    Ok((median(times), per_run))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A deterministic generator (no seed from the clock: every run measures the same data).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % n as u64).expect("fits")
    }
}

fn package_name(eco: &str, n: usize) -> String {
    match eco {
        "npm" if n.is_multiple_of(3) => format!("@scope{}/pkg-{n}", n % 17),
        "Maven" => format!("org.example{}:artifact-{n}", n % 13),
        "Go" => format!("github.com/example{}/module-{n}", n % 11),
        "Packagist" => format!("vendor{}/package-{n}", n % 7),
        _ => format!("pkg-{n}"),
    }
}

/// Writes `count` OSV advisories as an `all.zip` export.
fn generate_zip(path: &Path, count: usize) -> Result<()> {
    let mut w = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut rng = Lcg(42);
    for i in 0..count {
        let eco = ECOSYSTEMS[i % ECOSYSTEMS.len()];
        let name = package_name(eco, rng.next(NAMES_PER_ECOSYSTEM));
        let minor = rng.next(10);
        let fix = 1 + rng.next(9);
        let severity = if i.is_multiple_of(2) {
            r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:L/A:N"}],"#
        } else {
            ""
        };
        let adv = format!(
            r#"{{"schema_version":"1.7.0","id":"GEN-{i}","modified":"2026-01-01T00:00:00Z","aliases":["CVE-2099-{i}"],"summary":"generated advisory {i}",{severity}"affected":[{{"package":{{"ecosystem":"{eco}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"1.{minor}.0"}},{{"fixed":"1.{minor}.{fix}"}}]}}],"versions":["1.{minor}.0"]}}]}}"#
        );
        w.start_file(format!("GEN-{i}.json"), opts)?;
        w.write_all(adv.as_bytes())?;
    }
    w.finish()?;
    Ok(())
}

fn bom(count: usize) -> Vec<PackageRef> {
    let mut rng = Lcg(7);
    (0..count)
        .map(|i| {
            let eco = ECOSYSTEMS[i % ECOSYSTEMS.len()];
            PackageRef {
                ecosystem: eco.into(),
                name: package_name(eco, rng.next(2 * NAMES_PER_ECOSYSTEM)),
                version: format!("1.{}.{}", rng.next(10), rng.next(10)),
            }
        })
        .collect()
}

async fn timed_import(db: &VulnDb, path: &Path, label: &str) -> Result<Duration> {
    let t = Instant::now();
    let loaded = import::load(path)?;
    let report = db
        .import(&path.display().to_string(), loaded, Utc::now())
        .await?;
    let took = t.elapsed();
    println!(
        "  import {label:<28} {:>7} advisories, {:>3} skipped, {:>6} withdrawn  {:>10}",
        report.read,
        report.skipped.len(),
        report.withdrawn,
        ms(took)
    );
    Ok(took)
}

async fn bench() -> Result<()> {
    let advisories = size("CUTOVER_BENCH_VULNS_ADVISORIES", ADVISORIES);
    let components = size("CUTOVER_BENCH_VULNS_COMPONENTS", COMPONENTS);
    let fixtures = crate::workspace_root().join("crates/cutover-vuln/tests/fixtures");
    let tmp = tempfile::tempdir()?;

    println!("== import (fresh database)");
    let db = VulnDb::open(&tmp.path().join("vulns.db")).await?;
    let mut total = Duration::ZERO;
    for (dir, label) in [
        ("osv/pypa", "PyPA (YAML)"),
        ("osv/go", "Go vulndb (JSON)"),
        ("osv/rustsec", "RustSec (Markdown+TOML)"),
    ] {
        total += timed_import(&db, &fixtures.join(dir), label).await?;
    }
    let zip_path = tmp.path().join("all.zip");
    let t = Instant::now();
    generate_zip(&zip_path, advisories)?;
    println!(
        "  (generated {advisories} advisories as all.zip in {})",
        ms(t.elapsed())
    );
    total += timed_import(&db, &zip_path, "generated all.zip").await?;
    println!("  total import time {}", ms(total));
    let status = db.status(Utc::now()).await?;
    println!(
        "  database: {} live advisories, {} withdrawn, per ecosystem {:?}",
        status.advisories, status.withdrawn, status.per_ecosystem
    );

    db.close().await;
    println!("== match a {components}-component BOM (database imported)");
    // The machine is shared: its load says how much the times below can be trusted.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  load average: {}", load.trim());
    }
    let packages = bom(components);
    // As a CLI run does it: open the database, match once.
    let t = Instant::now();
    let db = VulnDb::open(&tmp.path().join("vulns.db")).await?;
    let open = t.elapsed();
    let t = Instant::now();
    let (first, first_phases) = match_packages_timed(&db, &packages).await?;
    println!(
        "  first match after opening: open {}, match {}",
        ms(open),
        ms(t.elapsed())
    );
    let mut times = Vec::new();
    let mut phases = PhaseTimes::default();
    let cpu_before = cpu_time();
    for _ in 0..RUNS {
        let t = Instant::now();
        let (r, p) = match_packages_timed(&db, &packages).await?;
        times.push(t.elapsed());
        phases.add(&p);
        anyhow::ensure!(r == first, "match results differ between runs");
    }
    let runs = u32::try_from(RUNS).expect("few runs");
    if let (Some(a), Some(b)) = (cpu_before, cpu_time()) {
        println!(
            "  CPU time per match (all threads, mean of {RUNS} runs): {}",
            ms((b - a) / runs)
        );
    }
    println!("  phases (first match | mean of {RUNS} runs):");
    for ((name, once), (_, total)) in first_phases.phases().iter().zip(phases.phases()) {
        println!("    {name:<16} {:>9} | {:>9}", ms(*once), ms(total / runs));
    }
    // The public entry point, to show the phase timing costs nothing.
    let t = Instant::now();
    anyhow::ensure!(
        match_packages(&db, &packages).await? == first,
        "match results differ between entry points"
    );
    println!("  match_packages once more: {}", ms(t.elapsed()));
    let affected: BTreeSet<usize> = first
        .findings
        .iter()
        .flat_map(|f| f.packages.iter().copied())
        .collect();
    println!(
        "  {} findings on {} of {components} components; median {} (min {}) over {RUNS} runs; target < 50 ms",
        first.findings.len(),
        affected.len(),
        ms(median(times.clone())),
        ms(*times.iter().min().expect("runs > 0"))
    );
    db.close().await;

    println!("== Cargo.lock with known-vulnerable crates: cutover vs cargo audit");
    compare_with_cargo_audit(&fixtures, tmp.path()).await
}

/// Advisory ids cargo-audit reports (vulnerabilities and warnings) in its JSON output.
fn cargo_audit_ids(json: &serde_json::Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut collect = |list: &serde_json::Value| {
        for item in list.as_array().into_iter().flatten() {
            if let Some(id) = item.pointer("/advisory/id").and_then(|v| v.as_str()) {
                ids.insert(id.to_string());
            }
        }
    };
    collect(&json["vulnerabilities"]["list"]);
    if let Some(warnings) = json["warnings"].as_object() {
        for list in warnings.values() {
            collect(list);
        }
    }
    ids
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-08-21T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-08-21T00:00:00Z")
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// How a cold run (no database file, no match index) gets its database.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cold {
    /// The whole advisory-db, into a new file ([`VulnDb::create_from`]).
    Whole,
    /// Only the lockfile's crates (`import::load_for`) into a new file: what
    /// `cutover vulns --source` does on a new machine.
    FirstRun,
    /// As `FirstRun`, but the way before `create_from`: `VulnDb::open` (WAL, synced) + `import`.
    FirstRunOpenImport,
}

/// A first run on a new machine: the database made as `how` says, then the project scanned.
async fn cutover_cold(
    rustsec: &Path,
    project: &Path,
    dbfile: &Path,
    how: Cold,
) -> Result<BTreeSet<String>> {
    for suffix in ["", "-wal", "-shm", "-index"] {
        let mut p = dbfile.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let bom = cutover_bom::discover_and_parse(project);
    let loaded = if how == Cold::Whole {
        import::load(rustsec)?
    } else {
        let packages: Vec<_> = bom
            .components
            .iter()
            .filter_map(|c| cutover_vuln::bomscan::package_ref(&c.component))
            .collect();
        import::load_for(rustsec, &packages)?
    };
    let db = if how == Cold::FirstRunOpenImport {
        let db = VulnDb::open(dbfile).await?;
        db.import("rustsec", loaded, Utc::now()).await?;
        db
    } else {
        VulnDb::create_from(dbfile, "rustsec", loaded, Utc::now())
            .await?
            .0
    };
    let ids = scan_ids(&db, &bom).await?;
    db.close().await;
    Ok(ids)
}

async fn cutover_scan(db: &VulnDb, project: &Path) -> Result<BTreeSet<String>> {
    scan_ids(db, &cutover_bom::discover_and_parse(project)).await
}

async fn scan_ids(db: &VulnDb, bom: &cutover_bom::Bom) -> Result<BTreeSet<String>> {
    let report = cutover_vuln::bomscan::scan(db, bom).await?;
    // Merged findings keep the other RustSec ids among their aliases.
    Ok(report
        .findings
        .iter()
        .flat_map(|f| std::iter::once(&f.finding.id).chain(f.finding.aliases.iter()))
        .filter(|id| id.starts_with("RUSTSEC-"))
        .cloned()
        .collect())
}

async fn compare_with_cargo_audit(fixtures: &Path, tmp: &Path) -> Result<()> {
    let project: PathBuf = tmp.join("project");
    std::fs::create_dir_all(&project)?;
    std::fs::copy(
        fixtures.join("lockfiles/cargo-v1/Cargo.lock"),
        project.join("Cargo.lock"),
    )?;
    let rustsec = fixtures.join("osv/rustsec");

    // cutover, cold: a new machine, no database yet.
    let dbfile = tmp.join("cold.db");
    let ours = cutover_cold(&rustsec, &project, &dbfile, Cold::Whole).await?;
    for how in [Cold::FirstRun, Cold::FirstRunOpenImport] {
        anyhow::ensure!(
            cutover_cold(&rustsec, &project, &dbfile, how).await? == ours,
            "importing only the lockfile's crates finds other advisories than importing all"
        );
    }
    let mut cold = Vec::new();
    for how in [Cold::FirstRun, Cold::Whole, Cold::FirstRunOpenImport] {
        let (rustsec, project, dbfile) = (&rustsec, &project, &dbfile);
        cold.push(
            timed(COLD_RUNS, cpu_time, || async move {
                cutover_cold(rustsec, project, dbfile, how).await.map(drop)
            })
            .await?,
        );
    }
    // cutover, warm: the database is already imported (every later run).
    let db = VulnDb::open(&dbfile).await?;
    db.import("rustsec", import::load(&rustsec)?, Utc::now())
        .await?;
    let warm = {
        let (db, project, ours) = (&db, &project, &ours);
        timed(RUNS, cpu_time, || async move {
            let ids = cutover_scan(db, project).await?;
            anyhow::ensure!(ids == *ours, "cutover results differ between runs");
            Ok(())
        })
        .await?
    };
    db.close().await;
    let show = |(wall, cpu): (Duration, Option<Duration>)| match cpu {
        Some(c) => format!("{} (CPU {})", ms(wall), ms(c)),
        None => ms(wall),
    };
    println!("  cutover: {} advisories", ours.len());
    println!(
        "    warm: scan, database imported            {}",
        show(warm)
    );
    println!(
        "    cold: first run, import the lockfile's crates + scan   {}",
        show(cold[0])
    );
    println!(
        "    cold: import the whole advisory-db + scan              {}",
        show(cold[1])
    );
    println!(
        "    cold: first run the old way (open WAL db + import)     {}",
        show(cold[2])
    );

    let has_audit = Command::new("cargo")
        .args(["audit", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_audit {
        println!(
            "  cargo-audit is not installed (`cargo install cargo-audit --locked`): no comparison"
        );
        return Ok(());
    }
    let repo = tmp.join("advisory-db");
    copy_dir(&rustsec, &repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "advisory-db fixture"])?;
    let run_audit = |extra: &'static [&'static str]| {
        let (repo, project) = (repo.clone(), project.clone());
        move || -> Result<serde_json::Value> {
            let out = Command::new("cargo")
                .args(["audit", "--no-fetch", "--stale", "--json"])
                .args(extra)
                .arg("--db")
                .arg(&repo)
                .arg("--file")
                .arg(project.join("Cargo.lock"))
                .output()
                .context("running cargo audit")?;
            serde_json::from_slice(&out.stdout).with_context(|| {
                format!(
                    "cargo audit output is not JSON: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        }
    };
    let mut audits = Vec::new();
    for extra in [&[][..], &["--no-yanked"][..]] {
        let run = run_audit(extra);
        let theirs = cargo_audit_ids(&run()?);
        let t = timed(COLD_RUNS, children_cpu_time, || {
            let r = run().map(drop);
            async move { r }
        })
        .await?;
        audits.push((extra, theirs, t));
    }
    for (extra, theirs, t) in &audits {
        let cmd = format!(
            "cargo audit --no-fetch{}",
            extra.iter().map(|e| format!(" {e}")).collect::<String>()
        );
        println!("  {cmd}: {} advisories; {}", theirs.len(), show(*t));
        let only_ours: Vec<_> = ours.difference(theirs).collect();
        let only_theirs: Vec<_> = theirs.difference(&ours).collect();
        if only_ours.is_empty() && only_theirs.is_empty() {
            println!("    advisory ids: identical ({} ids)", ours.len());
        } else {
            println!(
                "    advisory ids DIFFER: only cutover {only_ours:?}; only cargo-audit {only_theirs:?}"
            );
        }
    }
    let ratio = |audit: Duration, ours: Duration| audit.as_secs_f64() / ours.as_secs_f64();
    let cpu_ratio = |audit: Option<Duration>, ours: Option<Duration>| match (audit, ours) {
        (Some(a), Some(o)) if !o.is_zero() => format!("{:.1}x", a.as_secs_f64() / o.as_secs_f64()),
        _ => "n/a".to_string(),
    };
    println!("  ratios, cargo-audit time / cutover time (wall; CPU in brackets); target >= 5x:");
    for (extra, _, (audit, audit_cpu)) in &audits {
        let label = if extra.is_empty() {
            "cargo audit --no-fetch"
        } else {
            "cargo audit --no-fetch --no-yanked (no crates.io index look-ups)"
        };
        println!("    against {label}:");
        for (what, (wall, cpu)) in [
            ("LIKE FOR LIKE, warm (both databases already on disk)", warm),
            (
                "cold, first run (import the lockfile's crates + scan)",
                cold[0],
            ),
            ("cold, import the whole advisory-db + scan", cold[1]),
            (
                "cold, first run the old way (open WAL db + import)",
                cold[2],
            ),
        ] {
            let r = ratio(*audit, wall);
            println!(
                "      {what:<56} {r:>6.1}x ({}) {}",
                cpu_ratio(*audit_cpu, cpu),
                if r >= 5.0 { "met" } else { "NOT met" }
            );
        }
    }
    Ok(())
}
