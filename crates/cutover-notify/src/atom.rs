//! The Atom 1.0 feed (RFC 4287) served by `cutover serve` at `/feed.xml`: the newest notifications,
//! read from the audit log on demand (the feed has no cursor: readers poll it).

use chrono::SecondsFormat;
use cutover_config::{AtomFeed, Event, Notify};
use cutover_store::{AuditFilter, Store};

use crate::channel::event_name;
use crate::{Notification, from_audit};

/// The newest notifications for the feed (newest first, at most `feed.max_entries`), among
/// `feed.events` (default: `notify.events`). One query per notifying action, so that a long audit
/// log of other events is not read.
pub async fn feed_entries(
    store: &dyn Store,
    notify: &Notify,
    feed: &AtomFeed,
) -> Vec<Notification> {
    let events = feed.events.clone().unwrap_or_else(|| notify.events.clone());
    let limit = i64::from(feed.max_entries.max(1));
    // Not every transition or job failure notifies: read further back for those.
    let actions: [(&str, i64); 6] = [
        ("notice.sent", limit),
        ("release.created", limit),
        ("deployment.transition", limit * 8),
        ("incident.open", limit),
        ("incident.resolve", limit),
        ("job.fail", limit * 4),
    ];
    let mut out = Vec::new();
    for (action, take) in actions {
        let Ok(found) = store
            .list_audit(&AuditFilter {
                action: Some(action.to_owned()),
                descending: true,
                limit: Some(take),
                ..AuditFilter::default()
            })
            .await
        else {
            continue;
        };
        for ev in &found {
            if let Some(n) = from_audit(ev, store).await
                && events.contains(&n.event)
            {
                out.push(n);
            }
        }
    }
    out.sort_by_key(|n| std::cmp::Reverse(n.seq));
    out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    out
}

/// The Atom document for `entries` (newest first after sorting; filtered by `feed.events` when
/// set; at most `feed.max_entries`). `base_url` is the server's public address
/// (`https://cutover.example.com`); the feed's id is `<base_url>/feed.xml`, an entry's id and link
/// `<base_url>/audit?seq=<seq>` (stable: the audit seq never changes). The title is `feed.title`,
/// else "cutover" (the server passes the project name as the title).
pub fn atom_feed(entries: &[Notification], feed: &AtomFeed, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let mut chosen: Vec<&Notification> = entries
        .iter()
        .filter(|n| feed.events.as_ref().is_none_or(|ev| ev.contains(&n.event)))
        .collect();
    chosen.sort_by_key(|n| std::cmp::Reverse(n.seq));
    chosen.truncate(usize::try_from(feed.max_entries).unwrap_or(usize::MAX));
    let time = |t: &cutover_store::Timestamp| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    // A feed without entries still needs an `updated`: the epoch keeps the output deterministic.
    let updated = chosen
        .iter()
        .map(|n| n.at)
        .max()
        .map_or_else(|| "1970-01-01T00:00:00Z".to_owned(), |t| time(&t));
    let title = feed.title.as_deref().unwrap_or("cutover");
    let mut x = String::with_capacity(512 + chosen.len() * 512);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str(&format!(
        "  <id>{}</id>\n",
        esc(&format!("{base}/feed.xml"))
    ));
    x.push_str(&format!("  <title>{}</title>\n", esc(title)));
    x.push_str(&format!("  <updated>{updated}</updated>\n"));
    x.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        esc(&format!("{base}/feed.xml"))
    ));
    x.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        esc(&format!("{base}/"))
    ));
    x.push_str("  <author><name>cutover</name></author>\n");
    x.push_str("  <generator>cutover</generator>\n");
    for n in chosen {
        let link = format!("{base}/audit?seq={}", n.seq);
        x.push_str("  <entry>\n");
        x.push_str(&format!("    <id>{}</id>\n", esc(&link)));
        x.push_str(&format!("    <title>{}</title>\n", esc(&n.title)));
        x.push_str(&format!("    <updated>{}</updated>\n", time(&n.at)));
        x.push_str(&format!("    <published>{}</published>\n", time(&n.at)));
        x.push_str(&format!(
            "    <link rel=\"alternate\" href=\"{}\"/>\n",
            esc(n.url.as_deref().unwrap_or(&link))
        ));
        x.push_str(&format!(
            "    <category term=\"{}\" label=\"{}\"/>\n",
            event_name(n.event),
            label(n.event)
        ));
        x.push_str(&format!(
            "    <summary type=\"text\">{}</summary>\n",
            esc(&n.summary)
        ));
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

fn label(e: Event) -> &'static str {
    match e {
        Event::Notice => "Advance shipping notice",
        Event::Released => "Released",
        Event::Delivered => "Delivered",
        Event::Failed => "Failed",
        Event::RolledBack => "Rolled back",
        Event::Incident => "Incident",
    }
}

/// XML text and attribute escaping; characters XML 1.0 cannot carry at all (most C0 controls,
/// lone surrogates cannot occur in a `str`, U+FFFE/U+FFFF) are dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be normalised away by every XML parser; a reference survives.
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
