"""Hostile HTTP clients: unauthenticated requests must not grow the server's memory or its
metrics, and byte counters count bytes that crossed the socket, never what a client declared.

Requests go over raw sockets (loopback) so methods, paths and headers are exactly what a
hostile client would send, with no client library normalising them.
"""
import re
import socket

ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
MADE_UP = 20_000
PER_CONNECTION = 200


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


def exchange(addr, data):
    """Writes `data` (pipelined requests, the last with `Connection: close`) and reads to EOF.
    (Our write side stays open: hyper drops a connection whose client half-closes.)"""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def metrics(b):
    text = exchange(b.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").decode()
    assert text.startswith("HTTP/1.1 200"), text[:200]
    return text.split("\r\n\r\n", 1)[1]


def counter(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def series(text, name):
    return [l for l in text.splitlines() if l.startswith(name + "{")]


def made_up_batch(start, n):
    """n pipelined requests with distinct made-up methods and paths; the last closes."""
    reqs = []
    for i in range(start, start + n):
        path = [f"/v2/r{i}/manifests/t{i}", f"/nope/{i}/x", f"/v2/r{i}/blobs/uploads/", f"/console/p{i}"][i % 4]
        last = "Connection: close\r\n" if i == start + n - 1 else ""
        reqs.append(f"M{i:06d}X {path}?q={i} HTTP/1.1\r\nHost: h{i}\r\n{last}\r\n")
    return "".join(reqs).encode()


def ecr_post(body):
    """An unsigned ECR call: refused from its headers, its body never read."""
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {ECR_TARGET}\r\n"
            f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def huge_patch(i):
    """An unauthenticated upload PATCH declaring ~2**63 bytes and sending 2: berth answers 401
    (and closes) without reading the body."""
    return (f"PATCH /v2/r{i}/blobs/uploads/u{i} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: 9223372036854775807\r\n\r\n{{}}").encode()


def test_made_up_requests_do_not_grow_memory_or_metrics(fresh_berth):
    b = fresh_berth
    pid = b.proc.pid
    # Warm up the allocator and every code path once before the baseline.
    exchange(b.addr, made_up_batch(0, PER_CONNECTION))
    before = metrics(b)
    rss_before = rss_kb(pid)
    in_before = counter(before, "berth_http_request_bytes_total")
    out_before = counter(before, "berth_http_response_bytes_total")

    samples_in, samples_out = [in_before], [out_before]
    answered = 0
    for start in range(PER_CONNECTION, MADE_UP + PER_CONNECTION, PER_CONNECTION):
        answered += exchange(b.addr, made_up_batch(start, PER_CONNECTION)).count(b"HTTP/1.1 ")
        if start % 5000 == 0:
            m = metrics(b)
            samples_in.append(counter(m, "berth_http_request_bytes_total"))
            samples_out.append(counter(m, "berth_http_response_bytes_total"))
    assert answered == MADE_UP, f"every pipelined request is answered ({answered} of {MADE_UP})"

    # Unsigned ECR calls are refused from their headers, before berth reads their bodies.
    body = b'{"maxResults": 5, "padding": "' + b"p" * 4000 + b'"}'
    for _ in range(10):
        reply = exchange(b.addr, ecr_post(body))
        assert reply.startswith(b"HTTP/1.1 4"), reply[:200]
    # Declared lengths near i64::MAX with a short body: what counts is what arrived.
    for _ in range(2):
        reply = exchange(b.addr, huge_patch(_))
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
        m = metrics(b)
        samples_in.append(counter(m, "berth_http_request_bytes_total"))
        samples_out.append(counter(m, "berth_http_response_bytes_total"))

    after = metrics(b)
    rss_after = rss_kb(pid)
    samples_in.append(counter(after, "berth_http_request_bytes_total"))
    samples_out.append(counter(after, "berth_http_response_bytes_total"))

    assert samples_in == sorted(samples_in), f"request byte counter went backwards: {samples_in}"
    assert samples_out == sorted(samples_out), f"response byte counter went backwards: {samples_out}"
    sent = 10 * len(body) + 2 * 2
    grew_in = samples_in[-1] - in_before
    assert grew_in <= sent, f"request bytes grew by {grew_in}, {sent} body bytes were sent"
    assert grew_in < len(body), f"an unsigned call's body was read ({grew_in} bytes): it must be refused first"
    # Every answer has a body of some bytes; none declared anywhere near 2**63.
    grew_out = samples_out[-1] - out_before
    assert 0 < grew_out < 50 * 1024 * 1024, grew_out

    requests = series(after, "berth_http_requests_total")
    assert len(requests) < 200, f"{len(requests)} request series, e.g. {requests[:5]}"
    assert not any(f"M{i:06d}X" in after for i in (1, 500, MADE_UP)), "made-up methods never become labels"
    assert 'method="other"' in after
    durations = series(after, "berth_http_request_duration_seconds_count")
    assert len(durations) < 100, len(durations)

    grew_mb = (rss_after - rss_before) / 1024
    assert grew_mb < 25, f"RSS grew by {grew_mb:.1f} MB over {MADE_UP} made-up requests ({rss_before} -> {rss_after} kB)"

    assert b.stop() == 0
    log = open(b.log_path, encoding="utf-8", errors="replace").read()
    assert f"M{MADE_UP:06d}X" in log, "the request log keeps the real method"


def test_an_unknown_access_key_is_refused_before_its_body_is_read(fresh_berth):
    """A signed-looking ECR call with an unknown key declares a 60 MB body and sends none: berth
    answers at once (it would otherwise wait for, and buffer, the body)."""
    b = fresh_berth
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {ECR_TARGET}\r\n"
            "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261206T000000Z\r\n"
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20261206/us-east-1/ecr/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + "\r\n"
            "Content-Length: 60000000\r\n\r\n")
    host, port = b.addr.rsplit(":", 1)
    # Well inside the 60 s body timeout: the answer cannot come from giving up on the body.
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode())
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 4"), reply[:300]
    assert b"UnrecognizedClientException" in reply or b"InvalidSignatureException" in reply, reply[:600]


def test_log_line_truncates_long_methods(fresh_berth):
    b = fresh_berth
    method = "Z" * 300
    reply = exchange(b.addr, f"{method} /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 "), reply[:100]
    assert b.stop() == 0, "a graceful stop flushes the log"
    log = open(b.log_path, encoding="utf-8", errors="replace").read()
    assert "Z" * 16 in log and "Z" * 17 not in log, "the logged method is cut to 16 characters"
