"""bench/replication.sh's helper: images, replication configuration, and the timings that need
one process (a push, then DescribeImageReplicationStatus polled tightly until it settles).

    python3 bench/replication_probe.py make-image LAYOUT TAG SIZE_KIB SEED
    python3 bench/replication_probe.py configure URL RULES_JSON
    python3 bench/replication_probe.py push-wait URL REPO TAG POLL_MS DEADLINE_S DB -- CMD...
    python3 bench/replication_probe.py wait-all DB REPO DESTINATION EXPECTED DEADLINE_S END_MS

Credentials: BERTH_ADMIN_ACCESS_KEY_ID / BERTH_ADMIN_SECRET_ACCESS_KEY, region AWS_DEFAULT_REGION.
DB is the berth's SQLite file, opened read-only: it holds each status's queued_at and
updated_at (milliseconds), which the ECR API does not return; the lag distribution comes from it.
Prints one JSON object; exits non-zero when a replication fails or does not settle in time.
"""
import gzip
import hashlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def ecr(url):
    import boto3
    from botocore.config import Config
    return boto3.client("ecr", endpoint_url=url, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                        aws_access_key_id=os.environ["BERTH_ADMIN_ACCESS_KEY_ID"],
                        aws_secret_access_key=os.environ["BERTH_ADMIN_SECRET_ACCESS_KEY"],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


class SeededBytes:
    """`size` pseudo-random bytes from `seed`, read in chunks (tarfile copies from it)."""

    def __init__(self, size, seed):
        self.left, self.rng = size, random.Random(seed)

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


class Hashing:
    """A write-only file that hashes and counts what goes through it to `inner`."""

    def __init__(self, inner):
        self.inner, self.h, self.size = inner, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.size += len(b)
        return self.inner.write(b)

    def tell(self):
        return self.size

    def digest(self):
        return "sha256:" + self.h.hexdigest()


def put_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "wb") as f:
        f.write(data)
    return digest


def make_image(layout, tag, size_kib, seed):
    """An OCI layout holding one image: one gzipped tar layer with a file of SIZE_KIB KiB of
    seeded random bytes (so no two seeds share a blob, and nothing compresses)."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    tmp = os.path.join(layout, "layer.tmp")
    # gzip (level 1: random bytes do not compress anyway) as skopeo would push it, so that the
    # pushed manifest is this one.
    with open(tmp, "wb") as f:
        compressed = Hashing(f)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=1, mtime=0) as gz:
            plain = Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("payload")
                info.size, info.mode, info.mtime = size_kib << 10, 0o644, 0
                tar.addfile(info, SeededBytes(info.size, seed))
    layer = compressed.digest()
    os.rename(tmp, os.path.join(layout, "blobs", "sha256", layer[7:]))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/payload"]},
                         "rootfs": {"type": "layers", "diff_ids": [plain.digest()]}}).encode()
    config_digest = put_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": compressed.size}],
    }).encode()
    manifest_digest = put_blob(layout, manifest)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                                                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return {"layout": layout, "tag": tag, "manifest": manifest_digest, "layer": layer, "layer_bytes": compressed.size}


def configure(url, rules):
    got = ecr(url).put_replication_configuration(replicationConfiguration={"rules": json.loads(rules)})
    return {"rules": got["replicationConfiguration"]["rules"]}


def db_rows(db, where, args):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT name, digest, dest_region, dest_registry, status, failure_code, queued_at, updated_at "
                           f"FROM replication_statuses WHERE {where}", args).fetchall()
    finally:
        con.close()


def push_wait(url, repo, tag, poll_ms, deadline_s, db, cmd):
    """Runs CMD (the push), then polls the image's replication status every POLL_MS until no
    destination is IN_PROGRESS. The clock runs from the end of the push."""
    client = ecr(url)
    client.describe_registry()  # the connection and the signing key, made before the clock runs
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    t1 = time.monotonic()
    if p.returncode != 0:
        sys.exit(f"push failed: {' '.join(cmd)}: {p.stderr[-2000:]}")
    polls, statuses = 0, []
    while True:
        polls += 1
        got = client.describe_image_replication_status(repositoryName=repo, imageId={"imageTag": tag})
        statuses = got["replicationStatuses"]
        if statuses and all(s["status"] != "IN_PROGRESS" for s in statuses):
            t2 = time.monotonic()
            break
        if time.monotonic() - t1 > deadline_s:
            sys.exit(f"{repo}:{tag}: replication still in progress {deadline_s} s after the push: {statuses}")
        time.sleep(poll_ms / 1000)
    digest = got["imageId"]["imageDigest"]
    rows = db_rows(db, "name = ? AND digest = ?", (repo, digest))
    result = {"repo": repo, "tag": tag, "digest": digest, "push_s": round(t1 - t0, 3),
              "complete_ms": round((t2 - t1) * 1000, 1), "polls": polls, "poll_ms": poll_ms,
              "server_lag_ms": max((r[7] - r[6] for r in rows), default=None),
              "statuses": [{k: s.get(k) for k in ("region", "registryId", "status", "failureCode")} for s in statuses]}
    print(json.dumps(result))
    if any(s["status"] != "COMPLETE" for s in statuses):
        sys.exit(f"{repo}:{tag}: replication did not complete: {statuses}")


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def wait_all(db, repo, destination, expected, deadline_s, end_ms):
    """Waits until EXPECTED images of REPO are COMPLETE for DESTINATION (region/registry id);
    reports the lag distribution (queued → COMPLETE) and when the last one completed,
    relative to END_MS (the burst's end, epoch milliseconds)."""
    region, registry = destination.split("/")
    where = "name = ? AND dest_region = ? AND dest_registry = ?"
    deadline = time.monotonic() + deadline_s
    while True:
        rows = db_rows(db, where, (repo, region, registry))
        failed = [r for r in rows if r[4] == "FAILED"]
        if failed:
            sys.exit(f"{repo}: {len(failed)} replications FAILED, e.g. {failed[0]}")
        done = [r for r in rows if r[4] == "COMPLETE"]
        if len(done) >= expected:
            break
        if time.monotonic() > deadline:
            sys.exit(f"{repo}: {len(done)} of {expected} replications COMPLETE after {deadline_s} s")
        time.sleep(0.05)
    lags = sorted(r[7] - r[6] for r in done)
    return {"repo": repo, "images": len(rows), "complete": len(done),
            "lag_ms": {"p50": percentile(lags, 50), "p99": percentile(lags, 99), "max": lags[-1],
                       "mean": round(statistics.fmean(lags), 1)},
            "drain_ms": max(r[7] for r in done) - end_ms}


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-image":
        print(json.dumps(make_image(args[0], args[1], int(args[2]), int(args[3]))))
    elif cmd == "configure":
        print(json.dumps(configure(args[0], args[1])))
    elif cmd == "push-wait":
        sep = args.index("--")
        url, repo, tag, poll_ms, deadline_s, db = args[:sep]
        push_wait(url, repo, tag, float(poll_ms), float(deadline_s), db, args[sep + 1:])
    elif cmd == "wait-all":
        db, repo, destination, expected, deadline_s, end_ms = args
        print(json.dumps(wait_all(db, repo, destination, int(expected), float(deadline_s), int(end_ms))))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
