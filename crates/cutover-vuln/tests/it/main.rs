//! cutover-vuln's integration tests (one test binary for the crate).

mod bom_scan;
mod first_run;
mod import_and_match;
mod match_index;
mod properties;
mod version_ordering;
