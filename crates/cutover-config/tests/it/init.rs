//! `cutover init`: detection and a rendered cutover.toml that loads for every detection case.

use std::path::Path;

use cutover_config::init::{Lockfile, detect, render};

/// Loads the rendered file as written, and with every `#key` example uncommented.
fn loads_both_ways(text: &str, case: &str) -> cutover_config::Config {
    let c = cutover_config::load_str(text, Path::new("cutover.toml"), crate::NO_VARS)
        .unwrap_or_else(|e| panic!("{case}: {e}\n---\n{text}"));
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    cutover_config::load_str(&uncommented, Path::new("cutover.toml"), crate::NO_VARS)
        .unwrap_or_else(|e| panic!("{case} uncommented: {e}\n---\n{uncommented}"));
    c
}

#[test]
fn every_lockfile_is_detected_and_the_rendered_config_loads() {
    for lock in Lockfile::ALL {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(lock.file_name()), "").unwrap();
        let d = detect(dir.path());
        assert_eq!(d.lockfiles, vec![lock]);
        assert_eq!(d.tests.len(), 1, "{lock:?}");
        let c = loads_both_ways(&render(&d), lock.file_name());
        assert_eq!(c.checks[0].run.as_slice(), d.tests[0].1.as_slice());
        assert_eq!(c.build.as_ref().map(|b| b.run.as_slice().to_vec()), d.build);
    }
}

/// Lockfile, expected test command, expected build command.
type Case = (
    Lockfile,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

#[test]
fn commands_per_ecosystem() {
    let cases: &[Case] = &[
        (
            Lockfile::Cargo,
            &["cargo", "test"],
            Some(&["cargo", "build", "--release"]),
        ),
        (
            Lockfile::Npm,
            &["npm", "test"],
            Some(&["npm", "run", "build"]),
        ),
        (
            Lockfile::Yarn,
            &["yarn", "test"],
            Some(&["yarn", "run", "build"]),
        ),
        (
            Lockfile::Pnpm,
            &["pnpm", "test"],
            Some(&["pnpm", "run", "build"]),
        ),
        (
            Lockfile::Poetry,
            &["poetry", "run", "pytest"],
            Some(&["poetry", "build"]),
        ),
        (
            Lockfile::Uv,
            &["uv", "run", "pytest"],
            Some(&["uv", "build"]),
        ),
        (Lockfile::Requirements, &["python", "-m", "pytest"], None),
        (
            Lockfile::Go,
            &["go", "test", "./..."],
            Some(&["go", "build", "-o", "bin/", "./..."]),
        ),
        (Lockfile::Bundler, &["bundle", "exec", "rake"], None),
        (
            Lockfile::Gradle,
            &["./gradlew", "test"],
            Some(&["./gradlew", "build"]),
        ),
        (
            Lockfile::Composer,
            &["composer", "test"],
            Some(&["composer", "install", "--no-dev", "--optimize-autoloader"]),
        ),
    ];
    for (lock, test, build) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(lock.file_name()), "").unwrap();
        let d = detect(dir.path());
        assert_eq!(d.tests[0].1, *test, "{lock:?}");
        assert_eq!(
            d.build
                .as_deref()
                .map(|b| b.iter().map(String::as_str).collect::<Vec<_>>()),
            build.map(|b| b.to_vec()),
            "{lock:?}"
        );
    }
}

#[test]
fn names_come_from_manifests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"hello-rs\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("Cargo.lock"), "version = 4\n").unwrap();
    let d = detect(dir.path());
    assert_eq!(d.name, "hello-rs");
    assert_eq!(d.artifact.as_deref(), Some("target/release/hello-rs"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"@acme/web","scripts":{"test":"jest"}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
    let d = detect(dir.path());
    assert_eq!(d.name, "web");
    assert_eq!(d.build, None, "no build script in package.json");
    loads_both_ways(&render(&d), "npm without build");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("go.mod"),
        "module github.com/acme/svc\n\ngo 1.22\n",
    )
    .unwrap();
    assert_eq!(detect(dir.path()).name, "svc");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pyproject.toml"),
        "[tool.poetry]\nname = \"pyapp\"\n",
    )
    .unwrap();
    assert_eq!(detect(dir.path()).name, "pyapp");

    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("my-project");
    std::fs::create_dir(&named).unwrap();
    assert_eq!(detect(&named).name, "my-project");
}

#[test]
fn empty_and_polyglot_projects_render_loadable_configs() {
    let dir = tempfile::tempdir().unwrap();
    let d = detect(dir.path());
    assert!(d.lockfiles.is_empty());
    let c = loads_both_ways(&render(&d), "empty");
    assert!(c.checks.is_empty());

    let dir = tempfile::tempdir().unwrap();
    for f in [
        "Cargo.lock",
        "package-lock.json",
        "yarn.lock",
        "go.sum",
        "requirements.txt",
    ] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let d = detect(dir.path());
    assert_eq!(
        d.lockfiles,
        vec![
            Lockfile::Cargo,
            Lockfile::Npm,
            Lockfile::Yarn,
            Lockfile::Requirements,
            Lockfile::Go
        ]
    );
    let c = loads_both_ways(&render(&d), "polyglot");
    let names: Vec<&str> = c.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["test", "test-npm", "test-yarn", "test-pip", "test-go"]
    );
}

#[test]
fn rendered_cargo_config_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"hello\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("Cargo.lock"), "").unwrap();
    insta::assert_snapshot!("init_cargo", render(&detect(dir.path())));
}

#[test]
fn write_creates_the_config_state_dir_and_gitignore_entry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.lock"), "").unwrap();
    std::fs::write(dir.path().join(".gitignore"), "target/").unwrap();
    let w = cutover_config::init::write(dir.path(), false).unwrap();
    assert!(w.gitignore_updated);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        "target/\n.cutover/\n"
    );
    assert!(dir.path().join(".cutover").is_dir());
    let c = cutover_config::load(&w.config).unwrap();
    assert_eq!(c.checks[0].run.as_slice(), ["cargo", "test"]);

    // A second run refuses to overwrite, and changes nothing.
    std::fs::write(&w.config, "[project]\nname = \"edited\"\n").unwrap();
    let err = cutover_config::init::write(dir.path(), false).unwrap_err();
    assert!(err.to_string().contains("already exists"));
    assert!(err.hint().unwrap().contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&w.config).unwrap(),
        "[project]\nname = \"edited\"\n"
    );

    // With force it overwrites, and the .gitignore entry is not duplicated.
    let w = cutover_config::init::write(dir.path(), true).unwrap();
    assert!(!w.gitignore_updated);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        "target/\n.cutover/\n"
    );
    cutover_config::load(&w.config).unwrap();
}
