"""The public gallery (/gallery/, issue 18) in Chromium, never signed in: public repositories made
with the aws CLI (`aws ecr-public create-repository --catalog-data …`) and an image pushed with
skopeo, then search, the repository page (description, Markdown about/usage texts whose script tag
and `javascript:` link neither run nor link, platforms, the tag with its size, the logo), the copy
button's pull command, a phone's width, 404s, and a private namesake that never shows. Screenshots go
to docs/console/gallery-*.png. A last test times the first byte with 1,000 public repositories.

Needs: node + `npm ci` in tests/e2e/console, /usr/bin/chromium, skopeo, the aws CLI.
"""
import json
import os
import statistics
import struct
import subprocess
import time
import zlib

import requests

import images
from conftest import ACCOUNT
from test_console import CHROMIUM, CONSOLE_DIR, berth_log, browser_ready, require  # noqa: F401 (fixture)
from test_ecr_public_api import Cli, public
from test_ecr_public_pulls import login_password
from test_encryption import aws

SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "console")
TIMEOUT = 240

ABOUT = """# Gallery demo

A small web server for the **gallery** test.

<script>alert('about')</script>

Do not [click me](javascript:alert(1)) and no <img src=x onerror="alert(2)"> either.

See [the docs](https://example.com/docs).
"""
USAGE = "Run it:\n\n```\ndocker run --rm -p 8080:80 IMAGE\n```\n"
DESCRIPTION = "Gallery demo web server for containers"


def png(width=8, height=8):
    """A real PNG (solid teal), so the browser decodes it."""
    raw = b"".join(b"\x00" + bytes([10, 108, 116]) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def gallery(berth, tmp_path, **env):
    full = dict(os.environ, BERTH_URL=berth.url, SHOTS=os.path.abspath(SHOTS), FAIL_SHOTS=str(tmp_path),
                CHROMIUM=CHROMIUM, **env)
    p = subprocess.run(["node", "gallery.mjs"], cwd=CONSOLE_DIR, env=full, capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise AssertionError(f"gallery.mjs failed (exit {p.returncode}):\n{p.stderr[-4000:]}\n{p.stdout[-2000:]}"
                             f"\n(failure screenshot in {tmp_path})\n--- berth log ---\n{berth_log(berth)}")
    [line] = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_the_gallery_in_chromium(fresh_berth, tmp_path, browser_ready):  # noqa: F811
    b = fresh_berth
    require("skopeo")
    cli = Cli(b, str(tmp_path / "aws"))
    catalog = {"description": DESCRIPTION, "architectures": ["x86-64", "ARM 64"], "operatingSystems": ["Linux"],
               "aboutText": ABOUT, "usageText": USAGE}
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    cli.run("create-repository", "--region", "us-east-1", "--repository-name", "web/demo",
            "--catalog-data", f"file://{tmp_path / 'catalog.json'}")
    # aws CLI v1 reads a blob inside --catalog-data JSON as text, so the logo goes through boto3.
    public(b).put_repository_catalog_data(repositoryName="web/demo", catalogData={**catalog, "logoImageBlob": png()})
    cli.run("create-repository", "--region", "us-east-1", "--repository-name", "tools",
            "--catalog-data", "description=Assorted tools,operatingSystems=Linux")
    alias = public(b).describe_registries()["registries"][0]["aliases"][0]["name"]
    # Private repositories: a namesake of the public one, and one whose name the search would match.
    aws(b, tmp_path / "aws", "ecr", "create-repository", "--repository-name", "web/demo")
    aws(b, tmp_path / "aws", "ecr", "create-repository", "--repository-name", "gallery-demo-private")

    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=300 * 1024, with_busybox=False)
    password = login_password(b, tmp_path / "aws")
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}", img.ref,
                    f"docker://{b.addr}/{alias}/web/demo:v1"], check=True, capture_output=True, timeout=TIMEOUT)
    [described] = public(b).describe_images(repositoryName="web/demo")["imageDetails"]

    r = gallery(b, tmp_path, ALIAS=alias, REPO="web/demo", SEARCH="web server")

    # Search: no sign-in, both public repositories listed; the description's words find one; no private one.
    assert sorted(r["listed"]) == [f"{alias}/tools", f"{alias}/web/demo"], r["listed"]
    assert r["found"] == [f"{alias}/web/demo"], r["found"]
    assert DESCRIPTION in r["found_text"] and "x86-64" in r["found_text"] and "Linux" in r["found_text"], r["found_text"]
    found = requests.get(f"{b.url}/gallery/", params={"q": "DEMO WEB SERVER"}, timeout=10)
    assert found.status_code == 200 and f'data-repository="{alias}/web/demo"' in found.text
    assert f'data-repository="{alias}/tools"' not in found.text
    for q in ("gallery", "private", "demo"):
        page = requests.get(f"{b.url}/gallery/", params={"q": q}, timeout=10).text
        assert "gallery-demo-private" not in page, q

    # The repository page.
    assert r["description"] == DESCRIPTION
    assert r["badges"] == ["Linux", "x86-64", "ARM 64"], r["badges"]
    assert r["about_headings"][:2] == ["About", "Gallery demo"], r["about_headings"]
    assert r["usage_code"] == ["docker run --rm -p 8080:80 IMAGE\n"], r["usage_code"]
    assert r["logo_width"] == 8
    # The script tag, the javascript: link and the onerror image: shown as text, nothing ran, no link.
    assert r["dialogs"] == [], r["dialogs"]
    assert r["page_errors"] == [], r["page_errors"]
    assert r["scripts_in_texts"] == 0 and r["javascript_hrefs"] == 0
    assert "<script>alert('about')</script>" in r["about_text"], r["about_text"]
    assert r["about_links"] == [{"text": "the docs", "href": "https://example.com/docs"}], r["about_links"]
    assert "click me" in r["about_text"]
    # The tag, its size as describe-images reports it, its push time.
    [tag] = r["tags"]
    assert tag["tag"] == "v1" and tag["bytes"] == described["imageSizeInBytes"], (tag, described)
    assert tag["size"].endswith("KiB"), tag
    assert tag["pushed"].startswith(time.strftime("%Y-%m-%d", time.gmtime(described["imagePushedAt"].timestamp()))), tag
    # The pull command, exactly, and what the copy button put on the clipboard.
    expected = f"docker pull {b.addr}/{alias}/web/demo:v1"
    assert r["pull_command"] == expected and r["clipboard"] == expected, (r["pull_command"], r["clipboard"])
    # A phone: viewport meta, no sideways scrolling.
    assert r["viewport_meta"] == "width=device-width, initial-scale=1"
    assert r["phone_overflow_repository"] <= 0 and r["phone_overflow_search"] <= 0, r
    assert r["missing_status"] == 404 and "no public repository" in r["missing_text"]
    for shot in ("gallery-search", "gallery-repository", "gallery-phone"):
        assert os.path.getsize(os.path.join(SHOTS, f"{shot}.png")) > 10_000, shot

    # The logo: the stored PNG with its type and nosniff; none for a repository without one.
    logo = requests.get(f"{b.url}/gallery/logo/{alias}/web/demo", timeout=10)
    assert logo.status_code == 200 and logo.content == png(), logo.status_code
    assert logo.headers["Content-Type"] == "image/png" and logo.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(f"{b.url}/gallery/logo/{alias}/tools", timeout=10).status_code == 404

    # Only public repositories are reachable: the private-only name, by alias or account, is 404.
    for path in (f"{alias}/gallery-demo-private", f"{ACCOUNT}/web/demo", f"{ACCOUNT}/gallery-demo-private", "nosuchalias/web/demo"):
        resp = requests.get(f"{b.url}/gallery/{path}", timeout=10)
        assert resp.status_code == 404, (path, resp.status_code)
        assert requests.get(f"{b.url}/gallery/logo/{path}", timeout=10).status_code == 404, path
    # Deleted: gone from the gallery at once.
    cli.run("delete-repository", "--repository-name", "tools")
    assert requests.get(f"{b.url}/gallery/{alias}/tools", timeout=10).status_code == 404


def test_first_byte_under_20ms_with_1000_public_repositories(fresh_berth):
    b = fresh_berth
    client = public(b)
    for i in range(1000):
        client.create_repository(repositoryName=f"bulk/app-{i:04d}",
                                 catalogData={"description": f"bulk image number {i}", "operatingSystems": ["Linux"]})
    alias = client.describe_registries()["registries"][0]["aliases"][0]["name"]
    http = requests.Session()
    for url, params in ((f"{b.url}/gallery/", {}), (f"{b.url}/gallery/", {"q": "number 99"}),
                        (f"{b.url}/gallery/", {"q": "no-such-thing"}), (f"{b.url}/gallery/{alias}/bulk/app-0500", {})):
        http.get(url, params=params, timeout=10)  # warm
        times = []
        for _ in range(15):
            r = http.get(url, params=params, timeout=10, stream=True)
            assert r.status_code == 200, (url, r.status_code)
            times.append(r.elapsed.total_seconds() * 1000)  # until the response headers arrived
            r.close()
        assert statistics.median(times) < 20, (url, params, sorted(times))
    page = http.get(f"{b.url}/gallery/", params={"q": "number 99"}, timeout=10).text
    assert page.count("data-repository=") == 11  # 99 and 990-999
