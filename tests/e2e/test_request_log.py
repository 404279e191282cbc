"""The request log under pressure: a stalled log drops (and counts) lines, requests never wait for it."""
import os
import re
import subprocess
import threading

import requests

from conftest import Berth, berth_bin


def _dropped(metrics_text):
    m = re.search(r"^berth_log_lines_dropped_total (\d+)", metrics_text, re.M)
    assert m, "berth_log_lines_dropped_total is missing from /metrics"
    return int(m.group(1))


def test_a_stalled_log_drops_lines_and_never_blocks_requests(tmp_path):
    # stderr is a pipe nobody reads until the end: once its 64 KiB are full the log writer thread
    # blocks in write(2), and its queue (64 lines here) fills. Requests must go on being answered.
    read_end, write_end = os.pipe()
    b = Berth(str(tmp_path / "data"), env={"BERTH_LOG": "info", "BERTH_LOG_BUFFER_LINES": "64"})
    b.proc = subprocess.Popen(
        [berth_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", b.data_dir],
        stdout=subprocess.PIPE, stderr=write_end, env=b.env,
    )
    os.close(write_end)
    drained = []
    try:
        line = b.proc.stdout.readline().decode()
        m = re.search(r"listening on (\S+)", line)
        assert m, f"berth did not start: {line!r}"
        b.addr = m.group(1)
        s = requests.Session()
        s.auth = ("AWS", b.token())
        # Each line is ~200 bytes: 3,000 requests write ~600 KB, ten times what the pipe holds.
        # The timeout only turns a hang (a request waiting for the log) into a failure.
        for i in range(3000):
            r = s.get(f"{b.url}/v2/", timeout=30)
            assert r.status_code == 200, (i, r.status_code, r.text[:200])
        dropped = _dropped(requests.get(f"{b.url}/metrics", timeout=30).text)
        assert dropped > 0, "the pipe is full, yet no log line was dropped"
        # Reading the pipe again lets the writer go on: later lines reach stderr again.
        t = threading.Thread(target=lambda: drained.append(_read_all(read_end)), daemon=True)
        t.start()
        # Until one catalog request's line is queued, not dropped (the reader needs a moment).
        for _ in range(200):
            before = _dropped(requests.get(f"{b.url}/metrics", timeout=30).text)
            assert s.get(f"{b.url}/v2/_catalog", timeout=30).status_code == 200
            if _dropped(requests.get(f"{b.url}/metrics", timeout=30).text) == before:
                break
        else:
            raise AssertionError("every line is still dropped after stderr is read again")
    finally:
        b.stop()
    t.join(timeout=30)
    text = b"".join(drained).decode(errors="replace")
    assert "v2_base" in text, "no request line reached stderr"
    assert "v2_catalog" in text, "the log did not recover once stderr was read again"


def _read_all(fd):
    chunks = []
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
