#!/usr/bin/env bash
# Validates compose/docker-compose.yml without a Docker engine: the default stack, the demo
# profile, and the demo env file (which must point the workers at fakepos, while the default
# leaves POS_* unset so the binary's legacy URLs apply). Uses Debian's docker-compose (v1,
# installed by tests/setup.sh) and also `docker compose` (v2) when that plugin is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

file=compose/docker-compose.yml
demo_env=compose/demo.env
fail() { echo "check-config: $*" >&2; exit 1; }

composes=()
if command -v docker-compose >/dev/null 2>&1; then composes+=("docker-compose"); fi
if docker compose version >/dev/null 2>&1; then composes+=("docker compose"); fi
[ "${#composes[@]}" -gt 0 ] || fail "neither docker-compose nor docker compose is installed"

# Variables a caller may have exported must not leak into what is checked.
unset POS_LIST_URL POS_FILE_BASE_URL COMPOSE_PROFILES

for compose in "${composes[@]}"; do
  echo "check-config: $compose ($($compose version --short 2>/dev/null || echo '?'))"
  $compose -f "$file" config -q
  $compose -f "$file" --profile demo config -q
  $compose -f "$file" --env-file "$demo_env" config -q
  $compose -f "$file" --env-file "$demo_env" --profile demo config -q

  default=$($compose -f "$file" config)
  demo=$($compose -f "$file" --env-file "$demo_env" config)
  if grep -Eq 'POS_(LIST|FILE_BASE)_URL: *[^ n]' <<<"$default"; then
    fail "$compose: without demo.env the worker must leave POS_* unset"
  fi
  grep -q 'POS_LIST_URL: *http://fakepos:8080/fetch_list2.php' <<<"$demo" ||
    fail "$compose: demo.env does not point POS_LIST_URL at fakepos"
  grep -q 'POS_FILE_BASE_URL: *http://fakepos:8080/' <<<"$demo" ||
    fail "$compose: demo.env does not point POS_FILE_BASE_URL at fakepos"
  if grep -q 'container_name' <<<"$default"; then
    fail "$compose: no container_name, so the worker can be scaled"
  fi
done
grep -qx 'COMPOSE_PROFILES=demo' "$demo_env" || fail "$demo_env must enable the demo profile"
echo "check-config: ok"
