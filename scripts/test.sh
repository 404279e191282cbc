#!/usr/bin/env bash
# Runs every test of berth on a fresh machine: installs the clients the tests
# drive (idempotent), checks formatting and lints, runs the unit and store
# tests, then the end-to-end tests against a real berth process.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked
cargo build --release --locked -p berth
BERTH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/berth" python3 -m pytest -v -p no:cacheprovider tests/e2e "$@"
# The benchmark's small variant, so bench/ cannot rot (no targets asserted).
./bench/ci-smoke.sh
