//! Conventional Commits 1.0.0 parsing (and rendering), plus git's own revert messages, issue
//! references and co-author trailers.
//!
//! Decisions where the specification leaves room (all documented here so that the rules are one place):
//! - The header is the first line. A body MUST begin one blank line after it (spec item 6): a second
//!   line that is not blank makes the message non-conventional ([`ParseError::NoBlankLineAfterHeader`]).
//! - Types are a word (`[A-Za-z][A-Za-z0-9_-]*`), compared case-insensitively ([`ConventionalCommit::kind`]).
//! - Footers follow the git trailer convention: a token (`[A-Za-z0-9][A-Za-z0-9-]*` or `BREAKING CHANGE`)
//!   followed by `": "` or `" #"`. The footer section is the longest run of trailing paragraphs that
//!   each start with a footer line; in addition it starts no later than the first paragraph that starts
//!   with a `BREAKING CHANGE:` footer, so that a migration note may span several paragraphs. Inside the
//!   footer section every following line that is not itself a footer line continues the current value
//!   (spec item 10).
//! - `BREAKING CHANGE` and `BREAKING-CHANGE` are synonyms and count only in uppercase (items 12, 15, 16);
//!   `breaking change: x` is an ordinary body line and `Breaking-Change: x` an ordinary footer.
//! - Line endings are normalised (`\r\n` → `\n`); leading blank lines and trailing whitespace of the
//!   message are ignored, as git itself does when it stores a message.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The separator between a footer's token and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Separator {
    /// `Token: value`
    Colon,
    /// `Token #value` (as in `Closes #12`)
    Hash,
}

impl Separator {
    /// The separator as written in a message.
    pub fn as_str(self) -> &'static str {
        match self {
            Separator::Colon => ": ",
            Separator::Hash => " #",
        }
    }
}

/// One footer (git trailer) of a commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footer {
    /// The token as written (`Reviewed-by`, `BREAKING CHANGE`, `Closes`).
    pub token: String,
    /// How token and value were separated.
    pub separator: Separator,
    /// The value; may span several lines.
    pub value: String,
}

impl Footer {
    /// `BREAKING CHANGE` or its synonym `BREAKING-CHANGE`, which count only in uppercase.
    pub fn is_breaking_change(&self) -> bool {
        is_breaking_token(&self.token)
    }

    /// Whether the token equals `name`, ignoring ASCII case (footer tokens are case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.token.eq_ignore_ascii_case(name)
    }
}

fn is_breaking_token(token: &str) -> bool {
    token == "BREAKING CHANGE" || token == "BREAKING-CHANGE"
}

/// A parsed Conventional Commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConventionalCommit {
    /// The type as written (`feat`, `Fix`); see [`ConventionalCommit::kind`] for the normalised form.
    pub r#type: String,
    /// The optional scope, without the parentheses.
    pub scope: Option<String>,
    /// `!` before the colon.
    pub bang: bool,
    /// The description (the rest of the header).
    pub description: String,
    /// The free-form body (paragraphs separated by blank lines), if any.
    pub body: Option<String>,
    /// Footers in message order.
    pub footers: Vec<Footer>,
}

impl ConventionalCommit {
    /// The type in lowercase: types are not case-sensitive (spec item 15).
    pub fn kind(&self) -> String {
        self.r#type.to_ascii_lowercase()
    }

    /// Breaking by `!` or by a `BREAKING CHANGE` / `BREAKING-CHANGE` footer.
    pub fn is_breaking(&self) -> bool {
        self.bang || self.footers.iter().any(Footer::is_breaking_change)
    }

    /// What the breaking change is: the `BREAKING CHANGE` footer values, or with only `!` the
    /// description (spec item 13). Empty if the commit is not breaking.
    pub fn breaking_notes(&self) -> Vec<&str> {
        let notes: Vec<&str> = self
            .footers
            .iter()
            .filter(|f| f.is_breaking_change())
            .map(|f| f.value.as_str())
            .collect();
        if notes.is_empty() && self.bang {
            vec![self.description.as_str()]
        } else {
            notes
        }
    }

    /// The value of the first footer with this token (case-insensitive).
    pub fn footer(&self, token: &str) -> Option<&str> {
        self.footers
            .iter()
            .find(|f| f.is(token))
            .map(|f| f.value.as_str())
    }

    /// The header line: `type(scope)!: description`.
    pub fn header(&self) -> String {
        let mut out = self.r#type.clone();
        if let Some(scope) = &self.scope {
            out.push('(');
            out.push_str(scope);
            out.push(')');
        }
        if self.bang {
            out.push('!');
        }
        out.push_str(": ");
        out.push_str(&self.description);
        out
    }

    /// The message this commit would have; [`parse`] of it gives back an equal value.
    pub fn render(&self) -> String {
        let mut out = self.header();
        if let Some(body) = &self.body {
            out.push_str("\n\n");
            out.push_str(body);
        }
        if !self.footers.is_empty() {
            out.push_str("\n\n");
            let lines: Vec<String> = self
                .footers
                .iter()
                .map(|f| format!("{}{}{}", f.token, f.separator.as_str(), f.value))
                .collect();
            out.push_str(&lines.join("\n"));
        }
        out
    }
}

impl fmt::Display for ConventionalCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Why a message is not a Conventional Commit. Columns are 1-based character positions in the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the commit message is empty")]
    Empty,
    /// The header does not start with a type word.
    #[error("header column 1: expected a type such as `feat` or `fix` followed by `: `")]
    MissingType,
    /// A character that cannot be part of a type.
    #[error(
        "header column {column}: `{found}` cannot be part of a type (expected letters, digits, `-` or `_`, then `(scope)`, `!` or `: `)"
    )]
    InvalidType {
        /// Where.
        column: usize,
        /// The offending character.
        found: char,
    },
    /// `(` without `)`.
    #[error("header column {column}: the scope opened here is not closed with `)`")]
    UnclosedScope {
        /// Column of `(`.
        column: usize,
    },
    /// `()`.
    #[error(
        "header column {column}: the scope is empty (write `feat(parser): …` or leave out the parentheses)"
    )]
    EmptyScope {
        /// Column of `(`.
        column: usize,
    },
    /// No `:` after type/scope/`!`.
    #[error("header column {column}: expected `: ` after the type{hint}")]
    MissingColon {
        /// Where the colon was expected.
        column: usize,
        /// Extra hint text.
        hint: &'static str,
    },
    /// `feat:x`.
    #[error("header column {column}: expected a space after `:`")]
    MissingSpace {
        /// Column after the colon.
        column: usize,
    },
    /// `feat: ` with nothing after.
    #[error("header column {column}: the description after `: ` is empty")]
    EmptyDescription {
        /// Column where the description should start.
        column: usize,
    },
    /// Line 2 is not blank.
    #[error("line 2: expected a blank line between the header and the body")]
    NoBlankLineAfterHeader,
}

const KNOWN_TYPE_HINT: &str = " (e.g. `feat: add x`, `fix(api)!: y`)";

/// Parses a commit message as a Conventional Commit 1.0.0.
pub fn parse(message: &str) -> Result<ConventionalCommit, ParseError> {
    let normalized = normalize(message);
    let text = normalized.as_str();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let (header, rest) = match text.split_once('\n') {
        Some((h, r)) => (h, Some(r)),
        None => (text, None),
    };
    let (r#type, scope, bang, description) = parse_header(header)?;
    let (body, footers) = match rest {
        None => (None, Vec::new()),
        Some(rest) => {
            let (first, after) = rest.split_once('\n').unwrap_or((rest, ""));
            if !first.trim().is_empty() {
                return Err(ParseError::NoBlankLineAfterHeader);
            }
            parse_body_and_footers(after)
        }
    };
    Ok(ConventionalCommit {
        r#type,
        scope,
        bang,
        description,
        body,
        footers,
    })
}

/// `\r\n` → `\n`, leading blank lines and trailing whitespace removed, trailing spaces of lines kept
/// only inside (git strips them when it stores a message, we strip them to compare).
fn normalize(message: &str) -> String {
    let unified = message.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = unified.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |i| i + 1);
    lines[start..end].join("\n")
}

type Header = (String, Option<String>, bool, String);

fn parse_header(header: &str) -> Result<Header, ParseError> {
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    while i < chars.len()
        && (chars[i].is_ascii_alphanumeric() || chars[i] == '-' || chars[i] == '_')
    {
        i += 1;
    }
    if i == 0 || !chars[0].is_ascii_alphabetic() {
        return Err(ParseError::MissingType);
    }
    let r#type: String = chars[..i].iter().collect();
    let mut scope = None;
    if i < chars.len() && chars[i] == '(' {
        let open = i;
        let close = chars[open + 1..]
            .iter()
            .position(|&c| c == ')' || c == '(')
            .map(|p| p + open + 1);
        match close {
            Some(c) if chars[c] == ')' => {
                let s: String = chars[open + 1..c].iter().collect();
                if s.trim().is_empty() {
                    return Err(ParseError::EmptyScope { column: open + 1 });
                }
                scope = Some(s);
                i = c + 1;
            }
            _ => return Err(ParseError::UnclosedScope { column: open + 1 }),
        }
    }
    let mut bang = false;
    if i < chars.len() && chars[i] == '!' {
        bang = true;
        i += 1;
    }
    match chars.get(i) {
        Some(':') => {}
        None => {
            return Err(ParseError::MissingColon {
                column: i + 1,
                hint: KNOWN_TYPE_HINT,
            });
        }
        Some(&c) if scope.is_none() && !bang && c != ' ' && c != '(' => {
            return Err(ParseError::InvalidType {
                column: i + 1,
                found: c,
            });
        }
        Some(_) => {
            return Err(ParseError::MissingColon {
                column: i + 1,
                hint: KNOWN_TYPE_HINT,
            });
        }
    }
    i += 1;
    if chars.get(i) != Some(&' ') {
        if i >= chars.len() {
            return Err(ParseError::EmptyDescription { column: i + 1 });
        }
        return Err(ParseError::MissingSpace { column: i + 1 });
    }
    let description: String = chars[i + 1..].iter().collect::<String>().trim().to_owned();
    if description.is_empty() {
        return Err(ParseError::EmptyDescription { column: i + 2 });
    }
    Ok((r#type, scope, bang, description))
}

/// Recognises a footer line: returns (token, separator, first line of the value).
fn footer_line(line: &str) -> Option<(&str, Separator, &str)> {
    if let Some(rest) = line.strip_prefix("BREAKING CHANGE") {
        if let Some(value) = rest.strip_prefix(": ") {
            return Some(("BREAKING CHANGE", Separator::Colon, value));
        }
        if let Some(value) = rest.strip_prefix(" #") {
            return Some(("BREAKING CHANGE", Separator::Hash, value));
        }
    }
    let bytes = line.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() {
        return None;
    }
    let end = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))?;
    let (token, rest) = line.split_at(end);
    if let Some(value) = rest.strip_prefix(": ") {
        return Some((token, Separator::Colon, value));
    }
    if let Some(value) = rest.strip_prefix(" #") {
        // `Closes #` with nothing after is prose, not a reference.
        if !value.is_empty() {
            return Some((token, Separator::Hash, value));
        }
    }
    None
}

fn parse_body_and_footers(text: &str) -> (Option<String>, Vec<Footer>) {
    let lines: Vec<&str> = text.lines().collect();
    // Paragraph starts: (line index) of the first line of each paragraph.
    let mut starts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.is_empty() && (i == 0 || lines[i - 1].is_empty()) {
            starts.push(i);
        }
    }
    let starts_with_footer = |p: usize| footer_line(lines[starts[p]]).is_some();
    let mut footer_para = starts.len();
    while footer_para > 0 && starts_with_footer(footer_para - 1) {
        footer_para -= 1;
    }
    if let Some(p) = (0..starts.len())
        .find(|&p| footer_line(lines[starts[p]]).is_some_and(|(t, _, _)| is_breaking_token(t)))
    {
        footer_para = footer_para.min(p);
    }
    let footer_start_line = starts.get(footer_para).copied().unwrap_or(lines.len());
    let body = lines[..footer_start_line].join("\n");
    let body = body.trim_matches('\n');
    let body = (!body.is_empty()).then(|| body.to_owned());

    let mut footers: Vec<Footer> = Vec::new();
    for line in &lines[footer_start_line..] {
        match footer_line(line) {
            Some((token, separator, value)) => footers.push(Footer {
                token: token.to_owned(),
                separator,
                value: value.to_owned(),
            }),
            None => {
                if let Some(last) = footers.last_mut() {
                    last.value.push('\n');
                    last.value.push_str(line);
                }
            }
        }
    }
    for f in &mut footers {
        let trimmed = f.value.trim_end().to_owned();
        f.value = trimmed;
    }
    (body, footers)
}

/// A commit made by `git revert` with its default message: `Revert "<header>"` and a body
/// `This reverts commit <sha>.`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRevert {
    /// The header of the reverted commit (inside the quotes).
    pub reverted_header: String,
    /// The reverted commit's id, from `This reverts commit <sha>`.
    pub reverted_commit: Option<String>,
    /// The rest of the body (without the `This reverts commit` sentence), if any.
    pub body: Option<String>,
    /// Trailers such as `Signed-off-by` or `Co-authored-by`.
    pub footers: Vec<Footer>,
}

/// Parses git's default revert message; `None` if the message is not one.
pub fn parse_git_revert(message: &str) -> Option<GitRevert> {
    // Cheap rejection first: this runs on every commit of a history.
    if !message.trim_start().starts_with("Revert \"") {
        return None;
    }
    let normalized = normalize(message);
    let (header, rest) = normalized
        .split_once('\n')
        .unwrap_or((normalized.as_str(), ""));
    let inner = header.strip_prefix("Revert \"")?.strip_suffix('"')?;
    if inner.is_empty() {
        return None;
    }
    let rest = rest.trim_start_matches('\n');
    let (body, footers) = parse_body_and_footers(rest);
    let mut reverted_commit = None;
    let mut remaining = Vec::new();
    if let Some(body) = &body {
        for para in body.split("\n\n") {
            if let Some(pos) = para.find("This reverts commit ") {
                let after = &para[pos + "This reverts commit ".len()..];
                let sha: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
                if sha.len() >= 4 && reverted_commit.is_none() {
                    reverted_commit = Some(sha);
                    continue;
                }
            }
            remaining.push(para);
        }
    }
    let body = (!remaining.is_empty()).then(|| remaining.join("\n\n"));
    Some(GitRevert {
        reverted_header: inner.to_owned(),
        reverted_commit,
        body,
        footers,
    })
}

/// What a commit message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A Conventional Commit.
    Conventional(ConventionalCommit),
    /// git's default revert message.
    Revert(GitRevert),
    /// Anything else; the error says why it is not conventional. Policy decides what happens to it.
    Unconventional {
        /// The first line of the message.
        summary: String,
        /// Why it is not a Conventional Commit.
        error: ParseError,
    },
}

/// Classifies a message: git revert first (its header is never conventional), then Conventional Commit.
pub fn classify(message: &str) -> Message {
    if let Some(revert) = parse_git_revert(message) {
        return Message::Revert(revert);
    }
    match parse(message) {
        Ok(c) => Message::Conventional(c),
        Err(error) => Message::Unconventional {
            summary: first_line(message).to_owned(),
            error,
        },
    }
}

/// The first non-blank line of a message, trimmed.
pub fn first_line(message: &str) -> &str {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// What to do with commits that are not conventional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnconventionalPolicy {
    /// Leave them out of the notes (they are still listed as unconventional).
    Ignore,
    /// Put them in the "Other" group.
    #[default]
    Other,
    /// Refuse to plan a release while there are any.
    Error,
}

/// An issue reference found in a summary or a footer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IssueRef {
    /// The issue number.
    pub number: u64,
    /// As written: `#123` or `GH-123`.
    pub text: String,
}

/// Finds `#123` and `GH-123` references. A `#` counts only at the start or after a character that
/// is not alphanumeric (so `C#1` or `a#b` are not references); numbers over `u64` are ignored.
pub fn issue_refs(text: &str) -> Vec<IssueRef> {
    issue_ref_spans(text).into_iter().map(|(_, r)| r).collect()
}

/// Like [`issue_refs`], with the byte range of each reference in `text` (for linking in place).
pub fn issue_ref_spans(text: &str) -> Vec<(std::ops::Range<usize>, IssueRef)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let prefix_len = if bytes[i] == b'#' {
            1
        } else if boundary && bytes[i..].starts_with(b"GH-") {
            3
        } else {
            0
        };
        if prefix_len > 0 && boundary {
            let digits_start = i + prefix_len;
            let digits_end = bytes[digits_start..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |p| p + digits_start);
            let followed_by_word = bytes
                .get(digits_end)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
            if digits_end > digits_start && !followed_by_word {
                if let Ok(number) = text[digits_start..digits_end].parse::<u64>() {
                    out.push((
                        i..digits_end,
                        IssueRef {
                            number,
                            text: text[i..digits_end].to_owned(),
                        },
                    ));
                }
                i = digits_end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Issue references of a commit: its description, and footers that are references by their
/// nature (`Closes #12`, `Refs: #3, #4`, `Fixes: GH-7`); de-duplicated, in order of appearance.
pub fn commit_refs(summary: &str, footers: &[Footer]) -> Vec<IssueRef> {
    let mut out = issue_refs(summary);
    for f in footers {
        if f.separator == Separator::Hash {
            let value = format!("#{}", f.value);
            out.extend(issue_refs(&value));
        } else if !f.is_breaking_change() && !f.is("co-authored-by") && !f.is("signed-off-by") {
            out.extend(issue_refs(&f.value));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|r| seen.insert(r.clone()));
    out
}

/// A person from a `Co-authored-by: Name <email>` trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// Email, if given.
    pub email: Option<String>,
}

/// Parses `Name <email>`; a value without `<…>` is all name.
pub fn parse_person(value: &str) -> Person {
    let value = value.trim();
    if let (Some(open), true) = (value.rfind('<'), value.ends_with('>')) {
        let name = value[..open].trim().to_owned();
        let email = value[open + 1..value.len() - 1].trim().to_owned();
        return Person {
            name: if name.is_empty() { email.clone() } else { name },
            email: (!email.is_empty()).then_some(email),
        };
    }
    Person {
        name: value.to_owned(),
        email: None,
    }
}

/// Co-authors named in `Co-authored-by` trailers (token case-insensitive).
pub fn co_authors(footers: &[Footer]) -> Vec<Person> {
    footers
        .iter()
        .filter(|f| f.is("co-authored-by"))
        .map(|f| parse_person(&f.value))
        .collect()
}

#[cfg(test)]
mod tests;
