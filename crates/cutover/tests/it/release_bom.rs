//! A release carries its bill of materials, and the advance shipping notice shows how the BOM
//! changed since the last release.

use crate::support::Project;

fn lock(lodash: &str) -> String {
    format!(
        r#"{{"name":"shop","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{{
  "":{{"name":"shop","version":"1.0.0","dependencies":{{"lodash":"{lodash}"}}}},
  "node_modules/lodash":{{"version":"{lodash}","license":"MIT"}}}}}}"#
    )
}

#[test]
fn release_records_its_bom_and_the_notice_diffs_against_it() {
    let p = Project::new();
    p.write("cutover.toml", "[project]\nname = \"shop\"\n");
    p.write("package-lock.json", &lock("4.17.20"));
    p.git(&["add", "."]);
    p.git(&["commit", "-q", "-m", "feat: a shop"]);
    p.cutover(&["release"]).success();

    let db = p.path().join(".cutover/state.db");
    let bom: String = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", db.display()))
                .await
                .unwrap();
            sqlx::query("SELECT bom FROM releases WHERE version = '0.1.0'")
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get::<String, _>(0)
        });
    let bom: serde_json::Value = serde_json::from_str(&bom).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["components"][0]["name"], "lodash");
    assert_eq!(bom["components"][0]["version"], "4.17.20");

    p.write("package-lock.json", &lock("4.17.21"));
    p.git(&["commit", "-q", "-am", "fix(deps): lodash 4.17.21"]);
    let run = p.cutover(&["notice", "--format", "json"]);
    run.success();
    let notice = run.json();
    assert_eq!(notice["version"], "0.1.1");
    assert_eq!(
        notice["bom_diff"]["changed"],
        serde_json::json!([{"name": "lodash", "from": "4.17.20", "to": "4.17.21"}])
    );
    let md = p.cutover(&["notice"]);
    md.success();
    assert!(
        md.stdout.contains("lodash 4.17.20 → 4.17.21"),
        "{}",
        md.stdout
    );
}
