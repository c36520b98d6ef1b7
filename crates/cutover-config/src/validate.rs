//! Rules across values, checked once the configuration is typed; each problem names the key it is at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use crate::error::{Seg, suggest};
use crate::freeze::FreezeSpan;
use crate::model::{
    Config, EnvHost, Environment, Probe, SMOKE_PLACEHOLDERS, START_PLACEHOLDERS, SlotPorts,
    Strategy,
};
use crate::types::{Argv, TemplateError, check_template};

/// A broken rule, at a key path.
#[derive(Debug)]
pub(crate) struct Problem {
    pub path: Vec<Seg>,
    pub message: String,
    pub label: String,
    pub hint: Option<String>,
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}
impl From<&String> for Seg {
    fn from(s: &String) -> Self {
        Seg::Key(s.clone())
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

/// Like `path!`, as an array for functions that only borrow the path.
macro_rules! segs {
    ($($seg:expr),* $(,)?) => { [$(Seg::from($seg)),*] };
}

fn problem(path: Vec<Seg>, message: impl Into<String>, label: impl Into<String>) -> Problem {
    Problem {
        path,
        message: message.into(),
        label: label.into(),
        hint: None,
    }
}

impl Problem {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

type R = Result<(), Problem>;

fn template(path: Vec<Seg>, s: &str, allowed: &[&str], required: Option<&str>) -> R {
    let allowed_list = allowed
        .iter()
        .map(|a| format!("{{{a}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    match check_template(s, allowed) {
        Ok(names) => {
            if let Some(req) = required
                && !names.iter().any(|n| n == req)
            {
                return Err(problem(
                    path,
                    format!("`{s}` does not contain `{{{req}}}`"),
                    format!("must contain {{{req}}}"),
                ));
            }
            Ok(())
        }
        Err(TemplateError::Unknown(name)) => {
            let cands: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            let p = problem(
                path,
                format!("unknown placeholder `{{{name}}}`"),
                format!("allowed placeholders: {allowed_list}"),
            );
            Err(match suggest(&name, &cands) {
                Some(h) => p.hint(h),
                None => p.hint("write `{{` and `}}` for literal braces"),
            })
        }
        Err(TemplateError::Unclosed) => Err(problem(
            path,
            format!("unclosed `{{` in `{s}`"),
            "every `{` opens a placeholder closed by `}`",
        )
        .hint("write `{{` for a literal brace")),
        Err(TemplateError::StrayClose) => Err(problem(
            path,
            format!("stray `}}` in `{s}`"),
            "`}` without a matching `{`",
        )
        .hint("write `}}` for a literal brace")),
    }
}

fn argv_templates(path: &[Seg], argv: &Argv, allowed: &[&str]) -> R {
    for (i, arg) in argv.as_slice().iter().enumerate() {
        let mut p = path.to_vec();
        p.push(Seg::Index(i));
        template(p, arg, allowed, None)?;
    }
    Ok(())
}

fn relative_path(path: Vec<Seg>, p: &Path, what: &str) -> R {
    if p.as_os_str().is_empty() {
        return Err(problem(
            path,
            format!("{what} is empty"),
            "expected a relative path",
        ));
    }
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(problem(
            path,
            format!("{what} `{}` leaves the project directory", p.display()),
            "expected a path relative to the project directory, without `..`",
        ));
    }
    Ok(())
}

fn env_names(path: &[Seg], env: &BTreeMap<String, String>) -> R {
    for name in env.keys() {
        env_name(path.to_vec(), name)?;
    }
    Ok(())
}

fn env_name(mut path: Vec<Seg>, name: &str) -> R {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        path.push(Seg::Key(name.to_string()));
        return Err(problem(
            path,
            format!("`{name}` is not a valid environment variable name"),
            "expected letters, digits and `_`, not starting with a digit",
        ));
    }
    Ok(())
}

fn positive(path: Vec<Seg>, d: &crate::types::Duration) -> R {
    if d.is_zero() {
        return Err(problem(
            path,
            "this duration must be longer than zero",
            "expected more than 0",
        ));
    }
    Ok(())
}

fn http_url(path: Vec<Seg>, url: &str) -> R {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(problem(
            path,
            format!("`{url}` is not an http(s) URL"),
            "expected a URL like https://example.com/path",
        )),
    }
}

fn email(path: Vec<Seg>, addr: &str) -> R {
    let ok = addr.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !addr.contains(char::is_whitespace)
    });
    if ok {
        Ok(())
    } else {
        Err(problem(
            path,
            format!("`{addr}` is not an email address"),
            "expected an address like team@example.com",
        ))
    }
}

fn listen_addr(path: &[Seg], s: &str) -> R {
    let bad = || {
        problem(
            path.to_vec(),
            format!("`{s}` is not a listen address"),
            "expected host:port, e.g. 127.0.0.1:8080 or [::]:8080",
        )
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn slot_ports(path: Vec<Seg>, p: &SlotPorts) -> R {
    if p.blue == p.green || p.blue == 0 || p.green == 0 {
        return Err(problem(
            path,
            "the blue and green slots need two different, non-zero ports",
            "expected e.g. { blue = 9101, green = 9102 }",
        ));
    }
    Ok(())
}

fn name_syntax(path: Vec<Seg>, name: &str, what: &str) -> R {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(problem(
            path,
            format!("{what} name `{name}` is not allowed"),
            "expected lowercase letters, digits, `-` and `_`",
        ))
    }
}

fn semver(path: Vec<Seg>, v: &str) -> R {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if ok {
        Ok(())
    } else {
        Err(problem(
            path,
            format!("`{v}` is not a SemVer version"),
            "expected MAJOR.MINOR.PATCH, e.g. 0.1.0",
        ))
    }
}

fn unique<'a>(
    items: impl Iterator<Item = (usize, &'a str)>,
    what: &str,
    path_of: impl Fn(usize) -> Vec<Seg>,
) -> R {
    let mut seen = BTreeSet::new();
    for (i, name) in items {
        if !seen.insert(name) {
            return Err(problem(
                path_of(i),
                format!("{what} `{name}` is defined twice"),
                "names must be unique",
            ));
        }
    }
    Ok(())
}

/// Checks every rule; returns the first broken one.
pub(crate) fn validate(c: &Config) -> R {
    // [project]
    if c.project.name.trim().is_empty() {
        return Err(problem(
            path!["project", "name"],
            "the project name is empty",
            "expected a name",
        ));
    }
    template(
        path!["project", "tag_format"],
        &c.project.tag_format,
        &["version"],
        Some("version"),
    )?;
    if c.project.main_branch.trim().is_empty()
        || c.project.main_branch.contains(char::is_whitespace)
    {
        return Err(problem(
            path!["project", "main_branch"],
            format!("`{}` is not a branch name", c.project.main_branch),
            "expected a git branch name such as `main`",
        ));
    }

    // [versioning]
    let v = &c.versioning;
    semver(path!["versioning", "initial"], &v.initial)?;
    if let Some(link) = &v.issue_link {
        template(path!["versioning", "issue_link"], link, &["id"], Some("id"))?;
    }
    template(
        path!["versioning", "changelog", "commit_message"],
        &v.changelog.commit_message,
        &["version"],
        None,
    )?;
    relative_path(
        path!["versioning", "changelog", "file"],
        &v.changelog.file,
        "the changelog file",
    )?;

    // [[packages]]
    unique(
        c.packages
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.name.as_str())),
        "package",
        |i| path!["packages", i, "name"],
    )?;
    for (i, p) in c.packages.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(problem(
                path!["packages", i, "name"],
                "the package name is empty",
                "expected a name",
            ));
        }
        relative_path(path!["packages", i, "path"], &p.path, "the package path")?;
        template(
            path!["packages", i, "tag_format"],
            &p.tag_format,
            &["version", "name"],
            Some("version"),
        )?;
    }
    let tag_prefixes: Vec<(usize, String)> = c
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.tag_format.replace("{name}", &p.name)))
        .collect();
    unique(
        tag_prefixes.iter().map(|(i, t)| (*i, t.as_str())),
        "package tag format",
        |i| path!["packages", i, "tag_format"],
    )?;

    // [[checks]]
    unique(
        c.checks
            .iter()
            .enumerate()
            .map(|(i, ch)| (i, ch.name.as_str())),
        "check",
        |i| path!["checks", i, "name"],
    )?;
    for (i, ch) in c.checks.iter().enumerate() {
        if ch.name.trim().is_empty() {
            return Err(problem(
                path!["checks", i, "name"],
                "the check name is empty",
                "expected a name",
            ));
        }
        positive(path!["checks", i, "timeout"], &ch.timeout)?;
        env_names(&segs!["checks", i, "env"], &ch.env)?;
        if let Some(w) = &ch.workdir {
            relative_path(path!["checks", i, "workdir"], w, "the working directory")?;
        }
    }

    // [build]
    if let Some(b) = &c.build {
        if b.artifact.is_empty() {
            return Err(problem(
                path!["build", "artifact"],
                "the build has no artifact paths",
                "expected at least one file or directory",
            )
            .hint("e.g. artifact = [\"target/release/hello\"]"));
        }
        for (i, a) in b.artifact.iter().enumerate() {
            relative_path(path!["build", "artifact", i], a, "the artifact path")?;
        }
        env_names(&segs!["build", "env"], &b.env)?;
        if let Some(w) = &b.workdir {
            relative_path(path!["build", "workdir"], w, "the working directory")?;
        }
    }

    // [service]
    if let Some(s) = &c.service {
        argv_templates(&segs!["service", "start"], &s.start, START_PLACEHOLDERS)?;
        for (i, smoke) in s.smoke.iter().enumerate() {
            argv_templates(&segs!["service", "smoke", i], smoke, SMOKE_PLACEHOLDERS)?;
        }
        env_names(&segs!["service", "env"], &s.env)?;
        for reserved in ["PORT", "CUTOVER_VERSION"] {
            if s.env.contains_key(reserved) || s.secrets.contains_key(reserved) {
                let section = if s.env.contains_key(reserved) {
                    "env"
                } else {
                    "secrets"
                };
                return Err(problem(
                    path!["service", section, reserved],
                    format!("`{reserved}` is set by cutover for every slot"),
                    "reserved variable",
                )
                .hint("use the {port} / {version} placeholders in `start` instead"));
            }
        }
        for name in s.secrets.keys() {
            env_name(path!["service", "secrets"], name)?;
            if s.env.contains_key(name) {
                return Err(problem(
                    path!["service", "secrets", name],
                    format!("`{name}` is set both in `service.env` and `service.secrets`"),
                    "defined twice",
                ));
            }
        }
        if let Some(h) = &s.health {
            positive(path!["service", "health", "interval"], &h.interval)?;
            positive(path!["service", "health", "timeout"], &h.timeout)?;
            if h.healthy_after == 0 || h.unhealthy_after == 0 {
                let key = if h.healthy_after == 0 {
                    "healthy_after"
                } else {
                    "unhealthy_after"
                };
                return Err(problem(
                    path!["service", "health", key],
                    format!("`{key}` must be at least 1"),
                    "expected 1 or more",
                ));
            }
            if let Probe::Command(argv) = &h.probe {
                argv_templates(
                    &segs!["service", "health", "command"],
                    argv,
                    START_PLACEHOLDERS,
                )?;
            }
        }
        if let Some(vp) = &s.version_probe
            && !vp.path.starts_with('/')
        {
            return Err(problem(
                path!["service", "version_probe", "path"],
                format!("version probe path `{}` must start with `/`", vp.path),
                "expected e.g. /version",
            ));
        }
        if s.keep_releases == 0 {
            return Err(problem(
                path!["service", "keep_releases"],
                "`keep_releases` must be at least 1",
                "expected 1 or more (2 or more keeps an instant rollback target)",
            ));
        }
        if let Some(p) = &s.ports {
            slot_ports(path!["service", "ports"], p)?;
        }
        if let Some(name) = &s.name {
            name_syntax(path!["service", "name"], name, "service")?;
        }
    }

    // [environments.*]
    if !c.environments.is_empty() && c.service.is_none() {
        let first = c.environments.keys().next().expect("checked non-empty");
        return Err(problem(
            path!["environments", first],
            "environments are configured but there is no [service] section",
            "deploying needs to know how to start the service",
        )
        .hint("add a [service] section with at least `start = [...]`"));
    }
    let names: Vec<String> = c.environments.keys().cloned().collect();
    for (name, env) in &c.environments {
        environment(name, env, &names)?;
    }
    promotion_cycles(c)?;
    shared_listen(c)?;

    // [notify]
    if let Some(n) = &c.notify {
        for (i, w) in n.webhook.iter().enumerate() {
            http_url(path!["notify", "webhook", i, "url"], &w.url)?;
        }
        for (i, r) in n.recipients.iter().enumerate() {
            email(path!["notify", "recipients", i], r)?;
        }
        if let Some(e) = &n.email {
            email(path!["notify", "email", "from"], &e.from)?;
            for (i, r) in e.to.iter().enumerate() {
                email(path!["notify", "email", "to", i], r)?;
            }
            if e.to.is_empty() && n.recipients.is_empty() {
                return Err(problem(
                    path!["notify", "email"],
                    "the email channel has no recipients",
                    "expected `to` here or `notify.recipients`",
                ));
            }
        }
    }

    // [licenses]
    let spdx_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
    };
    for (i, l) in c.licenses.allow.iter().enumerate() {
        if !spdx_ok(l) {
            return Err(problem(
                path!["licenses", "allow", i],
                format!("`{l}` is not an SPDX license identifier"),
                "expected an identifier such as MIT or Apache-2.0 (not an expression)",
            ));
        }
    }
    for (i, e) in c.licenses.exceptions.iter().enumerate() {
        if e.allow.is_empty() {
            return Err(problem(
                path!["licenses", "exceptions", i, "allow"],
                format!("the exception for `{}` allows no license", e.package),
                "expected at least one SPDX identifier",
            ));
        }
        for (j, l) in e.allow.iter().enumerate() {
            if !spdx_ok(l) {
                return Err(problem(
                    path!["licenses", "exceptions", i, "allow", j],
                    format!("`{l}` is not an SPDX license identifier"),
                    "expected an identifier such as MIT or Apache-2.0",
                ));
            }
        }
    }

    // [vulns]
    unique(
        c.vulns
            .ignore
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.id.as_str())),
        "ignored advisory",
        |i| path!["vulns", "ignore", i, "id"],
    )?;
    for (i, ig) in c.vulns.ignore.iter().enumerate() {
        if ig.reason.trim().is_empty() {
            return Err(problem(
                path!["vulns", "ignore", i, "reason"],
                format!("ignoring `{}` needs a reason", ig.id),
                "expected why it does not apply",
            ));
        }
    }

    // [database]
    if let Some(db) = &c.database {
        relative_path(
            path!["database", "migrations"],
            &db.migrations,
            "the migrations directory",
        )?;
        if let Some(d) = &db.drill
            && d.query.trim().is_empty()
        {
            return Err(problem(
                path!["database", "drill", "query"],
                "the drill query is empty",
                "expected a query that proves the restored copy is usable",
            ));
        }
    }
    Ok(())
}

fn environment(name: &str, env: &Environment, names: &[String]) -> R {
    let p = |k: &str| path!["environments", name, k];
    name_syntax(path!["environments", name], name, "environment")?;
    if env.hosts.is_empty() {
        return Err(problem(
            p("hosts"),
            format!("environment `{name}` has no hosts"),
            "expected at least one host",
        )
        .hint("use [\"local\"] for this machine"));
    }
    // A table host is located at its `name` key, a plain string at itself.
    let host_path = |i: usize| {
        let h: &EnvHost = &env.hosts[i];
        if h.listen.is_some() || h.ports.is_some() {
            path!["environments", name, "hosts", i, "name"]
        } else {
            path!["environments", name, "hosts", i]
        }
    };
    unique(
        env.hosts.iter().enumerate().map(|(i, h)| (i, h.name())),
        "host",
        host_path,
    )?;
    for (i, h) in env.hosts.iter().enumerate() {
        name_syntax(host_path(i), h.name(), "host")?;
        if let Some(l) = &h.listen {
            listen_addr(&segs!["environments", name, "hosts", i, "listen"], l)?;
        }
        if let Some(p) = &h.ports {
            slot_ports(path!["environments", name, "hosts", i, "ports"], p)?;
            if let Some(l) = h.listen.as_ref().or(env.listen.as_ref())
                && let Some(port) = l.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok())
                && (p.blue == port || p.green == port)
            {
                return Err(problem(
                    path!["environments", name, "hosts", i, "ports"],
                    format!(
                        "host `{}` uses port {port} both for its router ({l}) and for a slot",
                        h.name()
                    ),
                    "expected slot ports different from the listen port",
                ));
            }
        }
    }
    if let Some(l) = &env.listen {
        listen_addr(&p("listen"), l)?;
    }
    if let Some(u) = &env.url {
        http_url(p("url"), u)?;
    }
    match &env.promote_from {
        Some(from) if from == name => {
            return Err(problem(
                p("promote_from"),
                format!("environment `{name}` promotes from itself"),
                "expected another environment",
            ));
        }
        Some(from) if !names.iter().any(|n| n == from) => {
            let others: Vec<String> = names.iter().filter(|n| *n != name).cloned().collect();
            let pr = problem(
                p("promote_from"),
                format!("`promote_from` names `{from}`, which is not an environment"),
                if others.is_empty() {
                    "there is no other environment".to_string()
                } else {
                    format!(
                        "expected one of {}",
                        others
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            );
            return Err(match suggest(from, &others) {
                Some(h) => pr.hint(h),
                None => pr,
            });
        }
        _ => {}
    }
    if env.soak.is_some() && env.promote_from.is_none() {
        return Err(problem(
            p("soak"),
            format!("`soak` on `{name}` needs `promote_from`"),
            "soak is measured in the environment a release is promoted from",
        )
        .hint("add promote_from = \"staging\" (or remove `soak`)"));
    }
    if !env.approvers.is_empty() && env.approvals as usize > env.approvers.len() {
        return Err(problem(
            p("approvals"),
            format!(
                "`{name}` needs {} approvals but lists only {} approvers: the gate can never open",
                env.approvals,
                env.approvers.len()
            ),
            format!("at most {}", env.approvers.len()),
        ));
    }
    unique(
        env.approvers
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.as_str())),
        "approver",
        |i| path!["environments", name, "approvers", i],
    )?;
    // An approver who deploys cannot approve their own deployment: the others must suffice.
    if env.separate_approver
        && env.approvals > 0
        && !env.approvers.is_empty()
        && env.approvals as usize >= env.approvers.len()
    {
        let others = env.approvers.len() - 1;
        return Err(problem(
            p("approvals"),
            format!(
                "`{name}` needs {} approval{} from {} listed approvers with `separate_approver`: a deployment by {} could never be approved",
                env.approvals,
                if env.approvals == 1 { "" } else { "s" },
                env.approvers.len(),
                if others == 0 { format!("`{}`", env.approvers[0]) } else { "one of them".to_string() },
            ),
            format!("at most {others} (the approvers other than the deployer)"),
        )
        .hint("add another approver, lower `approvals`, or drop `separate_approver`"));
    }
    whole_week_freeze(name, env)?;
    if env.separate_approver && env.approvals == 0 {
        return Err(problem(
            p("separate_approver"),
            "`separate_approver` has no effect without `approvals`",
            "expected approvals = 1 or more",
        ));
    }
    match &env.strategy {
        Strategy::Canary(c) => {
            let sp = |i: usize| path!["environments", name, "strategy", "canary", i];
            if c.steps.is_empty() {
                return Err(problem(
                    path!["environments", name, "strategy", "canary"],
                    "a canary needs at least one step",
                    "expected e.g. [5, 25, 100]",
                ));
            }
            let mut prev = 0;
            for (i, s) in c.steps.iter().enumerate() {
                if *s == 0 || *s > 100 {
                    return Err(problem(
                        sp(i),
                        format!("canary step {s}% is not a percentage"),
                        "expected 1 to 100",
                    ));
                }
                if *s <= prev {
                    return Err(problem(
                        sp(i),
                        format!("canary steps must increase: {s}% comes after {prev}%"),
                        format!("expected more than {prev}"),
                    ));
                }
                prev = *s;
            }
            if prev != 100 {
                return Err(problem(
                    sp(c.steps.len() - 1),
                    format!("the last canary step is {prev}%, so the release would never take all traffic"),
                    "expected the last step to be 100",
                )
                .hint(format!("add 100: {:?}", [c.steps.as_slice(), &[100]].concat())));
            }
            if !(0.0..=1.0).contains(&c.max_error_rate) {
                return Err(problem(
                    path!["environments", name, "strategy", "max_error_rate"],
                    format!("max_error_rate {} is not a rate", c.max_error_rate),
                    "expected a fraction between 0 and 1, e.g. 0.01 for 1%",
                ));
            }
            if let Some(r) = c.max_latency_ratio
                && (r.is_nan() || r < 1.0)
            {
                return Err(problem(
                    path!["environments", name, "strategy", "max_latency_ratio"],
                    format!(
                        "max_latency_ratio {r} would fail a canary as fast as the stable release"
                    ),
                    "expected 1.0 or more, e.g. 1.5",
                ));
            }
            positive(path!["environments", name, "strategy", "step"], &c.step)?;
        }
        Strategy::Rolling(r) => {
            if r.max_unavailable == 0 {
                return Err(problem(
                    path![
                        "environments",
                        name,
                        "strategy",
                        "rolling",
                        "max_unavailable"
                    ],
                    "a rolling deployment with max_unavailable = 0 can never take a host out",
                    "expected 1 or more",
                ));
            }
        }
        Strategy::Recreate | Strategy::BlueGreen => {}
    }
    Ok(())
}

fn promotion_cycles(c: &Config) -> R {
    for start in c.environments.keys() {
        let mut seen = vec![start.clone()];
        let mut cur = start.clone();
        while let Some(from) = c
            .environments
            .get(&cur)
            .and_then(|e| e.promote_from.clone())
        {
            if from == *start {
                seen.push(from);
                return Err(problem(
                    path!["environments", start, "promote_from"],
                    format!("promotion cycle: {}", seen.join(" ← ")),
                    "promote_from chains must end at an environment that promotes from nothing",
                ));
            }
            if seen.contains(&from) {
                break;
            }
            seen.push(from.clone());
            cur = from;
        }
    }
    Ok(())
}

fn shared_listen(c: &Config) -> R {
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, env) in &c.environments {
        for (i, h) in env.hosts.iter().enumerate() {
            let (listen, at) = match (&h.listen, &env.listen) {
                (Some(l), _) => (l, path!["environments", name, "hosts", i, "listen"]),
                (None, Some(l)) => (l, path!["environments", name, "listen"]),
                (None, None) => continue,
            };
            let h = h.name();
            if let Some(other) = seen.insert((h.to_string(), listen.clone()), name.clone()) {
                return Err(problem(
                    at,
                    format!(
                        "environments `{other}` and `{name}` both listen on {listen} on host `{h}`"
                    ),
                    "expected a different address",
                ));
            }
        }
    }
    Ok(())
}

/// Freeze windows that together cover every minute of the week (in one time zone) would keep the
/// environment closed for good.
fn whole_week_freeze(name: &str, env: &Environment) -> R {
    const WEEK: usize = 7 * 1440;
    let mut by_zone: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for w in &env.freeze {
        let FreezeSpan::Weekly { from, to } = &w.span else {
            continue;
        };
        let covered = by_zone
            .entry(w.tz.as_str())
            .or_insert_with(|| vec![false; WEEK]);
        let (f, t) = (
            from.minute_of_week() as usize % WEEK,
            to.minute_of_week() as usize % WEEK,
        );
        let mut m = f;
        loop {
            covered[m] = true;
            m = (m + 1) % WEEK;
            if m == t {
                break;
            }
        }
    }
    for (tz, covered) in by_zone {
        if covered.iter().all(|c| *c) {
            return Err(problem(
                path!["environments", name, "freeze"],
                format!(
                    "the freeze windows of `{name}` cover the whole week ({tz}): the environment could never be deployed"
                ),
                "expected at least one minute of the week outside every window",
            )
            .hint("use `--override-freeze REASON` for a one-off deployment instead of a window that never ends"));
        }
    }
    Ok(())
}
