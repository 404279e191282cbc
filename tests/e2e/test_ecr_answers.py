"""End-to-end tests that berth's ECR API answers as ECR does, word for word where ECR's words
are known: not-found messages naming the registry, request validation from botocore's model
(with boto3's own validation off), lastEvaluatedAt of lifecycle policies, PutImage's media type
rule, scanOnPush as the repository's own setting, and scans that end in a status the SDKs'
`image-scan-complete` waiter knows (checked with `aws ecr wait`).
"""
import json
import subprocess
import time

import pytest
import requests

from conftest import ACCOUNT, Berth
from httputil import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, assert_status, basic_auth, sha256
from test_ecr import Aws, make_manifest, no_validation, reg_for, signed_request, uniq
from test_scanning import debian_layers, import_fixtures, push_layers

WAIT_LIMIT = 60  # seconds `aws ecr wait image-scan-complete` may take here (its own limit is 5 min)


def error_of(fn, **kw):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as ei:
        fn(**kw)
    err = ei.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
    return err["Error"]["Code"], err["Error"]["Message"]


# --------------------------------------------------------------------------------------------
# 1. not-found messages
# --------------------------------------------------------------------------------------------

def test_not_found_messages_name_the_registry(berth):
    ecr = berth.ecr()
    missing = uniq()
    assert error_of(ecr.describe_repositories, repositoryNames=[missing]) == (
        "RepositoryNotFoundException",
        f"The repository with name '{missing}' does not exist in the registry with id '{ACCOUNT}'")
    assert error_of(ecr.list_images, repositoryName=missing)[1] == \
        f"The repository with name '{missing}' does not exist in the registry with id '{ACCOUNT}'"

    name = uniq()
    ecr.create_repository(repositoryName=name)
    assert error_of(ecr.get_repository_policy, repositoryName=name) == (
        "RepositoryPolicyNotFoundException",
        f"Repository policy does not exist for the repository with name '{name}' in the registry with id '{ACCOUNT}'")
    assert error_of(ecr.get_lifecycle_policy, repositoryName=name) == (
        "LifecyclePolicyNotFoundException",
        f"Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{ACCOUNT}'")

    image_missing = (f"The image with imageId {{imageDigest:'null', imageTag:'nope'}} does not exist within the "
                     f"repository with name '{name}' in the registry with id '{ACCOUNT}'")
    assert error_of(ecr.describe_images, repositoryName=name, imageIds=[{"imageTag": "nope"}]) == \
        ("ImageNotFoundException", image_missing)
    assert error_of(ecr.start_image_scan, repositoryName=name, imageId={"imageTag": "nope"}) == \
        ("ImageNotFoundException", image_missing)
    digest = "sha256:" + "0" * 64
    assert error_of(ecr.update_image_storage_class, repositoryName=name, imageId={"imageDigest": digest},
                    targetStorageClass="ARCHIVE") == (
        "ImageNotFoundException",
        f"The image with imageId {{imageDigest:'{digest}', imageTag:'null'}} does not exist within the "
        f"repository with name '{name}' in the registry with id '{ACCOUNT}'")

    # An image that was never scanned (no scan on push here).
    reg_for(berth).push_image(name, tag="v1")
    assert error_of(ecr.describe_image_scan_findings, repositoryName=name, imageId={"imageTag": "v1"}) == (
        "ScanNotFoundException",
        f"Image scan does not exist for the image with '{{imageDigest:'null', imageTag:'v1'}}' in the repository "
        f"with name '{name}' in the registry with id '{ACCOUNT}'")


# --------------------------------------------------------------------------------------------
# 2. validation from the model
# --------------------------------------------------------------------------------------------

def test_requests_are_validated_against_the_model(berth):
    ecr = no_validation(berth)
    assert error_of(ecr.create_repository) == (
        "ValidationException",
        "1 validation error detected: Value null at 'repositoryName' failed to satisfy constraint: "
        "Member must not be null")
    assert error_of(ecr.batch_get_image) == (
        "ValidationException",
        "2 validation errors detected: Value null at 'repositoryName' failed to satisfy constraint: "
        "Member must not be null; Value null at 'imageIds' failed to satisfy constraint: Member must not be null")

    long_name = "a" * 257
    assert error_of(ecr.create_repository, repositoryName=long_name) == (
        "InvalidParameterException",
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: "
        "'Member must have length less than or equal to 256'")
    assert error_of(ecr.describe_repositories, repositoryNames=[long_name])[0] == "InvalidParameterException"
    assert error_of(ecr.create_repository, repositoryName="Team/App") == (
        "InvalidParameterException",
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression "
        "'[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*''")
    name = uniq()
    assert error_of(ecr.create_repository, repositoryName=name, imageTagMutability="SOMETIMES") == (
        "InvalidParameterException",
        "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value "
        "set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'")
    assert error_of(ecr.describe_repositories, repositoryNames=[name])[0] == "RepositoryNotFoundException", \
        "a refused request creates nothing"

    assert error_of(ecr.describe_repositories, maxResults=1001) == (
        "InvalidParameterException",
        "Invalid parameter at 'maxResults' failed to satisfy constraint: "
        "'Member must have value less than or equal to 1000'")
    assert error_of(ecr.describe_repositories, maxResults=0)[1] == \
        "Invalid parameter at 'maxResults' failed to satisfy constraint: " \
        "'Member must have value greater than or equal to 1'"
    assert error_of(ecr.describe_repositories, registryId="12")[1] == \
        "Invalid parameter at 'registryId' failed to satisfy constraint: " \
        "'Member must satisfy regular expression pattern: [0-9]{12}'"

    ecr.create_repository(repositoryName=name)
    # Members of list elements are named by position, as AWS names them.
    assert error_of(ecr.batch_delete_image, repositoryName=name, imageIds=[{"imageTag": "v1"}, {"imageTag": ""}]) == (
        "InvalidParameterException",
        "Invalid parameter at 'imageIds.2.member.imageTag' failed to satisfy constraint: "
        "'Member must have length greater than or equal to 1'")
    upload_id = "0b5f3a8e-6c1d-4f7e-9a2b-3c4d5e6f7a8b"
    assert error_of(ecr.complete_layer_upload, repositoryName=name, uploadId=upload_id, layerDigests=["nodigest"])[1] == \
        "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must satisfy constraint: " \
        "[Member must satisfy regular expression pattern: [a-zA-Z0-9-_+.]+:[a-fA-F0-9]+]'"

    # A member of the wrong JSON type stays a SerializationException.
    r = signed_request(berth, "DescribeRepositories", {"maxResults": "ten"})
    assert r.status_code == 400 and r.json()["__type"].endswith("SerializationException"), r.text
    assert r.json()["message"].startswith("STRING_VALUE can not be converted to an Integer"), r.text
    r = signed_request(berth, "CreateRepository", {"repositoryName": 5})
    assert r.status_code == 400 and r.json()["__type"].endswith("SerializationException"), r.text
    # ... and a valid request still works.
    assert ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryName"] == name


# --------------------------------------------------------------------------------------------
# 3. lastEvaluatedAt
# --------------------------------------------------------------------------------------------

def test_lifecycle_policy_answers_carry_last_evaluated_at(berth):
    ecr = berth.ecr()
    name = uniq("team/lc")
    ecr.create_repository(repositoryName=name)
    reg_for(berth).push_image(name, tag="v1")
    policy = json.dumps({"rules": [{"rulePriority": 1, "description": "expire old untagged images",
                                    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                                  "countUnit": "days", "countNumber": 30},
                                    "action": {"type": "expire"}}]})
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=policy)
    got = ecr.get_lifecycle_policy(repositoryName=name)
    assert got["lastEvaluatedAt"].timestamp() == 0, "a policy that never ran reads as the epoch, as ECR answers"

    before = time.time()
    r = requests.post(f"{berth.url}/_berth/lifecycle", headers={"Authorization": basic_auth(berth.token())},
                      timeout=120)
    assert_status(r, 200)
    got = ecr.get_lifecycle_policy(repositoryName=name)
    evaluated = got["lastEvaluatedAt"].timestamp()
    assert before - 1 <= evaluated <= time.time() + 1, got
    deleted = ecr.delete_lifecycle_policy(repositoryName=name)
    assert deleted["lastEvaluatedAt"].timestamp() == evaluated, deleted
    assert deleted["lifecyclePolicyText"] == policy


# --------------------------------------------------------------------------------------------
# 4. PutImage's media type
# --------------------------------------------------------------------------------------------

def test_put_image_needs_a_media_type(berth):
    ecr = berth.ecr()
    name = uniq()
    ecr.create_repository(repositoryName=name)
    body, _ = make_manifest(reg_for(berth), name)
    untyped = json.loads(body)
    del untyped["mediaType"]
    text = json.dumps(untyped)
    code, message = error_of(ecr.put_image, repositoryName=name, imageManifest=text, imageTag="v1")
    assert code == "InvalidParameterException" and "imageManifestMediaType" in message, message
    assert ecr.list_images(repositoryName=name)["imageIds"] == [], "nothing was stored"

    out = ecr.put_image(repositoryName=name, imageManifest=text, imageManifestMediaType=OCI_MANIFEST,
                        imageTag="v1")["image"]
    assert out["imageManifestMediaType"] == OCI_MANIFEST and out["imageId"]["imageDigest"] == sha256(text.encode())
    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])["images"][0]
    assert got["imageManifest"] == text and got["imageManifestMediaType"] == OCI_MANIFEST


# --------------------------------------------------------------------------------------------
# 5. scanOnPush is the repository's own setting
# --------------------------------------------------------------------------------------------

def test_repositories_report_their_own_scan_on_push(fresh_berth):
    ecr = fresh_berth.ecr()
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[{
        "scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "scanned/*", "filterType": "WILDCARD"}]}])
    created = ecr.create_repository(repositoryName="scanned/app",
                                    imageScanningConfiguration={"scanOnPush": False})["repository"]
    assert created["imageScanningConfiguration"] == {"scanOnPush": False}
    described = ecr.describe_repositories(repositoryNames=["scanned/app"])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": False}
    listed = next(r for r in ecr.describe_repositories()["repositories"] if r["repositoryName"] == "scanned/app")
    assert listed["imageScanningConfiguration"] == {"scanOnPush": False}
    # The registry rule is reported by the registry's own scanning actions.
    conf = ecr.batch_get_repository_scanning_configuration(repositoryNames=["scanned/app"])
    assert conf["scanningConfigurations"][0]["scanOnPush"] is True
    assert conf["scanningConfigurations"][0]["scanFrequency"] == "SCAN_ON_PUSH"

    out = ecr.put_image_scanning_configuration(repositoryName="scanned/app",
                                               imageScanningConfiguration={"scanOnPush": True})
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])
    described = ecr.describe_repositories(repositoryNames=["scanned/app"])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}


# --------------------------------------------------------------------------------------------
# 6. scans end in a status the waiter knows
# --------------------------------------------------------------------------------------------

def wait_scan_complete(aws, repo, image_id):
    """`aws ecr wait image-scan-complete`: (exit code, stderr, seconds taken)."""
    start = time.monotonic()
    cmd = ["aws", "--endpoint-url", aws.berth.url, "ecr", "wait", "image-scan-complete",
           "--repository-name", repo, "--image-id", image_id]
    p = subprocess.run(cmd, capture_output=True, text=True, env=aws.env, timeout=400)
    return p.returncode, p.stderr, time.monotonic() - start


def push_index(reg, repo, tag, child_digest, child_size):
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child_digest, "size": child_size,
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    body = json.dumps(index).encode()
    reg.put_manifest(repo, tag, body, OCI_INDEX)
    return sha256(body)


def test_scans_end_in_a_status_the_waiter_knows(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    try:
        aws = Aws(b, tmp_path / "home")
        reg = reg_for(b)
        repo = "team/scanned"
        aws.ecr("create-repository", "--repository-name", repo, "--image-scanning-configuration", "scanOnPush=true")

        # No vulnerability database yet: the scan FAILS (it cannot claim findings), promptly.
        digest = push_layers(reg, repo, "v1", debian_layers())
        code, err, took = wait_scan_complete(aws, repo, "imageTag=v1")
        assert code != 0 and "Waiter ImageScanComplete failed" in err, err
        assert took < WAIT_LIMIT, f"the waiter took {took:.0f} s"
        out = aws.ecr("describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v1")
        assert out["imageScanStatus"]["status"] == "FAILED", out
        assert "vulnerability database" in out["imageScanStatus"]["description"], out
        # (boto3, not the CLI: the CLI's paginator adds an empty findings list of its own)
        raw = b.ecr().describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
        assert "imageScanFindings" not in raw, "no empty findings list that reads as 'no vulnerabilities'"

        # An image index is not scanned: StartImageScan refuses it, a push records no scan.
        child = reg.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert_status(child, 200)
        index = push_index(reg, repo, "multi", digest, len(child.content))
        p = aws.ecr_fails("UnsupportedImageTypeException", "start-image-scan", "--repository-name", repo,
                          "--image-id", f"imageDigest={index}")
        assert index in p.stderr, p.stderr
        aws.ecr_fails("ScanNotFoundException", "describe-image-scan-findings", "--repository-name", repo,
                      "--image-id", "imageTag=multi")

        # An artifact that is no container image: the scan FAILS as unsupported, promptly.
        reg.push_image(repo, tag="art", config=b"{}", config_type="application/vnd.example.config+json",
                       artifact_type="application/vnd.example.thing")
        code, err, took = wait_scan_complete(aws, repo, "imageTag=art")
        assert code != 0 and "Waiter ImageScanComplete failed" in err and took < WAIT_LIMIT, (err, took)
        out = aws.ecr("describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=art")
        assert out["imageScanStatus"]["status"] == "FAILED"
        assert out["imageScanStatus"]["description"].startswith("UnsupportedImageError"), out

        # With a database, a scan on push COMPLETEs and the waiter succeeds.
        import_fixtures(b)
        push_layers(reg, repo, "v2", debian_layers())
        code, err, took = wait_scan_complete(aws, repo, "imageTag=v2")
        assert code == 0 and took < WAIT_LIMIT, (code, err, took)
        out = aws.ecr("describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v2")
        assert out["imageScanStatus"]["status"] == "COMPLETE", out
        assert out["imageScanFindings"]["findingSeverityCounts"]["CRITICAL"] == 1, out
    finally:
        b.stop()


def test_activating_status_matches_nothing_everywhere(berth):
    """berth restores archived images at once, so no image is ever ACTIVATING: DescribeImages,
    ListImages and ListImageReferrers agree that the ACTIVATING filter selects nothing, while
    ACTIVE and ANY still list the image; an unknown repository stays an error."""
    ecr = berth.ecr()
    name = uniq("team/activating")
    ecr.create_repository(repositoryName=name)
    img = reg_for(berth).push_image(name, tag="v1")
    digest = img["digest"] if isinstance(img, dict) else img
    for status, expected in (("ACTIVE", 1), ("ANY", 1), ("ACTIVATING", 0)):
        f = {"imageStatus": status}
        assert len(ecr.describe_images(repositoryName=name, filter=f)["imageDetails"]) == expected, status
        assert len(ecr.list_images(repositoryName=name, filter=f)["imageIds"]) == expected, status
    out = ecr.list_image_referrers(repositoryName=name, subjectId={"imageDigest": digest},
                                   filter={"artifactStatus": "ACTIVATING"})
    assert out["referrers"] == []
    code, _ = error_of(ecr.describe_images, repositoryName=uniq("team/none"), filter={"imageStatus": "ACTIVATING"})
    assert code == "RepositoryNotFoundException"
