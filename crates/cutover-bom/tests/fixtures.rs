//! Every fixture lockfile (copied from syft, osv-scalibr and rustsec, see tests/fixtures/PROVENANCE.md)
//! parsed with a snapshot of its components; the CycloneDX and SPDX output of each validated
//! against the official schemas and checked to be byte-identical across runs.

use cutover_bom::bom::Bom;
use cutover_bom::lockfile::{self, LockfileKind};
use jsonschema::{Draft, Retrieve, Uri};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockfiles")
}

/// (project-relative display path, kind, directory) of every fixture lockfile, sorted.
fn fixture_lockfiles() -> Vec<(String, LockfileKind, PathBuf)> {
    let mut out = Vec::new();
    let root = fixtures_root();
    for eco in std::fs::read_dir(&root).expect("fixtures dir").flatten() {
        for case in std::fs::read_dir(eco.path())
            .expect("ecosystem dir")
            .flatten()
        {
            for f in std::fs::read_dir(case.path()).expect("case dir").flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                // The Maven fixture's `parent/pom.xml` is read through its child, not on its own.
                if let Some(kind) = LockfileKind::detect(&name).filter(|_| f.path().is_file()) {
                    let rel = format!(
                        "{}/{}/{}",
                        eco.file_name().to_string_lossy(),
                        case.file_name().to_string_lossy(),
                        name
                    );
                    out.push((rel, kind, case.path()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The fixtures of the formats this crate's own parsers handle (Cargo, npm, yarn, pnpm, Composer).
fn own_format(kind: LockfileKind) -> bool {
    matches!(
        kind,
        LockfileKind::CargoLock
            | LockfileKind::PackageLock
            | LockfileKind::NpmShrinkwrap
            | LockfileKind::YarnLock
            | LockfileKind::PnpmLock
            | LockfileKind::ComposerLock
    )
}

fn bom_of(rel: &str, kind: LockfileKind, dir: &Path) -> Bom {
    let name = rel.rsplit('/').next().expect("file name");
    let result = cutover_bom::bom::read_and_parse(&dir.join(name), rel, kind, dir);
    let mut bom = Bom::from_results(
        "fixture".to_owned(),
        vec![(rel.to_owned(), kind, dir.to_path_buf(), result)],
        &mut |_, _| None,
    );
    bom.created = Some(1_700_000_000);
    bom
}

#[test]
fn every_fixture_parses_with_a_component_snapshot() {
    let files = fixture_lockfiles();
    assert!(
        files.iter().filter(|(_, k, _)| own_format(*k)).count() >= 40,
        "fixtures missing"
    );
    for (rel, kind, dir) in files.into_iter().filter(|(_, k, _)| own_format(*k)) {
        let name = rel.rsplit('/').next().expect("file name");
        let text = std::fs::read_to_string(dir.join(name)).expect("fixture readable");
        let parsed = lockfile::parse(kind, &rel, &text, Some(&dir))
            .unwrap_or_else(|e| panic!("{rel} failed to parse: {e}"));
        // An empty result would make the snapshot meaningless for these fixtures.
        assert!(!parsed.components.is_empty(), "{rel}: no components");
        let snap_name = rel.replace('/', "__");
        insta::assert_yaml_snapshot!(snap_name, parsed);
    }
}

/// Resolves the CycloneDX schema's relative `$ref`s to the sibling files copied into the repo.
struct LocalSchemas;

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let file = uri
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split('#')
            .next()
            .unwrap_or("");
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/schemas/cyclonedx-1.6")
            .join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn load(rel: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schemas")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(p).expect("schema file")).expect("schema JSON")
}

/// The SPDX 2.3.1 schema (draft 2019-09), checked in addition to the 2.3 one.
fn spdx_231_validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(Draft::Draft201909)
        .build(&load("spdx-2.3.1/spdx-schema.json"))
        .expect("SPDX 2.3.1 schema compiles")
}

fn validators() -> (jsonschema::Validator, jsonschema::Validator) {
    let cdx = jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_retriever(LocalSchemas)
        .build(&load("cyclonedx-1.6/bom-1.6.schema.json"))
        .expect("CycloneDX schema compiles");
    let spdx = jsonschema::options()
        .with_draft(Draft::Draft7)
        .build(&load("spdx-2.3/spdx-schema.json"))
        .expect("SPDX schema compiles");
    (cdx, spdx)
}

fn assert_valid(v: &jsonschema::Validator, doc: &str, what: &str) {
    let instance: Value = serde_json::from_str(doc).expect("writer output is JSON");
    let errors: Vec<String> = v
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(5)
        .collect();
    assert!(
        errors.is_empty(),
        "{what} is not schema-valid:\n{}",
        errors.join("\n")
    );
}

#[test]
fn schemas_reject_broken_documents() {
    // Proves the validators are live: a BOM with a bad scope and an SPDX doc without its version fail.
    let (cdx, spdx) = validators();
    let bad = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", "name": "x", "scope": "dev"}]});
    assert!(!cdx.is_valid(&bad));
    let bad = serde_json::json!({"SPDXID": "SPDXRef-DOCUMENT", "name": "x"});
    assert!(!spdx.is_valid(&bad));
}

#[test]
fn every_fixture_output_is_schema_valid_and_deterministic() {
    let (cdx, spdx) = validators();
    let spdx_231 = spdx_231_validator();
    let mut checked = 0;
    for (rel, kind, dir) in fixture_lockfiles() {
        // Every fixture, also those of the other parsers: the writers must handle all ecosystems.
        let bom = bom_of(&rel, kind, &dir);
        let c1 = bom.to_cyclonedx_json();
        let s1 = bom.to_spdx_json();
        assert_valid(&cdx, &c1, &format!("CycloneDX of {rel}"));
        assert_valid(&spdx, &s1, &format!("SPDX of {rel}"));
        assert_valid(&spdx_231, &s1, &format!("SPDX (2.3.1 schema) of {rel}"));
        let again = bom_of(&rel, kind, &dir);
        assert_eq!(
            c1,
            again.to_cyclonedx_json(),
            "{rel}: CycloneDX not byte-identical"
        );
        assert_eq!(s1, again.to_spdx_json(), "{rel}: SPDX not byte-identical");
        checked += 1;
    }
    // 95 lockfiles of all 14 formats (Cargo, npm, yarn, pnpm, Composer and bom2's Python, Go,
    // Ruby, Gradle, Maven, NuGet) at the time of writing.
    assert!(checked >= 95, "only {checked} fixtures checked");
}

#[test]
fn a_monorepo_gives_one_bom_with_manifests_and_failures_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let copy = |from: &str, to: &str| {
        let dst = root.join(to);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(fixtures_root().join(from), dst).expect("copy fixture");
    };
    copy("cargo/v3/Cargo.lock", "Cargo.lock");
    copy("npm/v3-with-dev/package-lock.json", "web/package-lock.json");
    copy("composer/two-packages/composer.lock", "php/composer.lock");
    copy(
        "pnpm/v9-basic/pnpm-lock.yaml",
        "node_modules/ignored/pnpm-lock.yaml",
    );
    copy("yarn/v1-basic/yarn.lock", "ignored-by-gitignore/yarn.lock");
    copy("yarn/v1-basic/yarn.lock", "tests/fixtures/yarn.lock");
    std::fs::write(root.join(".gitignore"), "ignored-by-gitignore/\n").expect("gitignore");
    std::fs::create_dir_all(root.join("broken")).expect("mkdir");
    let full = std::fs::read_to_string(fixtures_root().join("npm/v1-basic/package-lock.json"))
        .expect("fixture");
    std::fs::write(
        root.join("broken/package-lock.json"),
        &full[..full.len() / 2],
    )
    .expect("write truncated");

    let bom = cutover_bom::discover_and_parse_with(
        root,
        &cutover_bom::DiscoverOptions {
            license_caches: false,
            skip_test_data: true,
        },
    );
    let paths: Vec<&str> = bom.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Cargo.lock",
            "broken/package-lock.json",
            "php/composer.lock",
            "web/package-lock.json"
        ]
    );
    let failures: Vec<_> = bom.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].file, "broken/package-lock.json");
    assert!(failures[0].line.is_some_and(|l| l > 1), "{}", failures[0]);
    assert!(failures[0].message.contains("truncated"), "{}", failures[0]);
    let manifests: std::collections::BTreeSet<&str> = bom
        .components
        .iter()
        .map(|c| c.component.manifest.as_str())
        .collect();
    assert_eq!(
        manifests.into_iter().collect::<Vec<_>>(),
        ["Cargo.lock", "php/composer.lock", "web/package-lock.json"]
    );
    let refs: std::collections::BTreeSet<&str> =
        bom.components.iter().map(|c| c.bom_ref.as_str()).collect();
    assert_eq!(refs.len(), bom.components.len(), "bom-refs are unique");
    let s = bom.summary();
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.components, bom.components.len());
    assert_eq!(s.direct + s.transitive, s.components);
    let (cdx, _) = validators();
    assert_valid(&cdx, &bom.to_cyclonedx_json(), "monorepo CycloneDX");
}
