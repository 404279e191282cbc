"""End-to-end tests of the web console (`/console/`) in a real browser.

tests/e2e/console/console.mjs drives Debian's Chromium through npm `playwright-core` against a
real berth; this file runs its phases, does what the console tells a user to do in between
(the push commands, with skopeo standing in for docker), and checks through the ECR API that
what the pages showed is what the registry holds. Screenshots of each main page are written to
docs/console/.

Needs: node + `npm ci` in tests/e2e/console, /usr/bin/chromium, skopeo, umoci, the aws CLI
(scripts/install-test-deps.sh installs them). A missing one fails the test; nothing skips.
"""
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

import images
from conftest import ACCOUNT, ADMIN_KEY, ADMIN_SECRET, REGION, ROOT, berth_bin

CONSOLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "console")
SHOTS = os.path.join(ROOT, "docs", "console")
CHROMIUM = "/usr/bin/chromium"
ADMIN_PASSWORD = "console-e2e-password-1"
TIMEOUT = 300

# The rule console.mjs adds with the lifecycle page's rule form.
ADDED_RULE = {"rulePriority": 3, "description": "Old release images",
              "selection": {"tagStatus": "tagged", "tagPrefixList": ["release"], "countType": "sinceImagePushed",
                            "countUnit": "days", "countNumber": 90},
              "action": {"type": "expire"}}

# Seed document 004's lifecycle policy (issue 4).
SEED_004_LIFECYCLE = json.dumps({"rules": [
    {"rulePriority": 1, "description": "Keep last 10 'prod' images",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 10},
     "action": {"type": "expire"}},
    {"rulePriority": 2, "description": "Delete untagged images older than 7 days",
     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
     "action": {"type": "expire"}},
]}, indent=2)


def require(path_or_tool, hint="run scripts/install-test-deps.sh"):
    found = path_or_tool if os.path.isabs(path_or_tool) and os.access(path_or_tool, os.X_OK) else shutil.which(path_or_tool)
    if not found:
        pytest.fail(f"{path_or_tool} is not installed ({hint}); console tests fail rather than skip")
    return found


@pytest.fixture(scope="module")
def browser_ready():
    require("node")
    require(CHROMIUM)
    if not os.path.isdir(os.path.join(CONSOLE_DIR, "node_modules", "playwright-core")):
        pytest.fail("playwright-core is not installed: run `npm ci` in tests/e2e/console (scripts/install-test-deps.sh does)")
    os.makedirs(SHOTS, exist_ok=True)


def berth_log(berth):
    with open(berth.log_path, errors="replace") as f:
        return f.read()[-3000:]


def console(phase, berth, tmp_path, **env):
    """Runs one phase of console.mjs; returns the JSON it reports, or fails with its message."""
    full = dict(os.environ, BERTH_URL=berth.url, SHOTS=SHOTS, FAIL_SHOTS=str(tmp_path), ACCOUNT=ACCOUNT,
                ADMIN_KEY=ADMIN_KEY, ADMIN_SECRET=ADMIN_SECRET, ADMIN_PASSWORD=ADMIN_PASSWORD,
                LIFECYCLE_POLICY=SEED_004_LIFECYCLE, CHROMIUM=CHROMIUM, **env)
    p = subprocess.run(["node", "console.mjs", phase], cwd=CONSOLE_DIR, env=full, capture_output=True, text=True,
                       timeout=TIMEOUT)
    if p.returncode != 0:
        pytest.fail(f"console phase {phase!r} failed (exit {p.returncode}):\n{p.stderr[-4000:]}\n{p.stdout[-2000:]}"
                    f"\n(failure screenshot in {tmp_path})\n--- berth log ---\n{berth_log(berth)}")
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, p.stdout
    return json.loads(lines[-1][len("RESULT "):])


def sh(cmd, env, input=None):
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=env, input=input,
                       timeout=TIMEOUT)
    assert p.returncode == 0, f"$ {cmd}\nexit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def client_env(home):
    """The aws CLI with the admin key and nothing else from this machine's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ADMIN_KEY, AWS_SECRET_ACCESS_KEY=ADMIN_SECRET,
               AWS_CONFIG_FILE=os.path.join(home, "no-config"), AWS_SHARED_CREDENTIALS_FILE=os.path.join(home, "no-creds"),
               HOME=home, TMPDIR=home)
    return env


def set_console_password(berth, user, password, account=ACCOUNT):
    """`berth admin set-console-password`, the password on stdin (never in argv)."""
    p = subprocess.run([berth_bin(), "admin", "set-console-password", "--data-dir", berth.data_dir, "--account", account,
                        "--user", user, "--password-stdin"], input=password + "\n", capture_output=True, text=True,
                       env=berth.env, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out == {"user_arn": f"arn:aws:iam::{account}:user/{user}", "console_password": "set"}, out
    assert password not in p.stdout + p.stderr


def wait_for_scan(ecr, repo, digest, timeout=120):
    """The image's imageScanStatus once it is no longer in progress (None: not scanned)."""
    deadline = time.time() + timeout
    while True:
        status = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0].get("imageScanStatus")
        if not status or status["status"] not in ("IN_PROGRESS", "PENDING") or time.time() > deadline:
            return status
        time.sleep(0.5)


def prod_images(base, n):
    """`n` distinct images tagged prod-00.. in base's layout, sharing its layer (a new config each)."""
    config = json.loads(images.read_blob(base.layout, base.config_digest))
    made = []
    for i in range(n):
        tag = f"prod-{i:02d}"
        cfg = dict(config, config=dict(config.get("config") or {}, Labels={"berth.test.prod": tag}))
        data = json.dumps(cfg).encode()
        manifest = dict(base.manifest, config=dict(base.manifest["config"], digest=images.write_blob(base.layout, data), size=len(data)))
        body = json.dumps(manifest).encode()
        digest = images.write_blob(base.layout, body)
        images.add_ref(base.layout, {"mediaType": images.MT_OCI_MANIFEST, "digest": digest, "size": len(body)}, tag)
        made.append((tag, digest))
    return made


def test_console_flows_in_a_browser(berth, tmp_path, browser_ready):
    require("skopeo")
    require("umoci")
    require("aws")
    ecr = berth.ecr()
    repo = f"console/app{uuid.uuid4().hex[:8]}"

    # 1. Sign in, create the repository (scan on push, IMMUTABLE, a tag), read the push commands.
    made = console("create", berth, tmp_path, REPO=repo)
    described = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["imageTagMutability"] == "IMMUTABLE", described
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}, described
    assert described["encryptionConfiguration"]["encryptionType"] == "AES256", described
    tags = ecr.list_tags_for_resource(resourceArn=described["repositoryArn"])["tags"]
    assert tags == [{"Key": "team", "Value": "console-test"}], tags

    host = berth.addr
    cmds = made["commands"]
    assert cmds == {
        "login": f"aws ecr get-login-password --region {REGION} --endpoint-url {berth.url}"
                 f" | docker login --username AWS --password-stdin {host}",
        "build": f"docker build -t {repo} .",
        "tag": f"docker tag {repo}:latest {host}/{repo}:latest",
        "push": f"docker push {host}/{repo}:latest",
    }, cmds
    assert described["repositoryUri"] == f"{host}/{repo}"

    # 2. Do what they say. The login pipeline runs as shown, with `skopeo login` in docker's place;
    #    "docker build" is an OCI image built here; "docker push" is skopeo copy to the same reference.
    home = str(tmp_path / "home")
    os.makedirs(home)
    env = client_env(home)
    authfile = os.path.join(home, "auth.json")
    aws_part, docker_part = cmds["login"].split(" | ")
    assert docker_part.startswith("docker login --username AWS --password-stdin ")
    sh(aws_part + " | " + docker_part.replace("docker login", f"skopeo login --tls-verify=false --authfile {authfile}"), env)
    img = images.build_image(str(tmp_path / "layout"), "latest")
    target = cmds["push"].split()[-1]
    sh(f"skopeo copy --dest-tls-verify=false --authfile {authfile} {img.ref} docker://{target}", env)
    manifest = img.manifest
    size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    detail = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageDetails"]
    assert [(d["imageDigest"], d["imageSizeInBytes"], d["imageTags"]) for d in detail] == [(img.manifest_digest, size, ["latest"])], detail
    # Scan on push runs in the background and may attach an SBOM referrer; let it finish first.
    scan = wait_for_scan(ecr, repo, img.manifest_digest)
    all_images = ecr.describe_images(repositoryName=repo)["imageDetails"]

    # A second repository with 11 prod images for the lifecycle page (seed 004 keeps the newest 10).
    lc_repo = f"console/lifecycle{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=lc_repo)
    prod = prod_images(img, 11)
    for tag, _ in prod:
        sh(f"skopeo copy --dest-tls-verify=false --authfile {authfile} oci:{img.layout}:{tag} docker://{host}/{lc_repo}:{tag}", env)

    # The scan attached its SBOM (a CycloneDX referrer of the image): the only other image here.
    sboms = [d["imageDigest"] for d in all_images if d["imageDigest"] != img.manifest_digest]
    assert len(sboms) == 1, all_images

    # A multi-arch image (scan on push scans each platform image, not the index).
    multi_repo = f"console/multi{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=multi_repo, imageScanningConfiguration={"scanOnPush": True})
    multi = images.build_multiarch(str(tmp_path / "multi"), "base")
    sh(f"skopeo copy --all --dest-tls-verify=false --authfile {authfile} {multi.ref} docker://{host}/{multi_repo}:base", env)
    platform_scans = {c.manifest_digest: (wait_for_scan(ecr, multi_repo, c.manifest_digest) or {}).get("status", "NONE")
                      for c in multi.children}
    # A repository to delete from the list, through its confirmation.
    doomed = f"console/doomed{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=doomed)

    # 3. The console shows the image with that digest and size; image page; policies; settings;
    #    lifecycle preview and save; then the image is deleted through the confirmation step.
    #    Signed in with a console password set by `berth admin`.
    set_console_password(berth, "admin", ADMIN_PASSWORD)
    seen = console("verify", berth, tmp_path, REPO=repo, DIGEST=img.manifest_digest, SIZE=str(size), LC_REPO=lc_repo,
                   LC_EXPIRES=prod[0][1], EXPECT_IMAGES=str(len(all_images)), SBOM=sboms[0], MULTI_REPO=multi_repo,
                   INDEX=multi.index_digest, PLATFORM_SCANS=json.dumps(platform_scans), DOOMED=doomed)
    # The SBOM's download is the document the scanner stored: CycloneDX, describing the image.
    assert seen["sbom"]["bomFormat"] == "CycloneDX", seen["sbom"]
    assert seen["platform_scans"] == platform_scans, (seen["platform_scans"], platform_scans)
    assert seen["scan_status"] == (scan or {}).get("status", "NONE"), (seen, scan)
    assert "Invalid repository policy provided" in seen["policy_error"], seen
    # Nothing in tables and forms was cut off at 1280 px on these pages (console.mjs checkNotClipped).
    assert made["clip_checked"] == ["create form"], made
    assert seen["phone_checked"] is True, seen
    assert seen["clip_checked"] == ["repository list", "repository images", "image page", "sbom page", "image index",
                                    "permissions", "lifecycle rule form"], seen
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []
    policy = json.loads(ecr.get_repository_policy(repositoryName=repo)["policyText"])
    assert policy["Statement"][0]["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, policy
    saved = json.loads(ecr.get_lifecycle_policy(repositoryName=lc_repo)["lifecyclePolicyText"])
    # Seed 004's rules as written, then the rule the form added (ECR's rule form, server-composed).
    assert saved == {"rules": json.loads(SEED_004_LIFECYCLE)["rules"] + [ADDED_RULE]}, saved
    assert len(ecr.list_images(repositoryName=lc_repo)["imageIds"]) == 11, "the preview changed nothing"
    # Deleted from the repositories list, after typing its name; the policy with ecr:Nope was
    # saved only after its warning was confirmed.
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert doomed not in names and repo in names
    assert "ecr:Nope" in json.loads(ecr.get_repository_policy(repositoryName=multi_repo)["policyText"])["Statement"][0]["Action"]

    # 4. A ReadOnly user sees no create/delete controls and forged requests are refused; a POST
    #    without the CSRF token is refused too. Nothing changed in the registry.
    ro_key, ro_secret = berth.create_user(f"console-ro-{uuid.uuid4().hex[:6]}", policy="ReadOnly")
    refused = console("readonly", berth, tmp_path, REPO=repo, RO_KEY=ro_key, RO_SECRET=ro_secret, MULTI_REPO=multi_repo)
    assert refused == {"no_csrf_status": 403, "forged_create_status": 403, "forged_delete_status": 403}, refused
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert repo in names
    assert f"{repo}-forged" not in names and f"{repo}-nocsrf" not in names

    for shot in ("signin", "repositories", "create-repository", "push-commands", "repository", "image", "image-index", "sbom",
                 "delete-repository", "policy-unknown-action",
                 "permissions", "lifecycle", "settings", "delete-images", "repositories-phone", "repository-phone", "repositories-readonly"):
        path = os.path.join(SHOTS, f"{shot}.png")
        assert os.path.getsize(path) > 1000, path


def test_console_password_is_never_an_argument(berth):
    """`berth admin set-console-password` has no option that takes the password itself."""
    p = subprocess.run([berth_bin(), "admin", "set-console-password", "--help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--password-stdin" in p.stdout and "--password " not in p.stdout and "--password=" not in p.stdout
    short = subprocess.run([berth_bin(), "admin", "set-console-password", "--data-dir", berth.data_dir, "--account", ACCOUNT,
                            "--user", "admin"], input="short\n", capture_output=True, text=True, env=berth.env)
    assert short.returncode != 0 and "at least 12 characters" in short.stderr, short.stderr
