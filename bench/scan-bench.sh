#!/usr/bin/env bash
# How long berth takes to scan an image on push, and what the scan finds.
#
#   bench/scan-bench.sh                                  # prints a markdown section (and the raw JSON path)
#   SCAN_BENCH_OUT=bench/RESULTS.md bench/scan-bench.sh  # also appends the section to that file
#
# Two images, each pushed SCAN_BENCH_REPEAT times to a new repository created with scanOnPush=true
# (StartImageScan allows one manual scan per image per 24 h, so every repetition is a fresh repository):
#   random  - a ~SCAN_BENCH_BIG_MIB MiB layer of random bytes (tar, gzip) plus a small layer with
#             /etc/os-release and /var/lib/dpkg/status (5 Debian 12 packages), pushed over HTTP by Python
#   debian  - a Debian bookworm rootfs (`debootstrap --variant=minbase`), turned into a one-layer image
#             with `buildah from scratch` + `buildah copy` + `buildah commit`, pushed with `buildah push`
# For each push: seconds from the end of the push (manifest PUT answered / `buildah push` exited) to
# describe-image-scan-findings reporting COMPLETE (polled every 0.1 s over one boto3 connection), the
# components of the CycloneDX SBOM referrer, the findings, and berth's peak RSS during the scan
# (VmHWM, reset through /proc/<pid>/clear_refs once the push is done).
#
# Vulnerability database: the OSV export at SCAN_BENCH_OSV_URL (Debian's, by default) when curl can fetch
# it, else the repository's test fixtures (crates/berth-scan/tests/fixtures/osv).
#
# Environment (all optional):
#   SCAN_BENCH_REPEAT=3            pushes (= scans) per image; the figure reported is the median
#   SCAN_BENCH_BIG_MIB=200         size of the random layer
#   SCAN_BENCH_OSV_URL=URL         OSV zip to try (default: https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip)
#   SCAN_BENCH_OSV=PATH            use this OSV zip or directory and download nothing
#   SCAN_BENCH_ROOTFS=DIR          reuse a bookworm rootfs debootstrap already made (default: debootstrap one)
#   SCAN_BENCH_MIRROR=URL          debootstrap mirror (default: http://deb.debian.org/debian)
#   SCAN_BENCH_WORKDIR=DIR         scratch (default: a new directory under /var/tmp, removed unless SCAN_BENCH_KEEP=1)
#   SCAN_BENCH_OUT=FILE            append the markdown section to FILE
#   SCAN_BENCH_BUILD=0             1: `cargo build --release -p berth` first (default: only if the binary is missing)
# Needs root (debootstrap, buildah), python3 with boto3 and requests; installs debootstrap/buildah with apt-get.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMMAND="$(printf '%q ' "$0" "$@")"
for v in $(env | grep -o '^SCAN_BENCH_[A-Z_]*' | grep -v -x -e SCAN_BENCH_WORKDIR -e SCAN_BENCH_KEEP -e SCAN_BENCH_OUT | sort); do COMMAND="$v=${!v} $COMMAND"; done

REPEAT=${SCAN_BENCH_REPEAT:-3}
BIG_MIB=${SCAN_BENCH_BIG_MIB:-200}
OSV_URL=${SCAN_BENCH_OSV_URL:-https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip}
MIRROR=${SCAN_BENCH_MIRROR:-http://deb.debian.org/debian}
FIXTURES=$ROOT/crates/berth-scan/tests/fixtures/osv

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and buildah need it)"

# ---------------------------------------------------------------- dependencies
need=()
for pair in debootstrap:debootstrap buildah:buildah curl:curl jq:jq; do command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import boto3, requests' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check boto3 requests

BERTH=$ROOT/target/release/berth
if [ "${SCAN_BENCH_BUILD:-0}" = 1 ] || [ ! -x "$BERTH" ]; then
  log "building berth (release)"
  cargo build --release -q -p berth
fi

# ---------------------------------------------------------------- scratch
if [ -n "${SCAN_BENCH_WORKDIR:-}" ]; then W=$SCAN_BENCH_WORKDIR; mkdir -p "$W"; else W=$(mktemp -d /var/tmp/berth-scan-bench.XXXXXX); fi
BUILDAH=(buildah --root "$W/buildah/root" --runroot "$W/buildah/run" --storage-driver vfs)
BERTH_PID=""
cleanup() {
  if [ -n "$BERTH_PID" ]; then kill "$BERTH_PID" 2>/dev/null || true; wait "$BERTH_PID" 2>/dev/null || true; fi
  if [ -d "$W/buildah" ]; then "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true; "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true; fi
  if [ "${SCAN_BENCH_KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
META=$W/meta.json; echo '{}' >"$META"
meta() { local tmp; tmp=$(mktemp); jq "$@" "$META" >"$tmp" && mv "$tmp" "$META"; }

# ---------------------------------------------------------------- Debian rootfs and image
if [ -n "${SCAN_BENCH_ROOTFS:-}" ]; then
  ROOTFS=$SCAN_BENCH_ROOTFS
  log "using the rootfs at $ROOTFS"
  meta '.debootstrap_secs = null'
else
  ROOTFS=$W/rootfs
  log "debootstrap --variant=minbase bookworm $ROOTFS $MIRROR"
  t=$(now)
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$W/debootstrap.log" 2>&1 || { tail -20 "$W/debootstrap.log" >&2; die "debootstrap failed"; }
  meta --arg s "$(since "$t")" '.debootstrap_secs = ($s | tonumber)'
fi
[ -s "$ROOTFS/var/lib/dpkg/status" ] || die "$ROOTFS has no /var/lib/dpkg/status"
dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' >"$W/dpkg-all.tsv"
awk -F'\t' '$1 ~ /^ii/ { print $2 "\t" $3 "\t" $4 }' "$W/dpkg-all.tsv" >"$W/dpkg-installed.tsv"
meta --arg all "$(dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W | wc -l)" --arg ii "$(wc -l <"$W/dpkg-installed.tsv")" \
  --arg du "$(du -sm "$ROOTFS" | cut -f1)" --arg pretty "$(. "$ROOTFS/etc/os-release"; echo "$PRETTY_NAME")" \
  '.dpkg_query_w = ($all | tonumber) | .dpkg_installed = ($ii | tonumber) | .rootfs_mib = ($du | tonumber) | .os = $pretty'

log "building localhost/bench/debian:bookworm (buildah from scratch + copy + commit, private vfs store)"
t=$(now)
ctr=$("${BUILDAH[@]}" from scratch)
"${BUILDAH[@]}" copy "$ctr" "$ROOTFS" / >/dev/null
"${BUILDAH[@]}" config --os linux --arch amd64 --cmd /bin/bash "$ctr"
"${BUILDAH[@]}" commit -q "$ctr" localhost/bench/debian:bookworm >/dev/null
"${BUILDAH[@]}" rm "$ctr" >/dev/null
meta --arg s "$(since "$t")" --arg v "$(buildah --version)" '.buildah_build_secs = ($s | tonumber) | .buildah = $v'

# ---------------------------------------------------------------- vulnerability database
DATA=$W/data
if [ -n "${SCAN_BENCH_OSV:-}" ]; then
  OSV=$SCAN_BENCH_OSV; OSV_WHAT="$SCAN_BENCH_OSV (given)"
elif log "fetching $OSV_URL" && curl -fsSL --connect-timeout 20 --max-time 1800 -o "$W/osv.zip" "$OSV_URL" 2>"$W/curl.err"; then
  OSV=$W/osv.zip; OSV_WHAT="$OSV_URL ($(du -m "$OSV" | cut -f1) MiB, fetched $(date -u +%F))"
else
  reason=$(tr '\n' ' ' <"$W/curl.err" | sed 's/ *$//')
  log "could not fetch it ($reason); using the test fixtures"
  OSV=$FIXTURES; OSV_WHAT="the test fixtures (crates/berth-scan/tests/fixtures/osv): $OSV_URL was unreachable: $reason"
fi
log "berth vulndb import $OSV"
t=$(now)
"$BERTH" vulndb import "$OSV" --data-dir "$DATA" >"$W/import.json" 2>"$W/import.err" || { cat "$W/import.err" >&2; die "vulndb import failed"; }
meta --arg s "$(since "$t")" --arg what "$OSV_WHAT" --slurpfile imp "$W/import.json" \
  '.vulndb_import_secs = ($s | tonumber) | .vulndb_source = $what | .vulndb_import = $imp[0]'
"$BERTH" vulndb status --data-dir "$DATA" >"$W/vulndb-status.json"
meta --slurpfile st "$W/vulndb-status.json" '.vulndb_status = $st[0]'

# ---------------------------------------------------------------- berth
export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export BERTH_ADMIN_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY BERTH_REGION=us-east-1
"$BERTH" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$W/berth.stdout" 2>"$W/berth.stderr" &
BERTH_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(awk '/^listening on / { print $3; exit }' "$W/berth.stdout" 2>/dev/null || true)
  [ -n "$ADDR" ] && break
  kill -0 "$BERTH_PID" 2>/dev/null || { cat "$W/berth.stderr" >&2; die "berth exited"; }
  sleep 0.1
done
[ -n "$ADDR" ] || die "berth printed no 'listening on' line"
log "berth $("$BERTH" --version | awk '{print $2}') (pid $BERTH_PID) listening on $ADDR"
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && git_rev="$git_rev, with uncommitted changes in crates/"
meta --arg v "$("$BERTH" --version)" --arg git "$git_rev" --arg built "$(date -u -r "$BERTH" '+%Y-%m-%d %H:%M UTC')" \
  '.berth = $v | .git = $git | .built = $built'

# ---------------------------------------------------------------- the measurements (Python)
cat >"$W/drive.py" <<'PY'
import base64, gzip, hashlib, io, json, os, statistics, subprocess, sys, tarfile, time
import boto3, botocore, requests

addr, pid, repeat, big_mib, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
buildah = json.loads(sys.argv[6])
url = f"http://{addr}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CDX = "application/vnd.cyclonedx+json"

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

ecr = boto3.client("ecr", endpoint_url=url, region_name=os.environ["BERTH_REGION"],
                   aws_access_key_id=os.environ["BERTH_ADMIN_ACCESS_KEY_ID"],
                   aws_secret_access_key=os.environ["BERTH_ADMIN_SECRET_ACCESS_KEY"],
                   config=botocore.config.Config(retries={"max_attempts": 0}))
auth = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
user, token = base64.b64decode(auth).decode().split(":", 1)
http = requests.Session()
http.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

def proc_kb(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

def cpu_secs():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def rchar():
    with open(f"/proc/{pid}/io") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("rchar:"))

def reset_hwm():
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def upload(repo, blob):
    r = http.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=60)
    r.raise_for_status()
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else url + loc
    r = http.put(loc, params={"digest": sha(blob)}, data=blob, timeout=600,
                 headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()

def push_layers(repo, tag, layers):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                      "nonce": os.urandom(8).hex()}).encode()
    for b in [cfg, *layers]:
        upload(repo, b)
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                    "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(x), "size": len(x)} for x in layers]}).encode()
    r = http.put(f"{url}/v2/{repo}/manifests/{tag}", data=m, headers={"Content-Type": OCI_MANIFEST}, timeout=60)
    r.raise_for_status()
    return sha(m)

def wait_scan(repo, digest, deadline_s=900):
    """Polls every 0.1 s from the end of the push; returns (seconds, response, RSS samples)."""
    t0 = time.monotonic()
    rss = []
    while True:
        try:
            out = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest}, maxResults=1000)
            status = out["imageScanStatus"]["status"]
        except ecr.exceptions.ScanNotFoundException:
            out, status = None, "NOT_FOUND"
        rss.append(proc_kb("VmRSS"))
        if status not in ("IN_PROGRESS", "NOT_FOUND"):
            return time.monotonic() - t0, out, rss
        if time.monotonic() - t0 > deadline_s:
            return time.monotonic() - t0, out, rss
        time.sleep(0.1)

def all_findings(repo, digest):
    found = []
    for page in ecr.get_paginator("describe_image_scan_findings").paginate(
            repositoryName=repo, imageId={"imageDigest": digest}):
        found += page["imageScanFindings"].get("findings", [])
    return found

def sbom_of(repo, digest):
    r = http.get(f"{url}/v2/{repo}/referrers/{digest}", timeout=60)
    r.raise_for_status()
    refs = [m for m in r.json().get("manifests", []) if m.get("artifactType") == CDX]
    if not refs:
        return None
    m = http.get(f"{url}/v2/{repo}/manifests/{refs[0]['digest']}", headers={"Accept": OCI_MANIFEST}, timeout=60)
    m.raise_for_status()
    layer = m.json()["layers"][0]
    b = http.get(f"{url}/v2/{repo}/blobs/{layer['digest']}", timeout=60)
    b.raise_for_status()
    return json.loads(b.content)

def measure(kind, repo, push):
    ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    t = time.monotonic()
    digest = push(repo)
    push_s = time.monotonic() - t
    push_end_wall = time.time()
    reset_hwm()
    rss_before = proc_kb("VmRSS")
    cpu0, read0 = cpu_secs(), rchar()
    secs, out, rss = wait_scan(repo, digest)
    hwm = proc_kb("VmHWM")
    cpu, read = cpu_secs() - cpu0, rchar() - read0
    status = out["imageScanStatus"] if out else {"status": "NOT_FOUND"}
    rec = {"image": kind, "repo": repo, "digest": digest, "push_secs": round(push_s, 2), "scan_secs": round(secs, 2),
           "status": status.get("status"), "description": status.get("description"),
           "berth_cpu_secs": round(cpu, 2), "berth_read_mb": round(read / 1e6, 1), "rss_at_push_end_kb": rss_before, "rss_max_sampled_kb": max(rss), "vmhwm_kb": hwm}
    done = (out or {}).get("imageScanFindings", {}).get("imageScanCompletedAt")
    rec["completed_after_push_secs"] = round(done.timestamp() - push_end_wall, 3) if done else None
    if out and status.get("status") == "COMPLETE":
        fs = all_findings(repo, digest)
        rec["findings"] = len(fs)
        rec["severity_counts"] = out["imageScanFindings"].get("findingSeverityCounts", {})
        rec["findings_list"] = sorted(
            (f["name"], {a["key"]: a.get("value") for a in f.get("attributes", [])}.get("package_name"), f["severity"])
            for f in fs)
        sbom = sbom_of(repo, digest)
        comps = (sbom or {}).get("components", [])
        rec["sbom_components"] = len(comps)
        rec["sbom_packages"] = sum(1 for c in comps if c.get("type") != "operating-system")
        rec["sbom_os"] = [f"{c.get('name')} {c.get('version', '')}".strip() for c in comps if c.get("type") == "operating-system"]
        rec["sbom_deb"] = sorted((c["name"], c.get("version")) for c in comps if (c.get("purl") or "").startswith("pkg:deb/"))
        eco = {}
        for c in comps:
            props = {p["name"]: p["value"] for p in c.get("properties", [])}
            if "berth:ecosystem" in props:
                eco[props["berth:ecosystem"]] = eco.get(props["berth:ecosystem"], 0) + 1
        rec["sbom_ecosystems"] = eco
    log(f"  {kind} {repo}: push {push_s:.2f} s, scan {secs:.2f} s, {rec['status']}, "
        f"{rec.get('sbom_packages', '-')} packages, {rec.get('findings', '-')} findings, berth CPU {cpu:.2f} s, "
        f"read {read / 1e6:.0f} MB, RSS {rss_before / 1024:.1f} -> VmHWM {hwm / 1024:.1f} MiB")
    return rec

# The random image: one big layer of random bytes plus the small Debian layer of the e2e tests.
DPKG_STATUS = "".join(
    f"Package: {p}\nStatus: install ok installed\nArchitecture: amd64\n{src}Version: {v}\nDescription: x\n\n"
    for p, src, v in [("openssl", "", "3.0.11-1~deb12u1"), ("libssl3", "Source: openssl\n", "3.0.11-1~deb12u1"),
                      ("zlib1g", "Source: zlib\n", "1:1.2.13.dfsg-1"), ("libc6", "Source: glibc\n", "2.36-9+deb12u3"),
                      ("bash", "Source: bash (5.2.15-2)\n", "5.2.15-2+b2")])
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'

def tar_gz(files, level=6):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=level, mtime=0)

log(f"building the random image ({big_mib} MiB of random bytes, gzip -1)")
big = tar_gz({"opt/bench/random.bin": os.urandom(big_mib << 20)}, level=1)
small = tar_gz({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": DPKG_STATUS})
layers = [big, small]

def push_random(repo):
    return push_layers(repo, "v1", layers)

def push_debian(repo):
    dfile = os.path.join(work, f"digest-{repo.replace('/', '_')}")
    p = subprocess.run([*buildah, "push", "--tls-verify=false", "--creds", f"AWS:{token}", "--digestfile", dfile,
                        "localhost/bench/debian:bookworm", f"docker://{addr}/{repo}:bookworm"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"buildah push failed: {p.stderr}")
    return open(dfile).read().strip()

result = {"idle_rss_kb": proc_kb("VmRSS"), "big_layer_bytes": len(big), "runs": []}
for rep in range(1, repeat + 1):  # interleaved: random, debian, random, debian, ...
    result["runs"].append(measure("random", f"bench/random-r{rep}", push_random))
    result["runs"].append(measure("debian", f"bench/debian-r{rep}", push_debian))
result["rss_after_kb"] = proc_kb("VmRSS")
json.dump(result, open(os.path.join(work, "drive.json"), "w"), indent=1)
PY
log "measuring: $REPEAT scans of each image"
python3 "$W/drive.py" "$ADDR" "$BERTH_PID" "$REPEAT" "$BIG_MIB" "$W" "$(printf '%s\n' "${BUILDAH[@]}" | jq -R . | jq -sc .)"
grep -h -E 'WARN|ERROR' "$W/berth.stdout" "$W/berth.stderr" >"$W/berth-warnings.txt" || true
[ -s "$W/berth-warnings.txt" ] && { log "berth logged warnings/errors:"; head -20 "$W/berth-warnings.txt" >&2; }

# ---------------------------------------------------------------- report
python3 - "$W" "$COMMAND" "$ROOTFS" >"$W/section.md" <<'PY'
import json, os, platform, statistics, subprocess, sys, time
work, command, rootfs = sys.argv[1], sys.argv[2].strip(), sys.argv[3]
meta = json.load(open(os.path.join(work, "meta.json")))
d = json.load(open(os.path.join(work, "drive.json")))
runs = d["runs"]
mib = lambda kb: f"{kb / 1024:.1f}"
med = lambda xs: f"{statistics.median(x for x in xs if x is not None):.2f}" if any(x is not None for x in xs) else "–"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
imp = meta.get("vulndb_import", {})
st = meta.get("vulndb_status", {})
out = []
p = out.append
p("## Image scanning\n")
p(f"Generated by `bench/scan-bench.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
  f"{meta['berth']} (git {meta['git']}; binary built {meta['built']}), kernel {platform.release()}.\n")
p(f"Machine: {os.cpu_count()} cores ({cpu}), {mem / 1048576:.0f} GiB memory, shared with other jobs (noisy). "
  "berth runs with its defaults (2 scan workers), scan on push, one scan at a time; the client polls "
  "describe-image-scan-findings every 0.1 s, so the first time column has ~0.1 s resolution; the second subtracts the "
  "client's clock at the end of the push from the scan's imageScanCompletedAt (same machine, ms resolution). The end of "
  "a push is the manifest PUT's response (random) or `buildah push` exiting (debian; berth already has the manifest then).\n")
p(f"Reproduce: `{command}` (as root; add `SCAN_BENCH_OUT=bench/RESULTS.md` to append this section).\n")
p(f"Vulnerability database: {meta['vulndb_source']}; `berth vulndb import` took {meta['vulndb_import_secs']:.1f} s "
  f"for {imp.get('advisories', '?')} advisories (skipped: {imp.get('skipped', '?')}).\n")
desc = {"random": f"random: {d['big_layer_bytes'] / 1048576:.0f} MiB gzip layer of random bytes (incompressible: stored deflate blocks) + small dpkg layer (5 packages)",
        "debian": f"debian: {meta['os']}, debootstrap --variant=minbase, {meta['rootfs_mib']} MiB rootfs, buildah, 1 layer"}
p("| image | scans | push end → COMPLETE seen, median (s) | all runs (s) | push end → imageScanCompletedAt, median (s) | berth CPU during scan (s, median) | berth read during scan (MB, median) | push (s, median) | status | SBOM packages | findings | severities | peak RSS during scan (MiB, max of runs) | rise over RSS at push end (MiB, max of runs) |")
p("|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|")
for kind in ("random", "debian"):
    rs = [r for r in runs if r["image"] == kind]
    ok = [r for r in rs if r["status"] == "COMPLETE"]
    statuses = ", ".join(sorted({r["status"] for r in rs}))
    last = ok[-1] if ok else {}
    sev = ", ".join(f"{k} {v}" for k, v in sorted(last.get("severity_counts", {}).items())) or "–"
    p(f"| {desc[kind]} | {len(rs)} | {statistics.median(r['scan_secs'] for r in rs):.2f} | "
      f"{', '.join('%.2f' % r['scan_secs'] for r in rs)} | {med([r['completed_after_push_secs'] for r in rs])} | "
      f"{med([r['berth_cpu_secs'] for r in rs])} | {statistics.median(r['berth_read_mb'] for r in rs):.0f} | "
      f"{statistics.median(r['push_secs'] for r in rs):.2f} | {statuses} | "
      f"{last.get('sbom_packages', '–')} | {last.get('findings', '–')} | {sev} | "
      f"{mib(max(r['vmhwm_kb'] for r in rs))} | {mib(max(r['vmhwm_kb'] - r['rss_at_push_end_kb'] for r in rs))} |")
p("")
p(f"berth RSS: {mib(d['idle_rss_kb'])} MiB idle before the first push, {mib(d['rss_after_kb'])} MiB after all scans; "
  "peak = VmHWM reset (clear_refs 5) at the end of each push and read when the scan is COMPLETE; largest rise over "
  f"the RSS at push end: {mib(max(r['vmhwm_kb'] - r['rss_at_push_end_kb'] for r in runs))} MiB. berth CPU = utime + stime "
  "of the server process and read = its rchar (/proc/<pid>/io), from the end of the push to COMPLETE.\n")
p("Per run: " + "; ".join(f"{r['repo']} {r['status']} push {r['push_secs']:.2f} s, scan {r['scan_secs']:.2f} s "
  f"(completedAt {r['completed_after_push_secs']} s), CPU {r['berth_cpu_secs']:.2f} s, read {r['berth_read_mb']:.0f} MB, "
  f"RSS {mib(r['rss_at_push_end_kb'])} → {mib(r['vmhwm_kb'])} MiB" for r in runs) + ".\n")
deb = [r for r in runs if r["image"] == "debian" and r["status"] == "COMPLETE"]
if deb:
    r = deb[-1]
    installed = [l.rstrip("\n").split("\t") for l in open(os.path.join(work, "dpkg-installed.tsv"))]
    want = {(n, v) for n, v, _ in installed}
    got = set(map(tuple, r["sbom_deb"]))
    missing = sorted(want - got)
    extra = sorted(got - want)
    p(f"Debian inventory: `dpkg-query --admindir=<rootfs>/var/lib/dpkg -W | wc -l` = {meta['dpkg_query_w']} "
      f"({meta['dpkg_installed']} installed); the SBOM lists {len(r['sbom_deb'])} deb packages "
      f"(by ecosystem: {', '.join(f'{k} {v}' for k, v in sorted(r['sbom_ecosystems'].items()))}; OS component: {', '.join(r['sbom_os']) or 'none'}). "
      f"Missing from the SBOM: {', '.join(f'{n} {v}' for n, v in missing) or 'none'}; "
      f"in the SBOM but not installed: {', '.join(f'{n} {v}' for n, v in extra) or 'none'}.\n")
    if r.get("findings_list"):
        fixtures = "fixtures" in meta["vulndb_source"]
        p(("Debian findings (against the hand-written fixture advisories, so they say nothing about bookworm's real "
           "exposure): " if fixtures else "Debian findings: ") + "; ".join(f"{n} ({pkg}, {s})" for n, pkg, s in r["findings_list"][:40])
          + (" …" if len(r["findings_list"]) > 40 else "") + ".\n")
failed = [r for r in runs if r["status"] != "COMPLETE"]
for r in failed:
    p(f"Scan of {r['repo']} ended {r['status']}: {r.get('description')}\n")
print("\n".join(out))
PY
cat "$W/section.md"
if [ -n "${SCAN_BENCH_OUT:-}" ]; then
  { echo; cat "$W/section.md"; } >>"$SCAN_BENCH_OUT"
  log "appended the section to $SCAN_BENCH_OUT"
fi
