#!/usr/bin/env python3
"""Many clients at once (issue 22): P parallel pushes of distinct images with one M MiB layer
each, and Q parallel pulls of one N MiB image, berth vs CNCF distribution 2.8, against this
machine's limits, with each server's peak memory.

    BERTH_BIN=target/release/berth BENCH_BIN=target/release/berth-bench python3 bench/concurrency.py
    options: --pushes 16 --push-mib 50 --pulls 64 --pull-mib 200 --repeat 3 --out bench/RESULTS.md

Targets, each a fresh server on its own /var/tmp directory, logging warnings (distribution: errors):
  berth        `--aes256-by-storage`: blobs in clear, as distribution stores them (the mapped reader)
  berth-sealed berth as shipped: every blob sealed at rest (AES-256-GCM), for the cost of that
  distribution `docker-registry` 2.8, filesystem storage, anonymous (bench/pull_through.py's)
A push is: the layer with `berth-bench push-blob` (monolithic, streamed from a file), then the
config blob and the manifest (Python requests). A pull is: the manifest, the config, then the
layer with `berth-bench pull-blob` (read and discarded). Every worker is its own process or
thread, all started together; throughput = bytes of all layers / wall time from start to the
last worker's end. Clients and server share the 2 cores, the same for every target.
Limits: P parallel `dd bs=4M conv=fsync` copies of the push files (disk), and Q parallel curls
of the pull layer from a sendfile server (bench/loopback.py --parallel, berth-bench pull-blob as
the client: the loopback limit).
RSS: VmHWM of the server, reset (clear_refs 5) before each phase, and RssAnon/RssFile sampled
every 20 ms (RssFile is page cache the process maps: shared, reclaimable, not its own memory).
Writes the section between <!-- concurrency:start/end --> of --out and prints it.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import requests  # noqa: E402
from conftest import Berth  # noqa: E402
from pull_through import Distribution  # noqa: E402

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class BerthTarget:
    def __init__(self, d, args):
        self.b = Berth(d, extra_args=args, env={"BERTH_LOG": "warn", "BERTH_SCRUB_INTERVAL_SECONDS": "0"}).start()
        self.url, self.proc = self.b.url, self.b.proc
        self.auth = ("AWS", self.b.token())

    def stop(self):
        self.b.stop()


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


class Memory:
    """Peak VmHWM (reset at start) and sampled peaks of RssAnon and RssFile of one process."""

    def __init__(self, pid):
        self.pid, self.stop_flag = pid, threading.Event()
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.anon = self.file = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_flag.is_set():
            self.anon = max(self.anon, status_kb(self.pid, "RssAnon:"))
            self.file = max(self.file, status_kb(self.pid, "RssFile:"))
            time.sleep(0.02)

    def finish(self):
        self.stop_flag.set()
        self.t.join()
        return {"vmhwm_mib": round(status_kb(self.pid, "VmHWM:") / 1024, 1), "rss_anon_peak_mib": round(self.anon / 1024, 1),
                "rss_file_peak_mib": round(self.file / 1024, 1)}


def bench_env(target):
    env = dict(os.environ, BENCH_URL=target.url, BENCH_CLIENT_THREADS="1")
    if target.auth:
        env.update(BENCH_USER=target.auth[0], BENCH_PASSWORD=target.auth[1])
    return env


def put_blob(s, target, repo, data, digest):
    r = s.post(f"{target.url}/v2/{repo}/blobs/uploads/", auth=target.auth, timeout=60)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else target.url + loc
    r = s.put(loc, params={"digest": digest}, data=data, auth=target.auth, timeout=60,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text


def sha(data):
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(layer_digest, layer_size, i):
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "config": {"Labels": {"n": str(i)}}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]}).encode()
    return config, manifest


def push_image(bb, target, repo, layer_path, layer_digest, i):
    subprocess.run([bb, "push-blob", "--repo", repo, "--file", layer_path, "--digest", layer_digest],
                   env=bench_env(target), check=True, capture_output=True)
    config, manifest = image_manifest(layer_digest, os.path.getsize(layer_path), i)
    with requests.Session() as s:
        put_blob(s, target, repo, config, sha(config))
        r = s.put(f"{target.url}/v2/{repo}/manifests/v1", data=manifest, auth=target.auth, timeout=60,
                  headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text


def pull_image(bb, target, repo, layer_digest):
    with requests.Session() as s:
        r = s.get(f"{target.url}/v2/{repo}/manifests/v1", auth=target.auth, timeout=60, headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, r.text
        m = r.json()
        r = s.get(f"{target.url}/v2/{repo}/blobs/{m['config']['digest']}", auth=target.auth, timeout=60)
        assert r.status_code == 200 and sha(r.content) == m["config"]["digest"], r.status_code
    out = subprocess.run([bb, "pull-blob", "--repo", repo, "--digest", layer_digest], env=bench_env(target),
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["bytes"] == m["layers"][0]["size"]


def together(fn, args_list):
    """Runs fn(*args) for every args at once (one thread each); returns the wall time."""
    errors = []

    def run(a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(a,)) for a in args_list]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} workers failed: {errors[:3]}")
    return wall


def gen(bb, path, mib, seed):
    out = subprocess.run([bb, "gen-file", "--path", path, "--size-mib", str(mib), "--seed", str(seed)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["digest"]


def disk_limit(files, work):
    subprocess.run(["sync"], check=True)
    outs = [os.path.join(work, f"dd-{i}") for i in range(len(files))]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["dd", f"if={f}", f"of={o}", "bs=4M", "conv=fsync", "status=none"]) for f, o in zip(files, outs)]
    for p in procs:
        assert p.wait() == 0
    wall = time.perf_counter() - t0
    total = sum(os.path.getsize(f) for f in files)
    for o in outs:
        os.remove(o)
    return round(total / wall / 1e6, 1)


def loopback_limit(bb, path, parallel):
    out = subprocess.run([sys.executable, os.path.join(HERE, "loopback.py"), path, "--modes", "sendfile", "--repeat", "3",
                          "--parallel", str(parallel), "--bench-bin", bb], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["sendfile"]["mb_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=16)
    ap.add_argument("--push-mib", type=int, default=50)
    ap.add_argument("--pulls", type=int, default=64)
    ap.add_argument("--pull-mib", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--targets", default="berth,berth-sealed,distribution")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    bb = os.environ.get("BENCH_BIN") or os.path.join(HERE, "..", "target", "release", "berth-bench")
    work = tempfile.mkdtemp(prefix="berth-concurrency-", dir="/var/tmp")
    rows = []
    try:
        push_files = [os.path.join(work, f"push-{i}") for i in range(a.pushes)]
        push_digests = [gen(bb, f, a.push_mib, 1000 + i) for i, f in enumerate(push_files)]
        pull_file = os.path.join(work, "pull")
        pull_digest = gen(bb, pull_file, a.pull_mib, 7)
        limits = {"disk_write_fsync_parallel": disk_limit(push_files, work), "loopback_sendfile_parallel": loopback_limit(bb, pull_file, a.pulls)}
        print(json.dumps({"limits": limits}), flush=True)
        targets = a.targets.split(",")
        for rep in range(a.repeat):
            for name in (targets if rep % 2 == 0 else list(reversed(targets))):
                d = os.path.join(work, f"{name}-{rep}")
                if name == "distribution":
                    target = Distribution(d)
                    target.auth = None  # anonymous
                else:
                    target = BerthTarget(d, ["--aes256-by-storage"] if name == "berth" else [])
                try:
                    subprocess.run(["sync"], check=True)
                    mem = Memory(target.proc.pid)
                    wall = together(lambda i: push_image(bb, target, f"push/img{i}", push_files[i], push_digests[i], i),
                                    [(i,) for i in range(a.pushes)])
                    push = {"mb_per_s": round(a.pushes * a.push_mib * MiB / wall / 1e6, 1), "secs": round(wall, 3), **mem.finish()}
                    push_image(bb, target, "pull/big", pull_file, pull_digest, 0)
                    mem = Memory(target.proc.pid)
                    wall = together(lambda: pull_image(bb, target, "pull/big", pull_digest), [()] * a.pulls)
                    pull = {"mb_per_s": round(a.pulls * a.pull_mib * MiB / wall / 1e6, 1), "secs": round(wall, 3), **mem.finish()}
                    row = {"target": name, "rep": rep, "push": push, "pull": pull}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                finally:
                    target.stop()
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = report(a, limits, rows)
    replace_section(a.out, section)
    with open(os.path.splitext(a.out)[0] + ".concurrency.jsonl", "w") as f:
        f.write(json.dumps({"limits": limits}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(section)


def report(a, limits, rows):
    def med(name, phase, key):
        v = [r[phase][key] for r in rows if r["target"] == name]
        return statistics.median(v) if v else None

    def peak(name, phase, key):
        v = [r[phase][key] for r in rows if r["target"] == name]
        return max(v) if v else None

    names = [n for n in ("berth", "berth-sealed", "distribution") if any(r["target"] == n for r in rows)]
    head = "| figure | " + " | ".join(names) + " | berth/distribution | limit | berth/limit |\n|---|" + "---:|" * (len(names) + 3) + "\n"

    def line(label, phase, key, limit=None, fmt="{:,.0f}", ratio=True):
        vals = {n: med(n, phase, key) if key == "mb_per_s" else peak(n, phase, key) for n in names}
        cells = [fmt.format(vals[n]) if vals[n] is not None else "–" for n in names]
        r = f"{vals['berth'] / vals['distribution']:.2f}×" if ratio and vals.get("berth") and vals.get("distribution") else "–"
        lim = f"{limit:,.0f}" if limit else "–"
        frac = f"{vals['berth'] / limit:.0%}" if limit and vals.get("berth") else "–"
        return f"| {label} | " + " | ".join(cells) + f" | {r} | {lim} | {frac} |\n"

    cmd = "python3 bench/concurrency.py" + ("" if (a.pushes, a.push_mib, a.pulls, a.pull_mib, a.repeat) == (16, 50, 64, 200, 3) else
                                            f" --pushes {a.pushes} --push-mib {a.push_mib} --pulls {a.pulls} --pull-mib {a.pull_mib} --repeat {a.repeat}")
    git = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = ("<!-- concurrency:start -->\n## Concurrency (issue 22): parallel pushes and pulls\n\n"
           f"Generated by `{cmd}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} (git {git}); "
           f"median of {a.repeat} repetitions, targets alternating; MB/s = 10^6 bytes/s of layer bytes over the wall time "
           "of all workers; memory peaks are the largest of the repetitions, MiB. How each figure is taken: the script's docstring.\n\n"
           + head
           + line(f"{a.pushes} parallel pushes, {a.push_mib} MiB images (MB/s)", "push", "mb_per_s", limits["disk_write_fsync_parallel"])
           + line("  peak RSS, VmHWM (MiB)", "push", "vmhwm_mib", fmt="{:,.1f}", ratio=False)
           + line("  peak RssAnon (MiB)", "push", "rss_anon_peak_mib", fmt="{:,.1f}", ratio=False)
           + line(f"{a.pulls} parallel pulls of one {a.pull_mib} MiB image (MB/s)", "pull", "mb_per_s", limits["loopback_sendfile_parallel"])
           + line("  peak RSS, VmHWM (MiB)", "pull", "vmhwm_mib", fmt="{:,.1f}", ratio=False)
           + line("  peak RssAnon (MiB)", "pull", "rss_anon_peak_mib", fmt="{:,.1f}", ratio=False)
           + line("  peak RssFile (MiB; mapped page cache)", "pull", "rss_file_peak_mib", fmt="{:,.1f}", ratio=False)
           + f"\nLimits: push = {a.pushes} parallel `dd bs=4M conv=fsync` copies of the layer files "
             f"({limits['disk_write_fsync_parallel']:,.0f} MB/s); pull = {a.pulls} parallel `berth-bench pull-blob`s of the layer from a sendfile "
             f"server (`bench/loopback.py --parallel {a.pulls}`, {limits['loopback_sendfile_parallel']:,.0f} MB/s).\n"
           "<!-- concurrency:end -->\n")
    return out


def replace_section(out, section):
    with tempfile.NamedTemporaryFile("w", suffix=".md") as f:
        f.write(section)
        f.flush()
        subprocess.run(["bash", "-c", f'. "{HERE}/lib.sh"; replace_section "$1" "$2" concurrency', "-", out, f.name], check=True)


if __name__ == "__main__":
    main()
