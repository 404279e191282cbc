//! Scheduled backups (`berth serve --backup-dir DIR --backup-interval S --backup-keep N`): each
//! run is a complete backup in its own generation, DIR/<UTC time>/, written as
//! DIR/.partial-<UTC time>/ and renamed when whole. Objects the previous generation holds are
//! hard-linked from it (same inode: an unchanged registry costs a snapshot and a walk, not a
//! copy), so deleting an old generation never takes bytes a newer one needs. After a success
//! only the newest N generations are kept.
//!
//! In a cluster every node may be started with the same flags: one node takes each period's
//! backup, the one holding the `backup` lease in the shared metadata (as with GC), and the others
//! count the period as taken elsewhere. DIR is then best a directory every node mounts, so the
//! generations stay in one place whichever node holds the lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{take, write_manifest, Source, TakeOptions, Taken};
use crate::ops::OpsState;

const PARTIAL_PREFIX: &str = ".partial-";

/// The lease naming the job among a cluster's nodes.
pub const LEASE: &str = "backup";

/// Runs forever: a backup at once, then one per interval (a run longer than the interval
/// delays the next, never overlaps it).
pub async fn run(state: Arc<OpsState>, registry: Arc<berth_core::Registry>, source: Arc<Source>) {
    let Some(dir) = state.args.backup_dir.clone() else { return };
    let every = Duration::from_secs(state.args.backup_interval.max(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let (keep, rate) = (state.args.backup_keep, state.args.backup_max_rate_mib);
        let leased = registry
            .run_leased(LEASE, every, |_| async {
                Ok(registry.supervisor().track_run("backup", generation(source.clone(), &dir, keep, rate)).await)
            })
            .await;
        let result = match leased {
            Ok(Some(result)) => result,
            Ok(None) => {
                tracing::debug!("another node took this period's backup");
                state.backups.lock().unwrap_or_else(|p| p.into_inner()).elsewhere += 1;
                continue;
            }
            Err(e) => Err(anyhow::Error::from(e).context("claiming this period's backup")),
        };
        let mut stats = state.backups.lock().unwrap_or_else(|p| p.into_inner());
        stats.last_duration_seconds = started.elapsed().as_secs_f64();
        match result {
            Ok((name, manifest)) => {
                tracing::info!(generation = %name, objects = manifest.objects, copied = manifest.copied, linked = manifest.linked, seconds = stats.last_duration_seconds, "scheduled backup done");
                stats.succeeded += 1;
                stats.last_success_millis = Some(crate::ops::millis(std::time::SystemTime::now()));
                stats.copied_bytes_total += manifest.copied_bytes;
                stats.linked_total += manifest.linked;
                stats.last_generation = Some(name);
                stats.last_error = None;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), dir = %dir.display(), "scheduled backup failed");
                stats.failed += 1;
                stats.last_error = Some(format!("{e:#}"));
            }
        }
    }
}

/// One generation: backed up aside, renamed into place, then the old ones pruned.
async fn generation(source: Arc<Source>, dir: &Path, keep: usize, max_rate_mib: Option<u64>) -> anyhow::Result<(String, super::Manifest)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = stamp(std::time::SystemTime::now());
    let partial = dir.join(format!("{PARTIAL_PREFIX}{name}"));
    let previous = generations(dir)?.pop().map(|g| dir.join(g));
    let started = Instant::now();
    let opts = TakeOptions {
        source,
        to: partial.clone(),
        link_from: previous,
        jobs: 4,
        progress: false,
        pacer: std::sync::Arc::new(super::objects::Pacer::new(max_rate_mib)),
    };
    let mut manifest = match take(&opts).await {
        Ok(Taken::Done(m)) => m,
        Ok(Taken::Failed(failures)) => {
            let _ = std::fs::remove_dir_all(&partial);
            anyhow::bail!("{} object(s) could not be backed up, first: {}", failures.len(), failures.first().map_or("", |s| s.as_str()));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    manifest.seconds = started.elapsed().as_secs_f64();
    write_manifest(&partial, &manifest)?;
    let _ = std::fs::remove_file(partial.join("backup.lock"));
    std::fs::rename(&partial, dir.join(&name)).with_context(|| format!("renaming {} into place", partial.display()))?;
    super::sync_dir(dir)?;
    prune(dir, keep)?;
    Ok((name, manifest))
}

/// Complete generations, oldest first (their names sort by time).
fn generations(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_stamp(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Removes all but the newest `keep` generations, and partial ones a crash left.
fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let all = generations(dir)?;
    let old = all.len().saturating_sub(keep.max(1));
    let mut doomed: Vec<PathBuf> = all[..old].iter().map(|n| dir.join(n)).collect();
    doomed.extend(
        std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(PARTIAL_PREFIX)))
            .map(|e| e.path()),
    );
    for path in doomed {
        std::fs::remove_dir_all(&path).with_context(|| format!("removing the old backup generation {}", path.display()))?;
    }
    Ok(())
}

/// `20261206T193000.123Z`: UTC, sortable, unique per millisecond.
fn stamp(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn is_stamp(name: &str) -> bool {
    name.len() == 20 && name.ends_with('Z') && name.as_bytes()[8] == b'T' && name.as_bytes()[15] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_by_time_and_are_recognised() {
        let a = stamp(std::time::UNIX_EPOCH + Duration::from_millis(1_765_000_000_123));
        let b = stamp(std::time::UNIX_EPOCH + Duration::from_millis(1_765_000_001_000));
        assert_eq!(a, "20251206T054640.123Z");
        assert!(a < b && is_stamp(&a) && is_stamp(&b));
        assert!(!is_stamp(".partial-20251206T054640.123Z") && !is_stamp("notes"));
    }

    #[test]
    fn prune_keeps_the_newest_and_drops_partials() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["20250101T000000.000Z", "20250102T000000.000Z", "20250103T000000.000Z", ".partial-20250104T000000.000Z", "other"] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["20250102T000000.000Z", "20250103T000000.000Z", "other"]);
    }
}
