"""End-to-end tests of lifecycle policies and the archive storage class: the aws CLI flow
(put/get/delete-lifecycle-policy, start/get-lifecycle-policy-preview), `berth lifecycle run`
on images aged with libfaketime, archive and restore with update-image-storage-class, and
lastRecordedPullTime recorded on /v2/ pulls.
"""
import json
import os
import subprocess
import time

import requests

from conftest import Berth, berth_bin
from httputil import OCI_MANIFEST, assert_error, assert_status, basic_auth
from test_ecr import Aws, _faketime_env, reg_for, uniq

SEED_POLICY = {"rules": [
    {"rulePriority": 1, "description": "Keep last 10 'prod' images",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan",
                   "countNumber": 10},
     "action": {"type": "expire"}},
    {"rulePriority": 2, "description": "Delete untagged images older than 7 days",
     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                   "countNumber": 7},
     "action": {"type": "expire"}}]}


def write_policy(tmp_path, policy):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy, indent=2))
    return f"file://{path}"


def wait_preview(aws, repo):
    """Polls get-lifecycle-policy-preview until the preview is no longer IN_PROGRESS."""
    deadline = time.monotonic() + 60
    while True:
        out = aws.ecr("get-lifecycle-policy-preview", "--repository-name", repo)
        if out["status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return out
        time.sleep(0.05)  # polling an asynchronous API, as the aws CLI waiter does


def test_lifecycle_policy_flow_with_the_aws_cli(berth, tmp_path):
    aws = Aws(berth, tmp_path / "home")
    repo = uniq("team/lc")
    aws.ecr("create-repository", "--repository-name", repo)
    reg = reg_for(berth)
    prod = [reg.push_image(repo, tag=f"prod-{i}")["digest"] for i in range(12)]
    dev = reg.push_image(repo, tag="dev")["digest"]

    aws.ecr_fails("LifecyclePolicyNotFoundException", "get-lifecycle-policy", "--repository-name", repo)
    out = aws.ecr("put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", write_policy(tmp_path, SEED_POLICY))
    assert out["repositoryName"] == repo
    got = aws.ecr("get-lifecycle-policy", "--repository-name", repo)
    assert json.loads(got["lifecyclePolicyText"]) == SEED_POLICY
    assert got["registryId"] == berth.account

    # The preview uses the stored policy and changes nothing.
    started = aws.ecr("start-lifecycle-policy-preview", "--repository-name", repo)
    assert started["status"] == "IN_PROGRESS"
    preview = wait_preview(aws, repo)
    assert preview["status"] == "COMPLETE", preview
    results = preview["previewResults"]
    # The two oldest prod images go (imageCountMoreThan 10 keeps the newest ten).
    assert sorted(r["imageDigest"] for r in results) == sorted(prod[:2]), results
    assert all(r["action"]["type"] == "EXPIRE" and r["appliedRulePriority"] == 1 for r in results)
    assert all(r["storageClass"] == "STANDARD" for r in results)
    assert {t for r in results for t in r["imageTags"]} == {"prod-0", "prod-1"}
    assert preview["summary"]["expiringImageTotalCount"] == 2
    listed = aws.ecr("list-images", "--repository-name", repo)["imageIds"]
    assert len(listed) == 13, "a preview changes nothing"

    # A preview of a policy given inline (not stored).
    keep_one = {"rules": [{"rulePriority": 1, "description": "keep one",
                           "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                           "action": {"type": "expire"}}]}
    aws.ecr("start-lifecycle-policy-preview", "--repository-name", repo,
            "--lifecycle-policy-text", write_policy(tmp_path, keep_one))
    preview = wait_preview(aws, repo)
    assert preview["summary"]["expiringImageTotalCount"] == 12
    assert dev not in {r["imageDigest"] for r in preview["previewResults"]}, "the newest image stays"
    page = aws.ecr("get-lifecycle-policy-preview", "--repository-name", repo, "--max-results", "5", "--no-paginate")
    assert len(page["previewResults"]) == 5 and page.get("nextToken")

    # Validation names the rule and the field; nothing changes.
    bad = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan",
                                                       "countNumber": 1}, "action": {"type": "expire"}}]}
    p = aws.ecr_fails("InvalidParameterException", "put-lifecycle-policy", "--repository-name", repo,
                      "--lifecycle-policy-text", write_policy(tmp_path, bad))
    assert "rule 1" in p.stderr and "tagPrefixList" in p.stderr, p.stderr
    assert json.loads(aws.ecr("get-lifecycle-policy", "--repository-name", repo)["lifecyclePolicyText"]) == SEED_POLICY

    out = aws.ecr("delete-lifecycle-policy", "--repository-name", repo)
    assert json.loads(out["lifecyclePolicyText"]) == SEED_POLICY
    aws.ecr_fails("LifecyclePolicyNotFoundException", "get-lifecycle-policy", "--repository-name", repo)
    aws.ecr_fails("RepositoryNotFoundException", "get-lifecycle-policy", "--repository-name", uniq("team/none"))


def test_seed_policy_run_on_aged_images_expires_exactly_the_right_ones(tmp_path):
    """Images pushed now; `berth lifecycle run` with the clock 10 days later (libfaketime)."""
    data = str(tmp_path / "data")
    b = Berth(data).start()
    try:
        aws = Aws(b, tmp_path / "home")
        aws.ecr("create-repository", "--repository-name", "team/app")
        reg = reg_for(b)
        prod = [reg.push_image("team/app", tag=f"prod-{i}")["digest"] for i in range(13)]
        untagged = reg.push_image("team/app", tag=None)["digest"]
        other = reg.push_image("team/app", tag="feature-x")["digest"]
        aws.ecr("put-lifecycle-policy", "--repository-name", "team/app",
                "--lifecycle-policy-text", write_policy(tmp_path, SEED_POLICY))
    finally:
        b.stop()

    env = dict(b.env, **_faketime_env("+10d"))
    dry = subprocess.run([berth_bin(), "lifecycle", "run", "--data-dir", data, "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert len(planned) == 1 and planned[0]["dryRun"] is True
    run = subprocess.run([berth_bin(), "lifecycle", "run", "--data-dir", data], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)[0]
    assert report["repository"] == "team/app"
    expired = {a["digest"]: a["rulePriority"] for a in report["actions"]}
    assert expired == {prod[0]: 1, prod[1]: 1, prod[2]: 1, untagged: 2}, report
    assert [a["digest"] for a in planned[0]["actions"]] == [a["digest"] for a in report["actions"]], \
        "the dry run is what the run does"
    assert f"expired {prod[0]} [prod-0] (rule 1)" in run.stderr

    b = Berth(data).start()
    try:
        aws = Aws(b, tmp_path / "home")
        left = {i["imageDigest"] for i in aws.ecr("describe-images", "--repository-name", "team/app")["imageDetails"]}
        assert left == set(prod[3:]) | {other}
        got = aws.ecr("get-lifecycle-policy", "--repository-name", "team/app")
        assert "lastEvaluatedAt" in got
        # Blobs the expired images held are reclaimable by GC (nothing references them).
        r = requests.get(f"{b.url}/v2/team/app/manifests/prod-0", headers={"Authorization": basic_auth(b.token()),
                                                                          "Accept": OCI_MANIFEST}, timeout=30)
        assert_error(r, 404, "MANIFEST_UNKNOWN")
    finally:
        b.stop()


def test_archive_restore_and_pull_times(berth, tmp_path):
    aws = Aws(berth, tmp_path / "home")
    repo = uniq("team/arch")
    aws.ecr("create-repository", "--repository-name", repo)
    reg = reg_for(berth)
    img = reg.push_image(repo, tag="v1")
    keep = reg.push_image(repo, tag="v2")
    hdr = {"Accept": OCI_MANIFEST}

    # A /v2/ pull records lastRecordedPullTime (HEAD does not).
    assert_status(reg.head(f"/v2/{repo}/manifests/v2", headers=hdr), 200)
    details = aws.ecr("describe-images", "--repository-name", repo)["imageDetails"]
    assert all("lastRecordedPullTime" not in d for d in details), details
    before = time.time()
    assert_status(reg.get(f"/v2/{repo}/manifests/v1", headers=hdr), 200)
    d = aws.ecr("describe-images", "--repository-name", repo, "--image-ids", "imageTag=v1")["imageDetails"][0]
    assert before - 2 <= d["lastRecordedPullTime"] <= time.time() + 2, d
    assert d["imageStatus"] == "ACTIVE"

    out = aws.ecr("update-image-storage-class", "--repository-name", repo, "--image-id", "imageTag=v1",
                  "--target-storage-class", "ARCHIVE")
    assert out["imageStatus"] == "ARCHIVED" and out["imageId"]["imageDigest"] == img["digest"]
    # Archived images are listed only when asked for, and are not pullable.
    active = aws.ecr("list-images", "--repository-name", repo)["imageIds"]
    assert {i["imageDigest"] for i in active} == {keep["digest"]}
    archived = aws.ecr("describe-images", "--repository-name", repo, "--filter", "imageStatus=ARCHIVED")["imageDetails"]
    assert [a["imageDigest"] for a in archived] == [img["digest"]]
    assert archived[0]["imageStatus"] == "ARCHIVED" and "lastArchivedAt" in archived[0]
    every = aws.ecr("list-images", "--repository-name", repo, "--filter", "imageStatus=ANY")["imageIds"]
    assert len(every) == 2
    r = reg.get(f"/v2/{repo}/manifests/v1", headers=hdr)
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    assert "archived" in r.text and "UpdateImageStorageClass" in r.text
    got = aws.ecr("batch-get-image", "--repository-name", repo, "--image-ids", "imageTag=v1")
    assert got["images"] == [] and got["failures"][0]["failureCode"] == "ImageNotFound"

    # Restore: pullable again, with lastActivatedAt.
    out = aws.ecr("update-image-storage-class", "--repository-name", repo, "--image-id", f"imageDigest={img['digest']}",
                  "--target-storage-class", "STANDARD")
    assert out["imageStatus"] == "ACTIVE"
    r = reg.get(f"/v2/{repo}/manifests/v1", headers=hdr)
    assert_status(r, 200)
    assert r.content == img["manifest"]
    d = aws.ecr("describe-images", "--repository-name", repo, "--image-ids", "imageTag=v1")["imageDetails"][0]
    assert "lastActivatedAt" in d

    # Archive again, then restore by pushing the same manifest again.
    aws.ecr("update-image-storage-class", "--repository-name", repo, "--image-id", "imageTag=v1",
            "--target-storage-class", "ARCHIVE")
    reg.put_manifest(repo, "v1", img["manifest"], OCI_MANIFEST)
    assert_status(reg.get(f"/v2/{repo}/manifests/v1", headers=hdr), 200)

    aws.ecr_fails("ImageNotFoundException", "update-image-storage-class", "--repository-name", repo,
                  "--image-id", "imageTag=nope", "--target-storage-class", "ARCHIVE")
    aws.ecr_fails("InvalidParameterException", "update-image-storage-class", "--repository-name", repo,
                  "--image-id", "imageTag=v1", "--target-storage-class", "GLACIER")


def test_online_lifecycle_run_needs_a_token_and_permission(berth, tmp_path):
    aws = Aws(berth, tmp_path / "home")
    repo = uniq("team/online")
    aws.ecr("create-repository", "--repository-name", repo)
    reg = reg_for(berth)
    old = reg.push_image(repo, tag="v1")["digest"]
    new = reg.push_image(repo, tag="v2")["digest"]
    keep_one = {"rules": [{"rulePriority": 1, "description": "keep the newest image",
                           "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                           "action": {"type": "expire"}}]}
    aws.ecr("put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", write_policy(tmp_path, keep_one))

    r = requests.post(f"{berth.url}/_berth/lifecycle?dry_run=true", timeout=30)
    assert_status(r, 401)
    key, secret = berth.create_user(uniq("ro-"), policy="AmazonEC2ContainerRegistryReadOnly")
    r = requests.post(f"{berth.url}/_berth/lifecycle?dry_run=true",
                      headers={"Authorization": basic_auth(berth.token(key, secret))}, timeout=30)
    assert_status(r, 403)

    admin = {"Authorization": basic_auth(berth.token())}
    r = requests.post(f"{berth.url}/_berth/lifecycle?dry_run=true", headers=admin, timeout=120)
    assert_status(r, 200)
    report = next(rep for rep in r.json() if rep["repository"] == repo)
    assert report["dryRun"] is True
    assert [a["digest"] for a in report["actions"]] == [old]
    listed = {i["imageDigest"] for i in aws.ecr("list-images", "--repository-name", repo)["imageIds"]}
    assert listed == {old, new}, "a dry run changes nothing"

    r = requests.post(f"{berth.url}/_berth/lifecycle", headers=admin, timeout=120)
    assert_status(r, 200)
    report = next(rep for rep in r.json() if rep["repository"] == repo)
    assert report["dryRun"] is False and [a["digest"] for a in report["actions"]] == [old]
    listed = {i["imageDigest"] for i in aws.ecr("list-images", "--repository-name", repo)["imageIds"]}
    assert listed == {new}
