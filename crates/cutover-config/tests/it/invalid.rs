//! Every malformed configuration under `tests/fixtures/invalid` gets a snapshot of its message.

use crate::{fixtures, render};

#[test]
fn every_invalid_fixture_is_rejected_with_a_located_message() {
    let dir = fixtures().join("invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "at least 12 malformed configurations");
    for file in files {
        let err =
            cutover_config::load(&file).expect_err(&format!("{} must be rejected", file.display()));
        // Every one of these is located in the file, and the location is inside it.
        let (path, line, column) = err
            .location()
            .unwrap_or_else(|| panic!("{}: no location in {err}", file.display()));
        assert_eq!(path, file);
        let lines = std::fs::read(&file).unwrap().split(|b| *b == b'\n').count();
        assert!(
            line >= 1 && line <= lines && column >= 1,
            "{}:{line}:{column}",
            file.display()
        );
        let text = render(&err).replace(&dir.display().to_string(), "tests/fixtures/invalid");
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn missing_file_says_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    let err = cutover_config::load(&path).unwrap_err();
    assert!(matches!(err, cutover_config::ConfigError::NotFound { .. }));
    assert!(err.to_string().contains("not found"));
    assert!(err.hint().unwrap().contains("cutover init"));
    assert_eq!(err.location(), None);
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    let cases = [
        ("[project]\nnmae = \"x\"\n", "did you mean `name`?"),
        (
            "[project]\nname = \"x\"\ntag_fromat = \"v{version}\"\n",
            "did you mean `tag_format`?",
        ),
        (
            "[project]\nname = \"x\"\n[vulns]\nfailon = \"low\"\n",
            "did you mean `fail_on`?",
        ),
        (
            "[project]\nname = \"x\"\n[licences]\n",
            "did you mean `licenses`?",
        ),
    ];
    for (src, hint) in cases {
        let err = crate::load(src).unwrap_err();
        assert_eq!(err.hint().as_deref(), Some(hint), "{src}");
        let d = err.diagnostic().unwrap();
        assert_eq!(d.kind, cutover_config::ErrorKind::UnknownKey);
    }
}

#[test]
fn far_off_unknown_keys_get_no_suggestion_but_the_list() {
    let err = crate::load("[project]\nname = \"x\"\nzzzzzz = 1\n").unwrap_err();
    assert_eq!(err.hint(), None);
    let text = err.to_string();
    assert!(
        text.contains("expected one of `name`, `tag_format`, `main_branch`"),
        "{text}"
    );
    assert_eq!(err.location().unwrap().1, 3);
}

#[test]
fn bad_enums_list_the_allowed_values() {
    let err =
        crate::load("[project]\nname = \"x\"\n[versioning]\nmerges = \"squash\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("expected one of `skip`, `include`"), "{text}");
    assert_eq!(err.location().unwrap().1, 4);
}

#[test]
fn non_utf8_file_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, b"[project]\nname = \"a\xff\"\n").unwrap();
    let err = cutover_config::load(&path).unwrap_err();
    let (_, line, column) = err.location().unwrap();
    assert_eq!((line, column), (2, 10));
    assert!(err.to_string().contains("not valid UTF-8"));
}

#[test]
fn byte_order_mark_and_crlf_files_load() {
    let c = crate::load("\u{feff}[project]\r\nname = \"x\"\r\n").unwrap();
    assert_eq!(c.project.name, "x");
    let err = crate::load("[project]\r\nname = \"x\"\r\nnmae = 1\r\n").unwrap_err();
    let d = err.diagnostic().unwrap();
    match &d.origin {
        cutover_config::Origin::File {
            line,
            column,
            line_text,
            ..
        } => {
            assert_eq!((*line, *column), (3, 1));
            assert_eq!(line_text, "nmae = 1");
        }
        other => panic!("{other:?}"),
    }
}
