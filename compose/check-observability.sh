#!/usr/bin/env bash
# Validates the compose `observability` profile without a Docker engine:
# - the profile's services (Prometheus, Grafana) resolve, run only under the profile, are
#   pinned and memory-limited, published on loopback only, and Prometheus reaches the workers
#   (backend network);
# - `promtool check config` on compose/observability/prometheus.yml (which discovers the
#   workers through DNS on the service name `worker`), `promtool check rules` and
#   `promtool test rules` on the alert rules and their cases;
# - the Grafana dashboard is valid JSON, its panels use the provisioned data source, and every
#   `fetch_worker_*` metric that a panel or an alert rule queries is one a real worker exports:
#   the names come from a scrape of /metrics of the release binary (started here against a
#   redis-server of its own), so the dashboard and the rules cannot drift from the code; that
#   worker imports one sample day (added by Node BullMQ), and its scrape must show every step
#   timed (list, download, combine, import) and the day's rows under its branch.
# Needs: promtool (Debian's `prometheus`), docker-compose, redis-server, the release binary
# (FETCH_WORKER_BIN, default target/release/fetch-worker); tests/setup.sh installs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
obs=compose/observability
bin=${FETCH_WORKER_BIN:-$root/target/release/fetch-worker}
fail() { echo "check-observability: $*" >&2; exit 1; }

command -v promtool >/dev/null 2>&1 || fail "promtool is missing (apt-get install prometheus; tests/setup.sh does)"
[ -x "$bin" ] || fail "no worker binary at $bin (cargo build --release)"

work=$(mktemp -d)
pids=()
redis_port=""
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  [ -n "$redis_port" ] && redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== promtool check config / check rules / test rules"
promtool check config "$obs/prometheus.yml"
promtool check rules "$obs/alerts.yml"
(cd "$obs" && promtool test rules alerts.test.yml)
# Discovery by the service name, so scaling needs no change.
python3 - "$obs/prometheus.yml" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
job = jobs.get("fetch-worker") or sys.exit("check-observability: no fetch-worker scrape job")
sd = job.get("dns_sd_configs") or sys.exit("check-observability: the workers must be found by dns_sd_configs")
if sd[0].get("names") != ["worker"] or sd[0].get("port") != 9464:
    sys.exit("check-observability: dns_sd_configs must ask for `worker` on port 9464 (METRICS_ADDR)")
PY

echo "== compose: the observability profile"
composes=()
if command -v docker-compose >/dev/null 2>&1; then composes+=("docker-compose"); fi
if docker compose version >/dev/null 2>&1; then composes+=("docker compose"); fi
[ "${#composes[@]}" -gt 0 ] || fail "neither docker-compose nor docker compose is installed"
unset COMPOSE_PROFILES GRAFANA_ADMIN_PASSWORD PROMETHEUS_PUBLISH GRAFANA_PUBLISH
for compose in "${composes[@]}"; do
  $compose -f compose/docker-compose.yml --env-file compose/secrets.env.example config >"$work/default.yml"
  $compose -f compose/docker-compose.yml --env-file compose/secrets.env.example --profile observability \
    config >"$work/obs.yml"
  python3 - "$compose" "$work/default.yml" "$work/obs.yml" <<'PY'
import re, sys, yaml
name = sys.argv[1]
default = yaml.safe_load(open(sys.argv[2]))["services"]
services = yaml.safe_load(open(sys.argv[3]))["services"]
def fail(msg):
    sys.exit(f"check-observability: {name}: {msg}")
for svc in ("prometheus", "grafana"):
    # docker-compose v1's `config` lists every service whatever the profile; v2 leaves the
    # profile's services out unless asked for.
    if svc in default and default[svc].get("profiles") != ["observability"]:
        fail(f"{svc} must run only under the observability profile")
    s = services.get(svc) or fail(f"the observability profile must run {svc}")
    if s.get("profiles") != ["observability"]:
        fail(f"{svc} must have profiles: [observability]")
    if not re.fullmatch(r"[a-z0-9./-]+:v?[0-9]+\.[0-9]+\.[0-9]+", s.get("image", "")):
        fail(f"{svc}'s image must be pinned to an exact version: {s.get('image')}")
    if not s.get("mem_limit"):
        fail(f"{svc} has no memory limit")
    for port in s.get("ports") or []:
        ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        if ip != "127.0.0.1":
            fail(f"{svc} must publish on loopback by default: {port}")
if "backend" not in (services["prometheus"].get("networks") or {}):
    fail("prometheus must be on the backend network, where the workers' ops port is")
if services["worker"].get("ports"):
    fail("the worker's ops port must not be published")
vols = " ".join(str(v) for v in services["grafana"].get("volumes", []))
for needed in ("grafana/provisioning", "grafana/dashboards"):
    if needed not in vols:
        fail(f"grafana must mount compose/observability/{needed}")
PY
  # Grafana refuses its default password: the command checks GF_SECURITY_ADMIN_PASSWORD.
  grep -q 'GF_SECURITY_ADMIN_PASSWORD' "$work/obs.yml" || fail "$compose: grafana's admin password must come from the env file"
done

echo "== dashboard and rules against a real scrape of /metrics"
# A worker on the real pipeline (fake POS, the MongoDB-wire server) that runs one sample day
# added by Node BullMQ, so the per-branch and per-step series exist in the scrape.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  tail -20 "$3" >&2
  fail "$2 did not start"
}
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --daemonize yes --logfile "$work/redis.log" >/dev/null
wait_port "$redis_port" redis-server "$work/redis.log"
mongo_port=$(free_port)
python3 tests/support/nx_mongo.py --port "$mongo_port" --data-dir "$work/mongo" \
  --pid-file "$work/mongo.pid" --log-file "$work/mongo.log" >/dev/null 2>&1 &
pids+=($!)
wait_port "$mongo_port" "the MongoDB-wire server" "$work/mongo.log"
pos_port=$(free_port)
"$bin" fake-pos --dir tests/fixtures/legacy-samples/input --port "$pos_port" \
  >/dev/null 2>"$work/fakepos.log" &
pids+=($!)
wait_port "$pos_port" "the fake POS server" "$work/fakepos.log"
metrics_port=$(free_port)
REDIS_JOB_URL="redis://127.0.0.1:$redis_port/1" REDIS_CACHE_URL="redis://127.0.0.1:$redis_port/0" \
  MONGO_URI="mongodb://127.0.0.1:$mongo_port/observability" QUEUE_NAME=observability \
  POS_LIST_URL="http://127.0.0.1:$pos_port/fetch_list2.php" POS_FILE_BASE_URL="http://127.0.0.1:$pos_port/" \
  STORAGE=local RAW_STORAGE_PATH="$work/raw" METRICS_ADDR="127.0.0.1:$metrics_port" RUST_LOG=warn \
  "$bin" run >"$work/worker.log" 2>&1 &
pids+=($!)
wait_port "$metrics_port" "the worker's /metrics" "$work/worker.log"
(cd node-producer-example && REDIS_PORT="$redis_port" node -e '
const { Queue } = require("bullmq");
const q = new Queue("observability", { connection: { host: "127.0.0.1", port: Number(process.env.REDIS_PORT), db: 1 } });
q.add("fetch-job", { branch: "AYALA-FRN", pos: 1, date: "2026-02-09" }).then(() => q.close());
')
scraped=""
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$metrics_port/metrics" -o "$work/metrics.txt" 2>/dev/null &&
    grep -q '^fetch_worker_days_total{branch="AYALA-FRN",outcome="completed"} 1' "$work/metrics.txt" &&
    grep -q '^fetch_worker_queue_up 1' "$work/metrics.txt"; then
    scraped=1
    break
  fi
  sleep 0.1
done
[ -n "$scraped" ] || { tail -20 "$work/worker.log" >&2; fail "the worker did not import the sample day (see its log above)"; }
python3 - "$work/metrics.txt" "$obs/grafana/dashboards/fetch-worker.json" "$obs/alerts.yml" \
  "$obs/grafana/provisioning/datasources/prometheus.yml" <<'PY'
import json, re, sys, yaml
metrics_txt, dash_path, rules_path, ds_path = sys.argv[1:5]
def fail(msg):
    sys.exit(f"check-observability: {msg}")
# Every sample name the worker exports, from its TYPE lines (families without samples yet,
# like per-branch counters before a first day, are declared there too).
suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""],
            "info": ["_info"], "unknown": [""]}
exported = set()
for line in open(metrics_txt):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        exported.update(m.group(1) + s for s in suffixes.get(m.group(2), [""]))
if "fetch_worker_queue_oldest_waiting_age_seconds" not in exported:
    fail(f"the scrape lacks the queue metrics: {sorted(exported)}")
# The sample day went through every step, and its rows were counted for its branch.
values = {}
for line in open(metrics_txt):
    if not line.startswith("#") and " " in line:
        series, value = line.rsplit(" ", 1)
        values[series] = float(value)
for series in ['fetch_worker_step_duration_seconds_count{step="list"}',
               'fetch_worker_step_duration_seconds_count{step="download"}',
               'fetch_worker_step_duration_seconds_count{step="combine"}',
               'fetch_worker_step_duration_seconds_count{step="import"}',
               'fetch_worker_branch_rows_total{branch="AYALA-FRN",result="imported"}',
               'fetch_worker_jobs_total{outcome="completed"}']:
    if values.get(series, 0) < 1:
        fail(f"after one imported day, {series} is {values.get(series)}")
def used(expr):
    return set(re.findall(r"\bfetch_worker_[a-z0-9_]+", expr))
try:
    dash = json.load(open(dash_path))
except ValueError as e:
    fail(f"{dash_path} is not valid JSON: {e}")
uid = yaml.safe_load(open(ds_path))["datasources"][0]["uid"]
if not dash.get("panels"):
    fail("the dashboard has no panels")
for panel in dash["panels"]:
    title = panel.get("title", "?")
    if panel.get("datasource", {}).get("uid") != uid:
        fail(f"panel {title!r} does not use the provisioned data source {uid!r}")
    targets = panel.get("targets") or fail(f"panel {title!r} has no query")
    for t in targets:
        expr = t.get("expr", "")
        names = used(expr) | ({"up"} if re.search(r"\bup\{", expr) else set())
        if not names:
            fail(f"panel {title!r} queries no worker metric: {expr}")
        missing = sorted(n for n in names if n != "up" and n not in exported)
        if missing:
            fail(f"panel {title!r} queries {missing}, which the worker does not export")
rules = yaml.safe_load(open(rules_path))
for group in rules["groups"]:
    for rule in group["rules"]:
        missing = sorted(n for n in used(rule["expr"]) if n not in exported)
        if missing:
            fail(f"alert {rule['alert']} queries {missing}, which the worker does not export")
print(f"check-observability: {len(dash['panels'])} panels and "
      f"{sum(len(g['rules']) for g in rules['groups'])} rules use only exported metrics")
PY
echo "check-observability: ok"
