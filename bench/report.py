#!/usr/bin/env python3
"""Turns bench/compare.sh's raw figures (one JSON object per line) into bench/RESULTS.md."""

import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


RAW = load(sys.argv[1])
META = json.loads(sys.argv[2])
STAGES = [int(s) for s in META["stages"].split()]
TARGETS = META["targets"].split()


def dig(obj, path):
    for p in path.split("."):
        if not isinstance(obj, dict) or obj.get(p) is None:
            return None
        obj = obj[p]
    return obj


def values(key, target, path, **match):
    out = []
    for r in RAW:
        if r["key"] == key and r["target"] == target and all(r.get(k) == v for k, v in match.items()):
            v = dig(r, path)
            if v is not None:
                out.append(v)
    return out


def med(key, target, path, **match):
    v = values(key, target, path, **match)
    return statistics.median(v) if v else None


def peak(key, target, path, **match):
    v = values(key, target, path, **match)
    return max(v) if v else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit


def ratio(b, d):
    if b is None or d is None or d == 0:
        return "–"
    return f"{b / d:.2f}×"


ROWS = []  # (figure, berth, distribution, ratio, note)
CHECKS = []  # (target text, met: bool|None, detail)


def row(figure, b, d, unit="", note="", show_ratio=True):
    ROWS.append((figure, fmt(b, unit), fmt(d, unit), ratio(b, d) if show_ratio else "–", note))


def check(text, met, detail):
    CHECKS.append((text, met, detail))


def pct(a, b):
    return f"{a / b * 100:.0f}%"


limit = {k: med(f"limit_{k}", "machine", "mb_per_s") for k in ("sha256_openssl", "sha256_python", "dd_fsync", "cat", "loopback")}
push_limit = min(x for x in (limit["sha256_openssl"], limit["dd_fsync"]) if x is not None) if limit["dd_fsync"] else None

blob = f"{int(META['blob']) // 1024} GiB" if int(META["blob"]) >= 1024 else f"{META['blob']} MiB"
rep = f"median of {META['repeat']}" if int(META["repeat"]) > 1 else "1 run"
B, D = "berth", "distribution"

# --- blob transfer
for key, label in (("push_mono", f"push {blob} blob, monolithic (MB/s)"), ("push_chunk", f"push {blob} blob, {META['chunk']} MiB chunks (MB/s)")):
    b, d = med(key, B, "mb_per_s"), med(key, D, "mb_per_s")
    row(label, b, d, note=f"{rep}; limit min(sha256, write+fsync) = {fmt(push_limit)} MB/s")
    if b is not None:
        ok1 = d is None or b >= 1.5 * d
        ok2 = push_limit is None or b >= 0.7 * push_limit
        detail = []
        if d is not None:
            detail.append(f"{b / d:.2f}× distribution (target ≥ 1.50×)")
        if push_limit:
            detail.append(f"{pct(b, push_limit)} of the {fmt(push_limit)} MB/s limit (target ≥ 70%)")
        check(f"{label.split(' (')[0]}: ≥ 1.5× distribution and ≥ 70% of the limit", ok1 and ok2, "; ".join(detail))
b, d = med("pull", B, "mb_per_s"), med("pull", D, "mb_per_s")
loop = limit["loopback"]
row(f"pull {blob} blob, raw GET (MB/s)", b, d,
    note=f"{rep}; loopback limit (sendfile → the same client) = {fmt(loop)} MB/s" + (f", berth at {pct(b, loop)} of it" if b and loop else "")
    + f"; cached read (cat) = {fmt(limit['cat'])} MB/s")
if b is not None and d is not None:
    check("raw pull ≥ distribution", b >= d, f"{b / d:.2f}× distribution")
if b is not None:
    detail = [f"{b / d:.2f}× distribution (target ≥ 2×)"] if d else []
    if loop:
        detail.append(f"{pct(b, loop)} of the {fmt(loop)} MB/s loopback limit (target ≥ 70%)")
    check("raw pull (issue 22): ≥ 2× distribution and ≥ 70% of the loopback limit",
          (d is None or b >= 2 * d) and (loop is None or b >= 0.7 * loop), "; ".join(detail))
if values("skopeo_push", B, "secs") or values("skopeo_push", D, "secs"):
    for key, verb in (("skopeo_push", "push"), ("skopeo_pull", "pull")):
        row(f"skopeo {verb}, {META['skopeo_mib']} MiB-layer image (s, lower is better)", med(key, B, "secs"), med(key, D, "secs"), note=rep)
        row(f"skopeo {verb}, {META['skopeo_mib']} MiB-layer image (MB/s)", med(key, B, "mb_per_s"), med(key, D, "mb_per_s"), note=rep)

# --- manifest GET
conns = sorted({int(r["connections"]) for r in RAW if r["key"].startswith("manifest_c")})
for c in conns:
    k = f"manifest_c{c}"
    row(f"manifest GET by tag @{c} conn (req/s)", med(k, B, "req_per_s"), med(k, D, "req_per_s"), note=f"{META['load']} s")
    row(f"manifest GET @{c} conn p50 (ms, lower is better)", med(k, B, "latency.p50_ms"), med(k, D, "latency.p50_ms"))
    row(f"manifest GET @{c} conn p99 (ms, lower is better)", med(k, B, "latency.p99_ms"), med(k, D, "latency.p99_ms"))
    errs = [(t, sum(values(k, t, "errors"))) for t in TARGETS]
    if any(e for _, e in errs):
        ROWS.append((f"manifest GET @{c} conn errors", *(str(e) for _, e in errs), "–", ""))
if conns:
    c = conns[-1]
    b, d = med(f"manifest_c{c}", B, "req_per_s"), med(f"manifest_c{c}", D, "req_per_s")
    p99 = med(f"manifest_c{c}", B, "latency.p99_ms")
    if b is not None:
        detail = [f"{b / d:.2f}× distribution (target ≥ 3×)"] if d else []
        detail.append(f"p99 {fmt(p99)} ms (target < 5 ms)")
        check(f"manifest GET @{c}: ≥ 3× distribution's req/s, p99 < 5 ms", (d is None or b >= 3 * d) and p99 < 5, "; ".join(detail))

# --- small images
row(f"{META['images']} small images, {META['workers']} workers (images/s)", med("push_images", B, "images_per_s"), med("push_images", D, "images_per_s"), note=rep)
row("  per-image p99 (ms, lower is better)", med("push_images", B, "per_image.p99_ms"), med("push_images", D, "per_image.p99_ms"))

# --- lists
list_ok, list_detail = True, []
for s in STAGES:
    for key, what in (("tags_list", "tags/list"), ("list_images", "ListImages")):
        b, d = med(key, B, "first_page.p50_ms", stage=s), med(key, D, "first_page.p50_ms", stage=s)
        if b is None and d is None:
            continue
        pages_b, pages_d = med(key, B, "walk.pages", stage=s), med(key, D, "walk.pages", stage=s)
        n_b = med(key, B, "first_page_entries", stage=s)
        n_d = med(key, D, "first_page_entries", stage=s)
        note = f"entries on page 1: {fmt(n_b)} / {fmt(n_d)}; pages: {fmt(pages_b)} / {fmt(pages_d)}"
        row(f"{what} page 1 (n=1000) p50 @{s:,} tags (ms, lower is better)", b, d, note=note, show_ratio=key == "tags_list")
        wb, wd = med(key, B, "walk.page.p99_ms", stage=s), med(key, D, "walk.page.p99_ms", stage=s)
        row(f"{what} every page p99 @{s:,} tags (ms, lower is better)", wb, wd, show_ratio=key == "tags_list")
        if b is not None:
            worst = max(x for x in (b, wb, med(key, B, "first_page.p99_ms", stage=s)) if x is not None)
            list_detail.append(f"{what} @{s:,}: worst {fmt(worst)} ms")
            list_ok = list_ok and worst < 10
b, d = med("catalog", B, "first_page.p50_ms"), med("catalog", D, "first_page.p50_ms")
pb, pd = med("catalog", B, "walk.pages"), med("catalog", D, "walk.pages")
row(f"_catalog page 1 (n=1000) p50 @{int(META['repos']):,} repos (ms, lower is better)", b, d, note=f"pages: {fmt(pb)} / {fmt(pd)}")
wb = med("catalog", B, "walk.page.p99_ms")
row(f"_catalog every page p99 @{int(META['repos']):,} repos (ms, lower is better)", wb, med("catalog", D, "walk.page.p99_ms"))
if b is not None:
    worst = max(x for x in (b, wb, med("catalog", B, "first_page.p99_ms")) if x is not None)
    list_detail.append(f"_catalog: worst {fmt(worst)} ms")
    list_ok = list_ok and worst < 10
if list_detail:
    # Flatness compares full pages only: stages with at least one page (1000 tags) of tags.
    full = [s for s in STAGES if s >= 1000] or STAGES[-1:]
    first = med("tags_list", B, "first_page.p50_ms", stage=full[0])
    last = med("tags_list", B, "first_page.p50_ms", stage=full[-1])
    flat = first is not None and last is not None and last <= max(2 * first, first + 2)
    list_detail.append(f"tags/list page-1 p50 {fmt(first)} ms @{full[0]:,} → {fmt(last)} ms @{full[-1]:,}" + ("" if flat else " (not flat)"))
    check("list pages < 10 ms and flat as the repository grows (p50 and p99 of page 1, p99 of every page)", list_ok and flat, "; ".join(list_detail))
row("seeding: tag PUTs (tags/s, 32 workers)", med("seed_tags", B, "tags_per_s"), med("seed_tags", D, "tags_per_s"), note="median over stages")
row("seeding: repositories (repos/s: 2 mounts + manifest PUT, 32 workers)", med("seed_repos", B, "repos_per_s"), med("seed_repos", D, "repos_per_s"))

# --- memory
kb = lambda v: None if v is None else v / 1024  # noqa: E731
b, d = kb(med("rss_idle", B, "rss_kb")), kb(med("rss_idle", D, "rss_kb"))
row("RSS idle, fresh start (MB)", b, d, note="VmRSS, MiB")
if b is not None:
    check("RSS idle < 30 MB", b < 30, f"{fmt(b)} MiB")
b, d = kb(peak("push_mono", B, "rss.rss_peak_kb")), kb(peak("push_mono", D, "rss.rss_peak_kb"))
row(f"RSS peak during the {blob} monolithic push (MB)", b, d, note="max of VmRSS sampled every 10 ms and VmHWM (reset first)")
if b is not None:
    check(f"RSS < 64 MB during a {blob} push", b < 64, f"{fmt(b)} MiB")
row(f"RSS peak during the {blob} chunked push (MB)", kb(peak("push_chunk", B, "rss.rss_peak_kb")), kb(peak("push_chunk", D, "rss.rss_peak_kb")))
row("RSS idle after all workloads (MB)", kb(med("rss_after", B, "rss_kb")), kb(med("rss_after", D, "rss_kb")))
row("data directory after the run (MB)", kb(med("disk_used", B, "kb")), kb(med("disk_used", D, "kb")))

# --- auth
ab, ad = med("manifest_auth", B, "req_per_s"), med("manifest_auth", D, "req_per_s")
nd = med("manifest_anon", D, "req_per_s")
probe = med("auth_anon_probe", B, "status")
row("manifest GET @16, authenticated (req/s)", ab, ad, note="berth: `AWS:<token>` Basic; distribution: htpasswd bcrypt")
ROWS.append(
    (
        "manifest GET @16, anonymous (req/s)",
        f"n/a (HTTP {probe:.0f}: berth has no anonymous /v2/)" if probe is not None else "–",
        fmt(nd),
        "–",
        "",
    )
)
ROWS.append(("authenticated / anonymous", "n/a", ratio(ad, nd), "–", "target ≥ 0.9×"))
if ab is not None:
    detail = "berth cannot serve /v2/ anonymously, so the ratio has no denominator"
    if nd:
        detail += f"; berth authenticated = {ab / nd:.2f}× distribution anonymous"
    check("authenticated ≥ 0.9× anonymous", None, detail)

# --- machine limits
LIMITS = [
    ("sha256, one core, `openssl speed -evp sha256` (16 KiB blocks)", limit["sha256_openssl"]),
    (f"sha256, Python hashlib over the {blob} blob", limit["sha256_python"]),
    (f"write + fsync of the {blob} blob (`dd bs=4M conv=fsync`)", limit["dd_fsync"]),
    (f"cached read of the {blob} blob (`cat > /dev/null`)", limit["cat"]),
    (f"loopback download of the {blob} blob: sendfile server → berth-bench pull-blob (`bench/loopback.py`, median of 3)", limit["loopback"]),
]

out = []
out.append("# berth vs distribution: benchmark results\n")
out.append(f"Generated by `bench/compare.sh` on {META['date']}. Raw figures: the `.jsonl` file of the same name next to this one.\n")
out.append("| | |\n|---|---|")
out.append(f"| machine | {META['nproc']} cores ({META['cpu']}), {META['mem']} memory, kernel {META['kernel']} |")
out.append(f"| disk | {META['disk']} |")
out.append(f"| berth | {META['berth']}; `serve {META.get('berth_args', '')}`"
           + (" (blobs stored in clear, as distribution stores them)" if "--aes256-by-storage" in META.get("berth_args", "") else " (blobs sealed at rest)") + " |")
out.append(f"| distribution | {META['distribution']} (filesystem storage, deletes enabled, inmemory blob descriptor cache) |")
out.append(f"| clients | berth-bench (reqwest + hdrhistogram, {META['threads']} client thread), {META['skopeo']}, {META['openssl']}, {META['rustc']} |")
out.append(f"| scale | {META['scale']}: blob {META['blob']} MiB, chunks {META['chunk']} MiB, tag stages {META['stages']}, {META['repos']} repos, "
           f"{META['load']} s per load point, {META['images']} images × {META['workers']} workers, skopeo layer {META['skopeo_mib']} MiB, "
           f"{META['repeat']} repetition(s), interleaved |")
out.append(f"| logging | {'warnings only (BENCH_QUIET_LOGS=1)' if META['quiet'] == '1' else 'as shipped: both log one line per request (berth: info; distribution: info + access log) to a file'} |")
out.append(f"| command | `{META['command'].strip()}` |")
out.append("")
out.append("Both servers and the load generator share the machine's cores over 127.0.0.1; MB/s is 10^6 bytes per second, "
           "MB of memory is MiB. Ratio is berth ÷ distribution (for latencies and seconds, lower is better).\n")
out.append("## Machine limits\n")
out.append("| limit | MB/s |\n|---|---:|")
for name, v in LIMITS:
    out.append(f"| {name} | {fmt(v)} |")
out.append("")
out.append("## Figures\n")
out.append("| figure | berth | distribution | berth/distribution | notes |\n|---|---:|---:|---:|---|")
for r in ROWS:
    out.append("| " + " | ".join(r) + " |")
out.append("")
out.append("## Targets (issue #5)\n")
out.append("| target | met | berth |\n|---|---|---|")
for text, met, detail in CHECKS:
    out.append(f"| {text} | {'yes' if met else ('n/a' if met is None else '**no**')} | {detail} |")
out.append("")
print("\n".join(out))
