#!/usr/bin/env bash
# berth side by side with CNCF distribution (Debian's docker-registry), and against this machine's limits.
#
#   bench/compare.sh                       # full scale (~15 min): writes bench/RESULTS.md and bench/results.jsonl
#   BENCH_SCALE=small bench/compare.sh     # the same workloads, small (CI; see bench/ci-smoke.sh)
#
# Environment (all optional):
#   BENCH_SCALE=full|small        sizes below; each can be overridden one by one:
#   BENCH_BLOB_MIB BENCH_CHUNK_MIB BENCH_TAG_STAGES ("1000 10000 100000") BENCH_REPOS BENCH_LOAD_SECONDS
#   BENCH_WARMUP_SECONDS BENCH_CONNECTIONS ("1 16 64") BENCH_IMAGES BENCH_IMAGE_WORKERS BENCH_SKOPEO_MIB BENCH_REPEAT
#   BENCH_TARGETS="berth distribution"   which registries (berth only: "berth")
#   BENCH_SKOPEO=1                 0 skips the skopeo workload
#   BENCH_OUT=bench/RESULTS.md     where the markdown goes (raw figures: same name, .jsonl)
#   BENCH_WORKDIR=DIR              scratch (default: a new directory under /var/tmp, removed at the end unless BENCH_KEEP=1)
#   BENCH_CLIENT_THREADS=1         threads of the load generator (it shares the machine with the server)
#   BENCH_BUILD=1                 0 uses target/release/{berth,berth-bench} as they are (no cargo build)
#   BENCH_QUIET_LOGS=0             1: both servers log warnings only (default: as shipped, one line per request)
#   BENCH_BERTH_ARGS="--aes256-by-storage"   berth serve flags; the default stores blobs in clear, as
#                                  distribution does ("" runs berth as shipped: every blob sealed at rest)
#
# Writes its part of BENCH_OUT (between <!-- compare:start --> and <!-- compare:end -->; the other
# scripts' sections stay) and prints it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# replace_section (this script defines its own log, rec and start_berth after it)
. "$ROOT/bench/lib.sh"
COMMAND="${BENCH_COMMAND:-$(printf '%q ' "$0" "$@")}"
for v in $(env | grep -o '^BENCH_[A-Z_]*' | grep -v '^BENCH_COMMAND$' | sort); do COMMAND="$v=${!v} $COMMAND"; done

SCALE=${BENCH_SCALE:-full}
case "$SCALE" in
  full) d_blob=1024 d_stages="1000 10000 100000" d_repos=10000 d_load=10 d_warm=1 d_images=100 d_skopeo=200 d_repeat=3 ;;
  small) d_blob=64 d_stages="1000" d_repos=200 d_load=2 d_warm=0.5 d_images=100 d_skopeo=16 d_repeat=1 ;;
  *) echo "BENCH_SCALE must be full or small" >&2; exit 2 ;;
esac
BLOB_MIB=${BENCH_BLOB_MIB:-$d_blob}
CHUNK_MIB=${BENCH_CHUNK_MIB:-10}
TAG_STAGES=${BENCH_TAG_STAGES:-$d_stages}
REPOS=${BENCH_REPOS:-$d_repos}
LOAD_S=${BENCH_LOAD_SECONDS:-$d_load}
WARM_S=${BENCH_WARMUP_SECONDS:-$d_warm}
CONNS=${BENCH_CONNECTIONS:-"1 16 64"}
IMAGES=${BENCH_IMAGES:-$d_images}
IMAGE_WORKERS=${BENCH_IMAGE_WORKERS:-16}
SKOPEO_MIB=${BENCH_SKOPEO_MIB:-$d_skopeo}
REPEAT=${BENCH_REPEAT:-$d_repeat}
TARGETS=${BENCH_TARGETS:-"berth distribution"}
SKOPEO=${BENCH_SKOPEO:-1}
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
QUIET=${BENCH_QUIET_LOGS:-0}
BERTH_ARGS=${BENCH_BERTH_ARGS---aes256-by-storage}
export BENCH_CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}
has() { [[ " $TARGETS " == *" $1 "* ]]; }

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  log "installing $* (apt-get)"
  local created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; created=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  [ "$created" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
  return 0
}

# ---------------------------------------------------------------- dependencies
need=()
for pair in jq:jq curl:curl openssl:openssl python3:python3; do command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}"); done
has distribution && { command -v docker-registry >/dev/null || need+=(docker-registry); command -v htpasswd >/dev/null || need+=(apache2-utils); }
[ "$SKOPEO" = 1 ] && for pair in skopeo:skopeo umoci:umoci; do command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}"); done
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
command -v aws >/dev/null || { log "installing awscli (pip)"; python3 -m pip install -q --disable-pip-version-check awscli; }

if [ "${BENCH_BUILD:-1}" = 1 ]; then
  log "building berth and berth-bench (release)"
  cargo build --release -q -p berth -p berth-bench
else
  log "BENCH_BUILD=0: using the release binaries already built"
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BERTH=$TARGET_DIR/release/berth
BB=$TARGET_DIR/release/berth-bench

# ---------------------------------------------------------------- scratch, servers
if [ -n "${BENCH_WORKDIR:-}" ]; then W=$BENCH_WORKDIR; mkdir -p "$W"; else W=$(mktemp -d /var/tmp/berth-bench.XXXXXX); fi
RAW=$W/results.jsonl; : >"$RAW"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL
  for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  die "nothing answers at $1"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

declare -A URL PID CREDS
export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000001
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}

start_berth() {
  mkdir -p "$W/berth"
  local env=()
  [ "$QUIET" = 1 ] && env=(BERTH_LOG=warn)
  # shellcheck disable=SC2086 # BERTH_ARGS is a list of flags
  env "${env[@]}" "$BERTH" serve --listen 127.0.0.1:0 --data-dir "$W/berth/data" $BERTH_ARGS >"$W/berth/stdout" 2>"$W/berth/stderr" &
  PID[berth]=$!; PIDS+=("$!")
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(awk '/^listening on / { print $3; exit }' "$W/berth/stdout" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "${PID[berth]}" 2>/dev/null || { cat "$W/berth/stderr" >&2; die "berth exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "berth printed no 'listening on' line"
  URL[berth]=http://$addr
  local token
  token=$(AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "${URL[berth]}" ecr get-login-password) || die "get-login-password failed"
  CREDS[berth]=AWS:$token
  log "berth ${URL[berth]} pid ${PID[berth]}"
}

dist_config() { # NAME PORT [htpasswd-file]
  local level=info access=false
  [ "$QUIET" = 1 ] && { level=warn; access=true; }
  cat >"$W/$1.yml" <<EOF
version: 0.1
log:
  level: $level
  accesslog:
    disabled: $access
storage:
  filesystem:
    rootdirectory: $W/distribution/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$2
  secret: bench-$(openssl rand -hex 8)
EOF
  if [ -n "${3:-}" ]; then
    printf 'auth:\n  htpasswd:\n    realm: bench\n    path: %s\n' "$3" >>"$W/$1.yml"
  fi
}

start_distribution() { # NAME [htpasswd-file]
  local name=$1 port; port=$(free_port)
  mkdir -p "$W/distribution/data"
  dist_config "$name" "$port" "${2:-}"
  docker-registry serve "$W/$name.yml" >"$W/$name.log" 2>&1 &
  PID[$name]=$!; PIDS+=("$!")
  URL[$name]=http://127.0.0.1:$port
  wait_http "${URL[$name]}/v2/"
  log "$name ${URL[$name]} pid ${PID[$name]}"
}

stop() { # NAME
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
}

bb() { # TARGET SUBCOMMAND ARGS... → JSON on stdout
  local t=$1; shift
  local env=(BENCH_URL="${URL[$t]}")
  if [ -n "${CREDS[$t]:-}" ]; then env+=(BENCH_USER="${CREDS[$t]%%:*}" BENCH_PASSWORD="${CREDS[$t]#*:}"); fi
  env "${env[@]}" "$BB" "$@"
}
rec() { # KEY TARGET JSON [extra jq object]
  local extra=${4:-'{}'}
  jq -c --arg k "$1" --arg t "$2" ". + {key: \$k, target: \$t} + $extra" <<<"$3" >>"$RAW"
}
# The targets, in an order that alternates with the repetition number.
order() { # REP
  local ts=($TARGETS)
  if [ $(($1 % 2)) = 0 ] && [ ${#ts[@]} = 2 ]; then echo "${ts[1]} ${ts[0]}"; else echo "${ts[@]}"; fi
}

has berth && start_berth
has distribution && start_distribution distribution
sleep 1
for t in $TARGETS; do rec rss_idle "$t" "{\"rss_kb\": $(rss_kb "${PID[$t]}")}"; done

# ---------------------------------------------------------------- machine limits (on the blob itself)
log "machine limits on a $BLOB_MIB MiB blob"
BLOB=$W/blob-limits
"$BB" gen-file --path "$BLOB" --size-mib "$BLOB_MIB" --seed 7 >/dev/null
bytes=$((BLOB_MIB << 20))
ossl=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^(sha256|SHA256|SHA2-256)/ { v=$NF } END { sub(/k$/, "", v); print v * 1000 }')
rec limit_sha256_openssl machine "{\"mb_per_s\": $(awk -v b="$ossl" 'BEGIN { printf "%.1f", b / 1e6 }')}"
py=$(python3 - "$BLOB" <<'EOF'
import hashlib, sys, time
buf = bytearray(8 << 20); mv = memoryview(buf); h = hashlib.sha256(); n = 0
with open(sys.argv[1], "rb", buffering=0) as f:
    f.readinto(buf); f.seek(0)  # warm the page cache's first pages; the file was just written
    t = time.perf_counter()
    while (k := f.readinto(buf)):
        h.update(mv[:k]); n += k
print(round(n / (time.perf_counter() - t) / 1e6, 1))
EOF
)
rec limit_sha256_python machine "{\"mb_per_s\": $py}"
cat "$BLOB" >/dev/null
t0=$(now); cat "$BLOB" >/dev/null; s=$(since "$t0")
rec limit_cat machine "{\"mb_per_s\": $(awk -v b=$bytes -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
sync; t0=$(now); dd if="$BLOB" of="$W/dd.out" bs=4M conv=fsync status=none; s=$(since "$t0"); rm -f "$W/dd.out"
rec limit_dd_fsync machine "{\"mb_per_s\": $(awk -v b=$bytes -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
# The loopback limit of a download: the pull client (berth-bench) from a minimal server that sendfile()s the blob.
rec limit_loopback machine "$(python3 "$ROOT/bench/loopback.py" "$BLOB" --modes sendfile --repeat 3 --bench-bin "$BB" | jq -c '{mb_per_s: .sendfile.mb_per_s}')"
rm -f "$BLOB"

# ---------------------------------------------------------------- blob push / pull
for rep in $(seq 1 "$REPEAT"); do
  log "blob push, repetition $rep/$REPEAT"
  for kind in mono chunk; do
    f=$W/blob-$kind-$rep
    digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed $((rep * 10 + ${#kind})) | jq -r .digest)
    for t in $(order "$rep"); do
      args=(--repo "blob/$kind-$rep" --file "$f" --digest "$digest" --rss-pid "${PID[$t]}")
      [ "$kind" = chunk ] && args+=(--chunk-mib "$CHUNK_MIB")
      sync  # start every push with no dirty pages left by the file's generation or the previous push
      j=$(bb "$t" push-blob "${args[@]}"); rec "push_$kind" "$t" "$j"
      log "  $t $kind: $(jq -r '"\(.mb_per_s) MB/s, peak RSS \(.rss.rss_peak_kb) kB"' <<<"$j")"
    done
    if [ "$kind" = mono ]; then LAST_DIGEST=$digest; LAST_REPO=blob/$kind-$rep; fi
    rm -f "$f"
  done
done
for rep in $(seq 1 "$REPEAT"); do
  for t in $(order "$rep"); do
    j=$(bb "$t" pull-blob --repo "$LAST_REPO" --digest "$LAST_DIGEST"); rec pull "$t" "$j"
    log "  $t pull: $(jq -r .mb_per_s <<<"$j") MB/s"
  done
done

# ---------------------------------------------------------------- skopeo (image with one big layer)
if [ "$SKOPEO" = 1 ]; then
  log "skopeo: building an image with one $SKOPEO_MIB MiB layer (umoci)"
  mkdir -p "$W/rootfs"
  "$BB" gen-file --path "$W/rootfs/payload" --size-mib "$SKOPEO_MIB" --seed 99 >/dev/null
  (cd "$W" && umoci init --layout oci && umoci new --image oci:big \
    && umoci insert --image oci:big rootfs / >/dev/null \
    && umoci config --image oci:big --architecture amd64 --os linux --config.cmd /payload) || die "umoci failed"
  rm -rf "$W/rootfs"
  layer_bytes=$(skopeo inspect --raw "oci:$W/oci:big" | jq '[.layers[].size] | add')
  for rep in $(seq 1 "$REPEAT"); do
    for t in $(order "$rep"); do
      host=${URL[$t]#http://}; ref=$host/skopeo/$t-$rep:v1
      creds_d=(); creds_s=()
      [ -n "${CREDS[$t]:-}" ] && { creds_d=(--dest-creds "${CREDS[$t]}"); creds_s=(--src-creds "${CREDS[$t]}"); }
      $SUDO rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
      sync; t0=$(now)
      skopeo copy -q --dest-tls-verify=false "${creds_d[@]}" "oci:$W/oci:big" "docker://$ref" >/dev/null || die "skopeo push to $t failed"
      s=$(since "$t0")
      rec skopeo_push "$t" "{\"secs\": $s, \"mb_per_s\": $(awk -v b="$layer_bytes" -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
      rm -rf "$W/pull"
      t0=$(now)
      skopeo copy -q --src-tls-verify=false "${creds_s[@]}" "docker://$ref" "oci:$W/pull:img" >/dev/null || die "skopeo pull from $t failed"
      s=$(since "$t0")
      rec skopeo_pull "$t" "{\"secs\": $s, \"mb_per_s\": $(awk -v b="$layer_bytes" -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
      rm -rf "$W/pull"
      log "  $t skopeo: push/pull of $layer_bytes bytes done"
    done
  done
fi

# ---------------------------------------------------------------- manifest GET by tag
log "manifest GET by tag (${LOAD_S}s per point)"
for t in $TARGETS; do bb "$t" push-image --repo manifest/app --tag latest >/dev/null; done
for c in $CONNS; do
  for t in $(order "$c"); do
    j=$(bb "$t" manifest-load --repo manifest/app --reference latest --connections "$c" --duration "$LOAD_S" --warmup "$WARM_S")
    rec "manifest_c$c" "$t" "$j"
    log "  $t @$c: $(jq -r '"\(.req_per_s) req/s, p50 \(.latency.p50_ms) ms, p99 \(.latency.p99_ms) ms, errors \(.errors)"' <<<"$j")"
  done
done

# ---------------------------------------------------------------- small images, concurrently
log "$IMAGES small images, $IMAGE_WORKERS workers"
for rep in $(seq 1 "$REPEAT"); do
  for t in $(order "$rep"); do
    j=$(bb "$t" push-images --repo "small/r$rep" --count "$IMAGES" --workers "$IMAGE_WORKERS"); rec push_images "$t" "$j"
    log "  $t: $(jq -r '"\(.images_per_s) images/s"' <<<"$j")"
  done
done

# ---------------------------------------------------------------- tags/list, ListImages as the repository grows
prev=0
for stage in $TAG_STAGES; do
  for t in $TARGETS; do
    log "seeding tags $prev..$stage on $t"
    j=$(bb "$t" seed-tags --repo tags/big --start "$prev" --count $((stage - prev)) --workers 32); rec seed_tags "$t" "$j" "{stage: $stage}"
  done
  for t in $(order "$stage"); do
    j=$(bb "$t" list-tags --repo tags/big --page-size 1000 --repeat 20); rec tags_list "$t" "$j" "{stage: $stage}"
    log "  $t tags/list @$stage: $(jq -r '"first page p50 \(.first_page.p50_ms) ms; walk \(.walk.pages) pages, p99 \(.walk.page.p99_ms) ms"' <<<"$j")"
  done
  if has berth; then
    j=$(AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 \
      bb berth list-images --repo tags/big --max-results 1000 --repeat 20)
    rec list_images berth "$j" "{stage: $stage}"
    log "  berth ListImages @$stage: $(jq -r '"first page p50 \(.first_page.p50_ms) ms (\(.first_page_entries) ids); walk \(.walk.pages) pages"' <<<"$j")"
  fi
  prev=$stage
done

# ---------------------------------------------------------------- _catalog
for t in $TARGETS; do
  log "seeding $REPOS repositories on $t"
  j=$(bb "$t" seed-repos --prefix catalog --count "$REPOS" --workers 32); rec seed_repos "$t" "$j"
done
for t in $TARGETS; do
  j=$(bb "$t" catalog --page-size 1000 --repeat 20); rec catalog "$t" "$j"
  log "  $t _catalog: $(jq -r '"first page p50 \(.first_page.p50_ms) ms; walk \(.walk.pages) pages, p99 \(.walk.page.p99_ms) ms"' <<<"$j")"
done

# ---------------------------------------------------------------- authenticated vs anonymous manifest GET
AUTH_C=16
log "authenticated manifest GET @$AUTH_C"
if has berth; then
  # berth authenticates every /v2/ request; an anonymous GET is refused.
  code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[berth]}/v2/manifest/app/manifests/latest")
  rec auth_anon_probe berth "{\"status\": $code}"
  j=$(bb berth manifest-load --repo manifest/app --reference latest --connections $AUTH_C --duration "$LOAD_S" --warmup "$WARM_S")
  rec manifest_auth berth "$j"
  log "  berth (token): $(jq -r .req_per_s <<<"$j") req/s"
fi
if has distribution; then
  j=$(bb distribution manifest-load --repo manifest/app --reference latest --connections $AUTH_C --duration "$LOAD_S" --warmup "$WARM_S")
  rec manifest_anon distribution "$j"
  log "  distribution (anonymous): $(jq -r .req_per_s <<<"$j") req/s"
  sleep 1; rec rss_after distribution "{\"rss_kb\": $(rss_kb "${PID[distribution]}")}"
  stop distribution
  htpasswd -Bbc "$W/htpasswd" bench benchpassword 2>/dev/null
  start_distribution distauth "$W/htpasswd"
  CREDS[distauth]=bench:benchpassword
  j=$(bb distauth manifest-load --repo manifest/app --reference latest --connections $AUTH_C --duration "$LOAD_S" --warmup "$WARM_S")
  rec manifest_auth distribution "$j" '{htpasswd: "bcrypt (htpasswd -B, cost 5)"}'
  log "  distribution (htpasswd): $(jq -r .req_per_s <<<"$j") req/s"
fi
if has berth; then sleep 1; rec rss_after berth "{\"rss_kb\": $(rss_kb "${PID[berth]}")}"; fi
for t in $TARGETS; do du -sk "$W/$t/data" 2>/dev/null | awk -v t="$t" '{ print "{\"kb\": " $1 "}" }' | while read -r j; do rec disk_used "$t" "$j"; done; done

# ---------------------------------------------------------------- report
meta=$(jq -n \
  --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --arg nproc "$(nproc)" \
  --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg mem "$(free -h | awk '/^Mem:/ { print $2 }')" \
  --arg disk "$(df -h "$W" | awk 'NR == 2 { print $1 ", " $2 " (" $4 " free)" }'), $(stat -f -c %T "$W")" \
  --arg kernel "$(uname -r)" \
  --arg berth "$("$BERTH" --version 2>/dev/null | head -1) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes'))" \
  --arg distribution "$(command -v docker-registry >/dev/null && docker-registry --version | head -1 || echo '-')" \
  --arg skopeo "$(command -v skopeo >/dev/null && skopeo --version || echo '-')" \
  --arg rustc "$(rustc --version)" \
  --arg openssl "$(openssl version)" \
  --arg command "$COMMAND" \
  --arg scale "$SCALE" --arg blob "$BLOB_MIB" --arg chunk "$CHUNK_MIB" --arg stages "$TAG_STAGES" --arg repos "$REPOS" \
  --arg load "$LOAD_S" --arg images "$IMAGES" --arg workers "$IMAGE_WORKERS" --arg skopeo_mib "$SKOPEO_MIB" --arg repeat "$REPEAT" \
  --arg targets "$TARGETS" --arg quiet "$QUIET" --arg threads "$BENCH_CLIENT_THREADS" --arg berth_args "$BERTH_ARGS" \
  '$ARGS.named')
{ echo "<!-- compare:start -->"; python3 "$ROOT/bench/report.py" "$RAW" "$meta"; echo "<!-- compare:end -->"; } >"$W/section.md"
replace_section "$OUT" "$W/section.md" compare
cp "$RAW" "${OUT%.md}.jsonl"
cat "$W/section.md"
log "wrote $OUT and ${OUT%.md}.jsonl"
