//! The live stage list of `cutover ship` on a terminal: each stage pending, running (spinner,
//! elapsed time, a bar for checks done and rollout steps), done, failed or skipped.
//!
//! [`StageList`] is the state model (pure, rendered to text for the finished lines and the tests);
//! [`LiveStages`] draws it with indicatif, one progress bar per stage.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::{DIM, GREEN, RED, Ui, YELLOW};

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

impl StageState {
    fn finished(self) -> bool {
        matches!(
            self,
            StageState::Done | StageState::Failed | StageState::Skipped
        )
    }
}

/// One stage of the pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    /// As recorded in `ship.stage` events: `release`, `deploy:production`, `gates:production`.
    pub key: String,
    /// As shown: `release`, `deploy production`.
    pub label: String,
    pub state: StageState,
    started: Option<Instant>,
    elapsed: Option<Duration>,
    pub detail: String,
    /// `n` of `m` done (checks finished, rollout steps reached).
    pub steps: Option<(u64, u64)>,
}

/// The stages of one run, in order.
#[derive(Debug, Clone, Default)]
pub struct StageList {
    stages: Vec<Stage>,
}

/// The label of a stage key: `deploy:production` → `deploy production`.
fn label_of(key: &str) -> String {
    key.replace(':', " ")
}

impl StageList {
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self {
            stages: keys
                .into_iter()
                .map(|k| Stage {
                    key: k.as_ref().to_owned(),
                    label: label_of(k.as_ref()),
                    state: StageState::Pending,
                    started: None,
                    elapsed: None,
                    detail: String::new(),
                    steps: None,
                })
                .collect(),
        }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn index(&self, key: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.key == key)
    }

    fn get(&mut self, key: &str) -> Option<&mut Stage> {
        self.stages.iter_mut().find(|s| s.key == key)
    }

    pub fn start(&mut self, key: &str, now: Instant) {
        if let Some(s) = self.get(key)
            && s.state == StageState::Pending
        {
            s.state = StageState::Running;
            s.started = Some(now);
        }
    }

    pub fn set_detail(&mut self, key: &str, detail: impl Into<String>) {
        if let Some(s) = self.get(key) {
            s.detail = detail.into();
        }
    }

    pub fn set_steps(&mut self, key: &str, done: u64, of: u64) {
        if let Some(s) = self.get(key) {
            s.steps = Some((done.min(of), of));
        }
    }

    /// Ends a stage (starting it first when it was pending: a stage that took no time).
    pub fn finish(
        &mut self,
        key: &str,
        state: StageState,
        detail: impl Into<String>,
        now: Instant,
    ) {
        self.start(key, now);
        if let Some(s) = self.get(key)
            && !s.state.finished()
        {
            s.state = state;
            s.detail = detail.into();
            s.elapsed = Some(now.saturating_duration_since(s.started.unwrap_or(now)));
        }
    }

    /// The stage that runs now, if any.
    pub fn running(&self) -> Option<&Stage> {
        self.stages.iter().find(|s| s.state == StageState::Running)
    }

    /// One stage as a line (no colour): mark, label, elapsed, steps, detail.
    pub fn line(&self, i: usize, now: Instant) -> String {
        let Some(s) = self.stages.get(i) else {
            return String::new();
        };
        let mark = match s.state {
            StageState::Pending => "·",
            StageState::Running => "▸",
            StageState::Done => "✓",
            StageState::Failed => "✗",
            StageState::Skipped => "-",
        };
        let elapsed = match (s.state, s.elapsed, s.started) {
            (StageState::Pending, ..) => String::new(),
            (_, Some(d), _) => format_elapsed(d),
            (_, None, Some(t)) => format_elapsed(now.saturating_duration_since(t)),
            (_, None, None) => String::new(),
        };
        let steps = s
            .steps
            .filter(|_| s.state == StageState::Running)
            .map(|(n, m)| format!("[{n}/{m}] "))
            .unwrap_or_default();
        let detail = if s.state == StageState::Pending && s.detail.is_empty() {
            "pending"
        } else {
            s.detail.as_str()
        };
        format!("{mark} {:<22} {elapsed:>6}  {steps}{detail}", s.label)
            .trim_end()
            .to_owned()
    }

    /// Every stage, one line each.
    #[cfg(test)]
    pub fn render(&self, now: Instant) -> String {
        (0..self.stages.len())
            .map(|i| self.line(i, now) + "\n")
            .collect()
    }
}

fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A [`StageList`] drawn on the terminal with indicatif (one bar per stage).
pub struct LiveStages {
    list: RefCell<StageList>,
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    color: bool,
}

impl std::fmt::Debug for LiveStages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStages")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

const TICK: Duration = Duration::from_millis(100);

impl LiveStages {
    /// Draws on stderr (at most 10 times a second).
    pub fn stderr<S: AsRef<str>>(keys: impl IntoIterator<Item = S>, color: bool) -> Self {
        Self::with_target(keys, ProgressDrawTarget::stderr_with_hz(10), color)
    }

    /// Draws on `target` (`ProgressDrawTarget::hidden()` in tests).
    pub fn with_target<S: AsRef<str>>(
        keys: impl IntoIterator<Item = S>,
        target: ProgressDrawTarget,
        color: bool,
    ) -> Self {
        let list = StageList::new(keys);
        let multi = MultiProgress::with_draw_target(target);
        let bars = (0..list.stages().len())
            .map(|_| multi.add(ProgressBar::new(0)))
            .collect();
        let me = Self {
            list: RefCell::new(list),
            multi,
            bars,
            color,
        };
        for i in 0..me.bars.len() {
            me.sync(i);
        }
        me
    }

    /// A copy of the state model.
    #[cfg(test)]
    pub fn snapshot(&self) -> StageList {
        self.list.borrow().clone()
    }

    /// The bar of a stage (the checks poller moves it from another task).
    pub fn bar(&self, key: &str) -> Option<ProgressBar> {
        let i = self.list.borrow().index(key)?;
        self.bars.get(i).cloned()
    }

    pub fn start(&self, key: &str) {
        self.start_at(key, Instant::now());
    }

    /// Starts a stage that began at `at` (before the list was drawn).
    pub fn start_at(&self, key: &str, at: Instant) {
        self.list.borrow_mut().start(key, at);
        self.sync_key(key);
        if let Some(bar) = self.bar(key) {
            bar.reset_elapsed();
            bar.enable_steady_tick(TICK);
        }
    }

    pub fn detail(&self, key: &str, detail: impl Into<String>) {
        self.list.borrow_mut().set_detail(key, detail);
        self.sync_key(key);
    }

    pub fn steps(&self, key: &str, done: u64, of: u64) {
        self.list.borrow_mut().set_steps(key, done, of);
        self.sync_key(key);
    }

    pub fn finish(&self, key: &str, state: StageState, detail: impl Into<String>) {
        self.list
            .borrow_mut()
            .finish(key, state, detail, Instant::now());
        self.sync_key(key);
    }

    /// The key of the stage that runs now.
    pub fn running(&self) -> Option<String> {
        self.list.borrow().running().map(|s| s.key.clone())
    }

    /// Prints `text` (one or more lines) above the stage list.
    pub fn println(&self, text: &str) {
        let text = if self.color {
            text.to_owned()
        } else {
            anstream::adapter::strip_str(text).to_string()
        };
        for line in text.lines() {
            let _ = self.multi.println(line);
        }
    }

    /// Runs `f` with the stage list hidden (for a step whose child processes write to the
    /// terminal directly, e.g. the build).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            Ui::paint(style, text)
        } else {
            text.to_owned()
        }
    }

    fn sync_key(&self, key: &str) {
        let i = self.list.borrow().index(key);
        if let Some(i) = i {
            self.sync(i);
        }
    }

    /// Makes bar `i` show stage `i`.
    fn sync(&self, i: usize) {
        let list = self.list.borrow();
        let (Some(stage), Some(bar)) = (list.stages().get(i), self.bars.get(i)) else {
            return;
        };
        let label = format!("{:<22}", stage.label);
        match stage.state {
            StageState::Pending => {
                bar.set_style(plain_style("  {prefix} {msg}"));
                bar.set_prefix(label);
                bar.set_message(self.paint(DIM, "pending"));
            }
            StageState::Running => {
                let template = if stage.steps.is_some() {
                    "{spinner:.cyan} {prefix} {elapsed:>6}  [{bar:20.cyan/blue}] {pos}/{len} {wide_msg}"
                } else {
                    "{spinner:.cyan} {prefix} {elapsed:>6}  {wide_msg}"
                };
                bar.set_style(plain_style(template).tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "));
                bar.set_prefix(label);
                if let Some((n, m)) = stage.steps {
                    bar.set_length(m);
                    bar.set_position(n);
                }
                bar.set_message(stage.detail.clone());
            }
            StageState::Done | StageState::Failed | StageState::Skipped => {
                let line = list.line(i, Instant::now());
                let style = match stage.state {
                    StageState::Done => GREEN,
                    StageState::Failed => RED,
                    _ => YELLOW,
                };
                let (mark, rest) = line.split_at(line.find(' ').unwrap_or(0));
                bar.set_style(plain_style("{msg}"));
                bar.set_message(format!("{}{rest}", self.paint(style, mark)));
                bar.finish();
            }
        }
    }
}

impl Drop for LiveStages {
    /// Stages that never ran stay drawn as they are (a failed run shows where it stopped).
    fn drop(&mut self) {
        for bar in &self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

fn plain_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the stage templates are valid")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stages_go_from_pending_through_running_to_done_or_failed_with_their_elapsed_time() {
        let t0 = Instant::now();
        let mut list = StageList::new(["plan", "checks", "release", "deploy:staging"]);
        assert_eq!(list.stages()[3].label, "deploy staging");
        list.finish("plan", StageState::Done, "1.3.0 (minor: 2 features)", t0);
        list.start("checks", t0);
        list.set_steps("checks", 1, 3);
        list.set_detail("checks", "unit passed");
        let now = t0 + Duration::from_millis(1500);
        assert_eq!(list.running().unwrap().key, "checks");
        assert_eq!(
            list.render(now),
            "✓ plan                     0.0s  1.3.0 (minor: 2 features)\n\
             ▸ checks                   1.5s  [1/3] unit passed\n\
             · release                        pending\n\
             · deploy staging                 pending\n"
        );
        list.finish("checks", StageState::Done, "3 passed", now);
        // A finished stage keeps its time; finishing it again changes nothing.
        list.finish(
            "checks",
            StageState::Failed,
            "late",
            now + Duration::from_secs(9),
        );
        list.finish(
            "release",
            StageState::Skipped,
            "already recorded",
            now + Duration::from_secs(70),
        );
        list.start("deploy:staging", now);
        list.finish(
            "deploy:staging",
            StageState::Failed,
            "rolled back: error rate 50%",
            now + Duration::from_secs(75),
        );
        assert!(list.running().is_none());
        assert_eq!(
            list.render(now + Duration::from_secs(99)),
            "✓ plan                     0.0s  1.3.0 (minor: 2 features)\n\
             ✓ checks                   1.5s  3 passed\n\
             - release                  0.0s  already recorded\n\
             ✗ deploy staging          1m15s  rolled back: error rate 50%\n"
        );
        // Steps never exceed their total; unknown keys are ignored.
        list.set_steps("plan", 9, 3);
        assert_eq!(list.stages()[0].steps, Some((3, 3)));
        list.start("nope", now);
        assert_eq!(list.stages().len(), 4);
    }

    #[test]
    fn the_live_list_drives_one_bar_per_stage() {
        let live = LiveStages::with_target(
            ["plan", "checks", "deploy:production"],
            ProgressDrawTarget::hidden(),
            false,
        );
        let bar = |k: &str| live.bar(k).unwrap();
        assert_eq!(bar("checks").message(), "pending");
        assert_eq!(bar("checks").prefix().trim_end(), "checks");
        live.finish("plan", StageState::Done, "2.0.0");
        assert!(bar("plan").is_finished());
        assert!(
            bar("plan").message().starts_with("✓ plan"),
            "{}",
            bar("plan").message()
        );
        assert!(bar("plan").message().ends_with("2.0.0"));

        live.start("checks");
        assert_eq!(live.running().as_deref(), Some("checks"));
        live.steps("checks", 2, 5);
        assert_eq!(
            (bar("checks").position(), bar("checks").length()),
            (2, Some(5))
        );
        live.finish("checks", StageState::Done, "5 passed");
        assert!(bar("checks").message().contains("5 passed"));

        live.start("deploy:production");
        live.steps("deploy:production", 1, 3);
        live.detail("deploy:production", "canary at 5%");
        assert_eq!(bar("deploy:production").message(), "canary at 5%");
        assert_eq!(bar("deploy:production").position(), 1);
        live.finish("deploy:production", StageState::Failed, "rolled back");
        let m = bar("deploy:production").message();
        assert!(m.starts_with("✗ deploy production"), "{m}");
        assert!(m.ends_with("rolled back"), "{m}");
        let snap = live.snapshot();
        assert_eq!(snap.stages()[2].state, StageState::Failed);
        assert!(live.running().is_none());
    }
}
