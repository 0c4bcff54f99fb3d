#!/usr/bin/env bash
# Validates compose/docker-compose.yml without a Docker engine: the default stack, the demo
# profile, and the demo env file (which must point the workers at fakepos, while the default
# leaves POS_* unset so the binary's legacy URLs apply), and the safety settings of issue 11:
# secrets required from an env file, Redis and MongoDB auth, pinned images, memory limits, the
# worker's ops port unpublished and its healthcheck on /health/ready; and the `s3` profile (issue
# 16): MinIO and its bucket set-up, the workers on STORAGE=s3 from the s3.env.example lines, the
# same safety rules. Uses Debian's docker-compose (v1,
# installed by tests/setup.sh) and also `docker compose` (v2) when that plugin is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

file=compose/docker-compose.yml
demo_env=compose/demo.env
secrets=compose/secrets.env.example
empty=$(mktemp)
s3_env=$(mktemp)
trap 'rm -f "$empty" "$empty.yml" "$s3_env"' EXIT
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

# check_safety COMPOSE CONFIG: the issue-11 settings of the resolved configuration.
check_safety() {
  local compose=$1 config=$2
  grep -q -- '--requirepass' <<<"$config" || fail "$compose: Redis must require a password"
  grep -q 'MONGO_INITDB_ROOT_PASSWORD: replace-with' <<<"$config" || fail "$compose: MongoDB must enable auth from the env file"
  grep -q 'redis://:replace-with-a-long-random-redis-password@redis:6379/1' <<<"$config" ||
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
  check_safety "$compose" "$s3"
done
grep -qx 'COMPOSE_PROFILES=demo' "$demo_env" || fail "$demo_env must enable the demo profile"
echo "check-config: ok"
