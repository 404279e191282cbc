#!/usr/bin/env python3
"""Extracts the request constraints of an AWS JSON service from botocore's model.

For every operation's input shape, and every shape reachable from one, it keeps what a server
checks before it acts: the structure members and which are required, list/map element shapes,
string min/max length, pattern and enum, number min/max range. Documentation and output-only
shapes are dropped. The result is the compact JSON file berth's request validator
(crates/berth-ecr/src/validate.rs) reads.

    python3 scripts/gen-ecr-constraints.py            # ecr -> crates/berth-ecr/src/ecr-constraints.json
    python3 scripts/gen-ecr-constraints.py SERVICE OUT

Re-run it after upgrading botocore; review the diff like any other change.
"""
import gzip
import json
import os
import sys

import botocore

KEEP = {
    "structure": ("required",),
    "list": ("min", "max"),
    "map": ("min", "max"),
    "string": ("min", "max", "pattern", "enum"),
    "integer": ("min", "max"),
    "long": ("min", "max"),
    "float": ("min", "max"),
    "double": ("min", "max"),
    "blob": (),
    "boolean": (),
    "timestamp": (),
}


def load_model(service):
    root = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    version = sorted(os.listdir(root))[-1]
    base = os.path.join(root, version, "service-2.json")
    if os.path.exists(base):
        with open(base) as f:
            return json.load(f), version
    with gzip.open(base + ".gz") as f:
        return json.load(f), version


def compact(shape):
    kind = shape["type"]
    out = {"type": kind}
    for key in KEEP[kind]:
        if key in shape:
            out[key] = shape[key]
    if kind == "structure":
        out["members"] = {name: m["shape"] for name, m in shape["members"].items()}
    elif kind == "list":
        out["member"] = shape["member"]["shape"]
    elif kind == "map":
        out["key"] = shape["key"]["shape"]
        out["value"] = shape["value"]["shape"]
    return out


def main():
    service = sys.argv[1] if len(sys.argv) > 1 else "ecr"
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "crates", "berth-ecr", "src", f"{service}-constraints.json")
    out_path = sys.argv[2] if len(sys.argv) > 2 else default_out
    model, version = load_model(service)
    shapes = model["shapes"]
    operations = {name: op["input"]["shape"] for name, op in sorted(model["operations"].items()) if "input" in op}
    kept, todo = {}, list(operations.values())
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = compact(shapes[name])
        shape = kept[name]
        if shape["type"] == "structure":
            todo.extend(shape["members"].values())
        elif shape["type"] == "list":
            todo.append(shape["member"])
        elif shape["type"] == "map":
            todo.extend([shape["key"], shape["value"]])
    doc = {
        "service": service,
        "apiVersion": version,
        "botocore": botocore.__version__,
        "operations": operations,
        "shapes": dict(sorted(kept.items())),
    }
    # One operation or shape a line: compact, and a botocore upgrade diffs line by line.
    line = lambda k, v: f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}"
    head = ",\n".join(line(k, doc[k]) for k in ("service", "apiVersion", "botocore"))
    ops = ",\n".join(line(k, v) for k, v in doc["operations"].items())
    body = ",\n".join(line(k, v) for k, v in doc["shapes"].items())
    with open(out_path, "w") as f:
        f.write(f"{{{head},\n\"operations\":{{\n{ops}\n}},\n\"shapes\":{{\n{body}\n}}}}\n")
    print(f"{out_path}: {len(operations)} operations, {len(kept)} shapes")


if __name__ == "__main__":
    main()
