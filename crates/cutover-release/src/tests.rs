//! End-to-end tests of planning and changelogs on hermetic repositories (pinned dates, so ids are stable).
#![allow(clippy::unwrap_used)]

use super::*;
use cutover_git::testrepo::TestRepo;
use cutover_notes::Group;

fn repo_with_history(dir: &Path) -> TestRepo {
    let mut t = TestRepo::init(dir);
    t.commit("chore: initial commit");
    t.commit("feat(cli): first command");
    t.tag("v1.0.0");
    t.commit("fix: handle empty input\n\nCloses #3");
    t.tag("v1.0.1");
    t.commit("feat(api): add widgets (#12)\n\nCo-authored-by: Grace Hopper <grace@example.com>");
    t.commit("update readme");
    t.commit("perf: faster walk");
    t.commit("feat!: drop the old config\n\nBREAKING CHANGE: `old.toml` is no longer read.\nMove its keys to cutover.toml.");
    t
}

#[test]
fn first_release_uses_initial() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: hello");
    t.commit("fix: world");
    let planned = plan(dir.path(), &Options::default()).unwrap();
    assert_eq!(planned.plan.current, None);
    assert_eq!(planned.plan.next.version, "0.1.0");
    assert_eq!(planned.plan.next.bump, version::BumpKind::Initial);
    assert_eq!(planned.next_tag, "v0.1.0");
    assert_eq!(planned.plan.changes.len(), 2);
    assert!(planned.warnings.is_empty());
}

#[test]
fn plan_json_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    repo_with_history(dir.path());
    let options = Options {
        issue_url: Some("https://example.com/issues/{number}".into()),
        ..Options::default()
    };
    let planned = plan(dir.path(), &options).unwrap();
    assert_eq!(planned.plan.next.version, "2.0.0");
    assert_eq!(planned.plan.current.as_ref().unwrap().tag, "v1.0.1");
    assert_eq!(planned.plan.unconventional.len(), 1);
    assert_eq!(planned.plan.changes[0].group, Group::Breaking);
    assert_eq!(planned.date, "2023-11-14");
    insta::assert_json_snapshot!(planned.plan);
}

#[test]
fn pre_release_cycle_then_final() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: base");
    t.tag("v1.2.3");
    t.commit("feat: new thing");
    let rc = Options {
        pre: Some("rc".into()),
        ..Options::default()
    };
    assert_eq!(
        plan(dir.path(), &rc).unwrap().plan.next.version,
        "1.3.0-rc.1"
    );
    t.tag("v1.3.0-rc.1");
    t.commit("fix: polish");
    let planned = plan(dir.path(), &rc).unwrap();
    assert_eq!(planned.plan.next.version, "1.3.0-rc.2");
    // Pre-release notes cover everything since the last final release.
    assert_eq!(planned.plan.changes.len(), 2);
    assert_eq!(planned.plan.current.unwrap().tag, "v1.2.3");
    t.tag("v1.3.0-rc.2");
    let final_plan = plan(dir.path(), &Options::default()).unwrap();
    assert_eq!(final_plan.plan.next.version, "1.3.0");
    assert_eq!(final_plan.next_tag, "v1.3.0");
}

#[test]
fn release_as_and_override() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: base");
    t.tag("v1.0.0");
    t.commit("chore: prepare\n\nRelease-As: 3.0.0");
    let planned = plan(dir.path(), &Options::default()).unwrap();
    assert_eq!(planned.plan.next.version, "3.0.0");
    assert_eq!(planned.plan.next.bump, version::BumpKind::ReleaseAs);
    let explicit = Options {
        explicit: Some(semver::Version::new(4, 1, 0)),
        ..Options::default()
    };
    assert_eq!(
        plan(dir.path(), &explicit).unwrap().plan.next.version,
        "4.1.0"
    );
    let too_low = Options {
        explicit: Some(semver::Version::new(0, 9, 0)),
        ..Options::default()
    };
    let err = plan(dir.path(), &too_low).unwrap_err();
    assert!(
        err.to_string()
            .contains("not higher than the last release 1.0.0"),
        "{err}"
    );
}

#[test]
fn unconventional_policies() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: good");
    t.commit("WIP stuff");
    let other = plan(dir.path(), &Options::default()).unwrap();
    assert_eq!(other.plan.changes.len(), 2);
    assert_eq!(other.plan.unconventional.len(), 1);
    let ignore = plan(
        dir.path(),
        &Options {
            policy: UnconventionalPolicy::Ignore,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(ignore.plan.changes.len(), 1);
    assert_eq!(ignore.plan.unconventional.len(), 1);
    let err = plan(
        dir.path(),
        &Options {
            policy: UnconventionalPolicy::Error,
            ..Options::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("1 commit(s) are not Conventional Commits"),
        "{msg}"
    );
    assert!(msg.contains("WIP stuff"), "{msg}");
}

#[test]
fn detached_head_is_reported_and_planned() {
    let dir = tempfile::tempdir().unwrap();
    let t = repo_with_history(dir.path());
    t.git(&["checkout", "--quiet", "--detach", "HEAD~1"]);
    let planned = plan(dir.path(), &Options::default()).unwrap();
    assert_eq!(planned.head.branch, None);
    assert!(matches!(
        planned.warnings[..],
        [Warning::DetachedHead { .. }]
    ));
    assert_eq!(planned.plan.next.version, "1.1.0");
}

#[test]
fn monorepo_package() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit_in("api/lib.rs", "feat(api): start");
    t.tag("api-v0.1.0");
    t.commit_in("web/app.js", "feat(web)!: redo everything");
    t.commit_in("api/lib.rs", "fix(api): off by one");
    let options = Options {
        tag_format: "api-v{version}".into(),
        walk: WalkOptions {
            path: Some("api".into()),
            ..WalkOptions::default()
        },
        ..Options::default()
    };
    let planned = plan(dir.path(), &options).unwrap();
    assert_eq!(planned.plan.next.version, "0.1.1");
    assert_eq!(planned.next_tag, "api-v0.1.1");
    assert_eq!(planned.plan.changes.len(), 1);
}

#[test]
fn bad_inputs_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let err = plan(dir.path(), &Options::default()).unwrap_err();
    assert!(err.to_string().contains("not a git repository"), "{err}");

    let t = repo_with_history(dir.path());
    t.lightweight_tag("v2.0");
    let err = plan(dir.path(), &Options::default()).unwrap_err();
    assert!(
        err.to_string().contains("`v2.0` looks like a release"),
        "{err}"
    );
    t.git(&["tag", "-d", "v2.0"]);

    let template = dir.path().join("t.j2");
    std::fs::write(
        &template,
        "{% for c in changes %}\n{{ c.summary }\n{% endfor %}",
    )
    .unwrap();
    let err = plan(
        dir.path(),
        &Options {
            template: Some(template),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("t.j2:2:"), "{err}");

    let err = plan(
        dir.path(),
        &Options {
            tag_format: "v".into(),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("{version}"), "{err}");
}

#[test]
fn changelog_all_and_range() {
    let dir = tempfile::tempdir().unwrap();
    repo_with_history(dir.path());
    let all = changelog(dir.path(), &Options::default(), &ChangelogRange::All).unwrap();
    assert_eq!(all.sections, 3);
    assert_eq!(all.commits, 7);
    insta::assert_snapshot!("changelog_all", all.text);

    let range = changelog(
        dir.path(),
        &Options::default(),
        &ChangelogRange::Range("v1.0.0..v1.0.1".into()),
    )
    .unwrap();
    assert_eq!(range.sections, 1);
    assert_eq!(range.commits, 1);
    assert!(
        range.text.contains("## 1.0.1 (2023-11-14)"),
        "{}",
        range.text
    );
    assert!(range.text.contains("handle empty input"));

    let err = changelog(
        dir.path(),
        &Options::default(),
        &ChangelogRange::Range("v1.0.0".into()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not of the form A..B"));
    let err = changelog(
        dir.path(),
        &Options::default(),
        &ChangelogRange::Range("nope..HEAD".into()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`nope` does not name a commit"),
        "{err}"
    );

    // SOURCE_DATE_EPOCH pins every date.
    let pinned = changelog(
        dir.path(),
        &Options {
            source_date_epoch: Some(0),
            ..Options::default()
        },
        &ChangelogRange::All,
    )
    .unwrap();
    assert_eq!(pinned.text.matches("(1970-01-01)").count(), 3);
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339(1_700_000_000, 3600), "2023-11-14T23:13:20+01:00");
    assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00+00:00");
    // An impossible offset falls back to UTC instead of failing.
    assert_eq!(rfc3339(0, 999_999), "1970-01-01T00:00:00+00:00");
}

fn settings(dir: &Path) -> ship::Settings {
    ship::Settings {
        options: Options {
            source_date_epoch: Some(1_700_000_000),
            ..Options::default()
        },
        dry_run: false,
        build: Some(ship::Build {
            run: vec!["cp".into(), "README".into(), "dist.txt".into()],
            artifact: vec!["dist.txt".into()],
            ..ship::Build::default()
        }),
        changelog: Some(ship::ChangelogFile {
            file: "CHANGELOG.md".into(),
            commit: true,
            commit_message: "chore(release): {version}".into(),
        }),
        state_dir: dir.join(".cutover"),
        push: None,
        hotfix: false,
    }
}

#[test]
fn release_builds_packs_commits_the_changelog_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let t = repo_with_history(dir.path());
    t.git(&["config", "core.excludesFile", "/dev/null"]);
    std::fs::write(dir.path().join(".gitignore"), "/.cutover/\n/dist.txt\n").unwrap();
    t.git(&["add", ".gitignore"]);
    t.git(&["commit", "-q", "-m", "chore: ignore build output"]);

    let dry = ship::release(
        dir.path(),
        &ship::Settings {
            dry_run: true,
            ..settings(dir.path())
        },
    )
    .unwrap();
    assert_eq!(dry.tag, "v2.0.0");
    assert_eq!(dry.steps.len(), 5, "{:?}", dry.steps);
    assert!(
        !dir.path().join("CHANGELOG.md").exists(),
        "a dry run writes nothing"
    );
    assert!(t.git(&["tag", "-l", "v2.0.0"]).trim().is_empty());

    let released = ship::release(dir.path(), &settings(dir.path())).unwrap();
    assert_eq!(released.tag, "v2.0.0");
    let artifact = released.artifact.clone().unwrap();
    assert!(artifact.path.is_file());
    assert!(artifact.digest.starts_with("sha256:"));
    let changelog = std::fs::read_to_string(dir.path().join("CHANGELOG.md")).unwrap();
    assert!(
        changelog.starts_with("# Changelog\n\n## 2.0.0"),
        "{changelog}"
    );
    // The tag points at the changelog commit and carries the notes verbatim.
    assert_eq!(
        released.changelog_commit.as_deref(),
        Some(released.commit.as_str())
    );
    assert_eq!(
        t.git(&["rev-parse", "v2.0.0^{commit}"]).trim(),
        released.commit
    );
    assert_eq!(
        t.git(&["log", "-1", "--format=%s"]).trim(),
        "chore(release): 2.0.0"
    );
    let message = t.git(&["tag", "-l", "--format=%(contents)", "v2.0.0"]);
    assert_eq!(message.trim_end(), released.planned.plan.notes.trim_end());

    // Released: the next plan starts from it, and there is nothing left to release.
    let err = ship::release(dir.path(), &settings(dir.path())).unwrap_err();
    assert!(err.to_string().contains("nothing to release"), "{err}");

    // The same commit and SOURCE_DATE_EPOCH pack to the same bytes.
    let again = artifact::pack(
        dir.path(),
        &["dist.txt".into()],
        1_700_000_000,
        &dir.path().join(".cutover/artifacts"),
    )
    .unwrap();
    assert_eq!(again.digest, artifact.digest);
}

#[test]
fn release_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = repo_with_history(dir.path());
    std::fs::write(dir.path().join("README"), "edited\n").unwrap();
    let err = ship::release(dir.path(), &settings(dir.path())).unwrap_err();
    assert!(matches!(err, ship::ShipError::Dirty { .. }), "{err}");
    assert!(err.to_string().contains("  README"), "{err}");
    t.git(&["checkout", "--quiet", "--", "README"]);

    let hotfix = ship::Settings {
        hotfix: true,
        ..settings(dir.path())
    };
    let err = ship::release(dir.path(), &hotfix).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("feat!: drop the old config"), "{msg}");
    assert!(msg.contains("feat: add widgets"), "{msg}");

    let failing = ship::Settings {
        build: Some(ship::Build {
            run: vec!["false".into()],
            ..ship::Build::default()
        }),
        ..settings(dir.path())
    };
    let err = ship::release(dir.path(), &failing).unwrap_err();
    assert!(
        err.to_string().contains("the build `false` failed"),
        "{err}"
    );
    assert!(!dir.path().join("CHANGELOG.md").exists());
    assert!(t.git(&["tag", "-l", "v2.0.0"]).trim().is_empty());

    let explicit = ship::Settings {
        options: Options {
            explicit: Some(semver::Version::parse("1.0.1").unwrap()),
            ..Options::default()
        },
        ..settings(dir.path())
    };
    let err = ship::release(dir.path(), &explicit).unwrap_err();
    assert!(err.to_string().contains("not higher"), "{err}");
}

#[test]
fn hotfix_plans_from_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = repo_with_history(dir.path());
    t.tag("v2.0.0");
    t.git(&["switch", "--quiet", "-c", "hotfix/1.0.2", "v1.0.1"]);
    t.commit("fix: urgent");
    let options = Options {
        base: Some("v1.0.1".into()),
        explicit: Some(semver::Version::new(1, 0, 2)),
        ..Options::default()
    };
    let planned = plan(dir.path(), &options).unwrap();
    assert_eq!(planned.plan.next.version, "1.0.2");
    assert_eq!(planned.plan.changes.len(), 1);
    let err = plan(
        dir.path(),
        &Options {
            base: Some("v9.9.9".into()),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`v9.9.9` is not a release tag"),
        "{err}"
    );
}
