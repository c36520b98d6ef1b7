//! Table tests of the bump rules.
#![allow(clippy::unwrap_used)]

use super::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// `"feat"`, `"fix!"` (breaking), `"docs"`, `"-"` (not conventional), `"fix@2.0.0"` (Release-As).
fn impacts(spec: &[&str]) -> Vec<Impact> {
    spec.iter()
        .enumerate()
        .map(|(i, s)| {
            let (s, release_as) = match s.split_once('@') {
                Some((k, ver)) => (k, Some(v(ver))),
                None => (*s, None),
            };
            let breaking = s.ends_with('!');
            let kind = s.trim_end_matches('!');
            Impact {
                commit: format!("{:040x}", i + 1),
                kind: (kind != "-").then(|| kind.to_owned()),
                breaking,
                release_as,
            }
        })
        .collect()
}

struct Case {
    name: &'static str,
    current: Option<&'static str>,
    existing: &'static [&'static str],
    pre: Option<&'static str>,
    explicit: Option<&'static str>,
    rules: Rules,
    commits: &'static [&'static str],
    want: &'static str,
    bump: BumpKind,
    reasons: usize,
}

fn zero_major() -> Rules {
    Rules {
        zero_major_breaking: ZeroMajorBreaking::Major,
        ..Rules::default()
    }
}

fn zero_feat_patch() -> Rules {
    Rules {
        zero_minor_feature: ZeroMinorFeature::Patch,
        ..Rules::default()
    }
}

#[test]
fn table() {
    let d = Rules::default;
    let cases = vec![
        Case {
            name: "breaking → major",
            current: Some("1.2.3"),
            existing: &["1.2.3"],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["fix", "feat!", "docs"],
            want: "2.0.0",
            bump: BumpKind::Major,
            reasons: 1,
        },
        Case {
            name: "feat → minor",
            current: Some("1.2.3"),
            existing: &["1.2.3"],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["fix", "feat", "feat"],
            want: "1.3.0",
            bump: BumpKind::Minor,
            reasons: 2,
        },
        Case {
            name: "fix → patch",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["fix", "chore"],
            want: "1.2.4",
            bump: BumpKind::Patch,
            reasons: 1,
        },
        Case {
            name: "perf → patch",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["perf"],
            want: "1.2.4",
            bump: BumpKind::Patch,
            reasons: 1,
        },
        Case {
            name: "revert → patch",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["revert"],
            want: "1.2.4",
            bump: BumpKind::Patch,
            reasons: 1,
        },
        Case {
            name: "nothing releasable",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["docs", "chore", "-"],
            want: "1.2.3",
            bump: BumpKind::None,
            reasons: 0,
        },
        Case {
            name: "no commits",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &[],
            want: "1.2.3",
            bump: BumpKind::None,
            reasons: 0,
        },
        Case {
            name: "breaking on any type",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["chore!"],
            want: "2.0.0",
            bump: BumpKind::Major,
            reasons: 1,
        },
        Case {
            name: "0.x breaking → minor (default)",
            current: Some("0.4.2"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["feat!", "fix"],
            want: "0.5.0",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "0.x breaking → major (configured)",
            current: Some("0.4.2"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: zero_major(),
            commits: &["feat!"],
            want: "1.0.0",
            bump: BumpKind::Major,
            reasons: 1,
        },
        Case {
            name: "0.x feat → minor (default)",
            current: Some("0.4.2"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["feat"],
            want: "0.5.0",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "0.x feat → patch (configured)",
            current: Some("0.4.2"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: zero_feat_patch(),
            commits: &["feat", "fix"],
            want: "0.4.3",
            bump: BumpKind::Patch,
            reasons: 2,
        },
        Case {
            name: "0.x breaking with feat→patch still minor",
            current: Some("0.4.2"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: zero_feat_patch(),
            commits: &["feat", "fix!"],
            want: "0.5.0",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "pre rc.1",
            current: Some("1.2.3"),
            existing: &["1.2.3"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["feat"],
            want: "1.3.0-rc.1",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "pre rc.2",
            current: Some("1.2.3"),
            existing: &["1.2.3", "1.3.0-rc.1"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["feat", "fix"],
            want: "1.3.0-rc.2",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "pre numbering by number not text",
            current: Some("1.2.3"),
            existing: &["1.3.0-rc.9", "1.3.0-rc.10", "1.3.0-beta.40"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["feat"],
            want: "1.3.0-rc.11",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "final after rcs comes from last final",
            current: Some("1.2.3"),
            existing: &["1.2.3", "1.3.0-rc.1", "1.3.0-rc.2"],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["feat", "fix"],
            want: "1.3.0",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "breaking after an rc restarts numbering",
            current: Some("1.2.3"),
            existing: &["1.3.0-rc.1"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["feat", "fix!"],
            want: "2.0.0-rc.1",
            bump: BumpKind::Major,
            reasons: 1,
        },
        Case {
            name: "other identifier starts at 1",
            current: Some("1.2.3"),
            existing: &["1.3.0-rc.2"],
            pre: Some("beta"),
            explicit: None,
            rules: d(),
            commits: &["feat"],
            want: "1.3.0-beta.1",
            bump: BumpKind::Minor,
            reasons: 1,
        },
        Case {
            name: "Release-As",
            current: Some("1.2.3"),
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["fix", "chore@3.0.0", "docs@2.5.0"],
            want: "3.0.0",
            bump: BumpKind::ReleaseAs,
            reasons: 1,
        },
        Case {
            name: "Release-As with pre",
            current: Some("1.2.3"),
            existing: &["3.0.0-rc.1"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["chore@3.0.0"],
            want: "3.0.0-rc.2",
            bump: BumpKind::ReleaseAs,
            reasons: 1,
        },
        Case {
            name: "explicit override",
            current: Some("1.2.3"),
            existing: &[],
            pre: Some("rc"),
            explicit: Some("4.0.0"),
            rules: d(),
            commits: &["fix@3.0.0"],
            want: "4.0.0",
            bump: BumpKind::Override,
            reasons: 1,
        },
        Case {
            name: "first release uses initial",
            current: None,
            existing: &[],
            pre: None,
            explicit: None,
            rules: d(),
            commits: &["feat!", "fix", "docs"],
            want: "0.1.0",
            bump: BumpKind::Initial,
            reasons: 2,
        },
        Case {
            name: "first release pre",
            current: None,
            existing: &["0.1.0-rc.1"],
            pre: Some("rc"),
            explicit: None,
            rules: d(),
            commits: &["feat"],
            want: "0.1.0-rc.2",
            bump: BumpKind::Initial,
            reasons: 1,
        },
        Case {
            name: "first release custom initial",
            current: None,
            existing: &[],
            pre: None,
            explicit: None,
            rules: Rules {
                initial: v("1.0.0"),
                ..Rules::default()
            },
            commits: &["-"],
            want: "1.0.0",
            bump: BumpKind::Initial,
            reasons: 0,
        },
    ];
    for case in cases {
        let current = case.current.map(v);
        let existing: Vec<Version> = case.existing.iter().map(|s| v(s)).collect();
        let explicit = case.explicit.map(v);
        let request = Request {
            current: current.as_ref(),
            existing: &existing,
            pre: case.pre,
            explicit: explicit.as_ref(),
        };
        let next = next(&request, &case.rules, &impacts(case.commits))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(next.version.to_string(), case.want, "{}", case.name);
        assert_eq!(next.bump, case.bump, "{}", case.name);
        assert_eq!(
            next.reasons.len(),
            case.reasons,
            "{}: {:?}",
            case.name,
            next.reasons
        );
    }
}

#[test]
fn reasons_name_the_commits() {
    let current = v("1.0.0");
    let request = Request {
        current: Some(&current),
        ..Request::default()
    };
    let next = next(
        &request,
        &Rules::default(),
        &impacts(&["fix", "feat", "docs", "feat"]),
    )
    .unwrap();
    let ids: Vec<&str> = next.reasons.iter().map(|r| r.commit.as_str()).collect();
    assert_eq!(ids, vec![format!("{:040x}", 2), format!("{:040x}", 4)]);
    assert!(
        next.reasons
            .iter()
            .all(|r| r.why == "feat" && r.bump == Level::Minor)
    );
}

#[test]
fn errors() {
    let current = v("1.2.3");
    let existing = vec![v("1.2.3"), v("2.0.0")];
    let low = v("1.2.3");
    let request = Request {
        current: Some(&current),
        existing: &existing,
        explicit: Some(&low),
        ..Request::default()
    };
    let err = next(&request, &Rules::default(), &[]).unwrap_err();
    assert!(matches!(err, VersionError::NotHigher { .. }));
    assert!(
        err.to_string()
            .contains("not higher than the last release 1.2.3"),
        "{err}"
    );

    let taken = v("2.0.0");
    let request = Request {
        explicit: Some(&taken),
        ..request
    };
    assert!(matches!(
        next(&request, &Rules::default(), &[]),
        Err(VersionError::Exists { .. })
    ));

    let request = Request {
        current: Some(&current),
        existing: &existing,
        ..Request::default()
    };
    let err = next(&request, &Rules::default(), &impacts(&["fix@1.0.0"])).unwrap_err();
    assert!(
        err.to_string().contains("Release-As in commit 0000000"),
        "{err}"
    );

    for bad in ["", "r c", "1", "rc.1"] {
        let request = Request {
            current: Some(&current),
            pre: Some(bad),
            ..Request::default()
        };
        assert!(
            matches!(
                next(&request, &Rules::default(), &impacts(&["fix"])),
                Err(VersionError::BadPre(_))
            ),
            "{bad:?}"
        );
    }
}
