"""STS GetCallerIdentity (Query protocol) for every principal berth knows: what Terraform's AWS
provider calls at start and `aws sts get-caller-identity` prints."""
import json
import os
import re
import subprocess
import uuid

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCOUNT

OTHER = "210987654321"


def sts(berth, key, secret, region="us-east-1"):
    return boto3.client("sts", endpoint_url=berth.url, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def test_get_caller_identity_boto3_for_admin_and_users(berth):
    me = sts(berth, berth.admin_key, berth.admin_secret).get_caller_identity()
    assert me["Account"] == ACCOUNT
    assert me["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", me["UserId"]), me["UserId"]
    assert me["ResponseMetadata"]["RequestId"]

    name = f"ci-{uuid.uuid4().hex[:6]}"
    key, secret = berth.create_user(name, policy="ReadOnly", account=OTHER)
    them = sts(berth, key, secret, region="eu-west-1").get_caller_identity()
    assert (them["Account"], them["Arn"]) == (OTHER, f"arn:aws:iam::{OTHER}:user/{name}")
    assert them["UserId"] != me["UserId"]
    # stable for the same principal
    assert sts(berth, key, secret).get_caller_identity()["UserId"] == them["UserId"]


def test_get_caller_identity_aws_cli(berth, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_ACCESS_KEY_ID=berth.admin_key, AWS_SECRET_ACCESS_KEY=berth.admin_secret,
               AWS_DEFAULT_REGION="us-east-1")
    p = subprocess.run(["aws", "--endpoint-url", berth.url, "sts", "get-caller-identity", "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["Account"] == ACCOUNT and out["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"


def test_sts_refuses_bad_credentials_and_unknown_actions(berth):
    with pytest.raises(ClientError) as e:
        sts(berth, "AKIAIOSFODNN7NOTTHERE", "x" * 40).get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as e:
        sts(berth, berth.admin_key, "wrong-secret-wrong-secret-wrong-secret-00").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        sts(berth, berth.admin_key, berth.admin_secret).get_session_token()
    assert e.value.response["Error"]["Code"] == "InvalidAction"
    # Unsigned: no action is run
    r = requests.post(berth.url + "/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"}, timeout=30)
    assert r.status_code in (400, 403) and "<Arn>" not in r.text


def test_ecr_signature_is_not_accepted_by_sts_and_vice_versa(berth):
    """A signature scoped to one service is refused by another (AWS's rule)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(berth.admin_key, berth.admin_secret)
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    req = AWSRequest(method="POST", url=berth.url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(creds, "ecr", "us-east-1").add_auth(req)
    r = requests.post(berth.url + "/", data=body, headers=dict(req.headers), timeout=30)
    assert "<Arn>" not in r.text

    body = "{}"
    req = AWSRequest(method="POST", url=berth.url + "/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRegistry"})
    SigV4Auth(creds, "sts", "us-east-1").add_auth(req)
    r = requests.post(berth.url + "/", data=body, headers=dict(req.headers), timeout=30)
    assert r.status_code == 403 and r.json()["__type"] == "InvalidSignatureException", r.text
    assert "scoped to correct service: 'ecr'" in r.json()["message"]
    assert r.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("service", ["s3", "iam", "ecr-public"])
def test_ecr_refuses_signatures_scoped_to_other_services(berth, service):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = "{}"
    req = AWSRequest(method="POST", url=berth.url + "/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.CreateRepository"})
    SigV4Auth(Credentials(berth.admin_key, berth.admin_secret), service, "us-east-1").add_auth(req)
    r = requests.post(berth.url + "/", data=body, headers=dict(req.headers), timeout=30)
    assert r.status_code == 403 and r.json()["__type"] == "InvalidSignatureException", r.text


def test_every_ecr_response_has_a_request_id(berth):
    ecr = berth.ecr()
    out = ecr.describe_registry()
    assert re.fullmatch(r"[0-9a-f-]{36}", out["ResponseMetadata"]["RequestId"])
    with pytest.raises(ClientError) as e:
        ecr.describe_repositories(repositoryNames=[f"missing-{uuid.uuid4().hex[:6]}"])
    assert re.fullmatch(r"[0-9a-f-]{36}", e.value.response["ResponseMetadata"]["RequestId"])
