//! CycloneDX 1.6 JSON: writing a [`Bom`] (deterministic: sorted, content-derived serial number,
//! `SOURCE_DATE_EPOCH`) and reading one back for `bom diff`.

use crate::bom::{Bom, BomComponent};
use crate::license::{Acknowledgement, LicenseInfo};
use crate::model::{Component, Ecosystem, Resolution, Scope, Source};
use crate::purl::{Purl, ecosystem_of_type};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The bom-ref of the project itself (`metadata.component`).
pub const PROJECT_REF: &str = "cutover:project";

/// An RFC 3339 UTC timestamp for `epoch` seconds.
pub(crate) fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A name-based UUID (version 5 layout, SHA-256 truncated) of `content`, so the same BOM content
/// always gets the same serial number.
pub(crate) fn content_uuid(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn ecosystem_name(e: Ecosystem) -> &'static str {
    match e {
        Ecosystem::Cargo => "crates.io",
        Ecosystem::Npm => "npm",
        Ecosystem::PyPI => "PyPI",
        Ecosystem::Go => "Go",
        Ecosystem::RubyGems => "RubyGems",
        Ecosystem::Maven => "Maven",
        Ecosystem::NuGet => "NuGet",
        Ecosystem::Packagist => "Packagist",
    }
}

fn licenses_json(l: &LicenseInfo) -> Value {
    let ack = match l.acknowledgement {
        Acknowledgement::Declared => "declared",
        Acknowledgement::Concluded => "concluded",
    };
    match &l.expression {
        Some(e) => json!([{ "expression": e, "acknowledgement": ack }]),
        None => json!([{ "license": { "name": l.raw, "acknowledgement": ack } }]),
    }
}

fn component_json(bc: &BomComponent) -> Value {
    let c = &bc.component;
    let mut m = Map::new();
    m.insert("type".into(), json!("library"));
    m.insert("bom-ref".into(), json!(bc.bom_ref));
    if let Some(ns) = &c.namespace
        && c.ecosystem != Ecosystem::Go
    {
        m.insert("group".into(), json!(ns));
    }
    m.insert("name".into(), json!(c.name));
    if !c.version.is_empty() {
        m.insert("version".into(), json!(c.version));
    }
    m.insert(
        "scope".into(),
        json!(match c.scope {
            Scope::Required => "required",
            Scope::Optional => "optional",
            Scope::Excluded => "excluded",
        }),
    );
    if !c.hashes.is_empty() {
        let hashes: Vec<Value> = c
            .hashes
            .iter()
            .map(|h| json!({ "alg": h.alg, "content": h.hex }))
            .collect();
        m.insert("hashes".into(), Value::Array(hashes));
    }
    if let Some(l) = &bc.license {
        m.insert("licenses".into(), licenses_json(l));
    }
    m.insert("purl".into(), json!(bc.purl));
    match &c.source {
        Source::Git { url, .. } => {
            m.insert(
                "externalReferences".into(),
                json!([{ "type": "vcs", "url": url }]),
            );
        }
        Source::Url { url } => {
            m.insert(
                "externalReferences".into(),
                json!([{ "type": "distribution", "url": url }]),
            );
        }
        _ => {}
    }
    let mut props: Vec<Value> = vec![
        json!({ "name": "cutover:ecosystem", "value": ecosystem_name(c.ecosystem) }),
        json!({ "name": "cutover:manifest", "value": c.manifest }),
        json!({ "name": "cutover:direct", "value": c.direct.to_string() }),
        json!({ "name": "cutover:source", "value": c.source.id() }),
    ];
    if c.resolution != Resolution::Resolved {
        let r = match c.resolution {
            Resolution::Declared => "declared",
            _ => "unresolved",
        };
        props.push(json!({ "name": "cutover:resolution", "value": r }));
    }
    if let Some(l) = &bc.license {
        props.push(json!({ "name": "cutover:license:origin", "value": l.origin }));
        if l.expression.as_deref() != Some(l.raw.as_str()) {
            props.push(json!({ "name": "cutover:license:raw", "value": l.raw }));
        }
    }
    for (k, v) in &c.properties {
        props.push(json!({ "name": k, "value": v }));
    }
    m.insert("properties".into(), Value::Array(props));
    Value::Object(m)
}

impl Bom {
    /// The BOM as CycloneDX 1.6 JSON (pretty, with a final newline). Byte-identical for the same
    /// BOM and creation time.
    pub fn to_cyclonedx_json(&self) -> String {
        let components: Vec<Value> = self.components.iter().map(component_json).collect();
        let mut deps: Vec<Value> = Vec::with_capacity(self.components.len() + 1);
        let mut direct: Vec<&str> = self
            .components
            .iter()
            .filter(|c| c.component.direct)
            .map(|c| c.bom_ref.as_str())
            .collect();
        direct.sort_unstable();
        deps.push(json!({ "ref": PROJECT_REF, "dependsOn": direct }));
        for c in &self.components {
            deps.push(json!({ "ref": c.bom_ref, "dependsOn": c.dependencies }));
        }
        let mut project = Map::new();
        project.insert("type".into(), json!("application"));
        project.insert("bom-ref".into(), json!(PROJECT_REF));
        project.insert("name".into(), json!(self.name));
        if let Some(v) = &self.version {
            project.insert("version".into(), json!(v));
        }
        let mut files: Vec<Value> = Vec::new();
        for f in &self.files {
            let status = match &f.error {
                Some(e) => format!("error: {e}"),
                None => format!("{} components", f.components),
            };
            files.push(json!({ "name": format!("cutover:lockfile:{}", f.path), "value": status }));
        }
        let body = json!({
            "components": components,
            "dependencies": deps,
            "project": project,
            "files": files,
        });
        let serial = content_uuid(body.to_string().as_bytes());
        let doc = json!({
            "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": format!("urn:uuid:{serial}"),
            "version": 1,
            "metadata": {
                "timestamp": rfc3339(self.effective_created()),
                "lifecycles": [{ "phase": "pre-build" }],
                "tools": { "components": [{
                    "type": "application",
                    "name": "cutover",
                    "version": env!("CARGO_PKG_VERSION"),
                }]},
                "component": body["project"],
                "properties": body["files"],
            },
            "components": body["components"],
            "dependencies": body["dependencies"],
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a CycloneDX JSON BOM (ours or another tool's) back, for `bom diff`. Components
    /// without a purl of a known type are skipped.
    pub fn from_cyclonedx_json(text: &str) -> Result<Bom, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON at line {}: {e}", e.line()))?;
        if v.get("bomFormat").and_then(Value::as_str) != Some("CycloneDX") {
            return Err("not a CycloneDX BOM (`bomFormat` is not \"CycloneDX\")".to_owned());
        }
        let mut out = Vec::new();
        let mut stack: Vec<&Value> = v
            .get("components")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        while let Some(c) = stack.pop() {
            if let Some(nested) = c.get("components").and_then(Value::as_array) {
                stack.extend(nested.iter());
            }
            let Some(purl_s) = c.get("purl").and_then(Value::as_str) else {
                continue;
            };
            let Some(p) = Purl::parse(purl_s) else {
                continue;
            };
            let Some(ecosystem) = ecosystem_of_type(&p.ty) else {
                continue;
            };
            let props: BTreeMap<String, String> = c
                .get("properties")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((
                                p.get("name")?.as_str()?.to_owned(),
                                p.get("value")?.as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (namespace, name) = match ecosystem {
                Ecosystem::Go => (
                    None,
                    match &p.namespace {
                        Some(ns) => format!("{ns}/{}", p.name),
                        None => p.name.clone(),
                    },
                ),
                _ => (p.namespace.clone(), p.name.clone()),
            };
            let license = c
                .get("licenses")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|l| {
                    let ack = match l
                        .get("acknowledgement")
                        .or_else(|| l.get("license").and_then(|x| x.get("acknowledgement")))
                        .and_then(Value::as_str)
                    {
                        Some("concluded") => Acknowledgement::Concluded,
                        _ => Acknowledgement::Declared,
                    };
                    if let Some(e) = l.get("expression").and_then(Value::as_str) {
                        return Some(LicenseInfo {
                            raw: e.to_owned(),
                            expression: Some(e.to_owned()),
                            acknowledgement: ack,
                            origin: "bom".to_owned(),
                        });
                    }
                    let lic = l.get("license")?;
                    let raw = lic
                        .get("id")
                        .or_else(|| lic.get("name"))
                        .and_then(Value::as_str)?;
                    Some(LicenseInfo {
                        raw: raw.to_owned(),
                        expression: lic.get("id").and_then(Value::as_str).map(str::to_owned),
                        acknowledgement: ack,
                        origin: "bom".to_owned(),
                    })
                });
            let scope = match c.get("scope").and_then(Value::as_str) {
                Some("optional") => Scope::Optional,
                Some("excluded") => Scope::Excluded,
                _ => Scope::Required,
            };
            let manifest = props.get("cutover:manifest").cloned().unwrap_or_default();
            let bom_ref = c
                .get("bom-ref")
                .and_then(Value::as_str)
                .unwrap_or(purl_s)
                .to_owned();
            out.push(BomComponent {
                component: Component {
                    ecosystem,
                    namespace,
                    name,
                    version: p.version.clone().unwrap_or_default(),
                    resolution: Resolution::Resolved,
                    scope,
                    direct: props.get("cutover:direct").map(String::as_str) == Some("true"),
                    source: Source::Registry,
                    hashes: Vec::new(),
                    license: None,
                    manifest,
                    depends_on: Vec::new(),
                    properties: BTreeMap::new(),
                },
                bom_ref,
                purl: purl_s.to_owned(),
                license,
                dependencies: Vec::new(),
            });
        }
        out.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
        let name = v
            .pointer("/metadata/component/name")
            .and_then(Value::as_str)
            .unwrap_or("bom")
            .to_owned();
        Ok(Bom {
            name,
            version: v
                .pointer("/metadata/component/version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            components: out,
            files: Vec::new(),
            created: None,
        })
    }
}
