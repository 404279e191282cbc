"""The "Cost of each feature" section of bench/RESULTS.md from bench/feature_cost.sh's raw figures.

    python3 bench/feature_cost_report.py results.jsonl '{"date": ..., "features": ...}'
"""
import json
import sys

from report_lib import load, median, fmt, ratio, fmt_ratio

WORKLOADS = [
    ("push", "mb_per_s", "push {blob} MiB blob (MB/s)"),
    ("pull", "mb_per_s", "pull it (MB/s)"),
    ("manifest", "req_per_s", "manifest GET by tag @{conns} (req/s)"),
    ("images", "images_per_s", "push {images} small images, 16 workers (images/s)"),
]
WHAT = {
    "encryption": "blobs sealed by berth (default) vs `--aes256-by-storage`",
    "audit": "`--audit-data-events true` vs off (default)",
    "replication": "a same-registry replication rule vs none",
    "scanning": "basic scan on push vs none",
    "logging": "`BERTH_LOG=info` (default) vs `warn`",
}


def main():
    rows, meta = load(sys.argv[1]), json.loads(sys.argv[2])
    print("<!-- feature-cost:start -->")
    print("## Cost of each feature (issue 22): with vs without, side by side\n")
    print(f"`{meta['command'].strip()}` on {meta['date']} (load average at the start: {meta['load']}). For each")
    print("feature two fresh berth processes, one without it and one with it (otherwise as shipped, logs at")
    print("`warn`), the same workloads on both in alternating order; medians of")
    print(f"{meta['repeat']} rounds, manifest GETs for {meta['load_s']} s each. A ratio below 1 is what the feature costs.\n")
    head = "| feature | " + " | ".join(label.format(**meta) for _, _, label in WORKLOADS) + " |"
    print(head)
    print("|---|" + "---:|" * len(WORKLOADS))
    for feature in meta["features"].split():
        cells = []
        for key, field, _ in WORKLOADS:
            without = median(rows, f"{feature}:{key}", "without", field)
            with_ = median(rows, f"{feature}:{key}", "with", field)
            cells.append(f"{fmt(with_)} / {fmt(without)} = **{fmt_ratio(ratio(with_, without))}**")
        print(f"| {feature}: {WHAT.get(feature, feature)} | " + " | ".join(cells) + " |")
    print("\nCells: with / without = ratio. Rate limiting: bench/public.sh (its limiters apply to public")
    print("repositories; its table has the on/off rows).")
    print("<!-- feature-cost:end -->")


if __name__ == "__main__":
    main()
