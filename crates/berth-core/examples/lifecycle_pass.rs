//! How long one lifecycle evaluation pass takes on a large repository:
//! `cargo run --release -p berth-core --example lifecycle_pass -- [images]` (default 100,000).
//!
//! The repository is filled straight through SQL in one transaction (pushing 100k manifests
//! through the service would measure pushes, not lifecycle). Half the images are tagged
//! `prod-N`, a quarter `dev-N`, a quarter untagged; push times spread over 200 days. The
//! policy is the seed policy plus a transition rule; the pass is read + evaluate (the preview),
//! then a dry run through the same path a real run takes.

use std::sync::Arc;
use std::time::Instant;

use berth_core::{Registry, RegistryConfig, RegistryRef, Repo, RepositoryName, SystemClock};
use berth_store::{FsBlobStore, RepositoryStore, SqliteMetadataStore};

const POLICY: &str = r#"{"rules":[
 {"rulePriority":1,"description":"Keep last 10 prod images","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},
 {"rulePriority":2,"description":"Untagged older than 7 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
 {"rulePriority":3,"description":"Archive what nobody pulled for 90 days","selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("berth.db");
    let meta = SqliteMetadataStore::open(&db).await?;
    let registry_ref = RegistryRef { account: "123456789012".into(), region: "us-east-1".into() };
    let repo = Repo::new(&registry_ref, RepositoryName::parse("team/big")?);
    meta.create_repository(repo.key(), &berth_core::default_settings(), &[], 0).await?;
    let started = Instant::now();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let mut tx = pool.begin().await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    for i in 0..n {
        let digest = format!("sha256:{:064x}", i);
        let pushed = now - (i as i64 % 200) * 86_400_000 - i as i64;
        sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, size, image_size, content, pushed_at) \
             VALUES (1, ?, 'application/vnd.oci.image.manifest.v1+json', 2, 1000, x'7b7d', ?)",
        )
        .bind(&digest)
        .bind(pushed)
        .execute(&mut *tx)
        .await?;
        let tag = match i % 4 {
            0 | 1 => Some(format!("prod-{i}")),
            2 => Some(format!("dev-{i}")),
            _ => None,
        };
        if let Some(tag) = tag {
            sqlx::query("INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (1, ?, ?, ?)")
                .bind(tag)
                .bind(&digest)
                .bind(pushed)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    pool.close().await;
    eprintln!("filled {n} images in {:.1}s", started.elapsed().as_secs_f64());

    let blobs = FsBlobStore::open(dir.path()).await?;
    let registry = Registry::new(Arc::new(meta), Arc::new(blobs), Arc::new(SystemClock), RegistryConfig::default())
        .with_key_service(berth_crypto::RootKey::from_hex(&"ab".repeat(32))?);
    registry.put_lifecycle_policy(&repo, POLICY).await?;
    for round in 0..3 {
        let t = Instant::now();
        let (_, planned) = registry.plan_lifecycle(&repo, None).await?;
        let plan_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let report = registry.run_lifecycle(&repo, true).await?;
        let dry_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "round {round}: {n} images, {} planned ({} in dry run); evaluation pass (read + evaluate) {plan_ms:.0} ms; dry run {dry_ms:.0} ms",
            planned.len(),
            report.actions.len()
        );
    }
    Ok(())
}
