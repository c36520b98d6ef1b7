//! Migration files: their names (`NNNN_name.up.sql` / `.down.sql`), the phase marker on the first
//! line, the other markers, checksums, and the statements inside them (SQLite runs them one by
//! one so that an error names its line).
//!
//! An up file begins with `-- cutover:phase expand` or `-- cutover:phase contract`; the comment
//! lines right after it may hold `-- cutover:irreversible` (a rollback across it is refused) and
//! `-- cutover:no-transaction`. The latter is for statements PostgreSQL refuses inside a
//! transaction (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE … ADD VALUE` before PostgreSQL 12,
//! SQLite's `VACUUM`): the migration then runs statement by statement, each committing on its
//! own, and is recorded only once all succeeded. A failure leaves it recorded as not applied and
//! says that the statements before the failing one stay applied (write such migrations so that
//! they can run again: `IF NOT EXISTS`, one statement per migration). The statements are found
//! by [`crate::split`], which keeps dollar-quoted bodies and other quoted text holding `;` whole.
//! A down file asks for the same with a `-- cutover:no-transaction` line among its leading
//! comments.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::AppDbError;
pub use crate::split::{Dialect, Statement, split_statements};

/// When a migration runs around a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the traffic switch; the previous release must keep working with it.
    Expand,
    /// Once the previous release is gone.
    Contract,
}

impl Phase {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::Contract => "contract",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "expand" => Some(Phase::Expand),
            "contract" => Some(Phase::Contract),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// A parsed migration file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
}

/// Parses a file name of the migrations directory. `Ok(None)`: not an SQL file (ignored, e.g. a
/// README); `Err(why)`: an `.sql` file that is not named like a migration.
pub fn parse_file_name(file: &str) -> Result<Option<FileName>, String> {
    let Some(stem) = file.strip_suffix(".sql") else {
        return Ok(None);
    };
    let (stem, direction) = if let Some(s) = stem.strip_suffix(".up") {
        (s, Direction::Up)
    } else if let Some(s) = stem.strip_suffix(".down") {
        (s, Direction::Down)
    } else {
        return Err(format!(
            "`{file}` is neither `.up.sql` nor `.down.sql`; expected `NNNN_name.up.sql` or `NNNN_name.down.sql`"
        ));
    };
    let Some((digits, name)) = stem.split_once('_') else {
        return Err(format!(
            "`{file}` has no `_` between the version number and the name; expected `NNNN_name.up.sql`"
        ));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{file}` does not start with a version number; expected digits such as `0001_`"
        ));
    }
    let version: i64 = digits.parse().map_err(|_| {
        format!("`{file}`: the version number `{digits}` is too large (at most 18 digits)")
    })?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "`{file}`: the name `{name}` must be non-empty and use only letters, digits, `_` and `-`"
        ));
    }
    Ok(Some(FileName {
        version,
        name: name.to_owned(),
        direction,
    }))
}

/// What the header comments of an up file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub phase: Phase,
    /// `-- cutover:irreversible` among the leading comment lines.
    pub irreversible: bool,
    /// `-- cutover:no-transaction` among the leading comment lines.
    pub no_transaction: bool,
}

/// Reads the phase marker (first line) and the irreversible marker (leading comment lines).
/// The error is `(line, message)`.
pub fn parse_header(text: &str) -> Result<Header, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or_default();
    let phase = marker(first, "phase")
        .ok_or_else(|| {
            (
                1,
                format!(
                    "the first line must be the phase marker `-- cutover:phase expand` or `-- cutover:phase contract`, found `{}`",
                    first.trim()
                ),
            )
        })
        .and_then(|value| {
            Phase::parse(value).ok_or_else(|| {
                (
                    1,
                    format!("unknown phase `{value}`; expected `expand` or `contract`"),
                )
            })
        })?;
    let mut irreversible = false;
    let mut no_transaction = false;
    for (i, line) in text.lines().enumerate().skip(1) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if !t.starts_with("--") {
            break;
        }
        if let Some(rest) = t.strip_prefix("--").map(str::trim)
            && let Some(directive) = rest.strip_prefix("cutover:")
        {
            match directive.trim() {
                "irreversible" => irreversible = true,
                NO_TRANSACTION => no_transaction = true,
                other if other.starts_with("phase") => {
                    return Err((
                        i + 1,
                        "a second phase marker; only the first line sets the phase".into(),
                    ));
                }
                other => {
                    return Err((
                        i + 1,
                        format!(
                            "unknown directive `cutover:{other}`; expected `cutover:irreversible` or `cutover:no-transaction`"
                        ),
                    ));
                }
            }
        }
    }
    Ok(Header {
        phase,
        irreversible,
        no_transaction,
    })
}

const NO_TRANSACTION: &str = "no-transaction";

/// Whether a script (a down migration) asks to run outside a transaction: a
/// `-- cutover:no-transaction` line among its leading comment lines (any of them, the first too:
/// down files have no phase marker).
#[must_use]
pub fn wants_no_transaction(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .take_while(|t| t.starts_with("--"))
        .any(|t| {
            t.strip_prefix("--")
                .map(str::trim)
                .and_then(|r| r.strip_prefix("cutover:"))
                .is_some_and(|d| d.trim() == NO_TRANSACTION)
        })
}

/// `-- cutover:<key> <value>` → value.
fn marker<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim().strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix("cutover:")?.strip_prefix(key)?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim())
}

/// A migration as found in a directory (or at a release's commit).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub phase: Phase,
    /// Marked `-- cutover:irreversible`.
    pub irreversible: bool,
    /// Marked `-- cutover:no-transaction`: runs statement by statement outside a transaction
    /// (for what PostgreSQL refuses inside one, such as `CREATE INDEX CONCURRENTLY`).
    pub no_transaction: bool,
    /// sha256 hex of the up file's bytes.
    pub checksum: String,
    #[serde(skip)]
    pub up: String,
    #[serde(skip)]
    pub down: Option<String>,
    /// Where the up file was read from (a path, or `COMMIT:path`).
    pub up_path: String,
    pub down_path: Option<String>,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("phase", &self.phase)
            .field("irreversible", &self.irreversible)
            .field("no_transaction", &self.no_transaction)
            .field("checksum", &self.checksum)
            .field("down", &self.down.is_some())
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// `0003_add_notes`.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// sha256 hex of a migration's text.
#[must_use]
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads every migration of `dir`, sorted by version. A missing directory has none.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, AppDbError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AppDbError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AppDbError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !name.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| AppDbError::Io {
            path: path.clone(),
            source,
        })?;
        files.push((name, path.display().to_string(), text));
    }
    from_files(files)
}

/// Builds the migrations from `(file name, shown path, text)` triples.
pub fn from_files(files: Vec<(String, String, String)>) -> Result<Vec<Migration>, AppDbError> {
    let mut ups: BTreeMap<i64, (FileName, String, String)> = BTreeMap::new();
    let mut downs: BTreeMap<i64, (FileName, String, String)> = BTreeMap::new();
    for (file, shown, text) in files {
        let parsed = parse_file_name(&file)
            .map_err(|message| AppDbError::BadFileName {
                path: PathBuf::from(&shown),
                message,
            })?
            .ok_or_else(|| AppDbError::BadFileName {
                path: PathBuf::from(&shown),
                message: format!("`{file}` is not an SQL file"),
            })?;
        let map = match parsed.direction {
            Direction::Up => &mut ups,
            Direction::Down => &mut downs,
        };
        if let Some((_, first, _)) = map.get(&parsed.version) {
            return Err(AppDbError::DuplicateVersion {
                version: parsed.version,
                first: PathBuf::from(first),
                second: PathBuf::from(shown),
            });
        }
        map.insert(parsed.version, (parsed, shown, text));
    }
    let mut out = Vec::new();
    for (version, (name, shown, text)) in ups {
        let header = parse_header(&text).map_err(|(line, message)| AppDbError::BadMigration {
            path: PathBuf::from(&shown),
            line,
            message,
        })?;
        let down = downs.remove(&version);
        if let Some((dn, dshown, _)) = &down
            && dn.name != name.name
        {
            return Err(AppDbError::BadFileName {
                path: PathBuf::from(dshown),
                message: format!(
                    "the down migration is named `{}` but the up migration of version {version} is `{}`",
                    dn.name, name.name
                ),
            });
        }
        out.push(Migration {
            version,
            name: name.name,
            phase: header.phase,
            irreversible: header.irreversible,
            no_transaction: header.no_transaction,
            checksum: checksum(&text),
            up: text,
            down: down.as_ref().map(|(_, _, t)| t.clone()),
            up_path: shown,
            down_path: down.map(|(_, s, _)| s),
        });
    }
    if let Some((_, (_, shown, _))) = downs.into_iter().next() {
        return Err(AppDbError::DownWithoutUp {
            path: PathBuf::from(shown),
        });
    }
    Ok(out)
}

/// 1-based line and column (in characters) of the character at 1-based `char_pos` in `text`.
#[must_use]
pub fn line_col_of_char(text: &str, char_pos: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.chars().enumerate() {
        if i + 1 >= char_pos {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// 1-based line of a byte offset.
#[must_use]
pub fn line_of_byte(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where a migration error points, from SQLite's `near "TOKEN": …` message, searched in the
/// statement (byte offset into the statement).
#[must_use]
pub fn sqlite_near(statement: &str, message: &str) -> Option<usize> {
    let token = message.split_once("near \"")?.1.split_once('"')?.0;
    if token.is_empty() {
        return None;
    }
    let lower = statement.to_ascii_lowercase();
    lower.find(&token.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("0001_create_notes.up.sql").unwrap(),
            Some(FileName {
                version: 1,
                name: "create_notes".into(),
                direction: Direction::Up
            })
        );
        assert_eq!(
            parse_file_name("0012_drop-x.down.sql")
                .unwrap()
                .unwrap()
                .direction,
            Direction::Down
        );
        assert_eq!(parse_file_name("README.md").unwrap(), None);
        for bad in [
            "0001_x.sql",
            "x_notes.up.sql",
            "0001.up.sql",
            "0001_.up.sql",
            "0001_a b.up.sql",
            "99999999999999999999_x.up.sql",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers() {
        let h = parse_header("-- cutover:phase expand\ncreate table t(x int);").unwrap();
        assert_eq!(h.phase, Phase::Expand);
        assert!(!h.irreversible);
        let h = parse_header(
            "--cutover:phase contract\n-- drops data\n-- cutover:irreversible\ndrop table t;",
        )
        .unwrap();
        assert_eq!(h.phase, Phase::Contract);
        assert!(h.irreversible);
        // The marker only counts among the leading comments.
        let h =
            parse_header("-- cutover:phase expand\nselect 1;\n-- cutover:irreversible\n").unwrap();
        assert!(!h.irreversible);
        let (line, msg) = parse_header("create table t(x int);").unwrap_err();
        assert_eq!(line, 1);
        assert!(msg.contains("phase marker"), "{msg}");
        let (_, msg) = parse_header("-- cutover:phase sideways\n").unwrap_err();
        assert!(msg.contains("unknown phase `sideways`"), "{msg}");
        let (line, msg) =
            parse_header("-- cutover:phase expand\n-- cutover:irreversable\n").unwrap_err();
        assert!(msg.contains("cutover:no-transaction"), "{msg}");
        let h = parse_header(
            "-- cutover:phase expand\n-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);",
        )
        .unwrap();
        assert!(h.no_transaction && !h.irreversible);
        assert!(
            !parse_header("-- cutover:phase expand\nselect 1;\n-- cutover:no-transaction\n")
                .unwrap()
                .no_transaction
        );
        assert!(wants_no_transaction(
            "-- cutover:no-transaction\nDROP INDEX CONCURRENTLY i;"
        ));
        assert!(wants_no_transaction(
            "\u{feff}-- undo\n--cutover:no-transaction \nDROP INDEX CONCURRENTLY i;"
        ));
        assert!(!wants_no_transaction(
            "DROP INDEX i;\n-- cutover:no-transaction\n"
        ));
        assert_eq!(line, 2);
    }

    #[test]
    fn positions() {
        assert_eq!(line_col_of_char("ab\ncd\nef", 5), (2, 2));
        assert_eq!(line_col_of_char("ab", 1), (1, 1));
        assert_eq!(
            sqlite_near("select 1;\ncreat table", "near \"creat\": syntax error"),
            Some(10)
        );
    }

    proptest! {
        #[test]
        fn file_name_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_file_name(&s);
        }

        #[test]
        fn file_names_round_trip(v in 0i64..1_000_000_000, name in "[A-Za-z0-9_-]{1,20}", up in any::<bool>()) {
            let file = format!("{v:04}_{name}.{}.sql", if up { "up" } else { "down" });
            let p = parse_file_name(&file).unwrap().unwrap();
            prop_assert_eq!(p.version, v);
            prop_assert_eq!(p.name, name);
            prop_assert_eq!(p.direction, if up { Direction::Up } else { Direction::Down });
        }

        #[test]
        fn header_parser_never_panics_and_finds_the_phase(body in "\\PC{0,200}", expand in any::<bool>(), ws in "[ \t]{0,3}") {
            let _ = parse_header(&body);
            let phase = if expand { "expand" } else { "contract" };
            let text = format!("--{ws}cutover:phase {phase}{ws}\n{body}");
            // The body may hold a bad directive among the leading comments; else the phase holds.
            if let Ok(h) = parse_header(&text) {
                prop_assert_eq!(h.phase.as_str(), phase);
            }
        }
    }
}
