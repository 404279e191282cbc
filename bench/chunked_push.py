#!/usr/bin/env python3
"""Push one file as a blob with a plain Python client (requests), as a user's script or oras-py would.

    BENCH_URL=http://HOST:PORT [BENCH_USER=AWS BENCH_PASSWORD=TOKEN] \\
        python3 bench/chunked_push.py --repo REPO --file FILE --digest sha256:... --mode patches|stream [--chunk-mib 10]

Modes:
  patches  POST, then one PATCH per --chunk-mib MiB with Content-Range (read from the file into
           memory first, as oras-py's chunked_upload does), then PUT ?digest= with no body;
  stream   POST, then ONE PATCH streaming the whole file (chunked transfer encoding, no
           Content-Range), then PUT ?digest= — what docker, containerd and skopeo/podman
           (containers/image) send for every layer.
Prints one JSON line: bytes, secs, mb_per_s, requests.
"""
import argparse
import json
import os
import sys
import time
from urllib.parse import urljoin

import requests


def location(r, base):
    loc = r.headers.get("Location")
    if not loc:
        raise SystemExit(f"{r.request.method} {r.request.url}: no Location ({r.status_code} {r.text[:200]})")
    return urljoin(base, loc)


def expect(r, *codes):
    if r.status_code not in codes:
        raise SystemExit(f"{r.request.method} {r.request.url}: HTTP {r.status_code} {r.text[:300]}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--digest", required=True)
    ap.add_argument("--mode", choices=["patches", "stream"], default="patches")
    ap.add_argument("--chunk-mib", type=int, default=10)
    a = ap.parse_args()
    base = os.environ["BENCH_URL"].rstrip("/") + "/"
    s = requests.Session()
    if os.environ.get("BENCH_USER"):
        s.auth = (os.environ["BENCH_USER"], os.environ.get("BENCH_PASSWORD", ""))
    size = os.path.getsize(a.file)
    octet = {"Content-Type": "application/octet-stream"}
    t0 = time.perf_counter()
    r = expect(s.post(urljoin(base, f"v2/{a.repo}/blobs/uploads/"), headers={"Content-Length": "0"}), 202)
    loc = location(r, base)
    requests_made = 2
    with open(a.file, "rb", buffering=0) as f:
        if a.mode == "patches":
            chunk = a.chunk_mib << 20
            offset = 0
            while offset < size:
                data = f.read(chunk)
                end = offset + len(data) - 1
                r = expect(s.patch(loc, data=data, headers={**octet, "Content-Range": f"{offset}-{end}"}), 202)
                loc = location(r, base)
                offset = end + 1
                requests_made += 1
        else:
            def body():
                while block := f.read(1 << 20):
                    yield block
            r = expect(s.patch(loc, data=body(), headers=octet), 202)
            loc = location(r, base)
            requests_made += 1
    sep = "&" if "?" in loc else "?"
    expect(s.put(f"{loc}{sep}digest={a.digest}", headers={"Content-Length": "0"}), 201)
    secs = time.perf_counter() - t0
    print(json.dumps({"client": f"python-{a.mode}", "bytes": size, "secs": round(secs, 4),
                      "mb_per_s": round(size / secs / 1e6, 1), "requests": requests_made}))


if __name__ == "__main__":
    sys.exit(main())
