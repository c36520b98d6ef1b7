//! Arbitrary-size non-negative integers as digit strings: version components are unbounded in every
//! ecosystem's own implementation (Python ints, Ruby Integers, Java BigInteger), so no fixed width.

use std::cmp::Ordering;
use std::fmt;

/// A non-negative integer of any size, kept as its decimal digits without leading zeros.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Num(Box<str>);

impl Num {
    /// Parses ASCII digits (leading zeros allowed and dropped). `None` when empty or not all digits.
    pub fn parse(digits: &str) -> Option<Num> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        Some(Num(trimmed.into()))
    }

    /// Zero.
    pub fn zero() -> Num {
        Num("".into())
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    /// The digits without leading zeros (`"0"` for zero).
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() { "0" } else { &self.0 }
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `s` is a non-empty run of ASCII digits.
pub fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_magnitude_not_text() {
        let n = |s| Num::parse(s).unwrap();
        assert!(n("9") < n("10"));
        assert_eq!(n("007"), n("7"));
        assert_eq!(n("000"), Num::zero());
        assert!(n("999999999999999999999999999991") < n("999999999999999999999999999999"));
        assert_eq!(Num::parse(""), None);
        assert_eq!(Num::parse("1a"), None);
    }
}
