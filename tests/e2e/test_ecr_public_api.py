"""ECR Public's API (`aws ecr-public …`, boto3 `ecr-public`) on berth: the guide's commands,
catalog data, policies, tags, a push through the layer-upload actions, and bad input that
gets ECR Public's exceptions and changes nothing."""
import base64
import hashlib
import json
import os
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ADMIN_KEY, ADMIN_SECRET, REGION

CMD_TIMEOUT = 120
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)


def public(berth, region=REGION):
    import boto3

    return boto3.client("ecr-public", endpoint_url=berth.url, region_name=region,
                        aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_SECRET)


class Cli:
    """The aws CLI with no config or credentials file of its own."""

    def __init__(self, berth, home):
        self.berth = berth
        os.makedirs(home, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(AWS_ACCESS_KEY_ID=ADMIN_KEY, AWS_SECRET_ACCESS_KEY=ADMIN_SECRET, AWS_DEFAULT_REGION=REGION,
                        AWS_CONFIG_FILE=os.path.join(home, "none"), AWS_SHARED_CREDENTIALS_FILE=os.path.join(home, "none"),
                        HOME=home)

    def run(self, *args, check=True):
        cmd = ["aws", "--endpoint-url", self.berth.url, "--output", "json", "ecr-public", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=CMD_TIMEOUT)
        if check:
            assert p.returncode == 0, f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}"
            return json.loads(p.stdout) if p.stdout.strip() else {}
        return p

    def fails(self, code, *args):
        p = self.run(*args, check=False)
        assert p.returncode != 0 and f"({code})" in p.stderr, f"expected {code}: {p.stdout}\n{p.stderr}"
        return p


@pytest.fixture
def cli(berth, tmp_path):
    return Cli(berth, str(tmp_path / "aws-home"))


@pytest.fixture
def name():
    return f"demo{uuid.uuid4().hex[:10]}"


def error_code(fn, **kw):
    with pytest.raises(ClientError) as ei:
        fn(**kw)
    return ei.value.response["Error"]["Code"]


def alias_of(client):
    return client.describe_registries()["registries"][0]["aliases"][0]["name"]


def test_guide_create_repository_and_catalog_data(berth, cli, name):
    # The ECR Public guide's example, with --endpoint-url.
    out = cli.run("create-repository", "--repository-name", name, "--catalog-data",
                  "description=My project,architectures=ARM,ARM 64,x86,x86-64,operatingSystems=Linux,"
                  "aboutText=## About,usageText=docker pull it")
    repo = out["repository"]
    assert repo["repositoryArn"] == f"arn:aws:ecr-public::{berth.account}:repository/{name}"
    reg = cli.run("describe-registries")["registries"][0]
    alias = reg["aliases"][0]["name"]
    assert reg["registryId"] == berth.account and reg["verified"] is False
    assert reg["registryArn"] == f"arn:aws:ecr-public::{berth.account}:registry/{berth.account}"
    assert reg["registryUri"] == f"{berth.addr}/{alias}"
    assert reg["aliases"][0]["defaultRegistryAlias"] is True and reg["aliases"][0]["primaryRegistryAlias"] is True
    assert repo["repositoryUri"] == f"{berth.addr}/{alias}/{name}"
    assert out["catalogData"]["architectures"] == ["ARM", "ARM 64", "x86", "x86-64"]
    assert out["catalogData"]["operatingSystems"] == ["Linux"]

    described = cli.run("describe-repositories", "--repository-names", name)["repositories"]
    assert [r["repositoryName"] for r in described] == [name]
    listed = [r["repositoryName"] for r in cli.run("describe-repositories")["repositories"]]
    assert name in listed

    # aws CLI v1 reads a blob inside --catalog-data JSON as text, so the logo (binary) goes
    # through boto3; the texts through the CLI.
    data = public(berth).put_repository_catalog_data(repositoryName=name, catalogData={
        "description": "with logo", "logoImageBlob": PNG})["catalogData"]
    assert data["description"] == "with logo" and data["logoUrl"].endswith(f"/{alias}/{name}")
    assert "logoUrl" in cli.run("get-repository-catalog-data", "--repository-name", name)["catalogData"]
    data = cli.run("put-repository-catalog-data", "--repository-name", name, "--catalog-data",
                   json.dumps({"description": "new", "aboutText": "# Hello", "usageText": "use it"}))["catalogData"]
    assert data["description"] == "new"
    got = cli.run("get-repository-catalog-data", "--repository-name", name)["catalogData"]
    assert (got["description"], got["aboutText"], got["usageText"]) == ("new", "# Hello", "use it")
    assert "architectures" not in got and "logoUrl" not in got, "a put replaces the catalog data, logo included"

    assert cli.run("put-registry-catalog-data", "--display-name", "Team A")["registryCatalogData"] == {"displayName": "Team A"}
    assert cli.run("get-registry-catalog-data")["registryCatalogData"] == {"displayName": "Team A"}


def test_policies_tags_and_login_password(berth, cli, name):
    arn = cli.run("create-repository", "--repository-name", name)["repository"]["repositoryArn"]
    cli.fails("RepositoryCatalogDataNotFoundException", "get-repository-catalog-data", "--repository-name", name)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "push", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{berth.account}:root"},
         "Action": ["ecr-public:PutImage"]}]})
    assert cli.run("set-repository-policy", "--repository-name", name, "--policy-text", policy)["policyText"] == policy
    assert json.loads(cli.run("get-repository-policy", "--repository-name", name)["policyText"]) == json.loads(policy)
    cli.run("delete-repository-policy", "--repository-name", name)
    cli.fails("RepositoryPolicyNotFoundException", "get-repository-policy", "--repository-name", name)

    cli.run("tag-resource", "--resource-arn", arn, "--tags", "Key=team,Value=a", "Key=env,Value=prod")
    cli.run("untag-resource", "--resource-arn", arn, "--tag-keys", "env")
    assert cli.run("list-tags-for-resource", "--resource-arn", arn)["tags"] == [{"Key": "team", "Value": "a"}]

    password = subprocess.run(["aws", "--endpoint-url", berth.url, "ecr-public", "get-login-password"], env=cli.env,
                              capture_output=True, text=True, timeout=CMD_TIMEOUT, check=True).stdout.strip()
    # The password is a registry token: /v2/ takes it as Basic AWS:<password>.
    import urllib.request
    req = urllib.request.Request(f"{berth.url}/v2/", headers={
        "Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()})
    assert urllib.request.urlopen(req).status == 200


def upload_blob(client, name, data):
    up = client.initiate_layer_upload(repositoryName=name)
    client.upload_layer_part(repositoryName=name, uploadId=up["uploadId"], partFirstByte=0,
                             partLastByte=len(data) - 1, layerPartBlob=data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = client.complete_layer_upload(repositoryName=name, uploadId=up["uploadId"], layerDigests=[digest])
    assert done["layerDigest"] == digest
    return {"digest": digest, "size": len(data)}


def push_image(client, name, tag, seed):
    """Pushes a one-layer image with the layer-upload actions; returns (digest, layer digest, manifest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    c = upload_blob(client, name, config)
    layer = upload_blob(client, name, os.urandom(4096))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **c},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]})
    out = client.put_image(repositoryName=name, imageManifest=manifest, imageTag=tag)
    digest = out["image"]["imageId"]["imageDigest"]
    assert digest == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    return digest, layer["digest"], manifest


def test_push_with_layer_uploads_then_describe_and_delete(berth, name):
    client = public(berth)
    client.create_repository(repositoryName=name)
    digest, layer, manifest = push_image(client, name, "v1", "a")
    avail = client.batch_check_layer_availability(repositoryName=name, layerDigests=[layer])
    assert avail["layers"][0]["layerAvailability"] == "AVAILABLE"
    client.put_image(repositoryName=name, imageManifest=manifest, imageTag="latest")
    details = client.describe_images(repositoryName=name)["imageDetails"]
    assert [(d["imageDigest"], sorted(d["imageTags"])) for d in details] == [(digest, ["latest", "v1"])]
    tags = client.describe_image_tags(repositoryName=name)["imageTagDetails"]
    assert [(t["imageTag"], t["imageDetail"]["imageDigest"]) for t in tags] == [("latest", digest), ("v1", digest)]
    page = client.describe_image_tags(repositoryName=name, maxResults=1)
    assert [t["imageTag"] for t in page["imageTagDetails"]] == ["latest"] and "nextToken" in page
    rest = client.describe_image_tags(repositoryName=name, nextToken=page["nextToken"])
    assert [t["imageTag"] for t in rest["imageTagDetails"]] == ["v1"]

    deleted = client.batch_delete_image(repositoryName=name, imageIds=[{"imageDigest": digest}])
    assert deleted["failures"] == [] and deleted["imageIds"][0]["imageDigest"] == digest
    assert client.describe_images(repositoryName=name)["imageDetails"] == []
    assert error_code(client.describe_images, repositoryName=name, imageIds=[{"imageTag": "v1"}]) == "ImageNotFoundException"
    assert error_code(client.delete_repository, repositoryName="nosuchrepo") == "RepositoryNotFoundException"
    client.delete_repository(repositoryName=name, force=True)
    assert error_code(client.describe_repositories, repositoryNames=[name]) == "RepositoryNotFoundException"


def test_private_and_public_namesakes_stay_apart(berth, name):
    client, private = public(berth), berth.ecr()
    client.create_repository(repositoryName=name)
    private.create_repository(repositoryName=name)
    digest, _, _ = push_image(client, name, "pub", "public")
    assert private.describe_images(repositoryName=name)["imageDetails"] == []
    assert [d["imageDigest"] for d in client.describe_images(repositoryName=name)["imageDetails"]] == [digest]
    private.delete_repository(repositoryName=name, force=True)
    assert [d["imageDigest"] for d in client.describe_images(repositoryName=name)["imageDetails"]] == [digest]
    assert name not in [r["repositoryName"] for r in private.describe_repositories()["repositories"]]


def test_bad_input_gets_ecr_public_exceptions_and_changes_nothing(berth, cli, name, tmp_path):
    client = public(berth)
    client.create_repository(repositoryName=name, catalogData={"description": "kept"})
    bad = [
        {"description": "x" * 1025},
        {"aboutText": "x" * 25601},
        {"usageText": "x" * 25601},
        {"architectures": ["x" * 51]},
        {"logoImageBlob": JPEG},
        {"logoImageBlob": PNG + bytes(512_001)},
    ]
    for catalog in bad:
        code = error_code(client.put_repository_catalog_data, repositoryName=name, catalogData=catalog)
        assert code == "InvalidParameterException", catalog.keys()
    assert client.get_repository_catalog_data(repositoryName=name)["catalogData"]["description"] == "kept"
    other = f"demo{uuid.uuid4().hex[:10]}"
    code = error_code(client.create_repository, repositoryName=other, catalogData={"logoImageBlob": JPEG})
    assert code == "InvalidParameterException"
    assert error_code(client.describe_repositories, repositoryNames=[other]) == "RepositoryNotFoundException"
    assert error_code(client.put_registry_catalog_data, displayName="x" * 101) == "InvalidParameterException"
    assert error_code(client.create_repository, repositoryName=name) == "RepositoryAlreadyExistsException"

    # ECR Public answers in us-east-1 only.
    elsewhere = public(berth, region="eu-west-1")
    assert error_code(elsewhere.describe_repositories) == "UnsupportedCommandException"
    assert error_code(elsewhere.create_repository, repositoryName=other) == "UnsupportedCommandException"
    assert error_code(client.describe_repositories, repositoryNames=[other]) == "RepositoryNotFoundException"


def test_set_public_alias(fresh_berth):
    client = public(fresh_berth)
    before = alias_of(client)
    bad = fresh_berth.cli("admin", "set-public-alias", "--data-dir", fresh_berth.data_dir, "--account", fresh_berth.account,
                          "--alias", "Bad_Alias", check=False)
    assert bad.returncode != 0 and "registryAliasName" in bad.stderr
    assert alias_of(client) == before
    out = fresh_berth.cli("admin", "set-public-alias", "--data-dir", fresh_berth.data_dir, "--account", fresh_berth.account,
                          "--alias", "team-a")
    assert json.loads(out.stdout) == {"account": fresh_berth.account, "alias": "team-a"}
    reg = client.describe_registries()["registries"][0]
    assert reg["aliases"][0]["name"] == "team-a" and reg["aliases"][0]["defaultRegistryAlias"] is False
    repo = client.create_repository(repositoryName="aliased")["repository"]
    assert repo["repositoryUri"] == f"{fresh_berth.addr}/team-a/aliased"
    taken = fresh_berth.cli("admin", "set-public-alias", "--data-dir", fresh_berth.data_dir, "--account", "210987654321",
                            "--alias", "team-a", check=False)
    assert taken.returncode != 0 and "already in use" in taken.stderr
