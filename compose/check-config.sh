#!/usr/bin/env bash
# Validates compose/docker-compose.yml without a Docker engine: the default stack, the demo
# profile, and the demo env file (which must point the workers at fakepos, while the default
# leaves POS_* unset so the binary's legacy URLs apply), and the safety settings of issue 11:
# secrets required from an env file, Redis and MongoDB auth, pinned images, memory limits, the
# worker's ops port unpublished and its healthcheck on /health/ready; and the `s3` profile (issue
# 16): MinIO and its bucket set-up, the workers on STORAGE=s3 from the s3.env.example lines, the
# same safety rules; and (issue 10) one REDIS_URL switching both the producer and the workers,
# checked by running their entrypoints against stubs; and (issue 14) OTEL_EXPORTER_OTLP_ENDPOINT
# reaching both, unset by default. Uses Debian's docker-compose (v1,
# installed by tests/setup.sh) and also `docker compose` (v2) when that plugin is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

file=compose/docker-compose.yml
demo_env=compose/demo.env
secrets=compose/secrets.env.example
empty=$(mktemp)
s3_env=$(mktemp)
override_env=$(mktemp)
trap 'rm -f "$empty" "$empty.yml" "$s3_env" "$override_env"' EXIT
# compose/.env of an S3 deployment: the secrets, then the s3.env.example lines.
cat "$secrets" compose/s3.env.example >"$s3_env"
fail() { echo "check-config: $*" >&2; exit 1; }

composes=()
if command -v docker-compose >/dev/null 2>&1; then composes+=("docker-compose"); fi
if docker compose version >/dev/null 2>&1; then composes+=("docker compose"); fi
[ "${#composes[@]}" -gt 0 ] || fail "neither docker-compose nor docker compose is installed"

# Variables a caller may have exported must not leak into what is checked.
unset POS_LIST_URL POS_FILE_BASE_URL COMPOSE_PROFILES
unset REDIS_PASSWORD MONGO_ROOT_USER MONGO_ROOT_PASSWORD API_TOKEN BOARD_USER BOARD_PASSWORD
unset STORAGE S3_ENDPOINT S3_BUCKET S3_PREFIX S3_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
unset REDIS_URL REDIS_CACHE_URL REDIS_CLUSTER REDIS_TLS_CA_FILE REDIS_TLS_CERT_FILE REDIS_TLS_KEY_FILE BULL_PREFIX
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_HEADERS OTEL_RESOURCE_ATTRIBUTES

# redis_job_url COMPOSE CONFIG SERVICE: the REDIS_JOB_URL the service's program starts with,
# found by running the service's entrypoint and command (resolved by Compose) here with its
# environment, the program replaced by a stub that prints what it got. The URL is built by
# that entrypoint from REDIS_URL / REDIS_PASSWORD (issue 10), so reading the YAML is not enough.
redis_job_url() {
  local compose=$1 config=$2 service=$3 resolved stubs
  resolved=$(mktemp)
  stubs=$(mktemp -d)
  printf '%s\n' "$config" >"$resolved"
  for program in node fetch-worker; do
    printf '#!/bin/sh\nprintf "%%s|%%s|%%s\\n" "$REDIS_JOB_URL" "${REDIS_PASSWORD-unset}" "${REDIS_URL-unset}"\n' >"$stubs/$program"
    chmod +x "$stubs/$program"
  done
  python3 - "$compose" "$resolved" "$service" "$stubs" <<'PY' || { rm -rf "$resolved" "$stubs"; exit 1; }
import subprocess, sys, yaml
compose, path, name, stubs = sys.argv[1:]
with open(path) as f:
    svc = yaml.safe_load(f)["services"][name]
# `config` prints $ as $$ (its output is Compose input again); the container sees one $.
argv = [a.replace("$$", "$") for a in (svc.get("entrypoint") or []) + (svc.get("command") or [])]
if not argv or argv[0] != "/bin/sh":
    sys.exit(f"check-config: {compose}: {name} must build REDIS_JOB_URL in its /bin/sh entrypoint")
env = {k: str(v) for k, v in (svc.get("environment") or {}).items() if v is not None}
env["PATH"] = f"{stubs}:/usr/bin:/bin"
out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.strip()
url, password, raw = out.split("|")
if password != "unset" or raw != "unset":
    sys.exit(f"check-config: {compose}: {name}'s program must not see REDIS_PASSWORD or REDIS_URL")
print(url)
PY
  rm -rf "$resolved" "$stubs"
}

# check_safety COMPOSE CONFIG: the issue-11 settings of the resolved configuration.
check_safety() {
  local compose=$1 config=$2
  grep -q -- '--requirepass' <<<"$config" || fail "$compose: Redis must require a password"
  grep -q 'MONGO_INITDB_ROOT_PASSWORD: replace-with' <<<"$config" || fail "$compose: MongoDB must enable auth from the env file"
  [ "$(redis_job_url "$compose" "$config" producer)" = 'redis://:replace-with-a-long-random-redis-password@redis:6379/1' ] &&
    [ "$(redis_job_url "$compose" "$config" worker)" = 'redis://:replace-with-a-long-random-redis-password@redis:6379/1' ] ||
    fail "$compose: the clients must use Redis's password"
  grep -q 'authSource=admin' <<<"$config" || fail "$compose: the clients must log in to MongoDB"
  grep -q '/health/ready' <<<"$config" || fail "$compose: the worker's healthcheck must use /health/ready"
  local images
  images=$(grep -E '^ +image: ' <<<"$config" | grep -vE ':local$' || true)
  # An exact version: x.y.z (Prometheus: vx.y.z), or a MinIO release tag (RELEASE.<date>T<time>Z).
  if grep -vqE 'image: [a-z0-9./-]+:(v?[0-9]+\.[0-9]+\.[0-9]+|RELEASE\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z)' <<<"$images"; then
    fail "$compose: images must be pinned to exact versions: $images"
  fi
  printf '%s\n' "$config" >"$empty.yml"
  python3 - "$compose" "$empty.yml" <<'PY' || exit 1
import sys, yaml
with open(sys.argv[2]) as f:
    doc = yaml.safe_load(f)
for name, svc in doc["services"].items():
    limit = svc.get("mem_limit") or svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
    if not limit:
        sys.exit(f"check-config: {sys.argv[1]}: service {name} has no memory limit")
if doc["services"]["worker"].get("ports"):
    sys.exit(f"check-config: {sys.argv[1]}: the worker's ops port must not be published")
for name in ("redis", "mongo", "minio", "minio-setup"):
    if name not in doc["services"]:
        continue
    nets = doc["services"][name].get("networks") or {}
    if list(nets) != ["backend"]:
        sys.exit(f"check-config: {sys.argv[1]}: {name} must be on the internal backend network only")
if not doc["networks"]["backend"].get("internal"):
    sys.exit(f"check-config: {sys.argv[1]}: the backend network must be internal")
PY
}

for compose in "${composes[@]}"; do
  echo "check-config: $compose ($($compose version --short 2>/dev/null || echo '?'))"
  $compose -f "$file" --env-file "$secrets" config -q
  $compose -f "$file" --env-file "$secrets" --profile demo config -q
  $compose -f "$file" --env-file "$demo_env" config -q
  $compose -f "$file" --env-file "$demo_env" --profile demo config -q
  if $compose -f "$file" --env-file "$empty" config -q >/dev/null 2>&1; then
    fail "$compose: the stack must refuse to start without its secrets"
  fi

  default=$($compose -f "$file" --env-file "$secrets" config)
  demo=$($compose -f "$file" --env-file "$demo_env" config)
  if grep -Eq 'POS_(LIST|FILE_BASE)_URL: *[^ n]' <<<"$default"; then
    fail "$compose: without demo.env the worker must leave POS_* unset"
  fi
  grep -q 'POS_LIST_URL: *http://fakepos:8080/fetch_list2.php' <<<"$demo" ||
    fail "$compose: demo.env does not point POS_LIST_URL at fakepos"
  grep -q 'POS_FILE_BASE_URL: *http://fakepos:8080/' <<<"$demo" ||
    fail "$compose: demo.env does not point POS_FILE_BASE_URL at fakepos"
  # Test doubles (fake-pos, the test processors) only in the demo's image.
  grep -q 'CARGO_FEATURES: test-doubles' <<<"$demo" ||
    fail "$compose: demo.env must build the image with CARGO_FEATURES=test-doubles (fakepos runs fake-pos)"
  if grep -q 'CARGO_FEATURES: *test-doubles' <<<"$default"; then
    fail "$compose: without demo.env the image must build without the test doubles"
  fi
  if grep -q 'container_name' <<<"$default"; then
    fail "$compose: no container_name, so the worker can be scaled"
  fi
  check_safety "$compose" "$default"

  # The s3 profile: MinIO and the bucket set-up join the stack, the workers store in MinIO.
  $compose -f "$file" --env-file "$s3_env" config -q
  s3=$($compose -f "$file" --env-file "$s3_env" --profile s3 config)
  printf '%s\n' "$s3" >"$empty.yml"
  python3 - "$compose" "$empty.yml" <<'PY' || exit 1
import sys, yaml
with open(sys.argv[2]) as f:
    services = yaml.safe_load(f)["services"]
for name in ("minio", "minio-setup"):
    if name not in services:
        sys.exit(f"check-config: {sys.argv[1]}: the s3 profile must run {name}")
    if services[name].get("profiles") != ["s3"]:
        sys.exit(f"check-config: {sys.argv[1]}: {name} must run only under the s3 profile")
PY
  grep -q 'STORAGE: s3' <<<"$s3" || fail "$compose: s3.env.example must set STORAGE=s3 for the workers"
  grep -q 'S3_ENDPOINT: http://minio:9000' <<<"$s3" || fail "$compose: s3.env.example must point S3_ENDPOINT at minio"
  grep -q 'STORAGE: gridfs' <<<"$default" || fail "$compose: without s3.env.example the workers must keep STORAGE=gridfs"
  if grep -qE 'S3_ENDPOINT: *[^ n]' <<<"$default"; then
    fail "$compose: without s3.env.example the workers must leave S3_ENDPOINT unset"
  fi
  if grep -qE 'OTEL_[A-Z_]+: *[^ n]' <<<"$default"; then
    fail "$compose: without OTEL_* set, tracing must stay off (no OTEL_* value)"
  fi
  check_safety "$compose" "$s3"

  # One REDIS_URL switches both sides (issue 10): a Redis Cluster for the producer and the
  # workers, with the hash tag both require; the cache follows (db 0 of that server) unless
  # REDIS_CACHE_URL is set.
  cat "$secrets" - >"$override_env" <<'ENV'
REDIS_URL=rediss+cluster://app:cluster-pw@redis-a:6379,redis-b:6379
BULL_PREFIX={bull}
OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318
ENV
  switched=$($compose -f "$file" --env-file "$override_env" config)
  for service in producer worker; do
    [ "$(redis_job_url "$compose" "$switched" "$service")" = 'rediss+cluster://app:cluster-pw@redis-a:6379,redis-b:6379' ] ||
      fail "$compose: REDIS_URL must switch the $service's Redis"
  done
  printf '%s\n' "$switched" >"$empty.yml"
  python3 - "$compose" "$empty.yml" <<'PY' || exit 1
import sys, yaml
with open(sys.argv[2]) as f:
    services = yaml.safe_load(f)["services"]
for name in ("producer", "worker"):
    env = services[name]["environment"]
    if env.get("BULL_PREFIX") != "{bull}":
        sys.exit(f"check-config: {sys.argv[1]}: BULL_PREFIX must reach the {name}")
    if env.get("REDIS_CACHE_URL") is not None:
        sys.exit(f"check-config: {sys.argv[1]}: REDIS_CACHE_URL must stay unset for the {name} (db 0 of REDIS_URL)")
    # Traces (issue 14): one OTEL_EXPORTER_OTLP_ENDPOINT turns both sides on.
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "http://collector:4318":
        sys.exit(f"check-config: {sys.argv[1]}: OTEL_EXPORTER_OTLP_ENDPOINT must reach the {name}")
PY
done
grep -qx 'COMPOSE_PROFILES=demo' "$demo_env" || fail "$demo_env must enable the demo profile"
echo "check-config: ok"
