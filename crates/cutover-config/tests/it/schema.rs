//! The JSON Schema of cutover.toml.

#[test]
fn schema_describes_every_section_with_descriptions() {
    let schema = cutover_config::json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "cutover.toml");
    let props = schema["properties"].as_object().unwrap();
    for section in [
        "project",
        "versioning",
        "packages",
        "checks",
        "build",
        "service",
        "environments",
        "notify",
        "licenses",
        "vulns",
        "database",
    ] {
        let p = &props[section];
        assert!(
            p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{section}: {p}"
        );
    }
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["project"]));
    let defs = schema["$defs"].as_object().unwrap();
    for def in [
        "Duration",
        "Argv",
        "Secret",
        "Strategy",
        "FreezeWindow",
        "Health",
        "Environment",
    ] {
        assert!(defs.contains_key(def), "missing $defs/{def}");
    }
    // Strictness is in the schema too.
    assert_eq!(defs["Project"]["additionalProperties"], false);
}

#[test]
fn schema_is_stable() {
    insta::assert_json_snapshot!("schema", cutover_config::json_schema());
}

/// The schema accepts what the loader accepts: the full fixture and every `cutover init` output.
#[test]
fn valid_configurations_validate_against_the_schema() {
    let schema = cutover_config::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut docs =
        vec![std::fs::read_to_string(crate::fixtures().join("valid/full.toml")).unwrap()];
    for lock in cutover_config::init::Lockfile::ALL {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(lock.file_name()), "").unwrap();
        docs.push(cutover_config::init::render(&cutover_config::init::detect(
            dir.path(),
        )));
    }
    for doc in docs {
        // The document as the user wrote it (TOML dates as strings), not as re-serialised.
        let value: toml::Value = toml::from_str(&doc).unwrap();
        let json = to_json(&value);
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        // And the loader's own output validates too.
        let c = crate::load(&doc).unwrap();
        let shown = c.redacted_json();
        assert!(validator.is_valid(&shown), "{shown}");
    }
}

#[test]
fn the_schema_rejects_unknown_keys_too() {
    let validator = jsonschema::validator_for(&cutover_config::json_schema()).unwrap();
    let bad = serde_json::json!({ "project": { "name": "x", "nme": "y" } });
    assert!(!validator.is_valid(&bad));
    let bad = serde_json::json!({ "project": { "name": "x" }, "checks": [{ "name": "t", "run": "cargo test" }] });
    assert!(!validator.is_valid(&bad));
}

/// TOML to JSON the way editors with schema support see it: dates become strings.
fn to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => J::from(*f),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}
