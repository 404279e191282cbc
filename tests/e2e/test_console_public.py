"""The signed-in console's Public repositories page (issue 18) against a real berth, checked with
the aws CLI: a public repository created there with catalog data is what `aws ecr-public
describe-repositories` and `get-repository-catalog-data` answer; an edit replaces the catalog data
(a logo set through the API stays); a refusal shows the API's message and changes nothing; delete asks
for the name first, then the CLI no longer finds it. Plain HTTP with requests, as a browser sends it.
"""
import html
import json
import re

from test_console_settings import Console, alerts
from test_ecr_public_api import PNG, Cli, public


class PublicConsole(Console):
    def csrf(self, path="/console/public"):
        return super().csrf(path)


def catalog(cli, name):
    return cli.run("get-repository-catalog-data", "--repository-name", name)["catalogData"]


def test_create_edit_and_delete_a_public_repository_in_the_console(fresh_berth, tmp_path):
    b = fresh_berth
    cli = Cli(b, str(tmp_path / "aws"))
    console = PublicConsole(b)
    page = console.get("/console/public")
    assert "No public repositories" in page and 'href="/console/public/new"' in page
    assert 'href="/console/public" aria-current="page"' in page, "the navigation names the page"

    form = [("name", "team/site"), ("description", "The team's web site"), ("architectures", "x86-64, ARM 64"),
            ("operating_systems", "Linux"), ("about", "# Site\n\nServes **pages**."), ("usage", "docker run it")]
    # Without the session's CSRF token: refused, nothing made.
    r = console.post("/console/public", form, csrf=False)
    assert r.status_code == 403, r.status_code
    assert cli.run("describe-repositories")["repositories"] == []

    r = console.post("/console/public", form)
    assert r.status_code == 303 and r.headers["Location"] == "/console/public?done=created", (r.status_code, r.text[-1500:])
    [repo] = cli.run("describe-repositories")["repositories"]
    alias = cli.run("describe-registries")["registries"][0]["aliases"][0]["name"]
    assert repo["repositoryName"] == "team/site"
    assert repo["repositoryArn"] == f"arn:aws:ecr-public::{b.account}:repository/team/site"
    assert repo["repositoryUri"] == f"{b.addr}/{alias}/team/site"
    got = catalog(cli, "team/site")
    assert got == {"description": "The team's web site", "architectures": ["x86-64", "ARM 64"], "operatingSystems": ["Linux"],
                   "aboutText": "# Site\n\nServes **pages**.", "usageText": "docker run it", "marketplaceCertified": False}, got
    page = console.get("/console/public?done=created")
    assert 'data-repository="team/site"' in page and "The team&#39;s web site" in page or "The team's web site" in page
    assert f"{b.addr}/{alias}/team/site" in page
    # No private repository was made, and the private list does not show it.
    assert "team/site" not in console.get("/console/repositories")

    # The API sets a logo; a console edit replaces the texts and keeps it.
    # (boto3: aws CLI v1 reads a blob inside --catalog-data as text)
    public(b).put_repository_catalog_data(repositoryName="team/site",
                                          catalogData={"description": "The team's web site", "logoImageBlob": PNG})
    edit = console.get("/console/public/edit?name=team/site")
    assert 'value="The team&#39;s web site"' in edit or "value=\"The team's web site\"" in edit
    r = console.post("/console/public/update", [("name", "team/site"), ("description", "Renamed site"),
                                                 ("architectures", ""), ("operating_systems", "Linux, Windows"),
                                                 ("about", ""), ("usage", "pull it")])
    assert r.status_code == 303 and r.headers["Location"] == "/console/public?done=saved", (r.status_code, r.text[-1500:])
    got = catalog(cli, "team/site")
    assert got["description"] == "Renamed site" and got["operatingSystems"] == ["Linux", "Windows"]
    assert "architectures" not in got and "aboutText" not in got and got["usageText"] == "pull it", got
    assert got["logoUrl"].endswith(f"/gallery/logo/{alias}/team/site"), got

    # A description over ECR Public's limit: the service's message on the form, nothing changed.
    r = console.post("/console/public/update", [("name", "team/site"), ("description", "x" * 1025)])
    assert r.status_code == 400, r.status_code
    assert any("catalogData.description" in a for a in alerts(r.text)), alerts(r.text)
    assert catalog(cli, "team/site")["description"] == "Renamed site"
    # A name the CLI refuses is refused here too.
    r = console.post("/console/public", [("name", "Bad Name")])
    assert r.status_code == 400 and alerts(r.text), r.status_code
    # A name taken: the API's RepositoryAlreadyExists message.
    r = console.post("/console/public", [("name", "team/site")])
    assert r.status_code == 409, r.status_code

    # Delete: first the confirmation (the name to type), a wrong name changes nothing, then gone.
    r = console.post("/console/public/delete", [("name", "team/site")])
    assert r.status_code == 200 and "Delete the public repository team/site?" in html.unescape(r.text)
    assert 'name="confirm_name"' in r.text
    r = console.post("/console/public/delete", [("name", "team/site"), ("confirm", "yes"), ("confirm_name", "team/sit")])
    assert r.status_code == 400 and any("exactly" in a for a in alerts(r.text)), r.status_code
    assert len(cli.run("describe-repositories")["repositories"]) == 1
    r = console.post("/console/public/delete", [("name", "team/site"), ("confirm", "yes"), ("confirm_name", "team/site")])
    assert r.status_code == 303 and r.headers["Location"] == "/console/public?done=deleted", (r.status_code, r.text[-1500:])
    assert cli.run("describe-repositories")["repositories"] == []
    cli.fails("RepositoryNotFoundException", "get-repository-catalog-data", "--repository-name", "team/site")
    assert not re.search(r'data-repository="team/site"', console.get("/console/public"))


def test_a_user_without_ecr_public_actions_gets_the_consoles_refusal(fresh_berth, tmp_path):
    b = fresh_berth
    policy = tmp_path / "reader.json"
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:*", "ecr-public:DescribeRepositories", "ecr-public:GetRepositoryCatalogData"],
         "Resource": "*"}]}))
    key, secret = b.create_user("reader", policy_file=str(policy))
    cli = Cli(b, str(tmp_path / "aws"))
    cli.run("create-repository", "--repository-name", "shared", "--catalog-data", "description=Shared")

    class Reader(PublicConsole):
        def __init__(self):
            import requests
            self.url = b.url
            self.http = requests.Session()
            r = self.http.post(f"{self.url}/console/signin", headers={"Origin": self.url}, allow_redirects=False, timeout=30,
                               data={"method": "key", "access_key_id": key, "secret_access_key": secret})
            assert r.status_code == 303, r.status_code

    reader = Reader()
    page = reader.get("/console/public")
    assert 'data-repository="shared"' in page and "Shared" in page
    assert 'href="/console/public/new"' not in page and "/console/public/edit" not in page and "/console/public/delete" not in page
    assert reader.http.get(f"{b.url}/console/public/new", allow_redirects=False, timeout=30).status_code == 403
    for path, form in (("/console/public", [("name", "mine")]),
                       ("/console/public/update", [("name", "shared"), ("description", "changed")]),
                       ("/console/public/delete", [("name", "shared"), ("confirm", "yes"), ("confirm_name", "shared")])):
        r = reader.post(path, form)
        assert r.status_code == 403, (path, r.status_code)
        assert "ecr-public:" in html.unescape(r.text), path
    assert [x["repositoryName"] for x in cli.run("describe-repositories")["repositories"]] == ["shared"]
    assert cli.run("get-repository-catalog-data", "--repository-name", "shared")["catalogData"]["description"] == "Shared"
