"""Events to webhooks (issue 19): a receiver started by the test (http.server on 127.0.0.1)
gets ECR's "ECR Image Action" events for a skopeo push and a delete, signed with the webhook's
secret (the test recomputes the HMAC), again under the same X-Berth-Event-Id after answering
500 twice, and, queued while it was down, after a berth restart.

Synchronisation waits on a threading.Condition the receiver notifies, or on berth's own delivery
counts in /metrics (generous timeouts), never on a fixed sleep. `berth admin list-webhooks` runs
once berth is stopped: opening SQLite, an admin command rewrites the schema version in a deferred
transaction, which meets "database is locked" when berth committed a write meanwhile.
"""
import hashlib
import hmac
import http.server
import json
import socket
import subprocess
import threading
import time

import requests

import images
from conftest import Berth, berth_bin

FAST_RETRIES = ["--webhook-retry-initial-ms", "50"]
TIMEOUT = 60


class Receiver:
    """Records each POST (headers, body); answers the scripted statuses in turn, then 200."""

    def __init__(self, port=0, statuses=()):
        self.requests = []
        self.cond = threading.Condition()
        self.statuses = list(statuses)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.cond:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.cond.notify_all()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n):
        """The first `n` requests, once they arrived."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, TIMEOUT), f"{len(self.requests)} of {n} requests arrived"
            return list(self.requests[:n])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin(b, *args, stdin=""):
    p = subprocess.run([berth_bin(), "admin", *args, "--data-dir", b.data_dir], input=stdin, capture_output=True,
                       text=True, env=b.env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def add_webhook(b, url, *args):
    out = admin(b, "add-webhook", "--account", b.account, "--url", url, *args)
    assert out["url"] == url and out["secret"].startswith("whsec_"), out
    return out["id"], out["secret"]


def webhook(b, hook_id):
    hooks = admin(b, "list-webhooks", "--account", b.account, "--deliveries", "50")["webhooks"]
    return next(h for h in hooks if h["id"] == hook_id)


def counted(b, result, n):
    """/metrics once berth counted `n` deliveries of that result (it records an attempt just
    after the receiver answered it); the text. Polled over HTTP: `berth admin` reads the
    database from another process, best done once berth's writes are quiet."""
    deadline = time.monotonic() + TIMEOUT
    line = f'berth_webhook_deliveries_total{{result="{result}"}} '
    while True:
        text = requests.get(f"{b.url}/metrics", timeout=10).text
        got = [int(l[len(line):]) for l in text.splitlines() if l.startswith(line)]
        if got and got[0] >= n:
            return text
        assert time.monotonic() < deadline, f"{result}: {got} of {n}"
        time.sleep(0.1)


def push(b, tmp_path, repo, tag="v1"):
    """skopeo pushes a fresh image; returns the manifest digest skopeo reports."""
    img = images.build_image(str(tmp_path / f"layout-{tag}"), tag, random_size=32 * 1024, with_busybox=False)
    digest_file = tmp_path / f"digest-{tag}"
    creds = f"AWS:{b.token()}"
    p = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", creds,
                        "--digestfile", str(digest_file), img.ref, f"docker://{b.addr}/{repo}:{tag}"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return digest_file.read_text().strip()


def assert_signed(secret, headers, body):
    """What a receiver checks: v1=HMAC-SHA256(secret, timestamp + "." + body), a fresh timestamp."""
    ts = headers["x-berth-timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-berth-signature"], expected), headers
    assert abs(time.time() - int(ts)) < 300, "a receiver rejects old timestamps (replays)"
    assert headers["content-type"] == "application/json"


def test_a_push_and_a_delete_reach_the_webhook_signed_in_ecr_event_shapes(tmp_path):
    receiver = Receiver()
    b = Berth(str(tmp_path / "data")).start()
    try:
        hook_id, secret = add_webhook(b, receiver.url, "--detail-type", "ECR Image Action")
        digest = push(b, tmp_path, "hooks/app")
        [(headers, body)] = receiver.wait_for(1)
        event = json.loads(body)
        assert_signed(secret, headers, body)
        assert headers["x-berth-event-id"] == event["id"]
        assert {k: event[k] for k in ("version", "detail-type", "source", "account", "region", "resources")} == {
            "version": "0", "detail-type": "ECR Image Action", "source": "aws.ecr", "account": b.account,
            "region": b.region, "resources": [f"arn:aws:ecr:{b.region}:{b.account}:repository/hooks/app"]}
        assert event["detail"] == {"result": "SUCCESS", "repository-name": "hooks/app", "image-digest": digest,
                                   "action-type": "PUSH", "image-tag": "v1"}
        assert event["time"].endswith("Z") and len(event["time"]) == 20, event["time"]

        # A delete with the ECR API: DELETE for the same image.
        out = b.ecr().batch_delete_image(repositoryName="hooks/app", imageIds=[{"imageTag": "v1"}])
        assert out["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}], out
        headers, body = receiver.wait_for(2)[1]
        assert_signed(secret, headers, body)
        deleted = json.loads(body)
        assert deleted["detail"] == {"result": "SUCCESS", "repository-name": "hooks/app", "image-digest": digest,
                                     "action-type": "DELETE", "image-tag": "v1"}
        assert deleted["id"] != event["id"]

        metrics = counted(b, "delivered", 2)
        assert 'berth_webhook_deliveries_total{result="delivered"} 2' in metrics
        assert receiver.url not in metrics and secret not in metrics
        b.stop()
        h = webhook(b, hook_id)
        assert [d["outcome"] for d in h["deliveries"]] == ["delivered", "delivered"]
        assert "secret" not in h and secret not in json.dumps(h), "list-webhooks never shows the secret"
        assert secret not in open(b.log_path).read(), "the secret never reaches the log"
    finally:
        b.stop()
        receiver.close()


def test_a_receiver_answering_500_twice_gets_the_event_again_with_the_same_event_id(tmp_path):
    receiver = Receiver(statuses=[500, 500])
    b = Berth(str(tmp_path / "data"), extra_args=FAST_RETRIES).start()
    try:
        secret = "a secret of the receiver's"
        out = admin(b, "add-webhook", "--account", b.account, "--url", receiver.url, "--secret-stdin", stdin=secret + "\n")
        assert "secret" not in out, "a secret given on stdin is not printed"
        digest = push(b, tmp_path, "hooks/retried")
        got = receiver.wait_for(3)
        ids = {h["x-berth-event-id"] for h, _ in got}
        assert len(ids) == 1, ids
        assert {body for _, body in got} == {got[0][1]}, "every attempt sends the same event"
        for headers, body in got:
            assert_signed(secret, headers, body)
        assert json.loads(got[2][1])["detail"]["image-digest"] == digest

        metrics = counted(b, "delivered", 1)
        assert 'berth_webhook_deliveries_total{result="retried"} 2' in metrics
        assert 'berth_webhook_deliveries_total{result="delivered"} 1' in metrics
        assert "berth_webhook_queue_depth 0" in metrics
        b.stop()
        h = webhook(b, out["id"])
        assert [(d["attempt"], d["status_code"], d["outcome"]) for d in h["deliveries"]] == [
            (3, 200, "delivered"), (2, 500, "retrying"), (1, 500, "retrying")]
        assert h["last_error"] == "HTTP 500 Internal Server Error" and h["last_success_at"] > h["last_error_at"]
    finally:
        b.stop()
        receiver.close()


def test_an_event_queued_while_the_receiver_is_down_is_delivered_after_a_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    b = Berth(str(tmp_path / "data"), extra_args=FAST_RETRIES).start()
    receiver = None
    try:
        hook_id, secret = add_webhook(b, url)
        digest = push(b, tmp_path, "hooks/later")
        counted(b, "retried", 1)
        b.stop()
        failed = webhook(b, hook_id)["deliveries"]
        assert failed and all(d["outcome"] == "retrying" and d["status_code"] is None for d in failed), failed
        assert "onnect" in failed[-1]["error"] and url not in json.dumps(failed), "the error, never the URL"

        receiver = Receiver(port=port)
        b.start()
        headers, body = receiver.wait_for(1)[0]
        assert_signed(secret, headers, body)
        event = json.loads(body)
        assert headers["x-berth-event-id"] == failed[-1]["event_id"] == event["id"], "the same event, not a new one"
        assert event["detail"]["image-digest"] == digest and event["detail"]["action-type"] == "PUSH"
        counted(b, "delivered", 1)
        b.stop()
        assert webhook(b, hook_id)["deliveries"][0]["outcome"] == "delivered"
    finally:
        b.stop()
        if receiver:
            receiver.close()


def test_add_webhook_refuses_what_it_cannot_deliver_to(tmp_path):
    b = Berth(str(tmp_path / "data"))
    for args in (["--url", "ftp://127.0.0.1/x"], ["--url", "not a url"], ["--url", "http://127.0.0.1/x", "--detail-type", "ECR Image Push"]):
        p = subprocess.run([berth_bin(), "admin", "add-webhook", "--data-dir", b.data_dir, "--account", b.account, *args],
                           capture_output=True, text=True, env=b.env)
        assert p.returncode != 0 and p.stdout == "", (args, p.stdout)
    removed = subprocess.run([berth_bin(), "admin", "remove-webhook", "--data-dir", b.data_dir, "--account", b.account,
                              "--id", "no-such-id"], capture_output=True, text=True, env=b.env)
    assert removed.returncode == 1 and json.loads(removed.stdout) == {"id": "no-such-id", "removed": False}


def only(receiver, n, detail_type):
    """The first `n` requests, each an event of `detail_type` (the webhook asked for it alone)."""
    got = receiver.wait_for(n)
    events = [json.loads(body) for _, body in got]
    assert [e["detail-type"] for e in events] == [detail_type] * n, events
    return got, events


def test_scan_on_push_sends_ecr_image_scan_with_the_severity_counts(tmp_path):
    from test_scanning import debian_layers, import_fixtures, push_layers
    from test_ecr import reg_for

    receiver = Receiver()
    b = Berth(str(tmp_path / "data"))
    try:
        import_fixtures(b)
        b.start()
        _, secret = add_webhook(b, receiver.url, "--detail-type", "ECR Image Scan")
        b.ecr().create_repository(repositoryName="hooks/scanned", imageScanningConfiguration={"scanOnPush": True})
        digest = push_layers(reg_for(b), "hooks/scanned", "v1", debian_layers())
        [(headers, body)], [event] = only(receiver, 1, "ECR Image Scan")
        assert_signed(secret, headers, body)
        assert headers["x-berth-event-id"] == event["id"]
        assert event["resources"] == [f"arn:aws:ecr:{b.region}:{b.account}:repository/hooks/scanned"]
        assert event["detail"] == {"scan-status": "COMPLETE", "repository-name": "hooks/scanned", "image-digest": digest,
                                   "image-tags": ["v1"],
                                   "finding-severity-counts": {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 3, "LOW": 1}}
        found = b.ecr().describe_image_scan_findings(repositoryName="hooks/scanned", imageId={"imageTag": "v1"})
        assert found["imageScanFindings"]["findingSeverityCounts"] == event["detail"]["finding-severity-counts"]
    finally:
        b.stop()
        receiver.close()


def test_a_lifecycle_run_that_expires_an_image_sends_ecr_lifecycle_policy_action(tmp_path):
    receiver = Receiver()
    b = Berth(str(tmp_path / "data")).start()
    try:
        _, secret = add_webhook(b, receiver.url, "--detail-type", "ECR Lifecycle Policy Action")
        old = push(b, tmp_path, "hooks/expiring", "old")
        push(b, tmp_path, "hooks/expiring", "new")
        policy = {"rules": [{"rulePriority": 1, "description": "keep one", "selection": {
            "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}
        b.ecr().put_lifecycle_policy(repositoryName="hooks/expiring", lifecyclePolicyText=json.dumps(policy))
        r = requests.post(f"{b.url}/_berth/lifecycle", auth=("AWS", b.token()), timeout=60)
        assert r.status_code == 200, r.text
        [(headers, body)], [event] = only(receiver, 1, "ECR Lifecycle Policy Action")
        assert_signed(secret, headers, body)
        assert event["detail"] == {"result": "SUCCESS", "action-type": "EXPIRE", "repository-name": "hooks/expiring",
                                   "image-digest": old, "image-tags": ["old"], "rule-priority": 1}
        left = b.ecr().list_images(repositoryName="hooks/expiring")["imageIds"]
        assert [i["imageTag"] for i in left] == ["new"], left
    finally:
        b.stop()
        receiver.close()


def test_replication_to_another_region_sends_ecr_replication_action(tmp_path):
    receiver = Receiver()
    b = Berth(str(tmp_path / "data")).start()
    try:
        _, secret = add_webhook(b, receiver.url, "--detail-type", "ECR Replication Action")
        b.ecr().put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": "us-west-2", "registryId": b.account}]}]})
        digest = push(b, tmp_path, "hooks/replicated")
        [(headers, body)], [event] = only(receiver, 1, "ECR Replication Action")
        assert_signed(secret, headers, body)
        assert event["region"] == b.region, "the source's event"
        assert event["detail"] == {"result": "SUCCESS", "action-type": "REPLICATE", "repository-name": "hooks/replicated",
                                   "image-digest": digest, "destination-region": "us-west-2",
                                   "destination-registry-id": b.account}
        copy = b.ecr(region="us-west-2").describe_images(repositoryName="hooks/replicated")["imageDetails"]
        assert [i["imageDigest"] for i in copy] == [digest]
    finally:
        b.stop()
        receiver.close()
