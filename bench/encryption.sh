#!/usr/bin/env bash
# Encryption at rest (issue 16): the same blob and image workloads against a repository whose
# blobs are stored in clear and against encrypted ones, in one run on this machine.
#
#   bench/encryption.sh                     # full (~15 min): writes the "Encryption at rest" section of bench/RESULTS.md
#   ENC_SCALE=small ENC_OUT=/tmp/enc.md bench/encryption.sh    # tiny, every read verified (CI: bench/ci-smoke.sh)
#
# Three targets on two berth processes:
#   clear   an AES256 repository on a berth started with --aes256-by-storage (its blobs in clear)
#   kms     a KMS repository (a key made through berth's own KMS API) on that same berth process
#   aes256  an AES256 repository on a second berth without the flag (sealed under the registry-managed key)
# Workloads, each repeated ENC_REPEAT times in an order that rotates, medians reported: 1 GiB blob
# PUT (monolithic) and 10 MiB-chunked push, 1 GiB GET, the same blob read as consecutive ~16 MiB
# Range GETs, skopeo push and pull of an image with one 200 MiB layer, manifest GET by tag at 16
# connections. The server's CPU seconds (utime + stime from /proc) are recorded for every transfer.
#
# Environment (optional): ENC_SCALE=full|small, ENC_BLOB_MIB, ENC_CHUNK_MIB (10), ENC_RANGE_BYTES
# (bytes per Range GET; full: 16 MiB + 12,345, off every segment boundary), ENC_SKOPEO_MIB,
# ENC_REPEAT, ENC_LOAD_SECONDS, ENC_CONNECTIONS (16), ENC_SKOPEO=1, ENC_VERIFY (hash every pull;
# small: 1), ENC_CRYPTO (run berth-crypto's throughput example; full: 1), ENC_OUT (the markdown file
# whose "Encryption at rest" section is replaced; full: bench/RESULTS.md), BENCH_BUILD=0 (use the
# built binaries), BENCH_KEEP=1 (keep the scratch directory).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMMAND="$(printf '%q ' "$0" "$@")"
for v in $(env | grep -o '^ENC_[A-Z_]*' | sort); do COMMAND="$v=${!v} $COMMAND"; done

SCALE=${ENC_SCALE:-full}
case "$SCALE" in
  full) d_blob=1024 d_range=$(((16 << 20) + 12345)) d_skopeo=200 d_repeat=3 d_load=10 d_verify=0 d_crypto=1 d_out=$ROOT/bench/RESULTS.md ;;
  small) d_blob=16 d_range=$(((1 << 20) + 12345)) d_skopeo=4 d_repeat=1 d_load=1 d_verify=1 d_crypto=0 d_out="" ;;
  *) echo "ENC_SCALE must be full or small" >&2; exit 2 ;;
esac
BLOB_MIB=${ENC_BLOB_MIB:-$d_blob}
CHUNK_MIB=${ENC_CHUNK_MIB:-10}
RANGE_BYTES=${ENC_RANGE_BYTES:-$d_range}
SKOPEO_MIB=${ENC_SKOPEO_MIB:-$d_skopeo}
REPEAT=${ENC_REPEAT:-$d_repeat}
LOAD_S=${ENC_LOAD_SECONDS:-$d_load}
CONNS=${ENC_CONNECTIONS:-16}
SKOPEO=${ENC_SKOPEO:-1}
VERIFY=${ENC_VERIFY:-$d_verify}
CRYPTO=${ENC_CRYPTO:-$d_crypto}
OUT=${ENC_OUT-$d_out}
TARGETS=(clear kms aes256)
export BENCH_CLIENT_THREADS=${BENCH_CLIENT_THREADS:-1}

. "$ROOT/bench/lib.sh"

for c in jq curl openssl python3 aws; do command -v "$c" >/dev/null || die "$c is needed"; done
python3 -c 'import boto3' 2>/dev/null || die "boto3 is needed (pip install boto3)"
[ "$SKOPEO" = 1 ] && { command -v skopeo >/dev/null && command -v umoci >/dev/null || die "skopeo and umoci are needed (or ENC_SKOPEO=0)"; }

bench_binaries
if [ "${BENCH_BUILD:-1}" = 1 ] && [ "$CRYPTO" = 1 ]; then cargo build --release -q -p berth-crypto --example throughput; fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bench_scratch berth-enc-bench

export BERTH_ACCOUNT_ID=123456789012 BERTH_ADMIN_ACCESS_KEY_ID=AKIABERTHBENCH000003 AWS_DEFAULT_REGION=us-east-1
export BERTH_ADMIN_SECRET_ACCESS_KEY=${BERTH_ADMIN_SECRET_ACCESS_KEY:-$(openssl rand -hex 20)}
# No background scrub reading blobs during the measurements.
export BERTH_SCRUB_INTERVAL_SECONDS=0

start_server() { start_berth "$@" && berth_login "$1"; } # NAME [berth serve args...]
start_server plain --aes256-by-storage
start_server sealed
declare -A SERVER=([clear]=plain [kms]=plain [aes256]=sealed)

# Repositories: enc/<target> for blobs, manifest/<target>, skopeo/<target>-<rep>; the KMS key is
# made through the plain server's KMS API.
KEY_ARN=$(python3 - "${URL[plain]}" "${URL[sealed]}" "$REPEAT" <<'EOF'
import os, sys, boto3
plain, sealed, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
kw = dict(region_name="us-east-1", aws_access_key_id=os.environ["BERTH_ADMIN_ACCESS_KEY_ID"],
          aws_secret_access_key=os.environ["BERTH_ADMIN_SECRET_ACCESS_KEY"])
arn = boto3.client("kms", endpoint_url=plain, **kw).create_key(Description="bench/encryption.sh")["KeyMetadata"]["Arn"]
kms = {"encryptionType": "KMS", "kmsKey": arn}
aes = {"encryptionType": "AES256"}
for url, target, enc in [(plain, "clear", aes), (plain, "kms", kms), (sealed, "aes256", aes)]:
    ecr = boto3.client("ecr", endpoint_url=url, **kw)
    names = [f"enc/{target}", f"manifest/{target}"] + [f"skopeo/{target}-{r}" for r in range(1, repeat + 1)]
    for name in names:
        got = ecr.create_repository(repositoryName=name, encryptionConfiguration=enc)["repository"]
        assert got["encryptionConfiguration"]["encryptionType"] == enc["encryptionType"], got
print(arn)
EOF
) || die "creating the KMS key and the repositories failed"
declare -A SCOPE=([clear]="" [kms]="kms:$KEY_ARN" [aes256]=aes256)
log "KMS key $KEY_ARN"

bb() { # TARGET SUBCOMMAND ARGS... → JSON on stdout
  local s=${SERVER[$1]}; shift
  BENCH_URL="${URL[$s]}" BENCH_USER="${CREDS[$s]%%:*}" BENCH_PASSWORD="${CREDS[$s]#*:}" "$BB" "$@"
}
# Runs "$@" (a berth-bench call printing JSON) and adds the server's CPU seconds it took.
with_cpu() { # TARGET CMD...
  local pid=${PID[${SERVER[$1]}]} a j
  a=$(cpu_ticks "$pid")
  j=$("${@:2}")
  jq -c --argjson t "$(( $(cpu_ticks "$pid") - a ))" --argjson hz "$(getconf CLK_TCK)" '. + {server_cpu_s: ($t / $hz)}' <<<"$j"
}
# The targets in an order that rotates with N.
order() { local i; for i in 0 1 2; do echo "${TARGETS[$(( (i + $1) % 3 ))]}"; done; }
gc_all() {
  local s
  for s in plain sealed; do
    curl -sf -u "${CREDS[$s]}" -X POST "${URL[$s]}/_berth/gc?grace_seconds=0" >/dev/null || die "GC on $s failed"
  done
}
# Where the target's copy of DIGEST lies on disk: the clear one in the plain store, the others
# sealed (and, on the server that has no clear repository, nowhere in clear).
check_stored() { # TARGET DIGEST
  local t=$1 d=$2 hex obj data=${DATA[${SERVER[$1]}]}
  hex=${d#sha256:}
  obj=$(printf 'berth sealed object v1\n%s\n%s' "${SCOPE[$t]}" "$d" | sha256sum | cut -d' ' -f1)
  if [ "$t" = clear ]; then
    [ -n "$(find "$data" -path '*/sealed' -prune -o -name "$hex" -print)" ] || die "$t: $d is not stored in clear"
  else
    [ "$t" = kms ] || [ -z "$(find "$data" -name "$hex" -print)" ] || die "$t: $d is stored in clear"
    [ -n "$(find "$data/sealed" -name "$obj" -print)" ] || die "$t: no sealed object of $d in scope ${SCOPE[$t]}"
  fi
}
verify=(); [ "$VERIFY" = 1 ] && verify=(--verify)

# ---------------------------------------------------------------- this machine's crypto
ossl_aes=$(openssl speed -evp aes-256-gcm -bytes 65536 -seconds 2 2>/dev/null | awk '/^(aes-256-gcm|AES-256-GCM)/ { v=$NF } END { sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')
rec openssl_aes256gcm machine "{\"mb_per_s\": $ossl_aes}"
ossl_sha=$(openssl speed -evp sha256 -bytes 16384 -seconds 2 2>/dev/null | awk '/^(sha256|SHA256|SHA2-256)/ { v=$NF } END { sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')
rec openssl_sha256 machine "{\"mb_per_s\": $ossl_sha}"
if [ "$CRYPTO" = 1 ]; then
  for layers in 1 2; do
    line=$("$TARGET_DIR/release/examples/throughput" 1024 "$layers")
    rec "crypto_example_$layers" machine "$(sed -E 's/.*encrypt ([0-9]+) MiB\/s, decrypt ([0-9]+) MiB\/s.*/{"encrypt_mib_s": \1, "decrypt_mib_s": \2}/' <<<"$line")"
    log "berth-crypto example: $line"
  done
fi

# ---------------------------------------------------------------- pull: whole GET and Range GETs
log "pull: one $BLOB_MIB MiB blob in each target"
f=$W/blob-pull
digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed 7 | jq -r .digest)
for t in "${TARGETS[@]}"; do
  bb "$t" push-blob --repo "enc/$t" --file "$f" --digest "$digest" >/dev/null
  check_stored "$t" "$digest"
done
rm -f "$f"
for rep in $(seq 1 "$REPEAT"); do
  for t in $(order "$rep"); do
    j=$(with_cpu "$t" bb "$t" pull-blob --repo "enc/$t" --digest "$digest" "${verify[@]}"); rec pull "$t" "$j"
    log "  $t pull: $(jq -r '"\(.mb_per_s) MB/s, server CPU \(.server_cpu_s) s"' <<<"$j")"
    j=$(with_cpu "$t" bb "$t" pull-range --repo "enc/$t" --digest "$digest" --range-bytes "$RANGE_BYTES" "${verify[@]}"); rec pull_range "$t" "$j"
    log "  $t range pull: $(jq -r '"\(.mb_per_s) MB/s in \(.requests) ranges, server CPU \(.server_cpu_s) s"' <<<"$j")"
  done
done
gc_all

# ---------------------------------------------------------------- push: monolithic and chunked
for rep in $(seq 1 "$REPEAT"); do
  for kind in mono chunk; do
    f=$W/blob-$kind
    digest=$("$BB" gen-file --path "$f" --size-mib "$BLOB_MIB" --seed $((rep * 10 + ${#kind})) | jq -r .digest)
    for t in $(order "$rep"); do
      args=(--repo "enc/$t" --file "$f" --digest "$digest" --rss-pid "${PID[${SERVER[$t]}]}")
      [ "$kind" = chunk ] && args+=(--chunk-mib "$CHUNK_MIB")
      sync  # no dirty pages left by the file's generation or the previous push
      j=$(with_cpu "$t" bb "$t" push-blob "${args[@]}"); rec "push_$kind" "$t" "$j"
      log "  $t push $kind: $(jq -r '"\(.mb_per_s) MB/s, server CPU \(.server_cpu_s) s, peak RSS \(.rss.rss_peak_kb) kB"' <<<"$j")"
      check_stored "$t" "$digest"
    done
    rm -f "$f"
    gc_all  # nothing references the blob: its copies go, and the disk holds one at a time
  done
done

# ---------------------------------------------------------------- skopeo (one big layer)
if [ "$SKOPEO" = 1 ]; then
  log "skopeo: an image with one $SKOPEO_MIB MiB layer (umoci)"
  mkdir -p "$W/rootfs"
  "$BB" gen-file --path "$W/rootfs/payload" --size-mib "$SKOPEO_MIB" --seed 99 >/dev/null
  (cd "$W" && umoci init --layout oci && umoci new --image oci:big \
    && umoci insert --image oci:big rootfs / >/dev/null \
    && umoci config --image oci:big --architecture amd64 --os linux --config.cmd /payload) || die "umoci failed"
  rm -rf "$W/rootfs"
  layer_bytes=$(skopeo inspect --raw "oci:$W/oci:big" | jq '[.layers[].size] | add')
  layer_digest=$(skopeo inspect --raw "oci:$W/oci:big" | jq -r '.layers[0].digest')
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  for rep in $(seq 1 "$REPEAT"); do
    for t in $(order "$rep"); do
      s=${SERVER[$t]} ref=${URL[${SERVER[$t]}]#http://}/skopeo/$t-$rep:v1
      $SUDO rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"
      pid=${PID[$s]}; a=$(cpu_ticks "$pid"); sync; t0=$(now)
      skopeo copy -q --dest-tls-verify=false --dest-creds "${CREDS[$s]}" "oci:$W/oci:big" "docker://$ref" >/dev/null || die "skopeo push to $t failed"
      secs=$(since "$t0"); cpu=$(( $(cpu_ticks "$pid") - a ))
      rec skopeo_push "$t" "{\"secs\": $secs, \"bytes\": $layer_bytes, \"server_cpu_s\": $(awk -v c=$cpu -v hz="$(getconf CLK_TCK)" 'BEGIN { print c / hz }'), \"mb_per_s\": $(awk -v b="$layer_bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
      check_stored "$t" "$layer_digest"
      rm -rf "$W/pull"; a=$(cpu_ticks "$pid"); t0=$(now)
      skopeo copy -q --src-tls-verify=false --src-creds "${CREDS[$s]}" "docker://$ref" "oci:$W/pull:img" >/dev/null || die "skopeo pull from $t failed"
      secs=$(since "$t0"); cpu=$(( $(cpu_ticks "$pid") - a ))
      rec skopeo_pull "$t" "{\"secs\": $secs, \"bytes\": $layer_bytes, \"server_cpu_s\": $(awk -v c=$cpu -v hz="$(getconf CLK_TCK)" 'BEGIN { print c / hz }'), \"mb_per_s\": $(awk -v b="$layer_bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }')}"
      # skopeo checks every blob's digest as it writes the layout; check the layer arrived.
      [ "$(skopeo inspect --raw "oci:$W/pull:img" | jq -r '.layers[0].digest')" = "$layer_digest" ] || die "skopeo pull from $t: wrong layer"
      rm -rf "$W/pull"
      log "  $t skopeo: push $(jq -s -r '.[-2].mb_per_s' "$RAW") MB/s, pull $(jq -s -r '.[-1].mb_per_s' "$RAW") MB/s"
      AWS_ACCESS_KEY_ID=$BERTH_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$BERTH_ADMIN_SECRET_ACCESS_KEY \
        aws --endpoint-url "${URL[$s]}" ecr delete-repository --repository-name "skopeo/$t-$rep" --force >/dev/null
    done
    gc_all  # the next repetition uploads the layer again rather than finding it
  done
fi

# ---------------------------------------------------------------- manifest GET by tag
log "manifest GET by tag @$CONNS (${LOAD_S}s per point)"
for t in "${TARGETS[@]}"; do bb "$t" push-image --repo "manifest/$t" --tag latest >/dev/null; done
for rep in $(seq 1 "$REPEAT"); do
  for t in $(order "$rep"); do
    j=$(bb "$t" manifest-load --repo "manifest/$t" --reference latest --connections "$CONNS" --duration "$LOAD_S" --warmup 1)
    rec manifest "$t" "$j"
    log "  $t: $(jq -r '"\(.req_per_s) req/s, p99 \(.latency.p99_ms) ms, errors \(.errors)"' <<<"$j")"
    [ "$(jq .errors <<<"$j")" = 0 ] || die "manifest GET on $t had errors: $(jq -r .last_error <<<"$j")"
  done
done

# ---------------------------------------------------------------- report
meta=$(jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg nproc "$(nproc)" \
  --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg flags "$(grep -m1 -o -w -E 'aes|vaes|pclmulqdq|vpclmulqdq|avx2|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')" \
  --arg berth "$("$BERTH" --version | head -1) (git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ', uncommitted changes in crates/'))" \
  --arg skopeo "$(command -v skopeo >/dev/null && skopeo --version || echo '-')" \
  --arg command "$COMMAND" --arg scale "$SCALE" --arg blob "$BLOB_MIB" --arg chunk "$CHUNK_MIB" --arg range "$RANGE_BYTES" \
  --arg skopeo_mib "$SKOPEO_MIB" --arg repeat "$REPEAT" --arg load "$LOAD_S" --arg conns "$CONNS" --arg verify "$VERIFY" \
  '$ARGS.named')
section=$W/section.md
python3 "$ROOT/bench/encryption_report.py" "$RAW" "$meta" >"$section"
cat "$section"
if [ -n "$OUT" ]; then
  python3 - "$OUT" "$section" <<'EOF'
import re, sys
out, section = sys.argv[1], open(sys.argv[2]).read()
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"<!-- encryption-bench:start -->.*?<!-- encryption-bench:end -->\n?", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
EOF
  cp "$RAW" "${OUT%.md}.encryption.jsonl"
  log "wrote the encryption section of $OUT (raw figures: ${OUT%.md}.encryption.jsonl)"
fi
