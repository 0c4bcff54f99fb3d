#!/usr/bin/env bash
# Keeps the image's build identical to CI's: compose/Dockerfile must build with exactly one
# cargo command, this one, and CI (tests/run-all.sh) runs this same command here, so a build
# that breaks in the image (a stale Cargo.lock under --locked, a release-only error) breaks CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=(cargo build --release --locked --bin fetch-worker)
dockerfile=compose/Dockerfile

cargo_runs=$(grep -E '^[[:space:]]*RUN[[:space:]].*\bcargo\b' "$dockerfile" || true)
if [ "$cargo_runs" != "RUN ${build[*]}" ]; then
  echo "check-dockerfile: $dockerfile must have exactly one cargo step, 'RUN ${build[*]}'; found:" >&2
  echo "${cargo_runs:-(none)}" >&2
  exit 1
fi
if ! grep -qF 'COPY --from=build /build/target/release/fetch-worker ' "$dockerfile"; then
  echo "check-dockerfile: the runtime stage must copy target/release/fetch-worker" >&2
  exit 1
fi

echo "check-dockerfile: $dockerfile builds with '${build[*]}'; running it"
"${build[@]}"
./target/release/fetch-worker --version
