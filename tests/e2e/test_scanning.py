"""End-to-end tests of scan on push against an imported OSV database: the aws CLI flow
(create-repository --image-scanning-configuration scanOnPush=true, push, describe-image-scan-findings,
start-image-scan and its 24-hour limit), registry scanning configuration, the CycloneDX SBOM
attached as a referrer (fetched with the oras SDK), and a hostile layer ending in FAILED.
"""
import gzip
import io
import json
import os
import subprocess
import tarfile
import time

import requests

from conftest import berth_bin
from httputil import OCI_CONFIG, OCI_MANIFEST, assert_status, basic_auth, sha256
from test_ecr import Aws, reg_for, uniq

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "berth-scan", "tests", "fixtures", "osv")
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

DPKG_STATUS = """\
Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit - shared libraries

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u3
Description: GNU C Library: Shared libraries

Package: bash
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
"""

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
REQUESTS_METADATA = "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\n"

# (finding name, package, version, severity) the fixture database must report for the image.
EXPECTED = sorted([
    ("CVE-2023-5678", "openssl", "3.0.11-1~deb12u1", "MEDIUM"),
    ("CVE-2023-5678", "libssl3", "3.0.11-1~deb12u1", "MEDIUM"),
    ("CVE-2022-37434", "zlib1g", "1:1.2.13.dfsg-1", "HIGH"),
    ("CVE-2023-4911", "libc6", "2.36-9+deb12u3", "CRITICAL"),
    ("CVE-2022-3715", "bash", "5.2.15-2+b2", "LOW"),
    ("CVE-2023-32681", "requests", "2.25.1", "MEDIUM"),
])


def tar_gz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def push_layers(reg, repo, tag, layers):
    """Pushes an image of the given gzip layers; returns its manifest digest."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}, "nonce": os.urandom(8).hex()}).encode()
    for blob in [cfg, *layers]:
        reg.upload_blob(repo, blob)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
         "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(x), "size": len(x)} for x in layers]}
    body = json.dumps(m).encode()
    reg.put_manifest(repo, tag, body, OCI_MANIFEST)
    return sha256(body)


def debian_layers():
    base = tar_gz({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG_STATUS, "bin/sh": b"\x7fELF not really"})
    app = tar_gz({"usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA": REQUESTS_METADATA})
    return [base, app]


def import_fixtures(berth):
    p = subprocess.run([berth_bin(), "vulndb", "import", FIXTURES, "--data-dir", berth.data_dir],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["advisories"] > 20, summary
    return summary


def wait_scan(aws, repo, tag):
    """Polls describe-image-scan-findings until the scan is no longer IN_PROGRESS."""
    deadline = time.monotonic() + 120
    while True:
        out = aws.ecr("describe-image-scan-findings", "--repository-name", repo, "--image-id", f"imageTag={tag}")
        if out["imageScanStatus"]["status"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return out
        time.sleep(0.1)  # polling an asynchronous API, as the aws CLI waiter does


def findings_of(out):
    attrs = lambda f: {a["key"]: a.get("value") for a in f["attributes"]}
    return sorted((f["name"], attrs(f)["package_name"], attrs(f)["package_version"], f["severity"])
                  for f in out["imageScanFindings"]["findings"])


def test_scan_on_push_finds_the_known_vulnerabilities(berth, tmp_path):
    import_fixtures(berth)
    status = subprocess.run([berth_bin(), "vulndb", "status", "--data-dir", berth.data_dir], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["ecosystems"]["Debian:12"] >= 5

    aws = Aws(berth, tmp_path / "home")
    repo = uniq("team/scan")
    out = aws.ecr("create-repository", "--repository-name", repo, "--image-scanning-configuration", "scanOnPush=true")
    assert out["repository"]["imageScanningConfiguration"]["scanOnPush"] is True
    reg = reg_for(berth)
    digest = push_layers(reg, repo, "v1", debian_layers())

    out = wait_scan(aws, repo, "v1")
    assert out["imageScanStatus"]["status"] == "COMPLETE", out
    assert out["imageId"]["imageDigest"] == digest
    assert findings_of(out) == EXPECTED
    counts = out["imageScanFindings"]["findingSeverityCounts"]
    assert counts == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 3, "LOW": 1}
    glibc = next(f for f in out["imageScanFindings"]["findings"] if f["name"] == "CVE-2023-4911")
    assert glibc["uri"] == "https://security-tracker.debian.org/tracker/CVE-2023-4911"
    assert {"key": "CVSS3_SCORE", "value": "9.8"} in glibc["attributes"]
    assert "vulnerabilitySourceUpdatedAt" in out["imageScanFindings"]

    # Pagination of findings.
    page = aws.ecr("describe-image-scan-findings", "--repository-name", repo, "--image-id", "imageTag=v1",
                   "--max-results", "4", "--no-paginate")
    assert len(page["imageScanFindings"]["findings"]) == 4 and page.get("nextToken")

    # DescribeImages carries the summary.
    detail = aws.ecr("describe-images", "--repository-name", repo, "--image-ids", "imageTag=v1")["imageDetails"][0]
    assert detail["imageScanStatus"]["status"] == "COMPLETE"
    assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == counts

    # One manual scan per image per 24 hours.
    aws.ecr_fails("LimitExceededException", "start-image-scan", "--repository-name", repo, "--image-id", "imageTag=v1")

    # The SBOM is attached as a referrer: the referrers API lists it, oras fetches it.
    token = berth.token()
    r = requests.get(f"{berth.url}/v2/{repo}/referrers/{digest}", headers={"Authorization": basic_auth(token)}, timeout=30)
    assert_status(r, 200)
    sboms = [m for m in r.json()["manifests"] if m.get("artifactType") == "application/vnd.cyclonedx+json"]
    assert len(sboms) == 1, r.json()
    import oras.client
    client = oras.client.OrasClient(hostname=berth.addr, insecure=True, auth_backend="basic")
    cfg = tmp_path / "oras-config.json"
    cfg.write_text(json.dumps({"auths": {}}))
    client.login(username="AWS", password=token, hostname=berth.addr, config_path=str(cfg))
    manifest = client.get_manifest(f"{berth.addr}/{repo}@{sboms[0]['digest']}")
    assert manifest["subject"]["digest"] == digest
    layer = manifest["layers"][0]
    blob = client.get_blob(f"{berth.addr}/{repo}", layer["digest"])
    sbom = json.loads(blob.content)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    # purl versions may carry '+' raw (as syft and trivy write them) or percent-encoded.
    from urllib.parse import unquote
    purls = {unquote(c["purl"]) for c in sbom["components"] if c.get("purl")}
    assert any(p.startswith("pkg:deb/debian/libc6@2.36-9+deb12u3?") and "distro=debian-12" in p for p in purls), purls
    assert any(p.startswith("pkg:pypi/requests@2.25.1") for p in purls), purls


def test_manual_scan_registry_configuration_and_hostile_layers(berth, tmp_path):
    import_fixtures(berth)
    aws = Aws(berth, tmp_path / "home")
    repo = uniq("team/manual")
    aws.ecr("create-repository", "--repository-name", repo)
    reg = reg_for(berth)
    push_layers(reg, repo, "clean", [tar_gz({"etc/os-release": OS_RELEASE, "hello.txt": "hi"})])
    aws.ecr_fails("ScanNotFoundException", "describe-image-scan-findings", "--repository-name", repo,
                  "--image-id", "imageTag=clean")
    out = aws.ecr("start-image-scan", "--repository-name", repo, "--image-id", "imageTag=clean")
    assert out["imageScanStatus"]["status"] == "IN_PROGRESS"
    out = wait_scan(aws, repo, "clean")
    assert out["imageScanStatus"]["status"] == "COMPLETE"
    assert out["imageScanFindings"]["findings"] == [] and out["imageScanFindings"]["findingSeverityCounts"] == {}

    # A truncated gzip layer: the scan fails with a reason, the push itself succeeded.
    bad = tar_gz({"var/lib/dpkg/status": DPKG_STATUS * 50})[:-200]
    push_layers(reg, repo, "broken", [bad])
    aws.ecr("start-image-scan", "--repository-name", repo, "--image-id", "imageTag=broken")
    out = wait_scan(aws, repo, "broken")
    assert out["imageScanStatus"]["status"] == "FAILED", out
    assert out["imageScanStatus"]["description"], out
    r = reg.get(f"/v2/{repo}/manifests/broken", headers={"Accept": OCI_MANIFEST})
    assert_status(r, 200)

    # Registry scanning configuration: a SCAN_ON_PUSH rule scans pushes to matching repositories.
    prefix = uniq("scanned")
    rules = json.dumps([{"scanFrequency": "SCAN_ON_PUSH",
                         "repositoryFilters": [{"filter": f"{prefix}/*", "filterType": "WILDCARD"}]}])
    out = aws.ecr("put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules", rules)
    assert out["registryScanningConfiguration"]["rules"][0]["scanFrequency"] == "SCAN_ON_PUSH"
    got = aws.ecr("get-registry-scanning-configuration")
    assert got["scanningConfiguration"]["rules"][0]["repositoryFilters"][0]["filter"] == f"{prefix}/*"
    matched = f"{prefix}/app"
    aws.ecr("create-repository", "--repository-name", matched)
    conf = aws.ecr("batch-get-repository-scanning-configuration", "--repository-names", matched, repo, "nope/none")
    by_name = {c["repositoryName"]: c for c in conf["scanningConfigurations"]}
    assert by_name[matched]["scanOnPush"] is True and by_name[matched]["scanFrequency"] == "SCAN_ON_PUSH"
    assert by_name[matched]["appliedScanFilters"] == [{"filter": f"{prefix}/*", "filterType": "WILDCARD"}]
    assert by_name[repo]["scanFrequency"] == "MANUAL"
    assert conf["failures"] == [{"repositoryName": "nope/none", "failureCode": "REPOSITORY_NOT_FOUND",
                                 "failureReason": "REPOSITORY_NOT_FOUND"}]
    push_layers(reg, matched, "v1", debian_layers())
    out = wait_scan(aws, matched, "v1")
    assert findings_of(out) == EXPECTED
    aws.ecr("put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules", "[]")

    bad_rules = json.dumps([{"scanFrequency": "HOURLY", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])
    aws.ecr_fails("InvalidParameterException", "put-registry-scanning-configuration", "--scan-type", "BASIC",
                  "--rules", bad_rules)


def test_continuous_scan_rescans_when_a_new_database_is_imported(tmp_path):
    """CONTINUOUS_SCAN: importing a database that knows a new advisory rescans the image."""
    import shutil
    from conftest import Berth

    partial = tmp_path / "osv-partial"
    shutil.copytree(FIXTURES, partial)
    os.remove(partial / "debian" / "DEBIAN-CVE-2022-3715.json")  # bash's advisory: not known yet
    b = Berth(str(tmp_path / "data"), extra_args=["--vulndb-check-seconds", "1"]).start()
    try:
        subprocess.run([berth_bin(), "vulndb", "import", str(partial), "--data-dir", b.data_dir], check=True,
                       capture_output=True, timeout=300)
        aws = Aws(b, tmp_path / "home")
        rules = json.dumps([{"scanFrequency": "CONTINUOUS_SCAN",
                             "repositoryFilters": [{"filter": "prod/*", "filterType": "WILDCARD"}]}])
        aws.ecr("put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules", rules)
        aws.ecr("create-repository", "--repository-name", "prod/app")
        conf = aws.ecr("batch-get-repository-scanning-configuration", "--repository-names", "prod/app")
        assert conf["scanningConfigurations"][0]["scanFrequency"] == "CONTINUOUS_SCAN"
        push_layers(reg_for(b), "prod/app", "v1", debian_layers())
        first = wait_scan(aws, "prod/app", "v1")
        assert first["imageScanStatus"]["status"] == "COMPLETE"
        names = {f["name"] for f in first["imageScanFindings"]["findings"]}
        assert "CVE-2022-3715" not in names and "CVE-2023-4911" in names

        import_fixtures(b)
        deadline = time.monotonic() + 90
        while True:
            out = aws.ecr("describe-image-scan-findings", "--repository-name", "prod/app", "--image-id", "imageTag=v1")
            done = out["imageScanStatus"]["status"] == "COMPLETE"
            if done and "imageScanFindings" in out and findings_of(out) == EXPECTED:
                break
            assert time.monotonic() < deadline, f"no rescan after the import: {out}"
            time.sleep(0.2)  # waiting for the server's periodic database check
        assert out["imageScanFindings"]["findingSeverityCounts"]["LOW"] == 1
    finally:
        b.stop()
