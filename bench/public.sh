#!/usr/bin/env bash
# ECR Public (issue 18): anonymous pulls of a public repository against authenticated ones, and what
# the pull and API rate limiters cost, on one berth process (embedded storage, loopback port picked
# by the kernel).
#
#   bench/public.sh                      # full (~8 min): writes the "ECR Public" section of bench/RESULTS.md
#   PUB_SCALE=small PUB_OUT=/tmp/p.md bench/public.sh    # tiny (CI: bench/ci-smoke.sh)
#
# One image (berth-bench's small image) pushed to the public repository bench/public (ECR Public's
# token) and copied with skopeo to the private repository bench/private (ECR's token), the same
# digest; one PUB_BLOB_MIB (64) MiB blob pushed to both. berth runs in two configurations, one at a
# time on the same data directory, restarted between them, the order rotating every repetition:
#   open     --public-registry-host localhost --anonymous-pull-rate 0 --authenticated-pull-rate 0 (no pull limiter; no API limiter,
#            the default): manifest GET by tag at 1 and PUB_CONNECTIONS (16) connections of
#              anon     /v2/<alias>/bench/public/manifests/latest, no Authorization header
#              auth     the same URL with Basic AWS:<ecr-public get-login-password>
#              private  /v2/bench/private/manifests/latest with Basic AWS:<ecr get-login-password>
#              anon-host, auth-host  anon and auth on berth's public registry host (--public-registry-host
#                       localhost, reached as http://localhost:<port>), where the alias alone names the
#                       repository (no lookup of the repository per request, as on the plain address)
#            then PUB_BLOB_PULLS (30) rounds of one GET of the 64 MiB blob for each of the three (one
#            connection; order rotating every round), and DescribeRepositories (SigV4, bench/api_load.py) at 16 connections.
#   limited  every limiter on with a rate and a burst of 1e9 (never refuses; every request still
#            takes a token): auth, auth-host and anon-host manifest GET at 16 connections (also run
#            in open as the "off" points), DescribeRepositories at 16.
# The server's CPU seconds (utime + stime from /proc) are recorded for every point: CPU per request is
# the limiter's cost even where the load generator, sharing the two cores, is the bottleneck.
#
# Environment (optional): PUB_SCALE=full|small, PUB_REPEAT, PUB_LOAD_SECONDS, PUB_WARMUP_SECONDS
# (unrecorded load before each point; full 1), PUB_CONNECTIONS (16),
# PUB_BLOB_MIB (64), PUB_BLOB_PULLS, PUB_OUT (the markdown file whose "ECR Public" section is
# replaced; full: bench/RESULTS.md), BENCH_BUILD=0, BERTH_BIN / BENCH_BIN (with both, cargo is not
# run), BENCH_KEEP=1 (keep the scratch directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/bench/lib.sh"
COMMAND="$(printf '%q ' "$0" "$@")"
# Only the bench's own settings (never other BERTH_* variables, which may hold credentials).
for v in $(env | grep -o '^\(PUB_[A-Z0-9_]*\|BENCH_[A-Z0-9_]*\|BERTH_BIN\)=' | tr -d '=' | sort -u); do COMMAND="$v=${!v-} $COMMAND"; done

SCALE=${PUB_SCALE:-full}
case "$SCALE" in
  full) d_repeat=3 d_load=8 d_warmup=1 d_blob=64 d_pulls=30 d_out=$ROOT/bench/RESULTS.md ;;
  small) d_repeat=1 d_load=0.5 d_warmup=0.2 d_blob=4 d_pulls=2 d_out="" ;;
  *) echo "PUB_SCALE must be full or small" >&2; exit 2 ;;
esac
REPEAT=${PUB_REPEAT:-$d_repeat}
LOAD_S=${PUB_LOAD_SECONDS:-$d_load}
WARMUP_S=${PUB_WARMUP_SECONDS:-$d_warmup}
CONNS=${PUB_CONNECTIONS:-16}
BLOB_MIB=${PUB_BLOB_MIB:-$d_blob}
BLOB_PULLS=${PUB_BLOB_PULLS:-$d_pulls}
OUT=${PUB_OUT-$d_out}
export BENCH_CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}

for c in jq curl openssl python3 skopeo; do command -v "$c" >/dev/null || die "$c is needed"; done
python3 -c 'import boto3' 2>/dev/null || die "boto3 is needed (pip install boto3)"
bench_binaries
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
bench_scratch berth-public-bench

export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000006 AWS_DEFAULT_REGION=us-east-1
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
export AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY
# Nothing in the background: no scrub, GC or lifecycle passes.
export BERTH_SCRUB_INTERVAL_SECONDS=0 BERTH_GC_INTERVAL_SECONDS=0 BERTH_LIFECYCLE_INTERVAL_SECONDS=0
NEVER=1000000000
declare -A MODE_ARGS=(
  [open]="--public-registry-host localhost --anonymous-pull-rate 0 --authenticated-pull-rate 0 --api-rate-limit 0"
  [limited]="--public-registry-host localhost --anonymous-pull-rate $NEVER --anonymous-pull-burst $NEVER --authenticated-pull-rate $NEVER --authenticated-pull-burst $NEVER --api-rate-limit $NEVER --api-burst $NEVER"
)
DATA[berth]=$W/berth/data
declare -A CREDS REPO

serve() { # MODE: (re)starts the one berth process in MODE and fetches both tokens
  # shellcheck disable=SC2086
  start_berth berth ${MODE_ARGS[$1]}
  local tokens
  tokens=$(python3 - "${URL[berth]}" <<'EOF'
import base64, sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="us-east-1")
pub = boto3.client("ecr-public", endpoint_url=sys.argv[1], region_name="us-east-1")
private = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
public = pub.get_authorization_token()["authorizationData"]["authorizationToken"]
print(base64.b64decode(public).decode().split(":", 1)[1], base64.b64decode(private).decode().split(":", 1)[1])
EOF
  ) || die "get-login-password failed"
  CREDS[anon]="" CREDS[auth]=AWS:${tokens% *} CREDS[private]=AWS:${tokens#* }
  CREDS[anon-host]="" CREDS[auth-host]=${CREDS[auth]}
}
base_url() { # TARGET → the URL berth is reached at for it: the public host's name for *-host
  case "$1" in *-host) echo "http://localhost:${URL[berth]##*:}" ;; *) echo "${URL[berth]}" ;; esac
}

bb() { # TARGET SUBCOMMAND ARGS... → JSON on stdout (TARGET's credentials, none for anon)
  local t=$1; shift
  if [ -z "${CREDS[$t]}" ]; then
    env -u BENCH_USER -u BENCH_PASSWORD BENCH_URL="$(base_url "$t")" "$BB" "$@"
  else
    BENCH_URL="$(base_url "$t")" BENCH_USER=AWS BENCH_PASSWORD="${CREDS[$t]#AWS:}" "$BB" "$@"
  fi
}
with_cpu() { # CMD... → its JSON plus the server's CPU seconds it took
  local a j
  a=$(cpu_ticks "${PID[berth]}")
  j=$("$@")
  jq -c --argjson t "$(( $(cpu_ticks "${PID[berth]}") - a ))" --argjson hz "$(getconf CLK_TCK)" \
    '. + {server_cpu_s: ($t / $hz)} + (if .requests > 0 then {server_cpu_us_per_req: (($t / $hz) * 1e6 / .requests | round)} else {} end)' <<<"$j"
}
check() { # KEY TARGET JSON: no errors, else the run fails
  [ "$(jq .errors <<<"$3")" = 0 ] || die "$1 $2: $(jq -r '"\(.errors) errors, last: \(.last_error)"' <<<"$3")"
}
manifest_point() { # KEY TARGET CONNECTIONS
  local j
  j=$(with_cpu bb "$2" manifest-load --repo "${REPO[$2]}" --reference latest --connections "$3" --duration "$LOAD_S" --warmup "$WARMUP_S")
  check "$1" "$2" "$j"; rec "$1" "$2" "$j"
  log "  $1 $2 @$3: $(jq -r '"\(.req_per_s) req/s, p50 \(.latency.p50_ms) ms, p99 \(.latency.p99_ms) ms, server \(.server_cpu_us_per_req) µs/req"' <<<"$j")"
}
api_point() { # KEY TARGET
  local j
  j=$(with_cpu python3 "$ROOT/bench/api_load.py" "${URL[berth]}" AmazonEC2ContainerRegistry_V20150921.DescribeRepositories \
    '{"repositoryNames": ["bench/private"]}' "$CONNS" "$LOAD_S" "$WARMUP_S")
  check "$1" "$2" "$j"; rec "$1" "$2" "$j"
  log "  $1 $2 @$CONNS: $(jq -r '"\(.req_per_s) req/s, p99 \(.latency.p99_ms) ms, server \(.server_cpu_us_per_req) µs/req"' <<<"$j")"
}
blob_round() { # (repetition $rep) BLOB_PULLS rounds of one blob GET per target (one connection, order rotating
  # every round, so that a machine whose load drifts weighs on every target alike); one row per target
  local i t a j
  for i in $(seq 1 "$BLOB_PULLS"); do
    for t in $(order "$((rep + i))" anon auth private); do
      a=$(cpu_ticks "${PID[berth]}")
      j=$(bb "$t" pull-blob --repo "${REPO[$t]}" --digest "$BLOB") || die "blob GET ($t) failed"
      jq -c --argjson t "$(( $(cpu_ticks "${PID[berth]}") - a ))" '. + {ticks: $t}' <<<"$j" >>"$W/blob-$t.jsonl"
    done
  done
  for t in anon auth private; do
    j=$(jq -s -c --argjson hz "$(getconf CLK_TCK)" '{pulls: length, bytes: (map(.bytes) | add), secs: (map(.secs) | add),
        server_cpu_s: ((map(.ticks) | add) / $hz), pull_mb_per_s: map(.mb_per_s)}
      | . + {mb_per_s: (.bytes / .secs / 1e6 * 10 | round / 10)}' "$W/blob-$t.jsonl")
    rm -f "$W/blob-$t.jsonl"
    [ "$(jq .pulls <<<"$j")" = "$BLOB_PULLS" ] || die "blob GETs ($t) failed"
    rec blob "$t" "$j"
    log "  blob $t: $(jq -r '"\(.mb_per_s) MB/s over \(.pulls) pulls, server CPU \(.server_cpu_s) s"' <<<"$j")"
  done
}
# The items in an order that rotates with N.
order() { local n=$1 i; shift; local a=("$@"); for i in $(seq 0 $((${#a[@]} - 1))); do echo "${a[$(( (i + n) % ${#a[@]} ))]}"; done; }

# ---------------------------------------------------------------- setup
serve open
ALIAS=$(python3 - "${URL[berth]}" <<'EOF'
import sys, boto3
url = sys.argv[1]
boto3.client("ecr", endpoint_url=url, region_name="us-east-1").create_repository(repositoryName="bench/private")
pub = boto3.client("ecr-public", endpoint_url=url, region_name="us-east-1")
pub.create_repository(repositoryName="bench/public")
print(pub.describe_registries()["registries"][0]["aliases"][0]["name"])
EOF
) || die "creating the repositories failed"
REPO[anon]=$ALIAS/bench/public REPO[auth]=$ALIAS/bench/public REPO[private]=bench/private
REPO[anon-host]=${REPO[anon]} REPO[auth-host]=${REPO[auth]}
host=${URL[berth]#http://}
image=$(bb auth push-image --repo "${REPO[auth]}" --tag latest) || die "push to ${REPO[auth]} failed"
skopeo copy -q --preserve-digests --src-tls-verify=false --src-creds "${CREDS[auth]}" --dest-tls-verify=false --dest-creds "${CREDS[private]}" \
  "docker://$host/${REPO[auth]}:latest" "docker://$host/${REPO[private]}:latest" >/dev/null || die "skopeo copy public → private failed"
digest_of() { # TARGET → the digest of the manifest TARGET's repository answers for latest
  local auth=(); [ -n "${CREDS[$1]}" ] && auth=(-u "${CREDS[$1]}")
  curl -sf "${auth[@]}" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$(base_url "$1")/v2/${REPO[$1]}/manifests/latest" \
    | sha256sum | sed 's/^/sha256:/; s/ .*//'
}
want=$(jq -r .manifest <<<"$image")
for t in anon auth private anon-host auth-host; do got=$(digest_of "$t"); [ "$got" = "$want" ] || die "$t: ${REPO[$t]}:latest is $got, not $want"; done
f=$W/blob
BLOB=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed 18 | jq -r .digest)
for t in auth private; do bb "$t" push-blob --repo "${REPO[$t]}" --file "$f" --digest "$BLOB" >/dev/null || die "blob push ($t) failed"; done
rm -f "$f"
# Anonymous reads are refused where they must be (the measurements would mean nothing otherwise).
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[berth]}/v2/${REPO[private]}/manifests/latest")
[ "$code" = 401 ] || die "an anonymous GET of the private repository answered $code, not 401"
log "image $want in ${REPO[anon]} and ${REPO[private]}; blob $BLOB ($BLOB_MIB MiB)"

# ---------------------------------------------------------------- measurements
first=1
for rep in $(seq 1 "$REPEAT"); do
  for mode in $(order "$rep" open limited); do
    [ "$first" = 1 ] || { stop_berth berth; serve "$mode"; }
    first=0
    log "repetition $rep, berth $mode"
    if [ "$mode" = open ]; then
      for c in 1 "$CONNS"; do
        for t in $(order "$rep" anon auth private anon-host auth-host); do manifest_point "manifest_$c" "$t" "$c"; done
      done
      blob_round
      for t in $(order "$rep" auth auth-host anon-host); do manifest_point "limiter_off" "$t" "$CONNS"; done
      api_point "api_limiter" off
    else
      for t in $(order "$rep" auth auth-host anon-host); do manifest_point "limiter_on" "$t" "$CONNS"; done
      api_point "api_limiter" on
    fi
  done
done
stop_berth berth

# ---------------------------------------------------------------- report
meta=$(jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg nproc "$(nproc)" \
  --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg berth "$("$BERTH" --version | head -1)" --arg command "$COMMAND" --arg scale "$SCALE" \
  --arg repeat "$REPEAT" --arg load "$LOAD_S" --arg warmup "$WARMUP_S" --arg conns "$CONNS" --arg blob_mib "$BLOB_MIB" --arg pulls "$BLOB_PULLS" \
  --arg open "${MODE_ARGS[open]}" --arg limited "${MODE_ARGS[limited]}" '$ARGS.named')
section=$W/section.md
python3 "$ROOT/bench/public_report.py" "$RAW" "$meta" >"$section"
cat "$section"
if [ -n "$OUT" ]; then
  replace_section "$OUT" "$section" public-bench
  cp "$RAW" "${OUT%.md}.public.jsonl"
  log "wrote the ECR Public section of $OUT (raw figures: ${OUT%.md}.public.jsonl)"
fi
