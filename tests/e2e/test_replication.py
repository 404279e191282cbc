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


REMOTE_ID = "111111111111"


def add_remote(b, *args, secret=None):
    import subprocess
    from conftest import berth_bin
    p = subprocess.run([berth_bin(), "admin", "add-remote-registry", "--data-dir", b.data_dir, *args],
                       input=secret or "", capture_output=True, text=True, env=b.env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_sites_push_to_a_pulls_the_same_digests_from_b_and_the_queue_survives_b_and_a_going_down(tmp_path):
    from conftest import Berth
    home = tmp_path / "home"
    home.mkdir()
    site_b = Berth(str(tmp_path / "b")).start()
    site_a = Berth(str(tmp_path / "a")).start()
    try:
        added = add_remote(site_a, "--registry-id", REMOTE_ID, "--url", site_b.url, "--insecure", "--auth", "ecr",
                           "--username", site_b.admin_key, secret=site_b.admin_secret)
        assert added["url"] == site_b.url and site_b.admin_secret not in json.dumps(added)
        listed = site_a.cli("admin", "list-remote-registries", "--data-dir", site_a.data_dir).stdout
        assert site_b.admin_key in listed and site_b.admin_secret not in listed
        configure(site_a, home, [{"destinations": [{"region": "us-east-1", "registryId": REMOTE_ID}]}])

        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=3 * 1024 * 1024, with_busybox=False)
        skopeo_copy(site_a, img.ref, f"docker://{site_a.addr}/site/app:v1")
        assert settled(site_a, home, "site/app", "v1") == {("us-east-1", REMOTE_ID): ("COMPLETE", None)}
        digest = images.manifest_digest(img.layout, "v1")
        assert pulled_digest(site_b, f"docker://{site_b.addr}/site/app:v1", f"AWS:{site_b.token()}") == digest
        skopeo_copy(site_b, f"docker://{site_b.addr}/site/app:v1", f"dir:{tmp_path / 'from-b'}")
        for d in [img.config_digest, *img.layer_digests]:
            assert open(tmp_path / "from-b" / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)

        # B is down during a push, and A is killed while the copy waits: nothing is lost.
        site_b.stop()
        img2 = images.build_image(str(tmp_path / "layout2"), "v2", random_size=1024 * 1024, with_busybox=False)
        skopeo_copy(site_a, img2.ref, f"docker://{site_a.addr}/site/app:v2")
        assert replication_statuses(site_a, home, "site/app", "v2") == {("us-east-1", REMOTE_ID): ("IN_PROGRESS", None)}
        site_a.kill9()
        site_b.start(listen=site_b.addr)
        site_a.start(listen=site_a.addr)
        assert settled(site_a, home, "site/app", "v2") == {("us-east-1", REMOTE_ID): ("COMPLETE", None)}
        assert pulled_digest(site_b, f"docker://{site_b.addr}/site/app:v2", f"AWS:{site_b.token()}") \
            == images.manifest_digest(img2.layout, "v2")
    finally:
        site_a.stop()
        site_b.stop()


def test_a_distribution_registry_as_a_destination_and_a_remote_that_refuses(fresh_berth, tmp_path):
    import subprocess
    b, home = fresh_berth, tmp_path / "home"
    home.mkdir()
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'dist'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    dist = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < end, "docker-registry did not start"
            time.sleep(0.05)
        add_remote(b, "--registry-id", REMOTE_ID, "--region", "eu-central-1", "--url", f"http://127.0.0.1:{port}",
                   "--insecure", "--auth", "anonymous")
        # A remote answering with a refusal: FAILED with the remote's error, after no retries.
        add_remote(b, "--registry-id", "222222222222", "--url", f"{b.url}", "--insecure", "--auth", "basic",
                   "--username", "nobody", secret="wrong")
        configure(b, home, [{"destinations": [{"region": "eu-central-1", "registryId": REMOTE_ID},
                                              {"region": "us-east-1", "registryId": "222222222222"}]}])
        multi = images.build_multiarch(str(tmp_path / "multi"), "v1")
        subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", "--dest-creds", f"AWS:{b.token()}",
                        multi.ref, f"docker://{b.addr}/dist/app:v1"], check=True, capture_output=True)
        got = settled(b, home, "dist/app", "v1")
        assert got[("eu-central-1", REMOTE_ID)] == ("COMPLETE", None)
        status, reason = got[("us-east-1", "222222222222")]
        assert status == "FAILED" and reason.startswith("RemoteError") and "wrong" not in reason, reason
        # distribution serves the same index, and every platform's manifest, by digest.
        head = requests.get(f"http://127.0.0.1:{port}/v2/dist/app/manifests/v1",
                            headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=10)
        assert head.status_code == 200 and head.content == multi.index_bytes
        for m in json.loads(multi.index_bytes)["manifests"]:
            r = requests.get(f"http://127.0.0.1:{port}/v2/dist/app/manifests/{m['digest']}",
                             headers={"Accept": m["mediaType"]}, timeout=10)
            assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == m["digest"]
    finally:
        dist.terminate()
        dist.wait(timeout=30)


def ecr_call(b, action, body):
    """A SigV4-signed ECR JSON call of an action botocore's model does not have (the backfills)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import REGION
    req = AWSRequest(method="POST", url=f"{b.url}/", data=json.dumps(body),
                     headers={"X-Amz-Target": f"AmazonEC2ContainerRegistry_V20150921.{action}",
                              "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(b.admin_key, b.admin_secret), "ecr", REGION).add_auth(req)
    r = requests.post(req.url, data=req.body, headers=dict(req.headers), timeout=30)
    return r.status_code, r.json()


def test_a_backfill_replicates_images_pushed_before_the_rule(fresh_berth, tmp_path):
    b, home = fresh_berth, tmp_path / "home"
    home.mkdir()
    pushed = {}
    for tag in ("v1", "v2"):
        img = images.build_image(str(tmp_path / tag), tag, random_size=64 * 1024, with_busybox=False)
        skopeo_copy(b, img.ref, f"docker://{b.addr}/old/app:{tag}")
        pushed[tag] = images.manifest_digest(img.layout, tag)
    status, refused = ecr_call(b, "StartReplicationBackfill", {})
    assert status == 400 and refused["__type"] == "InvalidParameterException", refused
    configure(b, home, [{"destinations": [{"region": "ap-south-1", "registryId": b.account}]}])
    assert replication_statuses(b, home, "old/app", "v1") == {}, "a rule applies to pushes after it"

    status, started = ecr_call(b, "StartReplicationBackfill",
                               {"repositoryFilters": [{"filter": "old", "filterType": "PREFIX_MATCH"}]})
    assert status == 200 and started["status"] == "IN_PROGRESS" and started["registryId"] == b.account, started
    end = time.monotonic() + DEADLINE
    while True:
        _, results = ecr_call(b, "DescribeReplicationBackfillResults", {"backfillId": started["backfillId"]})
        if results["status"] == "COMPLETE" and results["results"]["inProgress"] == 0:
            break
        assert time.monotonic() < end, results
        time.sleep(0.1)
    assert results["imagesQueued"] == 2 and results["results"] == {"inProgress": 0, "complete": 2, "failed": 0}
    for tag, digest in pushed.items():
        assert settled(b, home, "old/app", tag) == {("ap-south-1", b.account): ("COMPLETE", None)}
        copy = b.ecr(region="ap-south-1").batch_get_image(repositoryName="old/app", imageIds=[{"imageTag": tag}])
        assert copy["images"][0]["imageId"]["imageDigest"] == digest
    _, listed = ecr_call(b, "ListReplicationBackfills", {})
    assert [x["backfillId"] for x in listed["replicationBackfills"]] == [started["backfillId"]]
    status, unknown = ecr_call(b, "StopReplicationBackfill", {"backfillId": "nope"})
    assert status == 400 and unknown["__type"] == "InvalidParameterException"
