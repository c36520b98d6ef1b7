//! Property tests: the loader never panics, durations round-trip.

use proptest::prelude::*;

use cutover_config::Duration;

const KEYS: &[&str] = &[
    "[project]\n",
    "name = \"x\"\n",
    "[service]\n",
    "start = [\"a\", \"{port}\"]\n",
    "[environments.e]\n",
    "hosts = [\"local\"]\n",
    "strategy = { canary = [5, 100] }\n",
    "freeze = [\"Fri 16:00-Mon 08:00\"]\n",
    "promote_from = \"e\"\n",
    "[[checks]]\n",
    "timeout = \"5m\"\n",
    "run = \"x\"\n",
    "= \"\n",
    "[vulns]\n",
    "fail_on = 3\n",
    "\u{e9}\t\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = crate::load(&src);
    }

    #[test]
    fn config_shaped_text_never_panics_and_errors_are_located(
        parts in proptest::collection::vec(proptest::sample::select(KEYS), 0..12),
        cut in 0usize..400,
    ) {
        let mut src: String = parts.concat();
        let cut = cut.min(src.len());
        let cut = (0..=cut).rev().find(|i| src.is_char_boundary(*i)).unwrap();
        src.truncate(cut);
        if let Err(e) = crate::load(&src) {
            let text = e.to_string();
            prop_assert!(text.contains("cutover.toml:") || text.contains("environment variable"), "{}", text);
            let (_, line, column) = e.location().unwrap();
            prop_assert!(line >= 1 && column >= 1);
            prop_assert!(line <= src.split('\n').count().max(1));
        }
    }

    #[test]
    fn arbitrary_overrides_never_panic(
        name in "CUTOVER_[A-Z0-9_]{0,30}",
        value in any::<String>(),
    ) {
        let _ = cutover_config::load_str("[project]\nname = \"x\"\n", std::path::Path::new("c.toml"), &[(name, value)]);
    }

    #[test]
    fn durations_print_and_parse_back(
        parts in proptest::collection::vec((1u64..1000, proptest::sample::select(&["ms", "s", "m", "h", "d"][..])), 1..4)
    ) {
        let text: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
        let d = Duration::parse(&text).unwrap();
        prop_assert_eq!(d.as_str(), text.as_str());
        let json = serde_json::to_string(&d).unwrap();
        let back: Duration = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &d);
        // The canonical form denotes the same length of time.
        let canonical = Duration::from_std(d.get());
        prop_assert_eq!(Duration::parse(canonical.as_str()).unwrap().get(), d.get());
    }

    #[test]
    fn arbitrary_duration_text_never_panics(s in any::<String>()) {
        let _ = Duration::parse(&s);
    }
}

proptest! {
    #[test]
    fn freeze_windows_never_panic_and_keep_their_text(s in "[A-Za-z0-9:./ _-]{0,40}") {
        if let Ok(w) = cutover_config::FreezeWindow::parse(&s) {
            prop_assert_eq!(w.as_str(), s.as_str());
            prop_assert_eq!(cutover_config::FreezeWindow::parse(w.as_str()).unwrap(), w);
        }
    }

    #[test]
    fn weekly_windows_contain_their_start_and_not_their_end(
        d1 in 0u8..7, h1 in 0u16..24, d2 in 0u8..7, h2 in 0u16..24,
    ) {
        let day = |i: u8| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][usize::from(i)];
        let text = format!("{} {h1:02}:00-{} {h2:02}:00", day(d1), day(d2));
        let date = cutover_config::Date::parse("2026-01-01").unwrap();
        match cutover_config::FreezeWindow::parse(&text) {
            Ok(w) => {
                prop_assert!(w.contains_local(date, cutover_config::Weekday::from_index(d1), h1 * 60));
                prop_assert!(!w.contains_local(date, cutover_config::Weekday::from_index(d2), h2 * 60));
            }
            // Only a window that starts where it ends is refused.
            Err(_) => prop_assert!(d1 == d2 && h1 == h2),
        }
    }

    /// A frozen moment ends at a later moment that the window no longer covers, and every moment
    /// in between is frozen (checked at a few points), in any zone and across daylight saving.
    #[test]
    fn is_frozen_ends_later_at_an_unfrozen_moment(
        d1 in 0u8..7, m1 in 0u16..1440, d2 in 0u8..7, m2 in 0u16..1440,
        zone in proptest::sample::select(&["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"][..]),
        at in 1_767_225_600i64..1_830_297_600i64,
    ) {
        let day = |i: u8| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][usize::from(i)];
        let text = format!(
            "{} {:02}:{:02}-{} {:02}:{:02} {zone}",
            day(d1), m1 / 60, m1 % 60, day(d2), m2 / 60, m2 % 60
        );
        let Ok(w) = cutover_config::FreezeWindow::parse(&text) else {
            prop_assert!(d1 == d2 && m1 == m2);
            return Ok(());
        };
        let now = chrono::DateTime::from_timestamp(at, 0).unwrap();
        if let Some(end) = w.is_frozen(now) {
            prop_assert!(end > now, "{text}: {end} after {now}");
            prop_assert!(end - now <= chrono::Duration::days(8), "{text}: {end} after {now}");
            prop_assert_eq!(w.is_frozen(end), None, "{} at {}", text, end);
            let span = end - now;
            for k in 1..4 {
                let t = now + span * k / 4;
                // Local minutes are coarse: a moment inside the last minute may round out.
                if end - t > chrono::Duration::minutes(61) {
                    prop_assert!(w.is_frozen(t).is_some(), "{text}: {t} between {now} and {end}");
                }
            }
        }
    }
}
