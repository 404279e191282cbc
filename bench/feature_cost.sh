#!/usr/bin/env bash
# The cost of each feature (issue 22): for every feature, two berth processes side by side in one
# run — one without the feature, one with it, otherwise as shipped — and the same workloads on
# both, their order alternating, medians reported as "with ÷ without".
#
#   bench/feature_cost.sh                                   # full (~10 min): the "Cost of each feature" section of bench/RESULTS.md
#   FEAT_SCALE=small FEAT_OUT=/tmp/f.md bench/feature_cost.sh   # tiny (CI: bench/ci-smoke.sh)
#
# Features (without → with):
#   encryption   --aes256-by-storage (blobs in clear) → the default (AES256 blobs sealed by berth)
#   audit        data events off (the default) → --audit-data-events true (every read a record)
#   replication  no rule → a rule copying every repository to us-west-2 of the same registry
#   scanning     no scanning → basic scan on push for every repository
#   logging      BERTH_LOG=warn → BERTH_LOG=info (the default: one line per request)
# Rate limiting is measured by bench/public.sh (its limiters apply to public repositories only).
# Workloads: push of a FEAT_BLOB_MIB MiB blob (monolithic PUT), pull of it (GET), manifest GET by tag
# at FEAT_CONNECTIONS connections for FEAT_LOAD_SECONDS, and a burst of FEAT_IMAGES small images
# pushed by 16 workers (what per-image features — replication, scanning, audit — cost a push).
#
# Environment (optional): FEAT_SCALE=full|small, FEAT_FEATURES ("encryption audit replication
# scanning logging"), FEAT_BLOB_MIB, FEAT_IMAGES, FEAT_LOAD_SECONDS, FEAT_CONNECTIONS (16),
# FEAT_REPEAT, FEAT_VERIFY (hash every pull in the client; small: 1, full: 0, where hashing would
# bound the pull), FEAT_OUT (the markdown file whose section is replaced; full: bench/RESULTS.md),
# BENCH_BUILD=0 (use the built binaries), BERTH_BIN / BENCH_BIN, BENCH_KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMMAND="$(printf '%q ' "$0" "$@")"
for v in $(env | grep -o '^FEAT_[A-Z_]*' | sort); do COMMAND="$v=${!v} $COMMAND"; done

SCALE=${FEAT_SCALE:-full}
case "$SCALE" in
  full) d_blob=256 d_images=300 d_load=5 d_repeat=3 d_verify=0 d_out=$ROOT/bench/RESULTS.md ;;
  small) d_blob=8 d_images=20 d_load=0.5 d_repeat=1 d_verify=1 d_out="" ;;
  *) echo "FEAT_SCALE must be full or small" >&2; exit 2 ;;
esac
FEATURES=${FEAT_FEATURES:-"encryption audit replication scanning logging"}
BLOB_MIB=${FEAT_BLOB_MIB:-$d_blob}
IMAGES=${FEAT_IMAGES:-$d_images}
LOAD_S=${FEAT_LOAD_SECONDS:-$d_load}
CONNS=${FEAT_CONNECTIONS:-16}
REPEAT=${FEAT_REPEAT:-$d_repeat}
OUT=${FEAT_OUT-$d_out}
VERIFY=${FEAT_VERIFY:-$d_verify}
verify=(); [ "$VERIFY" = 1 ] && verify=(--verify)
export BENCH_CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}

. "$ROOT/bench/lib.sh"
for c in jq curl openssl python3; do command -v "$c" >/dev/null || die "$c is needed"; done
python3 -c 'import boto3' 2>/dev/null || die "boto3 is needed (pip install boto3)"
bench_binaries
bench_scratch berth-feature-bench

export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000006 AWS_DEFAULT_REGION=us-east-1
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
# Nothing in the background but the feature measured.
export BERTH_SCRUB_INTERVAL_SECONDS=0 BERTH_GC_INTERVAL_SECONDS=0 BERTH_LIFECYCLE_INTERVAL_SECONDS=0
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# The berth arguments and log level of each side: "without" and "with".
side_args() { # FEATURE SIDE
  case "$1:$2" in
    encryption:without) echo "--aes256-by-storage" ;;
    audit:with) echo "--audit-data-events true" ;;
    *) echo "" ;;
  esac
}
side_log() { [ "$1:$2" = logging:with ] && echo info || echo warn; }

# What the feature needs configured through the API once its server runs.
configure() { # FEATURE URL
  python3 - "$1" "$2" <<'EOF'
import os, sys, boto3
feature, url = sys.argv[1], sys.argv[2]
ecr = boto3.client("ecr", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=os.environ["BERTH_ADMIN_ACCESS_KEY_ID"],
                   aws_secret_access_key=os.environ["BERTH_ADMIN_SECRET_ACCESS_KEY"])
if feature == "replication":
    ecr.put_replication_configuration(replicationConfiguration={"rules": [{"destinations": [
        {"region": "us-west-2", "registryId": os.environ["BERTH_ACCOUNT_ID"]}]}]})
elif feature == "scanning":
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[
        {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])
for name in ("blob", "manifest", "burst"):
    ecr.create_repository(repositoryName=name)
EOF
}

bb() { # SIDE SUBCOMMAND ARGS... → JSON on stdout
  local s=$1; shift
  BENCH_URL="${URL[$s]}" BENCH_USER="${CREDS[$s]%%:*}" BENCH_PASSWORD="${CREDS[$s]#*:}" "$BB" "$@"
}
sides() { if [ $(($1 % 2)) = 0 ]; then echo without with; else echo with without; fi; }

for feature in $FEATURES; do
  log "feature: $feature"
  for side in without with; do
    # A restart of the same name on a fresh data directory.
    unset "DATA[$side]"
    rm -rf "${W:?}/$side"
    # shellcheck disable=SC2046 # the arguments are words
    BERTH_LOG=$(side_log "$feature" "$side") start_berth "$side" $(side_args "$feature" "$side")
    berth_login "$side"
    configure "$feature" "${URL[$side]}" || die "configuring $feature on $side failed"
  done
  f=$W/blob
  for side in without with; do bb "$side" push-image --repo manifest --tag latest >/dev/null; done
  for rep in $(seq 1 "$REPEAT"); do
    digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed "$rep" | jq -r .digest)
    for side in $(sides "$rep"); do
      sync
      push=$(bb "$side" push-blob --repo blob --file "$f" --digest "$digest"); rec "$feature:push" "$side" "$push"
      pull=$(bb "$side" pull-blob --repo blob --digest "$digest" "${verify[@]}"); rec "$feature:pull" "$side" "$pull"
      [ "$VERIFY" = 0 ] || [ "$(jq -r .verified <<<"$pull")" = true ] || die "$feature/$side: the pull was not verified"
      man=$(bb "$side" manifest-load --repo manifest --reference latest --connections "$CONNS" --duration "$LOAD_S" --warmup 0.5)
      rec "$feature:manifest" "$side" "$man"
      [ "$(jq -r .errors <<<"$man")" = 0 ] || die "$feature/$side: manifest GETs failed: $man"
      img=$(bb "$side" push-images --repo burst --count "$IMAGES" --workers 16); rec "$feature:images" "$side" "$img"
      log "  $feature/$side: push $(jq -r .mb_per_s <<<"$push") MB/s, pull $(jq -r .mb_per_s <<<"$pull") MB/s, manifest $(jq -r .req_per_s <<<"$man") req/s, images $(jq -r .images_per_s <<<"$img")/s"
    done
    rm -f "$f"
  done
  for side in without with; do stop_berth "$side"; done
done

section=$W/section.md
python3 "$ROOT/bench/feature_cost_report.py" "$RAW" "$(jq -nc --arg date "$(date -u +%F)" --arg command "$COMMAND" \
  --arg load "$LOAD_START" --arg features "$FEATURES" --argjson blob "$BLOB_MIB" --argjson images "$IMAGES" \
  --argjson conns "$CONNS" --arg load_s "$LOAD_S" --argjson repeat "$REPEAT" \
  '{date: $date, command: $command, load: $load, features: $features, blob: $blob, images: $images, conns: $conns, load_s: $load_s, repeat: $repeat}')" >"$section"
cat "$section"
if [ -n "$OUT" ]; then
  replace_section "$OUT" "$section" feature-cost
  log "wrote $OUT"
fi
