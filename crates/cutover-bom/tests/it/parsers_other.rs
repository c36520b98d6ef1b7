//! The Python, Go, Ruby, Gradle, Maven and NuGet lockfile parsers: every fixture of those formats
//! parsed and snapshotted, targeted checks of what the fixtures exercise, bad input, and property
//! tests (arbitrary input never panics; generated lockfiles yield exactly their entries).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use cutover_bom::lockfile::{go, gradle, maven, nuget, python, ruby};
use cutover_bom::model::{Component, ParseError, Parsed, Resolution, Scope, Source};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// The fixture folders of the formats these parsers read.
const FORMAT_DIRS: &[&str] = &[
    "bundler", "go", "gradle", "maven", "nuget", "pip", "pipenv", "poetry", "uv",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every file under the format folders, as `/`-separated paths relative to `lockfiles/`, sorted.
fn fixture_files() -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let child = format!("{rel}/{name}");
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &child, out);
            } else {
                out.push(child);
            }
        }
    }
    let mut out = Vec::new();
    for d in FORMAT_DIRS {
        walk(&fixtures().join(d), d, &mut out);
    }
    out.sort();
    out
}

/// Parses the fixture at `rel` with the parser its file name calls for; `None` for sidecar files
/// (go.sum, pyproject.toml, included requirement files) that are read through their lockfile.
fn parse_fixture(rel: &str) -> Option<Result<Parsed, ParseError>> {
    let text = read(rel);
    let root = fixtures();
    let resolve = move |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let file_name = rel.rsplit('/').next().unwrap();
    Some(match file_name {
        "requirements.txt" => python::parse_requirements_txt_with(&text, rel, &resolve),
        "poetry.lock" => {
            let manifest = rel.replace("poetry.lock", "pyproject.toml");
            let pyproject = std::fs::read_to_string(fixtures().join(manifest)).ok();
            python::parse_poetry_lock_with(&text, rel, pyproject.as_deref())
        }
        "Pipfile.lock" => python::parse_pipfile_lock(&text, rel),
        "uv.lock" => python::parse_uv_lock(&text, rel),
        "go.mod" => {
            let sum_rel = rel.replace("go.mod", "go.sum");
            let sum = std::fs::read_to_string(fixtures().join(&sum_rel)).ok();
            go::parse_go_mod_with_sum(&text, rel, sum.as_deref())
        }
        "Gemfile.lock" => ruby::parse_gemfile_lock(&text, rel),
        "gradle.lockfile" => gradle::parse_gradle_lockfile(&text, rel),
        "pom.xml" => maven::parse_pom_xml_with(&text, rel, &resolve),
        "packages.lock.json" => nuget::parse_packages_lock_json(&text, rel),
        "go.sum" | "pyproject.toml" | "other-requirements.txt" => return None,
        other => panic!("fixture {rel}: no parser for `{other}`; add it to parse_fixture"),
    })
}

fn parsed(rel: &str) -> Parsed {
    parse_fixture(rel)
        .expect("a lockfile")
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn find<'a>(p: &'a Parsed, name: &str) -> &'a Component {
    p.components
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no component {name} in {:#?}", names(p)))
}

fn names(p: &Parsed) -> Vec<String> {
    p.components
        .iter()
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect()
}

#[test]
fn every_fixture_parses_and_matches_its_snapshot() {
    let files = fixture_files();
    assert!(files.len() >= 60, "fixtures missing: {files:?}");
    let mut lockfiles = 0;
    for rel in &files {
        let Some(result) = parse_fixture(rel) else {
            continue;
        };
        lockfiles += 1;
        let parsed = result.unwrap_or_else(|e| panic!("{rel} failed to parse: {e}"));
        for c in &parsed.components {
            assert_eq!(c.manifest.split('/').next(), rel.split('/').next(), "{rel}");
            assert!(
                !c.version.is_empty() || c.resolution == Resolution::Unresolved,
                "{rel}: {} has no version but is not unresolved",
                c.name
            );
            for h in &c.hashes {
                assert!(
                    h.hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
            }
        }
        let keys: std::collections::HashSet<String> =
            parsed.components.iter().map(Component::key).collect();
        assert_eq!(keys.len(), parsed.components.len(), "{rel}: duplicate keys");
        for c in &parsed.components {
            for d in &c.depends_on {
                assert!(keys.contains(d), "{rel}: {} depends on unknown {d}", c.name);
            }
        }
        let name = rel.replace('/', "__");
        insta::assert_yaml_snapshot!(name, parsed);
    }
    assert!(lockfiles >= 50, "only {lockfiles} lockfiles parsed");
}

// --- what the fixtures are there for ---

#[test]
fn requirements_pins_hashes_markers_and_unresolved() {
    let p = parsed("pip/mixed-specifiers-hashes-markers/requirements.txt");
    let flask = find(&p, "flask");
    assert_eq!(
        (flask.version.as_str(), flask.resolution),
        ("4.0.0", Resolution::Resolved)
    );
    assert_eq!(find(&p, "urllib3").version, "1.26.20");
    let sqlalchemy = find(&p, "sqlalchemy");
    assert_eq!(sqlalchemy.resolution, Resolution::Unresolved);
    assert_eq!(sqlalchemy.version, "");
    let argh: Vec<&Component> = p.components.iter().filter(|c| c.name == "argh").collect();
    assert_eq!(argh.len(), 2);
    assert!(
        argh.iter()
            .all(|c| c.hashes.len() == 2 && c.hashes[0].alg == "SHA-256")
    );
    let some = find(&p, "someproject");
    assert_eq!(some.version, "5.4");
    assert_eq!(
        some.properties["cutover:python:markers"],
        "python_version < '3.8'"
    );
    assert_eq!(some.properties["cutover:python:name"], "SomeProject");
    let celery = find(&p, "celery");
    assert_eq!(celery.properties["cutover:python:extras"], "redis,pytest");
    assert_eq!(find(&p, "friendly-bard").version, "1.0.0");
    assert_eq!(find(&p, "local-version").version, "1.2.3+gcr.2");
    let gh = find(&p, "githubsampleproject");
    assert_eq!(gh.version, "3.7.1");
    assert!(matches!(&gh.source, Source::Git { rev: Some(r), .. } if r == "releases/tag/v3.7.1"));
    // `requests == 2.8.*` is a wildcard, not a pin.
    assert_eq!(find(&p, "requests").resolution, Resolution::Unresolved);
    // The missing include and the nameless `==2.3.4` are reported, not fatal.
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("other-requirements.txt"))
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.line == Some(23) && w.message.contains("no package name")),
        "{:#?}",
        p.warnings
    );
}

#[test]
fn requirements_follow_includes_and_read_file_names() {
    let p = parsed("pip/pip-docs-example-with-include/requirements.txt");
    let pandas = find(&p, "pandas");
    assert_eq!(pandas.version, "2.2.3");
    assert_eq!(
        pandas.manifest,
        "pip/pip-docs-example-with-include/other-requirements.txt"
    );
    assert_eq!(find(&p, "pytest").resolution, Resolution::Unresolved);
    let numpy = find(&p, "numpy");
    assert_eq!(numpy.version, "1.9.2");
    assert!(matches!(&numpy.source, Source::Path { .. }));
    assert_eq!(
        find(&p, "wxpython-phoenix").version,
        "3.0.3.dev1820+49a8884"
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("constraints.txt"))
    );
}

#[test]
fn requirements_per_requirement_options_and_continuations() {
    let p = parsed("pip/per-requirement-options/requirements.txt");
    for n in ["foo1", "foo2", "foo3", "foo8", "foo9", "foo13", "foo14"] {
        assert_eq!(find(&p, n).version, "1.0", "{n}");
    }
    assert_eq!(
        find(&p, "foo5").properties["cutover:python:markers"],
        "python_version < \"2.7\""
    );
    assert_eq!(find(&p, "foo10").resolution, Resolution::Unresolved);
    assert_eq!(find(&p, "foo16-client").version, "1.0");
    let multi = parsed("pip/multiline-and-comments/requirements.txt");
    assert_eq!(names(&multi), vec!["pkga@1.0", "pkgb@2.0"]);
    let ops = parsed("pip/version-operators/requirements.txt");
    assert_eq!(find(&ops, "qwerty").version, "0.1");
    assert_eq!(find(&ops, "yolo").version, "1.0");
    assert_eq!(find(&ops, "asdf").resolution, Resolution::Unresolved);
}

#[test]
fn requirements_includes_constraints_cycles_and_dev_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "requirements.txt",
        "flask>=2\nrequests==2.31.0\n-c constraints/pins.txt\n",
    );
    write(
        "constraints/pins.txt",
        "flask==2.3.3 --hash=sha256:09c347a92aa7ff4a8e7f3206795f30d826654baf38b873d0744cd571ca609efc\n",
    );
    write(
        "requirements-dev.txt",
        "-r requirements.txt\npytest==8.0.0\nrequests==2.31.0\n-r loop/a.txt\n",
    );
    write("loop/a.txt", "-r b.txt\nattrs==23.1.0\n");
    write("loop/b.txt", "-r a.txt\n");
    let root = dir.path().to_path_buf();
    let resolve = move |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let text = std::fs::read_to_string(dir.path().join("requirements-dev.txt")).unwrap();
    let p = python::parse_requirements_txt_with(&text, "requirements-dev.txt", &resolve).unwrap();
    let flask = find(&p, "flask");
    assert_eq!(
        (flask.version.as_str(), flask.resolution),
        ("2.3.3", Resolution::Resolved)
    );
    assert_eq!(flask.hashes.len(), 1);
    assert_eq!(flask.scope, Scope::Required, "declared in requirements.txt");
    assert_eq!(
        find(&p, "requests").scope,
        Scope::Required,
        "in both: the stronger scope"
    );
    assert_eq!(find(&p, "pytest").scope, Scope::Excluded);
    assert_eq!(find(&p, "attrs").manifest, "loop/a.txt");
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("include cycle")),
        "{:#?}",
        p.warnings
    );
    assert_eq!(p.components.len(), 4);
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    for (_, parse, rel) in parsers() {
        let lf = read(rel);
        let crlf = lf.replace('\n', "\r\n");
        let a = parse(&lf, rel).unwrap();
        let b = parse(&crlf, rel).unwrap();
        assert_eq!(names(&a), names(&b), "{rel}");
        assert_eq!(a.components, b.components, "{rel}");
    }
}

#[test]
fn pip_compile_via_comments_mark_direct() {
    let p = parsed("pip/pip-compile-via-comments/requirements.txt");
    let django = find(&p, "django");
    assert!(django.direct);
    assert_eq!(django.version, "2.2.24");
}

#[test]
fn poetry_groups_categories_sources() {
    let p = parsed("poetry/poetry2-groups-markers/poetry.lock");
    assert_eq!(find(&p, "factory-boy").scope, Scope::Excluded);
    assert_eq!(find(&p, "async-timeout").scope, Scope::Optional);
    assert_eq!(find(&p, "proto-plus").scope, Scope::Required);
    assert!(
        find(&p, "factory-boy")
            .depends_on
            .iter()
            .any(|d| d.contains("faker@"))
    );
    let legacy = parsed("poetry/legacy-no-lock-version-dev-category/poetry.lock");
    assert!(legacy.components.iter().all(|c| c.scope == Scope::Excluded));
    assert_eq!(find(&legacy, "alabaster").hashes.len(), 1, "the sdist hash");
    let git = parsed("poetry/v1.1-git-source/poetry.lock");
    assert!(matches!(&find(&git, "ike").source,
        Source::Git { rev: Some(r), .. } if r == "cd66602cd29f61a2d2e7fb995fef1e61708c034d"));
    let src = parsed("poetry/v1.1-legacy-source/poetry.lock");
    assert!(
        matches!(&find(&src, "appdirs").source, Source::AlternateRegistry { url } if url == "https://piwheels.org/simple")
    );
    let opt = parsed("poetry/v1.1-optional-package/poetry.lock");
    assert_eq!(find(&opt, "numpy").scope, Scope::Optional);
    let case = parsed("poetry/case-sensitivity/poetry.lock");
    assert!(
        find(&case, "dj-rest-auth")
            .depends_on
            .iter()
            .any(|d| d.contains(":django@5.2.6"))
    );
    assert!(find(&case, "dj-rest-auth").direct);
    assert!(!find(&case, "django").direct);
}

#[test]
fn poetry_with_pyproject_sets_direct_and_scope() {
    let p = parsed("poetry/v2.0-nested-extras/poetry.lock");
    assert!(find(&p, "fastapi").direct);
    assert_eq!(p.components.iter().filter(|c| c.direct).count(), 1);
    // Only installed through the `all` extra that pyproject.toml asks of fastapi.
    assert_eq!(find(&p, "itsdangerous").scope, Scope::Required);
    assert_eq!(
        find(&p, "uvicorn").properties["cutover:python:extras"],
        "standard"
    );

    let lock = "[[package]]\nname = \"pytest\"\nversion = \"8.0.0\"\noptional = false\nfiles = []\n\n\
        [package.dependencies]\npluggy = \">=1\"\n\n\
        [[package]]\nname = \"pluggy\"\nversion = \"1.4.0\"\noptional = false\nfiles = []\n\n\
        [[package]]\nname = \"Requests\"\nversion = \"2.31.0\"\noptional = false\nfiles = []\n\n\
        [[package]]\nname = \"win-only\"\nversion = \"1.0\"\noptional = false\nfiles = []\n\n\
        [metadata]\nlock-version = \"2.0\"\n";
    let poetry_style = "[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"*\"\n\n\
        [tool.poetry.group.dev.dependencies]\npytest = \"*\"\n";
    let pep621_style = "[project]\nname = \"x\"\ndependencies = [\"requests>=2\"]\n\n\
        [dependency-groups]\ndev = [\"pytest>=8\"]\n";
    for manifest in [poetry_style, pep621_style] {
        let p = python::parse_poetry_lock_with(lock, "poetry.lock", Some(manifest)).unwrap();
        let requests = find(&p, "requests");
        assert!((requests.direct, requests.scope) == (true, Scope::Required));
        let pytest = find(&p, "pytest");
        assert!((pytest.direct, pytest.scope) == (true, Scope::Excluded));
        let pluggy = find(&p, "pluggy");
        assert!((pluggy.direct, pluggy.scope) == (false, Scope::Excluded));
        assert_eq!(find(&p, "win-only").scope, Scope::Optional, "not reachable");
    }
    let broken = python::parse_poetry_lock_with(lock, "a/poetry.lock", Some("[project")).unwrap();
    assert!(
        broken.warnings[0]
            .message
            .starts_with("a/pyproject.toml unreadable")
    );
}

#[test]
fn pipfile_default_develop_and_git() {
    let p = parsed("pipenv/default-and-develop/Pipfile.lock");
    assert_eq!(find(&p, "aio-pika").scope, Scope::Required);
    assert!(
        matches!(&find(&p, "aiodns").source, Source::AlternateRegistry { url } if url.contains("test.pypi.org"))
    );
    assert!(p.components.iter().any(|c| c.scope == Scope::Excluded));
    let dev = parsed("pipenv/develop-only/Pipfile.lock");
    assert!(dev.components.iter().all(|c| c.scope == Scope::Excluded));
    let git = parsed("pipenv/git-editable-no-version/Pipfile.lock");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Pipfile"),
        "[packages]\nMarkupSafe = {git = \"https://github.com/pallets/markupsafe\"}\n",
    )
    .unwrap();
    let pipfile = std::fs::read_to_string(dir.path().join("Pipfile")).unwrap();
    let rel = "pipenv/git-editable-no-version/Pipfile.lock";
    let with = python::parse_pipfile_lock_with(&read(rel), rel, Some(&pipfile)).unwrap();
    assert!(find(&with, "markupsafe").direct);
    assert!(!find(&with, "itsdangerous").direct);
    let m = find(&git, "markupsafe");
    assert_eq!(m.version, "b36054111bc1e8bbadb5d0d60158feb72926f467");
    assert!(matches!(&m.source, Source::Git { .. }));
}

#[test]
fn uv_root_is_the_project_and_groups_set_scope() {
    let p = parsed("uv/editable-root-dev-group/uv.lock");
    assert!(p.components.iter().all(|c| c.name != "built-by-uv"));
    let anyio = find(&p, "anyio");
    assert!(anyio.direct);
    assert_eq!(anyio.scope, Scope::Required);
    assert_eq!(find(&p, "idna").scope, Scope::Required);
    assert!(!find(&p, "idna").direct);
    let pytest = find(&p, "pytest");
    assert!(pytest.direct);
    assert_eq!(pytest.scope, Scope::Excluded);
    assert_eq!(find(&p, "iniconfig").scope, Scope::Excluded);
    assert_eq!(anyio.hashes.len(), 1, "the sdist hash");

    let g = parsed("uv/virtual-root-groups-optional/uv.lock");
    assert_eq!(find(&g, "emoji").scope, Scope::Required);
    assert_eq!(find(&g, "click").scope, Scope::Optional);
    let git = parsed("uv/git-source/uv.lock");
    assert!(matches!(&find(&git, "ruff").source,
        Source::Git { url, rev: Some(r) } if url == "https://github.com/astral-sh/ruff" && r.starts_with("84748be")));
    let extras = parsed("uv/multiple-extras/uv.lock");
    assert_eq!(
        find(&extras, "httpx").properties["cutover:python:extras"],
        "brotli,http2,socks"
    );
    assert_eq!(
        find(&extras, "h2").scope,
        Scope::Required,
        "pulled in by a requested extra"
    );
    let big = parsed("uv/revision3-real-world-uv-repo/uv.lock");
    assert!(big.components.len() > 80);
    assert!(
        big.components.iter().all(|c| c.name != "uv"),
        "the root is not a component"
    );
}

#[test]
fn go_mod_replace_exclude_indirect_and_sums() {
    let p = parsed("go/replace-exclude-comments/go.mod");
    assert_eq!(find(&p, "github.com/bmatcuk/doublestar").version, "v8.8.8");
    assert!(!find(&p, "github.com/bmatcuk/doublestar").direct);
    assert_eq!(find(&p, "github.com/anchore/archiver/v3").version, "v3.5.2");
    assert!(find(&p, "github.com/anchore/go-testutils").direct);
    assert!(
        p.components.iter().all(|c| c.name != "github.com/adrg/xdg"),
        "excluded"
    );
    assert!(
        p.components
            .iter()
            .all(|c| c.name != "github.com/ignore/this")
    );

    let rel = parsed("go/relative-path-replace/go.mod");
    assert!(
        matches!(&find(&rel, "github.com/aws/aws-sdk-go-v2").source, Source::Path { path } if path == "../../../")
    );

    let sums = parsed("go/sum-hashes/go.mod");
    let ansi = find(&sums, "github.com/acarl005/stripansi");
    assert_eq!(ansi.hashes[0].alg, "SHA-256");
    assert_eq!(ansi.hashes[0].hex.len(), 64);
    assert_eq!(
        ansi.properties["cutover:go:h1"],
        "h1:licZJFw2RwpHMqeKTCYkitsPqHNxTmd4SNR5r94FGM8="
    );
    assert_eq!(
        find(&sums, "github.com/CycloneDX/cyclonedx-go").version,
        "v0.6.0"
    );

    let old = parsed("go/go1.16-indirect-only-in-sum/go.mod");
    assert!(find(&old, "github.com/sirupsen/logrus").direct);
    let spew = find(&old, "github.com/davecgh/go-spew");
    assert_eq!((spew.version.as_str(), spew.direct), ("v1.1.1", false));
    assert!(
        old.components
            .iter()
            .all(|c| c.name != "github.com/stretchr/objx"),
        "only a go.mod hash"
    );

    let tc = parsed("go/toolchain-with-suffix/go.mod");
    assert_eq!(names(&tc), vec!["github.com/BurntSushi/toml@v1.0.0"]);
}

#[test]
fn gemfile_sections_edges_and_direct() {
    let p = parsed("bundler/basic/Gemfile.lock");
    assert!(
        matches!(&find(&p, "google-cloud-errors").source, Source::Path { path } if path == "../google-cloud-errors")
    );
    assert!(
        matches!(&find(&p, "turbolinks").source, Source::Git { rev: Some(r), .. } if r.starts_with("80216ce"))
    );
    let rails = find(&p, "rails");
    assert!(rails.direct);
    assert!(
        rails
            .depends_on
            .contains(&"RubyGems:railties@4.1.1".to_owned())
    );
    assert!(!find(&p, "actionview").direct);
    assert!(p.components.iter().all(|c| c.name != "bad-entry"));
    assert!(p.warnings.iter().any(|w| w.message.contains("BAD-SECTION")));
    let rails7 = parsed("bundler/rails/Gemfile.lock");
    let nokogiri = find(&rails7, "nokogiri");
    assert_eq!(nokogiri.version, "1.13.3");
    assert_eq!(nokogiri.properties["cutover:gem:platform"], "x86_64-linux");
    let end = parsed("bundler/source-section-at-end/Gemfile.lock");
    assert!(find(&end, "ast").direct);
}

#[test]
fn gemfile_checksums_platforms_and_alternate_sources() {
    let sha = "a3daabb76a78f829cafc365531c972016e4aa8d5b4bf60660ad8ecee19df7ccc";
    let text = format!(
        "GEM\n  remote: https://gems.example.com/\n  specs:\n    nokogiri (1.16.0-arm64-darwin)\n      racc (~> 1.4)\n    \
         nokogiri (1.16.0-x86_64-linux)\n      racc (~> 1.4)\n    racc (1.7.3)\n\nPLATFORMS\n  arm64-darwin\n  x86_64-linux\n\n\
         DEPENDENCIES\n  nokogiri\n\nCHECKSUMS\n  nokogiri (1.16.0-x86_64-linux) sha256={sha}\n  racc (1.7.3) sha256=bad\n\n\
         BUNDLED WITH\n   2.5.3\n"
    );
    let p = ruby::parse_gemfile_lock(&text, "Gemfile.lock").unwrap();
    assert_eq!(names(&p), vec!["nokogiri@1.16.0", "racc@1.7.3"]);
    let n = find(&p, "nokogiri");
    assert_eq!(
        n.properties["cutover:gem:platform"],
        "arm64-darwin,x86_64-linux"
    );
    assert_eq!(n.hashes[0].hex, sha);
    assert!(
        matches!(&n.source, Source::AlternateRegistry { url } if url == "https://gems.example.com/")
    );
    assert_eq!(n.depends_on, vec!["RubyGems:racc@1.7.3".to_owned()]);
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].line, Some(19), "the `racc` checksum line");
}

#[test]
fn gradle_scopes_and_bad_lines() {
    let p = parsed("gradle/basic/gradle.lockfile");
    assert_eq!(find(&p, "junit").scope, Scope::Excluded);
    assert_eq!(find(&p, "junit").namespace.as_deref(), Some("junit"));
    assert_eq!(find(&p, "joda-time").scope, Scope::Required);
    assert_eq!(find(&p, "commons-text").scope, Scope::Required);
    assert_eq!(p.components.len(), 4);
    let bad = parsed("gradle/with-bad-lines/gradle.lockfile");
    assert_eq!(bad.components.len(), 2);
    assert!(bad.warnings.len() >= 3, "{:#?}", bad.warnings);
    assert!(bad.warnings.iter().all(|w| w.line.is_some()));
    assert!(
        parsed("gradle/only-comments/gradle.lockfile")
            .components
            .is_empty()
    );
}

#[test]
fn maven_properties_parent_management_scopes() {
    let p = parsed("maven/with-local-parent/pom.xml");
    assert_eq!(find(&p, "alice").version, "1.0.0");
    assert_eq!(find(&p, "bob").version, "2.0.0");
    assert_eq!(find(&p, "chuck").version, "3.0.0");
    assert_eq!(find(&p, "dave").version, "4.0.0");
    assert_eq!(
        find(&p, "dave").properties["cutover:maven:inherited-from"],
        "maven/with-local-parent/parent/pom.xml"
    );
    assert_eq!(find(&p, "frank").resolution, Resolution::Unresolved);
    assert!(p.components.iter().all(|c| c.name != "import"));
    assert!(
        p.components
            .iter()
            .filter(|c| c.name != "frank")
            .all(|c| c.resolution == Resolution::Declared)
    );
    let dm = parsed("maven/dependency-management/pom.xml");
    assert_eq!(
        find(&dm, "netty-all").version,
        "4.1.9",
        "the declared version wins"
    );
    assert!(
        dm.components.iter().all(|c| c.name != "jsr305"),
        "management alone declares nothing"
    );
    let interp = parsed("maven/property-interpolation/pom.xml");
    assert_eq!(find(&interp, "mypackage").version, "1.0.0");
    assert_eq!(find(&interp, "my.package").version, "2.3.4");
    let ranged = find(&interp, "ranged-package");
    assert_eq!(ranged.resolution, Resolution::Unresolved);
    assert_eq!(
        ranged.properties["cutover:maven:version-spec"],
        "[9.4.35.v20201120,9.5)"
    );
    let scopes = parsed("maven/scopes/pom.xml");
    assert_eq!(find(&scopes, "junit").scope, Scope::Excluded);
    assert_eq!(find(&scopes, "xyz").scope, Scope::Required);
    let real = parsed("maven/commons-text-1.10.0-real/pom.xml");
    assert_eq!(find(&real, "commons-lang3").scope, Scope::Required);
    assert!(
        real.components
            .iter()
            .any(|c| c.resolution == Resolution::Unresolved),
        "parent properties are not local"
    );
}

#[test]
fn maven_multi_module_on_disk_uses_the_default_parent_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("pom.xml"),
        r#"<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <groupId>com.example</groupId>
  <artifactId>parent</artifactId>
  <version>2.5.0</version>
  <packaging>pom</packaging>
  <properties><jackson.version>2.17.1</jackson.version><lib.scope>provided</lib.scope></properties>
  <dependencyManagement><dependencies>
    <dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-databind</artifactId><version>${jackson.version}</version></dependency>
    <dependency><groupId>jakarta.servlet</groupId><artifactId>jakarta.servlet-api</artifactId><version>6.0.0</version><scope>${lib.scope}</scope></dependency>
  </dependencies></dependencyManagement>
</project>"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app/pom.xml"),
        r#"<project>
  <parent><groupId>com.example</groupId><artifactId>parent</artifactId><version>2.5.0</version></parent>
  <artifactId>app</artifactId>
  <dependencies>
    <dependency><groupId>${project.groupId}</groupId><artifactId>core</artifactId><version>${project.version}</version></dependency>
    <dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-databind</artifactId></dependency>
    <dependency><groupId>jakarta.servlet</groupId><artifactId>jakarta.servlet-api</artifactId></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.13</version><optional>true</optional></dependency>
    <dependency><groupId>org.unknown</groupId><artifactId>lib</artifactId><version>${missing.version}</version></dependency>
  </dependencies>
</project>"#,
    )
    .unwrap();
    let root = dir.path().to_path_buf();
    let resolve = move |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let text = std::fs::read_to_string(dir.path().join("app/pom.xml")).unwrap();
    let p = maven::parse_pom_xml_with(&text, "app/pom.xml", &resolve).unwrap();
    let core = find(&p, "core");
    assert_eq!(
        (core.namespace.as_deref(), core.version.as_str()),
        (Some("com.example"), "2.5.0")
    );
    let jackson = find(&p, "jackson-databind");
    assert_eq!(jackson.version, "2.17.1");
    assert_eq!(
        jackson.properties["cutover:maven:version-from"],
        "dependencyManagement"
    );
    let servlet = find(&p, "jakarta.servlet-api");
    assert_eq!(
        (servlet.version.as_str(), servlet.scope),
        ("6.0.0", Scope::Excluded)
    );
    assert_eq!(find(&p, "slf4j-api").scope, Scope::Optional);
    let unknown = find(&p, "lib");
    assert_eq!(unknown.resolution, Resolution::Unresolved);
    assert_eq!(
        unknown.properties["cutover:maven:version-spec"],
        "${missing.version}"
    );
    assert!(p.warnings.is_empty(), "{:#?}", p.warnings);
    // Without the resolver the parent's properties are unknown.
    let alone = maven::parse_pom_xml(&text, "app/pom.xml").unwrap();
    assert_eq!(
        find(&alone, "jackson-databind").resolution,
        Resolution::Unresolved
    );
    assert_eq!(
        find(&alone, "core").version,
        "2.5.0",
        "project.version falls back to the parent's"
    );
}

#[test]
fn nuget_frameworks_dedupe_and_hashes() {
    let p = parsed("nuget/two-frameworks-mixed/packages.lock.json");
    let core = find(&p, "Test.Core");
    assert_eq!(core.properties["cutover:nuget:frameworks"], "net6.0,net7.0");
    assert_eq!(core.hashes[0].alg, "SHA-512");
    assert_eq!(core.hashes[0].hex.len(), 128);
    assert_eq!(
        p.components
            .iter()
            .filter(|c| c.name == "Test.System")
            .count(),
        2
    );
    let tree = parsed("nuget/net6-transitive-tree/packages.lock.json");
    let root = find(&tree, "Core.Dep");
    assert!(root.direct);
    assert_eq!(root.depends_on.len(), 7);
    assert!(!find(&tree, "Some.Dep.One").direct);
    let dup = parsed("nuget/two-frameworks-duplicates/packages.lock.json");
    let keys: Vec<String> = dup.components.iter().map(Component::key).collect();
    let mut dedup = keys.clone();
    dedup.dedup();
    assert_eq!(keys, dedup);
}

// --- bad input ---

type ParserFn = fn(&str, &str) -> Result<Parsed, ParseError>;

/// Every parser with a fixture of its format.
fn parsers() -> Vec<(&'static str, ParserFn, &'static str)> {
    vec![
        (
            "requirements.txt",
            python::parse_requirements_txt,
            "pip/mixed-specifiers-hashes-markers/requirements.txt",
        ),
        (
            "poetry.lock",
            python::parse_poetry_lock,
            "poetry/poetry2-groups-markers/poetry.lock",
        ),
        (
            "Pipfile.lock",
            python::parse_pipfile_lock,
            "pipenv/default-and-develop/Pipfile.lock",
        ),
        (
            "uv.lock",
            python::parse_uv_lock,
            "uv/editable-root-dev-group/uv.lock",
        ),
        ("go.mod", go::parse_go_mod, "go/realistic-module/go.mod"),
        (
            "Gemfile.lock",
            ruby::parse_gemfile_lock,
            "bundler/rails/Gemfile.lock",
        ),
        (
            "gradle.lockfile",
            gradle::parse_gradle_lockfile,
            "gradle/basic/gradle.lockfile",
        ),
        (
            "pom.xml",
            maven::parse_pom_xml,
            "maven/example-java-app/pom.xml",
        ),
        (
            "packages.lock.json",
            nuget::parse_packages_lock_json,
            "nuget/net8-direct-transitive/packages.lock.json",
        ),
    ]
}

#[test]
fn utf16_input_is_refused_with_a_clear_error() {
    for (name, parse, rel) in parsers() {
        let text = read(rel);
        let mut bytes = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let lossy = String::from_utf8_lossy(&bytes);
        let e = parse(&lossy, rel).expect_err(name);
        assert!(e.message.contains("UTF-16"), "{name}: {e}");
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().starts_with(&format!("{rel}:1: ")), "{e}");
        assert!(e.hint.is_some());
    }
}

#[test]
fn byte_order_mark_is_refused_with_a_clear_error() {
    for (name, parse, rel) in parsers() {
        let text = format!("\u{FEFF}{}", read(rel));
        let e = parse(&text, rel).expect_err(name);
        assert!(e.message.contains("byte order mark"), "{name}: {e}");
        assert_eq!(e.file, rel);
    }
}

#[test]
fn huge_input_is_refused_before_parsing() {
    let huge = "a".repeat(65 * 1024 * 1024);
    for (name, parse, rel) in parsers() {
        let e = parse(&huge, rel).expect_err(name);
        assert!(e.message.contains("MiB limit"), "{name}: {e}");
    }
}

#[test]
fn truncated_structured_lockfiles_fail_with_file_and_line() {
    // Formats whose syntax makes a cut detectable; line-based formats just lose their tail.
    let cases: &[(ParserFn, &str, &str)] = &[
        (
            python::parse_poetry_lock,
            "poetry/poetry2-groups-markers/poetry.lock",
            "expected",
        ),
        (
            python::parse_uv_lock,
            "uv/editable-root-dev-group/uv.lock",
            "expected",
        ),
        (
            python::parse_pipfile_lock,
            "pipenv/default-and-develop/Pipfile.lock",
            "expected",
        ),
        (
            nuget::parse_packages_lock_json,
            "nuget/net6-transitive-tree/packages.lock.json",
            "expected",
        ),
        (
            maven::parse_pom_xml,
            "maven/with-local-parent/pom.xml",
            "expected",
        ),
        (
            go::parse_go_mod,
            "go/realistic-module/go.mod",
            "never closed",
        ),
    ];
    for (parse, rel, needle) in cases {
        let text = read(rel);
        let cut = &text[..text.len() / 2 + 7];
        let e = parse(cut, rel).expect_err(rel);
        assert!(e.line.is_some(), "{rel}: {e}");
        assert!(e.message.contains(needle), "{rel}: {e}");
        assert!(e.to_string().starts_with(&format!("{rel}:")), "{e}");
    }
    // A Gemfile.lock cut inside a spec line.
    let gem = read("bundler/rubocop/Gemfile.lock");
    let cut = &gem[..gem.find("rainbow (").unwrap() + 11];
    let e = ruby::parse_gemfile_lock(cut, "Gemfile.lock").expect_err("cut spec");
    assert_eq!(e.line, Some(8));
    assert!(e.message.contains("expected `name (version)`"), "{e}");
}

#[test]
fn unknown_format_versions_are_refused() {
    let poetry =
        "[[package]]\nname = \"a\"\nversion = \"1\"\n\n[metadata]\nlock-version = \"9.0\"\n";
    let e = python::parse_poetry_lock(poetry, "poetry.lock").unwrap_err();
    assert!(
        e.message
            .contains("unsupported poetry.lock lock-version \"9.0\""),
        "{e}"
    );
    assert_eq!(e.line, Some(6), "the lock-version line");
    let e = python::parse_uv_lock("version = 2\n", "uv.lock").unwrap_err();
    assert!(e.message.contains("unsupported uv.lock version 2"), "{e}");
    let e = python::parse_uv_lock("[[package]]\nname = \"a\"\n", "uv.lock").unwrap_err();
    assert!(e.message.contains("expected `version = 1`"), "{e}");
    let e = nuget::parse_packages_lock_json(r#"{"version": 7, "dependencies": {}}"#, "x.json")
        .unwrap_err();
    assert!(e.message.contains("expected 1 or 2"), "{e}");
    assert_eq!(e.line, Some(1));
    let e = python::parse_pipfile_lock(
        r#"{"_meta": {"pipfile-spec": 99}, "default": {}}"#,
        "Pipfile.lock",
    )
    .unwrap_err();
    assert!(e.message.contains("unsupported pipfile-spec 99"), "{e}");
    let e = maven::parse_pom_xml("<settings></settings>", "pom.xml").unwrap_err();
    assert!(e.message.contains("expected <project>"), "{e}");
}

#[test]
fn malformed_lines_name_the_line_and_the_expectation() {
    let e = go::parse_go_mod(
        "module x\n\ngo 1.22\n\nrequire (\n\tgithub.com/a/b\n)\n",
        "go.mod",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(6));
    assert!(e.message.contains("expected `module/path v1.2.3`"), "{e}");
    let e = go::parse_go_mod_with_sum("module x\n", "m/go.mod", Some("github.com/a/b v1.0.0\n"))
        .unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("m/go.sum", Some(1)));
    let e = ruby::parse_gemfile_lock(
        "GEM\n  remote: https://rubygems.org/\n  specs:\n     bad (1.0)\n",
        "G",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4));
    let p = python::parse_requirements_txt_with("a==1\n-r /etc/passwd\n", "r.txt", &|_| {
        panic!("absolute includes must not be read")
    })
    .unwrap();
    assert!(
        p.warnings[0].message.contains("absolute path"),
        "{:#?}",
        p.warnings
    );
    let p = python::parse_requirements_txt("ok==1\n==2.0\n-x\n", "r.txt").unwrap();
    assert_eq!(names(&p), vec!["ok@1"]);
    assert_eq!(
        p.warnings.iter().map(|w| w.line).collect::<Vec<_>>(),
        vec![Some(2), Some(3)]
    );
}

// --- properties ---

fn pypi_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9]{0,6}([-_.][A-Za-z0-9]{1,4}){0,2}"
}

fn version() -> impl Strategy<Value = String> {
    "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}"
}

fn lineish() -> impl Strategy<Value = String> {
    // Text made of the characters lockfile syntax uses, so the parsers get past their first byte.
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_owned()),
            Just("    ".to_owned()),
            Just("==".to_owned()),
            Just("[[package]]\n".to_owned()),
            Just("name = \"a\"\n".to_owned()),
            Just("version = \"1\"\n".to_owned()),
            Just("<project>".to_owned()),
            Just("<dependency>".to_owned()),
            Just("</dependency>".to_owned()),
            Just("require (\n".to_owned()),
            Just(")\n".to_owned()),
            Just("{\"version\": 1, \"dependencies\": {".to_owned()),
            Just("GEM\n  specs:\n".to_owned()),
            Just("\\\n".to_owned()),
            Just("-r x.txt\n".to_owned()),
            Just("${a}".to_owned()),
            "[ -~]{0,12}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    // 48 cases keep the suite quick; set PROPTEST_CASES for a longer fuzzing run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_parser_panics_on_arbitrary_text(text in any::<String>(), shaped in lineish()) {
        for (_, parse, _) in parsers() {
            let _ = parse(&text, "x");
            let _ = parse(&shaped, "x");
        }
        let _ = go::parse_go_mod_with_sum(&shaped, "go.mod", Some(&text));
        let _ = python::parse_requirements_txt_with(&shaped, "r.txt", &|_| Some(shaped.clone()));
        let _ = maven::parse_pom_xml_with(&shaped, "pom.xml", &|_| Some(shaped.clone()));
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        insert in "[ -~\n\t]{0,8}",
    ) {
        let all = parsers();
        let (_, parse, rel) = all[which.index(all.len())];
        let text = read(rel);
        let floor = |i: usize| (0..=i).rev().find(|&j| text.is_char_boundary(j)).unwrap_or(0);
        let pos = floor(at.index(text.len() + 1));
        let end = floor(cut.index(text.len() + 1)).max(pos);
        let mutated = format!("{}{}{}", &text[..pos], insert, &text[end..]);
        if let Err(e) = parse(&mutated, rel) {
            prop_assert_eq!(e.file.as_str(), rel);
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn pinned_requirement_lines_yield_their_components(
        entries in proptest::collection::vec((pypi_name(), version(), any::<bool>()), 1..20)
    ) {
        let text: String = entries.iter().map(|(n, v, spaced)| {
            if *spaced { format!("{n} == {v}  # pinned\n") } else { format!("{n}=={v}\n") }
        }).collect();
        let p = python::parse_requirements_txt(&text, "requirements.txt").unwrap();
        for (n, v, _) in &entries {
            let norm = n.to_ascii_lowercase().replace(['_', '.'], "-");
            prop_assert!(p.components.iter().any(|c| c.name == norm && c.version == *v
                && c.resolution == Resolution::Resolved), "{n}=={v} missing from {:?}", names(&p));
        }
        prop_assert!(p.warnings.is_empty());
    }

    #[test]
    fn poetry_packages_yield_their_components(
        entries in proptest::collection::btree_map("[a-z]{1,8}", version(), 1..15),
        dev in any::<bool>()
    ) {
        let group = if dev { "dev" } else { "main" };
        let text: String = entries.iter().map(|(n, v)| format!(
            "[[package]]\nname = \"{n}\"\nversion = \"{v}\"\noptional = false\ngroups = [\"{group}\"]\nfiles = []\n\n"
        )).collect::<String>() + "[metadata]\nlock-version = \"2.1\"\n";
        let p = python::parse_poetry_lock(&text, "poetry.lock").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        for c in &p.components {
            prop_assert_eq!(&entries[&c.name], &c.version);
            prop_assert_eq!(c.scope, if dev { Scope::Excluded } else { Scope::Required });
        }
    }

    #[test]
    fn pipfile_entries_yield_their_components(
        default in proptest::collection::btree_map("[a-z]{1,8}", version(), 0..10),
        develop in proptest::collection::btree_map("[A-Z]{1,8}_d", version(), 0..10),
    ) {
        let section = |m: &std::collections::BTreeMap<String, String>| m.iter()
            .map(|(n, v)| format!("\"{n}\": {{\"version\": \"=={v}\", \"hashes\": []}}"))
            .collect::<Vec<_>>().join(",");
        let text = format!("{{\"_meta\": {{\"pipfile-spec\": 6, \"sources\": []}}, \"default\": {{{}}}, \"develop\": {{{}}}}}",
            section(&default), section(&develop));
        let p = python::parse_pipfile_lock(&text, "Pipfile.lock").unwrap();
        prop_assert_eq!(p.components.len(), default.len() + develop.len());
        for (n, v) in &develop {
            let c = p.components.iter().find(|c| c.name == n.to_ascii_lowercase().replace('_', "-")).unwrap();
            prop_assert_eq!(&c.version, v);
            prop_assert_eq!(c.scope, Scope::Excluded);
        }
    }

    #[test]
    fn uv_packages_below_a_virtual_root_yield_their_components(
        entries in proptest::collection::btree_map("[a-z]{1,8}", version(), 1..12)
    ) {
        let mut text = String::from("version = 1\nrevision = 3\n\n[[package]]\nname = \"zz-root\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [\n");
        for n in entries.keys() { text += &format!("    {{ name = \"{n}\" }},\n"); }
        text += "]\n\n";
        for (n, v) in &entries {
            text += &format!("[[package]]\nname = \"{n}\"\nversion = \"{v}\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\n\n");
        }
        let p = python::parse_uv_lock(&text, "uv.lock").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        prop_assert!(p.components.iter().all(|c| c.direct && c.scope == Scope::Required
            && entries[&c.name] == c.version));
    }

    #[test]
    fn go_requires_yield_their_components(
        entries in proptest::collection::btree_map("[a-z]{1,6}\\.(com|org)/[a-z]{1,6}", (version(), any::<bool>()), 1..15)
    ) {
        let mut text = String::from("module example.com/m\n\ngo 1.22\n\nrequire (\n");
        for (m, (v, indirect)) in &entries {
            text += &format!("\t{m} v{v}{}\n", if *indirect { " // indirect" } else { "" });
        }
        text += ")\n";
        let p = go::parse_go_mod(&text, "go.mod").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        for c in &p.components {
            let (v, indirect) = &entries[&c.name];
            prop_assert_eq!(&c.version, &format!("v{v}"));
            prop_assert_eq!(c.direct, !indirect);
        }
    }

    #[test]
    fn gemfile_specs_yield_their_components(
        entries in proptest::collection::btree_map("[a-z][a-z_]{0,8}", version(), 1..15)
    ) {
        let mut text = String::from("GEM\n  remote: https://rubygems.org/\n  specs:\n");
        for (n, v) in &entries { text += &format!("    {n} ({v})\n"); }
        text += "\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n";
        for n in entries.keys().take(1) { text += &format!("  {n}\n"); }
        let p = ruby::parse_gemfile_lock(&text, "Gemfile.lock").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        prop_assert_eq!(p.components.iter().filter(|c| c.direct).count(), 1);
        prop_assert!(p.components.iter().all(|c| entries[&c.name] == c.version));
    }

    #[test]
    fn gradle_lines_yield_their_components(
        entries in proptest::collection::btree_map("[a-z]{1,6}\\.[a-z]{1,6}:[a-z]{1,8}", (version(), any::<bool>()), 1..15)
    ) {
        let text: String = entries.iter().map(|(ga, (v, test_only))| format!("{ga}:{v}={}\n",
            if *test_only { "testCompileClasspath,testRuntimeClasspath" } else { "compileClasspath,runtimeClasspath" })).collect();
        let p = gradle::parse_gradle_lockfile(&text, "gradle.lockfile").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        for c in &p.components {
            let (v, test_only) = &entries[&format!("{}:{}", c.namespace.as_deref().unwrap(), c.name)];
            prop_assert_eq!(&c.version, v);
            prop_assert_eq!(c.scope, if *test_only { Scope::Excluded } else { Scope::Required });
        }
    }

    #[test]
    fn pom_dependencies_yield_declared_components(
        entries in proptest::collection::btree_map("[a-z]{1,6}\\.[a-z]{1,6}:[a-z]{1,8}", (version(), any::<bool>()), 1..12)
    ) {
        let mut text = String::from("<project><properties><v.x>9.9</v.x></properties><dependencies>");
        for (ga, (v, via_property)) in &entries {
            let (g, a) = ga.split_once(':').unwrap();
            let v = if *via_property { "${v.x}".to_owned() } else { v.clone() };
            text += &format!("<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>");
        }
        text += "</dependencies></project>";
        let p = maven::parse_pom_xml(&text, "pom.xml").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        for c in &p.components {
            let (v, via_property) = &entries[&format!("{}:{}", c.namespace.as_deref().unwrap(), c.name)];
            prop_assert_eq!(&c.version, if *via_property { "9.9" } else { v.as_str() });
            prop_assert_eq!(c.resolution, Resolution::Declared);
        }
    }

    #[test]
    fn nuget_packages_are_deduplicated_across_frameworks(
        entries in proptest::collection::btree_map("[A-Z][a-z]{1,6}", version(), 1..10),
        frameworks in proptest::collection::btree_set("net[5-9]\\.0", 1..4),
    ) {
        let body = entries.iter().map(|(n, v)| format!("\"{n}\": {{\"type\": \"Direct\", \"resolved\": \"{v}\"}}"))
            .collect::<Vec<_>>().join(",");
        let fws = frameworks.iter().map(|f| format!("\"{f}\": {{{body}}}")).collect::<Vec<_>>().join(",");
        let text = format!("{{\"version\": 1, \"dependencies\": {{{fws}}}}}");
        let p = nuget::parse_packages_lock_json(&text, "packages.lock.json").unwrap();
        prop_assert_eq!(p.components.len(), entries.len());
        let expected = frameworks.iter().cloned().collect::<Vec<_>>().join(",");
        for c in &p.components {
            prop_assert_eq!(&c.properties["cutover:nuget:frameworks"], &expected);
        }
    }
}
