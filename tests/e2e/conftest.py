"""Shared fixtures: a real berth process on a free loopback port.

berth prints `listening on HOST:PORT` as its first stdout line once the
socket is bound (we pass port 0, so the kernel picks a free port and there
is no race between choosing and binding).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def berth_bin():
    path = os.environ.get("BERTH_BIN") or os.path.join(ROOT, "target", "release", "berth")
    if not os.path.exists(path):
        raise RuntimeError(f"berth binary not found at {path}; build it or set BERTH_BIN")
    return path


ACCOUNT = "123456789012"
REGION = "us-east-1"
ADMIN_KEY = "AKIAIOSFODNN7EXAMPLE"
ADMIN_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class Berth:
    """A running berth server. `addr` is HOST:PORT, `url` is http://HOST:PORT.

    Started with a known admin access key (BERTH_ADMIN_*), so tests can sign ECR
    calls and fetch registry tokens (`token()`) for /v2/.
    """

    account = ACCOUNT
    region = REGION
    admin_key = ADMIN_KEY
    admin_secret = ADMIN_SECRET

    def __init__(self, data_dir, extra_args=(), env=None, binary=None):
        self.data_dir = data_dir
        self.binary = binary  # another build of berth (the previous release); default BERTH_BIN
        self.extra_args = list(extra_args)
        base = {
            "BERTH_ACCOUNT_ID": ACCOUNT,
            "BERTH_REGION": REGION,
            "BERTH_ADMIN_ACCESS_KEY_ID": ADMIN_KEY,
            "BERTH_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET,
        }
        self.env = dict(os.environ, **base, **(env or {}))
        self._token = None
        self.proc = None
        self.addr = None
        self.log_path = os.path.join(data_dir + ".log")

    def start(self, listen="127.0.0.1:0"):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary or berth_bin(), "serve", "--listen", listen, "--data-dir", self.data_dir, *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env,
        )
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"berth did not start: {line!r}; log: {open(self.log_path).read()[-4000:]}")
        self.addr = m.group(1)
        return self

    @property
    def url(self):
        return f"http://{self.addr}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def restart(self):
        """Start again on the same data dir and the same port."""
        self.stop()
        return self.start(listen=self.addr)

    def cli(self, *args, check=True):
        """Run a berth subcommand (gc, fsck, admin ...)."""
        return subprocess.run([berth_bin(), *args], capture_output=True, text=True, check=check, env=self.env)

    def ecr(self, key=ADMIN_KEY, secret=ADMIN_SECRET, region=REGION):
        """A boto3 ECR client signed with the given access key."""
        import boto3

        return boto3.client(
            "ecr",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    def token(self, key=ADMIN_KEY, secret=ADMIN_SECRET):
        """The registry password (`aws ecr get-login-password`) for an access key."""
        import base64

        if key == ADMIN_KEY and self._token:
            return self._token
        data = self.ecr(key, secret).get_authorization_token()["authorizationData"][0]
        user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        assert user == "AWS"
        if key == ADMIN_KEY:
            self._token = password
        return password

    def create_user(self, name, policy=None, policy_file=None, account=ACCOUNT):
        """Creates a user with an access key via `berth admin`; returns (access_key_id, secret)."""
        import json

        args = ["admin", "create-user", "--data-dir", self.data_dir, "--account", account, "--name", name]
        if policy:
            args += ["--policy", policy]
        if policy_file:
            args += ["--policy-file", policy_file]
        out = json.loads(self.cli(*args).stdout)
        return out["access_key_id"], out["secret_access_key"]


@pytest.fixture(scope="session")
def berth(tmp_path_factory):
    """One shared server for the session; tests use unique repository names."""
    d = str(tmp_path_factory.mktemp("berth") / "data")
    b = Berth(d).start()
    yield b
    b.stop()


@pytest.fixture
def fresh_berth(tmp_path):
    """A server of its own, for tests that restart, kill or inspect the data dir."""
    b = Berth(str(tmp_path / "data")).start()
    yield b
    b.stop()


@pytest.fixture
def repo():
    """A unique repository name (namespaced, as ECR users name them)."""
    return f"team/t{uuid.uuid4().hex[:10]}"
