#!/usr/bin/env bash
# A/B of the hot paths between two berth binaries on this machine: GETs of one small blob and of
# one manifest by tag from C connections, a push and full pulls of one large blob, alternating A
# and B per repetition.
#   bench/blob-get-ab.sh OLD_BERTH NEW_BERTH        (needs target/release/berth-bench, boto3)
# Env: AB_SECONDS (10) AB_CONNECTIONS ("1 16") AB_BLOB_MIB (256) AB_REPEAT (3)
#      AB_BERTH_ARGS ("--aes256-by-storage": blobs in clear, the filesystem's mapped reader; "" for
#      berth as shipped, every blob sealed at rest)
set -euo pipefail
A=$1 B=$2
BB=${BB:-$(dirname "$0")/../target/release/berth-bench}
BERTH_ARGS=${AB_BERTH_ARGS---aes256-by-storage}
SECONDS_=${AB_SECONDS:-10} CONNS=${AB_CONNECTIONS:-"1 16"} MIB=${AB_BLOB_MIB:-256} REPEAT=${AB_REPEAT:-3}
W=$(mktemp -d /var/tmp/berth-ab.XXXXXX)
# The servers are started inside $(start …) subshells, so they are not this shell's jobs: their pid files name them.
trap 'kill $(cat "$W"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$W"' EXIT
# No background scrub during the measurement (an environment variable: older binaries ignore it).
export BERTH_SCRUB_INTERVAL_SECONDS=0
export BERTH_ADMIN_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE BERTH_ADMIN_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
start() { # name binary [listen] -> prints the URL
  : >"$W/$1.out"
  # shellcheck disable=SC2086 # BERTH_ARGS is a list of flags
  "$2" serve --listen "${3:-127.0.0.1:0}" --data-dir "$W/$1" $BERTH_ARGS >"$W/$1.out" 2>"$W/$1.log" &
  echo $! >"$W/$1.pid"
  until grep -q "listening on" "$W/$1.out" 2>/dev/null; do
    kill -0 "$(cat "$W/$1.pid")" 2>/dev/null || { echo "$2 did not start: $(tail -3 "$W/$1.log")" >&2; exit 1; }
    sleep 0.1
  done
  echo "http://$(sed -n 's/listening on //p' "$W/$1.out")"
}
token() {
  python3 -c "import base64,boto3,sys;c=boto3.client('ecr',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='$BERTH_ADMIN_ACCESS_KEY_ID',aws_secret_access_key='$BERTH_ADMIN_SECRET_ACCESS_KEY');print(base64.b64decode(c.get_authorization_token()['authorizationData'][0]['authorizationToken']).decode().split(':',1)[1])" "$1"
}
head -c 4096 /dev/urandom >"$W/small"
"$BB" gen-file --path "$W/large" --size-mib "$MIB" >/dev/null
declare -A URL PW SMALL LARGE
for t in A B; do
  bin=${!t}
  URL[$t]=$(start "$t" "$bin")
  PW[$t]=$(token "${URL[$t]}")
  export BENCH_URL=${URL[$t]} BENCH_USER=AWS BENCH_PASSWORD=${PW[$t]}
  SMALL[$t]=$("$BB" push-blob --repo ab/small --file "$W/small" | python3 -c 'import json,sys;print(json.load(sys.stdin)["digest"])')
  LARGE[$t]=$("$BB" push-blob --repo ab/large --file "$W/large" | python3 -c 'import json,sys;print(json.load(sys.stdin)["digest"])')
  "$BB" push-image --repo ab/img --tag latest >/dev/null
done
for rep in $(seq "$REPEAT"); do
  for t in A B; do
    export BENCH_URL=${URL[$t]} BENCH_USER=AWS BENCH_PASSWORD=${PW[$t]}
    for c in $CONNS; do
      r=$("$BB" manifest-load --repo ab/small --blob "${SMALL[$t]}" --connections "$c" --duration "$SECONDS_" --warmup 1)
      echo "$t rep$rep small-blob GET @$c: $(echo "$r" | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["req_per_s"],"req/s, errors",j["errors"])')"
      r=$("$BB" manifest-load --repo ab/img --reference latest --connections "$c" --duration "$SECONDS_" --warmup 1)
      echo "$t rep$rep manifest GET @$c: $(echo "$r" | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["req_per_s"],"req/s, errors",j["errors"])')"
    done
    r=$("$BB" push-blob --repo "ab/push-$rep" --file "$W/large" --digest "${LARGE[$t]}")
    echo "$t rep$rep ${MIB} MiB push: $(echo "$r" | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["mb_per_s"],"MB/s")')"
    r=$("$BB" pull-blob --repo ab/large --digest "${LARGE[$t]}")
    echo "$t rep$rep ${MIB} MiB pull: $(echo "$r" | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["mb_per_s"],"MB/s")')"
  done
done
# After a restart nothing is verified yet: the first full read of a blob is hashed as it streams.
for t in A B; do
  kill "$(cat "$W/$t.pid")"; wait "$(cat "$W/$t.pid")" 2>/dev/null || true
  URL[$t]=$(start "$t" "${!t}" "${URL[$t]#http://}")
  export BENCH_URL=${URL[$t]} BENCH_USER=AWS BENCH_PASSWORD=${PW[$t]}
  for n in first second; do
    r=$("$BB" pull-blob --repo ab/large --digest "${LARGE[$t]}")
    echo "$t after restart, $n ${MIB} MiB pull: $(echo "$r" | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["mb_per_s"],"MB/s")')"
  done
done
