"""What the bench/*_report.py scripts share: raw rows (one JSON object a line, each with its
`key` and `target`), their medians, and how a figure is printed.

    from report_lib import load, values, median, fmt, ratio, fmt_ratio
"""
import json
import statistics


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def values(rows, key, target, field):
    """Every row's `field` (a dotted path) for this key and target."""
    out = []
    for r in rows:
        if r["key"] == key and r["target"] == target:
            v = r
            for part in field.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is not None:
                out.append(v)
    return out


def median(rows, key, target, field):
    v = values(rows, key, target, field)
    return statistics.median(v) if v else None


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"
