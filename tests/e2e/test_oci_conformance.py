"""OCI distribution-spec conformance points that real clients tripped over.

Each test drives the client that broke: oras-py with its default ("token") auth backend, plain
HTTP for the spec's status codes and headers, boto3 for the ECR side of referrers.
"""
import json
import os
import subprocess
import urllib.parse
import uuid

import pytest
import requests

from conftest import Berth
from httputil import (
    OCI_CONFIG, OCI_EMPTY, OCI_EMPTY_BYTES, OCI_EMPTY_DIGEST, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Registry,
    assert_error, assert_status, describe, descriptor, sha256, sha512,
)


@pytest.fixture
def reg(berth):
    return Registry(berth.url, token=berth.token())


def _challenge_realm(resp):
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Basic "), describe(resp)
    params = dict(p.strip().split("=", 1) for p in challenge[len("Basic "):].split(","))
    return params["realm"].strip('"')


# --------------------------------------------------------------------------------------------
# 1. the challenge's realm, and oras-py's default auth backend
# --------------------------------------------------------------------------------------------

def test_realm_is_the_plain_http_listener(berth):
    r = requests.get(berth.url + "/v2/", timeout=30)
    assert_status(r, 401)
    assert _challenge_realm(r) == f"http://{berth.addr}/"


def test_oras_default_auth_backend_pushes_and_pulls(berth, repo, tmp_path):
    import oras.client

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {}}))
    client = oras.client.OrasClient(hostname=berth.addr, insecure=True)  # default auth_backend="token"
    # oras-py 0.2.x's login takes no `insecure`; the client's `insecure=True` already selects http.
    client.login(username="AWS", password=berth.token(), hostname=berth.addr, config_path=str(cfg))

    src = tmp_path / "artifact.bin"
    data = os.urandom(200_000)
    src.write_bytes(data)
    target = f"{berth.addr}/{repo}:v1"
    resp = client.push(target=target, files=[str(src)], config_path=str(cfg), disable_path_validation=True)
    assert resp.status_code == 201, (resp.status_code, resp.text)

    outdir = tmp_path / "pulled"
    pulled = client.pull(target=target, config_path=str(cfg), outdir=str(outdir))
    assert [os.path.basename(p) for p in pulled] == ["artifact.bin"]
    assert (outdir / "artifact.bin").read_bytes() == data


def test_token_realm_exchanges_only_valid_credentials(berth):
    realm = _challenge_realm(requests.get(berth.url + "/v2/", timeout=30))
    r = requests.get(realm, params={"service": "ecr.amazonaws.com"}, auth=("AWS", berth.token()), timeout=30)
    assert_status(r, 200)
    token = r.json()["token"]
    assert r.json()["access_token"] == token
    assert requests.get(berth.url + "/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
    # The bare registry token is not a bearer token (test_ecr's forged-token test).
    r = requests.get(berth.url + "/v2/", headers={"Authorization": f"Bearer {berth.token()}"}, timeout=30)
    assert_status(r, 401)
    for auth in (None, ("AWS", "b1.not.a-token")):
        r = requests.get(realm, auth=auth, timeout=30)
        assert_status(r, 401)
        assert "token" not in r.json() and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert _challenge_realm(r) == realm
    r = requests.get(berth.url + "/v2/", headers={"Authorization": "Bearer b1.not.a-token"}, timeout=30)
    assert_status(r, 401)


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_realm_is_https_under_tls(tmp_path):
    cert, key = _self_signed(tmp_path)
    b = Berth(str(tmp_path / "data"), extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        r = requests.get(f"https://{b.addr}/v2/", verify=str(cert), timeout=30)
        assert_status(r, 401)
        assert _challenge_realm(r) == f"https://{b.addr}/"
    finally:
        b.stop()


# --------------------------------------------------------------------------------------------
# 2. a reference that is neither a tag nor a digest
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["bad!ref", ".hidden", "t" * 129, "sha256:zz"])
def test_manifest_by_invalid_reference_is_unknown(reg, repo, bad):
    img = reg.push_image(repo, tag="v1")
    path = f"/v2/{repo}/manifests/{urllib.parse.quote(bad, safe=':')}"
    assert_error(reg.get(path, headers={"Accept": OCI_MANIFEST}), 404, "MANIFEST_UNKNOWN")
    assert_status(reg.head(path, headers={"Accept": OCI_MANIFEST}), 404)
    r = reg.put(path, data=img["manifest"], headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400, describe(r)


# --------------------------------------------------------------------------------------------
# 3.-5. referrers: artifactType from the config, ECR paging and status, subjectManifestDigest
# --------------------------------------------------------------------------------------------

def _push_plain_referrer(reg, repo, subject_desc, note=None):
    """A signature-like image manifest: plain image config, no artifactType, a subject."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = b"signature payload"
    reg.upload_blob(repo, cfg)
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(cfg, OCI_CONFIG),
         "layers": [descriptor(layer, OCI_LAYER)], "subject": subject_desc,
         "annotations": {"note": note or uuid.uuid4().hex}}
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, sha256(body), body, OCI_MANIFEST)
    assert r.headers.get("OCI-Subject") == subject_desc["digest"], describe(r)
    return sha256(body)


def _push_artifact_referrer(reg, repo, subject_desc, artifact_type):
    reg.upload_blob(repo, OCI_EMPTY_BYTES)
    layer = os.urandom(64)
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
         "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
         "layers": [descriptor(layer, "application/spdx+json")], "subject": subject_desc}
    body = json.dumps(m).encode()
    reg.put_manifest(repo, sha256(body), body, OCI_MANIFEST)
    return sha256(body)


def test_referrer_without_artifact_type_is_listed_with_its_config_type(berth, reg, repo):
    subj = reg.push_image(repo, tag="app")
    sd = descriptor(subj["manifest"], OCI_MANIFEST)
    sig = _push_plain_referrer(reg, repo, sd)
    sbom = _push_artifact_referrer(reg, repo, sd, "application/vnd.example.sbom")

    r = reg.get(f"/v2/{repo}/referrers/{subj['digest']}")
    assert_status(r, 200)
    types = {m["digest"]: m.get("artifactType") for m in r.json()["manifests"]}
    assert types == {sig: OCI_CONFIG, sbom: "application/vnd.example.sbom"}

    r = reg.get(f"/v2/{repo}/referrers/{subj['digest']}?artifactType={urllib.parse.quote(OCI_CONFIG, safe='')}")
    assert_status(r, 200)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sig]

    ecr = berth.ecr()
    out = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": subj["digest"]},
                                   filter={"artifactTypes": [OCI_CONFIG]})
    assert [(x["digest"], x["artifactType"]) for x in out["referrers"]] == [(sig, OCI_CONFIG)]


def test_list_image_referrers_pages_and_filters_by_status(berth, reg, repo):
    from botocore.exceptions import ClientError

    ecr = berth.ecr()
    subj = reg.push_image(repo, tag="app")
    sd = descriptor(subj["manifest"], OCI_MANIFEST)
    pushed = {_push_plain_referrer(reg, repo, sd, note=str(i)) for i in range(23)}
    subject_id = {"imageDigest": subj["digest"]}

    def all_pages(**kw):
        seen, pages, token = [], 0, None
        while True:
            args = dict(kw, **({"nextToken": token} if token else {}))
            out = ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, **args)
            pages += 1
            seen += [x["digest"] for x in out["referrers"]]
            token = out.get("nextToken")
            if not token:
                return seen, pages

    # Default page size is 20 (ECR's); maxResults up to 50.
    first = ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id)
    assert len(first["referrers"]) == 20 and first.get("nextToken")
    assert all(x["artifactStatus"] == "ACTIVE" for x in first["referrers"])
    seen, pages = all_pages(maxResults=5)
    assert pages == 5 and len(seen) == 23 and set(seen) == pushed
    seen, pages = all_pages(maxResults=50)
    assert pages == 1 and set(seen) == pushed
    # botocore checks only the minimum, so 51 reaches the server.
    with pytest.raises(ClientError) as e:
        ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, maxResults=51)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, nextToken="not-a-token")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"

    archived = sorted(pushed)[3]
    ecr.update_image_storage_class(repositoryName=repo, imageId={"imageDigest": archived},
                                   targetStorageClass="ARCHIVE")
    active, _ = all_pages(maxResults=50)
    assert set(active) == pushed - {archived}
    out = ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, filter={"artifactStatus": "ARCHIVED"})
    assert [(x["digest"], x["artifactStatus"]) for x in out["referrers"]] == [(archived, "ARCHIVED")]
    everything, _ = all_pages(maxResults=50, filter={"artifactStatus": "ANY"})
    assert set(everything) == pushed
    with pytest.raises(ClientError) as e:
        ecr.list_image_referrers(repositoryName=repo, subjectId=subject_id, filter={"artifactStatus": "GONE"})
    assert e.value.response["Error"]["Code"] in ("InvalidParameterException", "ValidationException")


def test_describe_images_gives_a_referrers_subject(berth, reg, repo):
    subj = reg.push_image(repo, tag="app")
    sd = descriptor(subj["manifest"], OCI_MANIFEST)
    sbom = _push_artifact_referrer(reg, repo, sd, "application/vnd.example.sbom")
    ecr = berth.ecr()
    out = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": sbom}, {"imageDigest": subj["digest"]}])
    details = {d["imageDigest"]: d for d in out["imageDetails"]}
    assert details[sbom]["subjectManifestDigest"] == subj["digest"]
    assert "subjectManifestDigest" not in details[subj["digest"]]
    listed = {d["imageDigest"]: d.get("subjectManifestDigest") for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert listed == {sbom: subj["digest"], subj["digest"]: None}


# --------------------------------------------------------------------------------------------
# 6. PUT …/manifests/<digest>?tag=…&tag=…
# --------------------------------------------------------------------------------------------

def _image_body(reg, repo, note):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = b"layer bytes"
    reg.upload_blob(repo, cfg)
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(cfg, OCI_CONFIG),
         "layers": [descriptor(layer, OCI_LAYER)], "annotations": {"note": note}}
    return json.dumps(m).encode()


def _tags(reg, repo):
    r = reg.get(f"/v2/{repo}/tags/list")
    assert_status(r, 200)
    return sorted(r.json()["tags"] or [])


def test_put_by_sha512_digest_with_tags(reg, repo):
    body = _image_body(reg, repo, "one")
    digest = sha512(body)
    r = reg.put(f"/v2/{repo}/manifests/{digest}?tag=a&tag=b", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert_status(r, 201)
    assert r.headers["Docker-Content-Digest"] == digest
    assert sorted(r.raw.headers.getlist("OCI-Tag")) == ["a", "b"], describe(r)
    assert _tags(reg, repo) == ["a", "b"]
    for t in ("a", "b"):
        g = reg.get(f"/v2/{repo}/manifests/{t}", headers={"Accept": OCI_MANIFEST})
        assert_status(g, 200)
        assert g.content == body and g.headers["Docker-Content-Digest"] == digest
    # Without ?tag= there is no OCI-Tag header (clients then tag one by one).
    other = _image_body(reg, repo, "two")
    r = reg.put(f"/v2/{repo}/manifests/{sha256(other)}", data=other, headers={"Content-Type": OCI_MANIFEST})
    assert_status(r, 201)
    assert "OCI-Tag" not in r.headers


def test_put_with_tags_follows_tag_rules_all_or_nothing(berth, reg, repo):
    body = _image_body(reg, repo, "bad tag")
    r = reg.put(f"/v2/{repo}/manifests/{sha256(body)}?tag=ok&tag=no!pe", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "TAG_INVALID")
    assert_status(reg.get(f"/v2/{repo}/manifests/{sha256(body)}", headers={"Accept": OCI_MANIFEST}), 404)

    imm = repo + "-imm"
    berth.ecr().create_repository(repositoryName=imm, imageTagMutability="IMMUTABLE")
    first = _image_body(reg, imm, "first")
    assert_status(reg.put(f"/v2/{imm}/manifests/{sha256(first)}?tag=b", data=first,
                          headers={"Content-Type": OCI_MANIFEST}), 201)
    second = _image_body(reg, imm, "second")
    r = reg.put(f"/v2/{imm}/manifests/{sha256(second)}?tag=c&tag=b", data=second, headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "TAG_INVALID")
    assert _tags(reg, imm) == ["b"]
    assert_status(reg.get(f"/v2/{imm}/manifests/{sha256(second)}", headers={"Accept": OCI_MANIFEST}), 404)
    # Re-applying an immutable tag to the manifest it names is allowed.
    r = reg.put(f"/v2/{imm}/manifests/{sha256(first)}?tag=b&tag=d", data=first, headers={"Content-Type": OCI_MANIFEST})
    assert_status(r, 201)
    assert sorted(r.raw.headers.getlist("OCI-Tag")) == ["b", "d"]
    assert _tags(reg, imm) == ["b", "d"]


# --------------------------------------------------------------------------------------------
# 7. DELETE of a blob
# --------------------------------------------------------------------------------------------

def test_blob_delete_unlinks_or_refuses_with_405(reg, repo):
    img = reg.push_image(repo, tag="v1", nlayers=1)
    layer_digest, layer = img["blobs"][1]
    assert_error(reg.delete(f"/v2/{repo}/blobs/{layer_digest}"), 405, "UNSUPPORTED")
    g = reg.get(f"/v2/{repo}/blobs/{layer_digest}")
    assert_status(g, 200)
    assert g.content == layer
    assert_status(reg.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)

    loose = os.urandom(300)
    reg.upload_blob(repo, loose)
    assert_status(reg.delete(f"/v2/{repo}/blobs/{sha256(loose)}"), 202)
    assert_error(reg.get(f"/v2/{repo}/blobs/{sha256(loose)}"), 404, "BLOB_UNKNOWN")
    assert_error(reg.delete(f"/v2/{repo}/blobs/{sha256(loose)}"), 404, "BLOB_UNKNOWN")
