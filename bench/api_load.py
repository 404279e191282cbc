"""Load on one AWS JSON API call: the same SigV4-signed request from C keep-alive connections for D seconds.

    python3 bench/api_load.py URL TARGET BODY CONNECTIONS SECONDS WARMUP

berth-bench has no SigV4 load (its list-images times pages one at a time), and signing every
request in Python would make the client the bottleneck on a 2-core machine: the request is
signed once (its signature stays valid for SigV4's 15 minutes) and its bytes are replayed, so the
server does the whole verification on every request. Credentials come from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, the region from AWS_DEFAULT_REGION. Prints one JSON object like
berth-bench manifest-load's: req_per_s, latency p50/p99, errors, last_error.
"""
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_request(url, target, body):
    service = "ecr-public" if target.startswith("SpencerFrontendService") else "ecr"
    req = AWSRequest(method="POST", url=url + "/", data=body,
                     headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(creds, service, os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(req)
    host = urlsplit(url).netloc
    head = [f"POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body.encode()


async def exchange(reader, writer, request):
    """One request, one response on the connection; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def worker(host, port, request, measure_from, end, out):
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        t0 = time.monotonic()
        if t0 >= end:
            break
        try:
            status = await exchange(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError) as e:
            out["errors"] += 1
            out["last_error"] = repr(e)
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        done = time.monotonic()
        if status != 200:
            out["errors"] += 1
            out["last_error"] = f"HTTP {status}"
        elif t0 >= measure_from and done <= end:
            out["latencies"].append(done - t0)
    writer.close()


async def main(url, target, body, connections, seconds, warmup):
    request = signed_request(url, target, body)
    parts = urlsplit(url)
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + seconds
    out = {"errors": 0, "last_error": None, "latencies": []}
    await asyncio.gather(*(worker(parts.hostname, parts.port, request, measure_from, end, out) for _ in range(connections)))
    lat = sorted(out["latencies"])

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

    return {"target": target, "connections": connections, "duration_s": seconds, "requests": len(lat),
            "errors": out["errors"], "last_error": out["last_error"], "req_per_s": round(len(lat) / seconds),
            "latency": {"p50_ms": pct(0.5), "p99_ms": pct(0.99)}}


if __name__ == "__main__":
    url, target, body, conns, secs, warm = sys.argv[1:7]
    print(json.dumps(asyncio.run(main(url.rstrip("/"), target, body, int(conns), float(secs), float(warm)))))
