//! Bad input and property tests for the Cargo, npm, yarn, pnpm and Composer parsers, and the
//! BOM-level behaviour built on them (purls, licenses, policy, diff).

use cutover_bom::bom::Bom;
use cutover_bom::lockfile::{self, LockfileKind};
use cutover_bom::model::{Parsed, Scope};
use cutover_bom::policy::{LicensePolicy, PackageException, Severity, UnknownLicense};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn parse(kind: LockfileKind, text: &str) -> Result<Parsed, cutover_bom::model::ParseError> {
    lockfile::parse(kind, "x/lock", text, None)
}

const STRUCTURED: [(&str, LockfileKind); 6] = [
    ("cargo/v3/Cargo.lock", LockfileKind::CargoLock),
    (
        "npm/v2-git-commits/package-lock.json",
        LockfileKind::PackageLock,
    ),
    (
        "npm/v1-nested-duplicates/package-lock.json",
        LockfileKind::PackageLock,
    ),
    (
        "pnpm/v9-peer-deps-advanced/pnpm-lock.yaml",
        LockfileKind::PnpmLock,
    ),
    (
        "composer/drupal-custom-types/composer.lock",
        LockfileKind::ComposerLock,
    ),
    ("pnpm/v6-basic/pnpm-lock.yaml", LockfileKind::PnpmLock),
];

/// Fixtures the mutation property test starts from: the structured ones and both yarn generations.
const MUTATED: [(&str, LockfileKind); 9] = [
    STRUCTURED[0],
    STRUCTURED[1],
    STRUCTURED[2],
    STRUCTURED[3],
    STRUCTURED[4],
    STRUCTURED[5],
    ("yarn/v1-git-commits/yarn.lock", LockfileKind::YarnLock),
    ("yarn/berry-git-commits/yarn.lock", LockfileKind::YarnLock),
    ("yarn/v1-dev-deps/yarn.lock", LockfileKind::YarnLock),
];

#[test]
fn truncated_lockfiles_fail_with_file_line_and_expectation() {
    for (rel, kind) in STRUCTURED {
        let text = read(rel);
        // Cut inside a value so the structure is open.
        let cut = text[..text.len() / 2].rfind('"').unwrap_or(text.len() / 2) + 1;
        let err = match parse(kind, &text[..cut]) {
            // YAML cut after a closed string can still be a valid document: it must say so.
            Ok(p) if kind == LockfileKind::PnpmLock => {
                assert!(
                    p.warnings.iter().any(|w| w.message.contains("truncated")),
                    "{rel}: {:?}",
                    p.warnings
                );
                continue;
            }
            other => other.expect_err(rel),
        };
        assert_eq!(err.file, "x/lock");
        assert!(err.line.is_some_and(|l| l > 1), "{rel}: {err}");
        assert!(err.message.contains("expected"), "{rel}: {err}");
    }
}

#[test]
fn malformed_yarn_and_cargo_lines_are_located() {
    let bad = "# yarn lockfile v1\n\nleft-pad@^1.0.0:\n  version \"1.0.0\"\nthis is not a header\n";
    let err = parse(LockfileKind::YarnLock, bad).expect_err("bad header");
    assert_eq!(err.line, Some(5));
    assert!(err.message.contains("expected an entry header"), "{err}");
    let missing = "# yarn lockfile v1\n\nleft-pad@^1.0.0:\n  resolved \"https://registry.yarnpkg.com/left-pad/-/left-pad-1.0.0.tgz\"\n";
    let err = parse(LockfileKind::YarnLock, missing).expect_err("no version");
    assert_eq!(err.line, Some(3));
    let err = parse(
        LockfileKind::CargoLock,
        "version = 3\n[[package]]\nname = \"a\"\n",
    )
    .expect_err("no version");
    assert!(err.line.is_some(), "{err}");
    assert!(err.message.contains("version"), "{err}");
}

#[test]
fn unknown_lockfile_versions_are_refused() {
    let cases = [
        (LockfileKind::CargoLock, "version = 99\n".to_owned()),
        (
            LockfileKind::PackageLock,
            "{\n  \"lockfileVersion\": 7,\n  \"packages\": {}\n}".to_owned(),
        ),
        (
            LockfileKind::PnpmLock,
            "lockfileVersion: '42.0'\npackages: {}\n".to_owned(),
        ),
        (
            LockfileKind::YarnLock,
            "__metadata:\n  version: 99\n  cacheKey: 10c0\n".to_owned(),
        ),
    ];
    for (kind, text) in cases {
        let err = parse(kind, &text).expect_err("unknown version");
        assert!(err.message.contains("unknown"), "{kind:?}: {err}");
        assert!(err.line.is_some(), "{kind:?}: {err}");
        assert!(err.hint.is_some(), "{kind:?}: {err}");
    }
}

#[test]
fn utf16_and_byte_order_marks_are_refused() {
    let text = read("npm/v3-with-dev/package-lock.json");
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let err = lockfile::decode("web/package-lock.json", &utf16).expect_err("utf-16");
    assert!(err.message.contains("UTF-16"), "{err}");
    assert_eq!(err.file, "web/package-lock.json");
    assert!(err.hint.as_deref().is_some_and(|h| h.contains("iconv")));
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    let err = lockfile::decode("web/package-lock.json", &bom).expect_err("BOM");
    assert!(err.message.contains("byte order mark"), "{err}");
    assert_eq!(err.line, Some(1));
    let err = lockfile::decode("a", b"ok\n\xff\xfe oops").expect_err("invalid utf-8");
    assert_eq!(err.line, Some(2));
}

#[test]
fn huge_files_are_refused_before_reading() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("Cargo.lock");
    let f = std::fs::File::create(&path).expect("create");
    // Sparse: no disk is used, and the size check happens before any read.
    f.set_len(lockfile::MAX_LOCKFILE_BYTES + 1)
        .expect("set_len");
    let err =
        cutover_bom::bom::read_and_parse(&path, "Cargo.lock", LockfileKind::CargoLock, tmp.path())
            .expect_err("huge");
    assert!(err.message.contains("MiB limit"), "{err}");
    assert_eq!(err.file, "Cargo.lock");
}

#[test]
fn credentials_never_reach_the_bom_and_scp_git_urls_become_urls() {
    let text = read("npm/v2-git-commits/package-lock.json");
    let parsed = parse(LockfileKind::PackageLock, &text).expect("parses");
    let json = serde_json::to_string(&parsed).expect("serialize");
    assert!(text.contains("dummy-token@"));
    assert!(
        !json.contains("dummy-token"),
        "a token leaked into the components"
    );
    let yarn = parse(
        LockfileKind::YarnLock,
        &read("yarn/berry-git-commits/yarn.lock"),
    )
    .expect("parses");
    for c in &yarn.components {
        if let cutover_bom::model::Source::Git { url, .. } = &c.source {
            assert!(url.contains("://"), "{url}");
            let host = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("");
            assert!(!host.contains(':'), "scp-style host:path left in {url}");
        }
    }
}

fn bom_of(rel: &str, kind: LockfileKind) -> Bom {
    let dir = fixtures().join(rel).parent().expect("dir").to_path_buf();
    let r = cutover_bom::bom::read_and_parse(&fixtures().join(rel), rel, kind, &dir);
    Bom::from_results(
        "t".into(),
        vec![(rel.to_owned(), kind, dir, r)],
        &mut |_, _| None,
    )
}

#[test]
fn purls_refs_hashes_and_licenses_of_npm_v2() {
    let bom = bom_of(
        "npm/v2-workspace-alias-dev-peer/package-lock.json",
        LockfileKind::PackageLock,
    );
    let a = bom
        .components
        .iter()
        .find(|c| c.component.name == "a" && c.component.version == "1.2.3")
        .expect("@fake-registry/a 1.2.3");
    assert_eq!(
        a.purl,
        "pkg:npm/%40fake-registry/a@1.2.3?repository_url=http:%2F%2Flocalhost:4873"
    );
    assert_eq!(
        a.bom_ref,
        format!(
            "npm/v2-workspace-alias-dev-peer/package-lock.json#{}",
            a.purl
        )
    );
    assert_eq!(a.component.hashes[0].alg, "SHA-512");
    assert_eq!(a.component.hashes[0].hex.len(), 128);
    assert!(a.component.direct);
    assert_eq!(
        a.license.as_ref().and_then(|l| l.expression.as_deref()),
        Some("ISC")
    );
    // The aliased dev dependency `a-dev` is the real package @fake-registry/a 2.3.4, excluded.
    let dev = bom
        .components
        .iter()
        .find(|c| c.component.version == "2.3.4")
        .expect("alias");
    assert_eq!(dev.component.scope, Scope::Excluded);
    assert_eq!(
        dev.component
            .properties
            .get("cutover:npm:alias")
            .map(String::as_str),
        Some("a-dev")
    );
    // Edges are resolved to bom-refs of the same file.
    for c in &bom.components {
        for d in &c.dependencies {
            assert!(
                bom.components.iter().any(|o| &o.bom_ref == d),
                "dangling edge {d}"
            );
        }
    }
}

#[test]
fn cargo_duplicates_from_two_registries_are_told_apart() {
    let bom = bom_of(
        "cargo/v3-same-version-different-registries/Cargo.lock",
        LockfileKind::CargoLock,
    );
    let purls: BTreeSet<&str> = bom.components.iter().map(|c| c.purl.as_str()).collect();
    assert!(purls.contains("pkg:cargo/bytes@1.2.1"));
    assert!(purls.contains(
        "pkg:cargo/bytes@1.2.1?repository_url=https:%2F%2Fgithub.com%2Frustsec%2Frustsec"
    ));
    let bytestring = bom
        .components
        .iter()
        .find(|c| c.component.name == "bytestring")
        .expect("bytestring");
    assert_eq!(
        bytestring.dependencies,
        [
            "cargo/v3-same-version-different-registries/Cargo.lock#pkg:cargo/bytes@1.2.1"
                .to_owned()
        ]
    );
}

#[test]
fn cargo_workspace_manifest_marks_dev_dependencies_excluded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/*\"]\n",
    )
    .expect("write");
    std::fs::create_dir_all(root.join("crates/app")).expect("mkdir");
    std::fs::write(
        root.join("crates/app/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\nmemchr = \"2\"\n[dev-dependencies]\ntelemetry = { path = \"../../telemetry\" }\n",
    )
    .expect("write");
    std::fs::write(
        root.join("Cargo.lock"),
        read("cargo/v3-path-deps/Cargo.lock"),
    )
    .expect("write");
    let parsed = lockfile::parse(
        LockfileKind::CargoLock,
        "Cargo.lock",
        &read("cargo/v3-path-deps/Cargo.lock"),
        Some(root),
    )
    .expect("parses");
    let scope = |n: &str| {
        parsed
            .components
            .iter()
            .find(|c| c.name == n)
            .map(|c| (c.scope, c.direct))
    };
    assert_eq!(scope("memchr"), Some((Scope::Required, true)));
    // Not a member, so a path dependency: a component, reached only as a dev-dependency.
    assert_eq!(scope("telemetry"), Some((Scope::Excluded, true)));
    assert_eq!(
        scope("app"),
        None,
        "workspace members are the project, not components"
    );
}

#[test]
fn license_policy_reports_package_version_expression_and_why() {
    let bom = bom_of(
        "composer/drupal-custom-types/composer.lock",
        LockfileKind::ComposerLock,
    );
    let policy = LicensePolicy {
        allow: vec!["MIT".into()],
        unknown: UnknownLicense::Deny,
        include_dev: true,
        ..LicensePolicy::default()
    };
    let v = cutover_bom::policy::check(&bom, &policy);
    assert!(!v.is_empty());
    for x in &v {
        assert!(!x.package.is_empty() && !x.version.is_empty() && !x.why.is_empty());
        assert_eq!(x.severity, Severity::Error);
    }
    let gpl: Vec<_> = v
        .iter()
        .filter(|x| x.expression.as_deref().is_some_and(|e| e.contains("GPL")))
        .collect();
    assert!(!gpl.is_empty(), "{v:?}");
    // An exception for exactly those packages clears them.
    let exceptions = gpl
        .iter()
        .map(|x| PackageException {
            name: x.package.clone(),
            version: Some(x.version.clone()),
            allow: vec!["GPL-2.0-or-later".into(), "GPL-2.0-only".into()],
            reason: None,
        })
        .collect();
    let relaxed = LicensePolicy {
        exceptions,
        ..policy
    };
    let after = cutover_bom::policy::check(&bom, &relaxed);
    assert!(after.len() < v.len(), "{after:?}");
}

#[test]
fn diff_lists_added_removed_upgraded_downgraded_and_license_changes() {
    let a = bom_of(
        "pnpm/v6-dev-optional-groups/pnpm-lock.yaml",
        LockfileKind::PnpmLock,
    );
    let b = bom_of(
        "pnpm/v9-dev-optional-groups/pnpm-lock.yaml",
        LockfileKind::PnpmLock,
    );
    let d = cutover_bom::diff(&a, &b);
    let up: Vec<(String, String, String)> = d
        .upgraded
        .iter()
        .map(|u| (u.name.clone(), u.from.clone(), u.to.clone()))
        .collect();
    assert_eq!(
        up,
        [
            ("ansi-regex".into(), "5.0.0".into(), "5.0.1".into()),
            ("uuid".into(), "8.0.0".into(), "8.3.2".into())
        ]
    );
    let back = cutover_bom::diff(&b, &a);
    assert_eq!(back.downgraded.len(), 2);
    assert!(d.added.is_empty() && d.removed.is_empty());
    // Through CycloneDX files, as `cutover bom diff A.json B.json` does.
    let ra = Bom::from_cyclonedx_json(&a.to_cyclonedx_json()).expect("reads back");
    let rb = Bom::from_cyclonedx_json(&b.to_cyclonedx_json()).expect("reads back");
    assert_eq!(cutover_bom::diff(&ra, &rb), d);
    let c = bom_of(
        "composer/two-packages/composer.lock",
        LockfileKind::ComposerLock,
    );
    let d2 = cutover_bom::diff(&a, &c);
    assert_eq!(d2.added.len(), 2);
    assert_eq!(d2.removed.len(), 3);
}

// ---- properties -------------------------------------------------------------------------

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}"
}

fn version() -> impl Strategy<Value = String> {
    (0u32..20, 0u32..20, 0u32..50).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

fn keys(p: &Parsed) -> BTreeSet<(String, String)> {
    p.components
        .iter()
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect()
}

fn edges_resolve(p: &Parsed) -> bool {
    let ks: BTreeSet<String> = p
        .components
        .iter()
        .flat_map(|c| [c.key(), c.source_key()])
        .collect();
    p.components
        .iter()
        .all(|c| c.depends_on.iter().all(|d| ks.contains(d)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_arbitrary_input(text in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for kind in [LockfileKind::CargoLock, LockfileKind::PackageLock, LockfileKind::YarnLock, LockfileKind::PnpmLock, LockfileKind::ComposerLock] {
            let _ = parse(kind, &text);
            if let Ok(t) = lockfile::decode("f", &bytes) {
                let _ = parse(kind, t);
            }
        }
    }

    #[test]
    fn no_parser_panics_on_mutated_fixtures(idx in 0usize..9, cut in 0.0f64..1.0, junk in "[\\[\\]{}:,\"' \\n@/#a-z0-9-]{0,12}") {
        let (rel, kind) = MUTATED[idx];
        let text = read(rel);
        let mut at = ((text.len() as f64) * cut) as usize;
        while !text.is_char_boundary(at) { at -= 1; }
        let mutated = format!("{}{}{}", &text[..at], junk, &text[at..]);
        if let Ok(p) = parse(kind, &mutated) {
            prop_assert!(edges_resolve(&p));
        }
    }

    #[test]
    fn cargo_lock_yields_exactly_its_packages(pkgs in proptest::collection::btree_map(name(), version(), 1..25)) {
        let mut text = String::from("version = 4\n\n[[package]]\nname = \"root-app\"\nversion = \"0.1.0\"\ndependencies = [\n");
        for n in pkgs.keys() { text.push_str(&format!(" \"{n}\",\n")); }
        text.push_str("]\n");
        let mut prev: Option<&String> = None;
        for (n, v) in &pkgs {
            text.push_str(&format!("\n[[package]]\nname = \"{n}\"\nversion = \"{v}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n", "ab".repeat(32)));
            if let Some(p) = prev { text.push_str(&format!("dependencies = [\"{p}\"]\n")); }
            prev = Some(n);
        }
        let p = parse(LockfileKind::CargoLock, &text).expect("generated lock parses");
        let want: BTreeSet<(String, String)> = pkgs.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        prop_assert_eq!(keys(&p), want);
        prop_assert!(p.components.iter().all(|c| c.direct && c.hashes.len() == 1));
        prop_assert!(edges_resolve(&p));
    }

    #[test]
    fn package_lock_v3_yields_exactly_its_packages(pkgs in proptest::collection::btree_map(name(), (version(), any::<bool>()), 1..25)) {
        let mut packages = serde_json::Map::new();
        packages.insert(String::new(), serde_json::json!({"name": "root", "dependencies": {}}));
        for (n, (v, dev)) in &pkgs {
            packages.insert(format!("node_modules/{n}"), serde_json::json!({"version": v, "dev": dev, "resolved": format!("https://registry.npmjs.org/{n}/-/{n}-{v}.tgz")}));
        }
        let doc = serde_json::json!({"lockfileVersion": 3, "packages": packages});
        let p = parse(LockfileKind::PackageLock, &doc.to_string()).expect("generated lock parses");
        let want: BTreeSet<(String, String)> = pkgs.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect();
        prop_assert_eq!(keys(&p), want);
        for c in &p.components {
            let dev = pkgs[&c.name].1;
            prop_assert_eq!(c.scope == Scope::Excluded, dev);
        }
    }

    #[test]
    fn yarn_classic_and_berry_yield_exactly_their_packages(pkgs in proptest::collection::btree_map(name(), version(), 1..25)) {
        let mut classic = String::from("# yarn lockfile v1\n\n");
        let mut berry = String::from("__metadata:\n  version: 8\n  cacheKey: 10c0\n\n");
        for (n, v) in &pkgs {
            classic.push_str(&format!("{n}@^{v}:\n  version \"{v}\"\n  resolved \"https://registry.yarnpkg.com/{n}/-/{n}-{v}.tgz#{}\"\n\n", "a".repeat(40)));
            berry.push_str(&format!("\"{n}@npm:^{v}\":\n  version: {v}\n  resolution: \"{n}@npm:{v}\"\n  languageName: node\n  linkType: hard\n\n"));
        }
        let want: BTreeSet<(String, String)> = pkgs.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        let pc = parse(LockfileKind::YarnLock, &classic).expect("classic parses");
        let pb = parse(LockfileKind::YarnLock, &berry).expect("berry parses");
        prop_assert_eq!(&keys(&pc), &want);
        prop_assert_eq!(&keys(&pb), &want);
        prop_assert!(pc.components.iter().all(|c| c.hashes.len() == 1 && c.hashes[0].alg == "SHA-1"));
    }

    #[test]
    fn pnpm_v9_yields_exactly_its_packages(pkgs in proptest::collection::btree_map(name(), version(), 1..25)) {
        let mut text = String::from("lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n");
        for (n, v) in &pkgs { text.push_str(&format!("      {n}:\n        specifier: ^{v}\n        version: {v}\n")); }
        text.push_str("\npackages:\n\n");
        for (n, v) in &pkgs { text.push_str(&format!("  {n}@{v}:\n    resolution: {{integrity: sha512-{}}}\n\n", "A".repeat(86) + "==")); }
        text.push_str("snapshots:\n\n");
        for (n, v) in &pkgs { text.push_str(&format!("  {n}@{v}: {{}}\n\n")); }
        let p = parse(LockfileKind::PnpmLock, &text).expect("generated lock parses");
        let want: BTreeSet<(String, String)> = pkgs.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        prop_assert_eq!(keys(&p), want);
        prop_assert!(p.components.iter().all(|c| c.direct && c.scope == Scope::Required && c.hashes.len() == 1));
    }

    #[test]
    fn composer_lock_yields_exactly_its_packages(pkgs in proptest::collection::btree_map((name(), name()), (version(), any::<bool>()), 1..25)) {
        let mut prod = Vec::new();
        let mut dev = Vec::new();
        for ((vendor, n), (v, is_dev)) in &pkgs {
            let p = serde_json::json!({"name": format!("{vendor}/{n}"), "version": v, "license": ["MIT"]});
            if *is_dev { dev.push(p) } else { prod.push(p) }
        }
        let doc = serde_json::json!({"packages": prod, "packages-dev": dev});
        let p = parse(LockfileKind::ComposerLock, &doc.to_string()).expect("generated lock parses");
        prop_assert_eq!(p.components.len(), pkgs.len());
        for c in &p.components {
            let key = (c.namespace.clone().unwrap_or_default(), c.name.clone());
            prop_assert_eq!(c.scope == Scope::Excluded, pkgs[&key].1);
            prop_assert_eq!(c.license.as_deref(), Some("MIT"));
        }
    }

    #[test]
    fn purls_round_trip(ns in proptest::option::of("@?[a-zA-Z0-9 ._~%/-]{1,12}"), n in "[a-zA-Z0-9 ._~%@:#?&=+-]{1,16}", v in "[a-zA-Z0-9 ._~%@:+-]{1,10}") {
        let p = cutover_bom::purl::Purl {
            ty: "npm".into(),
            namespace: ns.map(|s| s.trim_matches('/').split('/').filter(|x| !x.is_empty()).collect::<Vec<_>>().join("/")).filter(|s| !s.is_empty()),
            name: n,
            version: Some(v),
            qualifiers: [("repository_url".to_owned(), "https://r.example/x?y=1&z".to_owned())].into(),
            subpath: None,
        };
        let s = p.to_string();
        prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_~%:/@?=&#".contains(&b)), "{}", s);
        prop_assert_eq!(cutover_bom::purl::Purl::parse(&s), Some(p));
    }
}

#[test]
fn licenses_come_from_local_caches_with_acknowledgement() {
    use cutover_bom::license::{Acknowledgement, LocalCaches};
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // A Cargo registry source dir, a node_modules package and a virtualenv's dist-info.
    let reg = root.join("cargo-home/registry/src/index.crates.io-1949cf8c6b5b557f");
    std::fs::create_dir_all(reg.join("memchr-2.7.4")).expect("mkdir");
    std::fs::write(
        reg.join("memchr-2.7.4/Cargo.toml"),
        "[package]\nname = \"memchr\"\nversion = \"2.7.4\"\nlicense = \"Unlicense/MIT\"\n",
    )
    .expect("write");
    let proj = root.join("proj");
    std::fs::create_dir_all(proj.join("node_modules/@types/react")).expect("mkdir");
    std::fs::write(
        proj.join("node_modules/@types/react/package.json"),
        r#"{"name":"@types/react","version":"18.0.20","license":"MIT"}"#,
    )
    .expect("write");
    let di = proj.join(".venv/lib/python3.12/site-packages/Requests-2.31.0.dist-info");
    std::fs::create_dir_all(&di).expect("mkdir");
    std::fs::write(
        di.join("METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\nbody\n",
    )
    .expect("write");
    std::fs::write(
        proj.join("Cargo.lock"),
        read("cargo/v3-path-deps/Cargo.lock"),
    )
    .expect("write");
    std::fs::write(
        proj.join("package-lock.json"),
        read("npm/v3-with-dev/package-lock.json"),
    )
    .expect("write");
    std::fs::write(proj.join("requirements.txt"), "requests==2.31.0\n").expect("write");

    let mut caches = LocalCaches::with_cargo_src_dirs(vec![reg]);
    let results: Vec<_> = cutover_bom::bom::find_lockfiles(&proj)
        .into_iter()
        .map(|(path, kind)| {
            let rel = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let r = cutover_bom::bom::read_and_parse(&path, &rel, kind, &proj);
            (rel, kind, proj.clone(), r)
        })
        .collect();
    assert_eq!(
        results.len(),
        3,
        "node_modules and .venv are not searched for lockfiles"
    );
    let bom = Bom::from_results("p".into(), results, &mut |c, dir| {
        caches.lookup(c, &proj, dir)
    });
    let lic = |n: &str| {
        bom.components
            .iter()
            .find(|c| c.component.name == n)
            .and_then(|c| c.license.clone())
            .unwrap_or_else(|| panic!("{n} has a license"))
    };
    let memchr = lic("memchr");
    assert_eq!(
        (
            memchr.expression.as_deref(),
            memchr.acknowledgement,
            memchr.origin.as_str()
        ),
        (
            Some("Unlicense OR MIT"),
            Acknowledgement::Concluded,
            "cargo-registry"
        )
    );
    let react = lic("react");
    assert_eq!(
        (
            react.expression.as_deref(),
            react.acknowledgement,
            react.origin.as_str()
        ),
        (Some("MIT"), Acknowledgement::Declared, "node_modules")
    );
    let requests = lic("requests");
    assert_eq!(
        (requests.expression.as_deref(), requests.origin.as_str()),
        (Some("Apache-2.0"), "dist-info")
    );
    assert_eq!(requests.raw, "Apache 2.0");
    let cdx = bom.to_cyclonedx_json();
    assert!(cdx.contains("\"acknowledgement\": \"concluded\""));
    assert!(cdx.contains("\"acknowledgement\": \"declared\""));
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    for (rel, kind) in MUTATED {
        let text = read(rel);
        let lf = parse(kind, &text).expect(rel);
        let crlf = parse(kind, &text.replace('\n', "\r\n")).expect(rel);
        assert_eq!(crlf.components, lf.components, "{rel}");
    }
}

#[test]
fn bom_of_release_tags_from_git_and_their_diff() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(
        root.join("pnpm-lock.yaml"),
        read("pnpm/v6-dev-optional-groups/pnpm-lock.yaml"),
    )
    .expect("write");
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "feat: one"]);
    git(&["tag", "v1.0.0"]);
    std::fs::write(
        root.join("pnpm-lock.yaml"),
        read("pnpm/v9-dev-optional-groups/pnpm-lock.yaml"),
    )
    .expect("write");
    git(&["commit", "-q", "-am", "fix: two"]);
    git(&["tag", "v1.1.0"]);
    // The working tree changes after the tag: the tag's BOM must not see it.
    std::fs::write(root.join("pnpm-lock.yaml"), "garbage").expect("write");
    let opts = cutover_bom::DiscoverOptions {
        license_caches: false,
        skip_test_data: true,
    };
    let a = cutover_bom::gitrev::discover_at_revision(root, "1.0.0", &opts).expect("v1.0.0");
    let b = cutover_bom::gitrev::discover_at_revision(root, "v1.1.0", &opts).expect("v1.1.0");
    assert_eq!(a.created, Some(1_767_323_045));
    assert!(a.failures().next().is_none() && b.failures().next().is_none());
    let d = cutover_bom::diff(&a, &b);
    assert_eq!(d.upgraded.len(), 2, "{d:?}");
    let err =
        cutover_bom::gitrev::discover_at_revision(root, "9.9.9", &opts).expect_err("no such tag");
    assert!(err.to_string().contains("v9.9.9"), "{err}");
}
