//! CycloneDX 1.5 JSON SBOMs, produced with the `cyclonedx-bom` crate (the CycloneDX project's
//! own Rust model and serializer).

use std::collections::HashSet;

use cyclonedx_bom::models::component::Classification;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::{Tool, Tools};
use cyclonedx_bom::prelude::*;

use crate::{Ecosystem, Inventory};

fn property(name: &str, value: &str) -> Property {
    Property::new(name, value)
}

/// Renders `inventory` as a CycloneDX 1.5 JSON document describing the image `subject_digest`:
/// the OS as an `operating-system` component and each package as a `library` with its purl,
/// plus `berth:ecosystem`, `berth:location` and (for OS packages) `berth:source_name` /
/// `berth:source_version` properties.
pub fn to_cyclonedx(inventory: &Inventory, subject_digest: &str) -> Vec<u8> {
    let mut components = Vec::new();
    if let Some(os) = &inventory.os {
        let mut c =
            Component::new(Classification::OperatingSystem, &os.id, os.version_id.as_deref().unwrap_or(""), Some(format!("os:{}", os.id)));
        if os.version_id.is_none() {
            c.version = None;
        }
        c.description = os.pretty_name.as_deref().map(NormalizedString::new);
        components.push(c);
    }
    let mut refs = HashSet::new();
    for p in &inventory.packages {
        let mut bom_ref = p.purl.clone();
        let mut n = 1;
        while !refs.insert(bom_ref.clone()) {
            n += 1;
            bom_ref = format!("{}#{n}", p.purl);
        }
        let (group, name) = match p.ecosystem {
            Ecosystem::Maven => p.name.split_once(':').map_or((None, p.name.as_str()), |(g, a)| (Some(g), a)),
            Ecosystem::Npm if p.name.starts_with('@') => p.name.split_once('/').map_or((None, p.name.as_str()), |(g, a)| (Some(g), a)),
            _ => (None, p.name.as_str()),
        };
        let mut c = Component::new(Classification::Library, name, &p.version, Some(bom_ref));
        c.group = group.map(NormalizedString::new);
        c.purl = p.purl.parse::<Purl>().ok();
        let mut props = vec![property("berth:ecosystem", p.ecosystem.as_str()), property("berth:location", &p.location)];
        if let Some(s) = &p.source_name {
            props.push(property("berth:source_name", s));
        }
        if let Some(s) = &p.source_version {
            props.push(property("berth:source_version", s));
        }
        c.properties = Some(Properties(props));
        components.push(c);
    }
    let mut subject = Component::new(Classification::Container, subject_digest, "", Some(subject_digest.to_string()));
    subject.version = None;
    let metadata = Metadata {
        // No timestamp: the same inventory gives the same bytes, so a rescan re-attaches the
        // same SBOM referrer instead of piling up new ones.
        timestamp: None,
        tools: Some(Tools::List(vec![Tool::new("berth", "berth-scan", env!("CARGO_PKG_VERSION"))])),
        component: Some(subject),
        ..Metadata::default()
    };
    let bom = Bom {
        spec_version: SpecVersion::V1_5,
        serial_number: Some(serial_number(inventory, subject_digest)),
        metadata: Some(metadata),
        components: Some(Components(components)),
        ..Bom::default()
    };
    let mut out = Vec::new();
    match bom.output_as_json_v1_5(&mut out) {
        Ok(()) => out,
        // The model above always converts; keep the contract of returning a document anyway.
        Err(_) => serde_json::to_vec(&serde_json::json!({
            "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []
        }))
        .unwrap_or_default(),
    }
}

/// A serial number derived from the subject and the inventory (a name-based UUID, v5-shaped)
/// instead of a random one: the same image scanned twice yields byte-identical SBOMs.
fn serial_number(inventory: &Inventory, subject_digest: &str) -> UrnUuid {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(subject_digest.as_bytes());
    for p in &inventory.packages {
        h.update(b"\n");
        h.update(p.purl.as_bytes());
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    let uuid = format!("urn:uuid:{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
    UrnUuid::new(uuid).unwrap_or_else(|_| UrnUuid::generate())
}
