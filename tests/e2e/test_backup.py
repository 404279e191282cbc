"""Backups of the embedded default (issue 21): scheduled backups as linked generations; `berth backup` while 16 skopeo pushes run, `berth restore`
into another data directory, a berth started there pulling every image acknowledged before the
snapshot with its digests (and nothing half-written); incremental backups copying only new blobs;
`berth backup verify` and `berth restore` finding a corrupted backup blob; the root key never in a
backup unless asked for; the same into and out of an S3-compatible bucket (s3s-fs).
"""
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

import images
from conftest import Berth, berth_bin
from test_addressing import run
from httputil import Registry
from test_cluster import S3Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push(b, password, img, ref):
    run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}", img.ref, f"docker://{b.addr}/{ref}")


def backup(b, to, *extra):
    out = b.cli("backup", "--data-dir", b.data_dir, "--to", str(to), *extra, check=False)
    assert out.returncode == 0, out.stderr
    return out, json.loads(out.stdout)


def pulled_digest(b, repo, tag):
    r = requests.get(f"{b.url}/v2/{repo}/manifests/{tag}", auth=("AWS", b.token()), headers={"Accept": OCI_MANIFEST}, timeout=30)
    assert r.status_code == 200, (tag, r.status_code, r.text)
    return r.headers["Docker-Content-Digest"], r.content


def test_backup_while_pushing_restores_every_acknowledged_image(tmp_path):
    data = str(tmp_path / "data")
    b = Berth(data).start()
    images_by_tag = {}
    try:
        password = b.token()
        layout = str(tmp_path / "layout")
        for i in range(26):
            images_by_tag[f"t{i}"] = images.build_image(layout, f"t{i}", random_size=48 * 1024 + i, with_busybox=False)
        bk = tmp_path / "backup"

        # 16 concurrent pushes; the backup starts once the first one is acknowledged, so it
        # overlaps the others.
        acked, first = {}, threading.Event()

        def one(tag):
            push(b, password, images_by_tag[tag], f"bk/app:{tag}")
            acked[tag] = time.time()
            first.set()

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(one, f"t{i}") for i in range(16)]
            assert first.wait(300)
            out, manifest = backup(b, bk)
            for f in futures:
                f.result()
        assert manifest["format"] == "berth-backup-v1" and manifest["root_key_included"] is False
        assert "root key is NOT in the backup" in out.stderr
        assert not (bk / "root.key").exists()
        before = [t for t, at in acked.items() if at * 1000 < manifest["snapshot_millis"]]
        assert before, "at least the first push was acknowledged before the snapshot"

        # Restore elsewhere: refused without the key the encrypted blobs open with.
        r1 = tmp_path / "restored"
        refused = b.cli("restore", "--from", str(bk), "--data-dir", str(r1), check=False)
        assert refused.returncode != 0 and "root key" in refused.stderr
        assert not r1.exists() or not any(r1.iterdir()), "a refused restore writes nothing"
        done = b.cli("restore", "--from", str(bk), "--data-dir", str(r1), "--root-key-file", os.path.join(data, "root.key"))
        report = json.loads(done.stdout)
        assert report["fsck"]["problems"] == [] and report["restored_objects"] == manifest["objects"]
        assert report["fsck"]["sealed_checked"] >= 2 * len(before)

        b2 = Berth(str(r1)).start()
        try:
            for tag in before:
                digest, body = pulled_digest(b2, "bk/app", tag)
                assert digest == images.manifest_digest(images_by_tag[tag].layout, tag) and body == images_by_tag[tag].manifest_bytes
            # Nothing half-written: every tag the restored registry lists pulls whole.
            listed = requests.get(f"{b2.url}/v2/bk/app/tags/list", auth=("AWS", b2.token()), timeout=30).json()["tags"]
            assert set(before) <= set(listed)
            for tag in listed:
                out = tmp_path / f"pull-{tag}"
                run("skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"AWS:{b2.token()}", f"docker://{b2.addr}/bk/app:{tag}",
                    f"dir:{out}")
                img = images_by_tag[tag]
                assert open(out / "manifest.json", "rb").read() == img.manifest_bytes
                for d in [img.config_digest, *img.layer_digests]:
                    assert open(out / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
        finally:
            b2.stop()
        refused = b.cli("restore", "--from", str(bk), "--data-dir", str(r1), check=False)
        assert refused.returncode != 0 and "not empty" in refused.stderr

        # Incremental: catch up on the pushes the first snapshot missed, then 10 more pushes
        # copy exactly their 20 blobs (a config and a layer each), and an unchanged registry none.
        _, caught_up = backup(b, bk)
        for i in range(16, 26):
            push(b, password, images_by_tag[f"t{i}"], f"bk/app:t{i}")
        _, after_ten = backup(b, bk)
        assert after_ten["copied"] == 20 and after_ten["objects"] == caught_up["objects"] + 20
        plaintext = sum(len(images.read_blob(img.layout, d)) for img in (images_by_tag[f"t{i}"] for i in range(16, 26))
                        for d in [img.config_digest, *img.layer_digests])
        assert after_ten["copied_bytes"] >= plaintext, "sealed objects are their plaintext plus headers and tags"
        _, unchanged = backup(b, bk)
        assert unchanged["copied"] == 0 and unchanged["objects"] == after_ten["objects"]

        verified = b.cli("backup", "verify", "--from", str(bk))
        assert json.loads(verified.stdout)["problems"] == []

        # A corrupted object in the backup: verify and restore both name it.
        victim = next(p for p in sorted((bk / "sealed").rglob("*")) if p.is_file() and not p.name.startswith("."))
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(bytes(raw))
        bad = b.cli("backup", "verify", "--from", str(bk), check=False)
        assert bad.returncode == 2
        problems = json.loads(bad.stdout)["problems"]
        assert len(problems) == 1 and str(victim.relative_to(bk)) in problems[0]
        r2 = tmp_path / "restored-from-damaged"
        failed = b.cli("restore", "--from", str(bk), "--data-dir", str(r2), "--root-key-file", os.path.join(data, "root.key"),
                       check=False)
        assert failed.returncode != 0 and str(victim.relative_to(bk)) in failed.stderr
        assert not (r2 / "berth.db").exists(), "a damaged restore never gets its metadata"

        # An incremental backup trusts what it holds at the recorded size (it takes seconds on an
        # unchanged registry); once the damaged file verify named is removed, it copies it again.
        victim.unlink()
        _, repaired = backup(b, bk)
        assert repaired["copied"] == 1
        assert b.cli("backup", "verify", "--from", str(bk)).returncode == 0
    finally:
        b.stop()


def test_the_root_key_goes_into_a_backup_only_when_asked(tmp_path):
    data = str(tmp_path / "data")
    b = Berth(data).start()
    try:
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=32 * 1024, with_busybox=False)
        push(b, b.token(), img, "keyed/app:v1")
        bk = tmp_path / "backup"
        out, manifest = backup(b, bk, "--include-root-key")
        assert manifest["root_key_included"] is True
        assert (bk / "root.key").read_bytes() == open(os.path.join(data, "root.key"), "rb").read()
        assert oct((bk / "root.key").stat().st_mode & 0o777) == "0o600"
        assert "NOT in the backup" not in out.stderr
        r = tmp_path / "restored"
        b.cli("restore", "--from", str(bk), "--data-dir", str(r))
        b2 = Berth(str(r)).start()
        try:
            digest, _ = pulled_digest(b2, "keyed/app", "v1")
            assert digest == images.manifest_digest(img.layout, "v1")
        finally:
            b2.stop()
        # Backing up again without the flag takes the key out of the backup.
        backup(b, bk)
        assert not (bk / "root.key").exists()
    finally:
        b.stop()


def backup_successes(b):
    text = requests.get(b.url + "/metrics", timeout=10).text
    m = re.search(r'^berth_backup_runs_total\{result="success"\} (\d+)$', text, re.M)
    return int(m.group(1)), text


def generations(d):
    return sorted(p for p in os.listdir(d) if re.fullmatch(r"\d{8}T\d{6}\.\d{3}Z", p))


def test_scheduled_backups_are_linked_generations_pruned_to_keep(tmp_path):
    data, gens = str(tmp_path / "data"), tmp_path / "generations"
    b = Berth(data, extra_args=["--backup-dir", str(gens), "--backup-interval", "1", "--backup-keep", "2"]).start()
    try:
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=256 * 1024, with_busybox=False)
        push(b, b.token(), img, "sched/app:v1")
        # Runs that start after the push was acknowledged: the one in progress then may predate it.
        at_push, _ = backup_successes(b)
        deadline = time.time() + 60
        while True:
            n, text = backup_successes(b)
            if n >= at_push + 3:
                break
            assert time.time() < deadline, f"scheduled backups stalled at {n}: {text}"
            time.sleep(0.2)
        assert float(re.search(r"^berth_backup_last_success_timestamp_seconds (\S+)$", text, re.M).group(1)) > time.time() - 60
        assert re.search(r'^berth_backup_runs_total\{result="failure"\} 0$', text, re.M), text
        assert re.search(r"^berth_backup_interval_seconds 1$", text, re.M)
        status = requests.get(b.url + "/_berth/status", auth=("AWS", b.token()), timeout=30).json()
        assert status["backups"]["dir"] == str(gens) and status["backups"]["failed"] == 0
        assert re.fullmatch(r"\d{8}T\d{6}\.\d{3}Z", status["backups"]["last_generation"]) and status["backups"]["succeeded"] >= n
        assert {w["name"]: w for w in status["workers"]}["backup"]["last_error"] is None
    finally:
        assert b.stop() == 0

    kept = generations(gens)
    assert len(kept) == 2, f"--backup-keep 2: {os.listdir(gens)}"
    assert not [p for p in os.listdir(gens) if p.startswith(".partial-")]
    older, newer = (gens / g for g in kept)
    newest = json.loads((newer / "BACKUP.json").read_text())
    assert newest["objects"] >= 2 and newest["copied"] == 0 and newest["linked"] == newest["objects"], newest
    # Unchanged objects are the previous generation's files (same inode), not copies.
    for line in (newer / "objects.tsv").read_text().splitlines():
        path = line.split("\t")[0]
        assert os.stat(newer / path).st_ino == os.stat(older / path).st_ino, path
    verified = b.cli("backup", "verify", "--from", str(newer))
    assert json.loads(verified.stdout)["problems"] == []

    restored = tmp_path / "restored"
    done = b.cli("restore", "--from", str(newer), "--data-dir", str(restored), "--root-key-file", os.path.join(data, "root.key"))
    assert json.loads(done.stdout)["fsck"]["problems"] == []
    b2 = Berth(str(restored)).start()
    try:
        digest, body = pulled_digest(b2, "sched/app", "v1")
        assert digest == images.manifest_digest(img.layout, "v1") and body == img.manifest_bytes
    finally:
        b2.stop()


def test_scheduled_backups_are_refused_for_sqlite_beside_a_bucket(tmp_path):
    # Neither the embedded default nor a cluster: the metadata is in the node's SQLite, its blobs
    # elsewhere. Refused before serving (a cluster's scheduled backups: test_backup_cluster.py).
    b = Berth(str(tmp_path / "data"))
    p = b.cli("serve", "--listen", "127.0.0.1:0", "--data-dir", b.data_dir, "--blobs", f"file://{tmp_path / 'shared'}",
              "--backup-dir", str(tmp_path / "gens"), check=False)
    assert p.returncode != 0 and "listening on" not in p.stdout
    assert "--backup-dir" in p.stderr and "SQLite" in p.stderr and "PostgreSQL" in p.stderr, p.stderr
    assert not (tmp_path / "gens").exists()


def test_backups_in_a_bucket_copy_only_new_blobs_verify_and_restore(tmp_path):
    s3 = S3Server(str(tmp_path / "s3")).start()
    b = Berth(str(tmp_path / "data")).start()
    try:
        password = b.token()
        layout = str(tmp_path / "layout")
        imgs = {f"s{i}": images.build_image(layout, f"s{i}", random_size=40 * 1024 + i, with_busybox=False) for i in range(5)}
        for tag in ("s0", "s1", "s2"):
            push(b, password, imgs[tag], f"bucket/app:{tag}")
        url = f"s3://{s3.bucket}/backups/nightly"
        flags = ["--s3-endpoint", s3.endpoint, "--s3-path-style", "--s3-access-key-id", s3.access,
                 "--s3-secret-access-key", s3.secret]
        _, first = backup(b, url, *flags)
        assert first["objects"] == 6 and first["copied"] == 6, first
        stored = tmp_path / "s3" / "root" / s3.bucket / "backups" / "nightly"
        assert (stored / "BACKUP.json").is_file() and (stored / "berth.db").is_file() and not (stored / "root.key").exists()
        _, unchanged = backup(b, url, *flags)
        assert unchanged["copied"] == 0 and unchanged["objects"] == 6
        for tag in ("s3", "s4"):
            push(b, password, imgs[tag], f"bucket/app:{tag}")
        _, after_two = backup(b, url, *flags)
        assert after_two["copied"] == 4 and after_two["objects"] == 10, after_two

        verified = b.cli("backup", "verify", "--from", url, *flags, check=False)
        assert verified.returncode == 0 and json.loads(verified.stdout)["problems"] == [], verified.stderr
        restored = tmp_path / "restored"
        done = b.cli("restore", "--from", url, *flags, "--data-dir", str(restored),
                     "--root-key-file", os.path.join(b.data_dir, "root.key"), check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["fsck"]["problems"] == []
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".berth-backup")) == [], "the download is removed"
        b2 = Berth(str(restored)).start()
        try:
            for tag, img in imgs.items():
                digest, body = pulled_digest(b2, "bucket/app", tag)
                assert digest == img.manifest_digest and body == img.manifest_bytes
        finally:
            b2.stop()

        # A corrupted object in the bucket: verify and restore both name it.
        victim = next(p for p in sorted((stored / "sealed").rglob("*")) if p.is_file())
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(bytes(raw))
        name = str(victim.relative_to(stored))
        bad = b.cli("backup", "verify", "--from", url, *flags, check=False)
        assert bad.returncode == 2 and name in json.loads(bad.stdout)["problems"][0], bad.stdout
        failed = b.cli("restore", "--from", url, *flags, "--data-dir", str(tmp_path / "r2"),
                       "--root-key-file", os.path.join(b.data_dir, "root.key"), check=False)
        assert failed.returncode != 0 and name in failed.stderr, failed.stderr
        assert not (tmp_path / "r2" / "berth.db").exists()
    finally:
        b.stop()
        s3.stop()


def push_eight(b):
    r = Registry(b.url, token=b.token())
    for i in range(8):
        r.push_image("resume/app", f"v{i}", nlayers=1, layer_size=1024 * 1024 + i)


def kill_once_journaled(b, to, journaled, *extra):
    """Runs a backup held to 1 MiB/s (it journals what it has made durable every 2 s) and kills it
    once `journaled()` names an object; returns those objects' paths."""
    slow = subprocess.Popen([berth_bin(), "backup", "--data-dir", b.data_dir, "--to", str(to), "--max-rate-mib", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=b.env)
    deadline = time.monotonic() + 60
    while not journaled():
        assert slow.poll() is None, "the backup ended before journaling anything"
        assert time.monotonic() < deadline, "no journal within 60 s"
        time.sleep(0.05)
    slow.kill()
    slow.wait()
    return journaled()


def journal_paths(*files):
    return {line.split("\t")[0] for f in files for line in f.read_text().splitlines() if line.count("\t") == 2}


def test_a_killed_backup_resumes_where_it_stopped(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    try:
        push_eight(b)
        bk = tmp_path / "backup"
        journal = bk / ".objects.journal.tsv"
        done = kill_once_journaled(b, bk, lambda: journal.exists() and journal_paths(journal))
        assert not (bk / "berth.db").exists() and not (bk / "objects.tsv").exists()

        _, resumed = backup(b, bk)
        assert resumed["copied"] == resumed["objects"] - len(done) and resumed["objects"] == 16, (resumed, done)
        assert not journal.exists(), "the journal goes once the list records the run"
        v = b.cli("backup", "verify", "--from", str(bk), check=False)
        assert v.returncode == 0 and json.loads(v.stdout)["problems"] == [], v.stdout
    finally:
        b.stop()


def test_a_killed_backup_into_a_bucket_resumes_where_it_stopped(tmp_path):
    s3 = S3Server(str(tmp_path / "s3")).start()
    b = Berth(str(tmp_path / "data")).start()
    try:
        push_eight(b)
        url = f"s3://{s3.bucket}/backups/resume"
        flags = ["--s3-endpoint", s3.endpoint, "--s3-path-style", "--s3-access-key-id", s3.access,
                 "--s3-secret-access-key", s3.secret]
        journals = tmp_path / "s3" / "root" / s3.bucket / "backups" / "resume" / ".journal"

        def journaled():
            files = sorted(journals.glob("*.tsv")) if journals.is_dir() else []
            return journal_paths(*files)

        done = kill_once_journaled(b, url, journaled, *flags)
        # The killed run still holds the prefix: another run is refused, naming the holder and
        # the way out, and writes nothing.
        lock = journals.parent / ".lock"
        holder = json.loads(lock.read_text())
        refused = b.cli("backup", "--data-dir", b.data_dir, "--to", url, *flags, check=False)
        assert refused.returncode != 0 and "in use by another `berth backup`" in refused.stderr, refused.stderr
        assert "--break-lock" in refused.stderr and str(holder["pid"]) in refused.stderr
        assert not (journals.parent / "berth.db").exists()
        _, resumed = backup(b, url, *flags, "--break-lock")
        assert not lock.exists(), "a finished run releases the prefix"
        assert resumed["copied"] == resumed["objects"] - len(done) and resumed["objects"] == 16, (resumed, done)
        assert not list(journals.glob("*.tsv")), "the journal objects go once the list records the run"
        v = b.cli("backup", "verify", "--from", url, *flags, check=False)
        assert v.returncode == 0 and json.loads(v.stdout)["problems"] == [], v.stdout
    finally:
        b.stop()
        s3.stop()
