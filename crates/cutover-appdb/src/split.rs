//! Splits a migration script into its statements at top-level `;`, for the migrations that run
//! statement by statement (`-- cutover:no-transaction`, and every SQLite migration, so that an
//! error names its line), keeping each statement's byte offset in the file.
//!
//! Written by hand, as a small lexer: no well-kept crate splits PostgreSQL and SQLite scripts
//! while keeping byte offsets. A full SQL parser (sqlparser) rejects what it does not model
//! (PL/pgSQL bodies, dialect quirks) and gives line/column only per token; libpg_query is
//! PostgreSQL-only and a C build. Splitting needs only the lexical layer, which both engines
//! document:
//! - both: `'…'` strings (`''` is a quote), `"…"` identifiers (`""` is a quote), `--` comments
//!   to the end of the line, `/* … */` comments;
//! - PostgreSQL: `$$ … $$` and `$tag$ … $tag$` dollar quotes, `E'…'` strings with backslash
//!   escapes, nested `/* /* */ */` comments, `BEGIN ATOMIC … END` bodies of SQL-standard
//!   functions (as psql tracks them);
//! - SQLite: `` `…` `` and `[…]` identifiers, `CREATE TRIGGER … BEGIN … END` bodies, and
//!   comments that do not nest.
//!
//! Anything unterminated runs to the end of the script, which the database then rejects with
//! its own message. Strings with backslash escapes outside `E'…'` (PostgreSQL with
//! `standard_conforming_strings = off`, off by default since 9.1) are not supported.

use std::ops::Range;

/// Which engine's lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// One statement of a script: its byte offset in the script and its text (without the `;`,
/// leading comments and surrounding whitespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub offset: usize,
    pub text: &'a str,
}

/// The statements of a script, in order. Pieces holding only whitespace and comments are
/// dropped (SQLite rejects an empty statement).
#[must_use]
pub fn split_statements(sql: &str, dialect: Dialect) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    for p in lex(sql, dialect) {
        let Some(code) = p.code else { continue };
        let end = p.range.end - usize::from(p.terminated);
        let text = sql[code..end].trim_end();
        out.push(Statement { offset: code, text });
    }
    out
}

/// Byte ranges that cover `sql` exactly and in order: each ends right after its top-level `;`,
/// the last one at the end of the script (it may be empty of code).
#[must_use]
pub fn pieces(sql: &str, dialect: Dialect) -> Vec<Range<usize>> {
    lex(sql, dialect).into_iter().map(|p| p.range).collect()
}

struct Piece {
    range: Range<usize>,
    /// The first byte that is neither whitespace nor comment.
    code: Option<usize>,
    /// Ends with its `;`.
    terminated: bool,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8, dialect: Dialect) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || (b == b'$' && dialect == Dialect::Postgres)
}

/// What the words so far say about a statement whose body may hold `;`: a trigger (SQLite) or a
/// function or procedure (PostgreSQL's `BEGIN ATOMIC`), where BEGIN … END and CASE … END nest.
#[derive(Default)]
struct Body {
    /// The first few top-level words of the statement, upper-cased.
    first: Vec<String>,
    prev: String,
    blocks: bool,
    depth: usize,
}

impl Body {
    fn word(&mut self, w: &str, dialect: Dialect) {
        let w = w.to_ascii_uppercase();
        if self.first.len() < 6 {
            self.first.push(w.clone());
            let creates = self.first[0] == "CREATE";
            let kind = match dialect {
                Dialect::Sqlite => w == "TRIGGER",
                Dialect::Postgres => w == "FUNCTION" || w == "PROCEDURE",
            };
            self.blocks |= creates && kind;
        }
        if self.blocks {
            let opens = match (dialect, w.as_str()) {
                (Dialect::Sqlite, "BEGIN" | "CASE") => true,
                (Dialect::Postgres, "ATOMIC") => self.prev == "BEGIN",
                // psql counts CASE too: its END would otherwise close the body early.
                (Dialect::Postgres, "CASE") => self.depth > 0,
                _ => false,
            };
            if opens {
                self.depth += 1;
            } else if w == "END" && self.depth > 0 {
                self.depth -= 1;
            }
        }
        self.prev = w;
    }
}

fn lex(sql: &str, dialect: Dialect) -> Vec<Piece> {
    let b = sql.as_bytes();
    let pg = dialect == Dialect::Postgres;
    let mut out = Vec::new();
    let mut start = 0;
    let mut code: Option<usize> = None;
    let mut body = Body::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && is_ident_cont(b[i - 1], dialect);
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                let mut depth = 1;
                while i < b.len() {
                    if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        i += 2;
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    } else if pg && b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        i += 2;
                        depth += 1;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if c != b';' {
            code.get_or_insert(i);
        }
        match c {
            b';' => {
                i += 1;
                if body.depth == 0 {
                    out.push(Piece {
                        range: start..i,
                        code: code.take(),
                        terminated: true,
                    });
                    start = i;
                    body = Body::default();
                }
            }
            b'\'' => {
                // E'…' (not the end of a longer identifier): backslash escapes.
                let escapes = pg
                    && i > 0
                    && matches!(b[i - 1], b'E' | b'e')
                    && !(i > 1 && is_ident_cont(b[i - 2], dialect));
                i = skip_quoted(b, i + 1, b'\'', escapes);
            }
            b'"' => i = skip_quoted(b, i + 1, b'"', false),
            b'`' if !pg => i = skip_quoted(b, i + 1, b'`', false),
            b'[' if !pg => {
                i += 1;
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(b.len());
            }
            b'$' if pg && !prev_ident => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &b[i..tag_end];
                    i = tag_end;
                    loop {
                        match b[i..].iter().position(|&x| x == b'$') {
                            Some(k) if b[i + k..].starts_with(tag) => {
                                i += k + tag.len();
                                break;
                            }
                            Some(k) => i += k + 1,
                            None => {
                                i = b.len();
                                break;
                            }
                        }
                    }
                }
                None => i += 1,
            },
            c if is_ident_start(c) && !prev_ident => {
                let s = i;
                while i < b.len() && is_ident_cont(b[i], dialect) {
                    i += 1;
                }
                body.word(&sql[s..i], dialect);
            }
            _ => i += 1,
        }
    }
    if start < b.len() || out.is_empty() {
        out.push(Piece {
            range: start..b.len(),
            code,
            terminated: false,
        });
    }
    out
}

/// The index after the closing `quote` of a quoted run starting at `i` (doubled quotes and,
/// with `escapes`, backslash-escaped bytes inside), or the end of the script.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// The end of a dollar-quote delimiter (`$$` or `$tag$`) starting at `i`, if there is one there
/// (`$1`, a positional parameter, is not).
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && is_ident_start(b[j]) {
        j += 1;
        while j < b.len() && (is_ident_start(b[j]) || b[j].is_ascii_digit()) {
            j += 1;
        }
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn texts(sql: &str, d: Dialect) -> Vec<&str> {
        split_statements(sql, d)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn dollar_quotes_strings_and_comments_keep_their_semicolons() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n\
                   SELECT $tag$ a; $$ b; $tag$, E'it\\'s; ok', 'x''; y', \"we;ird\";\n\
                   /* outer /* inner; */ still; */ SELECT 2; -- c;\nSELECT $1;";
        assert_eq!(
            texts(sql, Dialect::Postgres),
            [
                "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
                "SELECT $tag$ a; $$ b; $tag$, E'it\\'s; ok', 'x''; y', \"we;ird\"",
                "SELECT 2",
                "SELECT $1",
            ]
        );
        // SQLite's comments do not nest, and `$` starts no quote there.
        assert_eq!(
            texts(
                "/* a /* b */ SELECT 1; SELECT '$$;'; SELECT [x;y] FROM `t;`",
                Dialect::Sqlite
            ),
            ["SELECT 1", "SELECT '$$;'", "SELECT [x;y] FROM `t;`"]
        );
    }

    #[test]
    fn bodies_with_begin_end_stay_whole() {
        let trigger = "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = CASE WHEN 1 THEN 2 END; DELETE FROM u; END;\nSELECT 1;";
        assert_eq!(texts(trigger, Dialect::Sqlite).len(), 2);
        let atomic = "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;\nSELECT 3;";
        let s = texts(atomic, Dialect::Postgres);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("SELECT 2; END"), "{s:?}");
        // A transaction's BEGIN at the top level splits as usual.
        assert_eq!(texts("BEGIN; SELECT 1; END;", Dialect::Sqlite).len(), 3);
        assert_eq!(
            texts("BEGIN; SELECT 1; COMMIT;", Dialect::Postgres).len(),
            3
        );
    }

    #[test]
    fn statements_start_at_their_code() {
        let sql = "-- cutover:phase expand\n-- cutover:no-transaction\n\nCREATE TABLE t (x int);\n  /* why */ CREATE INDEX i ON t (x) ;\n-- trailing;\n";
        let s = split_statements(sql, Dialect::Postgres);
        assert_eq!(s.len(), 2);
        assert_eq!(crate::migrations::line_of_byte(sql, s[0].offset), 4);
        assert_eq!(s[1].text, "CREATE INDEX i ON t (x)");
        assert_eq!(crate::migrations::line_of_byte(sql, s[1].offset), 5);
        assert!(split_statements(" ;; -- x\n", Dialect::Sqlite).is_empty());
        // Unterminated quotes run to the end (the database reports them).
        assert_eq!(texts("SELECT 'a; SELECT 1", Dialect::Sqlite).len(), 1);
        assert_eq!(texts("SELECT $x$ a; SELECT 1", Dialect::Postgres).len(), 1);
        // An identifier may hold `$` on PostgreSQL: no quote starts inside one.
        assert_eq!(
            texts("SELECT a$b$; SELECT 1; SELECT $b$", Dialect::Postgres).len(),
            3
        );
    }

    fn dialect() -> impl Strategy<Value = Dialect> {
        prop_oneof![Just(Dialect::Postgres), Just(Dialect::Sqlite)]
    }

    /// Text with a `;` in it, quoted so that both engines read it as one token.
    fn quoted() -> impl Strategy<Value = (String, bool)> {
        let inner = "[a-z ;$'\"\\\\\n-]{0,12}";
        prop_oneof![
            inner.prop_map(|s| (format!("'{}'", s.replace('\'', "''")), true)),
            inner.prop_map(|s| (format!("\"{}\"", s.replace('"', "\"\"")), true)),
            inner.prop_map(|s| (format!("/* {s} */"), true)),
            // PostgreSQL only: dollar quotes (the tag cannot occur in lower-case text) and E strings.
            inner.prop_map(|s| (format!("$Q$ {s} $Q$"), false)),
            inner.prop_map(|s| (
                format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
                false
            )),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_pieces_cover_every_byte(sql in "[a-zA-Z0-9 ;'\"`$E\\\\\\-\\n/*\\[\\]()é]{0,160}", d in dialect()) {
            let p = pieces(&sql, d);
            let joined: String = p.iter().map(|r| &sql[r.clone()]).collect();
            prop_assert_eq!(&joined, &sql);
            let mut last = 0;
            for st in split_statements(&sql, d) {
                prop_assert!(st.offset >= last);
                prop_assert_eq!(&sql[st.offset..st.offset + st.text.len()], st.text);
                prop_assert!(!st.text.is_empty());
                last = st.offset + st.text.len();
            }
        }

        #[test]
        fn a_quoted_semicolon_never_splits(
            parts in proptest::collection::vec((quoted(), "[a-z]{1,6}"), 1..6),
            d in dialect(),
        ) {
            let mut sql = String::new();
            let mut expected = Vec::new();
            for ((q, both), word) in &parts {
                let q = if *both || d == Dialect::Postgres { q.clone() } else { "'x;y'".to_owned() };
                let st = format!("SELECT {word} {q}");
                sql.push_str(&st);
                sql.push_str(";\n");
                expected.push(st);
            }
            let got: Vec<&str> = split_statements(&sql, d).into_iter().map(|s| s.text).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
