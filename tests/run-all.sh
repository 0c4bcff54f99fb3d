#!/usr/bin/env bash
# The whole test suite (what CI runs): formatting and lints; Rust unit and integration tests
# against real redis-server, nx-27017 and the fake POS server; the short chaos run (bench/chaos.sh
# --short: the whole stack under kills, restarts and outages); the Node BullMQ interop suite
# against bullmq@5 and bullmq@6 with the Rust binary as the worker (the coverage page's
# headless-Chromium test among them); the compose file (with the observability profile's
# Prometheus config, alert rules and dashboard) and the image's build command; then the demo end
# to end with a headless-Chromium check of Bull Board.
# Everything is built once, in release with the test doubles (--features test-doubles), with the
# image's own cargo command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (a check build of its own: about 2 minutes from nothing)"
cargo clippy --all-targets --features test-doubles -- -D warnings
echo "== cargo test (release; the build above serves the tests, only the test targets compile)"
cargo test --release --locked --features test-doubles --no-run
cargo test --quiet --release --locked --features test-doubles
echo "== chaos (short): workers killed, Redis restarted, MongoDB stopped, writes held; every day exact"
NO_BUILD=1 FETCH_WORKER_BIN="$root/target/release/fetch-worker" bash bench/chaos.sh --short
echo "== node interop (bullmq@5 and bullmq@6, Rust worker)"
export FETCH_WORKER_BIN="$root/target/release/fetch-worker"
(cd node-producer-example && npm run --silent test:all)
echo "== compose config"
bash compose/check-config.sh
echo "== observability profile (promtool config, rules and rule tests; dashboard against a real scrape)"
bash compose/check-observability.sh
echo "== image build command (compose/Dockerfile)"
bash compose/check-dockerfile.sh
echo "== demo, with the Bull Board browser check, then stopped by pid"
bash compose/check-demo.sh
echo "all suites passed"
