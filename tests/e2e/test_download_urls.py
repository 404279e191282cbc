"""GetDownloadUrlForLayer URLs grant one thing: a GET (or HEAD) of that blob in that repository,
for a few minutes. The URL carries a capability, never the caller's registry token.

(Expiry is tested with the service's injectable clock in crates/berth-core/tests/download_urls.rs.)
"""
import hashlib
import urllib.parse
import uuid

import requests

from conftest import ACCOUNT
from httputil import Registry, assert_error, assert_status, basic_auth, sha256

PARAM = "berth_download"


def capability_of(url):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert "berth_token" not in query, url
    assert list(query) == [PARAM], url
    return query[PARAM][0]


def with_capability(base, path, cap):
    return f"{base}{path}?{PARAM}={cap}"


def test_a_download_url_reads_its_blob_and_nothing_else(berth, repo):
    token = berth.token()
    reg = Registry(berth.url, token=token)
    img = reg.push_image(repo, tag="v1")
    (layer, data), (other_layer, _) = img["blobs"][1], img["blobs"][2]
    # The same blob linked into another repository the caller may read.
    other_repo = f"{repo}-other"
    reg.upload_blob(other_repo, data)

    ecr = berth.ecr()
    got = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer)
    url = got["downloadUrl"]
    assert got["layerDigest"] == layer
    assert urllib.parse.urlsplit(url).path == f"/v2/{repo}/blobs/{layer}", url
    cap = capability_of(url)
    assert token not in url and not cap.startswith("b1."), url

    # The URL alone downloads the exact bytes (and answers HEAD).
    r = requests.get(url, timeout=30)
    assert_status(r, 200)
    assert hashlib.sha256(r.content).hexdigest() == layer.split(":", 1)[1]
    assert r.content == data and r.headers["Docker-Content-Digest"] == layer
    h = requests.head(url, timeout=30)
    assert_status(h, 200)
    assert h.headers["Content-Length"] == str(len(data))

    base = berth.url
    refused = {
        "push: start an upload": ("POST", f"/v2/{repo}/blobs/uploads/", {"Content-Length": "0"}, None),
        "push: a manifest": ("PUT", f"/v2/{repo}/manifests/stolen", {"Content-Type": img["media_type"]}, img["manifest"]),
        "delete the blob": ("DELETE", f"/v2/{repo}/blobs/{layer}", {}, None),
        "list tags": ("GET", f"/v2/{repo}/tags/list", {}, None),
        "the catalog": ("GET", "/v2/_catalog", {}, None),
        "another blob of the repository": ("GET", f"/v2/{repo}/blobs/{other_layer}", {}, None),
        "the same blob through another repository": ("GET", f"/v2/{other_repo}/blobs/{layer}", {}, None),
        "a manifest": ("GET", f"/v2/{repo}/manifests/{img['digest']}", {}, None),
        "the tag": ("GET", f"/v2/{repo}/manifests/v1", {}, None),
    }
    for what, (method, path, headers, body) in refused.items():
        r = requests.request(method, with_capability(base, path, cap), headers=headers, data=body, timeout=30)
        assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
        assert_error(r, 401, "UNAUTHORIZED")

    # Nor is it a registry password, as Basic or Bearer.
    for auth in (basic_auth(cap), f"Bearer {cap}"):
        r = requests.get(f"{base}/v2/{repo}/blobs/{layer}", headers={"Authorization": auth}, timeout=30)
        assert_error(r, 401, "UNAUTHORIZED")
    # A tampered capability is refused.
    payload, sig = cap.rsplit(".", 1)
    forged = f"{payload}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    assert_error(requests.get(with_capability(base, f"/v2/{repo}/blobs/{layer}", forged), timeout=30), 401, "UNAUTHORIZED")

    # Nothing was pushed or deleted on the way.
    assert_error(reg.get(f"/v2/{repo}/manifests/stolen"), 404, "MANIFEST_UNKNOWN")
    assert_status(reg.head(f"/v2/{repo}/blobs/{layer}"), 200)

    # The capability never reaches the request log.
    assert cap not in open(berth.log_path, errors="replace").read()


def test_a_registry_token_in_the_query_is_no_credential(berth, repo):
    token = berth.token()
    img = Registry(berth.url, token=token).push_image(repo, tag="v1")
    layer = img["blobs"][1][0]
    r = requests.get(f"{berth.url}/v2/{repo}/blobs/{layer}?berth_token={token}", timeout=30)
    assert_error(r, 401, "UNAUTHORIZED")


def test_a_download_url_is_bound_to_its_region(berth):
    name = f"team/dl{uuid.uuid4().hex[:8]}"
    token = berth.token()
    reg = Registry(berth.url, token=token)
    eu = f"{ACCOUNT}/eu-west-1/{name}"
    img = reg.push_image(eu, tag="v1")
    layer, data = img["blobs"][1]
    # The same name and blob in the default region.
    reg.upload_blob(name, data)

    url = berth.ecr(region="eu-west-1").get_download_url_for_layer(repositoryName=name, layerDigest=layer)["downloadUrl"]
    assert urllib.parse.urlsplit(url).path == f"/v2/{eu}/blobs/{layer}", url
    r = requests.get(url, timeout=30)
    assert_status(r, 200)
    assert r.content == data
    cap = capability_of(url)
    r = requests.get(with_capability(berth.url, f"/v2/{name}/blobs/{layer}", cap), timeout=30)
    assert_error(r, 401, "UNAUTHORIZED")
