#!/usr/bin/env python3
"""Pull-through cache (issue 20's figures): the first pull of a large image through berth vs
straight from the upstream (goal <= 1.1x the direct time: streamed, not store-then-serve), and a
cached pull through berth vs CNCF distribution's proxy mode on the same machine (goal >= 1.5x).

    BERTH_BIN=.../berth python3 bench/pull_through.py [LAYER_MIB] [ROUNDS]

The upstream is distribution 2.8 (`docker-registry`, anonymous) holding one image with a
LAYER_MIB (default 200) random layer, pushed with skopeo. Each round starts a fresh berth (rule
`up` → the upstream, `--allow-insecure-upstreams`) and a fresh distribution in proxy mode
(`proxy.remoteurl` = the upstream), both empty, then times with curl (the client costs the same
for every target; skopeo is client-bound at these sizes):
  direct   GET the manifest by tag, then the layer, from the upstream (direct_s: the layer alone);
  first    GET the manifest by tag, then the layer, through each cache (a miss: fetched upstream);
  cached   the same layer again through each cache (3 times; the median), with curl and again
           with berth-bench's pull-blob (BENCH_BIN, default target/release/berth-bench): curl
           receives at about the loopback sendfile limit, so it cannot show a server faster
           than that; berth-bench receives faster (bench/RESULTS.md, "Machine limits").
Prints one JSON line per round and a summary with medians and the ratios: first_vs_direct
compares like with like (manifest + layer both ways); first_layer_vs_direct_layer the layer GETs
alone.
PTC_BERTH_ARGS adds berth serve flags (e.g. "--aes256-by-storage": AES256 repositories' blobs in
clear, as distribution stores them; by default berth seals every blob at rest).
PTC_UPSTREAM_MBPS=N puts the upstream behind a link of N MB/s (10^6 bytes/s, upstream to client;
e.g. 125 for 1 Gbit/s): a pacing TCP proxy that the direct pulls, berth and distribution's proxy
all go through. Unset, the upstream is on loopback (~2 GB/s), where every target is bound by the
2 cores it shares with the upstream and curl rather than by the link.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
import images  # noqa: E402
import requests  # noqa: E402
from conftest import Berth  # noqa: E402

ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    def __init__(self, d, proxy_of=None):
        os.makedirs(d, exist_ok=True)
        self.addr = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.addr}"
        proxy = f"proxy:\n  remoteurl: {proxy_of}\n" if proxy_of else ""
        config = os.path.join(d, "registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/store\n"
                    f"http:\n  addr: {self.addr}\n{proxy}")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "log"), "ab"))
        end = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < end, "docker-registry did not start"
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class PacedLink:
    """A TCP proxy in front of ADDR that sends upstream-to-client bytes at RATE bytes/s over all its
    connections together (one shared link), the other direction unpaced. A bench helper, not a
    test fixture: it models a WAN upstream on loopback without root (tc) and costs ~1% of a core at
    125 MB/s."""

    def __init__(self, addr, rate):
        self.target = addr.rsplit(":", 1)
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.url = f"http://{self.addr}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection((self.target[0], int(self.target[1])))
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src, dst, paced):
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                if paced:
                    with self.lock:
                        now = time.monotonic()
                        self.next_free = max(self.next_free, now) + len(data) / self.rate
                        wait = self.next_free - now - len(data) / self.rate
                    if wait > 0:
                        time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.sock.close()


def curl_seconds(url, user=None, accept=None):
    cmd = ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url]
    if user:
        cmd += ["-u", user]
    if accept:
        cmd += ["-H", f"Accept: {accept}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def bench_seconds(base_url, repo, digest, user=None):
    """Seconds of one GET of a blob by berth-bench's pull-blob (a faster client than curl)."""
    cmd = [os.environ.get("BENCH_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "berth-bench")),
           "--url", base_url]
    if user:
        name, password = user.split(":", 1)
        cmd += ["--user", name, "--password", password]
    out = subprocess.run(cmd + ["pull-blob", "--repo", repo, "--digest", digest], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["secs"]


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = tempfile.mkdtemp(prefix="ptc-bench-")
    upstream = Distribution(os.path.join(work, "upstream"))
    img = images.build_image(os.path.join(work, "oci"), "big", random_size=mib * 1024 * 1024, with_busybox=False)
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", img.ref, f"docker://{upstream.addr}/bench/big:v1"],
                   check=True, capture_output=True)
    mbps = float(os.environ.get("PTC_UPSTREAM_MBPS", "0"))
    link = PacedLink(upstream.addr, mbps * 1e6) if mbps > 0 else upstream
    layer = max(img.layer_digests, key=lambda d: os.path.getsize(os.path.join(img.layout, "blobs", "sha256", d[7:])))
    size = os.path.getsize(os.path.join(img.layout, "blobs", "sha256", layer[7:]))
    rows = []
    try:
        for r in range(rounds):
            b = Berth(os.path.join(work, f"berth-{r}"), extra_args=["--allow-insecure-upstreams", *os.environ.get("PTC_BERTH_ARGS", "").split()]).start()
            proxy = Distribution(os.path.join(work, f"proxy-{r}"), proxy_of=link.url)
            try:
                b.ecr().create_pull_through_cache_rule(ecrRepositoryPrefix="up", upstreamRegistryUrl=link.url)
                user = f"AWS:{b.token()}"
                dm, _ = curl_seconds(f"{link.url}/v2/bench/big/manifests/v1", None, ACCEPT)
                direct, n = curl_seconds(f"{link.url}/v2/bench/big/blobs/{layer}")
                assert n == size
                # First pulls: the manifest by tag (a miss), then the layer (a miss, streamed).
                m1, _ = curl_seconds(f"{b.url}/v2/up/bench/big/manifests/v1", user, ACCEPT)
                b1, n = curl_seconds(f"{b.url}/v2/up/bench/big/blobs/{layer}", user)
                assert n == size
                m2, _ = curl_seconds(f"{proxy.url}/v2/bench/big/manifests/v1", None, ACCEPT)
                d1, n = curl_seconds(f"{proxy.url}/v2/bench/big/blobs/{layer}")
                assert n == size
                # Cached pulls (berth stores in the background after the first pull; wait for it).
                end = time.monotonic() + 120
                ecr = b.ecr()
                while True:
                    try:
                        ecr.describe_images(repositoryName="up/bench/big", imageIds=[{"imageTag": "v1"}])
                        break
                    except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
                        assert time.monotonic() < end, "the image was not stored in time"
                        time.sleep(0.1)
                bc = statistics.median(curl_seconds(f"{b.url}/v2/up/bench/big/blobs/{layer}", user)[0] for _ in range(3))
                dc = statistics.median(curl_seconds(f"{proxy.url}/v2/bench/big/blobs/{layer}")[0] for _ in range(3))
                bcb = statistics.median(bench_seconds(b.url, "up/bench/big", layer, user) for _ in range(3))
                dcb = statistics.median(bench_seconds(proxy.url, "bench/big", layer) for _ in range(3))
                row = {"round": r, "layer_mib": round(size / 2**20, 1), "direct_s": direct,
                       "direct_image_s": round(dm + direct, 4), "berth_first_s": round(m1 + b1, 4),
                       "berth_first_layer_s": b1, "distribution_proxy_first_s": round(m2 + d1, 4),
                       "berth_cached_s": bc, "distribution_proxy_cached_s": dc,
                       "berth_cached_bench_client_s": round(bcb, 4), "distribution_proxy_cached_bench_client_s": round(dcb, 4)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            finally:
                proxy.stop()
                b.stop()
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.endswith("_s")}
    print(json.dumps({
        **{k: round(v, 4) for k, v in med.items()},
        "first_vs_direct": round(med["berth_first_s"] / med["direct_image_s"], 2), "first_goal": "<= 1.1",
        "first_layer_vs_direct_layer": round(med["berth_first_layer_s"] / med["direct_s"], 2),
        "distribution_first_vs_direct": round(med["distribution_proxy_first_s"] / med["direct_image_s"], 2),
        "cached_speedup_vs_distribution_proxy": round(med["distribution_proxy_cached_s"] / med["berth_cached_s"], 2),
        "cached_speedup_vs_distribution_proxy_bench_client":
            round(med["distribution_proxy_cached_bench_client_s"] / med["berth_cached_bench_client_s"], 2),
        "cached_goal": ">= 1.5", "upstream_link_mbps": mbps or "loopback", "layer_mib": rows[0]["layer_mib"], "rounds": len(rows), "load": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
