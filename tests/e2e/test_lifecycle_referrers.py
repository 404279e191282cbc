"""Lifecycle rules and referrers: an image's SBOM (attached by scan on push) and signature are
untagged images, yet the ECR guides' "expire untagged images older than 14 days" policy must not
delete them while their image lives. ECR's signing guide: "When reference artifacts are present
in a repository, Amazon ECR lifecycle policies will automatically clean up those artifacts within
24 hours of the deletion of the subject image." berth does that in the same transaction that
expires the subject. Platform images of a live multi-arch index stay too.

Images are aged by serving the same data directory 15 days later (libfaketime), with the aws
CLI's clock moved alike (SigV4 refuses a skewed clock). The preview
(start-lifecycle-policy-preview) lists exactly what the applied run (POST /_berth/lifecycle)
then expires by a rule; the referrers of an expired image go with it.
"""
import base64
import json
import time

import requests

import images
from conftest import Berth
from httputil import OCI_MANIFEST, Registry, assert_error, assert_status, basic_auth
from test_console import wait_for_scan
from test_ecr import Aws, _faketime_env
from test_lifecycle import write_policy
from test_multiarch_delete import Skopeo, assert_every_platform_pulls

# The example policy of the ECR user guide ("Filtering on image age").
GUIDE_POLICY = {"rules": [
    {"rulePriority": 1, "description": "Expire images older than 14 days",
     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
     "action": {"type": "expire"}}]}

SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
SBOM_TYPE = "application/vnd.cyclonedx+json"
REPO = "team/signed"


def referrers(b, digest):
    r = requests.get(f"{b.url}/v2/{REPO}/referrers/{digest}", headers={"Authorization": basic_auth(b.token())},
                     timeout=30)
    assert_status(r, 200)
    return {m["digest"]: m.get("artifactType") for m in r.json()["manifests"]}


def sign(reg, digest, manifest):
    """A notation-style signature: an untagged OCI artifact whose subject is the image."""
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}
    return reg.push_image(REPO, tag=None, nlayers=1, layer_size=64, subject=subject,
                          artifact_type=SIGNATURE_TYPE)["digest"]


def push(sk, layout, tag):
    """A real (scannable) image pushed as REPO:tag; returns {"digest", "manifest"}."""
    img = images.build_image(layout, tag)
    sk.run("copy", "--dest-tls-verify=false", "--dest-authfile", sk.authfile, img.ref, sk.ref(REPO, tag))
    return {"digest": img.manifest_digest, "manifest": img.manifest_bytes}


def wait_preview(aws):
    deadline = time.monotonic() + 60
    while True:
        out = aws.ecr("get-lifecycle-policy-preview", "--repository-name", REPO)
        if out["status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return out
        time.sleep(0.05)  # polling an asynchronous API, as the aws CLI waiter does


def test_untagged_expiry_keeps_live_images_sboms_and_signatures(tmp_path):
    data = str(tmp_path / "data")
    b = Berth(data).start()
    try:
        ecr = b.ecr()
        ecr.create_repository(repositoryName=REPO, imageScanningConfiguration={"scanOnPush": True})
        reg = Registry(b.url, token=b.token())
        sk = Skopeo(b, tmp_path / "home")
        layout = str(tmp_path / "layout")
        live, doomed, gone = (push(sk, layout, tag) for tag in ("live", "doomed", "gone"))
        # Untagged, as a moved tag leaves an image: the rule's target.
        r = reg.delete(f"/v2/{REPO}/manifests/doomed")
        assert_status(r, 202)
        multi = images.build_multiarch(layout, "multi")
        sk.push_all(multi.ref, REPO, "multi")
        children = [c.manifest_digest for c in multi.children]
        for d in [live["digest"], doomed["digest"], gone["digest"], *children]:
            status = wait_for_scan(ecr, REPO, d)
            assert status and status["status"] != "IN_PROGRESS", (d, status)

        sign(reg, live["digest"], live["manifest"])
        sign(reg, doomed["digest"], doomed["manifest"])
        sign(reg, gone["digest"], gone["manifest"])
        orphans = referrers(b, gone["digest"])
        assert sorted(orphans.values()) == [SIGNATURE_TYPE, SBOM_TYPE], orphans
        # The image is deleted by hand; its SBOM and signature are left without a subject (as
        # on ECR, which leaves them to lifecycle cleanup).
        out = ecr.batch_delete_image(repositoryName=REPO, imageIds=[{"imageDigest": gone["digest"]}])
        assert out["failures"] == [], out

        live_refs, doomed_refs = referrers(b, live["digest"]), referrers(b, doomed["digest"])
        assert sorted(live_refs.values()) == [SIGNATURE_TYPE, SBOM_TYPE], live_refs
        assert sorted(doomed_refs.values()) == [SIGNATURE_TYPE, SBOM_TYPE], doomed_refs
        child_sboms = {d for c in children for d, t in referrers(b, c).items() if t == SBOM_TYPE}
        assert len(child_sboms) == len(children), "scan on push attached an SBOM to each platform"
        ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=json.dumps(GUIDE_POLICY))
        before = {i["imageDigest"] for i in ecr.describe_images(repositoryName=REPO)["imageDetails"]}
        untagged = {i["imageDigest"] for i in
                    ecr.describe_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})["imageDetails"]}
        # SBOMs, signatures and platforms are untagged images like any other.
        assert set(live_refs) | set(doomed_refs) | child_sboms | set(children) | {doomed["digest"]} | set(orphans) \
            <= untagged, untagged
    finally:
        b.stop()

    faked = _faketime_env("+15d")
    b = Berth(data, env=faked).start()
    try:
        aws = Aws(b, tmp_path / "aws-home")
        aws.env.update(faked)
        # The registry password, fetched as ECR's guide does, on the moved clock.
        data = aws.ecr("get-authorization-token")["authorizationData"][0]
        user, b._token = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        assert user == "AWS"

        # The preview: exactly the images a rule expires; no SBOM or signature of a live image,
        # no platform of the live index.
        aws.ecr("start-lifecycle-policy-preview", "--repository-name", REPO)
        preview = wait_preview(aws)
        assert preview["status"] == "COMPLETE", preview
        expiring = {r["imageDigest"] for r in preview["previewResults"]}
        # Orphaned referrers (subject gone) are judged as ordinary untagged images.
        assert expiring == {doomed["digest"], *orphans}, preview["previewResults"]
        assert all(r["appliedRulePriority"] == 1 and r["action"]["type"] == "EXPIRE" and not r.get("imageTags")
                   for r in preview["previewResults"]), preview["previewResults"]
        assert preview["summary"]["expiringImageTotalCount"] == 3
        listed = {i["imageDigest"] for i in aws.ecr("describe-images", "--repository-name", REPO)["imageDetails"]}
        assert listed == before, "a preview changes nothing"

        # The applied run does what the preview showed; the expired image's referrers go with it.
        r = requests.post(f"{b.url}/_berth/lifecycle", headers={"Authorization": basic_auth(b.token())}, timeout=120)
        assert_status(r, 200)
        report = next(rep for rep in r.json() if rep["repository"] == REPO)
        assert {a["digest"] for a in report["actions"]} == expiring, report
        assert set(report["referrersExpired"]) == set(doomed_refs), report
        assert report["skipped"] == [], report

        left = {i["imageDigest"] for i in aws.ecr("describe-images", "--repository-name", REPO)["imageDetails"]}
        assert left == before - expiring - set(doomed_refs), (before, left)
        assert referrers(b, live["digest"]) == live_refs, "the live image keeps its SBOM and signature"
        for d in (doomed["digest"], *doomed_refs, *orphans):
            got = requests.get(f"{b.url}/v2/{REPO}/manifests/{d}",
                               headers={"Authorization": basic_auth(b.token()), "Accept": OCI_MANIFEST}, timeout=30)
            assert_error(got, 404, "MANIFEST_UNKNOWN")
        for sbom in child_sboms:
            got = requests.get(f"{b.url}/v2/{REPO}/manifests/{sbom}",
                               headers={"Authorization": basic_auth(b.token()), "Accept": OCI_MANIFEST}, timeout=30)
            assert_status(got, 200)
        assert_every_platform_pulls(Skopeo(b, tmp_path / "home2"), REPO, multi, str(tmp_path / "pulled"))

        # A second run finds nothing more to do.
        r = requests.post(f"{b.url}/_berth/lifecycle", headers={"Authorization": basic_auth(b.token())}, timeout=120)
        report = next(rep for rep in r.json() if rep["repository"] == REPO)
        assert report["actions"] == [] and report["referrersExpired"] == [], report
    finally:
        b.stop()
