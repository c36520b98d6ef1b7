//! The next version: SemVer bump rules for Conventional Commits, 0.x rules, pre-releases,
//! `Release-As` footers, explicit overrides and the first release.
//!
//! Rules (decisions where the issue left room are marked *):
//! - breaking → major; `feat` → minor; `fix`, `perf` → patch; * reverts (`revert:` type or git's
//!   `Revert "…"`) → patch, because undoing a change changes behaviour; other types → no release.
//! - On 0.x (major version 0) a breaking change bumps what [`ZeroMajorBreaking`] says (default: minor,
//!   as Cargo and most 0.x projects read SemVer item 4); * a feature bumps what [`ZeroMinorFeature`]
//!   says (default: minor, so features stay distinguishable from fixes).
//! - The next version is computed from the last *final* release. With a pre-release identifier
//!   (`--pre rc`) the result is `<next>-rc.N`, where N is one more than the highest existing
//!   `<next>-rc.*` (1 if none): `1.2.3` + feat → `1.3.0-rc.1`, then `1.3.0-rc.2`; without `--pre`
//!   the same history gives the final `1.3.0`.
//! - A `Release-As: X.Y.Z` footer (the highest one wins) and an explicit override replace the
//!   computed version; both must be higher than the last final release. The override wins over
//!   `Release-As`; `--pre` applies to `Release-As` but not to an override (give the full version).
//! - Without any release, the first release is `initial` (with `--pre`, `initial-rc.N`).

use semver::{Prerelease, Version};
use serde::{Deserialize, Serialize};

/// How much a version moves. Ordered: `None < Patch < Minor < Major`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Nothing releasable.
    None,
    /// x.y.Z
    Patch,
    /// x.Y.0
    Minor,
    /// X.0.0
    Major,
}

impl Level {
    /// The level as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Patch => "patch",
            Level::Minor => "minor",
            Level::Major => "major",
        }
    }
}

/// On 0.x, what a breaking change bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroMajorBreaking {
    /// 0.4.2 → 0.5.0 (default).
    #[default]
    Minor,
    /// 0.4.2 → 1.0.0.
    Major,
}

/// On 0.x, what a feature bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroMinorFeature {
    /// 0.4.2 → 0.5.0 (default).
    #[default]
    Minor,
    /// 0.4.2 → 0.4.3.
    Patch,
}

/// The `[versioning]` rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// The first release's version.
    pub initial: Version,
    /// 0.x: what a breaking change bumps.
    pub zero_major_breaking: ZeroMajorBreaking,
    /// 0.x: what a feature bumps.
    pub zero_minor_feature: ZeroMinorFeature,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            initial: Version::new(0, 1, 0),
            zero_major_breaking: ZeroMajorBreaking::Minor,
            zero_minor_feature: ZeroMinorFeature::Minor,
        }
    }
}

/// What one commit contributes to the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impact {
    /// Commit id.
    pub commit: String,
    /// Lowercase Conventional Commit type (`revert` for git reverts); `None` if not conventional.
    pub kind: Option<String>,
    /// Breaking change.
    pub breaking: bool,
    /// A `Release-As` footer, already parsed.
    pub release_as: Option<Version>,
}

impl Impact {
    /// The SemVer level this commit asks for (before 0.x rules).
    pub fn level(&self) -> Level {
        if self.breaking {
            return Level::Major;
        }
        match self.kind.as_deref() {
            Some("feat") => Level::Minor,
            Some("fix" | "perf" | "revert") => Level::Patch,
            _ => Level::None,
        }
    }
}

/// Why the version moves: one entry per commit that mattered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Commit id.
    pub commit: String,
    /// The level this commit asked for (after the 0.x rules).
    pub bump: Level,
    /// In words: `breaking change`, `feat`, `fix`, `Release-As: 2.0.0`, …
    pub why: String,
}

/// How the next version was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BumpKind {
    /// Nothing to release.
    None,
    /// x.y.Z
    Patch,
    /// x.Y.0
    Minor,
    /// X.0.0
    Major,
    /// No release yet: `initial`.
    Initial,
    /// A `Release-As` footer.
    ReleaseAs,
    /// `--version`.
    Override,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Next {
    /// The next version (equal to the current one when `bump` is `none`).
    pub version: Version,
    /// How it was decided.
    pub bump: BumpKind,
    /// Which commits caused it.
    pub reasons: Vec<Reason>,
}

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The last final release, if any.
    pub current: Option<&'a Version>,
    /// Every released version (pre-releases included), to number the next pre-release.
    pub existing: &'a [Version],
    /// Pre-release identifier (`rc`, `beta`).
    pub pre: Option<&'a str>,
    /// Explicit version (`--version`).
    pub explicit: Option<&'a Version>,
}

/// Why no next version can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Override or `Release-As` not above the current release.
    #[error(
        "{source_name} asks for {requested}, which is not higher than the last release {current}; hint: choose a version above {current}"
    )]
    NotHigher {
        /// `--version` or `Release-As in <commit>`.
        source_name: String,
        /// What was asked for.
        requested: Version,
        /// The last final release.
        current: Version,
    },
    /// The requested version already exists.
    #[error("{version} is already released; hint: choose another version")]
    Exists {
        /// The version.
        version: Version,
    },
    /// `--pre` with something that is not a SemVer identifier.
    #[error(
        "pre-release identifier `{0}` is not valid: use ASCII letters, digits and `-` (e.g. `rc`, `beta`)"
    )]
    BadPre(String),
}

/// Applies a level to a version (pre-release and build metadata dropped).
pub fn apply(version: &Version, level: Level) -> Version {
    match level {
        Level::None => Version::new(version.major, version.minor, version.patch),
        Level::Patch => Version::new(version.major, version.minor, version.patch + 1),
        Level::Minor => Version::new(version.major, version.minor + 1, 0),
        Level::Major => Version::new(version.major + 1, 0, 0),
    }
}

/// The level after the 0.x rules.
pub fn effective(level: Level, current: &Version, rules: &Rules) -> Level {
    if current.major != 0 {
        return level;
    }
    match level {
        Level::Major => match rules.zero_major_breaking {
            ZeroMajorBreaking::Minor => Level::Minor,
            ZeroMajorBreaking::Major => Level::Major,
        },
        Level::Minor => match rules.zero_minor_feature {
            ZeroMinorFeature::Minor => Level::Minor,
            ZeroMinorFeature::Patch => Level::Patch,
        },
        other => other,
    }
}

fn why(impact: &Impact) -> String {
    if impact.breaking {
        "breaking change".to_owned()
    } else {
        impact.kind.clone().unwrap_or_else(|| "other".to_owned())
    }
}

/// Decides the next version from the commits since the last final release.
pub fn next(
    request: &Request<'_>,
    rules: &Rules,
    commits: &[Impact],
) -> Result<Next, VersionError> {
    if let Some(pre) = request.pre
        && (pre.is_empty()
            || !pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || pre.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(VersionError::BadPre(pre.to_owned()));
    }
    let check_higher = |requested: &Version, source_name: String| -> Result<(), VersionError> {
        if let Some(current) = request.current
            && requested.cmp_precedence(current) != std::cmp::Ordering::Greater
        {
            return Err(VersionError::NotHigher {
                source_name,
                requested: requested.clone(),
                current: current.clone(),
            });
        }
        if request.existing.iter().any(|v| v == requested) {
            return Err(VersionError::Exists {
                version: requested.clone(),
            });
        }
        Ok(())
    };

    if let Some(explicit) = request.explicit {
        check_higher(explicit, "--version".to_owned())?;
        return Ok(Next {
            version: explicit.clone(),
            bump: BumpKind::Override,
            reasons: vec![Reason {
                commit: String::new(),
                bump: Level::None,
                why: format!("--version {explicit}"),
            }],
        });
    }

    let release_as = commits
        .iter()
        .filter_map(|c| c.release_as.as_ref().map(|v| (c, v)))
        .max_by(|a, b| a.1.cmp_precedence(b.1));
    if let Some((commit, wanted)) = release_as {
        let base = Version::new(wanted.major, wanted.minor, wanted.patch);
        let version = with_pre(base, request)?;
        check_higher(
            &version,
            format!("Release-As in commit {}", short(&commit.commit)),
        )?;
        return Ok(Next {
            version,
            bump: BumpKind::ReleaseAs,
            reasons: vec![Reason {
                commit: commit.commit.clone(),
                bump: Level::None,
                why: format!("Release-As: {wanted}"),
            }],
        });
    }

    let Some(current) = request.current else {
        let version = with_pre(rules.initial.clone(), request)?;
        let reasons = commits
            .iter()
            .filter(|c| c.level() > Level::None)
            .map(|c| Reason {
                commit: c.commit.clone(),
                bump: c.level(),
                why: why(c),
            })
            .collect();
        return Ok(Next {
            version,
            bump: BumpKind::Initial,
            reasons,
        });
    };

    let mut level = Level::None;
    let mut reasons = Vec::new();
    for c in commits {
        let asked = effective(c.level(), current, rules);
        if asked > Level::None {
            level = level.max(asked);
            reasons.push(Reason {
                commit: c.commit.clone(),
                bump: asked,
                why: why(c),
            });
        }
    }
    // Only the commits that decided the level are reasons; the rest are just changes.
    reasons.retain(|r| r.bump == level);
    if level == Level::None {
        return Ok(Next {
            version: current.clone(),
            bump: BumpKind::None,
            reasons,
        });
    }
    let version = with_pre(apply(current, level), request)?;
    Ok(Next {
        version,
        bump: match level {
            Level::Major => BumpKind::Major,
            Level::Minor => BumpKind::Minor,
            Level::Patch => BumpKind::Patch,
            Level::None => BumpKind::None,
        },
        reasons,
    })
}

/// Adds `-<pre>.N` with N one above the highest existing pre-release of the same version and identifier.
fn with_pre(base: Version, request: &Request<'_>) -> Result<Version, VersionError> {
    let Some(pre) = request.pre else {
        return Ok(base);
    };
    let n = request
        .existing
        .iter()
        .filter(|v| v.major == base.major && v.minor == base.minor && v.patch == base.patch)
        .filter_map(|v| {
            let (id, num) = v.pre.as_str().rsplit_once('.')?;
            (id == pre).then(|| num.parse::<u64>().ok()).flatten()
        })
        .max()
        .map_or(1, |n| n + 1);
    let mut version = base;
    version.pre =
        Prerelease::new(&format!("{pre}.{n}")).map_err(|_| VersionError::BadPre(pre.to_owned()))?;
    Ok(version)
}

fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

#[cfg(test)]
mod tests;
