"""The console's Registry settings page (issue 17) against a real berth, checked with the aws CLI:
a repository creation template created and edited in the console is what
`aws ecr describe-repository-creation-templates` answers, an account setting changed in the console
is what `aws ecr get-account-setting` answers, an exclusion added there is listed by
`aws ecr list-pull-time-update-exclusions`, a replication rule added there is what
`aws ecr describe-registry` answers (and a push's replication status on the image page is what
`describe-image-replication-status` reports); what the CLI changes, the page shows; a refusal reads
as the CLI's message; a form without the session's CSRF token changes nothing.

Plain HTTP with requests, as a browser sends it (Origin on every POST).
"""
import html
import json
import re

import requests

import images

from conftest import ACCOUNT, ADMIN_KEY, ADMIN_SECRET
from test_ecr import Aws

LIFECYCLE = {"rules": [{"rulePriority": 1, "description": "drop untagged",
                        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                                      "countNumber": 14},
                        "action": {"type": "expire"}}]}


class Console:
    """A signed-in console session (the admin's access key)."""

    def __init__(self, berth):
        self.url = berth.url
        self.http = requests.Session()
        r = self.http.post(f"{self.url}/console/signin", headers={"Origin": self.url}, allow_redirects=False, timeout=30,
                           data={"method": "key", "access_key_id": ADMIN_KEY, "secret_access_key": ADMIN_SECRET})
        assert r.status_code == 303, (r.status_code, r.text[:500])

    def get(self, path):
        r = self.http.get(self.url + path, allow_redirects=False, timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text[-2000:])
        return r.text

    def csrf(self, path="/console/registry/settings"):
        m = re.search(r'name="csrf" value="([^"]+)"', self.get(path))
        assert m, "no CSRF token on the page"
        return m.group(1)

    def post(self, path, form, csrf=True):
        data = list(form)
        if csrf:
            data.insert(0, ("csrf", self.csrf()))
        return self.http.post(self.url + path, data=data, headers={"Origin": self.url}, allow_redirects=False, timeout=30)


def alerts(page):
    """The texts the page shows as alerts, unescaped."""
    return [html.unescape(t) for t in re.findall(r'role="alert">([^<]+)<', page)]


def test_a_template_made_in_the_console_is_what_the_cli_describes(fresh_berth, tmp_path):
    aws = Aws(fresh_berth, tmp_path / "home")
    console = Console(fresh_berth)
    assert "No repository creation templates" in console.get("/console/registry/settings")
    form = [("prefix", "prod"), ("applied_for", "CREATE_ON_PUSH"), ("applied_for", "REPLICATION"),
            ("description", "production repositories"), ("mutability", "IMMUTABLE_WITH_EXCLUSION"), ("filter", "latest"),
            ("encryption", "AES256"), ("kms_key", ""), ("tag_key", "team"), ("tag_value", "platform"),
            ("repository_policy", ""), ("lifecycle_policy", json.dumps(LIFECYCLE)), ("custom_role_arn", "")]

    # Without the session's CSRF token: refused, nothing made.
    r = console.post("/console/registry/templates", form, csrf=False)
    assert r.status_code == 403, r.status_code
    assert aws.ecr("describe-repository-creation-templates")["repositoryCreationTemplates"] == []

    r = console.post("/console/registry/templates", form)
    assert r.status_code == 303 and r.headers["Location"].startswith("/console/registry/settings?done=template-created"), \
        (r.status_code, r.text[-2000:])
    described = aws.ecr("describe-repository-creation-templates", "--prefixes", "prod")
    assert described["registryId"] == ACCOUNT
    [t] = described["repositoryCreationTemplates"]
    assert t["prefix"] == "prod"
    assert t["appliedFor"] == ["CREATE_ON_PUSH", "REPLICATION"]
    assert t["description"] == "production repositories"
    assert t["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert t["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
    assert t["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert t["resourceTags"] == [{"Key": "team", "Value": "platform"}]
    assert json.loads(t["lifecyclePolicy"]) == LIFECYCLE
    assert "repositoryPolicy" not in t and "customRoleArn" not in t

    # Edited in the console: the CLI sees the whole template replaced.
    edit = [("prefix", "prod"), ("applied_for", "CREATE_ON_PUSH"), ("description", "prod, mutable"), ("mutability", "MUTABLE"),
            ("encryption", "AES256")]
    r = console.post("/console/registry/templates/update", edit)
    assert r.status_code == 303, (r.status_code, r.text[-2000:])
    [t] = aws.ecr("describe-repository-creation-templates", "--prefixes", "prod")["repositoryCreationTemplates"]
    assert (t["description"], t["imageTagMutability"], t["appliedFor"]) == ("prod, mutable", "MUTABLE", ["CREATE_ON_PUSH"])
    assert "lifecyclePolicy" not in t and t["resourceTags"] == []

    # A template the CLI makes is listed on the page.
    aws.ecr("create-repository-creation-template", "--prefix", "ROOT", "--applied-for", "PULL_THROUGH_CACHE",
            "--description", "from the cli")
    page = console.get("/console/registry/settings")
    assert 'data-prefix="ROOT"' in page and "from the cli" in page and 'data-prefix="prod"' in page

    # The console's refusal is the CLI's message for the same input, and nothing is stored.
    elsewhere = "arn:aws:iam::999999999999:role/elsewhere"
    cli = aws.ecr_fails("InvalidParameterException", "create-repository-creation-template", "--prefix", "dev",
                        "--applied-for", "CREATE_ON_PUSH", "--custom-role-arn", elsewhere)
    r = console.post("/console/registry/templates", [("prefix", "dev"), ("applied_for", "CREATE_ON_PUSH"),
                                                     ("custom_role_arn", elsewhere)])
    assert r.status_code == 400, r.status_code
    message = next(a for a in alerts(r.text) if "customRoleArn" in a)
    assert message in cli.stderr, (message, cli.stderr)
    prefixes = [x["prefix"] for x in aws.ecr("describe-repository-creation-templates")["repositoryCreationTemplates"]]
    assert prefixes == ["ROOT", "prod"]

    # Delete asks first, then the CLI no longer finds it.
    r = console.post("/console/registry/templates/delete", [("prefix", "prod")])
    assert r.status_code == 200 and "Delete the repository creation template prod/?" in r.text
    assert len(aws.ecr("describe-repository-creation-templates")["repositoryCreationTemplates"]) == 2
    r = console.post("/console/registry/templates/delete", [("prefix", "prod"), ("confirm", "yes")])
    assert r.status_code == 303
    assert aws.ecr("describe-repository-creation-templates", "--prefixes", "prod")["repositoryCreationTemplates"] == []


def test_account_settings_and_exclusions_changed_in_the_console_are_what_the_cli_reads(fresh_berth, tmp_path):
    aws = Aws(fresh_berth, tmp_path / "home")
    console = Console(fresh_berth)
    page = console.get("/console/registry/settings")
    assert 'data-setting="BLOB_MOUNTING" data-value="ENABLED"' in page

    r = console.post("/console/registry/settings/account", [("name", "BLOB_MOUNTING"), ("value", "DISABLED")], csrf=False)
    assert r.status_code == 403
    assert aws.ecr("get-account-setting", "--name", "BLOB_MOUNTING") == {"name": "BLOB_MOUNTING", "value": "ENABLED"}

    r = console.post("/console/registry/settings/account", [("name", "BLOB_MOUNTING"), ("value", "DISABLED")])
    assert r.status_code == 303, (r.status_code, r.text[-2000:])
    assert aws.ecr("get-account-setting", "--name", "BLOB_MOUNTING") == {"name": "BLOB_MOUNTING", "value": "DISABLED"}
    r = console.post("/console/registry/settings/account", [("name", "REGISTRY_POLICY_SCOPE"), ("value", "V1")])
    assert r.status_code == 303
    assert aws.ecr("get-account-setting", "--name", "REGISTRY_POLICY_SCOPE") == {"name": "REGISTRY_POLICY_SCOPE", "value": "V1"}

    # A value the setting does not take: ECR's message, the stored value unchanged.
    r = console.post("/console/registry/settings/account", [("name", "REGISTRY_POLICY_SCOPE"), ("value", "V3")])
    assert r.status_code == 400
    assert any("Member must be one of [V1, V2] for REGISTRY_POLICY_SCOPE" in a for a in alerts(r.text)), r.text[-2000:]
    assert aws.ecr("get-account-setting", "--name", "REGISTRY_POLICY_SCOPE")["value"] == "V1"

    # What the CLI puts, the page shows.
    aws.ecr("put-account-setting", "--name", "BLOB_MOUNTING", "--value", "ENABLED")
    assert 'data-setting="BLOB_MOUNTING" data-value="ENABLED"' in console.get("/console/registry/settings")

    scanner = f"arn:aws:iam::{ACCOUNT}:role/scanner"
    r = console.post("/console/registry/settings/exclusions", [("principal_arn", scanner)])
    assert r.status_code == 303, (r.status_code, r.text[-2000:])
    assert aws.ecr("list-pull-time-update-exclusions")["pullTimeUpdateExclusions"] == [scanner]
    r = console.post("/console/registry/settings/exclusions/delete", [("principal_arn", scanner), ("confirm", "yes")])
    assert r.status_code == 303
    assert aws.ecr("list-pull-time-update-exclusions")["pullTimeUpdateExclusions"] == []


def replication_version(page):
    m = re.search(r'name="version" value="([^"]+)"', page)
    assert m, "no replication form on the page"
    return m.group(1)


def test_a_replication_rule_added_in_the_console_is_what_describe_registry_answers(fresh_berth, tmp_path):
    from test_encryption import push
    from test_replication import settled

    aws = Aws(fresh_berth, tmp_path / "home")
    console = Console(fresh_berth)
    page = console.get("/console/registry/settings")
    assert "No replication rules" in page
    rule = [("version", replication_version(page)), ("rule", "0"), ("region", "us-west-2"), ("registry_id", ACCOUNT),
            ("filter", "prod")]
    assert console.post("/console/registry/replication/rule", rule, csrf=False).status_code == 403
    assert aws.ecr("describe-registry")["replicationConfiguration"] == {"rules": []}

    r = console.post("/console/registry/replication/rule", rule)
    assert r.status_code == 303, (r.status_code, r.text[-2000:])
    page = console.get("/console/registry/settings")
    dest = [("version", replication_version(page)), ("rule", "0"), ("region", "eu-west-1"), ("registry_id", ACCOUNT)]
    assert console.post("/console/registry/replication/destination", dest).status_code == 303
    expected = {"rules": [{"destinations": [{"region": "us-west-2", "registryId": ACCOUNT},
                                            {"region": "eu-west-1", "registryId": ACCOUNT}],
                           "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]}
    assert aws.ecr("describe-registry") == {"registryId": ACCOUNT, "replicationConfiguration": expected}

    # A refused step reads as the service's message and changes nothing.
    page = console.get("/console/registry/settings")
    same = [("version", replication_version(page)), ("rule", "0"), ("region", "us-east-1"), ("registry_id", ACCOUNT)]
    r = console.post("/console/registry/replication/destination", same)
    assert r.status_code == 400
    assert any("Replication destination cannot be the same as the source registry" in a for a in alerts(r.text)), r.text[-2000:]
    assert aws.ecr("describe-registry")["replicationConfiguration"] == expected

    # A push is replicated; the image page shows each destination's status as the CLI reports it.
    aws.ecr("create-repository", "--repository-name", "prod/app")
    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=4096, with_busybox=False)
    push(fresh_berth, img, "prod/app", "v1")
    statuses = settled(fresh_berth, tmp_path / "home", "prod/app", "v1")
    assert statuses == {("us-west-2", ACCOUNT): ("COMPLETE", None), ("eu-west-1", ACCOUNT): ("COMPLETE", None)}
    [detail] = aws.ecr("describe-images", "--repository-name", "prod/app", "--image-ids", "imageTag=v1")["imageDetails"]
    page = console.get(f"/console/repo/prod/app/-/image/{detail['imageDigest']}")
    assert "Replication status" in page
    for region in ("us-west-2", "eu-west-1"):
        assert f'data-destination="{region}/{ACCOUNT}" data-status="COMPLETE"' in page, page[-3000:]

    # Removing the rule (confirmed) empties the configuration.
    page = console.get("/console/registry/settings")
    remove = [("version", replication_version(page)), ("kind", "rule"), ("rule", "0"), ("index", "0")]
    r = console.post("/console/registry/replication/remove", remove)
    assert r.status_code == 200 and "Remove replication rule 1?" in r.text
    assert aws.ecr("describe-registry")["replicationConfiguration"] == expected
    r = console.post("/console/registry/replication/remove", remove + [("confirm", "yes")])
    assert r.status_code == 303
    assert aws.ecr("describe-registry")["replicationConfiguration"] == {"rules": []}
