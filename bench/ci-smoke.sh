#!/usr/bin/env bash
# The benchmark's small variant, end to end against berth only, so that it cannot rot.
# No targets are asserted: it fails only when a workload fails. About two minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/berth-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
BENCH_SCALE=small BENCH_TARGETS=berth BENCH_OUT="$out/RESULTS.md" ./bench/compare.sh
grep -q '^| push ' "$out/RESULTS.md"
echo "bench smoke: ok"
# The cluster benchmark's small variant too (PostgreSQL + s3s-fs + two nodes).
CLUSTER_SCALE=small BENCH_BUILD=0 CLUSTER_OUT="$out/CLUSTER.md" ./bench/cluster-bench.sh >/dev/null
grep -q '^| pull (MB/s) ' "$out/CLUSTER.md"
echo "cluster bench smoke: ok"
# Encryption at rest, small: clear, KMS and sealed AES256 round trips, every pull hashed and
# every blob's place on disk checked.
ENC_SCALE=small BENCH_BUILD=0 ENC_OUT="$out/ENCRYPTION.md" ./bench/encryption.sh >/dev/null
grep -q '^| pull .* Range GETs (MB/s) ' "$out/ENCRYPTION.md"
echo "encryption bench smoke: ok"
# Replication, small: same instance, to a second berth, and a burst; fails if a copy does not
# complete (within 30 s) or pulls with another digest.
REPL_SCALE=small BENCH_BUILD=0 REPL_OUT="$out/REPLICATION.md" ./bench/replication.sh >/dev/null
grep -q '^| \*\*on / off\*\* ' "$out/REPLICATION.md"
echo "replication bench smoke: ok"
# ECR Public, small: anonymous / authenticated / private manifest and blob GETs, the limiters on
# (never refusing) and off; fails on any refused or failed request, or an image pulled with another digest.
PUB_SCALE=small BENCH_BUILD=0 PUB_OUT="$out/PUBLIC.md" ./bench/public.sh >/dev/null
grep -q '^| manifest GET by tag @16 ' "$out/PUBLIC.md"
echo "public bench smoke: ok"
# The cost of each feature, small: encryption, audit data events, replication, scanning and request
# logging, each on one berth and off on another; fails on any failed or unverified request.
FEAT_SCALE=small BENCH_BUILD=0 FEAT_OUT="$out/FEATURES.md" ./bench/feature_cost.sh >/dev/null
grep -q '^| logging: ' "$out/FEATURES.md"
echo "feature cost bench smoke: ok"
