//! The Atom feed: parsed back with a real XML parser (quick-xml), checked against RFC 4287's
//! required elements, snapshotted, and fuzzed with arbitrary text.
#![allow(clippy::unwrap_used)] // Tests panic on purpose: a failure here is a failed test.

use chrono::TimeZone as _;
use cutover_config::{AtomFeed, Event};
use cutover_notify::{Notification, atom_feed};
use quick_xml::events::Event as X;
use serde_json::json;

/// A parsed element.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn all(&self, name: &str) -> Vec<&Node> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
    fn one(&self, name: &str) -> &Node {
        let found = self.all(name);
        assert_eq!(found.len(), 1, "exactly one <{name}> in <{}>", self.name);
        found[0]
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole document with quick-xml (end tags must match; entities resolved).
fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let element = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, String> {
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            attrs.push((
                a.key.as_ref().to_owned(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|e| e.to_string())?
                    .into_owned(),
            ));
        }
        Ok(Node {
            name: e.name().as_ref().to_owned(),
            attrs,
            ..Node::default()
        })
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            X::Start(e) => stack.push(element(&e)?),
            X::Empty(e) => {
                let node = element(&e)?;
                stack.last_mut().unwrap().children.push(node);
            }
            X::End(_) => {
                let node = stack.pop().unwrap();
                stack.last_mut().ok_or("unbalanced")?.children.push(node);
            }
            X::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
            X::GeneralRef(r) => {
                let name = r.xml10_content();
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity {other}")),
                    },
                };
                stack.last_mut().unwrap().text.push(c);
            }
            X::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().ok_or("empty")?;
    if !stack.is_empty() || doc.children.len() != 1 {
        return Err("not one root element".into());
    }
    Ok(doc.children.remove(0))
}

fn note(seq: i64, event: Event, title: &str, summary: &str) -> Notification {
    Notification {
        seq,
        at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
            .unwrap()
            + chrono::Duration::minutes(seq),
        event,
        title: title.to_owned(),
        summary: summary.to_owned(),
        url: None,
        payload: json!({}),
    }
}

fn feed(events: Option<Vec<Event>>, max_entries: u32) -> AtomFeed {
    AtomFeed {
        title: Some("hello releases".into()),
        max_entries,
        events,
    }
}

#[test]
fn the_feed_is_valid_atom_with_the_newest_entries_first() {
    let entries = [
        note(
            3,
            Event::Released,
            "Released 1.4.0",
            "1.4.0 was released as tag v1.4.0.",
        ),
        note(
            9,
            Event::Delivered,
            "1.4.0 delivered to production",
            "proof from 2 hosts (web-1, web-2).",
        ),
        note(
            12,
            Event::Incident,
            "Incident 4 opened in production",
            "checkout <500s> & \"timeouts\"",
        ),
        note(
            5,
            Event::Notice,
            "Advance shipping notice: 1.5.0",
            "Version 1.5.0 is coming.",
        ),
    ];
    let xml = atom_feed(&entries, &feed(None, 3), "https://cutover.example.com/");
    insta::assert_snapshot!("feed", xml);
    let root = parse(&xml).unwrap();
    assert_eq!(root.name, "feed");
    assert_eq!(root.attr("xmlns"), Some("http://www.w3.org/2005/Atom"));
    // RFC 4287 4.1.1: a feed has exactly one id, title and updated, and an author (or every
    // entry has one).
    assert_eq!(root.one("id").text, "https://cutover.example.com/feed.xml");
    assert_eq!(root.one("title").text, "hello releases");
    assert_eq!(root.one("updated").text, "2026-11-26T10:12:00Z");
    assert_eq!(root.one("author").one("name").text, "cutover");
    let entries = root.all("entry");
    let ids: Vec<&str> = entries.iter().map(|e| e.one("id").text.as_str()).collect();
    assert_eq!(
        ids,
        [
            "https://cutover.example.com/audit?seq=12",
            "https://cutover.example.com/audit?seq=9",
            "https://cutover.example.com/audit?seq=5",
        ]
    );
    let first = entries[0];
    assert_eq!(first.one("summary").text, "checkout <500s> & \"timeouts\"");
    assert_eq!(first.one("category").attr("term"), Some("incident"));
    assert_eq!(first.one("updated").text, "2026-11-26T10:12:00Z");
    assert_eq!(
        first.one("link").attr("href"),
        Some("https://cutover.example.com/audit?seq=12")
    );
}

#[test]
fn the_feed_keeps_only_its_events_and_an_empty_one_is_still_valid() {
    let entries = [
        note(3, Event::Released, "Released 1.4.0", "x"),
        note(9, Event::Failed, "Deployment failed", "y"),
    ];
    let xml = atom_feed(
        &entries,
        &feed(Some(vec![Event::Failed]), 50),
        "http://localhost:8080",
    );
    let root = parse(&xml).unwrap();
    assert_eq!(root.all("entry").len(), 1);
    assert_eq!(root.one("entry").one("title").text, "Deployment failed");

    let empty = atom_feed(
        &[],
        &AtomFeed {
            title: None,
            max_entries: 50,
            events: None,
        },
        "http://localhost:8080",
    );
    let root = parse(&empty).unwrap();
    assert!(root.all("entry").is_empty());
    assert_eq!(root.one("title").text, "cutover");
    assert_eq!(root.one("updated").text, "1970-01-01T00:00:00Z");
}

proptest::proptest! {
    /// Whatever the titles and summaries hold, the feed parses and gives them back (less the
    /// control characters XML cannot carry).
    #[test]
    fn arbitrary_text_stays_well_formed(title in "\\PC{0,40}", summary in any_text(), base in "[a-z:/.]{0,20}") {
        let xml = atom_feed(&[note(1, Event::Released, &title, &summary)], &feed(None, 5), &base);
        let root = parse(&xml).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{xml}")))?;
        let entry = root.one("entry");
        proptest::prop_assert_eq!(&entry.one("title").text, &title);
        let kept: String = summary
            .chars()
            .filter(|&c| (c >= ' ' || matches!(c, '\t' | '\n' | '\r')) && c != '\u{FFFE}' && c != '\u{FFFF}')
            .collect();
        proptest::prop_assert_eq!(&entry.one("summary").text, &kept);
    }
}

fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::collection::vec(proptest::char::any(), 0..60).prop_map(|c| c.into_iter().collect())
}

use proptest::strategy::Strategy as _;
