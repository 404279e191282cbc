"""Operations: TLS, health, metrics, structured logs, graceful shutdown, config file."""
import json
import os
import re
import signal
import subprocess

import requests

from conftest import Berth


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_serves_the_same_api(tmp_path):
    cert, key = _self_signed(tmp_path)
    b = Berth(str(tmp_path / "data"), extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        url = f"https://{b.addr}"
        r = requests.get(url + "/v2/", verify=str(cert), timeout=30)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        # Plain HTTP on the TLS port is refused, not served.
        try:
            plain = requests.get(f"http://{b.addr}/v2/", timeout=10)
            assert plain.status_code >= 400
        except requests.exceptions.ConnectionError:
            pass
        import boto3

        ecr = boto3.client("ecr", endpoint_url=url, region_name=b.region, verify=str(cert),
                           aws_access_key_id=b.admin_key, aws_secret_access_key=b.admin_secret)
        data = ecr.get_authorization_token()["authorizationData"][0]
        assert data["proxyEndpoint"].startswith("https://")
        import base64

        token = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)[1]
        r = requests.get(url + "/v2/", auth=("AWS", token), verify=str(cert), timeout=30)
        assert r.status_code == 200
        assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    finally:
        b.stop()


def test_health_and_metrics(berth):
    assert requests.get(berth.url + "/health", timeout=10).status_code == 200
    requests.get(berth.url + "/v2/", auth=("AWS", berth.token()), timeout=10)
    text = requests.get(berth.url + "/metrics", timeout=10).text
    assert 'berth_http_requests_total{method="GET",route="v2_base",status="200"}' in text
    for name in ("berth_http_request_duration_seconds_bucket", "berth_http_request_bytes_total",
                 "berth_http_response_bytes_total", "berth_upload_sessions_open", "berth_gc_runs_total",
                 "berth_gc_bytes_reclaimed_total"):
        assert name in text, name


def test_metrics_list_every_supervised_background_task(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--scan-workers", "3", "--replication-workers", "2", "--webhook-workers", "2"]).start()
    try:
        text = requests.get(b.url + "/metrics", timeout=10).text
    finally:
        assert b.stop() == 0, "SIGTERM stops the supervised tasks and exits 0"
    up = dict(re.findall(r'^berth_task_up\{task="([a-z_]+)"\} (\d+)$', text, re.M))
    assert up == {"gc": "1", "lifecycle": "1", "scrub": "1", "flush_pulls": "1", "reload_signing_keys": "1",
                  "watch_vulndb": "1", "scan_worker": "3", "replication_worker": "2",
                  "audit_writer": "1", "audit_digests": "1", "audit_retention": "1",
                  "webhook_worker": "2"}, text
    restarts = dict(re.findall(r'^berth_task_restarts_total\{task="([a-z_]+)"\} (\d+)$', text, re.M))
    assert set(restarts) == set(up) and set(restarts.values()) == {"0"}, restarts


def test_json_logs_one_line_per_request_without_secrets(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--log-format", "json"]).start()
    try:
        token = b.token()
        requests.get(b.url + "/v2/_catalog?n=5", auth=("AWS", token), timeout=10)
    finally:
        assert b.stop() == 0, "SIGTERM is a graceful shutdown (exit 0)"
    lines = [json.loads(l) for l in open(b.log_path) if l.startswith("{")]
    reqs = [l for l in lines if l.get("message") == "request"]
    catalog = [l for l in reqs if l.get("route") == "v2_catalog"]
    assert catalog and catalog[0]["status"] == 200 and catalog[0]["method"] == "GET" and "duration_ms" in catalog[0]
    admin_arn = f"arn:aws:iam::{b.account}:user/admin"
    # Each line names the action and the principal; ECR answers count their bytes.
    assert catalog[0]["action"] == "ecr:DescribeRepositories" and catalog[0]["principal"] == admin_arn, catalog[0]
    token_calls = [l for l in reqs if l.get("action") == "ecr:GetAuthorizationToken"]
    assert token_calls and token_calls[0]["route"] == "ecr" and token_calls[0]["principal"] == admin_arn, token_calls
    assert token_calls[0]["bytes_out"] > 100, token_calls[0]
    log_text = open(b.log_path).read()
    assert token not in log_text and b.admin_secret not in log_text


def test_config_file_and_first_start_credentials(tmp_path):
    """Without BERTH_ADMIN_*, first start generates an admin key, prints it once and saves it 0600."""
    cfg = tmp_path / "berth.toml"
    cfg.write_text('log_format = "text"\ngc_grace_seconds = 3600\naccount_id = "555555555555"\n')
    env = {k: "" for k in ("BERTH_ADMIN_ACCESS_KEY_ID", "BERTH_ADMIN_SECRET_ACCESS_KEY", "BERTH_ACCOUNT_ID")}
    b = Berth(str(tmp_path / "data"), extra_args=["--config", str(cfg)])
    for k in env:
        b.env.pop(k, None)
    b.start()
    try:
        creds = tmp_path / "data" / "admin-credentials"
        assert oct(os.stat(creds).st_mode & 0o777) == "0o600"
        text = creds.read_text()
        key = text.split("aws_access_key_id = ")[1].split()[0]
        secret = text.split("aws_secret_access_key = ")[1].split()[0]
        assert secret in open(b.log_path).read(), "shown once on first start"
        import boto3

        ecr = boto3.client("ecr", endpoint_url=b.url, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret)
        assert ecr.describe_registry()["registryId"] == "555555555555"
        b.restart()
        assert open(b.log_path).read().count(secret) == 1, "not shown again"
    finally:
        b.stop()
