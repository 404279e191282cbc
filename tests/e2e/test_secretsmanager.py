"""Secrets Manager's subset (issue 20: the pull-through cache's upstream credentials): the aws
CLI and boto3 against `POST /` with `secretsmanager.*`, values sealed by the key service, and
a value that never shows up anywhere but GetSecretValue's answer (the log, /metrics, the audit
trail, the database file, the console)."""
import json
import os
import re
import subprocess
import time
import uuid

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION
from test_audit import until

COOKIE = "berth_console"


def sm(berth, key=None, secret=None, validate=True):
    return boto3.client("secretsmanager", endpoint_url=berth.url, region_name=REGION,
                        aws_access_key_id=key or berth.admin_key, aws_secret_access_key=secret or berth.admin_secret,
                        config=Config(parameter_validation=validate, retries={"max_attempts": 1}))


def aws(berth, tmp_path, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_ACCESS_KEY_ID=berth.admin_key, AWS_SECRET_ACCESS_KEY=berth.admin_secret,
               AWS_DEFAULT_REGION=REGION)
    p = subprocess.run(["aws", "--endpoint-url", berth.url, *args, "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def error_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def unique(prefix="ecr-pullthroughcache"):
    return f"{prefix}/{uuid.uuid4().hex[:8]}/hub"


def test_aws_cli_creates_reads_describes_and_boto3_pages(berth, tmp_path):
    name = unique()
    value = '{"username":"u","accessToken":"t"}'
    created = json.loads(aws(berth, tmp_path, "secretsmanager", "create-secret", "--name", name, "--secret-string", value,
                             "--description", "Docker Hub").stdout)
    assert re.fullmatch(rf"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}", created["ARN"]), created
    assert created["Name"] == name and created["VersionId"]
    got = json.loads(aws(berth, tmp_path, "secretsmanager", "get-secret-value", "--secret-id", name).stdout)
    assert (got["SecretString"], got["ARN"], got["VersionId"], got["VersionStages"]) == \
        (value, created["ARN"], created["VersionId"], ["AWSCURRENT"])
    described = json.loads(aws(berth, tmp_path, "secretsmanager", "describe-secret", "--secret-id", created["ARN"]).stdout)
    assert (described["Name"], described["Description"]) == (name, "Docker Hub")
    assert described["VersionIdsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert "SecretString" not in described and "KmsKeyId" not in described

    c = sm(berth)
    prefix = f"paging-{uuid.uuid4().hex[:8]}"
    names = sorted(f"{prefix}/{i}" for i in range(5))
    for n in names:
        c.create_secret(Name=n, SecretString="v")
    seen, pages, token = [], 0, None
    while True:
        kw = {"NextToken": token} if token else {}
        page = c.list_secrets(MaxResults=2, Filters=[{"Key": "name", "Values": [prefix]}], **kw)
        assert len(page["SecretList"]) <= 2
        assert all("SecretString" not in s for s in page["SecretList"])
        seen += [s["Name"] for s in page["SecretList"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names and pages >= 3
    assert [s["Name"] for p in c.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}],
                                                                       PaginationConfig={"PageSize": 2})
            for s in p["SecretList"]] == names


def test_versions_deletion_restore_and_aws_errors(berth):
    c = sm(berth)
    name = unique()
    first = c.create_secret(Name=name, SecretString='{"username":"u","accessToken":"one"}')
    second = c.put_secret_value(SecretId=name, SecretString='{"username":"u","accessToken":"two"}')
    assert second["VersionStages"] == ["AWSCURRENT"]
    stages = c.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {first["VersionId"]: ["AWSPREVIOUS"], second["VersionId"]: ["AWSCURRENT"]}
    assert json.loads(c.get_secret_value(SecretId=name)["SecretString"])["accessToken"] == "two"
    assert json.loads(c.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"])["accessToken"] == "one"

    # ClientRequestToken: the same value again is the same version; another value is refused.
    token = uuid.uuid4().hex
    assert c.put_secret_value(SecretId=name, SecretString="x", ClientRequestToken=token)["VersionId"] == token
    assert c.put_secret_value(SecretId=name, SecretString="x", ClientRequestToken=token)["VersionId"] == token
    assert error_of(c.put_secret_value, SecretId=name, SecretString="y", ClientRequestToken=token) == ("ResourceExistsException", 400)
    assert error_of(c.create_secret, Name=name, SecretString="x") == ("ResourceExistsException", 400)

    # Binary values travel base64'd and come back as bytes.
    binary = unique("bin")
    c.create_secret(Name=binary, SecretBinary=b"\x00\x01\xff")
    assert c.get_secret_value(SecretId=binary)["SecretBinary"] == b"\x00\x01\xff"

    # Deletion with a recovery window, then restore.
    deleted = c.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert 6.9 * 86400 < (deleted["DeletionDate"].timestamp() - time.time()) <= 7 * 86400
    assert error_of(c.get_secret_value, SecretId=name) == ("InvalidRequestException", 400)
    assert error_of(c.put_secret_value, SecretId=name, SecretString="z") == ("InvalidRequestException", 400)
    assert "DeletedDate" in c.describe_secret(SecretId=name)
    listed = lambda **kw: [s["Name"] for s in c.list_secrets(Filters=[{"Key": "name", "Values": [name]}], **kw)["SecretList"]]
    assert listed() == [] and listed(IncludePlannedDeletion=True) == [name]
    c.restore_secret(SecretId=name)
    assert c.get_secret_value(SecretId=name)["SecretString"] == "x"

    # Force: gone at once.
    c.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert error_of(c.get_secret_value, SecretId=name) == ("ResourceNotFoundException", 400)
    assert error_of(c.describe_secret, SecretId=name) == ("ResourceNotFoundException", 400)

    # What AWS refuses, as AWS names it.
    assert error_of(c.create_secret, Name="bad name!", SecretString="v")[0] == "InvalidParameterException"
    assert error_of(c.delete_secret, SecretId=binary, RecoveryWindowInDays=3)[0] == "InvalidParameterException"
    assert error_of(c.delete_secret, SecretId=binary, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)[0] == \
        "InvalidParameterException"
    raw = sm(berth, validate=False)
    assert error_of(raw.create_secret, Name="x" * 513, SecretString="v")[0] == "ValidationException"
    assert error_of(raw.create_secret, Name=unique(), SecretString="v", SecretBinary=b"v")[0] == "InvalidParameterException"
    assert error_of(raw.list_secrets, NextToken="%%%")[0] == "InvalidNextTokenException"

    # Tags.
    c.tag_resource(SecretId=binary, Tags=[{"Key": "team", "Value": "ops"}])
    assert c.describe_secret(SecretId=binary)["Tags"] == [{"Key": "team", "Value": "ops"}]
    c.untag_resource(SecretId=binary, TagKeys=["team"])
    assert "Tags" not in c.describe_secret(SecretId=binary)


def test_a_user_without_a_secretsmanager_grant_is_denied(berth):
    name = unique()
    sm(berth).create_secret(Name=name, SecretString="v")
    key, secret = berth.create_user(f"nosm-{uuid.uuid4().hex[:6]}")
    c = sm(berth, key, secret)
    assert error_of(c.get_secret_value, SecretId=name) == ("AccessDeniedException", 400)
    assert error_of(c.get_secret_value, SecretId=unique()) == ("AccessDeniedException", 400), "no hint whether it exists"
    assert error_of(c.create_secret, Name=unique(), SecretString="v") == ("AccessDeniedException", 400)
    assert error_of(c.list_secrets) == ("AccessDeniedException", 400)


def test_a_value_appears_nowhere_but_get_secret_value(fresh_berth, tmp_path):
    b = fresh_berth
    c = sm(b)
    marker = f"canary-{uuid.uuid4().hex}"
    value = json.dumps({"username": "u", "accessToken": marker})
    name = unique()
    token = uuid.uuid4().hex
    c.create_secret(Name=name, SecretString=value, ClientRequestToken=token)
    assert json.loads(c.get_secret_value(SecretId=name)["SecretString"])["accessToken"] == marker
    c.put_secret_value(SecretId=name, SecretString=value + " ", ClientRequestToken=uuid.uuid4().hex)
    # Refusals that carry the value in their request.
    assert error_of(c.put_secret_value, SecretId=name, SecretString=marker, ClientRequestToken=token)[0] == "ResourceExistsException"
    assert error_of(c.create_secret, Name="bad name!", SecretString=marker)[0] == "InvalidParameterException"
    raw = sm(b, validate=False)
    assert error_of(raw.create_secret, Name=unique(), SecretString=marker * 2000)[0] == "ValidationException"
    c.create_secret(Name=unique("bin"), SecretBinary=marker.encode())
    c.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert error_of(c.get_secret_value, SecretId=name)[0] == "InvalidRequestException"

    # The calls are in the audit trail (eventSource secretsmanager.amazonaws.com), without the value.
    def lookup():
        p = aws(b, tmp_path, "cloudtrail", "lookup-events", "--lookup-attributes",
                "AttributeKey=EventSource,AttributeValue=secretsmanager.amazonaws.com")
        return p.stdout
    trail = until(lookup, lambda out: len(json.loads(out)["Events"]) >= 9, "9 Secrets Manager records")
    events = [json.loads(e["CloudTrailEvent"]) for e in json.loads(trail)["Events"]]
    assert {e["eventName"] for e in events} >= {"CreateSecret", "GetSecretValue", "PutSecretValue", "DeleteSecret"}
    assert all(e["eventSource"] == "secretsmanager.amazonaws.com" for e in events)
    assert any(e.get("errorCode") == "InvalidRequestException" for e in events), "refusals are recorded too"
    assert marker not in trail

    metrics = requests.get(f"{b.url}/metrics", timeout=30).text
    assert "berth_" in metrics and marker not in metrics
    b.stop()
    log = open(b.log_path, encoding="utf-8", errors="replace").read()
    assert "secretsmanager:GetSecretValue" in log, "the calls are logged (by name)"
    assert marker not in log
    # Not in plaintext in any file of the data directory (the SQLite database and its WAL).
    found = []
    for root, _, files in os.walk(b.data_dir):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(path)
    assert any(os.path.basename(p).endswith(".db") for _, _, fs in os.walk(b.data_dir) for p in fs), "a database was checked"
    assert found == []
    b.start()


def test_console_creates_a_secret_and_never_renders_its_value(berth):
    r = requests.post(f"{berth.url}/console/signin", headers={"Origin": berth.url}, allow_redirects=False, timeout=60,
                      data={"method": "key", "access_key_id": berth.admin_key, "secret_access_key": berth.admin_secret})
    assert r.status_code == 303, r.text[:500]
    cookie = {COOKIE: r.cookies.get(COOKIE)}
    page = requests.get(f"{berth.url}/console/secrets", cookies=cookie, timeout=30)
    assert page.status_code == 200 and 'href="/console/secrets"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    name = unique()
    marker = f"console-canary-{uuid.uuid4().hex}"
    form = {"csrf": csrf, "name": name, "kind": "credentials", "username": "hubuser", "access_token": marker}
    r = requests.post(f"{berth.url}/console/secrets", data=form, cookies=cookie, headers={"Origin": berth.url},
                      allow_redirects=False, timeout=30)
    assert (r.status_code, r.headers.get("Location")) == (303, "/console/secrets?done=created"), r.text[:500]
    page = requests.get(f"{berth.url}/console/secrets?done=created", cookies=cookie, timeout=30)
    assert name in page.text and marker not in page.text and "hubuser" not in page.text
    arn = re.search(r'title="(arn:aws:secretsmanager:[^"]+)"', page.text).group(1)
    form_page = requests.get(f"{berth.url}/console/secrets/value", params={"id": arn}, cookies=cookie, timeout=30)
    assert form_page.status_code == 200 and marker not in form_page.text
    # What the console stored is ECR's format, for the pull-through cache.
    assert json.loads(sm(berth).get_secret_value(SecretId=name)["SecretString"]) == {"username": "hubuser", "accessToken": marker}
