//! Version ordering for `bom diff`: SemVer where both sides parse, else a natural order (digit
//! runs compared as numbers). Exact per-ecosystem ordering lives in the vulnerability crate.

use std::cmp::Ordering;

/// Compares two versions of the same package.
pub fn compare(a: &str, b: &str) -> Ordering {
    let strip = |s: &str| s.strip_prefix('v').unwrap_or(s).to_owned();
    if let (Ok(x), Ok(y)) = (
        semver::Version::parse(&strip(a)),
        semver::Version::parse(&strip(b)),
    ) {
        return x.cmp(&y).then_with(|| a.cmp(b));
    }
    natural(a, b)
}

/// Splits into alternating digit and non-digit runs; digits compare numerically, text
/// lexically, and a pre-release-looking text run (`-rc1` after a number) sorts before nothing.
fn natural(a: &str, b: &str) -> Ordering {
    let ta = tokens(a);
    let tb = tokens(b);
    for (x, y) in ta.iter().zip(tb.iter()) {
        let o = match (x, y) {
            (Tok::Num(p), Tok::Num(q)) => p
                .trim_start_matches('0')
                .len()
                .cmp(&q.trim_start_matches('0').len())
                .then_with(|| p.trim_start_matches('0').cmp(q.trim_start_matches('0'))),
            (Tok::Text(p), Tok::Text(q)) => p.cmp(q),
            (Tok::Num(_), Tok::Text(_)) => Ordering::Greater,
            (Tok::Text(_), Tok::Num(_)) => Ordering::Less,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    // `1.0` < `1.0.1`, but `1.0-rc1` < `1.0`.
    match ta.len().cmp(&tb.len()) {
        Ordering::Greater => match &ta[tb.len()] {
            Tok::Text(t) if is_pre(t) => Ordering::Less,
            _ => Ordering::Greater,
        },
        Ordering::Less => match &tb[ta.len()] {
            Tok::Text(t) if is_pre(t) => Ordering::Greater,
            _ => Ordering::Less,
        },
        Ordering::Equal => a.cmp(b),
    }
}

fn is_pre(t: &str) -> bool {
    let t = t
        .trim_start_matches(['-', '.', '_', '~'])
        .to_ascii_lowercase();
    [
        "alpha", "beta", "rc", "pre", "dev", "a", "b", "c", "snapshot", "m",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

enum Tok<'a> {
    Num(&'a str),
    Text(&'a str),
}

fn tokens(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let digit = bytes[i].is_ascii_digit();
        while i < bytes.len() && bytes[i].is_ascii_digit() == digit {
            i += 1;
        }
        let run = &s[start..i];
        if digit {
            out.push(Tok::Num(run));
        } else if run != "." {
            out.push(Tok::Text(run));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        let asc = [
            ("1.0.0", "1.0.1"),
            ("1.2.3", "1.10.0"),
            ("1.0.0-rc.1", "1.0.0"),
            ("v1.2.0", "v1.3.0"),
            ("2.0", "2.0.1"),
            ("2.0rc1", "2.0"),
            ("1.9", "1.10"),
            ("20200101", "20210101"),
        ];
        for (a, b) in asc {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare("1.0.0", "1.0.0"), Ordering::Equal);
    }
}
