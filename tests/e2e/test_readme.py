"""The README's commands, run as a newcomer would: its serve command literally (only the listen
address and data directory overridden through the documented environment variables), then its
quick start's login with `berth-data/admin-credentials` as the AWS shared credentials file."""
import json
import os
import re
import signal
import subprocess

import requests

from conftest import ROOT


def readme_block_after(marker):
    text = open(os.path.join(ROOT, "README.md")).read()
    rest = text[text.index(marker):]
    m = re.search(r"```sh\n(.*?)```", rest, re.S)
    return m.group(1).strip()


def test_readme_serve_command_runs_berth(tmp_path):
    cmd = readme_block_after("Run berth")
    assert cmd == "cargo run --release -- serve", cmd
    data = tmp_path / "berth-data"
    env = dict(os.environ, BERTH_LISTEN="127.0.0.1:0", BERTH_DATA_DIR=str(data))
    for k in ("BERTH_ACCOUNT_ID", "BERTH_ADMIN_ACCESS_KEY_ID", "BERTH_ADMIN_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(cmd, shell=True, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log,
                            start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"listening on (\S+)", line)
        assert m, f"no 'listening on' line: {line!r}; log: {open(tmp_path / 'serve.log').read()[-3000:]}"
        url = f"http://{m.group(1)}"
        r = requests.get(url + "/v2/", timeout=30)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith(f'Basic realm="{url}/')

        # The quick start: the saved admin key works as an AWS shared credentials file.
        creds = data / "admin-credentials"
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
        aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        aws_env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_DEFAULT_REGION="us-east-1",
                       AWS_CONFIG_FILE=str(tmp_path / "none"), HOME=str(tmp_path))
        p = subprocess.run(["aws", "--endpoint-url", url, "ecr", "get-login-password"], env=aws_env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        password = p.stdout.strip()
        r = requests.get(url + "/v2/", auth=("AWS", password), timeout=30)
        assert r.status_code == 200 and r.json() == {}
        p = subprocess.run(["aws", "--endpoint-url", url, "ecr", "create-repository", "--repository-name", "team/app"],
                           env=aws_env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["repository"]["repositoryUri"] == f"{m.group(1)}/team/app"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
