"""End-to-end tests of ECR account settings (get/put-account-setting) and pull-time update
exclusions (register/list/deregister-pull-time-update-exclusion) with boto3 and the aws CLI:
ECR's names, values and exceptions, and an excluded user's pulls (skopeo, /v2/ GET, BatchGetImage)
leaving describe-images' lastRecordedPullTime alone while another user's pull moves it.
"""
import json
import subprocess
import time

from conftest import ACCOUNT
from httputil import OCI_MANIFEST, assert_status
from test_ecr import Aws, aws_error, reg_for, require, uniq

PULLER_POLICY = "AmazonEC2ContainerRegistryReadOnly"


def user_arn(name):
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def test_account_settings_with_the_aws_cli_and_boto3(fresh_berth, tmp_path):
    aws = Aws(fresh_berth, tmp_path / "home")
    # Never set: ECR's defaults (BLOB_MOUNTING: berth has always mounted, see ARCHITECTURE.md).
    for name, default in [("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"), ("REGISTRY_POLICY_SCOPE", "V2"),
                          ("BLOB_MOUNTING", "ENABLED")]:
        assert aws.ecr("get-account-setting", "--name", name) == {"name": name, "value": default}

    for name, value in [("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"), ("REGISTRY_POLICY_SCOPE", "V1"),
                        ("REGISTRY_POLICY_SCOPE", "V2"), ("BLOB_MOUNTING", "DISABLED")]:
        assert aws.ecr("put-account-setting", "--name", name, "--value", value) == {"name": name, "value": value}
        assert aws.ecr("get-account-setting", "--name", name) == {"name": name, "value": value}

    aws.ecr_fails("ValidationException", "put-account-setting", "--name", "NO_SUCH_SETTING", "--value", "V2")
    aws.ecr_fails("ValidationException", "get-account-setting", "--name", "NO_SUCH_SETTING")
    ecr = fresh_berth.ecr()
    for name, value in [("BASIC_SCAN_TYPE_VERSION", "CLAIR"), ("REGISTRY_POLICY_SCOPE", "V3"),
                        ("BLOB_MOUNTING", "enabled")]:
        resp = aws_error(ecr.put_account_setting, "InvalidParameterException", name=name, value=value)
        assert "value" in resp["Error"]["Message"], resp
    # Refused puts changed nothing; another region is another registry.
    assert ecr.get_account_setting(name="BLOB_MOUNTING")["value"] == "DISABLED"
    assert fresh_berth.ecr(region="eu-west-1").get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"


def test_blob_mounting_disabled_answers_a_mount_with_an_upload_session(fresh_berth):
    reg = reg_for(fresh_berth)
    src = uniq("team/src")
    img = reg.push_image(src, tag="v1")
    layer = img["blobs"][-1][0]
    assert_status(reg.post(f"/v2/{uniq('team/a')}/blobs/uploads/?mount={layer}&from={src}"), 201)
    fresh_berth.ecr().put_account_setting(name="BLOB_MOUNTING", value="DISABLED")
    r = reg.post(f"/v2/{uniq('team/b')}/blobs/uploads/?mount={layer}&from={src}")
    assert_status(r, 202)
    assert "/blobs/uploads/" in r.headers["Location"]


def test_exclusions_register_list_page_and_deregister(fresh_berth, tmp_path):
    aws = Aws(fresh_berth, tmp_path / "home")
    ecr = fresh_berth.ecr()
    before = time.time()
    out = aws.ecr("register-pull-time-update-exclusion", "--principal-arn", user_arn("alice"))
    assert out["principalArn"] == user_arn("alice")
    assert before - 2 <= out["createdAt"] <= time.time() + 2, out
    aws.ecr_fails("ExclusionAlreadyExistsException", "register-pull-time-update-exclusion",
                  "--principal-arn", user_arn("alice"))
    for bad in ["alice", "arn:aws:iam::123:user/alice", f"arn:aws:iam::{ACCOUNT}:group/g"]:
        aws_error(ecr.register_pull_time_update_exclusion, "InvalidParameterException", principalArn=bad)

    role = f"arn:aws:iam::{ACCOUNT}:role/ci/builder"
    ecr.register_pull_time_update_exclusion(principalArn=role)
    ecr.register_pull_time_update_exclusion(principalArn=user_arn("bob"))
    first = ecr.list_pull_time_update_exclusions(maxResults=2)
    assert first["pullTimeUpdateExclusions"] == [role, user_arn("alice")]
    second = ecr.list_pull_time_update_exclusions(maxResults=2, nextToken=first["nextToken"])
    assert second["pullTimeUpdateExclusions"] == [user_arn("bob")] and "nextToken" not in second
    # The CLI pages through everything itself.
    listed = aws.ecr("list-pull-time-update-exclusions")["pullTimeUpdateExclusions"]
    assert listed == [role, user_arn("alice"), user_arn("bob")]
    aws_error(ecr.list_pull_time_update_exclusions, "InvalidParameterException", maxResults=1001)

    out = aws.ecr("deregister-pull-time-update-exclusion", "--principal-arn", user_arn("alice"))
    assert out == {"principalArn": user_arn("alice")}
    aws.ecr_fails("ExclusionNotFoundException", "deregister-pull-time-update-exclusion",
                  "--principal-arn", user_arn("alice"))
    assert ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [role, user_arn("bob")]

    # At most 100 per registry.
    for i in range(98):
        ecr.register_pull_time_update_exclusion(principalArn=user_arn(f"u{i:03}"))
    aws_error(ecr.register_pull_time_update_exclusion, "LimitExceededException", principalArn=user_arn("one-more"))
    assert len(aws.ecr("list-pull-time-update-exclusions")["pullTimeUpdateExclusions"]) == 100


def skopeo_inspect(berth, ref, token):
    require("skopeo")
    p = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{token}",
                        f"docker://{berth.addr}/{ref}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_an_excluded_users_pulls_do_not_move_last_recorded_pull_time(fresh_berth, tmp_path):
    b = fresh_berth
    aws = Aws(b, tmp_path / "home")
    repo = uniq("team/pulled")
    aws.ecr("create-repository", "--repository-name", repo)
    img = reg_for(b).push_image(repo, tag="v1")
    ci_key, ci_secret = b.create_user("ci-scanner", policy=PULLER_POLICY)
    dev_key, dev_secret = b.create_user("dev", policy=PULLER_POLICY)
    aws.ecr("register-pull-time-update-exclusion", "--principal-arn", user_arn("ci-scanner"))

    def pull_time():
        d = aws.ecr("describe-images", "--repository-name", repo, "--image-ids", "imageTag=v1")["imageDetails"][0]
        assert d["imageDigest"] == img["digest"]
        return d.get("lastRecordedPullTime")

    # The excluded user pulls with skopeo, a plain /v2/ GET and BatchGetImage: no pull time.
    ci_token = b.token(ci_key, ci_secret)
    assert skopeo_inspect(b, f"{repo}:v1", ci_token)["schemaVersion"] == 2
    r = reg_for(b, token=ci_token).get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert_status(r, 200)
    assert r.content == img["manifest"]
    got = b.ecr(ci_key, ci_secret).batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert [i["imageId"]["imageDigest"] for i in got["images"]] == [img["digest"]]
    assert pull_time() is None

    # Another user's pull moves it.
    before = time.time()
    assert skopeo_inspect(b, f"{repo}@{img['digest']}", b.token(dev_key, dev_secret))["schemaVersion"] == 2
    moved = pull_time()
    assert moved is not None and before - 2 <= moved <= time.time() + 2, moved

    # The exclusion holds across a restart (read back from the metadata store).
    b.restart()
    assert skopeo_inspect(b, f"{repo}:v1", b.token(ci_key, ci_secret))["schemaVersion"] == 2
    assert pull_time() == moved
