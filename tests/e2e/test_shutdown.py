"""Graceful restarts and upgrades (issue 21): on SIGTERM /health answers 503 (draining) while the
listener still accepts, then the listener closes and a blob download already in flight finishes with
every byte; `berth serve` refuses a metadata schema newer than it understands, saying so.
"""
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import time

import requests

from conftest import Berth, berth_bin

SIZE = 64 * 1024 * 1024


def refused(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return False
    except OSError:
        return True


def test_sigterm_drains_health_first_and_an_inflight_pull_finishes(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--shutdown-drain-delay-seconds", "3", "--shutdown-grace-seconds", "60"]).start()
    auth = ("AWS", b.token())
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{b.url}/v2/drain/app/blobs/uploads/", auth=auth, timeout=30)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else b.url + loc
    r = requests.put(loc, params={"digest": digest}, data=data, auth=auth, timeout=120,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert requests.get(b.url + "/health", timeout=10).text == "ok\n"

    pull = requests.get(f"{b.url}/v2/drain/app/blobs/{digest}", auth=auth, stream=True, timeout=120)
    assert pull.status_code == 200
    chunks = pull.iter_content(1024 * 1024)
    got = hashlib.sha256()
    first = next(chunks)
    got.update(first)
    received = len(first)

    b.proc.send_signal(signal.SIGTERM)
    # Draining: still accepting, health says so.
    deadline = time.monotonic() + 10
    while True:
        h = requests.get(b.url + "/health", timeout=5)
        if h.status_code == 503:
            break
        assert time.monotonic() < deadline, "health never turned 503 after SIGTERM"
        time.sleep(0.05)
    assert h.text == "draining\n"
    # Then the listener closes while the pull (64 MiB: far more than the socket buffers hold) is
    # still in flight.
    deadline = time.monotonic() + 15
    while not refused(b.addr):
        assert time.monotonic() < deadline, "the listener did not close after the drain delay"
        time.sleep(0.05)
    assert b.proc.poll() is None, "berth waits for the download in flight"
    for chunk in chunks:
        got.update(chunk)
        received += len(chunk)
    assert received == SIZE and "sha256:" + got.hexdigest() == digest
    assert b.proc.wait(timeout=30) == 0


def test_serve_refuses_a_schema_newer_than_it_understands(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    assert b.stop() == 0
    db = sqlite3.connect(os.path.join(b.data_dir, "berth.db"))
    (version,) = db.execute("PRAGMA user_version").fetchone()
    db.execute(f"PRAGMA user_version = {version + 1}")
    db.commit()
    db.close()
    p = subprocess.run([berth_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", b.data_dir], capture_output=True,
                       text=True, env=b.env, timeout=60)
    assert p.returncode != 0 and "listening on" not in p.stdout
    assert f"schema version {version + 1} is newer than this berth ({version})" in p.stderr, p.stderr
