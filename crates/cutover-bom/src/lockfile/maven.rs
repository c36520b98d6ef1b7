//! Maven pom.xml: the declared `<dependencies>` (not resolved: components are
//! `Resolution::Declared`), with literal or `${property}` versions (own and parent properties,
//! `project.version`, `project.groupId`, `project.parent.version`, ...), versions and scopes from
//! `<dependencyManagement>`, `test`/`provided`/`system` scopes excluded, `<optional>` optional.
//! A local parent pom (`<relativePath>`, default `../pom.xml`) is read through a resolver closure
//! so the parser stays pure; a parent that is not local leaves its properties unknown, and the
//! dependencies whose version cannot be determined are reported as unresolved.
//!
//! Entry points: [`parse_pom_xml`], [`parse_pom_xml_with`].

use crate::lockfile::other_support::{check_text, component, error, join_relative, line_of};
use crate::model::{Ecosystem, ParseError, ParseWarning, Parsed, Resolution, Scope};
use quick_xml::events::Event;
use std::collections::HashMap;

/// How many local parents are followed (a cycle or a very deep chain stops here).
const MAX_PARENT_DEPTH: usize = 8;

/// Parses a pom.xml without reading its parent.
pub fn parse_pom_xml(text: &str, path: &str) -> Result<Parsed, ParseError> {
    parse_pom_xml_with(text, path, &|_| None)
}

/// Parses a pom.xml; `resolve` is given the project-relative path of the parent pom (from
/// `<relativePath>` or Maven's default `../pom.xml`) and returns its text if it exists.
pub fn parse_pom_xml_with(
    text: &str,
    path: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ParseError> {
    check_text(text, path, "a Maven pom.xml")?;
    let pom = read_pom(text, path)?;
    let mut warnings = Vec::new();
    let mut chain = vec![pom];
    let mut paths = vec![path.to_owned()];
    while chain.len() <= MAX_PARENT_DEPTH {
        let Some(parent_ref) = chain.last().and_then(|p| p.parent.clone()) else {
            break;
        };
        let current = paths.last().cloned().unwrap_or_default();
        let rel = parent_ref.relative_path.clone();
        let explicit = rel.as_ref().is_some_and(|r| !r.is_empty());
        if rel.as_deref() == Some("") {
            // `<relativePath/>`: the parent comes from a repository, never from disk.
            break;
        }
        if rel
            .as_deref()
            .is_some_and(|r| r.starts_with('/') || r.get(1..2) == Some(":"))
        {
            warnings.push(ParseWarning {
                line: None,
                message: "parent relativePath is absolute; not followed (only files of the project are read)"
                    .to_owned(),
            });
            break;
        }
        let mut target = join_relative(&current, rel.as_deref().unwrap_or("../pom.xml"));
        if !target.ends_with(".xml") {
            target = format!("{}/pom.xml", target.trim_end_matches('/'));
        }
        if paths.contains(&target) {
            if explicit {
                warnings.push(ParseWarning {
                    line: None,
                    message: format!("parent chain loops back to {target}; stopped there"),
                });
            }
            break;
        }
        let Some(parent_text) = resolve(&target) else {
            if explicit {
                warnings.push(ParseWarning {
                    line: None,
                    message: format!(
                        "parent pom {target} (relativePath) not found; its properties and managed versions are unknown"
                    ),
                });
            }
            break;
        };
        let parent = match check_text(&parent_text, &target, "a Maven pom.xml")
            .and_then(|()| read_pom(&parent_text, &target))
        {
            Ok(p) => p,
            Err(e) => {
                warnings.push(ParseWarning {
                    line: None,
                    message: format!("parent pom unreadable: {e}"),
                });
                break;
            }
        };
        if parent
            .group_id
            .as_deref()
            .or(parent.parent.as_ref().and_then(|p| p.group_id.as_deref()))
            != parent_ref.group_id.as_deref()
            || parent.artifact_id != parent_ref.artifact_id
        {
            if explicit {
                warnings.push(ParseWarning {
                    line: None,
                    message: format!(
                        "{target} is not the declared parent {}:{}; ignored",
                        parent_ref.group_id.as_deref().unwrap_or("?"),
                        parent_ref.artifact_id.as_deref().unwrap_or("?")
                    ),
                });
            }
            break;
        }
        chain.push(parent);
        paths.push(target);
    }
    let model = Effective::new(&chain);

    let mut parsed = Parsed {
        components: Vec::new(),
        warnings,
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Parent dependencies first (they are inherited), the module's own override them.
    let mut declared: Vec<(&Dependency, usize)> = Vec::new();
    let mut position: HashMap<DependencyId<'_>, usize> = HashMap::new();
    for (level, pom) in chain.iter().enumerate().rev() {
        for d in &pom.dependencies {
            if let Some(&pos) = position.get(&d.id()) {
                declared[pos] = (d, level);
            } else {
                position.insert(d.id(), declared.len());
                declared.push((d, level));
            }
        }
    }
    for (d, level) in declared {
        let group = model.interpolate(d.group_id.as_deref().unwrap_or(""));
        let artifact = model.interpolate(d.artifact_id.as_deref().unwrap_or(""));
        let (Some(group), Some(artifact)) = (group, artifact) else {
            parsed.warnings.push(ParseWarning {
                line: (level == 0).then_some(d.line),
                message: format!(
                    "dependency {}:{} has an unknown property in its coordinates; skipped",
                    d.group_id.as_deref().unwrap_or(""),
                    d.artifact_id.as_deref().unwrap_or("")
                ),
            });
            continue;
        };
        if group.is_empty() || artifact.is_empty() {
            parsed.warnings.push(ParseWarning {
                line: (level == 0).then_some(d.line),
                message: "dependency without groupId or artifactId skipped; expected both"
                    .to_owned(),
            });
            continue;
        }
        let managed = model.managed(&group, &artifact);
        let raw_version = d
            .version
            .clone()
            .or_else(|| managed.and_then(|m| m.version.clone()));
        let version = raw_version.as_deref().and_then(|v| model.interpolate(v));
        let mut c = component(
            Ecosystem::Maven,
            Some(group.clone()),
            artifact.clone(),
            String::new(),
            path,
        );
        c.direct = true;
        match version {
            Some(v) if !v.is_empty() && !v.starts_with(['[', '(']) => {
                c.version = v;
                c.resolution = Resolution::Declared;
            }
            other => {
                c.resolution = Resolution::Unresolved;
                if let Some(spec) = other.or(raw_version).filter(|s| !s.is_empty()) {
                    c.properties
                        .insert("cutover:maven:version-spec".to_owned(), spec);
                }
            }
        }
        if d.version.is_none() && managed.is_some_and(|m| m.version.is_some()) {
            c.properties.insert(
                "cutover:maven:version-from".to_owned(),
                "dependencyManagement".to_owned(),
            );
        }
        let scope = d
            .scope
            .clone()
            .or_else(|| managed.and_then(|m| m.scope.clone()))
            .and_then(|s| model.interpolate(&s))
            .unwrap_or_else(|| "compile".to_owned());
        let optional = d
            .optional
            .as_deref()
            .and_then(|o| model.interpolate(o))
            .is_some_and(|o| o.trim() == "true");
        c.scope = match scope.as_str() {
            "test" | "provided" | "system" => Scope::Excluded,
            _ if optional => Scope::Optional,
            _ => Scope::Required,
        };
        c.properties.insert("cutover:maven:scope".to_owned(), scope);
        if let Some(t) = d.kind.as_deref().filter(|t| *t != "jar") {
            c.properties
                .insert("cutover:maven:type".to_owned(), t.to_owned());
        }
        if let Some(cl) = &d.classifier {
            c.properties
                .insert("cutover:maven:classifier".to_owned(), cl.clone());
        }
        if level > 0 {
            c.properties.insert(
                "cutover:maven:inherited-from".to_owned(),
                paths[level].clone(),
            );
        }
        let key = c.key();
        if seen.contains_key(&key) {
            parsed.warnings.push(ParseWarning {
                line: (level == 0).then_some(d.line),
                message: format!("{group}:{artifact} declared twice; first declaration kept"),
            });
            continue;
        }
        seen.insert(key, parsed.components.len());
        parsed.components.push(c);
    }
    Ok(parsed)
}

#[derive(Clone, Default)]
struct ParentRef {
    group_id: Option<String>,
    artifact_id: Option<String>,
    version: Option<String>,
    relative_path: Option<String>,
}

#[derive(Default)]
struct Dependency {
    group_id: Option<String>,
    artifact_id: Option<String>,
    version: Option<String>,
    scope: Option<String>,
    optional: Option<String>,
    kind: Option<String>,
    classifier: Option<String>,
    line: usize,
}

/// groupId, artifactId, type and classifier as written: what makes two declarations the same.
type DependencyId<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

impl Dependency {
    fn id(&self) -> DependencyId<'_> {
        (
            self.group_id.as_deref(),
            self.artifact_id.as_deref(),
            self.kind.as_deref(),
            self.classifier.as_deref(),
        )
    }
}

#[derive(Default)]
struct Pom {
    group_id: Option<String>,
    artifact_id: Option<String>,
    version: Option<String>,
    parent: Option<ParentRef>,
    properties: Vec<(String, String)>,
    dependencies: Vec<Dependency>,
    managed: Vec<Dependency>,
}

/// The merged view of a pom and its local parents, for interpolation and managed versions.
struct Effective<'a> {
    chain: &'a [Pom],
    properties: HashMap<&'a str, &'a str>,
    /// `<dependencyManagement>` entries by interpolated (groupId, artifactId), nearest pom first.
    managed: HashMap<(String, String), &'a Dependency>,
}

impl<'a> Effective<'a> {
    fn new(chain: &'a [Pom]) -> Self {
        let mut properties = HashMap::new();
        // Nearest definition wins: insert from the farthest parent to the module itself.
        for pom in chain.iter().rev() {
            for (k, v) in &pom.properties {
                properties.insert(k.as_str(), v.as_str());
            }
        }
        let mut model = Effective {
            chain,
            properties,
            managed: HashMap::new(),
        };
        let mut managed = HashMap::new();
        for m in chain.iter().flat_map(|p| &p.managed) {
            if m.scope.as_deref() == Some("import") {
                continue;
            }
            let group = m.group_id.as_deref().and_then(|g| model.interpolate(g));
            let artifact = m.artifact_id.as_deref().and_then(|a| model.interpolate(a));
            if let (Some(g), Some(a)) = (group, artifact) {
                managed.entry((g, a)).or_insert(m);
            }
        }
        model.managed = managed;
        model
    }

    fn project_value(&self, name: &str) -> Option<String> {
        let own = &self.chain[0];
        let parent = own.parent.as_ref();
        match name {
            "project.version" | "pom.version" | "version" => own
                .version
                .clone()
                .or_else(|| parent.and_then(|p| p.version.clone())),
            "project.groupId" | "pom.groupId" | "groupId" => own
                .group_id
                .clone()
                .or_else(|| parent.and_then(|p| p.group_id.clone())),
            "project.artifactId" | "pom.artifactId" | "artifactId" => own.artifact_id.clone(),
            "project.parent.version" | "parent.version" => parent.and_then(|p| p.version.clone()),
            "project.parent.groupId" | "parent.groupId" => parent.and_then(|p| p.group_id.clone()),
            "project.parent.artifactId" | "parent.artifactId" => {
                parent.and_then(|p| p.artifact_id.clone())
            }
            _ => None,
        }
    }

    /// Replaces every `${name}`; `None` when one cannot be resolved.
    fn interpolate(&self, value: &str) -> Option<String> {
        let mut current = value.trim().to_owned();
        for _ in 0..10 {
            let Some(start) = current.find("${") else {
                return Some(current);
            };
            let end = start + current[start..].find('}')?;
            let name = &current[start + 2..end];
            let replacement = match self.properties.get(name) {
                Some(v) => (*v).to_owned(),
                None => self.project_value(name)?,
            };
            current.replace_range(start..=end, replacement.trim());
        }
        None
    }

    fn managed(&self, group: &str, artifact: &str) -> Option<&'a Dependency> {
        self.managed
            .get(&(group.to_owned(), artifact.to_owned()))
            .copied()
    }
}

/// Reads the parts of a pom this parser uses.
fn read_pom(text: &str, path: &str) -> Result<Pom, ParseError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut pom = Pom::default();
    // Element names from the root down, with the byte offset each opened at.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut buf = String::new();
    let mut dep: Option<Dependency> = None;
    let mut parent: Option<ParentRef> = None;
    let mut saw_root = false;
    let mut lines = LineCounter::new(text);
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(pos);
            error(
                path,
                Some(line_of(text, at)),
                format!("malformed XML: {e}; expected a well-formed pom.xml"),
                Some("the file may be truncated"),
            )
        })?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if stack.is_empty() {
                    if saw_root || name != "project" {
                        return Err(error(
                            path,
                            Some(line_of(text, pos)),
                            format!("root element is <{name}>; expected <project>"),
                            None,
                        ));
                    }
                    saw_root = true;
                }
                stack.push((name, pos));
                buf.clear();
                match path_of(&stack).as_slice() {
                    ["project", "dependencies", "dependency"]
                    | [
                        "project",
                        "dependencyManagement",
                        "dependencies",
                        "dependency",
                    ] => {
                        dep = Some(Dependency {
                            line: lines.line_at(pos),
                            ..Dependency::default()
                        });
                    }
                    ["project", "parent"] => parent = Some(ParentRef::default()),
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_owned();
                if stack.is_empty() {
                    return Err(error(
                        path,
                        Some(line_of(text, pos)),
                        format!(
                            "root element is an empty <{name}/>; expected <project> with dependencies"
                        ),
                        None,
                    ));
                }
                if let (["project", "parent"], "relativePath", Some(p)) =
                    (path_of(&stack).as_slice(), name.as_str(), parent.as_mut())
                {
                    p.relative_path = Some(String::new());
                }
            }
            Event::Text(t) => buf.push_str(&t.xml10_content()),
            Event::CData(t) => buf.push_str(&t),
            Event::GeneralRef(r) => {
                if let Ok(Some(ch)) = r.resolve_char_ref() {
                    buf.push(ch);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    buf.push_str(s);
                }
            }
            Event::End(_) => {
                let value = buf.trim().to_owned();
                let p = path_of(&stack);
                match p.as_slice() {
                    ["project", "groupId"] => pom.group_id = Some(value),
                    ["project", "artifactId"] => pom.artifact_id = Some(value),
                    ["project", "version"] => pom.version = Some(value),
                    ["project", "parent", field] => {
                        if let Some(pr) = parent.as_mut() {
                            match *field {
                                "groupId" => pr.group_id = Some(value),
                                "artifactId" => pr.artifact_id = Some(value),
                                "version" => pr.version = Some(value),
                                "relativePath" => pr.relative_path = Some(value),
                                _ => {}
                            }
                        }
                    }
                    ["project", "parent"] => pom.parent = parent.take(),
                    ["project", "properties", key] => {
                        pom.properties.push(((*key).to_owned(), value));
                    }
                    ["project", "dependencies", "dependency", field]
                    | [
                        "project",
                        "dependencyManagement",
                        "dependencies",
                        "dependency",
                        field,
                    ] => {
                        if let Some(d) = dep.as_mut() {
                            let slot = match *field {
                                "groupId" => Some(&mut d.group_id),
                                "artifactId" => Some(&mut d.artifact_id),
                                "version" => Some(&mut d.version),
                                "scope" => Some(&mut d.scope),
                                "optional" => Some(&mut d.optional),
                                "type" => Some(&mut d.kind),
                                "classifier" => Some(&mut d.classifier),
                                _ => None,
                            };
                            if let Some(slot) = slot {
                                *slot = Some(value);
                            }
                        }
                    }
                    ["project", "dependencies", "dependency"] => {
                        if let Some(d) = dep.take() {
                            pom.dependencies.push(d);
                        }
                    }
                    [
                        "project",
                        "dependencyManagement",
                        "dependencies",
                        "dependency",
                    ] => {
                        if let Some(d) = dep.take() {
                            pom.managed.push(d);
                        }
                    }
                    _ => {}
                }
                stack.pop();
                buf.clear();
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some((open, at)) = stack.last() {
        return Err(error(
            path,
            Some(line_of(text, *at)),
            format!("document ends inside <{open}>; expected </{open}>"),
            Some("the file looks truncated"),
        ));
    }
    if !saw_root {
        return Err(error(
            path,
            Some(1),
            "no <project> element; expected a Maven pom.xml",
            None,
        ));
    }
    Ok(pom)
}

fn path_of(stack: &[(String, usize)]) -> Vec<&str> {
    stack.iter().map(|(n, _)| n.as_str()).collect()
}

/// Line numbers for increasing byte offsets without rescanning from the start each time.
struct LineCounter<'t> {
    text: &'t [u8],
    offset: usize,
    line: usize,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.text[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}
