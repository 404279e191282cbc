#!/usr/bin/env bash
# Replication (issue 17): how long a pushed image takes to be COMPLETE at its destination, and
# what replication costs the pushes, in one run on this machine (loopback, ports picked by the kernel).
#
#   bench/replication.sh                     # full (~10 min): writes the "Replication" section of bench/RESULTS.md
#   REPL_SCALE=small REPL_OUT=/tmp/r.md bench/replication.sh    # tiny (CI: bench/ci-smoke.sh)
#
# Two berth processes, A and B. A's replication configuration has two rules: repositories
# under "local" go to us-west-2 of A's own account (same instance: rows, not bytes), those under
# "remote" to registry 111111111111, which `berth admin add-remote-registry --auth ecr` maps to B.
#   a. same instance: an image with one REPL_IMAGE_MIB MiB layer (and a tiny one, to show the
#      time does not depend on the size) pushed with skopeo into local/…; the time from the end
#      of the push to COMPLETE, DescribeImageReplicationStatus polled every REPL_POLL_MS (10) ms
#      by the process that ran the push; A's blobs/ + sealed/ bytes before the push and after
#      COMPLETE (one copy stored, not two).
#   b. to B: the same push into remote/… → COMPLETE (polled every REPL_REMOTE_POLL_MS, 20 ms),
#      against `skopeo copy docker://A/… docker://B/…` of another image of the same size that
#      was pushed to A unreplicated; fresh images and repositories every repetition.
#   c. REPL_BURST small images (config + 1 KiB layer + manifest: 7 requests each) pushed by
#      berth-bench with REPL_CONNECTIONS (16) workers into local/burst-N (replicated) and into
#      plain/burst-N (no rule), same server, order rotating; images/s each, A's CPU seconds,
#      and for the replicated burst the lag (queued → COMPLETE, from A's replication_statuses
#      rows) and the time from the burst's end until the last copy was COMPLETE. Then the same
#      bursts into held/…, whose rule names a remote that is down (the pushes queue their copies
#      but no copy runs: what queueing alone costs a push) vs into plain/…, order rotating.
# Every copy is checked: its digest pulled from the destination (a, b) or counted COMPLETE (c).
#
# Environment (optional): REPL_SCALE=full|small, REPL_IMAGE_MIB, REPL_REPEAT, REPL_BURST,
# REPL_BURST_REPEAT, REPL_CONNECTIONS (16), REPL_POLL_MS (10), REPL_REMOTE_POLL_MS (20),
# REPL_DEADLINE_S (a replication not settled by then fails the run; full 300, small 30), REPL_OUT (the markdown
# file whose "Replication" section is replaced; full: bench/RESULTS.md), BENCH_BUILD=0 (use the
# built binaries), BERTH_BIN / BENCH_BIN (other binaries than the target dir's release ones),
# BENCH_KEEP=1 (keep the scratch directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMMAND="$(printf '%q ' "$0" "$@")"
for v in $(env | grep -o '^REPL_[A-Z_]*' | sort); do COMMAND="$v=${!v} $COMMAND"; done

SCALE=${REPL_SCALE:-full}
case "$SCALE" in
  full) d_mib=200 d_repeat=5 d_burst=1000 d_burst_repeat=5 d_deadline=300 d_out=$ROOT/bench/RESULTS.md ;;
  small) d_mib=4 d_repeat=1 d_burst=100 d_burst_repeat=1 d_deadline=30 d_out="" ;;
  *) echo "REPL_SCALE must be full or small" >&2; exit 2 ;;
esac
IMAGE_MIB=${REPL_IMAGE_MIB:-$d_mib}
REPEAT=${REPL_REPEAT:-$d_repeat}
BURST=${REPL_BURST:-$d_burst}
BURST_REPEAT=${REPL_BURST_REPEAT:-$d_burst_repeat}
CONNS=${REPL_CONNECTIONS:-16}
POLL_MS=${REPL_POLL_MS:-10}
REMOTE_POLL_MS=${REPL_REMOTE_POLL_MS:-20}
DEADLINE_S=${REPL_DEADLINE_S:-$d_deadline}
OUT=${REPL_OUT-$d_out}
export BENCH_CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}

. "$ROOT/bench/lib.sh"

for c in jq curl openssl python3 skopeo; do command -v "$c" >/dev/null || die "$c is needed"; done
python3 -c 'import boto3' 2>/dev/null || die "boto3 is needed (pip install boto3)"

bench_binaries
PROBE=(python3 "$ROOT/bench/replication_probe.py")

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
bench_scratch berth-repl-bench

export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000004 AWS_DEFAULT_REGION=us-east-1
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
# Nothing in the background but replication: no scrub reading blobs, no GC or lifecycle passes.
export BERTH_SCRUB_INTERVAL_SECONDS=0 BERTH_GC_INTERVAL_SECONDS=0 BERTH_LIFECYCLE_INTERVAL_SECONDS=0
REMOTE_ID=111111111111
DOWN_ID=222222222222
TINY_KIB=16
LOCAL_DEST=us-west-2/$BERTH_ACCOUNT_ID

start_server() { start_berth "$@" && berth_login "$1"; } # NAME [berth serve args...]
start_server a
start_server b

# B as a remote of A (the secret access key on stdin), and A's rules.
printf %s "$BERTH_ADMIN_SECRET_ACCESS_KEY" | "$BERTH" admin add-remote-registry --data-dir "${DATA[a]}" \
  --registry-id "$REMOTE_ID" --url "${URL[b]}" --insecure --auth ecr --username "$BERTH_ADMIN_ACCESS_KEY_ID" >/dev/null \
  || die "add-remote-registry failed"
# And a remote nothing listens at, for c's last phase (copies queued, none made).
DOWN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BERTH" admin add-remote-registry --data-dir "${DATA[a]}" --registry-id "$DOWN_ID" --url "http://127.0.0.1:$DOWN_PORT" \
  --insecure --auth anonymous </dev/null >/dev/null || die "add-remote-registry (down) failed"
"${PROBE[@]}" configure "${URL[a]}" "$(jq -cn --arg acct "$BERTH_ACCOUNT_ID" --arg remote "$REMOTE_ID" --arg down "$DOWN_ID" '[
  {destinations: [{region: "us-west-2", registryId: $acct}], repositoryFilters: [{filter: "local", filterType: "PREFIX_MATCH"}]},
  {destinations: [{region: "us-east-1", registryId: $remote}], repositoryFilters: [{filter: "remote", filterType: "PREFIX_MATCH"}]},
  {destinations: [{region: "us-east-1", registryId: $down}], repositoryFilters: [{filter: "held", filterType: "PREFIX_MATCH"}]}]')" \
  >/dev/null || die "put-replication-configuration failed"

stored_bytes() { { du -sb "${DATA[$1]}/blobs" "${DATA[$1]}/sealed" 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }
forget_blob_locations() { # skopeo's cache would turn an upload into a mount attempt
  rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"
}
digest_at() { # SERVER REPO TAG → the digest of the manifest the server answers for REPO:TAG
  curl -sf -u "${CREDS[$1]}" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${URL[$1]}/v2/$2/manifests/$3" \
    | sha256sum | sed 's/^/sha256:/; s/ .*//'
}
metric() { # SERVER NAME DESTINATION → the counter's value (0 when absent)
  curl -sf "${URL[$1]}/metrics" | awk -v m="$2{destination=\"$3\"}" '$1 == m { v = $2 } END { print v + 0 }'
}
seed=1000
image() { # TAG KIB SEED → an OCI layout with one fresh image (JSON)
  rm -rf "$W/img-$1"
  "${PROBE[@]}" make-image "$W/img-$1" "$1" "$2" "$3"
}
push_cmd() { # LAYOUT_TAG SERVER REPO → the skopeo command pushing the layout's image to SERVER/REPO:v1
  echo skopeo copy -q --dest-tls-verify=false --dest-creds "${CREDS[$2]}" "oci:$W/img-$1:$1" "docker://${URL[$2]#http://}/$3:v1"
}

# ---------------------------------------------------------------- a. same instance
log "a. same instance: a $IMAGE_MIB MiB-layer image and a $TINY_KIB KiB one → $LOCAL_DEST"
for rep in $(seq 1 "$REPEAT"); do
  sizes=($((IMAGE_MIB * 1024)) "$TINY_KIB"); [ $((rep % 2)) = 0 ] && sizes=("$TINY_KIB" $((IMAGE_MIB * 1024)))
  for kib in "${sizes[@]}"; do
    seed=$((seed + 1)); img=$(image same "$kib" "$seed"); repo=local/a$kib-$rep
    before=$(stored_bytes a); forget_blob_locations; sync
    # shellcheck disable=SC2046
    j=$("${PROBE[@]}" push-wait "${URL[a]}" "$repo" v1 "$POLL_MS" "$DEADLINE_S" "${DATA[a]}/berth.db" -- $(push_cmd same a "$repo")) \
      || die "replication of $repo failed"
    after=$(stored_bytes a)
    want=$(jq -r .manifest <<<"$img")
    [ "$(digest_at a "$BERTH_ACCOUNT_ID/us-west-2/$repo" v1)" = "$want" ] || die "$repo: the us-west-2 copy has another digest"
    j=$(jq -c --argjson img "$img" --argjson grew $((after - before)) '. + {layer_bytes: $img.layer_bytes, stored_growth_bytes: $grew}' <<<"$j")
    rec same "$kib" "$j"
    log "  $kib KiB: push $(jq -r .push_s <<<"$j") s, COMPLETE $(jq -r .complete_ms <<<"$j") ms after it (server: $(jq -r .server_lag_ms <<<"$j") ms), stored +$((after - before)) B"
  done
done
rm -rf "$W"/img-*

# ---------------------------------------------------------------- b. to a second berth
log "b. to berth B: replication vs skopeo copy A → B, $IMAGE_MIB MiB layer"
for rep in $(seq 1 "$REPEAT"); do
  methods=(replication skopeo); [ $((rep % 2)) = 0 ] && methods=(skopeo replication)
  for m in "${methods[@]}"; do
    seed=$((seed + 1)); img=$(image "$m" $((IMAGE_MIB * 1024)) "$seed"); want=$(jq -r .manifest <<<"$img")
    if [ "$m" = replication ]; then
      repo=remote/b-$rep; forget_blob_locations; sync
      # shellcheck disable=SC2046
      j=$("${PROBE[@]}" push-wait "${URL[a]}" "$repo" v1 "$REMOTE_POLL_MS" "$DEADLINE_S" "${DATA[a]}/berth.db" -- $(push_cmd "$m" a "$repo")) \
        || die "replication of $repo to B failed"
      secs=$(jq '.complete_ms / 1000' <<<"$j")
    else
      src=plain/b-$rep repo=copy/b-$rep
      $(push_cmd "$m" a "$src") >/dev/null || die "skopeo push of $src failed"
      forget_blob_locations; sync; t0=$(now)
      skopeo copy -q --src-tls-verify=false --src-creds "${CREDS[a]}" --dest-tls-verify=false --dest-creds "${CREDS[b]}" \
        "docker://${URL[a]#http://}/$src:v1" "docker://${URL[b]#http://}/$repo:v1" >/dev/null || die "skopeo copy A → B failed"
      secs=$(since "$t0"); j="{\"secs\": $secs}"
    fi
    [ "$(digest_at b "$repo" v1)" = "$want" ] || die "B's $repo has another digest"
    j=$(jq -c --argjson img "$img" --argjson s "$secs" '. + {secs: $s, bytes: $img.layer_bytes, mb_per_s: (($img.layer_bytes / $s / 1e5 | round) / 10)}' <<<"$j")
    rec remote "$m" "$j"
    log "  $m: $(jq -r .secs <<<"$j") s ($(jq -r .mb_per_s <<<"$j") MB/s)"
    rm -rf "$W/img-$m"
  done
done

# ---------------------------------------------------------------- c. push throughput, replication on vs off
log "c. $BURST small images @$CONNS into a replicated repository and into one without a rule"
for rep in $(seq 1 "$BURST_REPEAT"); do
  kinds=(on off); [ $((rep % 2)) = 0 ] && kinds=(off on)
  for kind in "${kinds[@]}"; do
    repo=plain/burst-$rep; [ "$kind" = on ] && repo=local/burst-$rep
    done0=$(metric a berth_replication_completed_total "$LOCAL_DEST"); lag0=$(metric a berth_replication_lag_milliseconds_sum "$LOCAL_DEST")
    a0=$(cpu_ticks "${PID[a]}"); sync
    j=$(BENCH_URL="${URL[a]}" BENCH_USER=AWS BENCH_PASSWORD="${CREDS[a]#AWS:}" "$BB" push-images --repo "$repo" --count "$BURST" --workers "$CONNS" --layer-bytes 1024) \
      || die "push-images into $repo failed"
    end_ms=$(date +%s%3N)
    j=$(jq -c --argjson t "$(( $(cpu_ticks "${PID[a]}") - a0 ))" --argjson hz "$(getconf CLK_TCK)" '. + {server_cpu_s: ($t / $hz)}' <<<"$j")
    if [ "$kind" = on ]; then
      w=$("${PROBE[@]}" wait-all "${DATA[a]}/berth.db" "$repo" "$LOCAL_DEST" "$BURST" "$DEADLINE_S" "$end_ms") || die "the burst's replication did not complete"
      done1=$(metric a berth_replication_completed_total "$LOCAL_DEST"); lag1=$(metric a berth_replication_lag_milliseconds_sum "$LOCAL_DEST")
      [ $((done1 - done0)) -ge "$BURST" ] || die "/metrics counts $((done1 - done0)) completed copies, not $BURST"
      j=$(jq -c --argjson w "$w" --argjson c $((done1 - done0)) --argjson l $((lag1 - lag0)) \
        '. + {replication: ($w + {metrics_completed: $c, metrics_mean_lag_ms: (if $c > 0 then ($l / $c * 10 | round) / 10 else null end)})}' <<<"$j")
      log "  on:  $(jq -r '"\(.images_per_s) images/s, server CPU \(.server_cpu_s) s; lag p50 \(.replication.lag_ms.p50) ms p99 \(.replication.lag_ms.p99) ms, drained \(.replication.drain_ms) ms after the burst"' <<<"$j")"
    else
      log "  off: $(jq -r '"\(.images_per_s) images/s, server CPU \(.server_cpu_s) s"' <<<"$j")"
    fi
    rec burst "$kind" "$j"
  done
done
# Then (its jobs keep the workers in retries from then on, so after the above): bursts into
# held/…, whose destination is down, so that a push pays for queueing its copy but no copy runs,
# against bursts without a rule in the same conditions, order rotating.
for rep in $(seq 1 "$BURST_REPEAT"); do
  kinds=(queued off_held); [ $((rep % 2)) = 0 ] && kinds=(off_held queued)
  for kind in "${kinds[@]}"; do
    repo=plain/burst-held-$rep; [ "$kind" = queued ] && repo=held/burst-$rep
    a0=$(cpu_ticks "${PID[a]}"); sync
    j=$(BENCH_URL="${URL[a]}" BENCH_USER=AWS BENCH_PASSWORD="${CREDS[a]#AWS:}" "$BB" push-images --repo "$repo" --count "$BURST" --workers "$CONNS" --layer-bytes 1024) \
      || die "push-images into $repo failed"
    j=$(jq -c --argjson t "$(( $(cpu_ticks "${PID[a]}") - a0 ))" --argjson hz "$(getconf CLK_TCK)" '. + {server_cpu_s: ($t / $hz)}' <<<"$j")
    rec burst "$kind" "$j"
    log "  $kind: $(jq -r '"\(.images_per_s) images/s, server CPU \(.server_cpu_s) s"' <<<"$j")"
  done
done
[ "$(metric a berth_replication_failed_total "$LOCAL_DEST")" = 0 ] || die "/metrics counts failed replications to $LOCAL_DEST"
[ "$(metric a berth_replication_failed_total "us-east-1/$REMOTE_ID")" = 0 ] || die "/metrics counts failed replications to B"

# ---------------------------------------------------------------- report
meta=$(jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg nproc "$(nproc)" \
  --arg load "$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
  --arg ram "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
  --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg berth "$("$BERTH" --version | head -1) (git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ', uncommitted changes in crates/'))" \
  --arg skopeo "$(skopeo --version)" --arg workers "${BERTH_REPLICATION_WORKERS:-4 (default)}" \
  --arg command "$COMMAND" --arg scale "$SCALE" --arg mib "$IMAGE_MIB" --arg repeat "$REPEAT" --arg burst "$BURST" \
  --arg burst_repeat "$BURST_REPEAT" --arg conns "$CONNS" --arg poll "$POLL_MS" --arg remote_poll "$REMOTE_POLL_MS" \
  '$ARGS.named')
section=$W/section.md
python3 "$ROOT/bench/replication_report.py" "$RAW" "$meta" >"$section"
cat "$section"
if [ -n "$OUT" ]; then
  python3 - "$OUT" "$section" <<'EOF'
import re, sys
out, section = sys.argv[1], open(sys.argv[2]).read()
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"<!-- replication-bench:start -->.*?<!-- replication-bench:end -->\n?", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
EOF
  cp "$RAW" "${OUT%.md}.replication.jsonl"
  log "wrote the replication section of $OUT (raw figures: ${OUT%.md}.replication.jsonl)"
fi
