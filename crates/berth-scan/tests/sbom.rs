mod common;

use berth_scan::{inventory, to_cyclonedx, Limits};
use common::*;
use serde_json::Value;

#[test]
fn cyclonedx_structure() {
    let inv = inventory(debian_image_layers(), &Limits::default()).unwrap();
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let bytes = to_cyclonedx(&inv, digest);
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(doc["version"], 1);
    assert!(doc["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_eq!(doc["metadata"]["component"]["type"], "container");
    assert_eq!(doc["metadata"]["component"]["name"], digest);
    // No timestamp: the same inventory must give the same bytes (one SBOM referrer per image).
    assert!(doc["metadata"].get("timestamp").is_none());
    assert_eq!(to_cyclonedx(&inv, digest), bytes, "deterministic");

    let components = doc["components"].as_array().unwrap();
    assert_eq!(components.len(), inv.packages.len() + 1, "the OS plus every package");
    assert_eq!(components[0]["type"], "operating-system");
    assert_eq!(components[0]["name"], "debian");
    assert_eq!(components[0]["version"], "12");
    let purls: Vec<&str> = components[1..].iter().map(|c| c["purl"].as_str().unwrap()).collect();
    let expected: Vec<&str> = inv.packages.iter().map(|p| p.purl.as_str()).collect();
    assert_eq!(purls, expected);
    let mut refs: Vec<&str> = components.iter().map(|c| c["bom-ref"].as_str().unwrap()).collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), components.len(), "bom-refs are unique");
    for c in &components[1..] {
        assert_eq!(c["type"], "library");
        assert!(c["name"].is_string() && c["version"].is_string());
    }
    let log4j = components.iter().find(|c| c["name"] == "log4j-core").unwrap();
    assert_eq!(log4j["group"], "org.apache.logging.log4j");
    assert_eq!(log4j["purl"], "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1");
    let libssl = components.iter().find(|c| c["name"] == "libssl3").unwrap();
    let props = libssl["properties"].as_array().unwrap();
    assert!(props.iter().any(|p| p["name"] == "berth:source_name" && p["value"] == "openssl"));
    assert!(props.iter().any(|p| p["name"] == "berth:location" && p["value"] == "/var/lib/dpkg/status"));

    // The document round-trips through the CycloneDX model and validates.
    let bom = cyclonedx_bom::prelude::Bom::parse_from_json_v1_5(bytes.as_slice()).unwrap();
    use cyclonedx_bom::prelude::Validate;
    assert!(bom.validate().passed(), "{:?}", bom.validate());
}

#[test]
fn empty_inventory_is_a_valid_sbom() {
    let doc: Value = serde_json::from_slice(&to_cyclonedx(&Default::default(), "sha256:00")).unwrap();
    assert_eq!(doc["specVersion"], "1.5");
    assert!(doc["components"].as_array().unwrap().is_empty());
}
