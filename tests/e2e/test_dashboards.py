"""Seeing trouble first (issue 21): every metric the Grafana dashboard (ops/grafana/berth.json) and the
Prometheus alert rules (ops/prometheus/berth-alerts.yml) name is exposed by a berth that has done some
work (a push, a pull, ECR calls, a replication, scheduled GC/lifecycle/backup runs), and promtool accepts
the rules.
"""
import json
import os
import re
import shutil
import subprocess
import time

import requests

import images
from conftest import ROOT, Berth

DASHBOARD = os.path.join(ROOT, "ops", "grafana", "berth.json")
RULES = os.path.join(ROOT, "ops", "prometheus", "berth-alerts.yml")
# Words of PromQL that are not metric names (functions are recognised by the "(" after them).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (in matchers and by/without/on/ignoring lists), strings or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def test_the_parser_finds_metric_names_only():
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate(berth_x_bucket{instance=~"$instance",status="5.."}'
            '[$__rate_interval]))) / on (instance) group_left berth_y > 2 * berth_z offset 5m and time() - berth_w')
    assert metric_names(expr) == {"berth_x_bucket", "berth_y", "berth_z", "berth_w"}


def dashboard_exprs():
    dash = json.load(open(DASHBOARD))
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(dash["panels"])
    return exprs


def rule_exprs():
    # The rules file's expressions: `expr: ...` on one line, or a `|` block indented below it.
    lines = open(RULES).read().splitlines()
    exprs, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2).strip() not in ("|", ">"):
            exprs.append(m.group(2))
            continue
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1))):
            block.append(lines[i])
            i += 1
        exprs.append("\n".join(block))
    return exprs


def exposed_families(text):
    """name -> type, for every family with at least one sample in the scrape."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def is_exposed(name, families):
    if name in families:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base) in ("histogram", "summary"):
            return True
    return False


def test_the_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (scripts/install-test-deps.sh installs Debian's prometheus package)"
    p = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 13 rules found" in p.stdout, p.stdout


def test_every_metric_the_dashboard_and_the_alerts_name_is_exposed(tmp_path):
    names = set()
    for e in dashboard_exprs() + rule_exprs():
        names |= metric_names(e)
    assert len(dashboard_exprs()) >= 25 and len(rule_exprs()) == 13
    assert all(n.startswith("berth_") for n in names), names

    b = Berth(str(tmp_path / "data"), extra_args=[
        "--gc-interval-seconds", "1", "--lifecycle-interval-seconds", "1",
        "--backup-dir", str(tmp_path / "backups"), "--backup-interval", "1", "--backup-keep", "2",
    ]).start()
    try:
        ecr = b.ecr()
        ecr.put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": "us-west-2", "registryId": b.account}]}]})
        ecr.create_repository(repositoryName="dash/app")
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=64 * 1024, with_busybox=False)
        password = b.token()
        p = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}", img.ref,
                            f"docker://{b.addr}/dash/app:v1"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        r = requests.get(f"{b.url}/v2/dash/app/blobs/{img.layer_digests[0]}", auth=("AWS", password), timeout=30)
        assert r.status_code == 200 and len(r.content) > 0
        assert ecr.describe_images(repositoryName="dash/app")["imageDetails"][0]["imageTags"] == ["v1"]

        # Replication, scheduled runs and backups happen in the background: poll until every name
        # is there (or the deadline says which are missing).
        deadline = time.monotonic() + 90
        while True:
            text = requests.get(b.url + "/metrics", timeout=10).text
            families = exposed_families(text)
            missing = sorted(n for n in names if not is_exposed(n, families))
            gc_ran = re.search(r'^berth_task_runs_total\{result="success",task="gc"\} [1-9]', text, re.M)
            if not missing and gc_ran:
                break
            assert time.monotonic() < deadline, f"not exposed: {missing}, a scheduled gc run: {bool(gc_ran)}"
            time.sleep(0.5)
        assert re.search(r'^berth_backend_up\{backend="metadata"\} 1$', text, re.M), text
        assert re.search(r'^berth_store_errors_total\{backend="blobs",operation="write"\} 0$', text, re.M), "no storage error yet"
        assert re.search(r'^berth_backend_up\{backend="blobs"\} 1$', text, re.M)
        free = float(re.search(r"^berth_data_dir_free_bytes (\S+)$", text, re.M).group(1))
        size = float(re.search(r"^berth_data_dir_size_bytes (\S+)$", text, re.M).group(1))
        st = os.statvfs(b.data_dir)
        assert 0 < free <= size == st.f_blocks * st.f_frsize
        age = float(re.search(r"^berth_signing_key_age_seconds (\S+)$", text, re.M).group(1))
        assert 0 <= age < 600, "the key was created when this berth first started"
        assert re.search(r"^berth_signing_key_rotation_period_seconds 7776000$", text, re.M), "90 days by default"
        assert float(re.search(r"^berth_backup_last_success_timestamp_seconds (\S+)$", text, re.M).group(1)) > time.time() - 120
    finally:
        assert b.stop() == 0
