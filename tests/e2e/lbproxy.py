"""A tiny load balancer for the rolling-upgrade test: round-robin per request over the backends
whose GET /health answers 200, checked every 50 ms (as an ALB or nginx health check would, only
faster). It forwards each request once and never retries, so every 5xx or broken connection a
client would see is counted in `failures`.

Request bodies (Content-Length or chunked, as Go clients send PATCH) and responses are buffered:
the test's images are small, and a buffered request goes to one backend whole.
"""
import http.client
import http.server
import itertools
import threading

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length"}


class LoadBalancer:
    def __init__(self, backends):
        self.backends = dict(backends)  # name -> "host:port"
        self.healthy = set()
        self.lock = threading.Lock()
        self.turn = itertools.count()
        self.requests = 0
        self.by_backend = {}
        self.failures = []  # (method, path, backend, status or error)
        self.stopped = threading.Event()
        lb = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_any(self):
                lb.forward(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_any

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client closing its keep-alive connection is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.check_health()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self.health_loop, daemon=True).start()

    def set_backend(self, name, addr):
        with self.lock:
            self.backends[name] = addr
            self.healthy.discard(name)

    def check_health(self):
        with self.lock:
            backends = dict(self.backends)
        for name, addr in backends.items():
            try:
                c = http.client.HTTPConnection(addr, timeout=1)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            with self.lock:
                if self.backends.get(name) == addr:
                    (self.healthy.add if ok else self.healthy.discard)(name)

    def health_loop(self):
        while not self.stopped.wait(0.05):
            self.check_health()

    def wait_healthy(self, name, timeout=30):
        """Until the balancer itself has seen `name` healthy (it then sends it requests)."""
        end = threading.Event()
        for _ in range(int(timeout / 0.05)):
            with self.lock:
                if name in self.healthy:
                    return
            end.wait(0.05)
        raise AssertionError(f"{name} never became healthy behind the balancer")

    def pick(self):
        with self.lock:
            names = sorted(self.healthy)
            if not names:
                return None, None
            name = names[next(self.turn) % len(names)]
            self.requests += 1
            self.by_backend[name] = self.by_backend.get(name, 0) + 1
            return name, self.backends[name]

    def forward(self, h):
        body = read_body(h)
        name, addr = self.pick()
        if addr is None:
            self.failures.append((h.command, h.path, None, "no healthy backend"))
            return reply(h, 503, [], b"no healthy backend\n")
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or h.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            c = http.client.HTTPConnection(addr, timeout=120)
            c.request(h.command, h.path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            c.close()
        except (OSError, http.client.HTTPException) as e:
            self.failures.append((h.command, h.path, name, repr(e)))
            return reply(h, 502, [], b"bad gateway\n")
        if r.status >= 500:
            self.failures.append((h.command, h.path, name, r.status))
        out = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP]
        length = r.getheader("Content-Length") if h.command == "HEAD" else None
        reply(h, r.status, out, data, length)

    def close(self):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def read_body(h):
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(h.rfile.read(size))
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


def reply(h, status, headers, data, head_length=None):
    h.send_response_only(status)
    for k, v in headers:
        h.send_header(k, v)
    no_body = h.command == "HEAD" or status in (204, 304) or 100 <= status < 200
    if head_length is not None:
        h.send_header("Content-Length", head_length)
    elif not no_body or status not in (204, 304):
        h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if not no_body:
        h.wfile.write(data)
