"""Pull-through cache features (issue 20) with real clients: one platform of a multi-arch index
pulled through (skopeo --override-arch) stores the index and that child only, another platform
later fetches its child; containerd's `ctr images pull` (layers unpacked) through the cache; the
"ECR Pull Through Cache Action" events a webhook receives; a second berth's ECR Public
repository as an anonymous `ecr-public` upstream.
"""
import json
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Berth
from test_addressing import Containerd
from test_encryption import aws
from test_pull_through import (add_rule, aws_home, cache, pull_to_dir, run, skopeo_digest,  # noqa: F401 (fixtures)
                               tar_image, tar_index, upstream, wait_for_image)
from test_webhooks import Receiver, add_webhook


def image_ids(b, repo):
    return {(i["imageDigest"], tuple(sorted(i.get("imageTags", [])))) for i in
            b.ecr().describe_images(repositoryName=repo)["imageDetails"]}


def assert_listed_by_the_index(ecr, child):
    """ECR refuses to delete a platform image an index in the repository lists."""
    out = ecr.batch_delete_image(repositoryName="dist/team/multi", imageIds=[{"imageDigest": child}])
    assert out["imageIds"] == [] and out["failures"][0]["failureCode"] == "ImageReferencedByManifestList", out


def multi_upstream(cache, upstream, tmp_path):
    """A two-platform index at the upstream's team/multi:v1 and a `dist` rule for it."""
    multi = tar_index(str(tmp_path / "oci"), "v1", ["amd64", "arm64"])
    run("skopeo", "copy", "--all", "--dest-tls-verify=false", multi.ref, f"docker://{upstream.addr}/team/multi:v1")
    assert add_rule(cache, aws_home(tmp_path), "dist", upstream.url)[0].returncode == 0
    return multi


def pull_platform(cache, ref, arch, out):
    run("skopeo", "copy", "--override-arch", arch, "--src-tls-verify=false", "--src-creds", f"AWS:{cache.token()}",
        f"docker://{ref}", f"dir:{out}")


def wait_for_child(cache, digest):
    """The child is stored once its blobs are: poll describe-images for it."""
    deadline = time.monotonic() + 60
    while (digest, ()) not in image_ids(cache, "dist/team/multi"):
        assert time.monotonic() < deadline, image_ids(cache, "dist/team/multi")
        time.sleep(0.1)  # polling for the background store, not ordering events


def test_one_platform_of_an_index_caches_the_index_and_that_child_only(cache, upstream, tmp_path):
    multi = multi_upstream(cache, upstream, tmp_path)
    amd64, arm64 = multi.children
    ref = f"{cache.addr}/dist/team/multi:v1"

    out = tmp_path / "arm64"
    pull_platform(cache, ref, "arm64", out)
    assert open(out / "manifest.json", "rb").read() == arm64.manifest_bytes
    ecr = cache.ecr()
    wait_for_image(ecr, "dist/team/multi", "v1")
    # The child is stored once its blobs are: poll describe-images for it.
    deadline = time.monotonic() + 60
    while (multi.index_digest, ("v1",)) not in image_ids(cache, "dist/team/multi") or \
            (arm64.manifest_digest, ()) not in image_ids(cache, "dist/team/multi"):
        assert time.monotonic() < deadline, image_ids(cache, "dist/team/multi")
        time.sleep(0.1)
    assert image_ids(cache, "dist/team/multi") == {(multi.index_digest, ("v1",)), (arm64.manifest_digest, ())}
    index = ecr.describe_images(repositoryName="dist/team/multi", imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert index["imageManifestMediaType"] == "application/vnd.oci.image.index.v1+json"
    got = ecr.batch_get_image(repositoryName="dist/team/multi", imageIds=[{"imageTag": "v1"}])["images"][0]
    assert got["imageManifest"].encode() == multi.index_bytes
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName="dist/team/multi", imageIds=[{"imageDigest": amd64.manifest_digest}])
    assert_listed_by_the_index(ecr, arm64.manifest_digest)
    gets = upstream.blob_gets("team/multi")
    assert amd64.layer_digests[0] not in gets and gets.get(arm64.layer_digests[0]) == 1, gets

    # The other platform later: its child is fetched and cached; the index stays as it was.
    out = tmp_path / "amd64"
    pull_platform(cache, ref, "amd64", out)
    assert open(out / "manifest.json", "rb").read() == amd64.manifest_bytes
    wait_for_child(cache, amd64.manifest_digest)
    assert image_ids(cache, "dist/team/multi") == {(multi.index_digest, ("v1",)), (arm64.manifest_digest, ()),
                                                    (amd64.manifest_digest, ())}
    # The child cached later was linked to the stored index (as a pushed index's children are).
    assert_listed_by_the_index(ecr, amd64.manifest_digest)
    raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{cache.token()}", f"docker://{ref}")
    assert raw.stdout.encode() == multi.index_bytes


def test_a_child_cached_by_a_process_that_never_served_its_index_is_linked_when_it_does(cache, upstream, tmp_path):
    """Which stored indexes still miss children is kept per process: a second node, or this one
    restarted, caches a child by digest without knowing the index lists it. The first time that
    process serves the index, the children cached since are linked to it."""
    multi = multi_upstream(cache, upstream, tmp_path)
    amd64, arm64 = multi.children
    pull_platform(cache, f"{cache.addr}/dist/team/multi:v1", "arm64", tmp_path / "arm64")
    wait_for_child(cache, arm64.manifest_digest)
    assert_listed_by_the_index(cache.ecr(), arm64.manifest_digest)

    cache.restart()
    ref = f"{cache.addr}/dist/team/multi"
    pull_to_dir(cache, f"{ref}@{amd64.manifest_digest}", str(tmp_path / "amd64"))
    assert open(tmp_path / "amd64" / "manifest.json", "rb").read() == amd64.manifest_bytes
    wait_for_child(cache, amd64.manifest_digest)
    raw = run("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{cache.token()}", f"docker://{ref}:v1")
    assert raw.stdout.encode() == multi.index_bytes
    assert_listed_by_the_index(cache.ecr(), amd64.manifest_digest)


def test_ctr_images_pull_through_the_cache_unpacks_the_upstreams_image(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    img = tar_image(str(tmp_path / "oci"), "v1", [256 * 1024, 64 * 1024])
    upstream.push(img, "team/ctr", "v1")
    multi = tar_index(str(tmp_path / "oci"), "m1", ["amd64", "arm64"])
    run("skopeo", "copy", "--all", "--dest-tls-verify=false", multi.ref, f"docker://{upstream.addr}/team/ctr:m1")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0

    d = tempfile.mkdtemp(prefix="berth-ptc-", dir="/tmp")
    c = Containerd(d)
    try:
        ctr = ["ctr", "-a", f"{d}/containerd.sock"]
        token = cache.token()
        ref = f"{cache.addr}/dist/team/ctr:v1"
        run(*ctr, "images", "pull", "--snapshotter", "native", "--plain-http", "--user", f"AWS:{token}", ref)
        listed = {line.split()[0]: line.split()[2] for line in run(*ctr, "images", "ls").stdout.splitlines()[1:]}
        assert listed[ref] == img.manifest_digest, listed
        # Unpacked: the layers' snapshots exist (ctr would have failed on a broken layer).
        assert len(run(*ctr, "snapshots", "--snapshotter", "native", "ls").stdout.splitlines()) > 1

        mref = f"{cache.addr}/dist/team/ctr:m1"
        run(*ctr, "images", "pull", "--snapshotter", "native", "--plain-http", "--user", f"AWS:{token}",
            "--platform", "linux/arm64", mref)
        listed = {line.split()[0]: line.split()[2] for line in run(*ctr, "images", "ls").stdout.splitlines()[1:]}
        assert listed[mref] == multi.index_digest, listed
        for blob in [multi.index_digest, multi.children[1].manifest_digest, *multi.children[1].layer_digests]:
            assert c.has_blob(blob), blob
    finally:
        c.stop()
        subprocess.run(["umount", "-R", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
    wait_for_image(cache.ecr(), "dist/team/ctr", "v1")
    assert cache.ecr().describe_images(repositoryName="dist/team/ctr", imageIds=[{"imageTag": "v1"}])[
        "imageDetails"][0]["imageDigest"] == img.manifest_digest


def test_a_cached_image_and_a_failed_fetch_are_pull_through_cache_action_events(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    receiver = Receiver()
    try:
        add_webhook(cache, receiver.url, "--detail-type", "ECR Pull Through Cache Action")
        img = tar_image(str(tmp_path / "oci"), "v1", [32 * 1024])
        upstream.push(img, "team/events", "v1")
        assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
        pull_to_dir(cache, f"{cache.addr}/dist/team/events:v1", str(tmp_path / "pulled"))
        [(_, body)] = receiver.wait_for(1)
        event = json.loads(body)
        assert event["detail-type"] == "ECR Pull Through Cache Action" and event["source"] == "aws.ecr"
        assert event["resources"] == [f"arn:aws:ecr:{cache.region}:{cache.account}:repository/dist/team/events"]
        assert event["detail"] == {"rule-version": "1", "sync-status": "SUCCESS", "ecr-repository-prefix": "dist",
                                   "repository-name": "dist/team/events", "upstream-registry-url": upstream.url,
                                   "image-tag": "v1", "image-digest": img.manifest_digest}

        # The upstream down: the fetch of an uncached tag fails, and says so.
        upstream.stop()
        p = pull_to_dir(cache, f"{cache.addr}/dist/team/events:v2", str(tmp_path / "failed"), check=False)
        assert p.returncode != 0
        failed = json.loads(receiver.wait_for(2)[1][1])
        detail = failed["detail"]
        assert detail["sync-status"] == "FAILED" and detail["image-tag"] == "v2", detail
        assert detail["failure-code"] == "UPSTREAM_ERROR" and upstream.addr in detail["failure-reason"], detail
        assert "image-digest" not in detail
    finally:
        receiver.close()


def test_a_berth_public_repository_as_an_anonymous_ecr_public_upstream(cache, tmp_path):
    from test_ecr_public_pulls import login_password, public_uri

    home = aws_home(tmp_path)
    up = Berth(str(tmp_path / "public-upstream")).start()
    try:
        aws(up, home, "ecr-public", "create-repository", "--repository-name", "tools/app")
        uri, alias = public_uri(up, home, "tools/app")
        img = tar_image(str(tmp_path / "oci"), "v1", [96 * 1024])
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{login_password(up, home)}", img.ref,
            f"docker://{uri}:v1")
        p, made = add_rule(cache, home, "ecr-public", up.url, upstream_registry="ecr-public")
        assert p.returncode == 0, p.stderr
        assert made["upstreamRegistry"] == "ecr-public" and "credentialArn" not in made
        ref = f"{cache.addr}/ecr-public/{alias}/tools/app:v1"
        pull_to_dir(cache, ref, str(tmp_path / "pulled"))
        assert open(tmp_path / "pulled" / "manifest.json", "rb").read() == img.manifest_bytes
        assert skopeo_digest(cache, ref) == img.manifest_digest
        assert wait_for_image(cache.ecr(), f"ecr-public/{alias}/tools/app", "v1")["imageDigest"] == img.manifest_digest
    finally:
        up.stop()


def test_referrers_of_an_image_come_with_it_from_an_upstream_with_the_referrers_api(cache, upstream, tmp_path):
    """A second berth as the upstream (it serves the referrers API): a signature-like artifact
    pushed there with oras, subject the image, is listed through the cache once the image is
    pulled; distribution 2.8 (no referrers API) is skipped silently."""
    import oras.client
    import oras.oci
    import requests

    from test_pull_through import secrets

    home = aws_home(tmp_path)
    up = Berth(str(tmp_path / "referrers-upstream")).start()
    try:
        img = tar_image(str(tmp_path / "oci"), "v1", [48 * 1024])
        token = up.token()
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{token}", img.ref,
            f"docker://{up.addr}/team/signed:v1")
        client = oras.client.OrasClient(hostname=up.addr, insecure=True, auth_backend="basic")
        cfg = tmp_path / "oras-config.json"
        cfg.write_text(json.dumps({"auths": {}}))
        client.login(username="AWS", password=token, hostname=up.addr, config_path=str(cfg))
        sig = tmp_path / "signature.json"
        sig.write_text(json.dumps({"signed": img.manifest_digest}))
        subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json", digest=img.manifest_digest,
                                   size=len(img.manifest_bytes))
        client.push(target=f"{up.addr}/team/signed:sig", files=[f"{sig}:application/vnd.test.signature+json"],
                    subject=subject, disable_path_validation=True)
        listed = requests.get(f"{up.url}/v2/team/signed/referrers/{img.manifest_digest}", auth=("AWS", token),
                              timeout=30).json()["manifests"]
        assert len(listed) == 1, listed

        arn = secrets(cache).create_secret(Name="ecr-pullthroughcache/refs",
                                           SecretString=json.dumps({"username": "AWS", "accessToken": token}))["ARN"]
        assert add_rule(cache, home, "signed", up.url, credential_arn=arn)[0].returncode == 0
        # distribution 2.8 has no referrers API: its images pull through all the same.
        plain = tar_image(str(tmp_path / "oci"), "plain", [16 * 1024])
        upstream.push(plain, "team/plain", "v1")
        assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
        assert skopeo_digest(cache, f"{cache.addr}/dist/team/plain:v1") == plain.manifest_digest

        pull_to_dir(cache, f"{cache.addr}/signed/team/signed:v1", str(tmp_path / "pulled"))
        ctoken = cache.token()
        deadline = time.monotonic() + 60
        while True:
            r = requests.get(f"{cache.url}/v2/signed/team/signed/referrers/{img.manifest_digest}",
                             auth=("AWS", ctoken), timeout=30)
            assert r.status_code == 200, r.text
            if r.json()["manifests"]:
                break
            assert time.monotonic() < deadline, "the referrer was not cached with its subject"
            time.sleep(0.2)
        assert [(m["digest"], m.get("artifactType")) for m in r.json()["manifests"]] == \
            [(m["digest"], m.get("artifactType")) for m in listed]
        # The referrer is an ordinary cached manifest: its bytes equal the upstream's, its blob pulls.
        ref = listed[0]["digest"]
        got = requests.get(f"{cache.url}/v2/signed/team/signed/manifests/{ref}", auth=("AWS", ctoken), timeout=30,
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        want = requests.get(f"{up.url}/v2/team/signed/manifests/{ref}", auth=("AWS", token), timeout=30,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert got.status_code == 200 and got.content == want.content

        def add_referrer_upstream(name, body, media_type):
            f = tmp_path / f"{name}.json"
            f.write_text(json.dumps(body))
            client.push(target=f"{up.addr}/team/signed:{name}", files=[f"{f}:{media_type}"], subject=subject,
                        disable_path_validation=True)
            return requests.get(f"{up.url}/v2/team/signed/referrers/{img.manifest_digest}", auth=("AWS", token),
                                timeout=30).json()["manifests"]

        def cached_referrers_once(count, pull_tag, why):
            deadline = time.monotonic() + 60
            while True:
                if pull_tag:
                    assert skopeo_digest(cache, f"{cache.addr}/signed/team/signed:v1") == img.manifest_digest
                r = requests.get(f"{cache.url}/v2/signed/team/signed/referrers/{img.manifest_digest}",
                                 auth=("AWS", ctoken), timeout=30)
                assert r.status_code == 200, r.text
                if len(r.json()["manifests"]) == count:
                    return r.json()["manifests"]
                assert time.monotonic() < deadline, why
                time.sleep(0.5)  # polling for the refresh interval to pass, not ordering events

        def pairs(manifests):
            return sorted((m["digest"], m.get("artifactType")) for m in manifests)

        # An SBOM added upstream after the image was cached arrives at the tag's next re-check
        # (every REFRESH_SECONDS here, 24 h by default), with no pull of the referrer itself.
        upstream_now = add_referrer_upstream("sbom", {"sbom": img.manifest_digest}, "application/vnd.test.sbom+json")
        assert len(upstream_now) == 2, upstream_now
        cached = cached_referrers_once(2, True, "the referrer added upstream later was never cached")
        assert pairs(cached) == pairs(upstream_now)

        # A client that only lists referrers by digest (cosign or notation verifying a
        # digest-pinned image) gets new ones too: once the interval has passed, the listing
        # itself asks the upstream first.
        upstream_now = add_referrer_upstream("att", {"attests": img.manifest_digest}, "application/vnd.test.attestation+json")
        assert len(upstream_now) == 3, upstream_now
        cached = cached_referrers_once(3, False, "a referrers listing never brought the new referrer")
        assert pairs(cached) == pairs(upstream_now)
        up.stop()  # served from the cache from here on
        layer = json.loads(got.content)["layers"][0]["digest"]
        blob = requests.get(f"{cache.url}/v2/signed/team/signed/blobs/{layer}", auth=("AWS", ctoken), timeout=30)
        assert blob.status_code == 200 and json.loads(blob.content) == {"signed": img.manifest_digest}
    finally:
        up.stop()
