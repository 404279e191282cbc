"""The AWS APIs' request rate per principal (issue 18: "the same limiter, configurable, for the
private API"): off by default; with --api-rate-limit a caller over its rate gets ThrottlingException
(which SDKs retry with backoff, so a retrying client gets through), and other principals are not
affected.
"""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import REGION, Berth


def client(b, key, secret, attempts):
    return boto3.client("ecr", endpoint_url=b.url, region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"mode": "standard", "max_attempts": attempts}))


def test_no_limit_by_default(berth):
    ecr = client(berth, berth.admin_key, berth.admin_secret, 1)
    for _ in range(60):
        assert ecr.describe_registry()["registryId"] == berth.account


def test_a_caller_over_its_rate_is_throttled_and_others_are_not(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--api-rate-limit", "1", "--api-burst", "3"]).start()
    try:
        other_key, other_secret = b.create_user("other", policy="AmazonEC2ContainerRegistryFullAccess")
        once = client(b, b.admin_key, b.admin_secret, 1)
        for _ in range(3):
            once.describe_repositories()
        with pytest.raises(ClientError) as e:
            once.describe_repositories()
        err = e.value.response
        assert err["Error"]["Code"] == "ThrottlingException" and err["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "Rate exceeded" in err["Error"]["Message"]
        # Another principal has its own rate.
        assert client(b, other_key, other_secret, 1).describe_registry()["registryId"] == b.account
        # The SDK's own retries (backoff on ThrottlingException) get the throttled caller through.
        assert client(b, b.admin_key, b.admin_secret, 5).describe_registry()["registryId"] == b.account
    finally:
        b.stop()
