//! `cargo xtask bench plan`: the changelog of a large synthetic history, against git-cliff and the
//! `git log` floor, in the same run; and `cutover plan` over the last 500 commits.
//!
//! The repository (100,000 commits by default, a realistic mix of conventional and other messages,
//! an annotated release tag every 500 commits, the last 500 commits unreleased) is generated with
//! `git fast-import` in a temp dir with pinned dates, so every run measures the same history.
//! Built in debug mode it re-runs itself in release mode (timings of a debug build mean nothing).
//! `CUTOVER_BENCH_PLAN_COMMITS` lowers the size for a quick look; `CUTOVER_BENCH_PLAN_REPO=DIR`
//! keeps the generated repository in DIR and reuses it on the next run. git-cliff is measured when it is
//! on PATH (`cargo install git-cliff`, or the same release binary from PyPI: `pip install git-cliff`);
//! otherwise its column is skipped with a note.

use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::rerun_in_release;
use anyhow::{Context, Result, bail, ensure};
use cutover_release::{ChangelogRange, Options};

const COMMITS: usize = 100_000;
const TAG_EVERY: usize = 500;
/// Runs per measurement for the fast tools; the best run counts (the others absorb cache warm-up).
const RUNS: usize = 3;

pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_in_release();
    }
    let wanted = std::env::var("CUTOVER_BENCH_PLAN_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(COMMITS);
    ensure!(wanted > TAG_EVERY, "need more than {TAG_EVERY} commits");
    let tmp = tempfile::tempdir()?;
    // CUTOVER_BENCH_PLAN_REPO=DIR keeps the generated repository there and reuses it next time.
    let repo = match std::env::var_os("CUTOVER_BENCH_PLAN_REPO") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => tmp.path().join("repo"),
    };
    if repo.join(".git").exists() {
        println!("reusing the synthetic repository in {}", repo.display());
    } else {
        let started = Instant::now();
        let tags = generate(&repo, wanted)?;
        println!(
            "synthetic repository: {wanted} commits, {tags} release tags, generated with git fast-import in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let commits: usize = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-list", "--count", "HEAD"])
            .output()
            .context("running git rev-list")?
            .stdout,
    )?
    .trim()
    .parse()
    .context("counting commits")?;
    let out = tmp.path().join("CHANGELOG.md");
    let ours = best_of(RUNS, || {
        let changelog =
            cutover_release::changelog(&repo, &Options::default(), &ChangelogRange::All)?;
        std::fs::write(&out, &changelog.text)?;
        ensure!(
            changelog.commits == commits,
            "read {} of {commits} commits",
            changelog.commits
        );
        Ok(())
    })?;
    let sections = std::fs::read_to_string(&out)?.matches("\n## ").count();

    let floor = best_of(RUNS, || {
        let output = Command::new("git")
            .args(["-C"])
            .arg(&repo)
            .args(["log", "--format=%H%x00%B"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stderr(Stdio::inherit())
            .output()
            .context("running git log")?;
        ensure!(output.status.success(), "git log failed");
        ensure!(!output.stdout.is_empty(), "git log printed nothing");
        Ok(())
    })?;

    let cliff = match Command::new("git-cliff").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let version = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let cliff_out = tmp.path().join("CLIFF.md");
            // One run: at this size it takes tens of seconds, far above any warm-up effect.
            let elapsed = best_of(1, || {
                let status = Command::new("git-cliff")
                    .arg("--repository")
                    .arg(&repo)
                    .arg("--output")
                    .arg(&cliff_out)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("running git-cliff")?;
                ensure!(status.success(), "git-cliff failed: {status}");
                Ok(())
            })?;
            let cliff_sections = std::fs::read_to_string(&cliff_out)?
                .matches("\n## ")
                .count()
                + 1;
            Some((version, elapsed, cliff_sections))
        }
        _ => None,
    };

    let planned = best_of(RUNS, || {
        let planned = cutover_release::plan(&repo, &Options::default())?;
        ensure!(
            planned.plan.changes.len() <= TAG_EVERY,
            "plan read {} changes",
            planned.plan.changes.len()
        );
        Ok(())
    })?;

    println!();
    println!("changelog of every release ({sections} sections):");
    println!("  cutover changelog --all      {}", ours.show());
    println!(
        "  git log --format=%H%x00%B    {}   floor: reads every message, renders nothing",
        floor.show()
    );
    match &cliff {
        Some((version, elapsed, cliff_sections)) => println!(
            "  {version:<28} {}   default configuration, {cliff_sections} sections",
            elapsed.show()
        ),
        None => println!(
            "  git-cliff                    skipped: not installed (cargo install git-cliff)"
        ),
    }
    println!();
    println!(
        "  cutover / git log floor   = {:.2}x wall{}   (target: within 2x)",
        ours.secs() / floor.secs(),
        cpu_ratio(ours, floor)
    );
    if let Some((_, elapsed, _)) = &cliff {
        println!(
            "  git-cliff / cutover       = {:.1}x wall{}   (cutover is that many times faster)",
            elapsed.secs() / ours.secs(),
            cpu_ratio(*elapsed, ours)
        );
    }
    println!();
    println!(
        "cutover plan over the last {TAG_EVERY} commits: {:.1} ms (target: under 100 ms)",
        planned.secs() * 1000.0
    );
    Ok(())
}

fn cpu_ratio(a: Timing, b: Timing) -> String {
    match (a.cpu, b.cpu) {
        (Some(a), Some(b)) if !b.is_zero() => {
            format!(", {:.2}x cpu", a.as_secs_f64() / b.as_secs_f64())
        }
        _ => String::new(),
    }
}

/// Best wall-clock time of `runs` runs, and the CPU time (user + system, this process and the
/// children it waited for) of that best run. On a shared machine the wall clock includes waiting
/// for a core; CPU time is what the work itself costs.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    let mut best = Timing {
        wall: Duration::MAX,
        cpu: None,
    };
    for _ in 0..runs {
        let cpu_before = cpu_time();
        let started = Instant::now();
        f()?;
        let wall = started.elapsed();
        if wall < best.wall {
            best = Timing {
                wall,
                cpu: cpu_before.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a)),
            };
        }
    }
    Ok(best)
}

#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

impl Timing {
    fn secs(self) -> f64 {
        self.wall.as_secs_f64()
    }

    fn show(self) -> String {
        match self.cpu {
            Some(cpu) => format!(
                "{:>9.3} s  (cpu {:>7.3} s)",
                self.wall.as_secs_f64(),
                cpu.as_secs_f64()
            ),
            None => format!("{:>9.3} s", self.wall.as_secs_f64()),
        }
    }
}

/// utime + stime + cutime + cstime of this process from /proc (Linux; clock ticks of 1/100 s).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime is field 14 (index 11 here).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Some(Duration::from_millis(ticks * 10))
}

/// A deterministic generator (SplitMix64), so every run builds the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SCOPES: &[&str] = &["api", "cli", "core", "db", "ui", "auth", "deps", "build"];
const VERBS: &[&str] = &[
    "add", "remove", "handle", "support", "refactor", "speed up", "document", "validate",
];
const NOUNS: &[&str] = &[
    "user sessions",
    "the config loader",
    "retry logic",
    "pagination",
    "error messages",
    "the cache",
    "TLS settings",
    "the importer",
    "rate limits",
    "log rotation",
];
const AUTHORS: &[&str] = &[
    "Ada Lovelace <ada@example.com>",
    "Grace Hopper <grace@example.com>",
    "Alan Turing <alan@example.com>",
    "Edsger Dijkstra <edsger@example.com>",
    "Barbara Liskov <barbara@example.com>",
    "Ken Thompson <ken@example.com>",
];

/// A commit message in the proportions of a real project that mostly, but not always, follows
/// Conventional Commits.
fn message(rng: &mut Rng, i: usize) -> String {
    let scope = rng.pick(SCOPES);
    let what = format!("{} {}", rng.pick(VERBS), rng.pick(NOUNS));
    let roll = rng.next() % 100;
    let issue = rng.next() % 5000 + 1;
    match roll {
        0..=24 => format!("feat({scope}): {what}\n\nCloses #{issue}\n"),
        25..=49 => format!(
            "fix({scope}): {what} (#{issue})\n\nThe previous behaviour was wrong when the\ninput was empty; this handles it.\n"
        ),
        50..=54 => format!("perf: {what}\n"),
        55..=64 => format!(
            "{}: {what}\n",
            rng.pick(&["docs", "chore", "refactor", "test", "ci", "style"])
        ),
        65..=66 => format!(
            "feat({scope})!: {what}\n\nBREAKING CHANGE: the old behaviour is gone.\nMigrate by updating your configuration.\n"
        ),
        67..=68 => format!(
            "Revert \"fix({scope}): {what}\"\n\nThis reverts commit {:040x}.\n",
            i as u64 * 7919
        ),
        69..=72 => format!("feat: {what}\n\nCo-authored-by: {}\n", rng.pick(AUTHORS)),
        73..=84 => format!(
            "Update {}\n",
            rng.pick(&[
                "README.md",
                "CHANGELOG",
                "dependencies",
                "docs",
                "CI config"
            ])
        ),
        85..=92 => format!("Merge branch 'topic-{issue}'\n"),
        _ => format!(
            "{what}\n\nSome longer explanation of why this change was\nneeded, over a couple of lines.\n"
        ),
    }
}

/// Streams the history into `git fast-import`; returns the number of tags.
fn generate(repo: &Path, commits: usize) -> Result<usize> {
    std::fs::create_dir_all(repo)?;
    let git = |args: &[&str]| -> Result<()> {
        let status = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "git {args:?} failed");
        Ok(())
    };
    git(&["init", "--quiet", "--initial-branch=main"])?;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fast-import", "--quiet"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .context("starting git fast-import")?;
    let mut tags = 0;
    {
        let stdin = child.stdin.take().context("fast-import's stdin")?;
        let mut w = BufWriter::with_capacity(1 << 20, stdin);
        let mut rng = Rng(42);
        let start: u64 = 1_600_000_000;
        for i in 1..=commits {
            let time = start + i as u64 * 600;
            let author = rng.pick(AUTHORS);
            let msg = message(&mut rng, i);
            let content = format!("revision {i}\n");
            writeln!(w, "commit refs/heads/main")?;
            writeln!(w, "mark :{i}")?;
            writeln!(w, "author {author} {time} +0000")?;
            writeln!(w, "committer {author} {time} +0000")?;
            writeln!(w, "data {}", msg.len())?;
            w.write_all(msg.as_bytes())?;
            writeln!(w, "M 100644 inline src/module{}.rs", i % 97)?;
            writeln!(w, "data {}", content.len())?;
            w.write_all(content.as_bytes())?;
            writeln!(w)?;
            if i % TAG_EVERY == 0 && i + TAG_EVERY <= commits {
                let k = i / TAG_EVERY;
                let version = format!("{}.{}.{}", k / 50 + 1, (k % 50) / 10, k % 10);
                let note = format!("release {version}\n");
                writeln!(w, "tag v{version}")?;
                writeln!(w, "from :{i}")?;
                writeln!(w, "tagger {author} {} +0000", time + 1)?;
                writeln!(w, "data {}", note.len())?;
                w.write_all(note.as_bytes())?;
                writeln!(w)?;
                tags += 1;
            }
        }
        w.flush()?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("git fast-import failed: {status}");
    }
    Ok(tags)
}
