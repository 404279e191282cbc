"""The console's pull-through cache page (issue 20) against a real berth, checked with the aws CLI:
a rule created there from a preset (and one for any registry URL) is what
`describe-pull-through-cache-rules` answers; Validate shows the upstream's answer; a refusal reads
as the API's message; a form without the session's CSRF token changes nothing; Delete removes the
rule and the CLI no longer lists it.
"""
import html

from test_console_settings import Console, alerts
from test_encryption import aws
from test_pull_through import add_rule, aws_home, cache, free_port, upstream  # noqa: F401 (fixtures)

PAGE = "/console/pull-through"
DOCKER_HUB, ECR_PUBLIC, ANY = "0", "1", "5"


def rules(b, home):
    _, out = aws(b, home, "ecr", "describe-pull-through-cache-rules")
    return {r["ecrRepositoryPrefix"]: r for r in out["pullThroughCacheRules"]}


def test_rules_created_validated_and_deleted_in_the_console_are_what_the_cli_sees(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    console = Console(cache)
    assert "No pull through cache rules" in console.get(PAGE)

    # Without the CSRF token: refused, nothing made.
    r = console.post(PAGE, [("preset", DOCKER_HUB)], csrf=False)
    assert r.status_code == 403, r.status_code
    assert rules(cache, home) == {}

    # A preset: Docker Hub with its suggested prefix.
    r = console.post(PAGE, [("preset", DOCKER_HUB), ("url", ""), ("prefix", ""), ("upstream_prefix", ""),
                            ("credential_arn", "")])
    assert r.status_code == 303 and r.headers["Location"].endswith("done=created"), (r.status_code, r.text[-1000:])
    hub = rules(cache, home)["docker-hub"]
    assert hub["upstreamRegistryUrl"] == "registry-1.docker.io" and hub["upstreamRegistry"] == "docker-hub", hub

    # Any OCI registry: the test's distribution, under a prefix of our choosing.
    r = console.post(PAGE, [("preset", ANY), ("url", upstream.url), ("prefix", "dist"), ("upstream_prefix", ""),
                            ("credential_arn", "")])
    assert r.status_code == 303, (r.status_code, r.text[-1000:])
    dist = rules(cache, home)["dist"]
    assert dist["upstreamRegistryUrl"] == upstream.url and "upstreamRegistry" not in dist, dist
    page = console.get(PAGE)
    assert '<tr data-prefix="dist"' in page and '<tr data-prefix="docker-hub"' in page

    # A rule made with the CLI shows on the page too.
    assert add_rule(cache, home, "cli-made", f"http://127.0.0.1:{free_port()}")[0].returncode == 0
    assert '<tr data-prefix="cli-made"' in console.get(PAGE)

    # Validate: the reachable upstream is valid, the dead one invalid, naming it.
    page = console.get(f"{PAGE}?validated=dist")
    assert "Validation of" in page and "Valid" in page and "Invalid" not in page, page[-3000:]
    page = html.unescape(console.get(f"{PAGE}?validated=cli-made"))
    assert "Invalid" in page and "127.0.0.1" in page

    # Refusals read as the API's: a taken prefix, a bad prefix, a secret that does not exist.
    r = console.post(PAGE, [("preset", ANY), ("url", upstream.url), ("prefix", "dist")])
    assert r.status_code == 400 and any("already exists" in a for a in alerts(r.text)), r.text[-2000:]
    r = console.post(PAGE, [("preset", ANY), ("url", upstream.url), ("prefix", "Bad/Prefix")])
    assert r.status_code == 400 and any("ecrRepositoryPrefix" in a for a in alerts(r.text)), r.text[-2000:]
    arn = f"arn:aws:secretsmanager:{cache.region}:{cache.account}:secret:ecr-pullthroughcache/none-AbCdEf"
    r = console.post(PAGE, [("preset", ANY), ("url", upstream.url), ("prefix", "priv"), ("credential_arn", arn)])
    assert r.status_code in (400, 404) and any("could not be found" in a for a in alerts(r.text)), r.text[-2000:]
    assert set(rules(cache, home)) == {"docker-hub", "dist", "cli-made"}

    # Delete: gone for the CLI as well.
    r = console.post(f"{PAGE}/delete", [("prefix", "docker-hub")])
    assert r.status_code == 303 and r.headers["Location"].endswith("done=deleted"), (r.status_code, r.text[-1000:])
    assert set(rules(cache, home)) == {"dist", "cli-made"}
    assert '<tr data-prefix="docker-hub"' not in console.get(PAGE)
    r = console.post(f"{PAGE}/delete", [("prefix", "docker-hub")])
    assert r.status_code in (400, 404) and any("does not exist" in a for a in alerts(r.text)), r.text[-2000:]
