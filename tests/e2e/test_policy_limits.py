"""Policy documents are bounded as ECR and IAM bound them: a refused document is
InvalidParameterException (ECR's length-constraint wording) and changes nothing."""
import json
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

TOO_LONG = ("Invalid parameter at 'policyText' failed to satisfy constraint: "
            "'Member must have length less than or equal to 10240'")


def ecr_client(b):
    # No client-side checks: the server is what is under test.
    import boto3

    return boto3.client("ecr", endpoint_url=b.url, region_name=b.region, aws_access_key_id=b.admin_key,
                        aws_secret_access_key=b.admin_secret, config=Config(parameter_validation=False))


def grant(account, padding=""):
    """A resource policy letting `account` pull, with `padding` in its Id."""
    return json.dumps({"Version": "2012-10-17", "Id": padding, "Statement": [{
        "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})


def of_length(n):
    base = grant("210987654321")
    return grant("210987654321", "x" * (n - len(base)))


def refused(fn, **kw):
    with pytest.raises(ClientError) as ei:
        fn(**kw)
    err = ei.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
    assert err["Error"]["Code"] == "InvalidParameterException", err
    return err["Error"]["Message"]


def test_over_long_policies_are_refused_and_change_nothing(fresh_berth):
    ecr = ecr_client(fresh_berth)
    name = f"team/p{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name)

    exact = of_length(10240)
    ecr.set_repository_policy(repositoryName=name, policyText=exact)
    assert refused(ecr.set_repository_policy, repositoryName=name, policyText=of_length(10241)) == TOO_LONG
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == exact

    before = grant("210987654321")
    ecr.put_registry_policy(policyText=before)
    assert refused(ecr.put_registry_policy, policyText=of_length(10241)) == TOO_LONG
    # The document from the report: 20,000 statements, about 4 MB.
    huge = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": f"s{i}", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
         "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": f"arn:aws:ecr:us-east-1:123456789012:repository/team/r{i}"} for i in range(20_000)]})
    assert len(huge) > 4_000_000
    assert refused(ecr.put_registry_policy, policyText=huge) == TOO_LONG
    assert ecr.get_registry_policy()["policyText"] == before

    # More statements than berth evaluates, within the length limit.
    many = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "ecr:DeleteRepository"}] * 101})
    assert len(many) <= 10240
    assert "101 statements" in refused(ecr.put_registry_policy, policyText=many)
    assert "101 statements" in refused(ecr.set_repository_policy, repositoryName=name, policyText=many)
    assert ecr.get_registry_policy()["policyText"] == before
    assert ecr.get_repository_policy(repositoryName=name)["policyText"] == exact


def test_admin_policy_files_are_bounded_by_iams_quota(fresh_berth, tmp_path):
    statement = {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement] * 120}))
    out = fresh_berth.cli("admin", "create-user", "--data-dir", fresh_berth.data_dir, "--account",
                          fresh_berth.account, "--name", "big", "--policy-file", str(big), check=False)
    assert out.returncode != 0
    assert "Cannot exceed quota for PolicySize: 6144" in out.stderr, out.stderr

    huge = tmp_path / "huge.json"
    huge.write_text(" " * (1 << 20))
    out = fresh_berth.cli("admin", "create-user", "--data-dir", fresh_berth.data_dir, "--account",
                          fresh_berth.account, "--name", "huge", "--policy-file", str(huge), check=False)
    assert out.returncode != 0 and "a policy document is at most" in out.stderr, out.stderr

    # Whitespace does not count: an indented document of the same statements, fewer of them, is fine.
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement] * 60}, indent=8))
    assert len(ok.read_text()) > 6144
    key, _ = fresh_berth.create_user("ok", policy_file=str(ok))
    assert key.startswith("AKIA")
