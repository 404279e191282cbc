//! Shared by the berth-postgres test binaries.

use berth_store::meta::RepositorySettings;

/// ECR's CreateRepository defaults.
pub fn settings() -> RepositorySettings {
    RepositorySettings {
        tag_mutability: "MUTABLE".into(),
        tag_mutability_exclusions: None,
        scan_on_push: false,
        encryption_type: "AES256".into(),
        kms_key: None,
    }
}
