#!/usr/bin/env bash
# The whole test suite: formatting and lints, Rust unit and integration tests (real
# redis-server), then the Node BullMQ interop suite against bullmq@5 and bullmq@6 with the
# Rust binary as the worker; then the compose file and the image's release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo test"
cargo test --quiet 2>&1 | tee /tmp/fetch-worker-cargo-test.log
echo "== node interop (bullmq@5 and bullmq@6, Rust worker)"
export FETCH_WORKER_BIN="$root/target/debug/fetch-worker"
(cd node-producer-example && npm run --silent test:all)
echo "== compose config"
bash compose/check-config.sh
echo "== release build (compose/Dockerfile's command)"
bash compose/check-dockerfile.sh
echo "all suites passed"
