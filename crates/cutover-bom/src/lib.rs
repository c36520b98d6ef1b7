//! Bills of materials: every dependency from a project's lockfiles, offline, with licenses, as
//! CycloneDX 1.6 and SPDX 2.3 JSON; license policy checks and BOM diffs.
//!
//! The API the binary uses:
//! - [`discover_and_parse`]`(root) -> Bom`: walks the project (`.gitignore` respected;
//!   `node_modules`, `vendor`, `target` and test-data folders skipped), parses every lockfile
//!   ([`lockfile::LockfileKind`]), and keeps per-file failures in [`Bom::files`].
//! - [`Bom::to_cyclonedx_json`] / [`Bom::to_spdx_json`]: deterministic documents
//!   (`SOURCE_DATE_EPOCH`, else [`Bom::created`]; content-derived serial number / namespace).
//! - [`policy::check`]`(&Bom, &LicensePolicy) -> Vec<Violation>`; [`diff()`]`(&Bom, &Bom) -> BomDiff`;
//!   [`Bom::summary`]; [`Bom::from_cyclonedx_json`] to read a BOM file back.

pub mod bom;
pub mod cyclonedx;
pub mod diff;
pub mod gitrev;
pub mod license;
pub mod lockfile;
pub mod model;
pub mod policy;
pub mod purl;
mod spdx_json;
pub mod summary;
pub mod version;

pub use bom::{
    Bom, BomComponent, DiscoverOptions, LockfileReport, discover_and_parse, discover_and_parse_with,
};
pub use diff::{BomDiff, diff};
pub use policy::{LicensePolicy, Violation};
pub use summary::Summary;
