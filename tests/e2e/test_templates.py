"""Repository creation templates (issue 17), seen by boto3 and the aws CLI: create (ROOT and a
prefix), describe (prefix filter, paging), update, delete, ECR's exceptions for a duplicate, an
unknown prefix, a bad prefix, bad policy JSON, a bad lifecycle policy and too many tags; then a
skopeo push to a new repository under the prefix creates it with the template's tag mutability,
KMS encryption, repository policy, lifecycle policy and tags, and one outside it with ROOT's.
"""
import json
import uuid

import pytest
from botocore.exceptions import ClientError

import images
from test_encryption import aws, kms_key, push

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                   "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}],
}
LIFECYCLE = {
    "rules": [{"rulePriority": 1, "description": "keep ten untagged",
               "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 10},
               "action": {"type": "expire"}}],
}


def error_code(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def prefixes_of(answer):
    return [t["prefix"] for t in answer["repositoryCreationTemplates"]]


def test_templates_with_boto3_create_describe_page_update_delete_and_refusals(fresh_berth):
    b = fresh_berth
    ecr = b.ecr()
    root = ecr.create_repository_creation_template(prefix="ROOT", appliedFor=["CREATE_ON_PUSH"],
                                                   description="everything else")
    assert root["registryId"] == b.account
    t = root["repositoryCreationTemplate"]
    assert (t["prefix"], t["appliedFor"], t["imageTagMutability"]) == ("ROOT", ["CREATE_ON_PUSH"], "MUTABLE")
    assert t["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert t["createdAt"] == t["updatedAt"]

    made = ecr.create_repository_creation_template(
        prefix="prod/", appliedFor=["CREATE_ON_PUSH", "REPLICATION"],
        resourceTags=[{"Key": "team", "Value": "platform"}],
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
        repositoryPolicy=json.dumps(POLICY), lifecyclePolicy=json.dumps(LIFECYCLE),
        customRoleArn=f"arn:aws:iam::{b.account}:role/ecr-templates")["repositoryCreationTemplate"]
    assert made["prefix"] == "prod", "ECR assumes the trailing slash: prod and prod/ are one template"
    assert made["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "dev-*"}]
    assert json.loads(made["repositoryPolicy"]) == POLICY
    assert json.loads(made["lifecyclePolicy"]) == LIFECYCLE
    for p in ["dev", "dev/a", "dev/b"]:
        ecr.create_repository_creation_template(prefix=p, appliedFor=["PULL_THROUGH_CACHE"])

    # Duplicates, unknown prefixes, bad input: ECR's exceptions, nothing stored.
    assert error_code(ecr.create_repository_creation_template, prefix="prod", appliedFor=["REPLICATION"])[0] \
        == "TemplateAlreadyExistsException"
    assert error_code(ecr.update_repository_creation_template, prefix="nope", description="x")[0] == "TemplateNotFoundException"
    assert error_code(ecr.delete_repository_creation_template, prefix="nope")[0] == "TemplateNotFoundException"
    bad = [
        dict(prefix="Prod/App", appliedFor=["CREATE_ON_PUSH"]),
        dict(prefix="bad//prefix", appliedFor=["CREATE_ON_PUSH"]),
        dict(prefix="p1", appliedFor=["CREATE_ON_PUSH"], repositoryPolicy="{not json"),
        dict(prefix="p2", appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy=json.dumps({"rules": [{"rulePriority": 1}]})),
        dict(prefix="p3", appliedFor=["CREATE_ON_PUSH"],
             resourceTags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]),
        dict(prefix="p4", appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE_WITH_EXCLUSION"),
        dict(prefix="p5", appliedFor=["CREATE_ON_PUSH"],
             encryptionConfiguration={"encryptionType": "AES256",
                                      "kmsKey": f"arn:aws:kms:us-east-1:{b.account}:key/abcd"}),
        dict(prefix="p6", appliedFor=["CREATE_ON_PUSH"], customRoleArn="arn:aws:iam::999999999999:role/elsewhere"),
    ]
    for kw in bad:
        code, message = error_code(ecr.create_repository_creation_template, **kw)
        assert code == "InvalidParameterException", (kw["prefix"], code, message)
    assert error_code(ecr.create_repository_creation_template, prefix="p7", appliedFor=["SOMETIMES"])[0] \
        == "InvalidParameterException"

    # Describe: everything in prefix order, a filter, pages of two.
    assert prefixes_of(ecr.describe_repository_creation_templates()) == ["ROOT", "dev", "dev/a", "dev/b", "prod"]
    filtered = ecr.describe_repository_creation_templates(prefixes=["prod/", "missing", "ROOT"])
    assert prefixes_of(filtered) == ["ROOT", "prod"]
    assert filtered["registryId"] == b.account
    first = ecr.describe_repository_creation_templates(maxResults=2)
    assert prefixes_of(first) == ["ROOT", "dev"] and "nextToken" in first
    second = ecr.describe_repository_creation_templates(maxResults=2, nextToken=first["nextToken"])
    third = ecr.describe_repository_creation_templates(maxResults=2, nextToken=second["nextToken"])
    assert prefixes_of(second) == ["dev/a", "dev/b"] and prefixes_of(third) == ["prod"] and "nextToken" not in third
    paged = [t["prefix"] for page in ecr.get_paginator("describe_repository_creation_templates").paginate(
        PaginationConfig={"PageSize": 2}) for t in page["repositoryCreationTemplates"]]
    assert paged == ["ROOT", "dev", "dev/a", "dev/b", "prod"]

    # Update replaces what it names and keeps the rest.
    up = ecr.update_repository_creation_template(prefix="prod", imageTagMutability="IMMUTABLE",
                                                 description="production")["repositoryCreationTemplate"]
    assert (up["imageTagMutability"], up["description"]) == ("IMMUTABLE", "production")
    assert "imageTagMutabilityExclusionFilters" not in up, "a new setting drops the old filters"
    assert up["resourceTags"] == [{"Key": "team", "Value": "platform"}]
    assert up["appliedFor"] == ["CREATE_ON_PUSH", "REPLICATION"]
    assert up["updatedAt"] >= up["createdAt"]

    gone = ecr.delete_repository_creation_template(prefix="dev/a")
    assert gone["repositoryCreationTemplate"]["prefix"] == "dev/a"
    assert prefixes_of(ecr.describe_repository_creation_templates(prefixes=["dev/a"])) == []


def test_a_push_creates_its_repository_from_the_template_aws_cli(fresh_berth, tmp_path):
    b = fresh_berth
    key, _alias = kms_key(b, tmp_path)
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    lifecycle_file = tmp_path / "lifecycle.json"
    lifecycle_file.write_text(json.dumps(LIFECYCLE))

    _, root = aws(b, tmp_path, "ecr", "create-repository-creation-template", "--prefix", "ROOT",
                  "--applied-for", "CREATE_ON_PUSH", "--resource-tags", "Key=made-by,Value=root")
    assert root["repositoryCreationTemplate"]["prefix"] == "ROOT"
    _, made = aws(b, tmp_path, "ecr", "create-repository-creation-template", "--prefix", "apps",
                  "--applied-for", "CREATE_ON_PUSH", "REPLICATION",
                  "--description", "application repositories",
                  "--encryption-configuration", f"encryptionType=KMS,kmsKey={key['Arn']}",
                  "--resource-tags", "Key=made-by,Value=apps", "Key=cost-center,Value=42",
                  "--image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION",
                  "--image-tag-mutability-exclusion-filters", "filterType=WILDCARD,filter=dev-*",
                  "--repository-policy", f"file://{policy_file}",
                  "--lifecycle-policy", f"file://{lifecycle_file}")
    t = made["repositoryCreationTemplate"]
    assert t["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key["Arn"]}
    _, described = aws(b, tmp_path, "ecr", "describe-repository-creation-templates", "--prefixes", "apps")
    assert [x["prefix"] for x in described["repositoryCreationTemplates"]] == ["apps"]
    p, _ = aws(b, tmp_path, "ecr", "create-repository-creation-template", "--prefix", "apps",
               "--applied-for", "CREATE_ON_PUSH", check=False)
    assert p.returncode != 0 and "TemplateAlreadyExistsException" in p.stderr, p.stderr
    p, _ = aws(b, tmp_path, "ecr", "delete-repository-creation-template", "--prefix", "nothing-here", check=False)
    assert p.returncode != 0 and "TemplateNotFoundException" in p.stderr, p.stderr

    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=64 * 1024, with_busybox=False)
    name = f"apps/team/svc-{uuid.uuid4().hex[:8]}"
    push(b, img, name)

    _, repos = aws(b, tmp_path, "ecr", "describe-repositories", "--repository-names", name)
    r = repos["repositories"][0]
    assert r["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert r["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "dev-*"}]
    assert r["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key["Arn"]}
    _, pol = aws(b, tmp_path, "ecr", "get-repository-policy", "--repository-name", name)
    assert json.loads(pol["policyText"]) == POLICY
    _, lc = aws(b, tmp_path, "ecr", "get-lifecycle-policy", "--repository-name", name)
    assert json.loads(lc["lifecyclePolicyText"]) == LIFECYCLE
    _, tags = aws(b, tmp_path, "ecr", "list-tags-for-resource", "--resource-arn", r["repositoryArn"])
    assert sorted((x["Key"], x["Value"]) for x in tags["tags"]) == [("cost-center", "42"), ("made-by", "apps")]

    # The template's immutability holds from the first push: v1 cannot move, dev-* tags can.
    other = images.build_image(str(tmp_path / "layout2"), "v1", random_size=64 * 1024, with_busybox=False)
    refused = push(b, other, name, tag="v1", check=False)
    assert refused.returncode != 0, refused.stdout
    push(b, other, name, tag="dev-1")
    push(b, img, name, tag="dev-1")

    # Outside the prefix (`applications` is no namespace of `apps`): ROOT's template.
    plain = f"applications/svc-{uuid.uuid4().hex[:8]}"
    push(b, img, plain)
    _, repos = aws(b, tmp_path, "ecr", "describe-repositories", "--repository-names", plain)
    r = repos["repositories"][0]
    assert (r["imageTagMutability"], r["encryptionConfiguration"]) == ("MUTABLE", {"encryptionType": "AES256"})
    _, tags = aws(b, tmp_path, "ecr", "list-tags-for-resource", "--resource-arn", r["repositoryArn"])
    assert tags["tags"] == [{"Key": "made-by", "Value": "root"}]
    p, _ = aws(b, tmp_path, "ecr", "get-repository-policy", "--repository-name", plain, check=False)
    assert p.returncode != 0 and "RepositoryPolicyNotFoundException" in p.stderr, p.stderr

    # Deleting the template changes repositories created later only.
    aws(b, tmp_path, "ecr", "delete-repository-creation-template", "--prefix", "apps")
    later = f"apps/later-{uuid.uuid4().hex[:8]}"
    push(b, img, later)
    _, repos = aws(b, tmp_path, "ecr", "describe-repositories", "--repository-names", later, name)
    assert [x["imageTagMutability"] for x in repos["repositories"]] == ["MUTABLE", "IMMUTABLE_WITH_EXCLUSION"]
