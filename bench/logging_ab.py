#!/usr/bin/env python3
"""What the request log costs: manifest GET by tag at 16 connections with logging at info vs warn.

    BERTH_BIN=... BENCH_BIN=.../berth-bench python3 bench/logging_ab.py [ROUNDS] [SECONDS] [MODE ...]

A MODE is LABEL=LEVEL or LABEL=LEVEL@BINARY (another berth build, for a before/after of the log
writer); default: `info=info warn=warn`. Each run is a fresh berth whose stderr goes to a file, as
an operator's would (`2>>berth.log`, or journald reading a pipe); rounds alternate the modes.
Prints one JSON line per run (req/s, berth's CPU microseconds per request, p50/p99, the log's
bytes and lines per request, lines dropped) and the medians per mode with each mode's ratio to the last one.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import Berth  # noqa: E402

BENCH = os.environ.get("BENCH_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "berth-bench"))
CONNECTIONS = int(os.environ.get("LOG_AB_CONNECTIONS", "16"))


def _cpu_seconds(pid):
    """utime + stime of the server (all its threads, the log writer's included): contention on a
    shared machine moves req/s far more than it moves the CPU each request costs."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(level, binary, seconds):
    d = tempfile.mkdtemp(prefix="logging-ab-")
    env = {"BERTH_LOG": level, "BERTH_SCRUB_INTERVAL_SECONDS": "0"}
    if binary:
        env["BERTH_BIN"] = binary
    old = os.environ.get("BERTH_BIN")
    if binary:
        os.environ["BERTH_BIN"] = binary  # conftest.berth_bin() reads it at start
    try:
        b = Berth(os.path.join(d, "data"), env=env).start()
    finally:
        if binary:
            if old is None:
                os.environ.pop("BERTH_BIN", None)
            else:
                os.environ["BERTH_BIN"] = old
    try:
        b.ecr().create_repository(repositoryName="bench")
        env = dict(os.environ, BENCH_URL=b.url, BENCH_USER="AWS", BENCH_PASSWORD=b.token())
        subprocess.run([BENCH, "push-image", "--repo", "bench"], env=env, check=True, capture_output=True)
        log_before = os.path.getsize(b.log_path)
        cpu_before = _cpu_seconds(b.proc.pid)
        out = subprocess.run([BENCH, "manifest-load", "--repo", "bench", "--connections", str(CONNECTIONS),
                              "--duration", str(seconds), "--warmup", "0"], env=env, check=True, capture_output=True, text=True)
        j = json.loads(out.stdout.strip().splitlines()[-1])
        cpu = _cpu_seconds(b.proc.pid) - cpu_before
        metrics = requests.get(f"{b.url}/metrics", timeout=30).text
    finally:
        b.stop()  # flushes the writer
    log_bytes = os.path.getsize(b.log_path) - log_before
    with open(b.log_path, "rb") as f:
        f.seek(log_before)
        lines = f.read().count(b"\n")
    m = re.search(r"^berth_log_lines_dropped_total (\d+)", metrics, re.M)
    n = max(j["requests"], 1)
    return {
        "req_per_s": j["req_per_s"], "p50_ms": j["latency"].get("p50_ms"), "p99_ms": j["latency"].get("p99_ms"),
        "errors": j["errors"], "cpu_us_per_request": round(cpu / max(j["requests"], 1) * 1e6, 1),
        "log_bytes_per_request": round(log_bytes / n, 1), "log_lines_per_request": round(lines / n, 3),
        "dropped": int(m.group(1)) if m else None,
    }


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8
    modes = []
    for spec in sys.argv[3:] or ["info=info", "warn=warn"]:
        label, rest = spec.split("=", 1)
        level, _, binary = rest.partition("@")
        modes.append((label, level, binary or None))
    got = {label: [] for label, _, _ in modes}
    for r in range(rounds):
        order = modes if r % 2 == 0 else list(reversed(modes))
        for label, level, binary in order:
            res = run(level, binary, seconds)
            got[label].append(res)
            print(json.dumps({"mode": label, "level": level, "binary": binary, **res}), flush=True)
    base = modes[-1][0]
    base_rps = statistics.median(x["req_per_s"] for x in got[base])
    for label, level, binary in modes:
        runs = got[label]
        med = {k: statistics.median(x[k] for x in runs if x[k] is not None)
               for k in ("req_per_s", "cpu_us_per_request", "p50_ms", "p99_ms", "log_bytes_per_request", "log_lines_per_request")}
        print(json.dumps({"mode": label, "median": med, "ratio_to_" + base: round(med["req_per_s"] / base_rps, 3),
                          "dropped": [x["dropped"] for x in runs], "connections": CONNECTIONS, "seconds": seconds,
                          "rounds": rounds, "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
