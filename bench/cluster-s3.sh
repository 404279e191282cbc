#!/usr/bin/env bash
# What bounds the cluster's blob path: the same blob through the same s3s-fs bucket, in one run,
#   plain   `aws s3 cp` up and down (the CLI's defaults: 8 MiB parts, 10 requests at once),
#   dist    distribution 2.8 (Debian's docker-registry) on its own S3 driver (redirect off, so
#           the bytes pass through the registry as they do through berth),
#   berth   two berth nodes on PostgreSQL + the bucket: push through A, pull through B (blobs
#           sealed at rest, the default: node B decrypts every byte it serves),
#   berth-clear  the same through nodes C and D started with --aes256-by-storage (blobs in clear,
#           as distribution stores them: the like-for-like comparison).
#   berth-cached  push through E, pull through F started with --blob-cache-dir (sealed): the
#           first pull comes from the bucket and is copied to F's disk as it streams, the
#           second (pull_again) is served from F's disk.
# Each repetition runs the three in a rotating order; figures are medians.
#
#   bench/cluster-s3.sh                       # writes the "cluster-s3" section of bench/RESULTS.md
#   CLUSTER_S3_BLOB_MIB=64 CLUSTER_S3_REPEAT=1 bench/cluster-s3.sh
#
# Environment: CLUSTER_S3_BLOB_MIB (256), CLUSTER_S3_REPEAT (3), CLUSTER_S3_OUT (bench/RESULTS.md),
# CLUSTER_S3_SERVER (s3s-fs | moto: distribution cannot push to s3s-fs 0.14.1, see below),
# CLUSTER_S3_TARGETS ("plain dist berth berth-clear berth-cached"),
# CLUSTER_S3_NOTE (a line printed under the table), BERTH_BIN / BENCH_BIN (default: build them,
# release), BENCH_BUILD=0 (use the built ones).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BLOB_MIB=${CLUSTER_S3_BLOB_MIB:-256}
REPEAT=${CLUSTER_S3_REPEAT:-3}
SERVER=${CLUSTER_S3_SERVER:-s3s-fs}
TARGETS=${CLUSTER_S3_TARGETS:-plain dist berth berth-clear berth-cached}
OUT=${CLUSTER_S3_OUT:-$ROOT/bench/RESULTS.md}
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

for c in jq aws docker-registry s3s-fs psql; do command -v $c >/dev/null || die "$c is needed (scripts/install-test-deps.sh)"; done
if [ -z "${BERTH_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
  if [ "${BENCH_BUILD:-1}" = 1 ]; then
    log "building berth and berth-bench (release)"
    cargo build --release -q -p berth -p berth-bench
  fi
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
fi
BERTH=${BERTH_BIN:-$TARGET_DIR/release/berth}
BB=${BENCH_BIN:-$TARGET_DIR/release/berth-bench}

W=$(mktemp -d /var/tmp/berth-cluster-s3.XXXXXX)
chmod 755 "$W"  # PostgreSQL runs as the postgres user and must reach its directory
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ./scripts/s3-test-server.sh stop "$W/s3" >/dev/null 2>&1 || true
  ./scripts/postgres-test-server.sh stop "$W/pg" >/dev/null 2>&1 || true
  [ -n "${KEEP_W:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
RAW=$W/raw.jsonl
: >"$RAW"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
eval "$(./scripts/postgres-test-server.sh start "$W/pg")"
case $SERVER in
  s3s-fs)
    eval "$(./scripts/s3-test-server.sh start "$W/s3")"
    SERVER_VERSION="s3s-fs 0.14.1"
    ;;
  moto)
    # moto implements ListMultipartUploads, which distribution's S3 driver needs to continue an
    # upload (s3s-fs 0.14.1 answers 501, so distribution cannot take a push there).
    mport=$(free_port)
    env -u AWS_CA_BUNDLE moto_server -H 127.0.0.1 -p "$mport" >"$W/moto.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$mport/" && break; sleep 0.1; done
    BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$mport BERTH_TEST_S3_BUCKET=berth-bench
    BERTH_TEST_S3_ACCESS_KEY=testing BERTH_TEST_S3_SECRET_KEY=testingsecret
    SERVER_VERSION="moto_server $(python3 -c 'import moto; print(moto.__version__)')"
    ;;
  *) die "CLUSTER_S3_SERVER must be s3s-fs or moto" ;;
esac
EP=$BERTH_TEST_S3_ENDPOINT
BUCKET=$BERTH_TEST_S3_BUCKET
DB="${BERTH_TEST_POSTGRES_URL%/*}/bench"
psql "$BERTH_TEST_POSTGRES_URL" -q -c "CREATE DATABASE bench" >/dev/null
now() { date +%s.%N; }
mbps() { jq -n --argjson b "$1" --argjson s "$2" '($b / $s / 1e6 * 10 | round) / 10'; }
rec() { jq -c --arg k "$1" --arg t "$2" '. + {key: $k, target: $t}' <<<"$3" >>"$RAW"; }

# ---- plain S3 client
s3cli() {
  AWS_ACCESS_KEY_ID=$BERTH_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BERTH_TEST_S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "$EP" "$@"
}

[ "$SERVER" = moto ] && s3cli s3 mb "s3://$BUCKET" >/dev/null

# ---- distribution on its S3 driver
DPORT=$(free_port)
printf '%s\n' \
  "version: 0.1" \
  "log:" \
  "  level: warn" \
  "  accesslog:" \
  "    disabled: true" \
  "storage:" \
  "  s3:" \
  "    accesskey: $BERTH_TEST_S3_ACCESS_KEY" \
  "    secretkey: $BERTH_TEST_S3_SECRET_KEY" \
  "    region: us-east-1" \
  "    regionendpoint: $EP" \
  "    bucket: $BUCKET" \
  "    rootdirectory: /distribution" \
  "    secure: false" \
  "    v4auth: true" \
  "  redirect:" \
  "    disable: true" \
  "  delete:" \
  "    enabled: true" \
  "  cache:" \
  "    blobdescriptor: inmemory" \
  "http:" \
  "  addr: 127.0.0.1:$DPORT" \
  "  secret: bench-$(openssl rand -hex 8)" >"$W/dist.yml"
# The Go SDK in distribution 2.8 cannot use a custom CA bundle with its transport and panics
# when AWS_CA_BUNDLE is set (the endpoint here is plain HTTP anyway).
env -u AWS_CA_BUNDLE docker-registry serve "$W/dist.yml" >"$W/dist.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$DPORT/v2/" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.1:$DPORT/v2/" || { cat "$W/dist.log" >&2; die "distribution did not start"; }
log "distribution on S3 http://127.0.0.1:$DPORT"

# ---- two berth nodes
export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000003
BERTH_ADMIN_SECRET_ACCESS_KEY=$(openssl rand -hex 20)
BERTH_ROOT_KEY=$(openssl rand -hex 32)
export BERTH_ADMIN_SECRET_ACCESS_KEY BERTH_ROOT_KEY
export BERTH_S3_ACCESS_KEY_ID=$BERTH_TEST_S3_ACCESS_KEY BERTH_S3_SECRET_ACCESS_KEY=$BERTH_TEST_S3_SECRET_KEY
declare -A URL CREDS
start_node() { # NAME [SERVE FLAGS...]
  local name=$1 addr="" token pid
  shift
  mkdir -p "$W/$name"
  BERTH_LOG=warn BERTH_GC_INTERVAL_SECONDS=0 BERTH_LIFECYCLE_INTERVAL_SECONDS=0 "$BERTH" serve --listen 127.0.0.1:0 \
    --data-dir "$W/$name/data" --metadata "$DB" --blobs "s3://$BUCKET/berth" --s3-endpoint "$EP" --s3-path-style "$@" \
    >"$W/$name/stdout" 2>"$W/$name/stderr" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    addr=$(awk '/^listening on / { print $3; exit }' "$W/$name/stdout" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$W/$name/stderr" >&2; die "$name exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "$name printed no 'listening on' line"
  URL[$name]=http://$addr
  token=$(AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "${URL[$name]}" ecr get-login-password)
  CREDS[$name]=AWS:$token
  log "berth $name ${URL[$name]}"
}
start_node node-a
start_node node-b
if [[ " $TARGETS " == *" berth-clear "* ]]; then
  start_node node-c --aes256-by-storage
  start_node node-d --aes256-by-storage
fi
if [[ " $TARGETS " == *" berth-cached "* ]]; then
  start_node node-e
  start_node node-f --blob-cache-dir "$W/node-f/cache" --blob-cache-gib 4
fi
bb_berth() { local n=$1; shift; BENCH_URL="${URL[$n]}" BENCH_USER="${CREDS[$n]%%:*}" BENCH_PASSWORD="${CREDS[$n]#*:}" "$BB" "$@"; }
bb_dist() { BENCH_URL="http://127.0.0.1:$DPORT" "$BB" "$@"; }

run_plain() { # REP FILE BYTES
  local t0 t1 s
  sync
  t0=$(now); s3cli s3 cp --only-show-errors "$2" "s3://$BUCKET/plain/blob-$1"; t1=$(now)
  s=$(jq -n "$t1 - $t0"); rec push plain "{\"secs\": $s, \"mb_per_s\": $(mbps "$3" "$s")}"
  log "plain aws s3 cp up: $(mbps "$3" "$s") MB/s"
  t0=$(now); s3cli s3 cp --only-show-errors "s3://$BUCKET/plain/blob-$1" - >/dev/null; t1=$(now)
  s=$(jq -n "$t1 - $t0"); rec pull plain "{\"secs\": $s, \"mb_per_s\": $(mbps "$3" "$s")}"
  log "plain aws s3 cp down: $(mbps "$3" "$s") MB/s"
}
run_dist() { # REP FILE DIGEST
  local j
  sync
  j=$(bb_dist push-blob --repo "blob/r$1" --file "$2" --digest "$3"); rec push dist "$j"
  log "distribution-on-S3 push: $(jq -r .mb_per_s <<<"$j") MB/s"
  j=$(bb_dist pull-blob --repo "blob/r$1" --digest "$3"); rec pull dist "$j"
  log "distribution-on-S3 pull: $(jq -r .mb_per_s <<<"$j") MB/s"
  j=$(bb_dist pull-blob --repo "blob/r$1" --digest "$3"); rec pull_again dist "$j"
  log "distribution-on-S3 pull again: $(jq -r .mb_per_s <<<"$j") MB/s"
}
wait_cache_fill() { # NODE COUNT: the node's copies done (the copy is written after the pull's last byte)
  local n
  for _ in $(seq 1 600); do
    n=$(curl -fsS "${URL[$1]}/metrics" | awk '/^berth_blob_cache_fills_total\{result="done"\}/ { print $2 }')
    [ "${n:-0}" -ge "$2" ] && return 0
    sleep 0.1
  done
  die "$1 never finished copying the blob to its cache"
}
run_berth() { # REP FILE DIGEST TARGET PUSH-NODE PULL-NODE
  local j t=$4
  sync
  j=$(bb_berth "$5" push-blob --repo "$t/r$1" --file "$2" --digest "$3"); rec push "$t" "$j"
  log "$t cluster push ($5): $(jq -r .mb_per_s <<<"$j") MB/s"
  j=$(bb_berth "$6" pull-blob --repo "$t/r$1" --digest "$3"); rec pull "$t" "$j"
  log "$t cluster pull ($6): $(jq -r .mb_per_s <<<"$j") MB/s"
  [ "$t" = berth-cached ] && wait_cache_fill "$6" "$1"
  # The pulling node checks a blob's digest on its first read back only (berth-core's integrity).
  j=$(bb_berth "$6" pull-blob --repo "$t/r$1" --digest "$3"); rec pull_again "$t" "$j"
  log "$t cluster pull again ($6): $(jq -r .mb_per_s <<<"$j") MB/s"
}

read -r -a targets <<<"$TARGETS"
n=${#targets[@]}
for rep in $(seq 1 "$REPEAT"); do
  f=$W/blob-$rep
  digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed $((rep + 700)) | jq -r .digest)
  bytes=$(stat -c %s "$f")
  for i in $(seq 0 $((n - 1))); do
    t=${targets[$(( (i + rep) % n ))]}
    case $t in
      plain) run_plain "$rep" "$f" "$bytes" ;;
      dist) run_dist "$rep" "$f" "$digest" ;;
      berth) run_berth "$rep" "$f" "$digest" berth node-a node-b ;;
      berth-clear) run_berth "$rep" "$f" "$digest" berth-clear node-c node-d ;;
      berth-cached) run_berth "$rep" "$f" "$digest" berth-cached node-e node-f ;;
    esac
  done
  rm -f "$f"
done

med() { jq -s --arg k "$1" --arg t "$2" '[.[] | select(.key == $k and .target == $t) | .mb_per_s] | sort | if length == 0 then null else .[(length / 2 | floor)] end' "$RAW"; }
all() { jq -s -r --arg k "$1" --arg t "$2" '[.[] | select(.key == $k and .target == $t) | .mb_per_s | tostring] | join(", ")' "$RAW"; }
ratio() { jq -rn --argjson a "$1" --argjson b "$2" 'if $a == null or $b == null then "–" else "\(($a / $b * 100 | round) / 100)×" end'; }
cell() { if [ "$1" = null ]; then echo "–"; else echo "$1 ($2)"; fi; }
section=$W/section.md
{
  echo "<!-- cluster-s3-$SERVER:start -->"
  echo "## Cluster blob path on $SERVER: berth vs distribution's S3 driver vs a plain S3 client (issue 22)"
  echo
  echo "\`$0\` ($(date -u +%F), $(nproc) cores; ${BLOB_MIB} MiB blob, median of $REPEAT, order rotating per repetition;"
  echo "$SERVER_VERSION, distribution $(docker-registry --version | awk '{print $3}'), PostgreSQL 15, all on this machine)."
  echo "Plain: \`aws s3 cp\` (CLI defaults: 8 MiB parts, 10 at once; down to stdout → /dev/null). Distribution: its s3 driver on the same"
  echo "bucket, \`redirect: disable\`. Berth: push through node A, pull through node B, blobs sealed at rest (the default);"
  echo "berth clear: the same through two nodes started with \`--aes256-by-storage\` (blobs in clear, as distribution keeps them). Each repetition's MB/s in brackets."
  echo "berth cached: push through node E, pull through node F started with \`--blob-cache-dir\` (sealed; F's first pull copies the blob to its disk as it streams)."
  echo "pull_again: the same blob pulled a second time (berth's node B hashes a blob on its first read back only; node F serves it from its disk)."
  echo
  echo "| MB/s | plain aws s3 cp | distribution on S3 | berth cluster | berth clear | berth cached | berth / distribution | berth clear / distribution | berth cached / distribution | berth / plain |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for k in push pull pull_again; do
    p=$(med $k plain) d=$(med $k dist) b=$(med $k berth) c=$(med $k berth-clear) e=$(med $k berth-cached)
    echo "| $k | $(cell "$p" "$(all $k plain)") | $(cell "$d" "$(all $k dist)") | $(cell "$b" "$(all $k berth)") | $(cell "$c" "$(all $k berth-clear)") | $(cell "$e" "$(all $k berth-cached)") | $(ratio "$b" "$d") | $(ratio "$c" "$d") | $(ratio "$e" "$d") | $(ratio "$b" "$p") |"
  done
  [ -n "${CLUSTER_S3_NOTE:-}" ] && { echo; echo "$CLUSTER_S3_NOTE"; }
  echo "<!-- cluster-s3-$SERVER:end -->"
} >"$section"
python3 - "$OUT" "$section" "$SERVER" <<'PY'
import re, sys
out, section, server = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(rf"<!-- cluster-s3-{re.escape(server)}:start -->.*?<!-- cluster-s3-{re.escape(server)}:end -->\n?", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
PY
cat "$section"
