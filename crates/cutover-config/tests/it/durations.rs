//! Durations: the human syntax, the text kept for serialising, the errors.

use cutover_config::Duration;

#[test]
fn parses_human_durations() {
    for (text, ms) in [
        ("500ms", 500),
        ("2s", 2_000),
        ("2m", 120_000),
        ("1h30m", 5_400_000),
        ("1h 30m", 5_400_000),
        ("1d", 86_400_000),
        ("0s", 0),
    ] {
        let d = Duration::parse(text).unwrap();
        assert_eq!(d.get().as_millis(), ms, "{text}");
        assert_eq!(d.as_str(), text);
        assert_eq!(d.to_string(), text);
    }
}

#[test]
fn rejects_what_is_not_a_duration() {
    for text in ["", "5", "-5s", "fast", "5 parsecs", "m"] {
        let e = Duration::parse(text).unwrap_err();
        assert!(e.to_string().contains(&format!("`{text}`")), "{e}");
    }
}

#[test]
fn serialises_to_the_written_text() {
    let d = Duration::parse("1h30m").unwrap();
    assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
    let back: Duration = serde_json::from_str("\"1h30m\"").unwrap();
    assert_eq!(back, d);
    assert_eq!(
        Duration::from_std(std::time::Duration::from_secs(5400)).as_str(),
        "1h30m"
    );
}

#[test]
fn bare_numbers_get_a_hint_with_a_unit() {
    let err =
        crate::load("[project]\nname = \"x\"\n[service]\nstart = [\"a\"]\nstop_timeout = 30\n")
            .unwrap_err();
    assert_eq!(
        err.hint().as_deref(),
        Some("write it as a string with a unit, e.g. \"30s\" or \"30ms\"")
    );
    assert_eq!(err.location().unwrap().1, 5);
}
