//! SPDX 2.3 JSON writer: one package per component, `DEPENDS_ON` relationships, purls as external
//! references, non-SPDX licenses as `LicenseRef-` with their extracted text. Deterministic.

use crate::bom::{Bom, BomComponent};
use crate::cyclonedx::{content_uuid, rfc3339};
use crate::license::Acknowledgement;
use crate::model::{Scope, Source};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

const PROJECT_ID: &str = "SPDXRef-Project";

/// SPDX identifiers allow letters, digits, `.` and `-` only.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_owned()
}

fn spdx_id(bc: &BomComponent) -> String {
    let h = hex::encode(&Sha256::digest(bc.bom_ref.as_bytes())[..4]);
    let full = match &bc.component.namespace {
        Some(ns) => format!("{ns}-{}", bc.component.name),
        None => bc.component.name.clone(),
    };
    format!(
        "SPDXRef-Package-{}-{}-{h}",
        sanitize(&full),
        sanitize(&bc.component.version)
    )
}

fn checksum_alg(alg: &str) -> Option<&'static str> {
    Some(match alg {
        "SHA-1" => "SHA1",
        "SHA-256" => "SHA256",
        "SHA-384" => "SHA384",
        "SHA-512" => "SHA512",
        "MD5" => "MD5",
        _ => return None,
    })
}

impl Bom {
    /// The BOM as SPDX 2.3 JSON (pretty, final newline). Byte-identical for the same BOM and
    /// creation time; the document namespace is derived from the content.
    pub fn to_spdx_json(&self) -> String {
        let mut extracted: BTreeMap<String, String> = BTreeMap::new();
        let mut packages: Vec<Value> = Vec::with_capacity(self.components.len() + 1);
        let mut relationships: Vec<Value> = Vec::new();
        let mut project = Map::new();
        project.insert("name".into(), json!(self.name));
        project.insert("SPDXID".into(), json!(PROJECT_ID));
        if let Some(v) = &self.version {
            project.insert("versionInfo".into(), json!(v));
        }
        project.insert("downloadLocation".into(), json!("NOASSERTION"));
        project.insert("filesAnalyzed".into(), json!(false));
        project.insert("licenseConcluded".into(), json!("NOASSERTION"));
        project.insert("licenseDeclared".into(), json!("NOASSERTION"));
        project.insert("copyrightText".into(), json!("NOASSERTION"));
        project.insert("primaryPackagePurpose".into(), json!("APPLICATION"));
        packages.push(Value::Object(project));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": PROJECT_ID,
        }));
        let ids: BTreeMap<&str, String> = self
            .components
            .iter()
            .map(|c| (c.bom_ref.as_str(), spdx_id(c)))
            .collect();
        for bc in &self.components {
            let c = &bc.component;
            let id = ids[bc.bom_ref.as_str()].clone();
            let mut p = Map::new();
            let full = match &c.namespace {
                Some(ns) if c.ecosystem == crate::model::Ecosystem::Maven => {
                    format!("{ns}:{}", c.name)
                }
                Some(ns) => format!("{ns}/{}", c.name),
                None => c.name.clone(),
            };
            p.insert("name".into(), json!(full));
            p.insert("SPDXID".into(), json!(id));
            if !c.version.is_empty() {
                p.insert("versionInfo".into(), json!(c.version));
            }
            let download = match &c.source {
                Source::Git { url, rev } => {
                    let u = if url.starts_with("git+") || url.starts_with("git://") {
                        url.clone()
                    } else {
                        format!("git+{url}")
                    };
                    match rev {
                        Some(r) => format!("{u}@{r}"),
                        None => u,
                    }
                }
                Source::Url { url } => url.clone(),
                _ => "NOASSERTION".to_owned(),
            };
            p.insert("downloadLocation".into(), json!(download));
            p.insert("filesAnalyzed".into(), json!(false));
            let checksums: Vec<Value> = c
                .hashes
                .iter()
                .filter_map(|h| {
                    Some(json!({ "algorithm": checksum_alg(&h.alg)?, "checksumValue": h.hex }))
                })
                .collect();
            if !checksums.is_empty() {
                p.insert("checksums".into(), Value::Array(checksums));
            }
            let (concluded, declared) = match &bc.license {
                None => ("NOASSERTION".to_owned(), "NOASSERTION".to_owned()),
                Some(l) => {
                    let expr = match &l.expression {
                        Some(e) => e.clone(),
                        None => {
                            let id = format!("LicenseRef-{}", sanitize(&l.raw));
                            let id = if id == "LicenseRef-" {
                                "LicenseRef-unknown".to_owned()
                            } else {
                                id
                            };
                            extracted.entry(id.clone()).or_insert_with(|| l.raw.clone());
                            id
                        }
                    };
                    for part in expr.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                        if part.starts_with("LicenseRef-") {
                            extracted
                                .entry(part.to_owned())
                                .or_insert_with(|| l.raw.clone());
                        }
                    }
                    match (l.acknowledgement, &l.expression) {
                        (Acknowledgement::Declared, Some(_)) => ("NOASSERTION".to_owned(), expr),
                        (Acknowledgement::Concluded, Some(_)) => (expr, "NOASSERTION".to_owned()),
                        (_, None) => ("NOASSERTION".to_owned(), expr),
                    }
                }
            };
            p.insert("licenseConcluded".into(), json!(concluded));
            p.insert("licenseDeclared".into(), json!(declared));
            if let Some(l) = &bc.license
                && l.expression.as_deref() != Some(l.raw.as_str())
            {
                p.insert(
                    "licenseComments".into(),
                    json!(format!("as found ({}): {}", l.origin, l.raw)),
                );
            }
            p.insert("copyrightText".into(), json!("NOASSERTION"));
            p.insert(
                "externalRefs".into(),
                json!([{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": bc.purl }]),
            );
            p.insert("primaryPackagePurpose".into(), json!("LIBRARY"));
            p.insert(
                "comment".into(),
                json!(format!(
                    "manifest: {}; {}; scope: {}",
                    c.manifest,
                    if c.direct { "direct" } else { "transitive" },
                    match c.scope {
                        Scope::Required => "required",
                        Scope::Optional => "optional",
                        Scope::Excluded => "excluded",
                    }
                )),
            );
            packages.push(Value::Object(p));
            if c.direct {
                let rel = if c.scope == Scope::Excluded {
                    json!({ "spdxElementId": id, "relationshipType": "DEV_DEPENDENCY_OF", "relatedSpdxElement": PROJECT_ID })
                } else {
                    json!({ "spdxElementId": PROJECT_ID, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": id })
                };
                relationships.push(rel);
            }
            for d in &bc.dependencies {
                if let Some(did) = ids.get(d.as_str()) {
                    relationships.push(json!({ "spdxElementId": id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": did }));
                }
            }
        }
        let extracted_json: Vec<Value> = extracted
            .iter()
            .map(|(id, text)| json!({ "licenseId": id, "extractedText": text, "name": text }))
            .collect();
        let content = json!({ "p": packages, "r": relationships, "e": extracted_json });
        let uuid = content_uuid(content.to_string().as_bytes());
        let mut doc = Map::new();
        doc.insert("spdxVersion".into(), json!("SPDX-2.3"));
        doc.insert("dataLicense".into(), json!("CC0-1.0"));
        doc.insert("SPDXID".into(), json!("SPDXRef-DOCUMENT"));
        doc.insert("name".into(), json!(format!("{}-bom", self.name)));
        doc.insert(
            "documentNamespace".into(),
            json!(format!(
                "https://spdx.org/spdxdocs/{}-{uuid}",
                sanitize(&self.name)
            )),
        );
        doc.insert(
            "creationInfo".into(),
            json!({
                "created": rfc3339(self.effective_created()),
                "creators": [format!("Tool: cutover-{}", env!("CARGO_PKG_VERSION"))],
            }),
        );
        doc.insert("documentDescribes".into(), json!([PROJECT_ID]));
        doc.insert("packages".into(), Value::Array(packages));
        doc.insert("relationships".into(), Value::Array(relationships));
        if !extracted_json.is_empty() {
            doc.insert(
                "hasExtractedLicensingInfos".into(),
                Value::Array(extracted_json),
            );
        }
        let mut s = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
        s.push('\n');
        s
    }
}
