//! Gemfile.lock: GEM, GIT and PATH source sections with their specs (4-space indent) and each
//! spec's dependencies (6-space indent, the edges), DEPENDENCIES (the direct gems), PLATFORMS,
//! and CHECKSUMS (Bundler 2.5+, sha256 per gem). Platform-specific gems (`1.13.3-x86_64-linux`)
//! keep the version before the platform and record the platform as `cutover:gem:platform`.
//!
//! Entry point: [`parse_gemfile_lock`].

use crate::lockfile::other_support::{check_text, component, error, hex_hash, push_hash};
use crate::model::{Component, Ecosystem, ParseError, ParseWarning, Parsed, Source};
use std::collections::{BTreeSet, HashMap};

const RUBYGEMS: &str = "https://rubygems.org";

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Gem,
    Git,
    Path,
    Platforms,
    Dependencies,
    Checksums,
    /// RUBY VERSION, BUNDLED WITH, PLUGIN SOURCE and anything unknown.
    Other,
}

/// A source section's attributes, applied to the specs under it.
#[derive(Default)]
struct SourceAttrs {
    remotes: Vec<String>,
    revision: Option<String>,
}

/// Parses a Gemfile.lock. Bundler records no groups, so every gem is required.
pub fn parse_gemfile_lock(text: &str, path: &str) -> Result<Parsed, ParseError> {
    check_text(text, path, "a Bundler Gemfile.lock")?;
    let mut warnings = Vec::new();
    let mut components: Vec<Component> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Per component: the names of the gems its spec depends on.
    let mut dep_names: Vec<Vec<String>> = Vec::new();
    // Components of the source section being read (their source is set when the section ends,
    // because `remote:` may come after `specs:` in hand-edited files).
    let mut pending: Vec<usize> = Vec::new();
    let mut attrs = SourceAttrs::default();
    let mut section = Section::Other;
    let mut direct: BTreeSet<String> = BTreeSet::new();
    let mut platforms: Vec<String> = Vec::new();
    let mut checksums: Vec<(String, String, String, usize)> = Vec::new();
    let mut current: Option<usize> = None;

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line.trim_start();
        if indent == 0 {
            close_section(section, &attrs, &pending, &mut components);
            pending.clear();
            attrs = SourceAttrs::default();
            current = None;
            section = match body {
                "GEM" => Section::Gem,
                "GIT" => Section::Git,
                "PATH" => Section::Path,
                "PLATFORMS" => Section::Platforms,
                "DEPENDENCIES" => Section::Dependencies,
                "CHECKSUMS" => Section::Checksums,
                "RUBY VERSION" | "BUNDLED WITH" | "PLUGIN SOURCE" => Section::Other,
                other => {
                    warnings.push(ParseWarning {
                        line: Some(line_no),
                        message: format!("unknown section `{other}` skipped; expected GEM, GIT, PATH, PLATFORMS, DEPENDENCIES, CHECKSUMS, RUBY VERSION or BUNDLED WITH"),
                    });
                    Section::Other
                }
            };
            continue;
        }
        match section {
            Section::Gem | Section::Git | Section::Path => match indent {
                2 => {
                    if let Some((key, value)) = body.split_once(':') {
                        let value = value.trim();
                        match key {
                            "remote" => attrs.remotes.push(value.to_owned()),
                            "revision" => attrs.revision = Some(value.to_owned()),
                            _ => {}
                        }
                    }
                }
                4 => {
                    let (name, version) = name_version(body).ok_or_else(|| {
                        error(
                            path,
                            Some(line_no),
                            format!("malformed spec `{body}`; expected `name (version)`"),
                            Some("the file may be truncated; `bundle lock` rewrites it"),
                        )
                    })?;
                    let Some(version) = version else {
                        return Err(error(
                            path,
                            Some(line_no),
                            format!("spec `{name}` has no version; expected `{name} (1.2.3)`"),
                            Some("the file may be truncated; `bundle lock` rewrites it"),
                        ));
                    };
                    let (version, platform) = match version.split_once('-') {
                        Some((v, p)) => (v, Some(p)),
                        None => (version, None),
                    };
                    let c = component(
                        Ecosystem::RubyGems,
                        None,
                        name.to_owned(),
                        version.to_owned(),
                        path,
                    );
                    let key = c.key();
                    let idx = match index.get(&key) {
                        Some(&idx) => idx,
                        None => {
                            components.push(c);
                            dep_names.push(Vec::new());
                            index.insert(key, components.len() - 1);
                            pending.push(components.len() - 1);
                            components.len() - 1
                        }
                    };
                    if let Some(p) = platform {
                        let props = &mut components[idx].properties;
                        let entry = props.entry("cutover:gem:platform".to_owned()).or_default();
                        if !entry.split(',').any(|e| e == p) {
                            if !entry.is_empty() {
                                entry.push(',');
                            }
                            entry.push_str(p);
                        }
                    }
                    current = Some(idx);
                }
                6 => {
                    let Some(idx) = current else {
                        return Err(error(
                            path,
                            Some(line_no),
                            format!(
                                "dependency `{body}` outside a spec; expected it under a 4-space `name (version)` line"
                            ),
                            None,
                        ));
                    };
                    if let Some((name, _)) = name_version(body)
                        && !dep_names[idx].iter().any(|n| n == name)
                    {
                        dep_names[idx].push(name.to_owned());
                    }
                }
                _ => {
                    return Err(error(
                        path,
                        Some(line_no),
                        format!(
                            "unexpected indentation of {indent} spaces; expected 2 (attributes), 4 (specs) or 6 (their dependencies)"
                        ),
                        None,
                    ));
                }
            },
            Section::Dependencies => {
                if let Some((name, _)) = name_version(body) {
                    direct.insert(name.trim_end_matches('!').to_owned());
                }
            }
            Section::Platforms => platforms.push(body.to_owned()),
            Section::Checksums => {
                // `name (version[-platform]) sha256=hex[,sha512=hex]`
                if let Some((nv, sums)) = body.split_once(") ")
                    && let Some((name, version)) = nv.split_once(" (")
                {
                    let version = version.split('-').next().unwrap_or(version);
                    checksums.push((
                        name.to_owned(),
                        version.to_owned(),
                        sums.to_owned(),
                        line_no,
                    ));
                }
            }
            Section::Other => {}
        }
    }
    close_section(section, &attrs, &pending, &mut components);

    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in components.iter().enumerate() {
        by_name.entry(c.name.clone()).or_default().push(i);
    }
    let keys: Vec<String> = components.iter().map(Component::key).collect();
    for (i, names) in dep_names.iter().enumerate() {
        for n in names {
            for &j in by_name.get(n).into_iter().flatten() {
                if j != i && !components[i].depends_on.contains(&keys[j]) {
                    components[i].depends_on.push(keys[j].clone());
                }
            }
        }
    }
    for c in &mut components {
        c.direct = direct.contains(&c.name);
        if !platforms.is_empty() {
            c.properties
                .entry("cutover:gem:lock-platforms".to_owned())
                .or_insert_with(|| platforms.join(","));
        }
    }
    for (name, version, sums, line_no) in checksums {
        let Some(&idx) = by_name
            .get(&name)
            .and_then(|v| v.iter().find(|&&i| components[i].version == version))
        else {
            continue;
        };
        for sum in sums.split(',') {
            match sum
                .split_once('=')
                .and_then(|(alg, hex)| hex_hash(alg, hex))
            {
                Some(h) => push_hash(&mut components[idx].hashes, h),
                None => warnings.push(ParseWarning {
                    line: Some(line_no),
                    message: format!("checksum `{sum}` of {name} ignored; expected `sha256=<hex>`"),
                }),
            }
        }
    }
    Ok(Parsed {
        components,
        warnings,
    })
}

/// Sets the source of the specs read in a GEM, GIT or PATH section.
fn close_section(
    section: Section,
    attrs: &SourceAttrs,
    pending: &[usize],
    components: &mut [Component],
) {
    let source = match section {
        Section::Gem => {
            let default = attrs.remotes.is_empty()
                || attrs
                    .remotes
                    .iter()
                    .any(|r| r.trim_end_matches('/') == RUBYGEMS);
            if default {
                Source::Registry
            } else {
                Source::AlternateRegistry {
                    url: attrs.remotes[0].clone(),
                }
            }
        }
        Section::Git => Source::Git {
            url: attrs.remotes.first().cloned().unwrap_or_default(),
            rev: attrs.revision.clone(),
        },
        Section::Path => Source::Path {
            path: attrs.remotes.first().cloned().unwrap_or_default(),
        },
        _ => return,
    };
    for &i in pending {
        components[i].source = source.clone();
    }
}

/// `name (version)` or `name (>= 1, < 2)` or `name` -> (name, text in parentheses).
fn name_version(body: &str) -> Option<(&str, Option<&str>)> {
    match body.split_once(" (") {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(")!").or_else(|| rest.strip_suffix(')'))?;
            if name.is_empty() || name.contains(' ') {
                return None;
            }
            Some((name, Some(inner.trim())))
        }
        None => {
            if body.contains(['(', ')', ' ']) {
                return None;
            }
            Some((body, None))
        }
    }
}
