//! Shared by the berth-postgres test binaries.

use berth_store::meta::RepositorySettings;

/// ECR's CreateRepository defaults.
pub fn settings() -> RepositorySettings {
    RepositorySettings::ecr_defaults()
}
