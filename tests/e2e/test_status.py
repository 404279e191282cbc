"""`berth status` against a running server (issue 21): GET /_berth/status needs a principal allowed
`berth:GetStatus` (401 without credentials, 403 without the permission); the command gets a token with
the access key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or takes --token) and prints the version,
uptime, storage, backends and each background worker's state, last run and last error; --json prints
the server's JSON.
"""
import json
import os
import re
import subprocess
import time

import requests

from conftest import Berth, berth_bin


def status_cli(b, *args, key=None, secret=None, token=None):
    env = {k: v for k, v in b.env.items() if not k.startswith("AWS_") and k != "BERTH_TOKEN"}
    if key:
        env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    if token:
        env["BERTH_TOKEN"] = token
    return subprocess.run([berth_bin(), "status", "--endpoint", b.url, *args], capture_output=True, text=True, env=env)


def test_status_reports_workers_storage_and_needs_get_status(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--gc-interval-seconds", "1", "--scan-workers", "2"]).start()
    try:
        r = requests.get(b.url + "/_berth/status", timeout=10)
        assert r.status_code == 401, r.text
        reader_key, reader_secret = b.create_user("reader", policy="AmazonEC2ContainerRegistryReadOnly")
        r = requests.get(b.url + "/_berth/status", auth=("AWS", b.token(reader_key, reader_secret)), timeout=10)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
        refused = status_cli(b, key=reader_key, secret=reader_secret)
        assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr

        policy = tmp_path / "status.json"
        policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["berth:GetStatus", "ecr:GetAuthorizationToken"], "Resource": "*"}]}))
        ops_key, ops_secret = b.create_user("watcher", policy_file=str(policy))

        # Wait for a scheduled GC run to have finished, so the gc worker has a last run.
        deadline = time.monotonic() + 30
        while True:
            out = status_cli(b, "--json", key=ops_key, secret=ops_secret)
            assert out.returncode == 0, out.stderr
            s = json.loads(out.stdout)
            workers = {w["name"]: w for w in s["workers"]}
            if workers["gc"]["last_run_finished_millis"]:
                break
            assert time.monotonic() < deadline, s
            time.sleep(0.2)

        version = subprocess.run([berth_bin(), "--version"], capture_output=True, text=True).stdout.split()[-1]
        assert s["version"] == version
        assert 0 <= s["uptime_seconds"] < 120 and s["draining"] is False
        assert s["backends"] == {"metadata": "up", "blobs": "up"}
        st = os.statvfs(b.data_dir)
        assert s["storage"]["total_bytes"] == st.f_blocks * st.f_frsize
        assert 0 < s["storage"]["free_bytes"] <= s["storage"]["total_bytes"]
        assert s["storage"]["used_bytes"] >= os.path.getsize(os.path.join(b.data_dir, "berth.db"))
        assert s["signing_key_age_seconds"] is not None and s["signing_key_rotation_seconds"] == 90 * 86400
        gc = workers["gc"]
        assert gc["state"] in ("idle", "running") and gc["last_error"] is None and gc["restarts"] == 0
        assert gc["last_success_millis"] == gc["last_run_finished_millis"]
        assert abs(gc["last_run_finished_millis"] / 1000 - time.time()) < 60
        assert workers["scan_worker"]["instances"] == 2 and workers["scan_worker"]["state"] == "running"
        for name in ("lifecycle", "scrub", "flush_pulls", "reload_signing_keys", "replication_worker", "webhook_worker"):
            assert name in workers and workers[name]["state"] in ("idle", "running"), (name, workers.get(name))
        assert s["backups"] is None

        # The readable form, with a token instead of an access key.
        table = status_cli(b, token=b.token(ops_key, ops_secret))
        assert table.returncode == 0, table.stderr
        assert f"berth {version} on node" in table.stdout
        assert "backends blobs up, metadata up" in table.stdout
        assert re.search(r"^storage  .*: [\d.]+ (B|KiB|MiB) used, [\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB$", table.stdout, re.M), table.stdout
        assert re.search(r"^gc\s+(idle|running)\s+1\s+0\s+\d+s ago\s+-$", table.stdout, re.M), table.stdout
        assert re.search(r"^scan_worker\s+running\s+2\s+0\s+-\s+-$", table.stdout, re.M), table.stdout
    finally:
        assert b.stop() == 0
