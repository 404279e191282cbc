#!/usr/bin/env python3
"""Manifest GET throughput with data-event auditing on vs off (issue 19's goal: on >= 0.8x off).

    BERTH_BIN=... BENCH_BIN=.../berth-bench python3 bench/audit_ab.py [ROUNDS] [SECONDS] [get|push]

`push` measures pushes instead: `berth-bench push-images` (400 distinct small images, 16 workers;
each push is InitiateLayerUpload/CompleteLayerUpload/PutImage management events, recorded in
both modes, plus a BatchCheckLayerAvailability data event per blob), images/s.

Rounds alternate on/off on fresh data directories; prints one JSON line per run and the ratio
of the medians. Uses tests/e2e's Berth fixture class to start servers.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import Berth  # noqa: E402

LOAD = sys.argv[3] if len(sys.argv) > 3 else "get"
BENCH = os.environ.get("BENCH_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "berth-bench"))


def run(data_events, seconds):
    d = tempfile.mkdtemp(prefix="audit-ab-")
    b = Berth(os.path.join(d, "data"), extra_args=["--audit-data-events", data_events]).start()
    try:
        b.ecr().create_repository(repositoryName="bench")
        env = dict(os.environ, BENCH_URL=b.url, BENCH_USER="AWS", BENCH_PASSWORD=b.token())
        if LOAD == "push":
            out = subprocess.run([BENCH, "push-images", "--repo", "bench", "--count", "400", "--workers", "16"], env=env,
                                 check=True, capture_output=True, text=True)
            text = out.stdout + out.stderr
            m = re.search(r'"images_per_s"\s*:\s*([0-9.]+)', text)
            return float(m.group(1)), text.strip().splitlines()[-1]
        subprocess.run([BENCH, "push-image", "--repo", "bench"], env=env, check=True, capture_output=True)
        out = subprocess.run([BENCH, "manifest-load", "--repo", "bench", "--duration", str(seconds)], env=env, check=True,
                             capture_output=True, text=True)
        text = out.stdout + out.stderr
        m = re.search(r'"req_per_s"\s*:\s*([0-9.]+)', text) or re.search(r"([0-9.]+)\s*req/s", text)
        return float(m.group(1)), text.strip().splitlines()[-1]
    finally:
        b.stop()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    got = {"true": [], "false": []}
    for _ in range(rounds):
        for mode in ("true", "false"):
            rps, line = run(mode, seconds)
            got[mode].append(rps)
            print(json.dumps({"load": LOAD, "data_events": mode, "per_s": rps, "raw": line}), flush=True)
    on, off = statistics.median(got["true"]), statistics.median(got["false"])
    print(json.dumps({"load": LOAD, "median_on": on, "median_off": off, "ratio": round(on / off, 3), "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
