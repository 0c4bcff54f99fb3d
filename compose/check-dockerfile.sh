#!/usr/bin/env bash
# Keeps the image's build identical to CI's: compose/Dockerfile must build with exactly one
# cargo command, this one, and CI (tests/run-all.sh) runs this same command here, so a build
# that breaks in the image (a stale Cargo.lock under --locked, a release-only error) breaks CI.
# The image's features come from the build arg CARGO_FEATURES (empty: production; the demo
# sets test-doubles). Here it runs with CI's features (test-doubles), so it reuses CI's compile
# instead of building the crate a second time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step='RUN cargo build --release --locked --bin fetch-worker --features "$CARGO_FEATURES"'
CARGO_FEATURES=${CARGO_FEATURES:-test-doubles}
build=(cargo build --release --locked --bin fetch-worker --features "$CARGO_FEATURES")
dockerfile=compose/Dockerfile

cargo_runs=$(grep -E '^[[:space:]]*RUN[[:space:]].*\bcargo\b' "$dockerfile" || true)
if [ "$cargo_runs" != "$step" ]; then
  echo "check-dockerfile: $dockerfile must have exactly one cargo step, '$step'; found:" >&2
  echo "${cargo_runs:-(none)}" >&2
  exit 1
fi
if ! grep -qxF 'ARG CARGO_FEATURES=""' "$dockerfile"; then
  echo "check-dockerfile: $dockerfile must declare 'ARG CARGO_FEATURES=\"\"' (production builds without the test doubles)" >&2
  exit 1
fi
if ! grep -qF 'COPY --from=build /build/target/release/fetch-worker ' "$dockerfile"; then
  echo "check-dockerfile: the runtime stage must copy target/release/fetch-worker" >&2
  exit 1
fi

echo "check-dockerfile: $dockerfile builds with '${build[*]}'; running it"
"${build[@]}"
./target/release/fetch-worker --version
