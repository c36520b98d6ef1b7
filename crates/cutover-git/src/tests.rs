//! Tests on real repositories built with the system git in temporary directories.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::testrepo::TestRepo;

fn v_fmt() -> TagFormat {
    TagFormat::new("v{version}").unwrap()
}

fn walk(repo: &Repo, from: &str, to: Option<&str>, options: &WalkOptions) -> Vec<String> {
    let tip = repo.resolve(from).unwrap();
    let hide = to.map(|t| repo.resolve(t).unwrap());
    let mut warnings = Vec::new();
    repo.commits(tip, hide, "the last release", options, &mut warnings)
        .unwrap()
        .into_iter()
        .map(|c| c.message.lines().next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn releases_annotated_and_lightweight_by_semver() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    let first = t.commit("feat: one");
    t.tag("v1.9.0");
    t.commit("fix: two");
    t.lightweight_tag("v1.10.0");
    t.commit("feat: three");
    t.tag("v1.11.0-rc.1");
    t.lightweight_tag("nightly");
    t.lightweight_tag("api-v9.0.0");

    let repo = Repo::open(dir.path()).unwrap();
    let tags = repo.tags().unwrap();
    let v19 = tags.iter().find(|t| t.name == "v1.9.0").unwrap();
    assert!(v19.annotated);
    assert_eq!(v19.commit.to_string(), first);
    assert!(!tags.iter().find(|t| t.name == "v1.10.0").unwrap().annotated);

    let releases = repo.releases(&v_fmt()).unwrap();
    let names: Vec<&str> = releases.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(names, vec!["v1.9.0", "v1.10.0", "v1.11.0-rc.1"]);
    let api = repo
        .releases(&TagFormat::new("api-v{version}").unwrap())
        .unwrap();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0].version, semver::Version::new(9, 0, 0));
}

#[test]
fn tag_that_looks_like_a_release_but_is_not_semver() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: one");
    t.tag("v1.2");
    let repo = Repo::open(dir.path()).unwrap();
    let err = repo.releases(&v_fmt()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("tag `v1.2` looks like a release"), "{msg}");
    assert!(msg.contains("hint"), "{msg}");
}

#[test]
fn walk_ranges_merges_and_first_parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("chore: init");
    t.tag("v1.0.0");
    t.commit("fix: on main");
    t.git(&["switch", "--quiet", "-c", "topic"]);
    t.commit_in("topic.txt", "feat: on topic");
    t.git(&["switch", "--quiet", "main"]);
    t.commit("docs: on main again");
    t.tick();
    t.git(&[
        "merge",
        "--no-ff",
        "--quiet",
        "-m",
        "Merge branch 'topic'",
        "topic",
    ]);
    t.commit("perf: after merge");

    let repo = Repo::open(dir.path()).unwrap();
    let all = walk(&repo, "HEAD", Some("v1.0.0"), &WalkOptions::default());
    assert_eq!(
        all,
        vec![
            "perf: after merge",
            "docs: on main again",
            "feat: on topic",
            "fix: on main"
        ]
    );
    let with_merges = walk(
        &repo,
        "HEAD",
        Some("v1.0.0"),
        &WalkOptions {
            merges: MergePolicy::Include,
            ..WalkOptions::default()
        },
    );
    assert_eq!(with_merges.len(), 5);
    assert_eq!(with_merges[1], "Merge branch 'topic'");
    let main_line = walk(
        &repo,
        "HEAD",
        Some("v1.0.0"),
        &WalkOptions {
            first_parent: true,
            merges: MergePolicy::Include,
            ..WalkOptions::default()
        },
    );
    assert_eq!(
        main_line,
        vec![
            "perf: after merge",
            "Merge branch 'topic'",
            "docs: on main again",
            "fix: on main"
        ]
    );
    // Whole history when there is no release.
    assert_eq!(walk(&repo, "HEAD", None, &WalkOptions::default()).len(), 5);
}

#[test]
fn monorepo_path_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit_in("api/lib.rs", "feat(api): first api");
    t.commit_in("web/app.js", "feat(web): first web");
    t.commit_in("api/lib.rs", "fix(api): second api");
    t.commit_in("README", "docs: readme");
    let repo = Repo::open(dir.path()).unwrap();
    let only_api = walk(
        &repo,
        "HEAD",
        None,
        &WalkOptions {
            path: Some("api".into()),
            ..WalkOptions::default()
        },
    );
    assert_eq!(
        only_api,
        vec!["fix(api): second api", "feat(api): first api"]
    );
    let web = walk(
        &repo,
        "HEAD",
        None,
        &WalkOptions {
            path: Some("web/app.js".into()),
            ..WalkOptions::default()
        },
    );
    assert_eq!(web, vec!["feat(web): first web"]);
}

#[test]
fn commit_fields_and_non_utf8_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    let id = t.commit("feat: x\n\nbody\n");
    // git would re-encode a non-UTF-8 message to UTF-8 unless told the project's encoding; with
    // an `encoding ISO-8859-1` header the raw Latin-1 bytes are stored, as in old repositories.
    t.tick();
    t.git_input(
        &[
            "-c",
            "i18n.commitEncoding=ISO-8859-1",
            "commit",
            "--quiet",
            "--allow-empty",
            "--cleanup=verbatim",
            "--file=-",
        ],
        Some(b"fix: caf\xe9 cr\xe8me\n"),
    );
    let bad = t.head();
    let repo = Repo::open(dir.path()).unwrap();
    let mut warnings = Vec::new();
    let commits = repo
        .commits(
            repo.head().unwrap().commit,
            None,
            "",
            &WalkOptions::default(),
            &mut warnings,
        )
        .unwrap();
    assert_eq!(commits[1].id, id);
    assert_eq!(commits[1].message, "feat: x\n\nbody\n");
    assert_eq!(commits[1].author_name, "Ada Lovelace");
    assert_eq!(commits[1].author_email, "ada@example.com");
    assert_eq!(commits[1].time, 1_700_000_060);
    assert_eq!(commits[0].message, "fix: caf\u{fffd} cr\u{fffd}me\n");
    assert_eq!(warnings, vec![Warning::NonUtf8Message { commit: bad }]);
    assert!(warnings[0].to_string().contains("not UTF-8"));
}

#[test]
fn not_a_repository_and_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::open(dir.path()).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err:?}");
    assert!(err.to_string().contains("not a git repository"));
    let err = Repo::open(&dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("no such directory"));
}

#[test]
fn unborn_and_detached_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    let repo = Repo::open(dir.path()).unwrap();
    let err = repo.head().unwrap_err();
    assert!(err.to_string().contains("unborn branch `main`"), "{err}");

    let first = t.commit("feat: one");
    t.commit("feat: two");
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.head().unwrap().branch.as_deref(), Some("main"));
    t.git(&["checkout", "--quiet", "--detach", &first]);
    let repo = Repo::open(dir.path()).unwrap();
    let mut warnings = Vec::new();
    let head = repo.head_with_warnings(&mut warnings).unwrap();
    assert_eq!(head.branch, None);
    assert_eq!(head.commit.to_string(), first);
    assert_eq!(warnings, vec![Warning::DetachedHead { commit: first }]);
    assert!(warnings[0].to_string().contains("detached"));
}

#[test]
fn shallow_clone_without_the_last_tag() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let mut t = TestRepo::init(&src);
    t.commit("feat: one");
    t.tag("v1.0.0");
    for i in 0..4 {
        t.commit(&format!("fix: {i}"));
    }
    let tag_commit = t.git(&["rev-parse", "v1.0.0^{commit}"]).trim().to_owned();
    let dst = dir.path().join("dst");
    t.git(&[
        "clone",
        "--quiet",
        "--depth=2",
        &format!("file://{}", src.display()),
        dst.to_str().unwrap(),
    ]);
    let repo = Repo::open(&dst).unwrap();
    // The tag did not come along: walking to "the first commit" stops at the shallow boundary.
    assert!(repo.releases(&v_fmt()).unwrap().is_empty());
    let mut warnings = Vec::new();
    let head = repo.head().unwrap().commit;
    let err = repo
        .commits(
            head,
            None,
            "the first commit",
            &WalkOptions::default(),
            &mut warnings,
        )
        .unwrap_err();
    assert!(matches!(err, GitError::Shallow { .. }), "{err:?}");
    assert!(err.to_string().contains("git fetch --unshallow"), "{err}");
    // A known release whose commit is missing is the same error.
    let missing = ObjectId::from_hex(tag_commit.as_bytes()).unwrap();
    let err = repo
        .commits(
            head,
            Some(missing),
            "the last release v1.0.0",
            &WalkOptions::default(),
            &mut warnings,
        )
        .unwrap_err();
    assert!(err.to_string().contains("the last release v1.0.0"), "{err}");
}

#[test]
fn resolve_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    let a = t.commit("feat: a");
    t.tag("v0.1.0");
    let b = t.commit("feat: b");
    let repo = Repo::open(dir.path()).unwrap();
    assert_eq!(repo.resolve("v0.1.0").unwrap().to_string(), a);
    assert_eq!(repo.resolve("refs/tags/v0.1.0").unwrap().to_string(), a);
    assert_eq!(repo.resolve("main").unwrap().to_string(), b);
    assert_eq!(repo.resolve("HEAD").unwrap().to_string(), b);
    assert_eq!(repo.resolve(&a).unwrap().to_string(), a);
    let err = repo.resolve("v9").unwrap_err();
    assert!(err.to_string().contains("`v9` does not name a commit"));
}

#[test]
fn writes_through_system_git() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: a");
    // The write helpers use the caller's environment; make it hermetic for the test process.
    let env_dir = dir.path();
    assert!(write::dirty_paths(env_dir).unwrap().is_empty());
    std::fs::write(dir.path().join("CHANGELOG.md"), "# Changelog\n").unwrap();
    assert_eq!(write::dirty_paths(env_dir).unwrap(), vec!["CHANGELOG.md"]);
    let head = t.head();
    write::create_annotated_tag(env_dir, "v0.1.0", &head, "# Notes\n\n## Features\n").unwrap();
    let msg = t.git(&["tag", "-l", "--format=%(contents)", "v0.1.0"]);
    assert_eq!(msg.trim_end(), "# Notes\n\n## Features");
    let committed = write::commit_file(env_dir, "CHANGELOG.md", "chore(release): 0.1.0\n").unwrap();
    assert_eq!(committed, t.head());
    assert!(write::dirty_paths(env_dir).unwrap().is_empty());
    let err = write::create_annotated_tag(env_dir, "v0.1.0", &head, "again").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn partition_puts_each_commit_in_its_lowest_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestRepo::init(dir.path());
    t.commit("feat: a");
    t.tag("v1.0.0");
    t.commit("fix: b");
    t.git(&["switch", "--quiet", "-c", "topic"]);
    t.commit_in("topic.txt", "feat: on topic");
    t.git(&["switch", "--quiet", "main"]);
    t.commit("docs: c");
    t.tick();
    t.git(&[
        "merge",
        "--no-ff",
        "--quiet",
        "-m",
        "Merge branch 'topic'",
        "topic",
    ]);
    t.tag("v1.1.0");
    t.commit("perf: d");
    let repo = Repo::open(dir.path()).unwrap();
    let releases = repo.releases(&v_fmt()).unwrap();
    let mut tips: Vec<ObjectId> = releases.iter().map(|r| r.commit).collect();
    tips.push(repo.head().unwrap().commit);
    let mut warnings = Vec::new();
    let summaries = |options: &WalkOptions, warnings: &mut Vec<Warning>| -> Vec<Vec<String>> {
        repo.partition(&tips, options, warnings)
            .unwrap()
            .into_iter()
            .map(|part| {
                part.into_iter()
                    .map(|c| c.message.lines().next().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        summaries(&WalkOptions::default(), &mut warnings),
        vec![
            vec!["feat: a"],
            vec!["docs: c", "feat: on topic", "fix: b"],
            vec!["perf: d"],
        ]
    );
    // The same ranges as one walk per release with the previous release hidden.
    let per_range = walk(&repo, "v1.1.0", Some("v1.0.0"), &WalkOptions::default());
    assert_eq!(per_range, vec!["docs: c", "feat: on topic", "fix: b"]);
    let first_parent = summaries(
        &WalkOptions {
            first_parent: true,
            merges: MergePolicy::Include,
            ..WalkOptions::default()
        },
        &mut warnings,
    );
    assert_eq!(
        first_parent[1],
        vec!["Merge branch 'topic'", "docs: c", "fix: b"]
    );
    assert!(warnings.is_empty());
}
