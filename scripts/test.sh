#!/usr/bin/env bash
# Runs every test of berth on a fresh machine: installs the clients the tests
# drive (idempotent), checks formatting and lints, runs the unit and store
# tests, then the end-to-end tests against a real berth process.
set -euo pipefail
cd "$(dirname "$0")/.."
# One clean build per run: incremental caches only cost disk here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk() { echo "test.sh: free disk $1: $(df -h --output=avail "${CARGO_TARGET_DIR:-$PWD}" / /tmp 2>/dev/null | tail -n +2 | tr -s ' \n' ' ')" >&2; }
disk "at start"
./scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Throwaway PostgreSQL and S3 servers on free loopback ports for the backend suites.
servers=$(mktemp -d /tmp/berth-test-servers.XXXXXX)
chmod 755 "$servers"  # PostgreSQL runs as the postgres user and must reach its directory
stop_servers() {
  ./scripts/s3-test-server.sh stop "$servers/s3" >/dev/null 2>&1 || true
  ./scripts/postgres-test-server.sh stop "$servers/pg" >/dev/null 2>&1 || true
  rm -rf "$servers"
}
trap stop_servers EXIT
# Assigned first, so that a server failing to start stops the run (set -e) rather than
# leaving its variables unset.
pg_env=$(./scripts/postgres-test-server.sh start "$servers/pg")
s3_env=$(./scripts/s3-test-server.sh start "$servers/s3")
eval "$pg_env"
eval "$s3_env"
cargo nextest run --workspace --locked
# The service suite again on each shared backend (see crates/berth-core/tests/common).
BERTH_TEST_BACKEND=postgres-fs cargo nextest run --locked -p berth-core
BERTH_TEST_BACKEND=postgres-s3 cargo nextest run --locked -p berth-core
# The previous release's berth for the rolling-upgrade test (tests/e2e/test_upgrade.py), built
# first: the build below then only recompiles berth's own crates.
BERTH_PREVIOUS_BIN=$(./scripts/build-previous.sh)
export BERTH_PREVIOUS_BIN
cargo build --release --locked -p berth
disk "before the end-to-end tests"
BERTH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/berth" python3 -m pytest -v -p no:cacheprovider tests/e2e "$@"
# The benchmark's small variant, so bench/ cannot rot (no targets asserted).
./bench/ci-smoke.sh
