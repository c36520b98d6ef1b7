//! PyPI versions: PEP 440 as `packaging.version` parses, normalises and orders them.
//!
//! Spellings are normalised the way `packaging` does (`1.0-RC1` is `1.0rc1`, `1.0.post` is
//! `1.0.post0`, `1.0-1` is `1.0.post1`, `alpha`/`beta`/`c`/`pre`/`preview` are `a`/`b`/`rc`, `rev`/`r`
//! are `post`). Strings that are not PEP 440 are ordered as `packaging`'s `LegacyVersion` did (all of
//! them before every valid version): PyPI still serves such releases and OSV ranges name them.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

/// The pre-release part of the sort key; the variant order is the sort order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Pre {
    /// A dev release of a final version (`1.0.dev1`) sorts before all of its pre-releases.
    DevOfFinal,
    /// `(a|b|rc, number)`: labels ordered a < b < rc.
    Label(u8, Num),
    /// No pre-release.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dev {
    Some(Num),
    /// No dev part sorts after any dev part.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LocalSeg {
    /// Letters sort before numbers.
    Alpha(Box<str>),
    Num(Num),
}

/// A parsed PyPI version; `Ord` is `packaging`'s order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pep440 {
    /// Not PEP 440: `LegacyVersion`'s key (epoch -1, so before every valid version).
    Legacy(Vec<Box<str>>),
    /// A PEP 440 version's sort key.
    Valid(Key),
}

/// The sort key of a valid PEP 440 version (field order is comparison order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    epoch: Num,
    /// Release numbers with trailing zeros removed (`1.0` == `1`).
    release: Vec<Num>,
    pre: Pre,
    /// `None` sorts before any post release.
    post: Option<Num>,
    dev: Dev,
    /// `None` sorts before any local version.
    local: Option<Vec<LocalSeg>>,
}

impl Pep440 {
    /// Whether the string was not PEP 440 (ordered by the legacy rules).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Pep440::Legacy(_))
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn digits(&mut self) -> Option<Num> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits are UTF-8");
        Num::parse(text)
    }
    fn sep(&mut self) -> bool {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Consumes the first of `words` (longest listed first) that follows, case-insensitively.
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let rest = &self.s[self.i..];
        for (k, w) in words.iter().enumerate() {
            if rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes()) {
                self.i += w.len();
                return Some(k);
            }
        }
        None
    }
}

/// Parses the PEP 440 grammar (`packaging`'s `VERSION_PATTERN`); `None` if it does not match.
fn parse_valid(s: &str) -> Option<Key> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    if matches!(c.peek(), Some(b'v' | b'V')) {
        c.i += 1;
    }
    let first = c.digits()?;
    let (epoch, mut release) = if c.peek() == Some(b'!') {
        c.i += 1;
        (first, vec![c.digits()?])
    } else {
        (Num::zero(), vec![first])
    };
    loop {
        let save = c.i;
        if c.peek() == Some(b'.') {
            c.i += 1;
            if let Some(n) = c.digits() {
                release.push(n);
                continue;
            }
        }
        c.i = save;
        break;
    }
    while release.last().is_some_and(Num::is_zero) {
        release.pop();
    }

    // Pre-release: [-_.]? (alpha|a|beta|b|preview|pre|c|rc) [-_.]? N?
    let mut pre = None;
    {
        let save = c.i;
        c.sep();
        const PRE: [&str; 8] = ["alpha", "a", "beta", "b", "preview", "pre", "rc", "c"];
        match c.word(&PRE) {
            Some(k) => {
                let label = match PRE[k] {
                    "alpha" | "a" => 0,
                    "beta" | "b" => 1,
                    _ => 2,
                };
                c.sep();
                pre = Some((label, c.digits().unwrap_or_default()));
            }
            None => c.i = save,
        }
    }

    // Post-release: -N | [-_.]? (post|rev|r) [-_.]? N?
    let mut post = None;
    {
        let save = c.i;
        if c.peek() == Some(b'-') {
            c.i += 1;
            if let Some(n) = c.digits() {
                post = Some(n);
            } else {
                c.i = save;
            }
        }
        if post.is_none() {
            c.sep();
            if c.word(&["post", "rev", "r"]).is_some() {
                c.sep();
                post = Some(c.digits().unwrap_or_default());
            } else {
                c.i = save;
            }
        }
    }

    // Dev release: [-_.]? dev [-_.]? N?
    let mut dev = None;
    {
        let save = c.i;
        c.sep();
        if c.word(&["dev"]).is_some() {
            c.sep();
            dev = Some(c.digits().unwrap_or_default());
        } else {
            c.i = save;
        }
    }

    // Local version: + [a-z0-9]+ ([-_.][a-z0-9]+)*
    let mut local = None;
    if c.peek() == Some(b'+') {
        c.i += 1;
        let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
        let mut segs = Vec::new();
        for seg in rest.split(['-', '_', '.']) {
            if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            segs.push(match Num::parse(seg) {
                Some(n) => LocalSeg::Num(n),
                None => LocalSeg::Alpha(seg.to_ascii_lowercase().into()),
            });
        }
        c.i = c.s.len();
        local = Some(segs);
    }
    if c.i != c.s.len() {
        return None;
    }
    let pre_key = match (&pre, &post, &dev) {
        (None, None, Some(_)) => Pre::DevOfFinal,
        (None, _, _) => Pre::None,
        (Some((l, n)), _, _) => Pre::Label(*l, n.clone()),
    };
    Some(Key {
        epoch,
        release,
        pre: pre_key,
        post,
        dev: match dev {
            Some(n) => Dev::Some(n),
            None => Dev::None,
        },
        local,
    })
}

/// `packaging` (< 22) `LegacyVersion` key: the string cut into digit runs, letter runs, `.` and
/// `-` (plus whatever lies between them), numbers zero-padded to 8 for text comparison.
fn legacy_key(s: &str) -> Vec<Box<str>> {
    let lower = s.to_lowercase();
    let mut pieces: Vec<&str> = Vec::new();
    let b = lower.as_bytes();
    let mut i = 0;
    let mut other_start = 0;
    while i < b.len() {
        let start = i;
        let matched = if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            true
        } else if b[i].is_ascii_lowercase() {
            while i < b.len() && b[i].is_ascii_lowercase() {
                i += 1;
            }
            true
        } else if b[i] == b'.' || b[i] == b'-' {
            i += 1;
            true
        } else {
            false
        };
        if matched {
            if other_start < start {
                pieces.push(&lower[other_start..start]);
            }
            pieces.push(&lower[start..i]);
            other_start = i;
        } else {
            // Advance by a whole UTF-8 character so slices stay on boundaries.
            i += lower[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if other_start < b.len() {
        pieces.push(&lower[other_start..]);
    }

    let mut parts: Vec<Box<str>> = Vec::new();
    let mut push = |part: String| {
        if part.starts_with('*') {
            if part.as_str() < "*final" {
                while parts.last().is_some_and(|p| &**p == "*final-") {
                    parts.pop();
                }
            }
            while parts.last().is_some_and(|p| &**p == "00000000") {
                parts.pop();
            }
        }
        parts.push(part.into());
    };
    for piece in pieces {
        let piece = match piece {
            "pre" | "preview" | "rc" => "c",
            "-" => "final-",
            "dev" => "@",
            p => p,
        };
        if piece.is_empty() || piece == "." {
            continue;
        }
        if piece.as_bytes()[0].is_ascii_digit() {
            push(format!("{piece:0>8}"));
        } else {
            push(format!("*{piece}"));
        }
    }
    push("*final".to_string());
    parts
}

/// Parses a PyPI version. Only the empty string is an error: anything else that is not PEP 440 is
/// a legacy version (see the module documentation).
pub fn parse(input: &str) -> Result<Pep440, VersionError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(VersionError::new(
            "PyPI",
            input,
            "empty version (expected PEP 440, e.g. 1.0.post1)",
        ));
    }
    Ok(match parse_valid(s) {
        Some(k) => Pep440::Valid(k),
        None => Pep440::Legacy(legacy_key(s)),
    })
}

/// Compares two parsed versions (helper for callers that hold strings).
pub fn cmp_str(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, b: &str) {
        assert_eq!(cmp_str(a, b).unwrap(), Ordering::Equal, "{a} == {b}");
    }

    #[test]
    fn normalises_spellings() {
        eq("1.0-RC1", "1.0rc1");
        eq("1.0.post", "1.0.post0");
        eq("1.0-1", "1.0.post1");
        eq("1.0_rev_2", "1.0.post2");
        eq("1.0alpha", "1.0a0");
        eq("1.0c1", "1.0rc1");
        eq("1.0-preview.3", "1.0rc3");
        eq("v1.0", "1.0.0");
        eq("1.0+Ubuntu-1", "1.0+ubuntu.1");
        eq("0!1.0", "1.0");
        assert!(!parse("1.0-RC1").unwrap().is_legacy());
        assert!(parse("1.0+").unwrap().is_legacy());
    }

    #[test]
    fn orders_the_pep_440_example() {
        // The ordering example from PEP 440's "Summary of permitted suffixes and relative ordering".
        let list = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in list.windows(2) {
            assert_eq!(
                cmp_str(w[0], w[1]).unwrap(),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
    }
}
