//! gradle.lockfile: `group:artifact:version=configuration,...` lines. A dependency only in
//! configurations that do not ship (test*, annotation processors, developmentOnly) is excluded;
//! the `empty=` line and comments are skipped; lines that are not coordinates become warnings.
//!
//! Entry point: [`parse_gradle_lockfile`].

use crate::lockfile::other_support::{check_text, component};
use crate::model::{Component, Ecosystem, ParseError, ParseWarning, Parsed, Scope};
use std::collections::HashMap;

/// Parses a gradle.lockfile. The lockfile does not say which dependencies are declared directly,
/// so every component is reported as transitive, without edges.
pub fn parse_gradle_lockfile(text: &str, path: &str) -> Result<Parsed, ParseError> {
    check_text(text, path, "a Gradle dependency lockfile")?;
    let mut parsed = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("empty=") {
            continue;
        }
        let (coords, configurations) = line.split_once('=').unwrap_or((line, ""));
        let mut parts = coords.split(':');
        let (Some(group), Some(artifact), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            parsed.warnings.push(bad_line(line_no, line));
            continue;
        };
        if [group, artifact, version]
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            parsed.warnings.push(bad_line(line_no, line));
            continue;
        }
        let configurations: Vec<&str> = configurations
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let mut c: Component = component(
            Ecosystem::Maven,
            Some(group.to_owned()),
            artifact.to_owned(),
            version.to_owned(),
            path,
        );
        if !configurations.is_empty() && !configurations.iter().any(|c| ships(c)) {
            c.scope = Scope::Excluded;
        }
        if !configurations.is_empty() {
            c.properties.insert(
                "cutover:gradle:configurations".to_owned(),
                configurations.join(","),
            );
        }
        let key = c.key();
        if index.contains_key(&key) {
            parsed.warnings.push(ParseWarning {
                line: Some(line_no),
                message: format!("{group}:{artifact}:{version} listed twice; first entry kept"),
            });
            continue;
        }
        index.insert(key, parsed.components.len());
        parsed.components.push(c);
    }
    Ok(parsed)
}

/// Whether a configuration's dependencies end up in what is built or run for production.
fn ships(configuration: &str) -> bool {
    let lower = configuration.to_ascii_lowercase();
    !(lower.starts_with("test")
        || lower.contains("annotationprocessor")
        || lower.starts_with("kapt")
        || lower == "developmentonly"
        || lower.ends_with("testcompileclasspath")
        || lower.ends_with("testruntimeclasspath"))
}

fn bad_line(line_no: usize, line: &str) -> ParseWarning {
    ParseWarning {
        line: Some(line_no),
        message: format!(
            "line `{line}` skipped; expected `group:artifact:version=configuration,...`"
        ),
    }
}
