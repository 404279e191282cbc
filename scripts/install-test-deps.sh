#!/usr/bin/env bash
# Installs every client the test suite drives, idempotently. Safe to re-run.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need_apt=()
for pair in skopeo:skopeo podman:podman buildah:buildah umoci:umoci runc:runc jq:jq busybox:busybox-static docker-registry:docker-registry faketime:faketime openssl:openssl containerd:containerd curl:curl; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  # Debian packages may try to start services (docker-registry on :5000); forbid that.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; created_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  [ "${created_policy:-0}" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
command -v docker >/dev/null 2>&1 || { echo "exit 101" | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io; $SUDO rm -f /usr/sbin/policy-rc.d; }
python3 -m pip install -q --disable-pip-version-check pytest requests oras awscli boto3 cryptography bcrypt
# Web console browser tests (tests/e2e/test_console.py): Debian's Chromium, a font, and playwright-core from the lock file.
command -v chromium >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }
(cd "$(dirname "$0")/../tests/e2e/console" && npm ci --no-audit --no-fund --loglevel=error)
# Cluster backends (tests/e2e/test_cluster.py, the PostgreSQL and S3 suites): Debian's PostgreSQL 15
# server, and s3s-fs (a real S3 server over a directory) from crates.io.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
# promtool (tests/e2e/test_dashboards.py validates ops/prometheus/berth-alerts.yml): Debian's prometheus package.
if ! command -v promtool >/dev/null 2>&1; then
  echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
# 0.15+ needs a newer rustc than this toolchain.
command -v s3s-fs >/dev/null 2>&1 || cargo install s3s-fs --version 0.14.1 --features binary --locked
