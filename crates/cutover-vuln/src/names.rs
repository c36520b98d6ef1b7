//! Package-name normalisation per ecosystem, so that the index finds `Django` for `django`,
//! `zope.interface` for `zope-interface`, and so on.

/// The ecosystem part of an OSV ecosystem string (`"Debian:12"` → `"Debian"`).
pub fn base_ecosystem(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or(ecosystem).trim()
}

/// The normalised form of `name` in OSV ecosystem `ecosystem`, the key of the index.
///
/// - PyPI: PEP 503 (lower case, runs of `-`, `_`, `.` become one `-`).
/// - npm: lower case, scope kept (`@Scope/Pkg` → `@scope/pkg`); legacy upper-case names are unique
///   on the registry only case-insensitively.
/// - Maven: `groupId:artifactId`, case kept, whitespace around parts trimmed.
/// - Go: the module path as is (case-sensitive), without a trailing `/`.
/// - crates.io, NuGet, Packagist, Hex, Pub: lower case (their registries are case-insensitive).
/// - RubyGems and others: as is.
pub fn normalize(ecosystem: &str, name: &str) -> String {
    let name = name.trim();
    match base_ecosystem(ecosystem) {
        "PyPI" => {
            let mut out = String::with_capacity(name.len());
            let mut in_sep = false;
            for c in name.chars() {
                if matches!(c, '-' | '_' | '.') {
                    if !in_sep {
                        out.push('-');
                    }
                    in_sep = true;
                } else {
                    out.extend(c.to_lowercase());
                    in_sep = false;
                }
            }
            out
        }
        "Maven" => match name.split_once(':') {
            Some((g, a)) => format!("{}:{}", g.trim(), a.trim()),
            None => name.to_string(),
        },
        "Go" => name.trim_end_matches('/').to_string(),
        "npm" | "crates.io" | "NuGet" | "Packagist" | "Hex" | "Pub" => name.to_lowercase(),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_per_ecosystem() {
        assert_eq!(normalize("PyPI", "Zope.Interface"), "zope-interface");
        assert_eq!(normalize("PyPI", "foo__bar-.baz"), "foo-bar-baz");
        assert_eq!(normalize("npm", "@Babel/Core"), "@babel/core");
        assert_eq!(
            normalize("Maven", "org.apache.logging.log4j : log4j-core"),
            "org.apache.logging.log4j:log4j-core"
        );
        assert_eq!(
            normalize("Go", "github.com/BurntSushi/toml/"),
            "github.com/BurntSushi/toml"
        );
        assert_eq!(normalize("NuGet", "Newtonsoft.Json"), "newtonsoft.json");
        assert_eq!(normalize("RubyGems", "Rack"), "Rack");
        assert_eq!(normalize("Debian:12", "openssl"), "openssl");
    }
}
