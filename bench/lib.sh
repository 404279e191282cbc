# Shared scaffolding of the bench/*.sh scripts (source it): logging, the scratch directory and its
# cleanup, the binaries, and berth processes on kernel-chosen loopback ports.
#
#   . "$ROOT/bench/lib.sh"
#   bench_binaries                 # BERTH and BB (berth-bench): BERTH_BIN / BENCH_BIN, else the target dir's
#   bench_scratch berth-x-bench    # W (removed on exit unless BENCH_KEEP=1), RAW=$W/results.jsonl
#   start_berth NAME [serve args]  # URL[NAME] PID[NAME] DATA[NAME] (DATA[NAME] kept if already set: a restart); logs at $BERTH_LOG or warn
#   stop_berth NAME
#   berth_login NAME               # CREDS[NAME]=AWS:<token> (ECR GetAuthorizationToken with the admin key, boto3)
#   replace_section OUT SECTION NAME   # OUT's <!-- NAME:start --> … <!-- NAME:end --> becomes SECTION's text
# The caller exports BERTH_ACCOUNT_ID and the BERTH_ADMIN_* key before starting a berth.

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# rec KEY TARGET JSON: one raw row.
rec() { jq -c --arg k "$1" --arg t "$2" '. + {key: $k, target: $t}' <<<"$3" >>"$RAW"; }

# Builds (unless BENCH_BUILD=0) and finds the binaries; with both BERTH_BIN and BENCH_BIN given,
# cargo is not run at all.
bench_binaries() {
  if [ -n "${BERTH_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
    BERTH=$BERTH_BIN BB=$BENCH_BIN
  else
    if [ "${BENCH_BUILD:-1}" = 1 ]; then
      log "building berth and berth-bench (release)"
      cargo build --release -q -p berth -p berth-bench
    fi
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    BERTH=${BERTH_BIN:-$target_dir/release/berth}
    BB=${BENCH_BIN:-$target_dir/release/berth-bench}
  fi
  [ -x "$BERTH" ] || die "no berth binary at $BERTH"
  [ -x "$BB" ] || die "no berth-bench binary at $BB"
}

declare -A URL PID DATA CREDS
PIDS=()
bench_scratch() { # PREFIX
  W=$(mktemp -d "/var/tmp/$1.XXXXXX")
  RAW=$W/results.jsonl
  : >"$RAW"
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}

start_berth() { # NAME [berth serve args...]
  local name=$1; shift
  mkdir -p "$W/$name"
  DATA[$name]=${DATA[$name]:-$W/$name/data}
  BERTH_LOG=${BERTH_LOG:-warn} "$BERTH" serve --listen 127.0.0.1:0 --data-dir "${DATA[$name]}" "$@" >"$W/$name/stdout" 2>"$W/$name/stderr" &
  PID[$name]=$!; PIDS+=("$!")
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(awk '/^listening on / { print $3; exit }' "$W/$name/stdout" 2>/dev/null || true)
    [ -n "$addr" ] && break
    kill -0 "${PID[$name]}" 2>/dev/null || { cat "$W/$name/stderr" >&2; die "berth ($name) exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || die "berth ($name) printed no 'listening on' line"
  URL[$name]=http://$addr
  log "berth $name ${URL[$name]} pid ${PID[$name]} $*"
}

berth_login() { # NAME
  local token
  token=$(python3 - "${URL[$1]}" <<'EOF'
import base64, os, sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id=os.environ["BERTH_ADMIN_ACCESS_KEY_ID"],
                   aws_secret_access_key=os.environ["BERTH_ADMIN_SECRET_ACCESS_KEY"])
print(base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)[1])
EOF
  ) || die "logging in to berth ($1) failed"
  CREDS[$1]=AWS:$token
}

stop_berth() { # NAME
  local p keep=()
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "${PID[$1]}" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

replace_section() { # OUT SECTION_FILE NAME: replaces (or appends) OUT's section between NAME's markers
  python3 - "$1" "$2" "$3" <<'EOF'
import re, sys
out, section, name = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
try:
    text = open(out).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->\n?", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
EOF
}
