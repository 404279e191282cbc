"""Replication (issue 17) within one berth, driven the ECR guides' way with the aws CLI and skopeo:
put-replication-configuration to another region of the account and to another account, a push,
describe-image-replication-status COMPLETE, and the same digests and tags pulled from both copies;
the cross-account refusal without the destination's registry policy (FAILED, AccessDenied), then
success with it; a REPLICATION creation template's settings on the created repository; refused
configurations change nothing; the figures in /metrics.
"""
import json
import time

import requests

import images
from test_encryption import aws, skopeo_copy

OTHER = "210987654321"
DEADLINE = 60


def replication_statuses(b, home, repo, tag):
    _, out = aws(b, home, "ecr", "describe-image-replication-status", "--repository-name", repo,
                 "--image-id", f"imageTag={tag}")
    return {(s["region"], s["registryId"]): (s["status"], s.get("failureCode")) for s in out["replicationStatuses"]}


def settled(b, home, repo, tag):
    """Polls until no destination is IN_PROGRESS (the workers run in the background)."""
    end = time.monotonic() + DEADLINE
    while True:
        got = replication_statuses(b, home, repo, tag)
        if got and all(status != "IN_PROGRESS" for status, _ in got.values()):
            return got
        assert time.monotonic() < end, f"replication of {repo}:{tag} still in progress after {DEADLINE} s: {got}"
        time.sleep(0.1)


def pulled_digest(b, ref, creds):
    p = skopeo_inspect(b, ref, creds)
    return json.loads(p)["Digest"]


def skopeo_inspect(b, ref, creds):
    import subprocess
    p = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", creds, ref], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def configure(b, home, rules, check=True):
    return aws(b, home, "ecr", "put-replication-configuration", "--replication-configuration",
               json.dumps({"rules": rules}), check=check)


def test_replication_to_another_region_and_account_with_the_aws_cli_and_skopeo(fresh_berth, tmp_path):
    b, home = fresh_berth, tmp_path / "home"
    home.mkdir()
    b.cli("admin", "create-account", "--data-dir", b.data_dir, "--account", OTHER)
    other_key, other_secret = b.create_user("ops", policy="AmazonEC2ContainerRegistryFullAccess", account=OTHER)
    other = b.ecr(other_key, other_secret, region="eu-west-1")

    # A REPLICATION template in the destination region of the same account.
    aws(b, home, "ecr", "create-repository-creation-template", "--prefix", "prod", "--applied-for", "REPLICATION",
        "--image-tag-mutability", "IMMUTABLE", "--resource-tags", "Key=copied,Value=yes", "--region", "us-west-2")

    rules = [{"destinations": [{"region": "us-west-2", "registryId": b.account}, {"region": "eu-west-1", "registryId": OTHER}],
              "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]
    _, put = configure(b, home, rules)
    assert put["replicationConfiguration"]["rules"] == rules
    _, registry = aws(b, home, "ecr", "describe-registry")
    assert registry == {"registryId": b.account, "replicationConfiguration": {"rules": rules}}

    # Refused configurations: ECR's exception, nothing changed.
    for bad in (
        [{"destinations": [{"region": "us-east-1", "registryId": b.account}]}],
        [{"destinations": [{"region": "us-west-2", "registryId": b.account}]}] * 11,
        [{"destinations": [{"region": "us-west-2", "registryId": b.account}],
          "repositoryFilters": [{"filter": "Prod", "filterType": "PREFIX_MATCH"}]}],
        [{"destinations": [{"region": "us-west-2", "registryId": "999999999999"}]}],
    ):
        p, _ = configure(b, home, bad, check=False)
        assert p.returncode != 0 and "InvalidParameterException" in p.stderr, p.stderr
    assert aws(b, home, "ecr", "describe-registry")[1]["replicationConfiguration"]["rules"] == rules

    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=512 * 1024, with_busybox=False)
    skopeo_copy(b, img.ref, f"docker://{b.addr}/prod/app:v1")
    first = settled(b, home, "prod/app", "v1")
    assert first[("us-west-2", b.account)] == ("COMPLETE", None)
    status, reason = first[("eu-west-1", OTHER)]
    assert status == "FAILED" and reason.startswith("AccessDenied") and "registry policy" in reason, reason

    admin_creds = f"AWS:{b.token()}"
    copy = f"docker://{b.addr}/{b.account}/us-west-2/prod/app:v1"
    assert pulled_digest(b, copy, admin_creds) == images.manifest_digest(img.layout, "v1")
    skopeo_copy(b, copy, f"dir:{tmp_path / 'pulled'}")
    assert open(tmp_path / "pulled" / "manifest.json", "rb").read() == img.manifest_bytes
    for d in [img.config_digest, *img.layer_digests]:
        assert open(tmp_path / "pulled" / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
    west = b.ecr(region="us-west-2")
    made = west.describe_repositories(repositoryNames=["prod/app"])["repositories"][0]
    assert made["imageTagMutability"] == "IMMUTABLE", "the REPLICATION template applies"
    assert west.list_tags_for_resource(resourceArn=made["repositoryArn"])["tags"] == [{"Key": "copied", "Value": "yes"}]
    assert "eu-west-1" not in [r["repositoryArn"].split(":")[3] for r in other.describe_repositories()["repositories"]]

    # The destination account allows the source account: the next push reaches it too.
    other.put_registry_policy(policyText=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ReplicationFrom", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{b.account}:root"},
                       "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                       "Resource": f"arn:aws:ecr:eu-west-1:{OTHER}:repository/*"}],
    }))
    img2 = images.build_image(str(tmp_path / "layout2"), "v2", random_size=256 * 1024, with_busybox=False)
    skopeo_copy(b, img2.ref, f"docker://{b.addr}/prod/app:v2")
    second = settled(b, home, "prod/app", "v2")
    assert second == {("us-west-2", b.account): ("COMPLETE", None), ("eu-west-1", OTHER): ("COMPLETE", None)}
    other_token = b.token(other_key, other_secret)
    digest2 = images.manifest_digest(img2.layout, "v2")
    assert pulled_digest(b, f"docker://{b.addr}/{OTHER}/eu-west-1/prod/app:v2", f"AWS:{other_token}") == digest2
    described = other.describe_images(repositoryName="prod/app")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in described] == [(digest2, ["v2"])]

    metrics = requests.get(f"{b.url}/metrics", timeout=10).text
    assert f'berth_replication_completed_total{{destination="us-west-2/{b.account}"}} 2' in metrics
    assert f'berth_replication_completed_total{{destination="eu-west-1/{OTHER}"}} 1' in metrics
    assert f'berth_replication_failed_total{{destination="eu-west-1/{OTHER}"}} 1' in metrics
