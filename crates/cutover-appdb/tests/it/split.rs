//! The statement splitter over the fixture scripts in `tests/fixtures/split/` (each statement
//! with the line it starts on, as a migration error would name it).

use cutover_appdb::migrations::{Dialect, line_of_byte, split_statements};

#[test]
fn fixture_scripts_split_into_their_statements() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/split");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let dialect = if name.ends_with(".pg.sql") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        };
        let sql = std::fs::read_to_string(&path).unwrap();
        let shown: Vec<String> = split_statements(&sql, dialect)
            .iter()
            .map(|s| format!("line {}: {}", line_of_byte(&sql, s.offset), s.text))
            .collect();
        insta::assert_snapshot!(name, shown.join("\n---\n"));
    }
}
