"""Console actions in the audit trail (issue 19): a repository created from the console is
recorded like the API's CreateRepository — eventSource ecr.amazonaws.com, the signed-in user's
ARN, the browser's user agent and address, requestParameters with the repository's name — and
marked as a console call; a refused one carries the API's exception name. Looked up with
`aws cloudtrail lookup-events`, polled until the batch writer appended it (never a fixed sleep).
"""
import json

import pytest
import requests

from conftest import ACCOUNT, Berth
from test_audit import aws, lookup_cli, records, until
from test_console_sessions import COOKIE, csrf_of, key_session

USER_AGENT = "Mozilla/5.0 (berth console e2e)"


def create_from_console(b, cookie, csrf, name):
    return requests.post(f"{b.url}/console/repositories", data={"csrf": csrf, "name": name, "scan_on_push": "on"},
                         cookies={COOKIE: cookie}, headers={"User-Agent": USER_AGENT, "Origin": b.url},
                         allow_redirects=False, timeout=60)


def console_creations(b):
    """The CreateRepository records made from the console, oldest first."""
    recs = records(lookup_cli(b, "EventName", "CreateRepository"))  # newest first
    return [r for r in reversed(recs) if r["userAgent"] == USER_AGENT]


def signed_in(b):
    cookie = key_session(b, b.admin_key, b.admin_secret)
    return cookie, csrf_of(b, cookie)


def admin_arn(b):
    return json.loads(aws(b, "sts", "get-caller-identity").stdout)["Arn"]


def test_a_repository_created_in_the_console_is_in_the_trail_as_the_users_create_repository(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    try:
        cookie, csrf = signed_in(b)
        r = create_from_console(b, cookie, csrf, "console/app")
        assert r.status_code == 303, r.text[:500]
        assert b.ecr().describe_repositories(repositoryNames=["console/app"])["repositories"][0]["imageScanningConfiguration"] == {
            "scanOnPush": True}

        [rec] = until(lambda: console_creations(b), lambda recs: len(recs) == 1, "the console's CreateRepository")
        assert (rec["eventSource"], rec["eventName"], rec["eventType"]) == ("ecr.amazonaws.com", "CreateRepository", "AwsApiCall")
        assert rec["userIdentity"]["arn"] == admin_arn(b)
        assert rec["userIdentity"]["type"] == "IAMUser" and rec["userIdentity"]["accountId"] == ACCOUNT
        assert rec["sourceIPAddress"] == "127.0.0.1"
        assert rec["requestParameters"]["repositoryName"] == "console/app"
        assert rec["requestParameters"]["imageScanningConfiguration"] == {"scanOnPush": True}
        assert rec["readOnly"] is False and "errorCode" not in rec
        assert [x["ARN"] for x in rec["resources"]] == [f"arn:aws:ecr:{b.region}:{ACCOUNT}:repository/console/app"]

        # Looking at pages records nothing (checked once a later call's record is in).
        for path in ("/console/repositories", "/console/repo/console/app", "/console/webhooks"):
            r = requests.get(f"{b.url}{path}", cookies={COOKIE: cookie}, headers={"User-Agent": USER_AGENT}, timeout=30)
            assert r.status_code == 200, path

        # The same again: refused, recorded with the exception the API answers.
        r = create_from_console(b, cookie, csrf, "console/app")
        assert r.status_code == 409, r.status_code
        recs = until(lambda: console_creations(b), lambda recs: len(recs) == 2, "the refused CreateRepository")
        assert recs[1]["errorCode"] == "RepositoryAlreadyExistsException", recs[1]
        user = rec["userIdentity"]["userName"]
        assert {x["eventName"] for x in records(lookup_cli(b, "Username", user)) if x["userAgent"] == USER_AGENT} == {"CreateRepository"}
    finally:
        b.stop()


def test_a_console_call_is_marked_session_credential_from_console(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    try:
        cookie, csrf = signed_in(b)
        assert create_from_console(b, cookie, csrf, "console/marked").status_code == 303
        [rec] = until(lambda: console_creations(b), lambda recs: len(recs) == 1, "the console's CreateRepository")
        assert rec.get("sessionCredentialFromConsole") == "true", rec
        # An API call is not marked.
        b.ecr().create_repository(repositoryName="api/unmarked")
        [api] = until(lambda: [x for x in records(lookup_cli(b, "ResourceName", "api/unmarked"))], lambda x: len(x) == 1, "the API's")
        assert "sessionCredentialFromConsole" not in api
    finally:
        b.stop()
