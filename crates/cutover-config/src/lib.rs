//! cutover.toml: model, strict loading with precise errors, JSON schema
