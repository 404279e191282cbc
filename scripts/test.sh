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
cargo nextest run --workspace --locked
cargo build --release --locked -p berth
disk "before the end-to-end tests"
BERTH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/berth" python3 -m pytest -v -p no:cacheprovider tests/e2e "$@"
# The benchmark's small variant, so bench/ cannot rot (no targets asserted).
./bench/ci-smoke.sh
