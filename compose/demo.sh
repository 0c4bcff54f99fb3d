#!/usr/bin/env bash
# The demo on embedded defaults: starts its own redis-server, enqueues one `fetch-job` per
# (branch, pos, date) of the legacy sample days with Node BullMQ (as the app's /missing route
# does), runs three fetch-worker processes on the queue, shows progress, prints a summary,
# and stops everything it started (also on Ctrl-C).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/setup.sh >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${redis_port:-}" ] && redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
  --maxmemory-policy noeviction --daemonize yes --logfile "$work/redis.log" >/dev/null
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
export REDIS_JOB_URL="redis://127.0.0.1:$redis_port/1"
export REDIS_CACHE_URL="redis://127.0.0.1:$redis_port/0"
export QUEUE_NAME=fetch BULL_PREFIX=bull
echo "redis-server on port $redis_port (queue in db 1, results in db 0)"

# One job per sample day, shaped like the app's: {branch, pos, date}.
spec=$(ls tests/fixtures/legacy-samples/input 2>/dev/null | sed -n 's/^a_\([A-Z0-9-]*\)_\([12]\)_rd5000_\([0-9-]*\)_.*/\1 \2 \3/p' | sort -u |
  awk 'BEGIN{printf "["} {if (NR>1) printf ","; printf "{\"name\":\"fetch-job\",\"data\":{\"branch\":\"%s\",\"pos\":%s,\"date\":\"%s\"}}", $1, $2, $3} END{print "]"}')
[ "$spec" = "[]" ] && spec='[{"name":"fetch-job","data":{"branch":"BMC","pos":1,"date":"2026-02-09"}}]'
count=$(node -e 'console.log(JSON.parse(process.argv[1]).length)' "$spec")
(cd node-producer-example && node scripts/enqueue.js --spec "$spec" >/dev/null)
echo "enqueued $count fetch-job(s) with Node BullMQ"

for n in 1 2 3; do
  WORKER_NAME="demo-$n" JOB_CONCURRENCY=2 RUST_LOG=fetch_worker=warn \
    ./target/debug/fetch-worker run --processor noop --until-drained &
  pids+=($!)
done
echo "started 3 workers (processor: noop until the POS pipeline lands)"

counts() {
  local w a c f
  w=$(redis-cli -p "$redis_port" -n 1 llen bull:fetch:wait)
  a=$(redis-cli -p "$redis_port" -n 1 llen bull:fetch:active)
  c=$(redis-cli -p "$redis_port" -n 1 zcard bull:fetch:completed)
  f=$(redis-cli -p "$redis_port" -n 1 zcard bull:fetch:failed)
  echo "waiting=$w active=$a completed=$c failed=$f"
}
for p in "${pids[@]}"; do
  while kill -0 "$p" 2>/dev/null; do echo "  $(counts)"; sleep 0.5; done
done
pids=()
echo "summary: $(counts)"
first=$(redis-cli -p "$redis_port" -n 1 zrange bull:fetch:completed 0 0)
echo "job $first returned: $(redis-cli -p "$redis_port" -n 1 hget "bull:fetch:$first" returnvalue)"
echo "cached result (db 0): $(redis-cli -p "$redis_port" -n 0 get "fetch-worker:result:fetch:$first")"
