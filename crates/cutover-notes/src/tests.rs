//! Snapshot tests of the notes, changelog and notice renderings.
#![allow(clippy::unwrap_used)]

use super::notice::*;
use super::*;
use cutover_core::commit::UnconventionalPolicy;
use cutover_core::version::{BumpKind, Level, Reason};

const MESSAGES: &[&str] = &[
    "feat(api)!: remove the v1 endpoints\n\nThey were deprecated a year ago.\n\nBREAKING CHANGE: `/v1/*` is gone.\nCall `/v2/*` instead; see docs/migrate.md.\nCloses #41",
    "feat(cli): add `--json` to plan (#12)\n\nCo-authored-by: Grace Hopper <grace@example.com>",
    "fix: do not crash on empty tags\n\nFixes: GH-7",
    "perf(walk): decode each commit once",
    "Revert \"feat: experimental cache\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.",
    "docs: explain tag formats",
    "fix!: reject non-SemVer tags",
    "Merge pull request #99 from someone/branch",
    "update things",
];

fn plan_from(messages: &[&str], policy: UnconventionalPolicy) -> Plan {
    let mut changes = Vec::new();
    let mut unconventional = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let id = format!("{:07x}{}", 0xabc_1000 + i, "0".repeat(33));
        let raw = RawCommit {
            id: &id,
            message,
            author_name: "Ada Lovelace",
            author_email: "ada@example.com",
            time: format!("2026-11-{:02}T10:00:00+01:00", 20 - i),
        };
        let classified = classify(&raw, policy);
        changes.extend(classified.change);
        unconventional.extend(classified.unconventional);
    }
    Plan {
        current: Some(Current {
            version: "1.2.3".into(),
            tag: "v1.2.3".into(),
            commit: "f".repeat(40),
        }),
        next: NextRelease {
            version: "2.0.0".into(),
            bump: BumpKind::Major,
            reasons: vec![Reason {
                commit: format!("abc1000{}", "0".repeat(33)),
                bump: Level::Major,
                why: "breaking change".into(),
            }],
        },
        changes,
        unconventional,
        notes: String::new(),
    }
}

fn header() -> SectionHeader {
    SectionHeader {
        tag: "v2.0.0".into(),
        title: "2.0.0".into(),
        date: "2026-11-26".into(),
    }
}

fn linked() -> RenderOptions {
    RenderOptions {
        issue_url: Some("https://example.com/issues/{id}".into()),
    }
}

#[test]
fn default_notes() {
    let plan = plan_from(MESSAGES, UnconventionalPolicy::Other);
    let notes = Notes::default_markdown(&linked())
        .render(&plan, &header())
        .unwrap();
    insta::assert_snapshot!(notes);
    // Deterministic: same input, same bytes.
    let again = Notes::default_markdown(&linked())
        .render(&plan, &header())
        .unwrap();
    assert_eq!(notes, again);
}

#[test]
fn default_notes_without_links_and_ignoring_unconventional() {
    let plan = plan_from(MESSAGES, UnconventionalPolicy::Ignore);
    assert_eq!(plan.unconventional.len(), 2);
    assert!(plan.changes.iter().all(|c| !c.kind.is_empty()));
    let notes = Notes::default_markdown(&RenderOptions::default())
        .render(&plan, &header())
        .unwrap();
    insta::assert_snapshot!(notes);
}

#[test]
fn no_changes() {
    let plan = plan_from(&[], UnconventionalPolicy::Other);
    let notes = Notes::default_markdown(&RenderOptions::default())
        .render(&plan, &header())
        .unwrap();
    assert_eq!(notes, "## 2.0.0 (2026-11-26)\n\n_No notable changes._\n");
}

#[test]
fn plan_json_shape() {
    let mut plan = plan_from(&MESSAGES[..3], UnconventionalPolicy::Other);
    plan.notes = "…".into();
    insta::assert_json_snapshot!(plan);
    let value = serde_json::to_value(&plan).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["current", "next", "changes", "unconventional", "notes"]
    );
    let change_keys: Vec<&String> = value["changes"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        change_keys,
        [
            "id", "type", "scope", "breaking", "summary", "body", "footers", "author", "time",
            "group", "refs"
        ]
    );
    let back: Plan = serde_json::from_value(value).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn custom_template_sees_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.j2");
    std::fs::write(
        &path,
        "{{ title }}: {{ next.bump }} because {{ next.reasons[0].why }}\n{% for c in changes %}{{ c.type or \"?\" }}|{{ c.group }}|{{ c.refs|map(attribute=\"number\")|join(\",\") }}\n{% endfor %}{{ unconventional|length }} unconventional, from {{ current.tag }}\n",
    )
    .unwrap();
    let plan = plan_from(MESSAGES, UnconventionalPolicy::Other);
    let out = Notes::from_file(&path, &RenderOptions::default())
        .unwrap()
        .render(&plan, &header())
        .unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn template_errors_have_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.j2");
    std::fs::write(
        &path,
        "line one\n  {% for c in changes %}\n    {{ c.summary | nosuchfilter }}\n{% endfor %}\n",
    )
    .unwrap();
    let err = Notes::from_file(&path, &RenderOptions::default())
        .and_then(|n| n.render(&plan_from(MESSAGES, UnconventionalPolicy::Other), &header()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}:3:", path.display())), "{msg}");
    assert!(msg.contains("nosuchfilter"), "{msg}");

    std::fs::write(&path, "ok\n{{ changes[0].nope.deeper }}\n").unwrap();
    let notes = Notes::from_file(&path, &RenderOptions::default()).unwrap();
    let err = notes
        .render(&plan_from(MESSAGES, UnconventionalPolicy::Other), &header())
        .unwrap_err();
    match err {
        NotesError::Template { line, column, .. } => {
            assert_eq!(line, 2);
            assert!(column >= 4, "column {column}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }

    std::fs::write(&path, "{% if %}").unwrap();
    let err = Notes::from_file(&path, &RenderOptions::default()).unwrap_err();
    assert!(err.to_string().contains(":1:"), "{err}");

    let err =
        Notes::from_file(&dir.path().join("missing.j2"), &RenderOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("cannot read the template"),
        "{err}"
    );
}

#[test]
fn changelog_sections() {
    let newer = plan_from(&MESSAGES[..2], UnconventionalPolicy::Other);
    let older = plan_from(&MESSAGES[2..4], UnconventionalPolicy::Other);
    let older_header = SectionHeader {
        tag: "v1.2.3".into(),
        title: "1.2.3".into(),
        date: "2026-10-01".into(),
    };
    let out = Notes::default_markdown(&RenderOptions::default())
        .render_changelog(&[(newer, header()), (older, older_header)])
        .unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn prepend_to_changelog() {
    assert_eq!(
        prepend_section(None, "## 1.0.0\n\nx\n"),
        "# Changelog\n\n## 1.0.0\n\nx\n"
    );
    assert_eq!(
        prepend_section(Some("# Changelog\n\n## 0.9.0\n\ny\n"), "## 1.0.0\n\nx\n"),
        "# Changelog\n\n## 1.0.0\n\nx\n\n## 0.9.0\n\ny\n"
    );
    assert_eq!(
        prepend_section(Some("## 0.9.0\n"), "## 1.0.0\n"),
        "## 1.0.0\n\n## 0.9.0\n"
    );
}

fn notice(filled: bool) -> Notice {
    let plan = plan_from(MESSAGES, UnconventionalPolicy::Ignore);
    let mut n = Notice::from_plan(
        &plan,
        "hello",
        "v2.0.0",
        "2026-11-26T06:00:00Z",
        Some("2026-11-30".into()),
        Some("https://staging.example.com/?a=1&b=<2>".into()),
    );
    if filled {
        n.bom_diff = Some(BomDiff {
            added: vec![Component {
                name: "serde".into(),
                version: "1.0.200".into(),
            }],
            removed: vec![],
            changed: vec![ComponentChange {
                name: "tokio".into(),
                from: "1.40.0".into(),
                to: "1.41.0".into(),
            }],
        });
        n.vulnerabilities = Some(vec![Vulnerability {
            id: "RUSTSEC-2026-0001".into(),
            package: "tokio".into(),
            version: "1.41.0".into(),
            severity: Some("high".into()),
            summary: Some("<script>alert(1)</script>".into()),
            fixed_in: Some("1.41.1".into()),
        }]);
    }
    n
}

#[test]
fn notice_breaking_first() {
    let n = notice(false);
    let first_non_breaking = n.changes.iter().position(|c| !c.breaking).unwrap();
    assert!(n.changes[..first_non_breaking].iter().all(|c| c.breaking));
    assert!(n.changes[first_non_breaking..].iter().all(|c| !c.breaking));
}

#[test]
fn notice_markdown() {
    insta::assert_snapshot!(
        "notice_markdown_empty_slots",
        notice(false)
            .render(NoticeFormat::Markdown, &linked())
            .unwrap()
    );
    insta::assert_snapshot!(
        "notice_markdown_filled",
        notice(true)
            .render(NoticeFormat::Markdown, &linked())
            .unwrap()
    );
}

#[test]
fn notice_html_escapes() {
    let html = notice(true)
        .render(NoticeFormat::Html, &RenderOptions::default())
        .unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    insta::assert_snapshot!(html);
}

#[test]
fn notice_json() {
    let json = notice(true)
        .render(NoticeFormat::Json, &RenderOptions::default())
        .unwrap();
    let back: Notice = serde_json::from_str(&json).unwrap();
    assert_eq!(back, notice(true));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["vulnerabilities"][0]["id"], "RUSTSEC-2026-0001");
    assert!(
        notice(false)
            .render(NoticeFormat::Json, &RenderOptions::default())
            .unwrap()
            .contains("\"bom_diff\": null")
    );
}
