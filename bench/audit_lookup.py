#!/usr/bin/env python3
"""LookupEvents among many audit records (issue 19's goal: one event among 1,000,000 by EventName
and a time range in < 50 ms).

    BERTH_BIN=.../berth python3 bench/audit_lookup.py [RECORDS] [LOOKUPS]

Starts berth once to create its database, stops it, fills the audit trail with RECORDS
(default 1,000,000) CloudTrail-shaped records straight into SQLite (the chain's hashes are
not computed: LookupEvents does not read them), spread over 30 days across 20 event names,
8 users and 2,000 repositories, plus a few rare events to find. Then starts berth on it and
times LookupEvents through boto3 (SigV4, HTTP, the adapter, the query: what a user waits for).
Prints one JSON line per query kind (median, p95, max in ms) and a summary line.
AUDIT_LOOKUP_DATA=DIR keeps the filled data directory there and reuses it on the next run.
"""
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from conftest import ACCOUNT, REGION, Berth  # noqa: E402

import boto3  # noqa: E402

NAMES = ["BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability", "UploadLayerPart",
         "InitiateLayerUpload", "CompleteLayerUpload", "PutImage", "DescribeImages", "DescribeRepositories",
         "ListImages", "GetAuthorizationToken", "CreateRepository", "BatchDeleteImage", "GetLifecyclePolicy",
         "PutLifecyclePolicy", "GetRepositoryPolicy", "SetRepositoryPolicy", "DescribeImageScanFindings",
         "ListTagsForResource", "TagResource"]
WEIGHTS = [30, 25, 10, 8, 5, 5, 5, 3, 2, 2, 1, 1, 1, 0.5, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1]
READ_ONLY = {"BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability", "DescribeImages",
             "DescribeRepositories", "ListImages", "GetAuthorizationToken", "GetLifecyclePolicy",
             "GetRepositoryPolicy", "DescribeImageScanFindings", "ListTagsForResource"}
RARE = "DeleteRepository"  # the needle: 10 records among the haystack


def record(event_id, name, when_ms, user, repo):
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    t = datetime.fromtimestamp(when_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA" + user.upper(), "arn": arn, "accountId": ACCOUNT,
                         "accessKeyId": "AKIA" + user.upper().ljust(16, "X")[:16], "userName": user},
        "eventTime": t, "eventSource": "ecr.amazonaws.com", "eventName": name, "awsRegion": REGION,
        "sourceIPAddress": "127.0.0.1", "userAgent": "bench",
        "requestParameters": {"repositoryName": repo}, "responseElements": None,
        "requestID": str(uuid.uuid4()), "eventID": event_id, "readOnly": name in READ_ONLY,
        "resources": [{"accountId": ACCOUNT, "ARN": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"}],
        "eventType": "AwsApiCall", "managementEvent": name not in READ_ONLY, "recipientAccountId": ACCOUNT,
    }, separators=(",", ":"))


def fill(db_path, count, now_ms):
    rng = random.Random(7)
    users = [f"user{i}" for i in range(8)]
    span = 30 * 86_400_000
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA synchronous=OFF")
    (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()
    seq = last
    batch, res = [], []
    rare_at = set(rng.sample(range(count), 10))
    for i in range(count):
        seq += 1
        when = now_ms - span + (i * span) // count
        name = RARE if i in rare_at else rng.choices(NAMES, WEIGHTS)[0]
        user = rng.choice(users)
        repo = f"team{rng.randrange(40)}/app{rng.randrange(50)}"
        eid = str(uuid.uuid4())
        batch.append((seq, eid, ACCOUNT, when, name, "ecr.amazonaws.com", user, "AKIA" + user.upper().ljust(16, "X")[:16],
                      1 if name in READ_ONLY else 0, record(eid, name, when, user, repo), "0" * 64, "0" * 64))
        res.append((seq, ACCOUNT, repo, "AWS::ECR::Repository", when))
        if len(batch) == 20_000:
            flush(db, batch, res)
            batch, res = [], []
    flush(db, batch, res)
    db.close()


def flush(db, batch, res):
    db.executemany("INSERT INTO audit_events (seq, event_id, account_id, event_time, event_name, event_source, username, "
                   "access_key_id, read_only, record, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    db.executemany("INSERT INTO audit_resources (seq, account_id, resource_name, resource_type, event_time) "
                   "VALUES (?,?,?,?,?)", res)
    db.commit()


def timed(fn, n):
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return out, {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 2),
                 "max_ms": round(ms[-1], 2)}


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    lookups = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    data = os.environ.get("AUDIT_LOOKUP_DATA") or os.path.join(tempfile.mkdtemp(prefix="audit-lookup-"), "data")
    marker = os.path.join(data, f"filled-{count}")
    if not os.path.exists(marker):
        Berth(data).start().stop()
        t = time.perf_counter()
        fill(os.path.join(data, "berth.db"), count, int(time.time() * 1000))
        open(marker, "w").close()
        print(json.dumps({"filled": count, "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    b = Berth(data).start()
    try:
        ct = boto3.client("cloudtrail", endpoint_url=b.url, region_name=REGION,
                          aws_access_key_id=b.admin_key, aws_secret_access_key=b.admin_secret)
        now = datetime.now(timezone.utc)
        week = dict(StartTime=now - timedelta(days=7), EndTime=now)
        kinds = {
            "rare EventName, 30 days": dict(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": RARE}],
                                            StartTime=now - timedelta(days=31), EndTime=now),
            "common EventName, last 7 days": dict(LookupAttributes=[{"AttributeKey": "EventName",
                                                                     "AttributeValue": "PutImage"}], **week),
            "EventName, one hour 20 days ago": dict(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateRepository"}],
                StartTime=now - timedelta(days=20, hours=1), EndTime=now - timedelta(days=20)),
            "ResourceName, last 7 days": dict(LookupAttributes=[{"AttributeKey": "ResourceName",
                                                                 "AttributeValue": "team3/app7"}], **week),
            "Username, last 7 days": dict(LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "user5"}],
                                          **week),
            "no attribute, newest 50": dict(MaxResults=50),
        }
        worst = 0.0
        for kind, args in kinds.items():
            ct.lookup_events(**args)  # warm the page cache and the connection
            out, stats = timed(lambda: ct.lookup_events(**args), lookups)
            found = len(out["Events"])
            if kind.startswith("rare"):
                assert found == 10, f"expected the 10 rare events, found {found}"
            print(json.dumps({"query": kind, "events": found, **stats}), flush=True)
            worst = max(worst, stats["median_ms"])
        print(json.dumps({"records": count, "worst_median_ms": worst, "goal_ms": 50, "met": worst < 50,
                          "load": os.getloadavg()}))
    finally:
        b.stop()


if __name__ == "__main__":
    main()
