"""Rolling upgrades of a cluster (issue 21): two nodes of the previous release (the commit named in
release/PREVIOUS, built by scripts/build-previous.sh into BERTH_PREVIOUS_BIN) serve one PostgreSQL
database and one bucket behind a load balancer that health-checks them; while skopeo pushes and
pulls through the balancer without pause (retrying as docker does), each node in turn gets SIGTERM,
drains and is replaced by this build. No request a client sends may fail: the balancer stops
sending to a node once its /health says draining, and the node finishes what it has in flight.
`berth serve` refuses a PostgreSQL schema newer than it understands.
"""
import os
import signal
import subprocess
import threading
import time

import images
from conftest import ROOT, berth_bin
from lbproxy import LoadBalancer
from test_clients import Clients
from test_cluster import Cluster, infra, short_dirs  # noqa: F401 (fixtures)

MiB = 1024 * 1024
REPO = "upgrade/app"
NODE_ARGS = ["--shutdown-drain-delay-seconds", "2", "--shutdown-grace-seconds", "60"]


def previous_bin():
    path = os.environ.get("BERTH_PREVIOUS_BIN")
    commit = open(os.path.join(ROOT, "release", "PREVIOUS")).read().split()[0]
    assert path and os.path.exists(path), (
        f"BERTH_PREVIOUS_BIN must name berth built from the previous release ({commit}, release/PREVIOUS): "
        "scripts/build-previous.sh builds it (scripts/test.sh does)")
    return path


class Deployment(Cluster):
    """One database and bucket prefix; nodes started with the binary asked for."""

    def __init__(self, infra, tmp_path):
        super().__init__(infra, tmp_path, names=(), node_args=NODE_ARGS)

    def serve_once(self, binary):
        """Starts `berth serve` on the deployment: (True, "") once it listens (it is then stopped),
        or (False, its stderr) when it refuses to start."""
        p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.tmp / "once"), *self.args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **self.env))
        if "listening on" in p.stdout.readline():
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=60)
            return True, ""
        _, err = p.communicate(timeout=120)
        assert p.returncode != 0, err
        return False, err

    def schema_version(self):
        out = subprocess.run(["psql", self.db, "-tA", "-c", "SELECT version FROM berth_schema_version"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())

class Front:
    """What Clients needs of a registry: its address (the balancer's), a token, a log to show."""

    def __init__(self, addr, node):
        self.addr, self.node, self.log_path = addr, node, node.log_path

    def token(self):
        return self.node.token()


class Workload(threading.Thread):
    """Pushes an image under a new tag, then pulls it back and compares, round after round, until
    stopped. skopeo retries each copy as docker retries a push or pull (--retry-times)."""

    def __init__(self, clients, imgs, out):
        super().__init__(daemon=True)
        self.c, self.imgs, self.out = clients, imgs, out
        os.makedirs(out, exist_ok=True)
        self.rounds = 0
        self.failed = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            img = self.imgs[self.rounds % len(self.imgs)]
            tag = f"r{self.rounds}"
            try:
                self.c.skopeo_copy(img.ref, self.c.docker_ref(REPO, tag), "--retry-times", "3")
                pulled = self.out / tag
                self.c.skopeo_copy(self.c.docker_ref(REPO, tag), f"dir:{pulled}", "--retry-times", "3")
                if (pulled / "manifest.json").read_bytes() != img.manifest_bytes:
                    self.failed.append((tag, "pulled another manifest"))
            except AssertionError as e:
                self.failed.append((tag, str(e)[:3000]))
            self.rounds += 1

    def wait_rounds(self, n, timeout=300):
        end = time.monotonic() + timeout
        while self.rounds < n:
            assert self.is_alive() and time.monotonic() < end, f"the workload stalled at round {self.rounds}: {self.failed}"
            time.sleep(0.05)  # polling progress, not ordering events


def test_rolling_upgrade_from_the_previous_release_fails_no_request(infra, tmp_path, short_dirs):  # noqa: F811
    previous = previous_bin()
    d = Deployment(infra, tmp_path)
    lb = None
    try:
        nodes = {"a": d.node("a", previous), "b": d.node("b", previous)}
        lb = LoadBalancer({n: b.addr for n, b in nodes.items()})
        for n in nodes:
            lb.wait_healthy(n)
        c = Clients(Front(lb.addr, nodes["a"]), tmp_path / "client", short_dirs())
        layout = str(tmp_path / "layout")
        # Distinct images, so the rounds through the restarts upload new layers (not only manifests).
        imgs = [images.build_image(layout, f"i{k}", random_size=(k + 1) * MiB // 4, with_busybox=False) for k in range(12)]
        c.skopeo_copy(imgs[0].ref, c.docker_ref(REPO, "before"))

        work = Workload(c, imgs, tmp_path / "pulls")
        work.start()
        work.wait_rounds(2)
        for name in ("a", "b"):
            old = nodes[name]
            old.proc.send_signal(signal.SIGTERM)
            assert old.proc.wait(timeout=90) == 0, open(old.log_path).read()[-3000:]
            nodes[name] = d.node(name)  # this build, on the node's own data directory
            lb.set_backend(name, nodes[name].addr)
            lb.wait_healthy(name)
            # Old and new side by side (after the first replacement), then new only.
            work.wait_rounds(work.rounds + 2)
        work.halt.set()
        work.join(timeout=300)

        assert work.failed == [], work.failed
        assert lb.failures == [], lb.failures
        print(f"rolling upgrade: {work.rounds} push+pull rounds, {lb.requests} requests "
              f"({lb.by_backend}), 0 failed")
        # What the previous release stored reads back through this one.
        pulled = tmp_path / "before"
        c.skopeo_copy(c.docker_ref(REPO, "before"), f"dir:{pulled}")
        assert (pulled / "manifest.json").read_bytes() == imgs[0].manifest_bytes
        assert images.file_digest(pulled / imgs[0].layer_digests[0].split(":")[1]) == imgs[0].layer_digests[0]

        # A schema this build moved on is refused by the previous release (never half-used);
        # an unchanged one it keeps serving.
        started, err = d.serve_once(previous)
        if not started:
            assert f"schema version {d.schema_version()} is newer than this berth" in err, err
    finally:
        if lb:
            lb.close()
        d.stop()


def test_serve_refuses_a_postgres_schema_newer_than_it_understands(infra, tmp_path):  # noqa: F811
    d = Deployment(infra, tmp_path)
    try:
        assert d.node("a").stop() == 0
        version = d.schema_version()
        subprocess.run(["psql", d.db, "-q", "-c", f"UPDATE berth_schema_version SET version = {version + 1}"],
                       capture_output=True, check=True)
        started, err = d.serve_once(berth_bin())
        assert not started and f"schema version {version + 1} is newer than this berth ({version})" in err, err
        assert d.schema_version() == version + 1, "a refused start changes nothing"
    finally:
        d.stop()
