"""The audit trail (issue 19): CloudTrail-shaped records of every call, LookupEvents through the
aws CLI and boto3, the hash chain (`berth audit verify`), export, and clean-shutdown durability.

Records are written off the request path (a batch writer), so a lookup right after a call polls
until the record is there (bounded by a deadline), never sleeps a fixed time.
"""
import base64
import concurrent.futures
import json
import os
import re
import sqlite3
import subprocess
import time
import uuid

import boto3
import pytest
import requests

from conftest import ACCOUNT, ADMIN_SECRET, REGION, Berth
from images import build_image


def aws(b, *args, key=None, secret=None, check=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key or b.admin_key, AWS_SECRET_ACCESS_KEY=secret or b.admin_secret,
               AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_SHARED_CREDENTIALS_FILE", None)
    env.pop("AWS_PROFILE", None)
    p = subprocess.run(["aws", "--endpoint-url", b.url, "--region", REGION, *args], capture_output=True, text=True,
                       env=env, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def cloudtrail(b, key=None, secret=None):
    return boto3.client("cloudtrail", endpoint_url=b.url, region_name=REGION,
                        aws_access_key_id=key or b.admin_key, aws_secret_access_key=secret or b.admin_secret)


def lookup_cli(b, attribute, value, **kw):
    out = aws(b, "cloudtrail", "lookup-events", "--lookup-attributes", f"AttributeKey={attribute},AttributeValue={value}",
              "--max-items", "1000", **kw).stdout
    return json.loads(out)["Events"]


def until(fetch, ok, what, deadline=20.0):
    """Polls `fetch()` until `ok(result)`; the writer appends within milliseconds."""
    end = time.monotonic() + deadline
    while True:
        result = fetch()
        if ok(result):
            return result
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not recorded within {deadline}s; last answer: {result!r}")
        time.sleep(0.05)


def records(events):
    return [json.loads(e["CloudTrailEvent"]) for e in events]


def skopeo_push(b, img, uri, token, tmp_path, check=True):
    digestfile = str(tmp_path / f"digest-{uuid.uuid4().hex[:6]}")
    p = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{token}",
                        "--digestfile", digestfile, img.ref, f"docker://{uri}"], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
        return open(digestfile).read().strip()
    return p


def test_lookup_events_records_calls_pushes_denials_and_sign_ins(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    secrets = [ADMIN_SECRET]
    try:
        name = f"audit-{uuid.uuid4().hex[:8]}"
        created = b.ecr().create_repository(repositoryName=name)
        # The aws CLI finds it by event name, with CloudTrail's record shape.
        found = until(lambda: lookup_cli(b, "EventName", "CreateRepository"), lambda e: e, "CreateRepository")
        event = found[0]
        assert event["EventName"] == "CreateRepository" and event["EventSource"] == "ecr.amazonaws.com"
        assert event["ReadOnly"] == "false" and event["AccessKeyId"] == b.admin_key and event["Username"] == "admin"
        assert {"ResourceType": "AWS::ECR::Repository", "ResourceName": name} in event["Resources"]
        rec = json.loads(event["CloudTrailEvent"])
        assert rec["eventVersion"] == "1.08" and rec["eventType"] == "AwsApiCall" and rec["managementEvent"] is True
        assert rec["userIdentity"]["type"] == "IAMUser" and rec["userIdentity"]["accountId"] == ACCOUNT
        assert rec["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
        assert rec["requestParameters"]["repositoryName"] == name
        assert rec["recipientAccountId"] == ACCOUNT and rec["awsRegion"] == REGION
        assert rec["requestID"] == created["ResponseMetadata"]["RequestId"]
        assert rec["sourceIPAddress"] == "127.0.0.1" and "aws-cli" not in rec["userAgent"] and "Boto3" in rec["userAgent"]

        # A skopeo push is recorded as ECR records a docker push; PutImage names the digest.
        token = b.token()
        secrets.append(token)
        img = build_image(str(tmp_path / "layout"), "v1", random_size=64 * 1024, with_busybox=False)
        digest = skopeo_push(b, img, f"{b.addr}/{name}:v1", token, tmp_path)
        puts = until(lambda: records(lookup_cli(b, "EventName", "PutImage")), lambda r: r, "PutImage")
        put = puts[0]
        assert put["requestParameters"]["imageDigest"] == digest, (put, digest)
        assert put["requestParameters"]["imageTag"] == "v1" and put["requestParameters"]["repositoryName"] == name
        assert put["resources"] == [{"ARN": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}", "accountId": ACCOUNT,
                                     "type": "AWS::ECR::Repository"}]
        by_repo = until(lambda: records(lookup_cli(b, "ResourceName", name)),
                        lambda r: {"InitiateLayerUpload", "CompleteLayerUpload", "PutImage"} <= {x["eventName"] for x in r},
                        "the push's events")
        completes = [r for r in by_repo if r["eventName"] == "CompleteLayerUpload"]
        assert {c["requestParameters"]["layerDigest"] for c in completes} >= set(img.layer_digests) | {img.config_digest}

        # A ReadOnly user's push is denied, and the record says so and who it was.
        ro_name = f"ro-{uuid.uuid4().hex[:6]}"
        ro_key, ro_secret = b.create_user(ro_name, policy="ReadOnly")
        secrets.append(ro_secret)
        ro_token = b.token(ro_key, ro_secret)
        secrets.append(ro_token)
        assert skopeo_push(b, img, f"{b.addr}/{name}:denied", ro_token, tmp_path, check=False).returncode != 0
        denied = until(lambda: [r for r in records(lookup_cli(b, "Username", ro_name)) if r.get("errorCode")],
                       lambda r: r, "the denied push")
        assert denied[0]["errorCode"] == "AccessDenied" and denied[0]["errorMessage"], denied[0]
        # Its layers are in the repository already, so the manifest's PUT is what is refused.
        assert denied[0]["eventName"] == "PutImage" and denied[0]["userIdentity"]["accessKeyId"] == ro_key
        # ... as is a denied ECR API call, with its exception name.
        with pytest.raises(b.ecr(ro_key, ro_secret).exceptions.ClientError):
            b.ecr(ro_key, ro_secret).delete_repository(repositoryName=name)
        api_denied = until(lambda: records(lookup_cli(b, "EventName", "DeleteRepository")), lambda r: r, "DeleteRepository")
        assert api_denied[0]["errorCode"] == "AccessDeniedException", api_denied[0]

        # A console sign-in failure is a ConsoleLogin event that hides what was typed.
        typed = "hunter2-" + uuid.uuid4().hex
        secrets.append(typed)
        r = requests.post(f"{b.url}/console/signin", headers={"Origin": b.url}, allow_redirects=False, timeout=60,
                          data={"method": "password", "account": ACCOUNT, "user": typed, "password": typed})
        assert r.status_code == 401, r.status_code
        logins = until(lambda: records(lookup_cli(b, "EventName", "ConsoleLogin")), lambda r: r, "ConsoleLogin")
        login = logins[0]
        assert login["eventType"] == "AwsConsoleSignIn" and login["eventSource"] == "signin.amazonaws.com"
        assert login["responseElements"] == {"ConsoleLogin": "Failure"} and login["errorMessage"] == "Failed authentication"
        assert login["userIdentity"]["userName"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
        # ... and a success names the user.
        r = requests.post(f"{b.url}/console/signin", headers={"Origin": b.url}, allow_redirects=False, timeout=60,
                          data={"method": "key", "access_key_id": ro_key, "secret_access_key": ro_secret})
        assert r.status_code == 303, r.status_code
        ok = until(lambda: [x for x in records(lookup_cli(b, "EventName", "ConsoleLogin"))
                            if x["responseElements"] == {"ConsoleLogin": "Success"}], lambda r: r, "successful ConsoleLogin")
        assert ok[0]["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/{ro_name}"

        # The ReadOnly policy may look events up: its own account's only.
        assert lookup_cli(b, "EventName", "CreateRepository", key=ro_key, secret=ro_secret)
        other_key, other_secret = b.create_user("outsider", policy="ReadOnly", account="210987654321")
        assert lookup_cli(b, "EventName", "CreateRepository", key=other_key, secret=other_secret) == []
        no_policy_key, no_policy_secret = b.create_user(f"np-{uuid.uuid4().hex[:6]}")
        p = aws(b, "cloudtrail", "lookup-events", key=no_policy_key, secret=no_policy_secret, check=False)
        assert p.returncode != 0 and "AccessDeniedException" in p.stderr, p.stderr
    finally:
        assert b.stop() == 0
    # No secret in any record: the registry passwords, the secret access keys, what was typed.
    out = b.cli("audit", "export", "--data-dir", b.data_dir, "--since", "2000-01-01T00:00:00Z").stdout
    lines = out.splitlines()
    assert len(lines) > 20 and all(json.loads(line)["eventVersion"] == "1.08" for line in lines)
    for s in secrets:
        assert s not in out, "a secret reached the audit trail"
        assert base64.b64encode(f"AWS:{s}".encode()).decode() not in out


def test_paging_time_ranges_and_cloudtrail_exceptions(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    try:
        ecr = b.ecr()
        names = [f"page-{i}-{uuid.uuid4().hex[:6]}" for i in range(7)]
        for n in names:
            ecr.create_repository(repositoryName=n)
        ct = cloudtrail(b)
        attrs = [{"AttributeKey": "EventName", "AttributeValue": "CreateRepository"}]
        until(lambda: ct.lookup_events(LookupAttributes=attrs)["Events"], lambda e: len(e) == 7, "7 CreateRepository")
        pages, token = [], None
        while True:
            kw = {"NextToken": token} if token else {}
            page = ct.lookup_events(LookupAttributes=attrs, MaxResults=3, **kw)
            pages.append([json.loads(e["CloudTrailEvent"])["requestParameters"]["repositoryName"] for e in page["Events"]])
            token = page.get("NextToken")
            if not token:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        assert sum(pages, []) == list(reversed(names)), "newest first, each once"
        # A time range: the events at or after the 4th creation's time (the SDK may send whole
        # seconds, so the same second's earlier events may be in it too).
        events = ct.lookup_events(LookupAttributes=attrs)["Events"]
        fourth = [e for e in events if names[3] in e["CloudTrailEvent"]][0]["EventTime"]
        ranged = ct.lookup_events(LookupAttributes=attrs, StartTime=fourth)["Events"]
        got = {json.loads(e["CloudTrailEvent"])["requestParameters"]["repositoryName"] for e in ranged}
        second = fourth.replace(microsecond=0)
        expected = {json.loads(e["CloudTrailEvent"])["requestParameters"]["repositoryName"] for e in events if e["EventTime"] >= second}
        assert set(names[3:]) <= got <= expected, (got, expected)
        assert ct.lookup_events(LookupAttributes=attrs, EndTime=fourth.replace(year=2001))["Events"] == []
        # CloudTrail's exceptions.
        def code(**kw):
            with pytest.raises(ct.exceptions.ClientError) as e:
                ct.lookup_events(**kw)
            return e.value.response["Error"]["Code"]
        assert code(LookupAttributes=attrs * 2) == "InvalidLookupAttributesException"
        assert code(LookupAttributes=[{"AttributeKey": "Colour", "AttributeValue": "x"}]) == "InvalidLookupAttributesException"
        assert code(MaxResults=51) == "InvalidMaxResultsException"
        assert code(StartTime=fourth, EndTime=fourth.replace(year=2001)) == "InvalidTimeRangeException"
        assert code(NextToken="not-a-token") == "InvalidNextTokenException"
        # ReadOnly by attribute: the creations are writes; the lookups themselves are reads.
        reads = ct.lookup_events(LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "true"}])["Events"]
        assert reads and {e["EventName"] for e in reads} <= {"LookupEvents", "DescribeRepositories", "GetAuthorizationToken"}
    finally:
        b.stop()


def test_verify_detects_a_tampered_record_and_a_clean_shutdown_keeps_every_record(tmp_path):
    data = str(tmp_path / "data")
    b = Berth(data).start()
    ecr = b.ecr()
    # A burst of calls, then SIGTERM at once: every answered call's record is on disk after it.
    def create(i):
        return ecr.create_repository(repositoryName=f"burst-{i}")["ResponseMetadata"]["RequestId"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        request_ids = set(pool.map(create, range(40)))
    assert b.stop() == 0
    out = b.cli("audit", "export", "--data-dir", data, "--since", "2000-01-01T00:00:00Z").stdout
    recorded = {json.loads(line)["requestID"] for line in out.splitlines()}
    assert request_ids <= recorded, f"{len(request_ids - recorded)} record(s) lost at a clean shutdown"

    clean = b.cli("audit", "verify", "--data-dir", data, check=False)
    assert clean.returncode == 0 and "intact" in clean.stdout, clean.stdout + clean.stderr

    # Alter one stored record directly in the database file.
    db = sqlite3.connect(os.path.join(data, "berth.db"))
    seq, event_id, record = db.execute(
        "SELECT seq, event_id, record FROM audit_events WHERE record LIKE '%burst-17%'").fetchone()
    db.execute("UPDATE audit_events SET record = ? WHERE seq = ?", (record.replace("burst-17", "burst-71"), seq))
    db.commit()
    db.close()
    tampered = b.cli("audit", "verify", "--data-dir", data, check=False)
    assert tampered.returncode != 0, tampered.stdout
    assert event_id in tampered.stdout and "altered" in tampered.stdout, tampered.stdout

    # Removing a record is reported too, naming the record after the gap.
    db = sqlite3.connect(os.path.join(data, "berth.db"))
    db.execute("PRAGMA foreign_keys = ON")
    first = db.execute("SELECT MIN(seq) FROM audit_events").fetchone()[0]
    gone_after = db.execute("SELECT event_id FROM audit_events WHERE seq = ?", (first + 11,)).fetchone()[0]
    db.execute("DELETE FROM audit_events WHERE seq = ?", (first + 10,))
    db.commit()
    db.close()
    removed = b.cli("audit", "verify", "--data-dir", data, check=False)
    assert removed.returncode != 0 and "removed" in removed.stdout and gone_after in removed.stdout, removed.stdout

    # The trail goes on after a restart.
    b.start()
    try:
        b.ecr().create_repository(repositoryName="after-restart")
        until(lambda: lookup_cli(b, "ResourceName", "after-restart"), lambda e: e, "after restart")
    finally:
        assert b.stop() == 0


def test_a_crash_loses_at_most_the_unwritten_records_and_never_breaks_the_chain(tmp_path):
    """The stated loss window: kill -9 loses only records still queued or in the batch being
    written; every record already visible to a lookup survives, and the trail verifies intact
    (no half-written batch), then goes on after the restart."""
    data = str(tmp_path / "data")
    b = Berth(data, extra_args=["--audit-data-events", "true"]).start()
    ecr = b.ecr()
    ecr.create_repository(repositoryName="crash/app")
    for i in range(30):
        ecr.create_repository(repositoryName=f"crash/seen-{i}")
    seen = until(lambda: lookup_cli(b, "EventName", "CreateRepository"), lambda e: len(e) >= 31, "the first calls")
    seen_ids = {e["EventId"] for e in seen}

    # Keep the writer busy with data events from 8 threads, and kill -9 in the middle of it.
    stop = False
    def hammer(i):
        n = 0
        c = b.ecr()
        while not stop:
            c.batch_get_image(repositoryName="crash/app", imageIds=[{"imageTag": f"none-{i}-{n}"}])
            n += 1
        return n
    pool = concurrent.futures.ThreadPoolExecutor(8)
    futures = [pool.submit(hammer, i) for i in range(8)]
    until(lambda: lookup_cli(b, "EventName", "BatchGetImage"), lambda e: len(e) >= 50, "data events under load")
    b.kill9()
    stop = True
    for f in futures:
        try:
            f.result(timeout=60)
        except Exception:
            pass  # the server died under the calls: that is the point
    pool.shutdown()

    after = b.cli("audit", "verify", "--data-dir", data, check=False)
    assert after.returncode == 0 and "intact" in after.stdout, after.stdout + after.stderr
    out = b.cli("audit", "export", "--data-dir", data, "--since", "2000-01-01T00:00:00Z").stdout
    recorded = {json.loads(line)["eventID"] for line in out.splitlines()}
    assert seen_ids <= recorded, f"{len(seen_ids - recorded)} record(s) already written were lost in the crash"

    b.start()
    try:
        b.ecr().create_repository(repositoryName="crash/after")
        until(lambda: lookup_cli(b, "ResourceName", "crash/after"), lambda e: e, "after the crash")
    finally:
        assert b.stop() == 0
    again = b.cli("audit", "verify", "--data-dir", data, check=False)
    assert again.returncode == 0 and "intact" in again.stdout, again.stdout + again.stderr


def test_operator_actions_are_service_events(tmp_path):
    """A GC run and what a lifecycle policy did are recorded as AwsServiceEvent records (ECR
    names the latter PolicyExecutionEvent), in the account whose images it acted on."""
    b = Berth(str(tmp_path / "data")).start()
    try:
        token = b.token()
        layout = str(tmp_path / "layout")
        for tag in ("old", "new"):
            skopeo_push(b, build_image(layout, tag, random_size=16 * 1024, with_busybox=False), f"{b.addr}/ops/app:{tag}",
                        token, tmp_path)
        policy = {"rules": [{"rulePriority": 1, "description": "keep one", "selection": {
            "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}
        b.ecr().put_lifecycle_policy(repositoryName="ops/app", lifecyclePolicyText=json.dumps(policy))
        r = requests.post(f"{b.url}/_berth/lifecycle", auth=("AWS", token), timeout=60)
        assert r.status_code == 200, r.text
        r = requests.post(f"{b.url}/_berth/gc?dry_run=false&grace_seconds=0", auth=("AWS", token), timeout=60)
        assert r.status_code == 200, r.text
        gc_report = r.json()

        ct = cloudtrail(b)
        lifecycle = until(lambda: ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PolicyExecutionEvent"}])["Events"],
                          lambda e: len(e) == 1, "the lifecycle action")
        rec = records(lifecycle)[0]
        assert (rec["eventType"], rec["eventSource"], rec["userIdentity"]["type"]) == ("AwsServiceEvent", "ecr.amazonaws.com", "AWSService")
        assert rec["recipientAccountId"] == ACCOUNT
        assert rec["additionalEventData"]["repositoryName"] == "ops/app" and rec["additionalEventData"]["imageActionCount"] == 1
        gc = until(lambda: ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "GarbageCollection"}])["Events"],
                   lambda e: len(e) == 1, "the GC run")
        rec = records(gc)[0]
        assert rec["eventType"] == "AwsServiceEvent"
        assert rec["additionalEventData"]["blobsDeleted"] == gc_report["blobs_deleted"] >= 1
    finally:
        b.stop()


def test_the_console_audit_page_filters_pages_and_shows_records(tmp_path):
    from test_console_sessions import COOKIE, key_session

    b = Berth(str(tmp_path / "data")).start()
    try:
        names = [f"console-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
        for n in names:
            b.ecr().create_repository(repositoryName=n)
        ct = cloudtrail(b)
        attrs = [{"AttributeKey": "EventName", "AttributeValue": "CreateRepository"}]
        until(lambda: ct.lookup_events(LookupAttributes=attrs)["Events"], lambda e: len(e) == 3, "3 CreateRepository")
        cookie = key_session(b, b.admin_key, b.admin_secret)

        def audit(**params):
            r = requests.get(f"{b.url}/console/audit", params=params, cookies={COOKIE: cookie}, allow_redirects=False, timeout=30)
            assert r.status_code == 200, (r.status_code, r.text[:500])
            return r.text

        html = audit(key="EventName", value="CreateRepository")
        rows = re.findall(r'<tr data-event-id="([^"]+)"', html)
        expected = [e["EventId"] for e in ct.lookup_events(LookupAttributes=attrs)["Events"]]
        assert rows == expected, "the API's events, newest first"
        assert all(n in html for n in names) and "&quot;eventName&quot;: &quot;CreateRepository&quot;" in html
        assert re.findall(r'<tr data-event-id', audit(key="EventName", value="NoSuchCall")) == []
        assert "true or false" in audit(key="ReadOnly", value="maybe")

        # A user without cloudtrail:LookupEvents is refused.
        key, secret = b.create_user("no-audit")
        other = key_session(b, key, secret)
        r = requests.get(f"{b.url}/console/audit", cookies={COOKIE: other}, allow_redirects=False, timeout=30)
        assert r.status_code == 403
    finally:
        b.stop()
