#!/usr/bin/env python3
"""Cluster backup and restore figures (issue 21): `berth backup --metadata postgres://… --blobs
s3://…` of a cluster while a node serves, against a plain copy of the same bucket prefix; an
incremental backup of the unchanged cluster; `berth restore` of that backup into a new database
and bucket prefix (the backup re-read whole, copied in, then fsck).

    BERTH_BIN=.../berth python3 bench/backup_cluster.py [IMAGES] [TOTAL_MIB]

Fill: IMAGES images (default 500) over 50 repositories, one random layer of TOTAL_MIB/IMAGES each
(default 1024 MiB in all), pushed over HTTP by 4 threads into one node on PostgreSQL + s3s-fs
(started here, as the e2e tests start them). Reference: `aws s3 cp --recursive` of the blob
prefix to a local directory, then `sync` (what a plain copy of the bucket costs on this machine;
s3s-fs hashes every object it serves, which bounds both). Prints one JSON object.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from backup import du, fill, timed  # noqa: E402
from conftest import berth_bin  # noqa: E402
from test_cluster import Postgres, S3Server  # noqa: E402
from test_migrate import Destination  # noqa: E402

MiB = 1024 * 1024


class Tmp:
    def __init__(self, path):
        self.path = path

    def __truediv__(self, name):
        return __import__("pathlib").Path(self.path) / name


def main():
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    total_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    work = tempfile.mkdtemp(prefix="berth-bench-backup-cluster-", dir="/var/tmp")
    os.chmod(work, 0o755)  # PostgreSQL runs as the postgres user and must reach its directory
    pg = Postgres(os.path.join(work, "pg")).start()
    s3 = S3Server(os.path.join(work, "s3")).start()
    root_key = os.urandom(32).hex()
    src = Destination((pg, s3), Tmp(work))
    out = {"images": images, "layer_bytes": total_mib * MiB // images, "berth": berth_bin()}
    try:
        node = src.node("a", root_key)
        env = dict(src.env, BERTH_ROOT_KEY=root_key)
        try:
            out["fill_seconds"] = fill(node, images, total_mib * MiB // images)
            stored = os.path.join(work, "s3", "root", s3.bucket, src.prefix)
            out["bucket_bytes"] = du(stored)

            ref = os.path.join(work, "plain-copy")
            secs, _ = timed("sh", "-c", f"aws --endpoint-url {s3.endpoint} s3 cp --recursive --only-show-errors "
                                        f"s3://{s3.bucket}/{src.prefix} {ref} && sync",
                            env=dict(env, AWS_ACCESS_KEY_ID=s3.access, AWS_SECRET_ACCESS_KEY=s3.secret,
                                     AWS_DEFAULT_REGION="us-east-1"))
            out["plain_copy_seconds"], out["plain_copy_mb_s"] = secs, out["bucket_bytes"] / secs / 1e6
            shutil.rmtree(ref)

            bk = os.path.join(work, "backup")
            secs, p = timed(berth_bin(), "backup", *src.args, "--to", bk, env=env)
            m = json.loads(p.stdout)
            out["backup_seconds"], out["backup_bytes"], out["backup_objects"] = secs, m["bytes"], m["objects"]
            out["backup_mb_s"] = m["bytes"] / secs / 1e6
            out["backup_vs_plain_copy"] = out["backup_mb_s"] / out["plain_copy_mb_s"]
            secs, p = timed(berth_bin(), "backup", *src.args, "--to", bk, env=env)
            out["incremental_seconds"], out["incremental_copied"] = secs, json.loads(p.stdout)["copied"]
        finally:
            node.stop()

        dest = Destination((pg, s3), Tmp(work))
        # Each stderr line with the second it appeared: where the restore's time goes.
        t0 = time.monotonic()
        proc = subprocess.Popen([berth_bin(), "restore", "--from", bk, *dest.args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(dest.env, BERTH_ROOT_KEY=root_key))
        timeline = [(round(time.monotonic() - t0, 1), line.rstrip()[:120]) for line in proc.stderr if line.strip()]
        stdout = proc.stdout.read()
        assert proc.wait() == 0, timeline[-5:]
        secs = time.monotonic() - t0
        report = json.loads(stdout)
        assert report["fsck"]["problems"] == [], report["fsck"]
        out["restore_seconds"], out["restore_mb_s"] = secs, out["backup_bytes"] / secs / 1e6
        out["restore_timeline"] = [f"{t:7.1f} s  {line}" for t, line in timeline if "\r" not in line]
    finally:
        s3.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
