"""Console sessions end on the server: a copied cookie dies with sign-out and with a console
password change (`berth admin set-console-password`), and sign-in refuses other origins.

Plain HTTP with requests, as a browser would send it (Origin on every POST).
"""
import re
import subprocess
import uuid

import requests

from conftest import ACCOUNT, berth_bin

COOKIE = "berth_console"


def set_console_password(berth, user, password):
    """`berth admin set-console-password`, the password on stdin, against the running server's data."""
    p = subprocess.run([berth_bin(), "admin", "set-console-password", "--data-dir", berth.data_dir, "--account", ACCOUNT,
                        "--user", user, "--password-stdin"], input=password + "\n", capture_output=True, text=True,
                       env=berth.env, timeout=60)
    assert p.returncode == 0, p.stderr


def sign_in(berth, form, origin=None, referer=None):
    headers = {"Origin": berth.url if origin is None else origin}
    if origin == "":
        del headers["Origin"]
    if referer:
        headers["Referer"] = referer
    return requests.post(f"{berth.url}/console/signin", data=form, headers=headers, allow_redirects=False, timeout=60)


def session_of(r):
    assert r.status_code == 303, (r.status_code, r.text[:500])
    cookie = r.cookies.get(COOKIE)
    assert cookie, r.headers
    return cookie


def key_session(berth, key, secret):
    return session_of(sign_in(berth, {"method": "key", "access_key_id": key, "secret_access_key": secret}))


def password_session(berth, user, password):
    return session_of(sign_in(berth, {"method": "password", "account": ACCOUNT, "user": user, "password": password}))


def page(berth, cookie):
    return requests.get(f"{berth.url}/console/repositories", cookies={COOKIE: cookie}, allow_redirects=False, timeout=30)


def csrf_of(berth, cookie):
    r = page(berth, cookie)
    assert r.status_code == 200, r.status_code
    m = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert m, "no CSRF token on the page"
    return m.group(1)


def assert_refused(berth, cookie):
    """The session no longer works: to the sign-in page, which says the session ended."""
    r = page(berth, cookie)
    assert r.status_code == 303, r.status_code
    location = r.headers["Location"]
    assert location.startswith("/console/signin?") and "expired=1" in location, location
    signin = requests.get(berth.url + location, cookies={COOKIE: cookie}, timeout=30)
    assert signin.status_code == 200
    assert "Sign in to berth" in signin.text and "Your session has ended" in signin.text


def test_sign_out_ends_a_copied_session(berth):
    key, secret = berth.create_user(f"console-so-{uuid.uuid4().hex[:6]}", policy="PowerUser")
    cookie = key_session(berth, key, secret)
    copied = str(cookie)
    csrf = csrf_of(berth, cookie)

    r = requests.post(f"{berth.url}/console/signout", data={"csrf": csrf}, cookies={COOKIE: cookie},
                      headers={"Origin": berth.url}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/console/signin?signedout=1", (r.status_code, r.headers)
    assert "Max-Age=0" in r.headers["Set-Cookie"], r.headers["Set-Cookie"]

    assert_refused(berth, copied)
    # A form posted with the copied cookie and its CSRF token does nothing.
    name = f"console/after-signout-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{berth.url}/console/repositories", data={"csrf": csrf, "name": name}, cookies={COOKIE: copied},
                      headers={"Origin": berth.url}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"].startswith("/console/signin"), (r.status_code, r.headers)
    names = [x["repositoryName"] for x in berth.ecr().describe_repositories()["repositories"]]
    assert name not in names

    # Signing in again gives a new, working session.
    again = key_session(berth, key, secret)
    assert again != copied
    assert page(berth, again).status_code == 200


def test_a_password_change_ends_every_session_of_the_user(berth):
    user = f"console-pw-{uuid.uuid4().hex[:6]}"
    key, secret = berth.create_user(user, policy="ReadOnly")
    other_key, other_secret = berth.create_user(f"console-other-{uuid.uuid4().hex[:6]}", policy="ReadOnly")
    set_console_password(berth, user, "first password, long enough")
    by_password = password_session(berth, user, "first password, long enough")
    by_key = key_session(berth, key, secret)
    other = key_session(berth, other_key, other_secret)
    for cookie in (by_password, by_key, other):
        assert page(berth, cookie).status_code == 200

    set_console_password(berth, user, "second password, long enough")
    assert_refused(berth, by_password)
    assert_refused(berth, by_key)
    assert page(berth, other).status_code == 200, "another user's session is untouched"

    r = sign_in(berth, {"method": "password", "account": ACCOUNT, "user": user, "password": "first password, long enough"})
    assert r.status_code == 401 and COOKIE not in r.cookies
    fresh = password_session(berth, user, "second password, long enough")
    assert page(berth, fresh).status_code == 200


def test_sign_in_from_another_origin_is_refused(berth):
    form = {"method": "key", "access_key_id": berth.admin_key, "secret_access_key": berth.admin_secret}
    for origin, referer in [("http://evil.example", None), ("null", None), (berth.url.replace("127.0.0.1", "localhost"), None),
                            ("", "http://evil.example/console/signin"), ("http://evil.example", f"{berth.url}/console/signin")]:
        r = sign_in(berth, form, origin=origin, referer=referer)
        assert r.status_code == 403, (origin, referer, r.status_code)
        assert COOKIE not in r.cookies and "Set-Cookie" not in r.headers, (origin, referer)
    assert sign_in(berth, form).status_code == 303
    assert sign_in(berth, form, origin="", referer=f"{berth.url}/console/signin?next=/console/registry").status_code == 303
