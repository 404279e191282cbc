#!/usr/bin/env python3
"""skopeo pulls of one image, berth (sealed and clear) vs distribution 2.8, on this machine (issue
22: compare.sh once showed skopeo pull at 0.77x distribution; this isolates that row).

    BERTH_BIN=.../berth python3 bench/skopeo_pull.py [LAYER_MIB] [ROUNDS]

One image with a LAYER_MIB (default 200) random layer is pushed with skopeo into a berth with
blobs sealed at rest (the default), one with `--aes256-by-storage` (clear) and a distribution
(`docker-registry`); then each round times `skopeo copy docker://… dir:…` from each, in turn.
Prints the median per target and the speed ratios to distribution.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
import images  # noqa: E402
from conftest import Berth  # noqa: E402
from test_pull_through import Distribution  # noqa: E402

MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
work = tempfile.mkdtemp(prefix="skp-", dir="/tmp")
img = images.build_image(os.path.join(work, "layout"), "v1", random_size=MIB * 1024 * 1024, with_busybox=False)
dist = Distribution(os.path.join(work))
results = {}
for mode, extra in (("sealed", []), ("clear", ["--aes256-by-storage"])):
    b = Berth(os.path.join(work, "berth-" + mode), extra_args=extra).start()
    tok = b.token()
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{tok}", img.ref, f"docker://{b.url.split('//')[1]}/bench/big:v1"], check=True, capture_output=True)
    results[mode] = (b, tok)
dist.push(img, "bench/big", "v1")
times = {k: [] for k in ("berth-sealed", "berth-clear", "distribution")}
for rep in range(ROUNDS):
    for name in times:
        out = os.path.join(work, f"out-{name}-{rep}")
        if name == "distribution":
            args = ["--src-tls-verify=false", f"docker://{dist.addr}/bench/big:v1"]
        else:
            b, tok = results[name.split("-")[1]]
            args = ["--src-tls-verify=false", "--src-creds", f"AWS:{tok}", f"docker://{b.url.split('//')[1]}/bench/big:v1"]
        t = time.monotonic()
        subprocess.run(["skopeo", "copy", *args, f"dir:{out}"], check=True, capture_output=True)
        times[name].append(time.monotonic() - t)
        shutil.rmtree(out)
for k, v in times.items():
    print(k, "median %.3f s" % statistics.median(v), ["%.2f" % x for x in v])
print("berth-sealed/dist speed %.2fx, berth-clear/dist %.2fx" % (statistics.median(times["distribution"]) / statistics.median(times["berth-sealed"]), statistics.median(times["distribution"]) / statistics.median(times["berth-clear"])))
for b, _ in results.values():
    b.stop()
dist.stop()
shutil.rmtree(work, ignore_errors=True)
