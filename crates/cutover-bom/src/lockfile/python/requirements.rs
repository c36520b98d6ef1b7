//! requirements.txt: pinned `==`/`===` entries with `--hash` options, extras, markers, `-r`/`-c`
//! includes, line continuations, comments and pip-compile `# via` annotations. Entries without a
//! usable pin become `Resolution::Unresolved` components rather than being dropped. Files named for
//! development (`requirements-dev.txt`, `test-requirements.txt`, `requirements/lint.txt`) give
//! excluded components.

use crate::lockfile::other_support::{
    check_text, join_relative, pep503, prefixed_hash, push_hash, pypi_component, stronger,
};
use crate::model::{Component, Hash, ParseError, ParseWarning, Parsed, Resolution, Scope, Source};
use std::collections::HashMap;

/// Nesting limit for `-r`/`-c` includes (pip has none, but a cycle must end somewhere).
const MAX_INCLUDE_DEPTH: usize = 16;

/// The default index; components from any other `--index-url` get an alternate-registry source.
const PYPI_SIMPLE: &str = "https://pypi.org/simple";

/// Parses a requirements file without following `-r`/`-c` includes (they are reported as warnings).
pub fn parse_requirements_txt(text: &str, path: &str) -> Result<Parsed, ParseError> {
    parse_requirements_txt_with(text, path, &|_| None)
}

/// Parses a requirements file; `resolve` is given the project-relative path of each `-r`/`-c`
/// include (joined onto this file's directory) and returns its text, or `None` if it is missing.
pub fn parse_requirements_txt_with(
    text: &str,
    path: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, ParseError> {
    check_text(text, path, "a pip requirements file")?;
    let mut st = State {
        resolve,
        stack: vec![path.to_owned()],
        components: Vec::new(),
        index: HashMap::new(),
        warnings: Vec::new(),
        constraints: HashMap::new(),
        index_url: None,
        via: Vec::new(),
    };
    st.parse_file(text, path, false);
    Ok(st.finish())
}

/// What one requirement line said, before it becomes a component.
struct Requirement<'t> {
    raw_name: &'t str,
    extras: Vec<&'t str>,
    /// The version specifier text (`>= 1, < 2`), empty when there is none.
    specifier: String,
    /// The `@ url` of a direct reference.
    url: Option<&'t str>,
    markers: Option<&'t str>,
    hashes: Vec<Hash>,
}

/// A pip-compile `# via` list for the component at `index`.
struct Via {
    index: usize,
    parents: Vec<String>,
    from_requirement_file: bool,
}

struct State<'r> {
    resolve: &'r dyn Fn(&str) -> Option<String>,
    /// Files being parsed, outermost first (cycle detection).
    stack: Vec<String>,
    components: Vec<Component>,
    index: HashMap<String, usize>,
    warnings: Vec<ParseWarning>,
    /// Pins from `-c` constraint files: normalised name -> (version, hashes).
    constraints: HashMap<String, (String, Vec<Hash>)>,
    index_url: Option<String>,
    via: Vec<Via>,
}

impl State<'_> {
    fn warn(&mut self, file: &str, line: usize, message: String) {
        let message = if self.stack.first().is_some_and(|root| root != file) {
            format!("{file}:{line}: {message}")
        } else {
            message
        };
        self.warnings.push(ParseWarning {
            line: Some(line),
            message,
        });
    }

    /// Parses one file; `constraints` files only contribute pins.
    fn parse_file(&mut self, text: &str, file: &str, constraints: bool) {
        let mut logical = String::new();
        let mut start_line = 0usize;
        // The component the previous requirement line produced, for `# via` comments under it.
        let mut last: Option<usize> = None;
        let mut in_via: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = raw.trim();
            if logical.is_empty() {
                if let Some(comment) = trimmed.strip_prefix('#') {
                    self.via_comment(comment, &mut last, &mut in_via);
                    continue;
                }
                start_line = line_no;
            }
            in_via = None;
            if let Some(cont) = raw.strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            last = self.logical_line(&line, file, start_line, constraints);
        }
        if !logical.is_empty() {
            let line = std::mem::take(&mut logical);
            self.logical_line(&line, file, start_line, constraints);
        }
    }

    /// Handles a comment line: pip-compile writes `# via a` or `# via` followed by `#   a` lines
    /// under each requirement, naming what needs it.
    fn via_comment(&mut self, comment: &str, last: &mut Option<usize>, in_via: &mut Option<usize>) {
        let body = comment.trim();
        if let Some(rest) = body.strip_prefix("via")
            && let Some(index) = *last
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            self.via.push(Via {
                index,
                parents: Vec::new(),
                from_requirement_file: false,
            });
            let via_idx = self.via.len() - 1;
            *in_via = Some(via_idx);
            let rest = rest.trim();
            if !rest.is_empty() {
                self.via_entry(via_idx, rest);
                *in_via = None;
            }
            *last = None;
            return;
        }
        if let Some(via_idx) = *in_via
            && comment.starts_with("  ")
            && !body.is_empty()
        {
            self.via_entry(via_idx, body);
            return;
        }
        *in_via = None;
        *last = None;
    }

    fn via_entry(&mut self, via_idx: usize, entry: &str) {
        let via = &mut self.via[via_idx];
        if entry.starts_with("-r ") || entry.starts_with("-c ") || entry.contains(".in") {
            via.from_requirement_file = true;
        } else if let Some(name) = entry.split_whitespace().next() {
            via.parents.push(pep503(name));
        }
    }

    /// One logical line (continuations joined). Returns the index of the component it produced.
    fn logical_line(
        &mut self,
        line: &str,
        file: &str,
        line_no: usize,
        constraints: bool,
    ) -> Option<usize> {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            return None;
        }
        if line.starts_with('-') {
            self.option_line(line, file, line_no, constraints);
            return None;
        }
        let (req_text, options) = split_options(line);
        let mut hashes = Vec::new();
        self.per_requirement_options(options, file, line_no, &mut hashes);
        let req_text = req_text.trim();
        if looks_like_path_or_url(req_text) {
            return self.file_requirement(req_text, file, line_no, constraints, hashes);
        }
        let req = match parse_requirement(req_text, hashes) {
            Ok(req) => req,
            Err(why) => {
                self.warn(
                    file,
                    line_no,
                    format!("cannot read requirement `{req_text}`: {why}; expected `name[extras] ==version ; markers`"),
                );
                return None;
            }
        };
        self.add_requirement(req, file, line_no, constraints)
    }

    fn option_line(&mut self, line: &str, file: &str, line_no: usize, constraints: bool) {
        let (opt, value) = split_option(line);
        match opt {
            "-r" | "--requirement" | "-c" | "--constraint" => {
                let is_constraint = constraints || matches!(opt, "-c" | "--constraint");
                self.include(value, file, line_no, is_constraint);
            }
            "-e" | "--editable" => {
                if !constraints {
                    self.editable(value, file, line_no);
                }
            }
            "-i" | "--index-url" => {
                if !value.is_empty() {
                    self.index_url = Some(value.to_owned());
                }
            }
            "--extra-index-url" | "-f" | "--find-links" | "--no-index" | "--pre"
            | "--trusted-host" | "--no-binary" | "--only-binary" | "--prefer-binary"
            | "--require-hashes" | "--use-feature" | "--use-pep517" | "--no-deps" => {}
            _ => self.warn(
                file,
                line_no,
                format!("unknown pip option `{opt}` ignored; expected a requirement or one of -r, -c, -e, -i"),
            ),
        }
    }

    fn include(&mut self, target: &str, file: &str, line_no: usize, constraints: bool) {
        let kind = if constraints {
            "constraints"
        } else {
            "requirements"
        };
        if target.is_empty() {
            self.warn(
                file,
                line_no,
                format!("`-r`/`-c` without a file name; expected the {kind} file to include"),
            );
            return;
        }
        if target.contains("://") {
            self.warn(
                file,
                line_no,
                format!("{kind} file `{target}` is a URL; not fetched (no network)"),
            );
            return;
        }
        if target.starts_with('/') || target.starts_with('\\') || target.get(1..2) == Some(":") {
            self.warn(
                file,
                line_no,
                format!("{kind} file `{target}` is an absolute path; not followed (only files of the project are read)"),
            );
            return;
        }
        let joined = join_relative(file, target);
        if self.stack.contains(&joined) {
            self.warn(
                file,
                line_no,
                format!("{kind} file `{joined}` includes itself; include cycle skipped"),
            );
            return;
        }
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            self.warn(
                file,
                line_no,
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep; `{joined}` skipped"),
            );
            return;
        }
        let Some(text) = (self.resolve)(&joined) else {
            self.warn(
                file,
                line_no,
                format!("{kind} file `{joined}` not found; its entries are missing"),
            );
            return;
        };
        if let Err(e) = check_text(&text, &joined, "a pip requirements file") {
            self.warn(
                file,
                line_no,
                format!("included {kind} file unreadable: {e}"),
            );
            return;
        }
        self.stack.push(joined.clone());
        self.parse_file(&text, &joined, constraints);
        self.stack.pop();
    }

    fn editable(&mut self, value: &str, file: &str, line_no: usize) {
        let (location, egg) = match value.split_once("#egg=") {
            Some((loc, egg)) => (loc, Some(egg.split('&').next().unwrap_or(egg))),
            None => (value, None),
        };
        let Some(egg) = egg.filter(|e| !e.is_empty()) else {
            self.warn(
                file,
                line_no,
                format!("editable requirement `{value}` has no `#egg=name`; expected a name to report it under"),
            );
            return;
        };
        let (raw_name, _extras) = egg.split_once('[').unwrap_or((egg, ""));
        let mut c = pypi_component(raw_name, "", file);
        c.resolution = Resolution::Unresolved;
        c.direct = true;
        c.source = source_of_location(location);
        c.properties
            .insert("cutover:python:editable".to_owned(), "true".to_owned());
        self.insert(c);
    }

    fn per_requirement_options(
        &mut self,
        options: &str,
        file: &str,
        line_no: usize,
        hashes: &mut Vec<Hash>,
    ) {
        let mut tokens = options.split_whitespace();
        let mut trailing_text = false;
        while let Some(tok) = tokens.next() {
            let (opt, inline) = match tok.split_once('=') {
                Some((o, v)) if o.starts_with('-') => (o, Some(v)),
                _ => (tok, None),
            };
            match opt {
                "--hash" => {
                    let value = inline.or_else(|| tokens.next()).unwrap_or("");
                    match prefixed_hash(value) {
                        Some(h) => push_hash(hashes, h),
                        None => self.warn(
                            file,
                            line_no,
                            format!("`--hash={value}` ignored; expected `alg:hexdigest` with alg one of sha256, sha384, sha512"),
                        ),
                    }
                }
                "--global-option" | "--install-option" | "--config-settings" | "-C" => {
                    if inline.is_none() {
                        tokens.next();
                    }
                }
                _ if opt.starts_with('-') => self.warn(
                    file,
                    line_no,
                    format!("unknown per-requirement option `{opt}` ignored"),
                ),
                _ => trailing_text = true,
            }
        }
        if trailing_text {
            self.warn(
                file,
                line_no,
                "text after the per-requirement options ignored; expected only `--hash`, `--config-settings`, `--global-option`".to_owned(),
            );
        }
    }

    /// A requirement given as a path or URL to an archive (`./dist/x-1.0-py3-none-any.whl`).
    fn file_requirement(
        &mut self,
        location: &str,
        file: &str,
        line_no: usize,
        constraints: bool,
        hashes: Vec<Hash>,
    ) -> Option<usize> {
        if constraints {
            return None;
        }
        let location = location.split(';').next().unwrap_or(location).trim();
        let file_name = location
            .rsplit('/')
            .next()
            .unwrap_or(location)
            .split(['#', '?'])
            .next()
            .unwrap_or("");
        let Some((raw_name, version)) = archive_name_version(file_name) else {
            self.warn(
                file,
                line_no,
                format!("cannot tell the package name of `{location}`; expected a wheel or sdist file name `name-version...`"),
            );
            return None;
        };
        let mut c = pypi_component(raw_name, version, file);
        c.direct = true;
        c.hashes = hashes;
        c.source = source_of_location(location);
        Some(self.insert(c))
    }

    fn add_requirement(
        &mut self,
        req: Requirement<'_>,
        file: &str,
        line_no: usize,
        constraints: bool,
    ) -> Option<usize> {
        let pin = match pinned_version(&req.specifier) {
            Ok(pin) => pin,
            Err(why) => {
                self.warn(
                    file,
                    line_no,
                    format!("version specifier `{}` of `{}` not understood ({why}); reported as unresolved", req.specifier, req.raw_name),
                );
                None
            }
        };
        if constraints {
            if let Some(v) = pin {
                self.constraints
                    .insert(pep503(req.raw_name), (v.to_owned(), req.hashes));
            }
            return None;
        }
        let mut c = pypi_component(req.raw_name, pin.unwrap_or(""), file);
        c.direct = true;
        if pin.is_none() {
            c.resolution = Resolution::Unresolved;
        }
        if !req.specifier.is_empty() && pin.is_none() {
            c.properties
                .insert("cutover:python:specifier".to_owned(), req.specifier.clone());
        }
        if !req.extras.is_empty() {
            c.properties
                .insert("cutover:python:extras".to_owned(), req.extras.join(","));
        }
        if let Some(m) = req.markers {
            c.properties
                .insert("cutover:python:markers".to_owned(), m.to_owned());
        }
        if let Some(url) = req.url {
            c.source = source_of_location(url);
            if pin.is_none()
                && let Some((_, v)) = archive_name_version(url.rsplit('/').next().unwrap_or(""))
            {
                c.version = v.to_owned();
                c.resolution = Resolution::Resolved;
                c.properties.remove("cutover:python:specifier");
            }
        }
        c.hashes = req.hashes;
        Some(self.insert(c))
    }

    /// Adds a component, merging it into an earlier one with the same key.
    fn insert(&mut self, mut c: Component) -> usize {
        if is_development_file(&c.manifest) {
            c.scope = Scope::Excluded;
        }
        let key = c.key();
        if let Some(&i) = self.index.get(&key) {
            let existing = &mut self.components[i];
            existing.scope = stronger(existing.scope, c.scope);
            for h in c.hashes {
                push_hash(&mut existing.hashes, h);
            }
            for (k, v) in c.properties {
                existing.properties.entry(k).or_insert(v);
            }
            return i;
        }
        self.components.push(c);
        self.index.insert(key, self.components.len() - 1);
        self.components.len() - 1
    }

    fn finish(mut self) -> Parsed {
        // Constraint files pin what the requirement files leave open.
        if !self.constraints.is_empty() {
            for c in &mut self.components {
                if c.resolution == Resolution::Unresolved
                    && let Some((v, hashes)) = self.constraints.get(&c.name)
                {
                    c.version.clone_from(v);
                    c.resolution = Resolution::Resolved;
                    for h in hashes {
                        push_hash(&mut c.hashes, h.clone());
                    }
                    c.properties.insert(
                        "cutover:python:pinned-by".to_owned(),
                        "constraints".to_owned(),
                    );
                }
            }
        }
        if let Some(url) = self.index_url.take()
            && url.trim_end_matches('/') != PYPI_SIMPLE
        {
            for c in &mut self.components {
                if c.source == Source::Registry {
                    c.source = Source::AlternateRegistry { url: url.clone() };
                }
            }
        }
        // pip-compile output: `# via` tells direct from transitive and gives the edges.
        if !self.via.is_empty() {
            let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, c) in self.components.iter().enumerate() {
                by_name.entry(c.name.as_str()).or_default().push(i);
            }
            let mut edges: Vec<(usize, String)> = Vec::new();
            let mut direct = vec![None; self.components.len()];
            for via in &self.via {
                direct[via.index] = Some(via.from_requirement_file);
                let child = self.components[via.index].key();
                for parent in &via.parents {
                    for &p in by_name.get(parent.as_str()).into_iter().flatten() {
                        edges.push((p, child.clone()));
                    }
                }
            }
            for (i, d) in direct.into_iter().enumerate() {
                if let Some(d) = d {
                    self.components[i].direct = d;
                }
            }
            for (p, child) in edges {
                let deps = &mut self.components[p].depends_on;
                if !deps.contains(&child) {
                    deps.push(child);
                }
            }
        }
        Parsed {
            components: self.components,
            warnings: self.warnings,
        }
    }
}

/// Whether a requirements file is by its name for development only (`requirements-dev.txt`,
/// `test-requirements.txt`, `requirements/lint.txt`): its entries are then excluded from what ships.
fn is_development_file(path: &str) -> bool {
    const MARKERS: &[&str] = &[
        "dev",
        "develop",
        "development",
        "test",
        "tests",
        "testing",
        "lint",
        "docs",
        "doc",
        "ci",
    ];
    let mut parts = path.rsplit('/');
    let file = parts.next().unwrap_or(path);
    let stem = file.strip_suffix(".txt").unwrap_or(file);
    let words: Vec<&str> = stem
        .split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .collect();
    let in_requirements_dir = parts.next() == Some("requirements");
    if in_requirements_dir && words.len() == 1 {
        return MARKERS.contains(&words[0]);
    }
    words.len() > 1
        && words.iter().any(|w| *w == "requirements" || *w == "reqs")
        && words.iter().any(|w| MARKERS.contains(w))
}

/// Removes a `#` comment: pip treats `#` at the start or after whitespace as one.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Splits `-r file`, `--requirement=file`, `-rfile` into option and value.
fn split_option(line: &str) -> (&str, &str) {
    if let Some(rest) = line.strip_prefix("--") {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .map_or(line.len(), |i| i + 2);
        let value = line[end..].trim_start_matches('=').trim();
        (&line[..end], value)
    } else {
        let end = line.char_indices().nth(2).map_or(line.len(), |(i, _)| i);
        (&line[..end], line[end..].trim_start_matches('=').trim())
    }
}

/// Splits a requirement line at its first whitespace-preceded option (`--hash`, `-C`, ...).
fn split_options(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b'-' && bytes[i - 1].is_ascii_whitespace() {
            let next = bytes.get(i + 1).copied().unwrap_or(b' ');
            if next == b'-' || next.is_ascii_alphabetic() {
                return (&line[..i], &line[i..]);
            }
        }
    }
    (line, "")
}

/// A bare path or URL (`./dist/x.whl`, `https://host/x.zip`) rather than `name ... @ url`.
fn looks_like_path_or_url(req: &str) -> bool {
    let first = req.split_whitespace().next().unwrap_or("");
    let first = first.split(';').next().unwrap_or(first);
    let before_scheme = first.split("://").next().unwrap_or(first);
    first.starts_with('.')
        || first.starts_with('/')
        || first.starts_with("file:")
        || (first.contains("://") && !before_scheme.contains('@'))
        || ((first.ends_with(".whl") || first.ends_with(".tar.gz") || first.ends_with(".zip"))
            && !first.contains('@'))
}

/// Name and version from a wheel (`name-ver-py-abi-plat.whl`) or sdist (`name-ver.tar.gz`) name.
fn archive_name_version(file_name: &str) -> Option<(&str, &str)> {
    if let Some(stem) = file_name.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let version = parts
            .next()
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))?;
        return Some((name, version));
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))?;
    let (name, version) = stem.rsplit_once('-')?;
    if name.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name, version))
}

/// Where a direct reference points: git, a local path, or another URL.
fn source_of_location(location: &str) -> Source {
    let location = location.trim();
    if let Some(rest) = location.strip_prefix("git+") {
        let (url, rev) = split_git_rev(rest);
        return Source::Git {
            url: url.to_owned(),
            rev: rev.map(str::to_owned),
        };
    }
    if location.contains("://") && !location.starts_with("file:") {
        if location.ends_with(".git") {
            return Source::Git {
                url: location.to_owned(),
                rev: None,
            };
        }
        return Source::Url {
            url: location.to_owned(),
        };
    }
    Source::Path {
        path: location.trim_start_matches("file://").to_owned(),
    }
}

/// `https://host/repo@rev#frag` -> (`https://host/repo`, `rev`).
fn split_git_rev(url: &str) -> (&str, Option<&str>) {
    let url = url.split('#').next().unwrap_or(url);
    let path_start = url
        .find("://")
        .map(|i| i + 3)
        .and_then(|i| url[i..].find('/').map(|j| i + j))
        .unwrap_or(0);
    match url[path_start..].rfind('@') {
        Some(at) => (&url[..path_start + at], Some(&url[path_start + at + 1..])),
        None => (url, None),
    }
}

/// Parses `name [extras] specifier ; markers` or `name [extras] @ url ; markers` (PEP 508).
fn parse_requirement(text: &str, hashes: Vec<Hash>) -> Result<Requirement<'_>, String> {
    let (body, markers) = match text.split_once(';') {
        Some((b, m)) => (b.trim(), Some(m.trim()).filter(|m| !m.is_empty())),
        None => (text.trim(), None),
    };
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(body.len());
    let raw_name = &body[..name_end];
    if raw_name.is_empty() || !raw_name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("no package name".to_owned());
    }
    let mut rest = body[name_end..].trim_start();
    let mut extras = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| "`[` of the extras is not closed".to_owned())?;
        extras = after[..close]
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        rest = after[close + 1..].trim_start();
    }
    // `name ==1.0 @ git+url` is not PEP 508 but is found in the wild: keep both parts.
    let (spec, url) = match rest.split_once('@') {
        Some((s, u)) if u.contains(':') || u.trim_start().starts_with('.') => {
            (s.trim(), Some(u.trim()))
        }
        _ => (rest, None),
    };
    let spec = spec
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(spec.trim());
    let specifier = spec.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Requirement {
        raw_name,
        extras,
        specifier,
        url,
        markers,
        hashes,
    })
}

/// The exact version a specifier pins (`== 1.0`, `===1.0`), `None` for ranges and wildcards;
/// `Err` when a clause cannot be read.
fn pinned_version(specifier: &str) -> Result<Option<&str>, String> {
    if specifier.is_empty() {
        return Ok(None);
    }
    let mut pin = None;
    for clause in specifier.split(',') {
        let clause = clause.trim();
        let op_end = clause
            .find(|c: char| !matches!(c, '=' | '<' | '>' | '!' | '~'))
            .unwrap_or(clause.len());
        let (op, version) = (&clause[..op_end], clause[op_end..].trim());
        if !matches!(op, "==" | "===" | "!=" | "<=" | ">=" | "<" | ">" | "~=") {
            return Err(format!("`{clause}` has no comparison operator"));
        }
        if version.is_empty() {
            return Err(format!("`{clause}` has no version"));
        }
        if !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!' | '-' | '_'))
        {
            return Err(format!("`{version}` is not a version"));
        }
        if matches!(op, "==" | "===") && !version.contains('*') {
            if pin.is_some_and(|p| p != version) {
                return Ok(None);
            }
            pin = Some(version);
        }
    }
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_found_only_for_exact_versions() {
        assert_eq!(pinned_version("== 1.0").ok().flatten(), Some("1.0"));
        assert_eq!(pinned_version("===1.0").ok().flatten(), Some("1.0"));
        assert_eq!(pinned_version("== 2.8.*").ok().flatten(), None);
        assert_eq!(pinned_version(">= 1, < 2").ok().flatten(), None);
        assert!(pinned_version("==").is_err());
    }

    #[test]
    fn development_files_are_recognised_by_name() {
        for dev in [
            "requirements-dev.txt",
            "a/test-requirements.txt",
            "requirements/lint.txt",
            "requirements_tests.txt",
        ] {
            assert!(is_development_file(dev), "{dev}");
        }
        for prod in [
            "requirements.txt",
            "requirements/base.txt",
            "requirements-prod.txt",
            "devtools.txt",
        ] {
            assert!(!is_development_file(prod), "{prod}");
        }
    }

    #[test]
    fn git_rev_is_split_after_the_host() {
        assert_eq!(
            split_git_rev("https://github.com/owner/repo@releases/tag/v3.7.1"),
            ("https://github.com/owner/repo", Some("releases/tag/v3.7.1"))
        );
        assert_eq!(
            split_git_rev("ssh://git@github.com/o/r"),
            ("ssh://git@github.com/o/r", None)
        );
    }
}
