#!/usr/bin/env python3
"""Backup and restore figures (issue 21): `berth backup` of a filled data directory while berth
serves, against the disk's own copy speed; an incremental backup of the unchanged registry; `berth
restore` (every object re-hashed, then fsck); and push/pull latency while a backup runs vs idle.

    BERTH_BIN=.../berth python3 bench/backup.py [IMAGES] [TOTAL_MIB] [WORKDIR]

Fill: IMAGES images (default 10000) over 100 repositories, each a config, one random layer of
TOTAL_MIB/IMAGES (default 5120 MiB in all) and a manifest, pushed over HTTP (POST + monolithic PUT)
by 4 threads; the fill rate is printed. Then, with berth serving:
  disk copy   `cp -a` of the data directory, then `sync` (the disk's copy speed, reference);
  backup      `berth backup --to B` (goal: >= 70% of the disk copy's MB/s);
  incremental the same command again, nothing changed (goal: < 5 s);
  restore     `berth restore --from B` into an empty directory (includes fsck);
  latency     push (1 image, 64 KiB layer) + pull (its layer) round trips, p50/p99, idle and while
              a full backup into a new directory runs (goal: p99 during <= 1.5x idle); again with
              `--max-rate-mib N` for each N in $BACKUP_MAX_RATES_MIB (e.g. "100 50"). Each phase
              is compared with idle round trips measured just before it ($BACKUP_LATENCY_ROUNDS,
              default 300, after a sync so the last phase's writeback is not counted as idle).
              $BACKUP_LATENCY_DIR puts these backups elsewhere (default: the work directory, on
              the disk berth serves from; e.g. /dev/shm for "another disk").
Prints one JSON object. Page cache: the data was just written, so it is mostly cached (both the
reference copy and the backup read it the same way); each copy's writes are synced.
"""
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import Berth, berth_bin  # noqa: E402
from httputil import Registry  # noqa: E402

MiB = 1024 * 1024


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def timed(*cmd, env=None):
    t0 = time.monotonic()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {p.stderr[-3000:]}")
    return time.monotonic() - t0, p


def fill(b, images, layer_size, workers=4):
    token = b.token()
    per = (images + workers - 1) // workers

    def push_some(w):
        r = Registry(b.url, token=token)
        for i in range(w * per, min(images, (w + 1) * per)):
            r.push_image(f"bench/r{i % 100}", f"t{i}", nlayers=1, layer_size=layer_size)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        list(ex.map(push_some, range(workers)))
    return time.monotonic() - t0


def round_trips(b, n, tag):
    """n push + pull round trips; per-operation seconds."""
    r = Registry(b.url, token=b.token())
    pushes, pulls = [], []
    for i in range(n):
        t0 = time.monotonic()
        pushed = r.push_image("bench/latency", f"{tag}{i}", nlayers=1, layer_size=64 * 1024)
        t1 = time.monotonic()
        digest = pushed["blobs"][-1][0]
        got = r.get(f"/v2/bench/latency/blobs/{digest}")
        assert got.status_code == 200
        t2 = time.monotonic()
        pushes.append(t1 - t0)
        pulls.append(t2 - t1)
    return pushes, pulls


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main():
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    total_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 5120
    work = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="berth-bench-backup-", dir="/tmp")
    layer = total_mib * MiB // images
    data = os.path.join(work, "data")
    b = Berth(data, extra_args=["--gc-interval-seconds", "0"]).start()
    env = dict(b.env)
    out = {"images": images, "layer_bytes": layer, "berth": berth_bin()}
    try:
        out["fill_seconds"] = fill(b, images, layer)
        out["data_bytes"] = du(data)
        out["fill_mb_s"] = out["data_bytes"] / out["fill_seconds"] / 1e6
        out["fill_images_s"] = images / out["fill_seconds"]

        ref = os.path.join(work, "cp-reference")
        secs, _ = timed("sh", "-c", f"cp -a {data} {ref} && sync")
        out["disk_copy_seconds"], out["disk_copy_mb_s"] = secs, out["data_bytes"] / secs / 1e6
        shutil.rmtree(ref)

        bk = os.path.join(work, "backup")
        secs, p = timed(berth_bin(), "backup", "--data-dir", data, "--to", bk, env=env)
        m = json.loads(p.stdout)
        out["backup_seconds"], out["backup_bytes"] = secs, m["bytes"]
        out["backup_mb_s"] = m["bytes"] / secs / 1e6
        out["backup_vs_disk_copy"] = out["backup_mb_s"] / out["disk_copy_mb_s"]
        secs, p = timed(berth_bin(), "backup", "--data-dir", data, "--to", bk, env=env)
        out["incremental_seconds"], out["incremental_copied"] = secs, json.loads(p.stdout)["copied"]

        restored = os.path.join(work, "restored")
        secs, _ = timed(berth_bin(), "restore", "--from", bk, "--data-dir", restored,
                        "--root-key-file", os.path.join(data, "root.key"), env=env)
        out["restore_seconds"], out["restore_mb_s"] = secs, out["backup_bytes"] / secs / 1e6
        shutil.rmtree(restored)
        subprocess.run(["sync"], check=True)

        n = int(os.environ.get("BACKUP_LATENCY_ROUNDS", "300"))
        idle_push, idle_pull = round_trips(b, n, "idle")
        out["latency_ms"] = {"idle": {"push_p50": pct(idle_push, .5), "push_p99": pct(idle_push, .99),
                                      "pull_p50": pct(idle_pull, .5), "pull_p99": pct(idle_pull, .99), "n": n}}
        # Unthrottled, then at each --max-rate-mib of BACKUP_MAX_RATES_MIB (e.g. "100 50").
        for rate in [None] + [int(r) for r in os.environ.get("BACKUP_MAX_RATES_MIB", "").split()]:
            key = "during_backup" if rate is None else f"during_backup_max_{rate}_mib"
            # Idle again just before each phase: the disk's state (writeback of the last
            # phase, the host's cache) moves, so each phase compares with its own idle.
            idle_push, idle_pull = round_trips(b, n, f"i{rate}-")
            idle = out["latency_ms"][f"idle_before_{key}"] = {
                "push_p50": pct(idle_push, .5), "push_p99": pct(idle_push, .99),
                "pull_p50": pct(idle_pull, .5), "pull_p99": pct(idle_pull, .99), "n": n}
            busy = os.path.join(os.environ.get("BACKUP_LATENCY_DIR", work), f"backup-during-{rate or 'full'}")
            done = threading.Event()
            during_push, during_pull = [], []

            def load():
                while not done.is_set():
                    p, q = round_trips(b, 10, f"d{rate}-{len(during_push)}-")
                    during_push.extend(p)
                    during_pull.extend(q)

            t = threading.Thread(target=load)
            t.start()
            extra = ["--max-rate-mib", str(rate)] if rate else []
            secs, _ = timed(berth_bin(), "backup", "--data-dir", data, "--to", busy, *extra, env=env)
            done.set()
            t.join()
            shutil.rmtree(busy)
            # The removal's own writeback must not land in the next phase's idle figures.
            subprocess.run(["sync"], check=True)
            out[f"{key}_seconds"] = secs
            lat = out["latency_ms"][key] = {
                "push_p50": pct(during_push, .5), "push_p99": pct(during_push, .99),
                "pull_p50": pct(during_pull, .5), "pull_p99": pct(during_pull, .99), "n": len(during_push)}
            out[f"{key}_push_p99_ratio"] = lat["push_p99"] / idle["push_p99"]
            out[f"{key}_pull_p99_ratio"] = lat["pull_p99"] / idle["pull_p99"]
    finally:
        b.stop()
        if len(sys.argv) <= 3:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
