//! Everything the binary writes to the terminal goes through here: human text, JSON documents,
//! warnings and errors, with colour decided once (`--color`, `NO_COLOR`, whether it is a terminal).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::error::CliError;
use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorMode {
    #[default]
    Auto,
    Always,
    Never,
}

/// The output settings of one invocation.
#[derive(Debug, Clone)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    choice: ColorChoice,
    /// A step inside a command that prints one document (`cutover --json ship`): its own result
    /// goes to stderr so that stdout stays that one document.
    nested: bool,
    /// A step under a live display (`cutover ship` on a terminal): everything it would write is
    /// kept here, for the display to print above itself.
    capture: Option<Arc<Mutex<String>>>,
}

pub const BOLD: Style = Style::new().bold();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const GREEN: Style = AnsiColor::Green.on_default();
pub const CYAN: Style = AnsiColor::Cyan.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

impl Ui {
    pub fn new(json: bool, quiet: bool, verbose: u8, color: ColorMode) -> Self {
        let choice = match color {
            ColorMode::Always => ColorChoice::Always,
            ColorMode::Never => ColorChoice::Never,
            // anstream's Auto honours NO_COLOR, CLICOLOR(_FORCE) and whether the stream is a tty.
            ColorMode::Auto => ColorChoice::Auto,
        };
        Self {
            json,
            quiet,
            verbose,
            choice,
            nested: false,
            capture: None,
        }
    }

    /// The output of a step under a live display: kept (with `-q` applied), never written.
    pub fn captured(&self) -> Ui {
        Ui {
            json: false,
            capture: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// What a [`Ui::captured`] step wrote since the last call.
    pub fn take_captured(&self) -> String {
        self.capture
            .as_ref()
            .map(|c| std::mem::take(&mut *c.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default()
    }

    fn keep(&self, text: &str) -> bool {
        match &self.capture {
            Some(c) => {
                c.lock().unwrap_or_else(|e| e.into_inner()).push_str(text);
                true
            }
            None => false,
        }
    }

    /// Whether a live display (spinners, progress bars, redrawn lines) may be drawn on stderr:
    /// a terminal, human output, not `-q`, and neither `NO_COLOR`, `CI` nor `TERM=dumb` set.
    /// Otherwise commands print plain lines.
    pub fn live(&self) -> bool {
        let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
        !self.json
            && !self.quiet
            && self.capture.is_none()
            && !set("NO_COLOR")
            && !set("CI")
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            && std::io::stderr().is_terminal()
    }

    /// Whether colour is on for stderr (for displays that draw themselves).
    pub fn color_on_stderr(&self) -> bool {
        self.stderr().current_choice() != ColorChoice::Never
    }

    /// The output of a step inside a `--json` command: human, on stderr.
    pub fn nested(&self) -> Ui {
        Ui {
            json: false,
            nested: true,
            ..self.clone()
        }
    }

    fn stdout(&self) -> AutoStream<std::io::Stdout> {
        AutoStream::new(std::io::stdout(), self.choice)
    }

    fn stderr(&self) -> AutoStream<std::io::Stderr> {
        AutoStream::new(std::io::stderr(), self.choice)
    }

    /// Whether stdout is a terminal (for choosing summaries over documents).
    pub fn stdout_is_terminal(&self) -> bool {
        std::io::stdout().is_terminal()
    }

    /// Paints `text` with `style`; the stream strips it again when colour is off.
    pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
        format!("{style}{text}{style:#}")
    }

    /// Human output on stdout (the result of the command).
    pub fn print(&self, text: impl AsRef<str>) {
        // A closed pipe (e.g. `| head`) is not an error worth reporting.
        if self.keep(text.as_ref()) {
            return;
        }
        if self.nested {
            let mut out = self.stderr();
            let _ = out.write_all(text.as_ref().as_bytes());
            let _ = out.flush();
        } else {
            let mut out = self.stdout();
            let _ = out.write_all(text.as_ref().as_bytes());
            let _ = out.flush();
        }
    }

    /// Human output on stdout with a trailing newline.
    pub fn println(&self, text: impl AsRef<str>) {
        let mut s = text.as_ref().to_owned();
        s.push('\n');
        self.print(s);
    }

    /// The one JSON document of a `--json` invocation.
    pub fn print_json(&self, value: &serde_json::Value) {
        let mut text =
            serde_json::to_string_pretty(value).expect("a serde_json::Value always serialises");
        text.push('\n');
        let _ = std::io::stdout().write_all(text.as_bytes());
    }

    /// A progress or status line on stderr (suppressed by `-q` and in JSON mode it still goes to
    /// stderr, which keeps stdout a single document).
    pub fn status(&self, verb: &str, text: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        let line = format!("{:>12} {text}\n", Self::paint(GREEN.bold(), verb));
        if self.keep(&line) {
            return;
        }
        let _ = self.stderr().write_all(line.as_bytes());
    }

    /// Extra detail shown with `-v`.
    pub fn detail(&self, text: impl std::fmt::Display) {
        if self.verbose > 0 && !self.quiet {
            let line = format!("{}\n", Self::paint(DIM, text));
            if !self.keep(&line) {
                let _ = self.stderr().write_all(line.as_bytes());
            }
        }
    }

    pub fn warn(&self, text: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        let line = format!("{} {text}\n", Self::paint(YELLOW, "warning:"));
        if !self.keep(&line) {
            let _ = self.stderr().write_all(line.as_bytes());
        }
    }

    /// Renders an error: `error:`, then `caused by:` lines, then `hint:` lines, on stderr; under
    /// `--json` the error document also goes to stdout.
    pub fn error(&self, err: &CliError) {
        if self.json {
            self.print_json(&err.to_json());
        }
        let mut e = self.stderr();
        // The message's own continuation lines (e.g. a `-->` location and a source snippet) keep
        // their layout, as rustc's do.
        let _ = writeln!(e, "{} {}", Self::paint(RED, "error:"), err.message);
        for cause in &err.causes {
            let _ = writeln!(
                e,
                "{} {}",
                Self::paint(RED.bold(), "caused by:"),
                indent_rest(cause, 11)
            );
        }
        for hint in &err.hints {
            let _ = writeln!(e, "{} {}", Self::paint(CYAN, "hint:"), indent_rest(hint, 6));
        }
    }
}

/// Indents every line after the first so multi-line messages line up after their label.
fn indent_rest(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    let mut lines = text.lines();
    let mut out = lines.next().unwrap_or_default().to_owned();
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}
