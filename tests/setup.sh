#!/usr/bin/env bash
# Installs what the tests and the demo need and is missing on this machine: Debian's
# redis-server, docker-compose and prometheus, nx-27017 and moto's S3 server (pip), the Node peers (npm
# ci), and the Rust build. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  # Debian starts a system instance on 6379; our tests start their own, so stop it.
  ($SUDO systemctl stop redis-server 2>/dev/null || $SUDO service redis-server stop 2>/dev/null) || true
fi

if ! command -v openssl >/dev/null 2>&1; then
  # tests/it/topologies.rs makes its TLS CA and certificates with openssl.
  echo "setup: installing openssl (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi

if ! command -v docker-compose >/dev/null 2>&1; then
  # Validates compose/docker-compose.yml (`config` needs no Docker engine; without its
  # recommends, so no docker.io daemon comes along).
  echo "setup: installing docker-compose (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  # promtool validates the observability profile's config, alert rules and their tests
  # (compose/check-observability.sh); the demo runs prometheus against its workers.
  echo "setup: installing prometheus (apt; prometheus and promtool)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Debian starts a system instance on 9090; the demo starts its own, so stop it.
  ($SUDO systemctl stop prometheus 2>/dev/null || $SUDO service prometheus stop 2>/dev/null) || true
fi

if ! python3 -c "import nx_27017" >/dev/null 2>&1; then
  echo "setup: installing the MongoDB-wire server nx-27017 (pip)"
  python3 -m pip install --quiet --disable-pip-version-check nx-27017
fi

if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
  # The S3 protocol server of the S3 storage tests (moto's server mode, on loopback).
  echo "setup: installing moto's S3 server (pip: moto[server])"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: node and npm are required (Node 20)" >&2
  exit 1
fi

if [ ! -d node-producer-example/node_modules ] || \
   [ node-producer-example/package-lock.json -nt node-producer-example/node_modules ]; then
  echo "setup: npm ci (node-producer-example)"
  # npm ci refuses a lock file that cannot list other platforms' optional binaries (this
  # registry lacks msgpackr-extract's); npm install --no-save installs the same locked versions
  # and leaves the lock file alone.
  (cd node-producer-example && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null ||
    npm install --no-save --no-audit --no-fund --loglevel=error; })
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (apt; the Bull Board and coverage browser checks drive it headless)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# One build for everything (tests, demo, interop, benches, the image's command): the release
# build with the test doubles (`fake-pos`, `--processor noop|sleep|fail`), which the tests, the
# benches and the demo need. Every cargo command of the suite passes the same features, so the
# release tests reuse this compile (Cargo.toml also unifies the features the dev-dependencies
# would change); compose/Dockerfile runs the same command with its own CARGO_FEATURES.
# Cargo shows its own progress: a build from nothing takes about 5 minutes on 2 cores.
echo "setup: cargo build --release --locked --bin fetch-worker --features test-doubles (from nothing: about 5 minutes on 2 cores)"
cargo build --release --locked --bin fetch-worker --features test-doubles
