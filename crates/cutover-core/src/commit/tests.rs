//! Tests of the Conventional Commits parser: every example of the specification, the rules, and properties.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn footer(token: &str, separator: Separator, value: &str) -> Footer {
    Footer {
        token: token.to_owned(),
        separator,
        value: value.to_owned(),
    }
}

// ---- The Examples section of https://www.conventionalcommits.org/en/v1.0.0/ ----
// The example messages are quoted verbatim from the Conventional Commits 1.0.0 specification
// (conventional-commits/conventionalcommits.org, content/v1.0.0/index.md; licensed CC BY 3.0),
// plus the `revert:` example of its FAQ.

#[test]
fn spec_example_description_and_breaking_change_footer() {
    let c = parse("feat: allow provided config object to extend other configs\n\nBREAKING CHANGE: `extends` key in config file is now used for extending other config files").unwrap();
    assert_eq!(c.kind(), "feat");
    assert_eq!(c.scope, None);
    assert!(!c.bang);
    assert_eq!(
        c.description,
        "allow provided config object to extend other configs"
    );
    assert_eq!(c.body, None);
    assert_eq!(
        c.footers,
        vec![footer(
            "BREAKING CHANGE",
            Separator::Colon,
            "`extends` key in config file is now used for extending other config files"
        )]
    );
    assert!(c.is_breaking());
    assert_eq!(
        c.breaking_notes(),
        vec!["`extends` key in config file is now used for extending other config files"]
    );
}

#[test]
fn spec_example_bang() {
    let c = parse("feat!: send an email to the customer when a product is shipped").unwrap();
    assert_eq!(c.kind(), "feat");
    assert!(c.bang);
    assert!(c.is_breaking());
    assert_eq!(
        c.breaking_notes(),
        vec!["send an email to the customer when a product is shipped"]
    );
}

#[test]
fn spec_example_scope_and_bang() {
    let c = parse("feat(api)!: send an email to the customer when a product is shipped").unwrap();
    assert_eq!(c.scope.as_deref(), Some("api"));
    assert!(c.bang);
    assert!(c.is_breaking());
    assert_eq!(
        c.description,
        "send an email to the customer when a product is shipped"
    );
}

#[test]
fn spec_example_bang_and_breaking_change_footer() {
    let c = parse(
        "chore!: drop support for Node 6\n\nBREAKING CHANGE: use JavaScript features not available in Node 6.",
    )
    .unwrap();
    assert_eq!(c.kind(), "chore");
    assert!(c.bang);
    assert_eq!(
        c.breaking_notes(),
        vec!["use JavaScript features not available in Node 6."]
    );
    assert_eq!(c.body, None);
}

#[test]
fn spec_example_no_body() {
    let c = parse("docs: correct spelling of CHANGELOG").unwrap();
    assert_eq!(c.kind(), "docs");
    assert_eq!(c.description, "correct spelling of CHANGELOG");
    assert_eq!(c.body, None);
    assert!(c.footers.is_empty());
    assert!(!c.is_breaking());
}

#[test]
fn spec_example_scope() {
    let c = parse("feat(lang): add Polish language").unwrap();
    assert_eq!(c.scope.as_deref(), Some("lang"));
    assert_eq!(c.description, "add Polish language");
}

#[test]
fn spec_example_multi_paragraph_body_and_multiple_footers() {
    let msg = "fix: prevent racing of requests\n\nIntroduce a request id and a reference to latest request. Dismiss\nincoming responses other than from latest request.\n\nRemove timeouts which were used to mitigate the racing issue but are\nobsolete now.\n\nReviewed-by: Z\nRefs: #123\n";
    let c = parse(msg).unwrap();
    assert_eq!(c.kind(), "fix");
    assert_eq!(
        c.body.as_deref(),
        Some(
            "Introduce a request id and a reference to latest request. Dismiss\nincoming responses other than from latest request.\n\nRemove timeouts which were used to mitigate the racing issue but are\nobsolete now."
        )
    );
    assert_eq!(
        c.footers,
        vec![
            footer("Reviewed-by", Separator::Colon, "Z"),
            footer("Refs", Separator::Colon, "#123"),
        ]
    );
    assert_eq!(
        commit_refs(&c.description, &c.footers),
        vec![IssueRef {
            number: 123,
            text: "#123".into()
        }]
    );
}

#[test]
fn spec_faq_revert_type() {
    let c =
        parse("revert: let us never again speak of the noodle incident\n\nRefs: 676104e, a215868")
            .unwrap();
    assert_eq!(c.kind(), "revert");
    assert_eq!(c.footer("refs"), Some("676104e, a215868"));
}

// ---- Rules of the specification ----

#[test]
fn hash_separator_footer() {
    let c = parse("fix: crash on start\n\nCloses #12\nRefs #3").unwrap();
    assert_eq!(
        c.footers,
        vec![
            footer("Closes", Separator::Hash, "12"),
            footer("Refs", Separator::Hash, "3")
        ]
    );
    let refs: Vec<u64> = commit_refs(&c.description, &c.footers)
        .into_iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(refs, vec![12, 3]);
}

#[test]
fn multi_line_footer_value_ends_at_next_token() {
    let c = parse(
        "feat: x\n\nBREAKING CHANGE: the config file moved.\nRename it to cutover.toml\nand rerun.\nReviewed-by: Alice",
    )
    .unwrap();
    assert_eq!(
        c.footers,
        vec![
            footer(
                "BREAKING CHANGE",
                Separator::Colon,
                "the config file moved.\nRename it to cutover.toml\nand rerun."
            ),
            footer("Reviewed-by", Separator::Colon, "Alice"),
        ]
    );
}

#[test]
fn breaking_change_migration_may_span_paragraphs() {
    let c = parse(
        "feat(cli): new flags\n\nSome body.\n\nBREAKING CHANGE: `--out` is gone.\n\nUse `--output FILE` instead.\n\nRefs: #9",
    )
    .unwrap();
    assert_eq!(c.body.as_deref(), Some("Some body."));
    assert_eq!(
        c.breaking_notes(),
        vec!["`--out` is gone.\n\nUse `--output FILE` instead."]
    );
    assert_eq!(c.footer("Refs"), Some("#9"));
}

#[test]
fn breaking_change_hyphen_synonym() {
    let c = parse("fix: y\n\nBREAKING-CHANGE: environment variables renamed").unwrap();
    assert!(c.is_breaking());
    assert_eq!(c.breaking_notes(), vec!["environment variables renamed"]);
}

#[test]
fn breaking_change_must_be_uppercase() {
    let c = parse("fix: y\n\nbreaking change: not a footer").unwrap();
    assert!(!c.is_breaking());
    assert_eq!(c.body.as_deref(), Some("breaking change: not a footer"));
    let c = parse("fix: y\n\nBreaking-Change: ordinary footer").unwrap();
    assert!(!c.is_breaking());
    assert_eq!(c.footers.len(), 1);
}

#[test]
fn types_and_tokens_are_case_insensitive() {
    let c = parse("FEAT(Parser): Add arrays\n\nREVIEWED-BY: Z").unwrap();
    assert_eq!(c.kind(), "feat");
    assert_eq!(c.r#type, "FEAT");
    assert_eq!(c.footer("reviewed-by"), Some("Z"));
}

#[test]
fn body_paragraph_that_looks_like_prose_stays_body() {
    let c = parse("docs: x\n\nNote: this is a body paragraph.\n\nAnd another one.").unwrap();
    assert_eq!(
        c.body.as_deref(),
        Some("Note: this is a body paragraph.\n\nAnd another one.")
    );
    assert!(c.footers.is_empty());
}

#[test]
fn footers_directly_after_header() {
    let c = parse("feat: x\n\nSigned-off-by: A <a@example.com>\nCo-authored-by: Bob Builder <bob@example.com>")
        .unwrap();
    assert_eq!(c.body, None);
    assert_eq!(
        co_authors(&c.footers),
        vec![Person {
            name: "Bob Builder".into(),
            email: Some("bob@example.com".into())
        }]
    );
}

#[test]
fn crlf_and_surrounding_whitespace() {
    let c = parse("\n\nfix(x): y  \r\n\r\nbody\r\n\r\nRefs: #1\r\n\n").unwrap();
    assert_eq!(c.description, "y");
    assert_eq!(c.body.as_deref(), Some("body"));
    assert_eq!(c.footer("refs"), Some("#1"));
}

#[test]
fn errors_are_precise() {
    let cases: &[(&str, ParseError)] = &[
        ("", ParseError::Empty),
        ("   \n  ", ParseError::Empty),
        (
            "Merge branch 'main'",
            ParseError::MissingColon {
                column: 6,
                hint: KNOWN_TYPE_HINT,
            },
        ),
        (
            "Update README.md",
            ParseError::MissingColon {
                column: 7,
                hint: KNOWN_TYPE_HINT,
            },
        ),
        ("feat:add x", ParseError::MissingSpace { column: 6 }),
        ("feat: ", ParseError::EmptyDescription { column: 6 }),
        ("feat:", ParseError::EmptyDescription { column: 6 }),
        ("feat(): x", ParseError::EmptyScope { column: 5 }),
        ("feat(api: x", ParseError::UnclosedScope { column: 5 }),
        (": x", ParseError::MissingType),
        ("1.2.3: release", ParseError::MissingType),
        (
            "fe.at: x",
            ParseError::InvalidType {
                column: 3,
                found: '.',
            },
        ),
        ("feat: x\nsecond line", ParseError::NoBlankLineAfterHeader),
        (
            "WIP",
            ParseError::MissingColon {
                column: 4,
                hint: KNOWN_TYPE_HINT,
            },
        ),
    ];
    for (msg, want) in cases {
        assert_eq!(parse(msg).as_ref().err(), Some(want), "message {msg:?}");
        // Every error renders to a message that says where.
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn git_revert_messages() {
    let msg = "Revert \"feat(api): add widgets\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n\nSigned-off-by: A <a@x>";
    let r = parse_git_revert(msg).unwrap();
    assert_eq!(r.reverted_header, "feat(api): add widgets");
    assert_eq!(
        r.reverted_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(r.body, None);
    assert_eq!(r.footers.len(), 1);
    assert!(matches!(classify(msg), Message::Revert(_)));

    let nested = "Revert \"Revert \"fix: y\"\"\n\nThis reverts commit abcdef1.\nReason: flaky.";
    let r = parse_git_revert(nested).unwrap();
    assert_eq!(r.reverted_header, "Revert \"fix: y\"");
    assert_eq!(r.reverted_commit.as_deref(), Some("abcdef1"));

    assert!(parse_git_revert("Revert the thing").is_none());
    assert!(parse_git_revert("Revert \"\"").is_none());
}

#[test]
fn classify_unconventional() {
    match classify("Merge pull request #42 from a/b\n\nstuff") {
        Message::Unconventional { summary, error } => {
            assert_eq!(summary, "Merge pull request #42 from a/b");
            assert!(matches!(error, ParseError::MissingColon { .. }));
        }
        other => panic!("expected unconventional, got {other:?}"),
    }
}

#[test]
fn issue_reference_forms() {
    let got: Vec<String> =
        issue_refs("fix #1, GH-22 and (#333); not C#4, a#5, #x, #6a, GH-, abcGH-7")
            .into_iter()
            .map(|r| r.text)
            .collect();
    assert_eq!(got, vec!["#1", "GH-22", "#333"]);
    assert!(issue_refs("#99999999999999999999999999").is_empty());
}

#[test]
fn person_forms() {
    assert_eq!(
        parse_person("Jane Doe <jane@example.com>"),
        Person {
            name: "Jane Doe".into(),
            email: Some("jane@example.com".into())
        }
    );
    assert_eq!(
        parse_person("<x@y>"),
        Person {
            name: "x@y".into(),
            email: Some("x@y".into())
        }
    );
    assert_eq!(parse_person("Just A Name").email, None);
}

// ---- Properties ----

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,8}"
}

fn text_line() -> impl Strategy<Value = String> {
    // Prose lines: start with a lowercase word followed by a space so they never look like footers.
    "[a-z]{1,8} [a-z][a-zA-Z0-9 .,;`'()!?#-]{0,30}[a-z.]".prop_map(|s| s)
}

fn paragraph() -> impl Strategy<Value = String> {
    prop::collection::vec(text_line(), 1..4).prop_map(|l| l.join("\n"))
}

fn footer_strategy() -> impl Strategy<Value = Footer> {
    let token = prop_oneof![
        Just("BREAKING CHANGE".to_owned()),
        Just("BREAKING-CHANGE".to_owned()),
        "[A-Z][a-z]{1,6}(-[a-z]{1,5})?",
    ];
    let separator = prop_oneof![Just(Separator::Colon), Just(Separator::Hash)];
    let value = prop::collection::vec(text_line(), 1..3).prop_map(|l| l.join("\n"));
    (token, separator, value).prop_map(|(token, separator, value)| Footer {
        token,
        separator,
        value,
    })
}

prop_compose! {
    fn commit_strategy()(
        r#type in prop_oneof![Just("feat".to_owned()), Just("fix".to_owned()), Just("Perf".to_owned()), word()],
        scope in prop::option::of("[a-z][a-z0-9/@,.-]{0,10}"),
        bang in any::<bool>(),
        description in "[a-zA-Z0-9`][a-zA-Z0-9 .,:;`'()!#-]{0,40}[a-zA-Z0-9.)]",
        body in prop::option::of(prop::collection::vec(paragraph(), 1..4).prop_map(|p| p.join("\n\n"))),
        footers in prop::collection::vec(footer_strategy(), 0..4),
    ) -> ConventionalCommit {
        ConventionalCommit { r#type, scope, bang, description, body, footers }
    }
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC*") {
        let _ = parse(&s);
        let _ = classify(&s);
        let _ = issue_refs(&s);
        let _ = parse_person(&s);
    }

    #[test]
    fn never_panics_on_structured_garbage(s in "[a-zA-Z(): !#\n-]{0,80}") {
        let _ = classify(&s);
        if let Ok(c) = parse(&s) {
            // What parses renders to something that parses to the same commit.
            prop_assert_eq!(parse(&c.render()).unwrap(), c);
        }
    }

    #[test]
    fn parse_render_roundtrip(c in commit_strategy()) {
        let rendered = c.render();
        let parsed = parse(&rendered).unwrap();
        prop_assert_eq!(parsed, c);
    }

    #[test]
    fn issue_refs_are_substrings(s in "[a-zA-Z0-9 #GH-]{0,60}") {
        for r in issue_refs(&s) {
            prop_assert!(s.contains(&r.text));
            let digits = r.text.trim_start_matches('#').trim_start_matches("GH-");
            prop_assert_eq!(digits.parse::<u64>().unwrap(), r.number);
        }
    }
}
