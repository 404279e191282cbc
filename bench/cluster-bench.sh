#!/usr/bin/env bash
# berth as a two-node cluster (PostgreSQL + an S3-compatible bucket, s3s-fs) beside one embedded
# berth (SQLite + filesystem), on the same machine, with the same workloads as bench/compare.sh:
# blob push (monolithic and chunked), blob pull (through the OTHER node), manifest GET by tag at
# 1/16/64 connections (each node, and both at once), and 100 small images pushed concurrently.
#
#   bench/cluster-bench.sh                  # writes the "Cluster" section of bench/RESULTS.md
#   CLUSTER_SCALE=small bench/cluster-bench.sh
#
# Environment (optional): CLUSTER_SCALE=full|small, CLUSTER_BLOB_MIB, CLUSTER_LOAD_SECONDS,
# CLUSTER_REPEAT, CLUSTER_OUT (default bench/RESULTS.md), BENCH_BUILD=0 (use the built binaries).
# Everything listens on 127.0.0.1; all four servers share this machine's cores with the load
# generator, so the cluster pays for its extra processes here, which a real deployment would not.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SCALE=${CLUSTER_SCALE:-full}
case "$SCALE" in
  full) d_blob=256 d_load=10 d_repeat=3 d_images=100 ;;
  small) d_blob=32 d_load=2 d_repeat=1 d_images=20 ;;
  *) echo "CLUSTER_SCALE must be full or small" >&2; exit 2 ;;
esac
BLOB_MIB=${CLUSTER_BLOB_MIB:-$d_blob}
LOAD_S=${CLUSTER_LOAD_SECONDS:-$d_load}
REPEAT=${CLUSTER_REPEAT:-$d_repeat}
IMAGES=${CLUSTER_IMAGES:-$d_images}
OUT=${CLUSTER_OUT:-$ROOT/bench/RESULTS.md}
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v aws >/dev/null || python3 -m pip install -q --disable-pip-version-check awscli
if [ "${BENCH_BUILD:-1}" = 1 ]; then
  log "building berth and berth-bench (release)"
  cargo build --release -q -p berth -p berth-bench
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BERTH=$TARGET_DIR/release/berth
BB=$TARGET_DIR/release/berth-bench

W=$(mktemp -d /var/tmp/berth-cluster-bench.XXXXXX)
chmod 755 "$W"  # PostgreSQL runs as the postgres user and must reach its directory
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ./scripts/s3-test-server.sh stop "$W/s3" >/dev/null 2>&1 || true
  ./scripts/postgres-test-server.sh stop "$W/pg" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
RAW=$W/raw.jsonl; : >"$RAW"

pg_env=$(./scripts/postgres-test-server.sh start "$W/pg")
s3_env=$(./scripts/s3-test-server.sh start "$W/s3")
eval "$pg_env"
eval "$s3_env"
DB="${BERTH_TEST_POSTGRES_URL%/*}/bench"
psql "$BERTH_TEST_POSTGRES_URL" -q -c "CREATE DATABASE bench" >/dev/null

export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000002
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
# Every node of a cluster has the same root key (docs/DEPLOY.md): blobs are sealed under data
# keys it wraps, and a pull goes through the node that did not take the push.
export BERTH_ROOT_KEY=${BERTH_ROOT_KEY:-$(openssl rand -hex 32)}
declare -A URL PID CREDS

start_node() { # NAME [berth serve args...]
  local name=$1; shift
  mkdir -p "$W/$name"
  BERTH_LOG=warn "$BERTH" serve --listen 127.0.0.1:0 --data-dir "$W/$name/data" "$@" >"$W/$name/stdout" 2>"$W/$name/stderr" &
  PID[$name]=$!; PIDS+=("$!")
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(awk '/^listening on / { print $3; exit }' "$W/$name/stdout" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "${PID[$name]}" 2>/dev/null || { cat "$W/$name/stderr" >&2; die "$name exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "$name printed no 'listening on' line"
  URL[$name]=http://$addr
  local token
  token=$(AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "${URL[$name]}" ecr get-login-password) || die "get-login-password on $name failed"
  CREDS[$name]=AWS:$token
  log "$name ${URL[$name]}"
}
CLUSTER_ARGS=(--metadata "$DB" --blobs "s3://$BERTH_TEST_S3_BUCKET/bench" --s3-endpoint "$BERTH_TEST_S3_ENDPOINT" --s3-path-style)
export BERTH_S3_ACCESS_KEY_ID=$BERTH_TEST_S3_ACCESS_KEY BERTH_S3_SECRET_ACCESS_KEY=$BERTH_TEST_S3_SECRET_KEY
start_node embedded
start_node node-a "${CLUSTER_ARGS[@]}"
start_node node-b "${CLUSTER_ARGS[@]}"

bb() { # NODE SUBCOMMAND ARGS...
  local n=$1; shift
  BENCH_URL="${URL[$n]}" BENCH_USER="${CREDS[$n]%%:*}" BENCH_PASSWORD="${CREDS[$n]#*:}" "$BB" "$@"
}
rec() { jq -c --arg k "$1" --arg t "$2" '. + {key: $k, target: $t}' <<<"$3" >>"$RAW"; }

for rep in $(seq 1 "$REPEAT"); do
  for kind in mono chunk; do
    f=$W/blob-$kind-$rep
    digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed $((rep * 10 + ${#kind})) | jq -r .digest)
    for pair in "embedded embedded" "cluster node-a"; do
      set -- $pair
      args=(--repo "blob/$kind-$rep" --file "$f" --digest "$digest")
      [ "$kind" = chunk ] && args+=(--chunk-mib 10)
      sync
      j=$(bb "$2" push-blob "${args[@]}"); rec "push_$kind" "$1" "$j"
      log "$1 push $kind: $(jq -r .mb_per_s <<<"$j") MB/s"
    done
    rm -f "$f"
    # Pulled through the node that did NOT take the push.
    for pair in "embedded embedded" "cluster node-b"; do
      set -- $pair
      j=$(bb "$2" pull-blob --repo "blob/$kind-$rep" --digest "$digest"); rec pull "$1" "$j"
      log "$1 pull: $(jq -r .mb_per_s <<<"$j") MB/s"
    done
  done
done

bb embedded push-image --repo manifest/app --tag latest >/dev/null
bb node-a push-image --repo manifest/app --tag latest >/dev/null
for c in 1 16 64; do
  for pair in "embedded embedded" "cluster-a node-a" "cluster-b node-b"; do
    set -- $pair
    j=$(bb "$2" manifest-load --repo manifest/app --reference latest --connections "$c" --duration "$LOAD_S" --warmup 1)
    rec "manifest_c$c" "$1" "$j"
    log "$1 manifest @$c: $(jq -r '"\(.req_per_s) req/s, p99 \(.latency.p99_ms) ms, errors \(.errors)"' <<<"$j")"
  done
  # Both nodes at once (as behind a load balancer): half the connections each.
  half=$(( c > 1 ? c / 2 : 1 ))
  bb node-a manifest-load --repo manifest/app --reference latest --connections "$half" --duration "$LOAD_S" --warmup 1 >"$W/ma.json" &
  pa=$!
  bb node-b manifest-load --repo manifest/app --reference latest --connections "$half" --duration "$LOAD_S" --warmup 1 >"$W/mb.json"
  wait "$pa"
  j=$(jq -s '{req_per_s: (.[0].req_per_s + .[1].req_per_s), errors: (.[0].errors + .[1].errors), latency: {p50_ms: ([.[0].latency.p50_ms, .[1].latency.p50_ms] | max), p99_ms: ([.[0].latency.p99_ms, .[1].latency.p99_ms] | max)}}' "$W/ma.json" "$W/mb.json")
  rec "manifest_c$c" cluster-both "$j"
  log "cluster both nodes @$c: $(jq -r .req_per_s <<<"$j") req/s"
done

for pair in "embedded embedded" "cluster node-a"; do
  set -- $pair
  j=$(bb "$2" push-images --repo small/imgs --count "$IMAGES" --workers 16); rec push_images "$1" "$j"
  log "$1 small images: $(jq -r .images_per_s <<<"$j") images/s"
done

# ---------------------------------------------------------------- report
med() { # KEY TARGET FIELD → median over repetitions
  jq -s --arg k "$1" --arg t "$2" --arg f "$3" '[.[] | select(.key == $k and .target == $t) | .[$f]] | sort | if length == 0 then "–" else .[(length / 2 | floor)] end' "$RAW"
}
lat() { jq -s --arg k "$1" --arg t "$2" -r '[.[] | select(.key == $k and .target == $t)][0] | "\(.req_per_s | floor) req/s (p99 \(.latency.p99_ms) ms)"' "$RAW"; }
section=$W/section.md
{
  echo "<!-- cluster-bench:start -->"
  echo "## Cluster: two nodes on PostgreSQL + S3 (s3s-fs) vs embedded"
  echo
  echo "\`$0\` (scale $SCALE, $(date -u +%F), $(nproc) cores; PostgreSQL 15, s3s-fs 0.14.1 and every berth node on this one machine)."
  echo "Blob: $BLOB_MIB MiB, median of $REPEAT; the cluster's pull goes through the node that did not take the push."
  echo
  echo "| workload | embedded (SQLite + fs) | cluster (PostgreSQL + S3) |"
  echo "|---|---|---|"
  echo "| push, monolithic (MB/s) | $(med push_mono embedded mb_per_s) | $(med push_mono cluster mb_per_s) |"
  echo "| push, 10 MiB chunks (MB/s) | $(med push_chunk embedded mb_per_s) | $(med push_chunk cluster mb_per_s) |"
  echo "| pull (MB/s) | $(med pull embedded mb_per_s) | $(med pull cluster mb_per_s) |"
  for c in 1 16 64; do
    echo "| manifest GET by tag @$c | $(lat manifest_c$c embedded) | A: $(lat manifest_c$c cluster-a); B: $(lat manifest_c$c cluster-b); both: $(lat manifest_c$c cluster-both) |"
  done
  echo "| $IMAGES small images, 16 workers (images/s) | $(med push_images embedded images_per_s) | $(med push_images cluster images_per_s) |"
  echo "<!-- cluster-bench:end -->"
} >"$section"
python3 - "$OUT" "$section" <<'EOF'
import re, sys
out, section = sys.argv[1], open(sys.argv[2]).read()
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"<!-- cluster-bench:start -->.*?<!-- cluster-bench:end -->\n?", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
EOF
cat "$section"
