//! Instants as people type them: `2026-11-26T14:32:00Z`, `2026-11-26 14:32[:05][.123] [UTC|Z|+02:00]`,
//! `2026-11-26` (midnight UTC), `now`, and durations ago: `2h ago`, `90m`, `3 days ago`.

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone as _, Utc};
use cutover_store::Timestamp;

/// A text that is none of the accepted forms of an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a time: {reason}")]
pub struct TimeError {
    pub text: String,
    pub reason: String,
}

impl TimeError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            // Untrusted input is echoed: keep it short and printable.
            text: text.chars().take(80).filter(|c| !c.is_control()).collect(),
            reason: reason.into(),
        }
    }

    /// The accepted forms.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        "give an RFC 3339 time (2026-11-26T14:32:00Z), `YYYY-MM-DD HH:MM[:SS]` (UTC, or followed by \
         an offset such as +02:00), a date (midnight UTC), `now`, or a duration ago (`2h ago`, `90m`, \
         `3 days ago`)"
    }
}

/// Parses `text` as an instant; relative forms count back from `now`. Times without an offset are
/// UTC. The result keeps microseconds, as the store does.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(TimeError::new(text, "it is empty"));
    }
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && let Ok((date, rest)) = NaiveDate::parse_and_remainder(s, "%Y-%m-%d")
    {
        return absolute(text, date, rest);
    }
    relative(text, s, now)
}

fn absolute(text: &str, date: NaiveDate, rest: &str) -> Result<Timestamp, TimeError> {
    if rest.is_empty() {
        let midnight = date.and_time(NaiveTime::MIN);
        return Ok(midnight.and_utc());
    }
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']).map(str::trim_start) else {
        return Err(TimeError::new(
            text,
            "expected `T` or a space between the date and the time",
        ));
    };
    let (time, zone) = NaiveTime::parse_and_remainder(rest, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_and_remainder(rest, "%H:%M"))
        .map_err(|_| {
            TimeError::new(
                text,
                "expected the time as HH:MM or HH:MM:SS after the date",
            )
        })?;
    let local = date.and_time(time);
    let zone = zone.trim();
    let offset = match zone {
        "" | "Z" | "z" | "UTC" | "utc" => FixedOffset::east_opt(0).expect("zero is a valid offset"),
        _ => parse_offset(zone).ok_or_else(|| {
            TimeError::new(
                text,
                format!("`{zone}` is not an offset; expected Z, UTC, +HH:MM or -HH:MM"),
            )
        })?,
    };
    let at = offset
        .from_local_datetime(&local)
        .single()
        .ok_or_else(|| TimeError::new(text, "that local time does not exist"))?;
    Ok(truncate_to_micros(at.with_timezone(&Utc)))
}

/// `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH`.
fn parse_offset(zone: &str) -> Option<FixedOffset> {
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits: String = match digits.len() {
        2 | 4 => digits.to_owned(),
        5 if digits.as_bytes()[2] == b':' => digits.replacen(':', "", 1),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

fn relative(text: &str, s: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    let amount = s.strip_suffix("ago").map_or(s, str::trim_end);
    if amount.is_empty() || !amount.as_bytes()[0].is_ascii_digit() {
        return Err(TimeError::new(
            text,
            "expected a date, a time or a duration ago",
        ));
    }
    let ago = humantime::parse_duration(amount)
        .map_err(|e| TimeError::new(text, format!("not a duration ago ({e})")))?;
    let ago = chrono::Duration::from_std(ago)
        .map_err(|_| TimeError::new(text, "that duration is too long"))?;
    now.checked_sub_signed(ago)
        .map(truncate_to_micros)
        .ok_or_else(|| TimeError::new(text, "that is before the earliest time there is"))
}

fn truncate_to_micros(t: Timestamp) -> Timestamp {
    let nanos = t.timestamp_subsec_nanos();
    t - chrono::Duration::nanoseconds(i64::from(nanos % 1_000))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("2026-11-26T14:32:00Z", "2026-11-26T14:32:00Z"),
            ("2026-11-26T14:32:00+02:00", "2026-11-26T12:32:00Z"),
            ("2026-11-26 14:32", "2026-11-26T14:32:00Z"),
            ("2026-11-26 14:32:05", "2026-11-26T14:32:05Z"),
            ("2026-11-26 14:32:05.25", "2026-11-26T14:32:05.250Z"),
            ("2026-11-26 14:32 UTC", "2026-11-26T14:32:00Z"),
            ("2026-11-26 14:32:05 +0130", "2026-11-26T13:02:05Z"),
            ("2026-11-26 14:32-05:00", "2026-11-26T19:32:00Z"),
            ("2026-11-26", "2026-11-26T00:00:00Z"),
            ("now", "2026-11-26T12:00:00Z"),
            ("2h ago", "2026-11-26T10:00:00Z"),
            ("90m", "2026-11-26T10:30:00Z"),
            ("3 days ago", "2026-11-23T12:00:00Z"),
            ("1h 30m ago", "2026-11-26T10:30:00Z"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text, now()).unwrap(), t(want), "{text}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("yesterday", "expected a date"),
            ("2026-11-26 25:00", "HH:MM"),
            ("2026-11-26 14:32 CEST", "not an offset"),
            ("2026-11-26x14:32", "between the date and the time"),
            ("2h later", "not a duration"),
        ] {
            let err = parse_time(text, now()).unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_time(&s, now());
        }

        #[test]
        fn printed_instants_parse_back(secs in 0i64..4_000_000_000, micros in 0u32..1_000_000,
                                       offset_min in -(23 * 60 + 59)..(23 * 60 + 59)) {
            let at = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap();
            prop_assert_eq!(parse_time(&at.to_rfc3339(), now()).unwrap(), at);
            let zone = FixedOffset::east_opt(offset_min * 60).unwrap();
            let local = at.with_timezone(&zone);
            let text = local.format("%Y-%m-%d %H:%M:%S%.6f %:z").to_string();
            prop_assert_eq!(parse_time(&text, now()).unwrap(), at);
        }

        #[test]
        fn hours_ago_count_back_from_now(h in 0u32..100_000) {
            let got = parse_time(&format!("{h}h ago"), now()).unwrap();
            prop_assert_eq!(now() - got, chrono::Duration::hours(i64::from(h)));
        }
    }
}
