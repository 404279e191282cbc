//! Full-size timings of the scanner (figures in bench/RESULTS.md):
//! `cargo run --release -p berth-scan --example scan_bench`.
//! The same workloads run small, with their results checked, in tests/scale.rs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use berth_scan::{inventory, Limits, VulnDb};
use common::workload::*;
use common::*;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tar, files) = synthetic_layer(3600);
    let mib = tar.len() as f64 / (1 << 20) as f64;
    let (gz, zs) = (gz(&tar), zst(&tar));
    println!(
        "layer: {mib:.1} MiB uncompressed, {files} files; gzip {:.1} MiB, zstd {:.1} MiB",
        gz.len() as f64 / 1048576.0,
        zs.len() as f64 / 1048576.0
    );
    for (name, media, data) in [("tar", TAR, tar.clone()), ("tar+gzip", TAR_GZ, gz), ("tar+zstd", TAR_ZST, zs)] {
        let mut best = f64::MAX;
        let mut count = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let inv = inventory(vec![layer(media, data.clone())], &Limits::default())?;
            best = best.min(started.elapsed().as_secs_f64());
            count = inv.packages.len();
        }
        println!("{name:>9}: {:.0} ms ({:.0} MiB/s uncompressed), {count} packages", best * 1000.0, mib / best);
    }

    let src = tempfile::tempdir()?;
    debian_like_advisories(src.path(), 50_000);
    let before = peak_rss_mib();
    let db_root = tempfile::tempdir()?;
    let started = Instant::now();
    let summary = VulnDb::import(src.path(), db_root.path())?;
    println!(
        "import: {} advisories in {:.1} s; peak RSS {:.0} MiB (before import {:.0} MiB)",
        summary.advisories,
        started.elapsed().as_secs_f64(),
        peak_rss_mib(),
        before
    );
    let db = VulnDb::open(db_root.path())?.ok_or("no database after import")?;
    let started = Instant::now();
    let findings = db.find(&debian_like_inventory());
    println!("find: {} findings for 200 packages in {:.0} ms", findings.len(), started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}
