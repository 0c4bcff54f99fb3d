#!/usr/bin/env bash
# The demo, on a fresh machine, without Docker: it starts Redis, the MongoDB-wire server
# (nx-27017), the fake POS server serving the legacy sample exports, the Express producer
# (with Bull Board), three fetch-worker processes and Prometheus scraping them (Debian's
# binary, on a free loopback port); posts a /missing request for the sample
# days as the app would; shows progress while the jobs run; prints a summary (jobs by outcome,
# rows per branch) and where to open Bull Board; then keeps the stack up until Ctrl-C and
# stops everything it started.
#
#   DEMO_EXIT=1            exit after the summary instead of waiting for Ctrl-C (CI)
#   DEMO_BROWSER_TEST=1    after the summary, run the Bull Board browser check (CI)
#   DEMO_PORT=3000         the producer's port (Bull Board at /admin/queues)
#   DEMO_HOLD=1            keep the stack up even without a terminal (stop it with
#                          `kill -INT <pid>` or `kill <pid>`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== setting up (the first time this installs what the machine lacks and builds the worker:"
echo "   about 5 minutes of build on 2 cores, plus the installs; seconds afterwards)"
bash tests/setup.sh

work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping the demo"
  [ -n "${hold_pid:-}" ] && kill "$hold_pid" 2>/dev/null || true
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  [ -n "${redis_port:-}" ] && redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT WHAT [LOG]: wait for a listener; on failure show the log's tail.
wait_port() {
  for _ in $(seq 1 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: $2 did not start" >&2
  [ -n "${3:-}" ] && tail -20 "$3" >&2
  exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --maxmemory-policy noeviction --daemonize yes --logfile "$work/redis.log" >/dev/null
wait_port "$redis_port" redis-server "$work/redis.log"

mongo_port=$(free_port)
python3 tests/support/nx_mongo.py --port "$mongo_port" --data-dir "$work/mongo" \
  --pid-file "$work/mongo.pid" --log-file "$work/mongo.log" >/dev/null 2>&1 &
pids+=($!)
wait_port "$mongo_port" "the MongoDB-wire server" "$work/mongo.log"

pos_port=$(free_port)
./target/release/fetch-worker fake-pos --dir tests/fixtures/legacy-samples/input --port "$pos_port" \
  >"$work/fakepos.out" 2>"$work/fakepos.log" &
pids+=($!)
wait_port "$pos_port" "the fake POS server" "$work/fakepos.log"

export REDIS_JOB_URL="redis://127.0.0.1:$redis_port/1"
export REDIS_CACHE_URL="redis://127.0.0.1:$redis_port/0"
export MONGO_URI="mongodb://127.0.0.1:$mongo_port/biggs"
export QUEUE_NAME=fetch BULL_PREFIX=bull
export BOARD_USER=${BOARD_USER:-admin} BOARD_PASSWORD=${BOARD_PASSWORD:-demo}
# The producer's API needs a bearer token; the demo makes a random one.
export API_TOKEN=${API_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}

app_port=${DEMO_PORT:-$(free_port)}
(cd node-producer-example && PORT="$app_port" BRANCHES=../tests/fixtures/legacy-samples/branches.txt \
  exec node src/server.js) >"$work/producer.log" 2>&1 &
pids+=($!)
wait_port "$app_port" "the producer" "$work/producer.log"

metrics_ports=()
for n in 1 2 3; do
  metrics_ports+=("$(free_port)")
  WORKER_NAME="demo-$n" JOB_CONCURRENCY=2 RUST_LOG=fetch_worker=warn \
    POS_LIST_URL="http://127.0.0.1:$pos_port/fetch_list2.php" \
    POS_FILE_BASE_URL="http://127.0.0.1:$pos_port/" \
    RAW_STORAGE_PATH="$work/raw" STORAGE=local METRICS_ADDR="127.0.0.1:${metrics_ports[$((n-1))]}" \
    ./target/release/fetch-worker run >"$work/worker-$n.log" 2>&1 &
  pids+=($!)
done

# Prometheus (Debian's binary) scraping the three workers, with the observability profile's
# alert rules: what the compose profile does with DNS discovery, here with the three ports.
prom_port=$(free_port)
mkdir -p "$work/prometheus"
cat >"$work/prometheus/prometheus.yml" <<PROM
global:
  scrape_interval: 2s
  evaluation_interval: 5s
rule_files:
  - $root/compose/observability/alerts.yml
scrape_configs:
  - job_name: fetch-worker
    static_configs:
      - targets: ['127.0.0.1:${metrics_ports[0]}', '127.0.0.1:${metrics_ports[1]}', '127.0.0.1:${metrics_ports[2]}']
PROM
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_port "$prom_port" "prometheus" "$work/prometheus.log"
echo "started: redis :$redis_port, mongo (nx-27017) :$mongo_port, fake POS :$pos_port, producer :$app_port, 3 workers, prometheus :$prom_port"

# The sample days, in the app's branches_missing shape.
body=$(ls tests/fixtures/legacy-samples/input | sed -n 's/^a_\([A-Z0-9-]*\)_\([12]\)_rd5000_\([0-9-]*\)_.*/\1 \2 \3/p' | sort -u |
  python3 -c '
import json, sys
missing = {}
for line in sys.stdin:
    branch, pos, date = line.split()
    missing.setdefault(branch, {}).setdefault(pos, []).append(date)
print(json.dumps({"branches_missing": missing}))')
answer=$(curl -s -X POST -H 'content-type: application/json' -H "authorization: Bearer $API_TOKEN" \
  --data "$body" "http://127.0.0.1:$app_port/missing")
count=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["count"])' "$answer")
echo "POST /missing -> 202, $count fetch-job(s) enqueued"

counts() {
  local r="redis-cli -p $redis_port -n 1"
  echo "waiting=$($r llen bull:fetch:wait) active=$($r llen bull:fetch:active) delayed=$($r zcard bull:fetch:delayed) completed=$($r zcard bull:fetch:completed) failed=$($r zcard bull:fetch:failed)"
}
for _ in $(seq 1 600); do
  line=$(counts)
  echo "  $line"
  case "$line" in
    *"waiting=0 active=0 delayed=0"*) break ;;
  esac
  sleep 1
done

echo
echo "== summary"
echo "jobs: $(counts)"
echo "rows per branch (MongoDB transactions):"
python3 - "$MONGO_URI" <<'PY'
import sys, pymongo
db = pymongo.MongoClient(sys.argv[1]).get_default_database()
rows = {}
# Rows only: the importer keeps one fence guard per day in the collection, without a branch.
for doc in db.transactions.find({"branch": {"$exists": True}}, {"branch": 1}):
    rows[doc["branch"]] = rows.get(doc["branch"], 0) + 1
for branch in sorted(rows):
    print(f"  {branch:<10} {rows[branch]:>6}")
print(f"  {'total':<10} {sum(rows.values()):>6}")
print(f"file records: {db.filerecords.count_documents({})}, monitor entries: {db.monitorentries.count_documents({})}")
PY
echo
echo "Bull Board: http://127.0.0.1:$app_port/admin/queues  (user $BOARD_USER, password $BOARD_PASSWORD)"
echo "Coverage calendar: http://127.0.0.1:$app_port/coverage?start=2026-02-03&end=2026-02-16  (same user and password)"
echo "API token (Authorization: Bearer): $API_TOKEN"
echo "Worker health and metrics: curl http://127.0.0.1:${metrics_ports[0]}/health/ready  (/health/live, /metrics; workers 2, 3 on :${metrics_ports[1]}, :${metrics_ports[2]})"
# What Prometheus sees: every worker up, and the queue as the workers read it.
prom_query() {
  curl -fsS -G --data-urlencode "query=$1" "http://127.0.0.1:$prom_port/api/v1/query" 2>/dev/null || echo '{}'
}
up="0 0"
for _ in $(seq 1 100); do
  up=$(prom_query 'up{job="fetch-worker"}' | python3 -c '
import json, sys
r = json.load(sys.stdin).get("data", {}).get("result", [])
print(sum(1 for s in r if s["value"][1] == "1"), len(r))')
  [ "$up" = "3 3" ] && break
  sleep 0.2
done
echo "prometheus: ${up% *} of ${up#* } workers up"
echo "  curl 'http://127.0.0.1:$prom_port/api/v1/query?query=up'"
echo "  curl -G 'http://127.0.0.1:$prom_port/api/v1/query' --data-urlencode 'query=max by (state) (fetch_worker_queue_jobs)'"
prom_query 'max by (state) (fetch_worker_queue_jobs)' | python3 -c '
import json, sys
r = json.load(sys.stdin).get("data", {}).get("result", [])
states = sorted((s["metric"]["state"], s["value"][1]) for s in r)
print("  queue by state: " + ", ".join(f"{k}={v}" for k, v in states))'
# The workers log at warn level here: anything they said deserves a look.
warnings=$(cat "$work"/worker-*.log | grep -c . || true)
echo "worker warnings: $warnings"
[ "$warnings" = 0 ] || sed 's/^/  /' "$work"/worker-*.log | tail -20

if [ "${DEMO_BROWSER_TEST:-0}" = 1 ]; then
  echo "== browser check (headless Chromium on Bull Board)"
  (cd node-producer-example && BOARD_URL="http://127.0.0.1:$app_port/admin/queues" \
    BOARD_USER="$BOARD_USER" BOARD_PASSWORD="$BOARD_PASSWORD" EXPECT_COMPLETED="$count" \
    SCREENSHOT="$root/target/artifacts/bull-board.png" node --test test/browser/)
fi

if [ "${DEMO_HOLD:-0}" = 1 ] || { [ "${DEMO_EXIT:-0}" != 1 ] && [ -t 0 ]; }; then
  echo "press Ctrl-C to stop the demo (or kill -INT $$)"
  # `wait` returns as soon as a signal arrives, so its trap runs at once; a foreground
  # `sleep` would hold the trap until it ended.
  while true; do
    sleep 3600 &
    hold_pid=$!
    wait "$hold_pid" || true
  done
fi
