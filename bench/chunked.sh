#!/usr/bin/env bash
# Chunked pushes (issue 22): one blob pushed to berth and to distribution by three clients side by
# side in one run, so a figure can be traced to the client that produced it.
#
#   bench/chunked.sh                        # 1 GiB, 3 repetitions (~4 min): prints the table
#   CHUNKED_OUT=bench/RESULTS.md bench/chunked.sh    # also replaces the "chunked-bench" section there
#
# Clients (each a fresh repository per push; `sync` before every push):
#   bench    berth-bench push-blob --chunk-mib N: POST, N MiB PATCHes with Content-Range, PUT (Rust, reqwest)
#   python   bench/chunked_push.py --mode patches: the same requests from Python requests (oras-py's
#            chunked_upload does exactly this, with 16 MiB chunks)
#   stream   bench/chunked_push.py --mode stream: POST, ONE streamed PATCH of the whole blob, PUT:
#            what docker, containerd and skopeo/podman send for every layer
# Environment (optional): CHUNKED_BLOB_MIB (1024), CHUNKED_CHUNK_MIB (10), CHUNKED_REPEAT (3),
# CHUNKED_CLIENTS ("bench python stream"), CHUNKED_BERTH_ARGS (extra `berth serve` arguments),
# BERTH_BIN / BENCH_BIN (else built), BENCH_KEEP=1. Both servers log warnings only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. bench/lib.sh
COMMAND="$(printf '%q ' "$0" "$@")"
for v in $(env | grep -o '^CHUNKED_[A-Z_]*' | sort); do COMMAND="$v=${!v} $COMMAND"; done

BLOB_MIB=${CHUNKED_BLOB_MIB:-1024}
CHUNK_MIB=${CHUNKED_CHUNK_MIB:-10}
REPEAT=${CHUNKED_REPEAT:-3}
CLIENTS=${CHUNKED_CLIENTS:-"bench python stream"}
OUT=${CHUNKED_OUT:-}
read -r -a BERTH_ARGS <<<"${CHUNKED_BERTH_ARGS:-}"
for c in jq curl openssl python3 aws docker-registry; do command -v "$c" >/dev/null || die "$c is needed"; done
python3 -c 'import requests' 2>/dev/null || die "python3 requests is needed"

bench_binaries
bench_scratch berth-chunked-bench
export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000022 AWS_DEFAULT_REGION=us-east-1
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
export BERTH_SCRUB_INTERVAL_SECONDS=0 BENCH_CLIENT_THREADS=1
declare -A CREDS

start_berth berth "${BERTH_ARGS[@]}"
token=$(AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY \
  aws --endpoint-url "${URL[berth]}" ecr get-login-password) || die "get-login-password failed"
CREDS[berth]=AWS:$token

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$W/distribution/data"
cat >"$W/distribution.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/distribution/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: bench-$(openssl rand -hex 8)
EOF
docker-registry serve "$W/distribution.yml" >"$W/distribution.log" 2>&1 &
PID[distribution]=$!; PIDS+=("$!")
URL[distribution]=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -s -o /dev/null "${URL[distribution]}/v2/" && break; sleep 0.1; done
log "distribution ${URL[distribution]} pid ${PID[distribution]}"

push() { # TARGET CLIENT REPO FILE DIGEST → JSON
  local t=$1 client=$2 repo=$3 f=$4 d=$5
  local env=(BENCH_URL="${URL[$t]}")
  [ -n "${CREDS[$t]:-}" ] && env+=(BENCH_USER="${CREDS[$t]%%:*}" BENCH_PASSWORD="${CREDS[$t]#*:}")
  case "$client" in
    bench) env "${env[@]}" "$BB" push-blob --repo "$repo" --file "$f" --digest "$d" --chunk-mib "$CHUNK_MIB" ;;
    python) env "${env[@]}" python3 bench/chunked_push.py --repo "$repo" --file "$f" --digest "$d" --mode patches --chunk-mib "$CHUNK_MIB" ;;
    stream) env "${env[@]}" python3 bench/chunked_push.py --repo "$repo" --file "$f" --digest "$d" --mode stream ;;
  esac
}

for rep in $(seq 1 "$REPEAT"); do
  f=$W/blob-$rep
  digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed $((rep + 220)) | jq -r .digest)
  targets="berth distribution"; [ $((rep % 2)) = 0 ] && targets="distribution berth"
  for client in $CLIENTS; do
    for t in $targets; do
      sync
      c0=$(cpu_ticks "${PID[$t]}")
      j=$(push "$t" "$client" "chunked/$client-$rep" "$f" "$digest")
      cpu=$(awk -v a="$c0" -v b="$(cpu_ticks "${PID[$t]}")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
      rec "$client" "$t" "$(jq -c --argjson cpu "$cpu" '{mb_per_s, secs, requests, server_cpu_s: $cpu}' <<<"$j")"
      log "  rep $rep $client $t: $(jq -r .mb_per_s <<<"$j") MB/s, server CPU ${cpu} s"
    done
  done
  rm -f "$f"
done

section=$W/section.md
python3 - "$RAW" "$BLOB_MIB" "$CHUNK_MIB" "$REPEAT" "$COMMAND" "$(git rev-parse --short HEAD)" >"$section" <<'EOF'
import json, statistics, sys, datetime
raw, blob, chunk, repeat, command, rev = sys.argv[1:]
rows = [json.loads(l) for l in open(raw)]
label = {"bench": f"berth-bench, {chunk} MiB PATCHes (Rust reqwest)",
         "python": f"Python requests, {chunk} MiB PATCHes (as oras-py)",
         "stream": "Python requests, one streamed PATCH (as docker, containerd, skopeo, podman)"}
def med(client, target, field):
    v = [r[field] for r in rows if r["key"] == client and r["target"] == target]
    return statistics.median(v) if v else None
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print("<!-- chunked-bench:start -->")
print("## Chunked pushes by client (issue 22)\n")
print(f"Generated by `bench/chunked.sh` on {now}; git {rev}; {blob} MiB blob, median of {repeat}, "
      f"berth and distribution alternating; both log warnings only; command `{command.strip()}`.\n")
print("| client | berth (MB/s) | distribution (MB/s) | berth/distribution | berth CPU (s) | distribution CPU (s) |")
print("|---|---:|---:|---:|---:|---:|")
for client in label:
    b, d = med(client, "berth", "mb_per_s"), med(client, "distribution", "mb_per_s")
    if b is None:
        continue
    bc, dc = med(client, "berth", "server_cpu_s"), med(client, "distribution", "server_cpu_s")
    print(f"| {label[client]} | {b:,.0f} | {d:,.0f} | {b / d:.2f}× | {bc:.2f} | {dc:.2f} |")
print("<!-- chunked-bench:end -->")
EOF
cat "$section"
[ -n "$OUT" ] && replace_section "$OUT" "$section" chunked-bench
exit 0
