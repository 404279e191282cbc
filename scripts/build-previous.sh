#!/usr/bin/env bash
# Builds berth at the previous release (the commit in release/PREVIOUS) for the rolling-upgrade
# test (tests/e2e/test_upgrade.py) and prints the binary's path. It builds in a temporary git
# worktree into the SAME cargo target directory as the current build, so the dependencies
# are compiled once for both (only berth's own crates are compiled twice), and keeps the binary
# under <target>/previous/, where a later run for the same commit finds it and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(awk 'NR == 1 { print $1 }' release/PREVIOUS)
target="${CARGO_TARGET_DIR:-$PWD/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
out="$target/previous/berth-$commit"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "build-previous.sh: commit $commit (release/PREVIOUS) is not in this clone; fetch the full history (git fetch --unshallow)" >&2
  exit 1
fi
start=$(date +%s)
wt=$(mktemp -d /tmp/berth-previous.XXXXXX)
cleanup() { git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"; git worktree prune; }
trap cleanup EXIT
trap 'exit 143' TERM INT  # so that the EXIT trap removes the worktree when stopped
git worktree add --detach --quiet "$wt" "$commit"
(cd "$wt" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p berth >&2)
mkdir -p "$target/previous"
cp "$target/release/berth" "$out.tmp"
mv "$out.tmp" "$out"
# The previous release's crates went into the same files as the current tree's (cargo names a
# path crate's artifacts by its workspace-relative path), and the current tree's sources are
# older than them: without this, the next release build would link the previous release's
# crates into the current berth. Only berth's own crates are rebuilt; the dependencies stay.
rm -rf "$target"/release/.fingerprint/berth-*
echo "build-previous.sh: berth $commit built in $(($(date +%s) - start)) s" >&2
echo "$out"
