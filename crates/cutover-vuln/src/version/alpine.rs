//! Alpine (apk) versions: `number{.number}…{letter}{_suffix{number}}…{~hash}{-r#}`, suffixes ranked
//! `alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p`; a number after the first that
//! starts with `0` compares as text (apk's "fractional" rule). Strings that do not fit the grammar
//! are kept: they sort after valid ones with the same prefix and among themselves as text, which
//! is how osv.dev orders the corpus it generated from `apk version -t`.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

#[derive(Debug, Clone)]
struct Component {
    text: Box<str>,
    value: Num,
    index: usize,
}

/// A parsed Alpine version.
#[derive(Debug, Clone)]
pub struct ApkVersion {
    original: Box<str>,
    invalid: bool,
    components: Vec<Component>,
    letter: Option<u8>,
    /// (weight, number)
    suffixes: Vec<(u8, Num)>,
    build: Num,
    remainder: Box<str>,
}

const SUFFIXES: [(&str, u8); 9] = [
    ("alpha", 0),
    ("beta", 1),
    ("pre", 2),
    ("rc", 3),
    ("cvs", 5),
    ("svn", 6),
    ("git", 7),
    ("hg", 8),
    ("p", 9),
];
/// A missing suffix compares like this one.
const NO_SUFFIX: u8 = 5;

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Every `_suffix{number}` in `s`, left to right (not only at the start, as osv's parser does).
fn find_suffixes(s: &str) -> Vec<(usize, usize, u8, Num)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find('_') {
        let at = i + off;
        let rest = &s[at + 1..];
        if let Some((name, weight)) = SUFFIXES.iter().find(|(n, _)| rest.starts_with(n)) {
            let after = &rest[name.len()..];
            let n = digits(after);
            let end = at + 1 + name.len() + n;
            out.push((
                at,
                end,
                *weight,
                Num::parse(&after[..n]).unwrap_or_default(),
            ));
            i = end;
        } else {
            i = at + 1;
        }
    }
    out
}

/// Parses an apk version. Any non-empty string is accepted (see the module documentation).
pub fn parse(input: &str) -> Result<ApkVersion, VersionError> {
    let original = input.trim();
    if original.is_empty() {
        return Err(VersionError::new("Alpine", input, "empty version"));
    }
    let mut s = original;
    let mut components = Vec::new();
    loop {
        let n = digits(s);
        if n == 0 {
            break;
        }
        components.push(Component {
            text: s[..n].into(),
            value: Num::parse(&s[..n]).expect("a run of digits"),
            index: components.len(),
        });
        s = &s[n..];
        match s.strip_prefix('.') {
            Some(r) => s = r,
            None => break,
        }
    }
    let letter = s.bytes().next().filter(u8::is_ascii_lowercase);
    if letter.is_some() {
        s = &s[1..];
    }
    let mut suffixes = Vec::new();
    let scanned = s;
    for (start, end, weight, num) in find_suffixes(scanned) {
        suffixes.push((weight, num));
        // Only a suffix that follows directly is consumed; later ones still count (as in osv).
        if let Some(rest) = s.strip_prefix(&scanned[start..end]) {
            s = rest;
        }
    }
    if let Some(r) = s.strip_prefix('~') {
        let n = r
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        if n > 0 {
            s = &r[n..];
        }
    }
    let mut invalid = false;
    let mut build = Num::zero();
    if !s.is_empty() {
        match s.strip_prefix("-r") {
            Some(r) => {
                let n = digits(r);
                build = Num::parse(&r[..n]).unwrap_or_default();
                s = &r[n..];
            }
            None => invalid = true,
        }
    }
    Ok(ApkVersion {
        original: original.into(),
        invalid,
        components,
        letter,
        suffixes,
        build,
        remainder: s.into(),
    })
}

fn cmp_component(a: &Component, b: &Component) -> Ordering {
    if a.index != 0 && b.index != 0 && (a.text.starts_with('0') || b.text.starts_with('0')) {
        return a.text.cmp(&b.text);
    }
    a.value.cmp(&b.value)
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.invalid && other.invalid {
            return self.original.cmp(&other.original);
        }
        let zero = Component {
            text: "0".into(),
            value: Num::zero(),
            index: 0,
        };
        for i in 0..self.components.len().max(other.components.len()) {
            let a = self.components.get(i).unwrap_or(&zero);
            let b = other.components.get(i).unwrap_or(&zero);
            match cmp_component(a, b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match self.letter.cmp(&other.letter) {
            Ordering::Equal => {}
            o => return o,
        }
        let none = (NO_SUFFIX, Num::zero());
        for i in 0..self.suffixes.len().max(other.suffixes.len()) {
            let a = self.suffixes.get(i).unwrap_or(&none);
            let b = other.suffixes.get(i).unwrap_or(&none);
            match a.cmp(b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // A clean end beats leftovers.
        self.build
            .cmp(&other.build)
            .then_with(|| self.remainder.is_empty().cmp(&other.remainder.is_empty()))
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ApkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ApkVersion {}
