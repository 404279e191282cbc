#!/usr/bin/env python3
"""The loopback limit for a blob download on this machine: a minimal HTTP server sends FILE over
127.0.0.1 to a client that discards it, as berth would, three ways:

  sendfile   socket.sendfile (the kernel moves page-cache pages to the socket; the ceiling)
  mmap       send() of a mapped file in 2 MiB slices (what berth's filesystem GET does)
  read       read() into a 256 KiB buffer and send() it (berth's GET before the mapped reader)

    bench/loopback.py FILE [--repeat 5] [--modes sendfile,mmap,read] [--parallel N] [--bench-bin B]

Prints one JSON object: {mode: {"mb_per_s": median, "runs": [...]}, "bytes": size, "client": …}.
The file is read once first so every mode is served from the page cache. The client is
`berth-bench pull-blob` when --bench-bin is given (the client of compare.sh's pull figure: the
limit is then the one berth's figure can reach), else curl to /dev/null (whose 16 KiB reads make
it the slower client). With --parallel N, N clients run at once (one server thread each) and
MB/s is N x size / wall time.
"""

import argparse
import json
import mmap
import os
import socket
import statistics
import subprocess
import threading
import time

CHUNK = 2 << 20
READ = 256 << 10


def serve(listener, path, mode):
    while True:
        conn, _ = listener.accept()
        if conn is None:
            return
        if conn.recv(4, socket.MSG_PEEK) == b"QUIT":
            conn.close()
            return
        threading.Thread(target=answer, args=(conn, path, mode), daemon=True).start()


def answer(conn, path, mode):
    size = os.path.getsize(path)
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            got = conn.recv(4096)
            if not got:
                break
            request += got
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        with open(path, "rb") as f:
            if mode == "sendfile":
                conn.sendfile(f)
            elif mode == "mmap":
                with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
                    view = memoryview(m)
                    for off in range(0, size, CHUNK):
                        conn.sendall(view[off : off + CHUNK])
                    view.release()
            else:
                buf = bytearray(READ)
                while n := f.readinto(buf):
                    conn.sendall(memoryview(buf)[:n])


def measure(path, mode, repeat, parallel, bench_bin):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    t = threading.Thread(target=serve, args=(listener, path, mode), daemon=True)
    t.start()
    runs = []
    size = os.path.getsize(path)
    env = dict(os.environ, BENCH_URL=f"http://127.0.0.1:{port}")
    env.pop("BENCH_USER", None)
    env.pop("BENCH_PASSWORD", None)
    if bench_bin:
        cmd = [bench_bin, "pull-blob", "--repo", "loopback", "--digest", "sha256:" + "0" * 64]
    else:
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}\n", f"http://127.0.0.1:{port}/"]
    for _ in range(repeat):
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(parallel)]
        single = None
        for p in procs:
            out = p.communicate()[0].strip()
            got = json.loads(out)["bytes"] if bench_bin and p.returncode == 0 else int(out or 0)
            if p.returncode != 0 or got != size:
                raise SystemExit(f"{mode}: the client exited {p.returncode} with {got} bytes")
            if bench_bin and parallel == 1:
                single = json.loads(out)["mb_per_s"]  # the transfer alone, without process start
        runs.append(round(single or parallel * size / (time.perf_counter() - t0) / 1e6, 1))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"QUIT\r\n\r\n")
    t.join(5)
    listener.close()
    return {"mb_per_s": statistics.median(runs), "runs": runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--modes", default="sendfile,mmap,read")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--bench-bin", help="berth-bench binary: use pull-blob as the client (default: curl)")
    a = ap.parse_args()
    with open(a.file, "rb") as f:
        while f.read(8 << 20):
            pass
    out = {"bytes": os.path.getsize(a.file), "client": "berth-bench pull-blob" if a.bench_bin else "curl"}
    for mode in a.modes.split(","):
        out[mode] = measure(a.file, mode, a.repeat, a.parallel, a.bench_bin)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
