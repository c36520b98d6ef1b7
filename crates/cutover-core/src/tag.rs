//! Release tags: a `tag_format` such as `v{version}` or `api-v{version}` turns versions into tag
//! names and back, and picks releases out of a repository's tags by SemVer order (never by date).

use semver::Version;
use std::fmt;

/// A compiled `tag_format`: the text before and after the one `{version}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFormat {
    prefix: String,
    suffix: String,
}

/// Why a `tag_format` or a tag is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// The format has no (or more than one) `{version}`.
    #[error(
        "tag_format `{format}` must contain `{{version}}` exactly once (found it {count} times); e.g. `v{{version}}` or `api-v{{version}}`"
    )]
    Placeholder {
        /// The format as given.
        format: String,
        /// How often `{version}` occurred.
        count: usize,
    },
    /// The format would make tag names git refuses.
    #[error("tag_format `{format}` contains `{found}`, which git does not allow in a tag name")]
    InvalidCharacter {
        /// The format as given.
        format: String,
        /// The offending text.
        found: String,
    },
    /// A tag that matches the format's prefix and suffix, starts like a version, but is not SemVer.
    #[error(
        "tag `{tag}` looks like a release of format `{format}` but `{version}` is not a SemVer version ({reason}); hint: give it a full version such as `1.2.0`, delete the tag, or change tag_format"
    )]
    NotSemver {
        /// The tag name.
        tag: String,
        /// The format as given.
        format: String,
        /// The part that should have been a version.
        version: String,
        /// What the SemVer parser said.
        reason: String,
    },
}

impl TagFormat {
    /// Compiles a format; it must contain `{version}` exactly once.
    pub fn new(format: &str) -> Result<Self, TagError> {
        let count = format.matches("{version}").count();
        if count != 1 {
            return Err(TagError::Placeholder {
                format: format.to_owned(),
                count,
            });
        }
        for bad in [" ", "~", "^", ":", "?", "*", "[", "\\", "..", "@{"] {
            if format.contains(bad) {
                return Err(TagError::InvalidCharacter {
                    format: format.to_owned(),
                    found: bad.to_owned(),
                });
            }
        }
        let (prefix, suffix) = format
            .split_once("{version}")
            .expect("counted exactly one placeholder above");
        Ok(TagFormat {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The tag name of a version.
    pub fn format(&self, version: &Version) -> String {
        format!("{}{}{}", self.prefix, version, self.suffix)
    }

    /// The version a tag stands for: `Ok(None)` when the tag is not of this format (ignored),
    /// an error when it looks like one (the version part starts with a digit) but is not SemVer.
    pub fn parse(&self, tag: &str) -> Result<Option<Version>, TagError> {
        let Some(middle) = tag
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_suffix(self.suffix.as_str()))
        else {
            return Ok(None);
        };
        if !middle.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(None);
        }
        match Version::parse(middle) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(TagError::NotSemver {
                tag: tag.to_owned(),
                format: self.to_string(),
                version: middle.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

impl fmt::Display for TagFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{version}}{}", self.prefix, self.suffix)
    }
}

/// A tag that is a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    /// The tag name.
    pub name: String,
    /// The version it stands for.
    pub version: Version,
}

/// The release tags among `tags`, sorted by SemVer order (lowest first). Tags of other formats are
/// ignored; a tag that looks like a release but is not SemVer is an error. When two tags name the
/// same version (`v1.0.0` and `v1.0.0+build`), SemVer precedence ties and the name decides, so the
/// order is deterministic.
pub fn release_tags<'a>(
    format: &TagFormat,
    tags: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ReleaseTag>, TagError> {
    let mut out = Vec::new();
    for tag in tags {
        if let Some(version) = format.parse(tag)? {
            out.push(ReleaseTag {
                name: tag.to_owned(),
                version,
            });
        }
    }
    out.sort_by(|a, b| {
        a.version
            .cmp_precedence(&b.version)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// The highest release, pre-releases included.
pub fn highest(releases: &[ReleaseTag]) -> Option<&ReleaseTag> {
    releases.last()
}

/// The highest final (non-pre-release) release: the base every next version is computed from.
pub fn highest_final(releases: &[ReleaseTag]) -> Option<&ReleaseTag> {
    releases.iter().rev().find(|r| r.version.pre.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn formats() {
        let f = TagFormat::new("v{version}").unwrap();
        assert_eq!(f.format(&v("1.2.3")), "v1.2.3");
        assert_eq!(f.parse("v1.2.3").unwrap(), Some(v("1.2.3")));
        assert_eq!(f.parse("v1.3.0-rc.1").unwrap(), Some(v("1.3.0-rc.1")));
        assert_eq!(f.parse("1.2.3").unwrap(), None);
        assert_eq!(f.parse("very-old").unwrap(), None);
        assert_eq!(f.parse("api-v1.2.3").unwrap(), None);
        let err = f.parse("v1.2").unwrap_err();
        assert!(
            err.to_string().contains("`v1.2` looks like a release"),
            "{err}"
        );

        let api = TagFormat::new("api-v{version}").unwrap();
        assert_eq!(api.parse("api-v0.4.0").unwrap(), Some(v("0.4.0")));
        assert_eq!(api.parse("v0.4.0").unwrap(), None);
        let suffix = TagFormat::new("release/{version}/final").unwrap();
        assert_eq!(
            suffix.parse("release/2.0.0/final").unwrap(),
            Some(v("2.0.0"))
        );
        assert_eq!(suffix.to_string(), "release/{version}/final");
    }

    #[test]
    fn bad_formats() {
        assert!(matches!(
            TagFormat::new("v"),
            Err(TagError::Placeholder { count: 0, .. })
        ));
        assert!(matches!(
            TagFormat::new("{version}-{version}"),
            Err(TagError::Placeholder { count: 2, .. })
        ));
        assert!(matches!(
            TagFormat::new("v {version}"),
            Err(TagError::InvalidCharacter { .. })
        ));
    }

    #[test]
    fn highest_by_semver_not_by_name_or_order() {
        let f = TagFormat::new("v{version}").unwrap();
        let tags = [
            "v1.10.0",
            "v1.9.0",
            "v2.0.0-rc.1",
            "v2.0.0-rc.10",
            "v2.0.0-rc.2",
            "docs-1",
            "v1.2.0",
            "latest",
        ];
        let releases = release_tags(&f, tags).unwrap();
        let names: Vec<&str> = releases.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "v1.2.0",
                "v1.9.0",
                "v1.10.0",
                "v2.0.0-rc.1",
                "v2.0.0-rc.2",
                "v2.0.0-rc.10"
            ]
        );
        assert_eq!(highest(&releases).unwrap().name, "v2.0.0-rc.10");
        assert_eq!(highest_final(&releases).unwrap().name, "v1.10.0");
        assert!(highest(&[]).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(tag in "\\PC{0,30}", fmt in "[a-z/-]{0,5}\\{version\\}[a-z/-]{0,5}") {
            let f = TagFormat::new(&fmt).unwrap();
            let _ = f.parse(&tag);
        }

        #[test]
        fn format_parse_roundtrip(major in 0u64..1000, minor in 0u64..1000, patch in 0u64..1000,
                                  pre in prop::option::of("[a-z]{1,5}\\.[1-9][0-9]{0,2}"),
                                  fmt in "[a-z/-]{0,5}\\{version\\}[a-z/-]{0,5}") {
            let f = TagFormat::new(&fmt).unwrap();
            let mut version = Version::new(major, minor, patch);
            if let Some(pre) = pre {
                version.pre = semver::Prerelease::new(&pre).unwrap();
            }
            prop_assert_eq!(f.parse(&f.format(&version)).unwrap(), Some(version));
        }
    }
}
