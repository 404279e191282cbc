"""Idle, slow and surplus connections are closed, never held: slow headers and idle keep-alive
connections after the header timeout, a stalled request body after the body timeout, and
connections beyond the cap at once, while /health keeps answering. (Short limits for the test;
the defaults are 30 s, 60 s and min(4096, open-file limit / 2).)"""
import socket
import time

import pytest
import requests

from conftest import Berth

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
CAP = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    b = Berth(str(tmp_path_factory.mktemp("limits") / "data"),
              extra_args=["--max-connections", str(CAP), "--header-timeout-seconds", str(HEADER_TIMEOUT),
                          "--body-timeout-seconds", str(BODY_TIMEOUT)]).start()
    yield b
    b.stop()


def connect(server):
    host, port = server.addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def closed_within(sock, seconds):
    """Waits (a blocking read with a deadline, no sleeping) until the server closes `sock`;
    returns how long that took, or None if it stayed open."""
    sock.settimeout(seconds)
    t0 = time.monotonic()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - t0
    except (socket.timeout, TimeoutError):
        return None
    except ConnectionResetError:
        return time.monotonic() - t0


def test_slow_headers_are_closed(server):
    socks = [connect(server) for _ in range(20)]
    for s in socks:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
    for s in socks:
        took = closed_within(s, HEADER_TIMEOUT + 15)
        assert took is not None, "a connection that never finished its headers was kept open"
        s.close()
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_idle_keep_alive_connection_is_closed(server):
    s = connect(server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    took = closed_within(s, HEADER_TIMEOUT + 15)
    assert took is not None, "an idle keep-alive connection was never closed"
    s.close()


def test_stalled_request_body_fails_and_closes(server):
    token = server.token()
    import base64
    auth = base64.b64encode(f"AWS:{token}".encode()).decode()
    s = connect(server)
    digest = "sha256:" + "0" * 64
    s.sendall((f"POST /v2/limits/stall/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Basic {auth}\r\nContent-Length: 1000000\r\n\r\n").encode() + b"x" * 1000)
    s.settimeout(BODY_TIMEOUT + 15)
    t0 = time.monotonic()
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, TimeoutError):
        pytest.fail("a request whose body stalled was held open")
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < BODY_TIMEOUT + 15
    # If the server answered before closing, it was an error, never a success.
    assert not data.startswith(b"HTTP/1.1 2"), data[:200]
    s.close()
    # nothing was stored under that digest
    r = requests.head(f"{server.url}/v2/limits/stall/blobs/{digest}", auth=("AWS", token), timeout=10)
    assert r.status_code == 404


def test_connections_beyond_the_cap_are_closed_at_once(server):
    held = []
    try:
        for _ in range(CAP):
            held.append(connect(server))
        # let the server accept them all: one full request on the last proves it is serving it
        held[-1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        held[-1].settimeout(10)
        assert held[-1].recv(65536).startswith(b"HTTP/1.1 200")
        extra = connect(server)
        took = closed_within(extra, 5)
        assert took is not None and took < HEADER_TIMEOUT, "a connection beyond the cap was kept waiting"
        extra.close()
    finally:
        for s in held:
            s.close()
    # Places free up as connections close: the server answers again.
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(server.url + "/health", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "/health never answered after the flood ended"
        time.sleep(0.05)  # polling for the closes to be noticed, not ordering events


def test_a_normal_upload_with_pauses_shorter_than_the_timeout_passes(server):
    token = server.token()
    import hashlib
    data = b"y" * (3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def body():
        for i in range(0, len(data), 1 << 20):
            yield data[i:i + (1 << 20)]
            time.sleep(BODY_TIMEOUT / 4)  # a slow link: pauses shorter than the body timeout

    r = requests.post(f"{server.url}/v2/limits/slow/blobs/uploads/?digest={digest}", data=body(),
                      auth=("AWS", token), timeout=60)
    assert r.status_code == 201, r.text
    r = requests.get(f"{server.url}/v2/limits/slow/blobs/{digest}", auth=("AWS", token), timeout=60)
    assert hashlib.sha256(r.content).hexdigest() == digest.split(":")[1]
