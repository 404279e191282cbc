#!/usr/bin/env bash
# A throwaway S3-compatible server (s3s-fs) for the berth-s3 test suite.
#
#   eval "$(scripts/s3-test-server.sh start /tmp/berth-s3)"   # prints export lines
#   CARGO_TARGET_DIR=/work/target-s3 cargo test -p berth-s3
#   scripts/s3-test-server.sh stop /tmp/berth-s3
#
# DIR holds the server's data (DIR/root), pid, log and the exported settings (DIR/env).
# Starting again while it runs just prints the settings. Status messages go to stderr, so
# stdout is only the export lines.
set -euo pipefail

S3S_VERSION=0.14.1 # 0.15+ needs a newer rustc than the workspace's
BUCKET=berth-test

usage() { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
pidfile=$dir/s3s.pid
envfile=$dir/env

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  if running && [ -f "$envfile" ]; then
    echo "s3s-fs already running (pid $(cat "$pidfile"))" >&2
    cat "$envfile"
    return
  fi
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing s3s-fs $S3S_VERSION (about 2 minutes the first time)..." >&2
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked >&2
  fi
  # Keys are required: without them s3s-fs answers every signed request with 501.
  local access secret port
  access="berthtest$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  secret="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
  port=$(free_port)
  # For s3s-fs a bucket is a directory under its root.
  mkdir -p "$dir/root/$BUCKET"
  RUST_LOG=${RUST_LOG:-warn} nohup s3s-fs --host 127.0.0.1 --port "$port" \
    --access-key "$access" --secret-key "$secret" "$dir/root" >"$dir/s3s.log" 2>&1 &
  echo $! >"$pidfile"
  # Ready when it answers HTTP at all (an unsigned request gets an S3 error document).
  local i
  for i in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
      break
    fi
    if ! running; then
      echo "s3s-fs exited; log:" >&2; cat "$dir/s3s.log" >&2; exit 1
    fi
    sleep 0.1
  done
  if ! curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "s3s-fs did not answer on port $port; log in $dir/s3s.log" >&2
    stop; exit 1
  fi
  cat >"$envfile" <<EOF
export BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export BERTH_TEST_S3_BUCKET=$BUCKET
export BERTH_TEST_S3_ACCESS_KEY=$access
export BERTH_TEST_S3_SECRET_KEY=$secret
EOF
  chmod 600 "$envfile"
  echo "s3s-fs listening on 127.0.0.1:$port (pid $(cat "$pidfile")), data in $dir/root" >&2
  cat "$envfile"
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "s3s-fs stopped" >&2
  else
    echo "s3s-fs not running" >&2
  fi
  rm -f "$pidfile" "$envfile"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  env) if running && [ -f "$envfile" ]; then cat "$envfile"; else echo "s3s-fs not running" >&2; exit 1; fi ;;
  *) usage ;;
esac
