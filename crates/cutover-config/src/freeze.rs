//! Freeze windows (`freeze = ["Fri 16:00-Mon 08:00 Europe/Berlin", "2026-12-24..2026-12-26"]`):
//! syntax, parsing and the typed form the deploy gates evaluate.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use chrono::{DateTime, Utc};
use jiff::tz::TimeZone;

use crate::types::{Date, with_hint};

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    fn parse(s: &str) -> Option<Self> {
        let l = s.to_ascii_lowercase();
        let names = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        names
            .iter()
            .position(|n| l.len() >= 3 && n.starts_with(&l))
            .map(|i| Self::ALL[i])
    }

    /// Days since Monday (Mon = 0 .. Sun = 6).
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The day `index` days after Monday (taken modulo 7).
    pub fn from_index(index: u8) -> Self {
        Self::ALL[usize::from(index % 7)]
    }
}

/// A point in a week: day and minute of the day (0..=1440; 1440 is the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeekTime {
    /// The day.
    pub day: Weekday,
    /// Minutes since midnight.
    pub minute: u16,
}

impl WeekTime {
    /// Minutes since Monday 00:00.
    pub fn minute_of_week(self) -> u32 {
        u32::from(self.day.index()) * 1440 + u32::from(self.minute)
    }
}

/// What a freeze window covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FreezeSpan {
    /// Every week from `from` to `to` (wrapping over the week's end when `to` is before `from`).
    Weekly {
        /// Start (inclusive).
        from: WeekTime,
        /// End (exclusive).
        to: WeekTime,
    },
    /// Whole days from `from` to `to`, both inclusive.
    Dates {
        /// First frozen day.
        from: Date,
        /// Last frozen day.
        to: Date,
    },
}

/// A period in which deployments to an environment are refused (unless overridden with a reason).
///
/// Syntax (time zone optional, default `UTC`; an IANA name like `Europe/Berlin`, or `UTC`):
/// - `"Fri 16:00-Mon 08:00 Europe/Berlin"`: weekly, from a day and time to a day and time;
/// - `"Mon 22:00-06:00"`: weekly, within (or overnight from) one day;
/// - `"Sat-Sun"`, `"Sun"`: weekly, whole days;
/// - `"2026-12-24..2026-12-26"`, `"2026-12-31"`: calendar dates, whole days, inclusive.
#[derive(Debug, Clone)]
pub struct FreezeWindow {
    text: String,
    /// What the window covers.
    pub span: FreezeSpan,
    /// The time zone the window is written in (an IANA name or `UTC`).
    pub tz: String,
    /// `tz` resolved when the window was parsed, so that evaluating it cannot fail later.
    zone: TimeZone,
}

// The resolved zone follows from `tz`: equality and hashing go by what was written.
impl PartialEq for FreezeWindow {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.span == other.span && self.tz == other.tz
    }
}
impl Eq for FreezeWindow {}
impl std::hash::Hash for FreezeWindow {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
        self.span.hash(state);
        self.tz.hash(state);
    }
}

/// A freeze in force: the window that covers the moment and when the freeze ends (the end of
/// that window, extended through every window that overlaps or adjoins it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen<'a> {
    /// The first window (in configuration order) that covers the moment.
    pub window: &'a FreezeWindow,
    /// The first moment at which no window covers time any more.
    pub ends_at: DateTime<Utc>,
}

/// Whether `windows` freeze deployments at `now`, and until when. Windows that chain (one ends
/// inside or at the start of another) count as one freeze; the search stops after a year.
pub fn is_frozen(windows: &[FreezeWindow], now: DateTime<Utc>) -> Option<Frozen<'_>> {
    let window = windows.iter().find(|w| w.is_frozen(now).is_some())?;
    let limit = now + chrono::Duration::days(366);
    let mut ends_at = now;
    loop {
        let next = windows.iter().filter_map(|w| w.is_frozen(ends_at)).max();
        match next {
            Some(end) if end > ends_at && end < limit => ends_at = end,
            Some(_) => {
                ends_at = limit;
                break;
            }
            None => break,
        }
    }
    Some(Frozen { window, ends_at })
}

impl FreezeWindow {
    /// The window as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the window covers a local moment, given in the window's own time zone (`tz`):
    /// its date, weekday and minute of the day (0..1440). Converting "now" into that zone is the
    /// caller's job, which keeps this crate free of a time zone database.
    pub fn contains_local(&self, date: Date, weekday: Weekday, minute: u16) -> bool {
        match &self.span {
            FreezeSpan::Dates { from, to } => *from <= date && date <= *to,
            FreezeSpan::Weekly { from, to } => {
                let m = WeekTime {
                    day: weekday,
                    minute,
                }
                .minute_of_week();
                let (f, t) = (from.minute_of_week(), to.minute_of_week());
                if f < t {
                    f <= m && m < t
                } else {
                    // The window runs over the end of the week (e.g. Sun 22:00 - Mon 06:00).
                    m >= f || m < t
                }
            }
        }
    }

    /// When this window covers `now`, the moment it ends (exclusive); `None` when it does not.
    /// Times are taken to the minute in the window's time zone; a local time that does not exist
    /// (a daylight-saving gap) ends the window at the first moment after the gap.
    pub fn is_frozen(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let ts = jiff::Timestamp::from_microsecond(now.timestamp_micros()).ok()?;
        let local = ts.to_zoned(self.zone.clone());
        let date = local.date();
        let weekday = Weekday::from_index(
            u8::try_from(local.weekday().to_monday_zero_offset()).expect("0..=6"),
        );
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
            .expect("a minute of the day fits in u16");
        let our_date = Date {
            year: u16::try_from(date.year()).ok()?,
            month: u8::try_from(date.month()).ok()?,
            day: u8::try_from(date.day()).ok()?,
        };
        if !self.contains_local(our_date, weekday, minute) {
            return None;
        }
        let (end_date, end_minute) = match &self.span {
            FreezeSpan::Dates { to, .. } => {
                let last = jiff::civil::Date::new(
                    i16::try_from(to.year).ok()?,
                    i8::try_from(to.month).ok()?,
                    i8::try_from(to.day).ok()?,
                )
                .ok()?;
                (last.tomorrow().ok()?, 0)
            }
            FreezeSpan::Weekly { to, .. } => {
                let ahead = (7 + i64::from(to.day.index()) - i64::from(weekday.index())) % 7;
                let mut d = date.checked_add(jiff::Span::new().days(ahead)).ok()?;
                let mut m = to.minute;
                if m == 1440 {
                    d = d.tomorrow().ok()?;
                    m = 0;
                }
                // An end earlier today than now is next week's.
                if (d, m) <= (date, minute) {
                    d = d.checked_add(jiff::Span::new().days(7)).ok()?;
                }
                (d, m)
            }
        };
        let end = end_date
            .at(
                i8::try_from(end_minute / 60).ok()?,
                i8::try_from(end_minute % 60).ok()?,
                0,
                0,
            )
            .to_zoned(self.zone.clone())
            .ok()?;
        DateTime::from_timestamp_micros(end.timestamp().as_microsecond())
    }

    /// Parses the syntax above. The error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err("empty freeze window".into());
        }
        // The time zone, when present, is the last word and is neither a day nor contains a time.
        let (body, tz) = match words.last() {
            Some(w) if words.len() > 1 && looks_like_tz(w) => {
                (words[..words.len() - 1].join(" "), (*w).to_string())
            }
            Some(w) if words.len() > 1 && !w.contains(':') && !w.contains("..") => {
                return Err(format!(
                    "invalid time zone `{w}`, expected an IANA name such as `Europe/Berlin`, or `UTC`"
                ));
            }
            _ => (words.join(" "), "UTC".to_string()),
        };
        let span = if body.starts_with(|c: char| c.is_ascii_digit()) {
            parse_dates(&body)?
        } else {
            parse_weekly(&body)?
        };
        let zone = zone(&tz)?;
        Ok(Self {
            text: text.to_string(),
            span,
            tz,
            zone,
        })
    }
}

fn zone(tz: &str) -> Result<TimeZone, String> {
    if matches!(tz, "UTC" | "GMT" | "Z") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(tz).map_err(|_| {
        format!(
            "unknown time zone `{tz}`, expected an IANA name such as `Europe/Berlin` (from this machine's time zone database), or `UTC`"
        )
    })
}

fn looks_like_tz(w: &str) -> bool {
    if matches!(w, "UTC" | "GMT" | "Z") {
        return true;
    }
    let parts: Vec<&str> = w.split('/').collect();
    parts.len() >= 2
        && parts[0]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

fn parse_dates(body: &str) -> Result<FreezeSpan, String> {
    let (a, b) = match body.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (body.trim(), body.trim()),
    };
    let from = Date::parse(a)?;
    let to = Date::parse(b)?;
    if to < from {
        return Err(format!("the date range `{body}` ends before it starts"));
    }
    Ok(FreezeSpan::Dates { from, to })
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("invalid time `{s}`, expected HH:MM (24-hour)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_day(s: &str) -> Result<Weekday, String> {
    Weekday::parse(s).ok_or_else(|| {
        format!("invalid day `{s}`, expected one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")
    })
}

fn parse_weekly(body: &str) -> Result<FreezeSpan, String> {
    let Some((a, b)) = body.split_once('-') else {
        if body.contains(':') {
            return Err(format!(
                "invalid freeze window `{body}`, expected a range like `Fri 16:00-Mon 08:00`"
            ));
        }
        // A single whole day.
        let day = parse_day(body.trim())?;
        return Ok(FreezeSpan::Weekly {
            from: WeekTime { day, minute: 0 },
            to: WeekTime { day, minute: 1440 },
        });
    };
    let (a, b) = (a.trim(), b.trim());
    let a_words: Vec<&str> = a.split_whitespace().collect();
    let b_words: Vec<&str> = b.split_whitespace().collect();
    match (a_words.as_slice(), b_words.as_slice()) {
        ([d1], [d2]) if !d1.contains(':') && !d2.contains(':') => Ok(FreezeSpan::Weekly {
            from: WeekTime {
                day: parse_day(d1)?,
                minute: 0,
            },
            to: WeekTime {
                day: parse_day(d2)?,
                minute: 1440,
            },
        }),
        ([d1, t1], [d2, t2]) => {
            let from = WeekTime {
                day: parse_day(d1)?,
                minute: parse_time(t1)?,
            };
            let to = WeekTime {
                day: parse_day(d2)?,
                minute: parse_time(t2)?,
            };
            if from.minute_of_week() % 10080 == to.minute_of_week() % 10080 {
                return Err(
                    "it covers the whole week, so deployments could never happen".to_string(),
                );
            }
            Ok(FreezeSpan::Weekly { from, to })
        }
        ([d1, t1], [t2]) => {
            let day = parse_day(d1)?;
            let from = parse_time(t1)?;
            let to = parse_time(t2)?;
            // An end at or before the start runs overnight into the next day.
            let to_day = if to <= from {
                Weekday::ALL[(usize::from(day.index()) + 1) % 7]
            } else {
                day
            };
            Ok(FreezeSpan::Weekly {
                from: WeekTime { day, minute: from },
                to: WeekTime {
                    day: to_day,
                    minute: to,
                },
            })
        }
        _ => Err(format!(
            "invalid freeze window `{body}`, expected e.g. `Fri 16:00-Mon 08:00`, `Sat-Sun` or `2026-12-24..2026-12-26`"
        )),
    }
}

impl fmt::Display for FreezeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for FreezeWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FreezeWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FreezeWindow::parse(&s).map_err(|e| {
            de::Error::custom(with_hint(
                format!("invalid freeze window `{s}`: {e}"),
                "freeze windows look like \"Fri 16:00-Mon 08:00 Europe/Berlin\", \"Sat-Sun\" or \"2026-12-24..2026-12-26\"",
            ))
        })
    }
}

impl JsonSchema for FreezeWindow {
    fn schema_name() -> Cow<'static, str> {
        "FreezeWindow".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A freeze window: weekly (\"Fri 16:00-Mon 08:00 Europe/Berlin\", \"Mon 22:00-06:00\", \"Sat-Sun\") or calendar dates (\"2026-12-24..2026-12-26\", \"2026-12-31\"), with an optional IANA time zone (default UTC).",
            "examples": ["Fri 16:00-Mon 08:00 Europe/Berlin", "2026-12-24..2026-12-26"]
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn weekly_with_tz() {
        let w = FreezeWindow::parse("Fri 16:00-Mon 08:00 Europe/Berlin").unwrap();
        assert_eq!(w.tz, "Europe/Berlin");
        assert_eq!(
            w.span,
            FreezeSpan::Weekly {
                from: WeekTime {
                    day: Weekday::Fri,
                    minute: 960
                },
                to: WeekTime {
                    day: Weekday::Mon,
                    minute: 480
                }
            }
        );
    }

    #[test]
    fn contains_local_moments() {
        let d = Date::parse("2026-11-27").unwrap();
        let w = FreezeWindow::parse("Fri 16:00-Mon 08:00 Europe/Berlin").unwrap();
        assert!(!w.contains_local(d, Weekday::Fri, 15 * 60 + 59));
        assert!(w.contains_local(d, Weekday::Fri, 16 * 60));
        assert!(w.contains_local(d, Weekday::Sun, 12 * 60));
        assert!(w.contains_local(d, Weekday::Mon, 7 * 60 + 59));
        assert!(!w.contains_local(d, Weekday::Mon, 8 * 60));
        assert!(!w.contains_local(d, Weekday::Wed, 12 * 60));

        let wrap = FreezeWindow::parse("Sun 22:00-Mon 06:00").unwrap();
        assert!(wrap.contains_local(d, Weekday::Sun, 23 * 60));
        assert!(wrap.contains_local(d, Weekday::Mon, 60));
        assert!(!wrap.contains_local(d, Weekday::Sat, 23 * 60));

        let night = FreezeWindow::parse("Tue 22:00-06:00").unwrap();
        assert!(night.contains_local(d, Weekday::Wed, 5 * 60));
        assert!(!night.contains_local(d, Weekday::Tue, 21 * 60));

        let weekend = FreezeWindow::parse("Sat-Sun").unwrap();
        assert!(weekend.contains_local(d, Weekday::Sun, 23 * 60 + 59));
        assert!(!weekend.contains_local(d, Weekday::Mon, 0));

        let xmas = FreezeWindow::parse("2026-12-24..2026-12-26").unwrap();
        assert!(xmas.contains_local(Date::parse("2026-12-26").unwrap(), Weekday::Sat, 0));
        assert!(!xmas.contains_local(Date::parse("2026-12-27").unwrap(), Weekday::Sun, 0));
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn is_frozen_says_until_when_in_the_windows_zone() {
        // 2026-11-27 is a Friday; Berlin is UTC+1 in November.
        let w = FreezeWindow::parse("Fri 16:00-Mon 08:00 Europe/Berlin").unwrap();
        assert_eq!(w.is_frozen(utc("2026-11-27T14:59:00Z")), None);
        assert_eq!(
            w.is_frozen(utc("2026-11-27T15:00:00Z")),
            Some(utc("2026-11-30T07:00:00Z"))
        );
        assert_eq!(
            w.is_frozen(utc("2026-11-30T06:59:59Z")),
            Some(utc("2026-11-30T07:00:00Z"))
        );
        assert_eq!(w.is_frozen(utc("2026-11-30T07:00:00Z")), None);

        // A whole day ends at the next midnight; a date range after its last day.
        let sun = FreezeWindow::parse("Sun").unwrap();
        assert_eq!(
            sun.is_frozen(utc("2026-11-29T10:00:00Z")),
            Some(utc("2026-11-30T00:00:00Z"))
        );
        let xmas = FreezeWindow::parse("2026-12-24..2026-12-26 America/New_York").unwrap();
        assert_eq!(
            xmas.is_frozen(utc("2026-12-25T12:00:00Z")),
            Some(utc("2026-12-27T05:00:00Z"))
        );
        assert_eq!(xmas.is_frozen(utc("2026-12-27T05:00:00Z")), None);

        // Nearly the whole week: the end that is earlier today is next week's.
        let long = FreezeWindow::parse("Tue 10:00-Tue 09:00").unwrap();
        assert_eq!(
            long.is_frozen(utc("2026-11-24T11:00:00Z")),
            Some(utc("2026-12-01T09:00:00Z"))
        );
        assert_eq!(long.is_frozen(utc("2026-11-24T09:30:00Z")), None);

        // Across the spring daylight-saving change (Berlin, 2027-03-28 02:00 -> 03:00).
        let night = FreezeWindow::parse("Sat 22:00-Sun 02:30 Europe/Berlin").unwrap();
        assert_eq!(
            night.is_frozen(utc("2027-03-27T23:00:00Z")),
            Some(utc("2027-03-28T01:30:00Z"))
        );
    }

    #[test]
    fn windows_that_chain_are_one_freeze() {
        let windows = [
            FreezeWindow::parse("Sat-Sun").unwrap(),
            FreezeWindow::parse("Fri 18:00-Sat 00:00").unwrap(),
            FreezeWindow::parse("2026-11-30").unwrap(),
        ];
        let f = is_frozen(&windows, utc("2026-11-27T19:00:00Z")).unwrap();
        assert_eq!(f.window.as_str(), "Fri 18:00-Sat 00:00");
        assert_eq!(f.ends_at, utc("2026-12-01T00:00:00Z"));
        assert!(is_frozen(&windows, utc("2026-11-27T17:59:00Z")).is_none());
        assert!(is_frozen(&[], utc("2026-11-27T17:59:00Z")).is_none());
    }

    #[test]
    fn forms() {
        for ok in [
            "Sat-Sun",
            "Sun",
            "Mon 22:00-06:00",
            "2026-12-24..2026-12-26",
            "2026-12-31 UTC",
            "friday 16:00-monday 08:00 America/New_York",
        ] {
            FreezeWindow::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "Fry 16:00-Mon 08:00",
            "Fri 25:00-Mon 08:00",
            "2026-12-26..2026-12-24",
            "2026-02-30",
            "Fri 16:00-Mon 08:00 berlin",
            "Mon 00:00-Mon 00:00",
            "Sun 24:00-Mon 00:00",
            "whenever",
        ] {
            assert!(FreezeWindow::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
