#!/usr/bin/env bash
# bench/queue.sh — how fast does a worker drain a BullMQ queue, and what does it cost Redis?
#
# WHAT
#   One queue of N jobs shaped like the app's (name `fetch-job`, data {branch, pos, date},
#   opts {attempts: 3, backoff: {type: 'exponential', delay: 1000}, removeOnComplete: true})
#   is drained, with a processor that does nothing, by each of:
#     node      the Node BullMQ Worker (bullmq 5.x)              bench/peers/node/drain.js
#     official  the official Rust port (crate bullmq-official)   bench/official-rs/
#     ours      fetch-worker run --processor noop --until-drained, with REDIS_JOB_URL
#               (db 1), QUEUE_NAME, BULL_PREFIX=bull, JOB_CONCURRENCY=C, and REDIS_CACHE_URL
#               on the same Redis (db 0): whatever it writes there counts in its µs/job
#   at each concurrency of CONCURRENCY (default "1 16 64"), one run each (RUNS=R: R rounds,
#   interleaved, and the summary shows medians; the figures on a 2-core machine vary by
#   ±30% from run to run in jobs/s, much less in µs/job).
#   Reported per run: jobs/s, and Redis CPU per job in µs. Per concurrency: ours/node,
#   ours/official and ours/max(node, official). The goal: ours >= 1.5 x max(peers) at 64.
#
# HOW
#   - Its own redis-server (REDIS_SERVER, default `redis-server`) on a free loopback port,
#     never 6379, with --save '' --appendonly no; BullMQ keys in db 1; stopped at the end.
#   - Before every run: FLUSHALL, then bench/peers/node/fill.js adds the N jobs with
#     Queue.addBulk in chunks of 1000 (not timed).
#   - The measurement is the same for all three and is taken from Redis, not from the
#     worker: bench/peers/node/watch.js polls LLEN wait, LLEN active, ZCARD delayed and
#     ZCARD prioritized (one pipelined round trip per poll).
#       start = the first poll that sees a job claimed (gone from `wait`, or in `active`);
#               polled every POLL_MS (1 ms) until then;
#       end   = the first poll that sees all four empty; during the drain the watcher
#               sleeps a quarter of the time the drain so far says is left (1..50 ms),
#               so the end is seen within ~1 ms with a few dozen polls in all.
#     So process start, connecting, script loading and shutdown are excluded for every
#     peer alike, and ours needs no cooperation beyond draining. Both edges are seen up
#     to one poll late (~1-2 ms), so the errors mostly cancel; at N=20000 and 20k jobs/s
#     a drain lasts ~1 s, so that is ~0.1-0.2%.
#       jobs/s     = N / (end - start)
#       µs/job     = (used_cpu_sys + used_cpu_user from INFO cpu, at end minus at start)
#                    / N. It covers everything Redis did during the drain, the watcher's
#                    polls included: ~25 µs of Redis CPU each (a round trip to an idle
#                    Redis, measured here), a few dozen per drain: < 0.1 µs/job.
#   - `busy` is Redis CPU time over drain time: near 100% means Redis was the bottleneck,
#     and then jobs/s can only grow by spending fewer µs of Redis per job.
#   - The node and official peers also print their own view (Worker.run to the N-th
#     completion); it is shown as `self jobs/s`, a cross-check only. `wall s` is the whole
#     process, launch to exit.
#   - A run fails when the drainer exits non-zero, the queue is not empty shortly after it
#     exits, any job failed, or it exceeds DRAIN_TIMEOUT_S. Failures are listed at the end
#     and the script exits 1; the other runs still go on.
#   - This machine has 2 cores: Redis, the drainer and the watcher share them. Anything
#     else running (a compile) skews the figures; the load average before each run is
#     written to the report.
#
# BUILDS (each skipped with NO_BUILD=1)
#   node      npm ci in bench/peers/node when node_modules is missing or older than the lock
#             (falls back to `npm install --no-save`, see below)
#   official  cargo build --release in bench/official-rs (its own target/ there)
#   ours      cargo build --release in the repo root, unless FETCH_WORKER_BIN is given
#   (On a small shared machine: CARGO_BUILD_JOBS=1 is passed through to cargo.)
#
# USAGE
#   bench/queue.sh
#   N=20000 CONCURRENCY="1 16 64" PEERS="node official ours" bench/queue.sh
#   FETCH_WORKER_BIN=/path/to/fetch-worker bench/queue.sh
#   Settings (env): N (20000), CONCURRENCY ("1 16 64"), RUNS (1), PEERS ("node official ours"),
#   FETCH_WORKER_BIN, QUEUE_NAME (bench), DRAIN_TIMEOUT_S (600), POLL_MS (1),
#   REDIS_SERVER (redis-server), NO_BUILD (unset).
#   Output: a table on stdout, also written to bench/out/queue-<UTC timestamp>.txt.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
NODE_PEER="$BENCH/peers/node"
OFFICIAL_DIR="$BENCH/official-rs"
OFFICIAL_BIN="$OFFICIAL_DIR/target/release/official-rs-drain"

N=${N:-20000}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
PEERS=${PEERS:-"node official ours"}
RUNS=${RUNS:-1}
QUEUE_NAME=${QUEUE_NAME:-bench}
BULL_PREFIX=bull
DRAIN_TIMEOUT_S=${DRAIN_TIMEOUT_S:-600}
POLL_MS=${POLL_MS:-1}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NO_BUILD=${NO_BUILD:-}
REDIS_DB=1

die() {
  echo "queue.sh: $*" >&2
  exit 1
}

[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
for c in $CONCURRENCY; do
  [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY must list positive integers, got '$c'"
done
for p in $PEERS; do
  case "$p" in node | official | ours) ;; *) die "unknown peer '$p' in PEERS (node, official, ours)" ;; esac
done
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

for tool in node npm redis-cli timeout "$REDIS_SERVER"; do
  command -v "$tool" >/dev/null || die "'$tool' is needed and not on PATH"
done

# ---------------------------------------------------------------- builds

if [[ -z "$NO_BUILD" ]]; then
  if [[ ! -d "$NODE_PEER/node_modules" || "$NODE_PEER/package-lock.json" -nt "$NODE_PEER/node_modules/.package-lock.json" ]]; then
    echo "queue.sh: npm ci in bench/peers/node" >&2
    # The registry this project reaches lacks msgpackr-extract's prebuilt binaries for other
    # platforms (darwin, win32, linux-arm), so the lock cannot list them and `npm ci` calls it
    # out of sync. `npm install --no-save` then installs the same locked versions and leaves
    # the lock alone.
    if ! (cd "$NODE_PEER" && npm ci --no-audit --no-fund >&2); then
      echo "queue.sh: npm ci refused the lock; npm install --no-save (same locked versions)" >&2
      (cd "$NODE_PEER" && npm install --no-save --no-audit --no-fund >&2) || die "installing bench/peers/node failed"
    fi
  fi
  if has_peer official; then
    echo "queue.sh: cargo build --release in bench/official-rs" >&2
    (cd "$OFFICIAL_DIR" && cargo build --release >&2) || die "building bench/official-rs failed"
  fi
  if has_peer ours && [[ -z "${FETCH_WORKER_BIN:-}" ]]; then
    echo "queue.sh: cargo build --release in $ROOT" >&2
    (cd "$ROOT" && cargo build --release --bin fetch-worker --features test-doubles >&2) || die "building fetch-worker failed"
  fi
fi
OURS_BIN=${FETCH_WORKER_BIN:-$ROOT/target/release/fetch-worker}
[[ -d "$NODE_PEER/node_modules/bullmq" ]] || die "bench/peers/node has no node_modules (run without NO_BUILD)"
if has_peer official; then
  [[ -x "$OFFICIAL_BIN" ]] || die "no $OFFICIAL_BIN (run without NO_BUILD)"
fi
if has_peer ours; then
  [[ -x "$OURS_BIN" ]] || die "no fetch-worker binary at $OURS_BIN (set FETCH_WORKER_BIN or run without NO_BUILD)"
fi

# ---------------------------------------------------------------- redis

WORK=$(mktemp -d "${TMPDIR:-/tmp}/queue-bench.XXXXXX")
REDIS_PID=""
CHILD_PIDS=()

cleanup() {
  local pid
  for pid in "${CHILD_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [[ -n "$REDIS_PID" ]]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e '
    const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

PORT=$(free_port)
while [[ "$PORT" == 6379 ]]; do PORT=$(free_port); done
"$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" --daemonize no &
REDIS_PID=$!
for _ in $(seq 100); do
  redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start: $(tail -5 "$WORK/redis.log" 2>/dev/null)"
  sleep 0.05
done
redis-cli -p "$PORT" PING >/dev/null 2>&1 || die "redis-server did not answer on port $PORT"
rcli() { redis-cli -p "$PORT" "$@"; }
REDIS_VERSION=$(rcli INFO server | tr -d '\r' | sed -n 's/^redis_version://p')
REDIS_URL="redis://127.0.0.1:$PORT/$REDIS_DB"

# ---------------------------------------------------------------- one run

# Field NAME of the last JSON line of FILE ("" when absent).
json_field() {
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    const last = lines.filter((l) => l.startsWith("{")).pop();
    const v = last ? JSON.parse(last)[process.argv[2]] : undefined;
    console.log(v === undefined ? "" : v);' "$1" "$2"
}

declare -A JPS_ALL US_ALL JPS US
FAILURES=()
LOG=()

# run_peer PEER CONCURRENCY RUN: fill, watch, drain; appends to JPS_ALL/US_ALL[PEER,C].
run_peer() {
  local peer=$1 c=$2 run=$3 tag="$1 c=$2"
  ((RUNS == 1)) || tag="$tag run $run"
  local out="$WORK/$peer-$c-$run"
  local common=(env REDIS_URL="$REDIS_URL" QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" N="$N")

  rcli FLUSHALL >/dev/null
  if ! "${common[@]}" node "$NODE_PEER/fill.js" >"$out.fill" 2>&1; then
    FAILURES+=("$tag: fill failed: $(tail -3 "$out.fill")")
    return
  fi

  "${common[@]}" POLL_MS="$POLL_MS" WATCH_TIMEOUT_S="$((DRAIN_TIMEOUT_S + 30))" \
    node "$NODE_PEER/watch.js" >"$out.watch" 2>"$out.watch.err" &
  local watch_pid=$!
  CHILD_PIDS+=("$watch_pid")
  local waited=0
  until grep -q '^ready$' "$out.watch" 2>/dev/null; do
    if ! kill -0 "$watch_pid" 2>/dev/null || ((waited > 600)); then
      kill "$watch_pid" 2>/dev/null || true
      FAILURES+=("$tag: watcher did not get ready: $(tail -3 "$out.watch.err")")
      return
    fi
    sleep 0.05
    waited=$((waited + 1))
  done

  local cmd
  case "$peer" in
    node) cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" node "$NODE_PEER/drain.js") ;;
    official) cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" "$OFFICIAL_BIN") ;;
    # REDIS_CACHE_URL points at this Redis too (db 0): its default is port 6379. Retention off,
    # as the peers keep every job.
    ours) cmd=(env REDIS_JOB_URL="$REDIS_URL" REDIS_CACHE_URL="redis://127.0.0.1:$PORT/0"
      QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" JOB_CONCURRENCY="$c"
      REMOVE_ON_COMPLETE=false REMOVE_ON_FAIL=false JOB_TIMEOUT_MS=0
      "$OURS_BIN" run --processor noop --until-drained) ;;
  esac

  local load t0 t1 rc=0
  load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
  t0=$(date +%s%N)
  timeout --kill-after=5 "$((DRAIN_TIMEOUT_S + 10))" "${cmd[@]}" >"$out.drain" 2>"$out.drain.err" || rc=$?
  t1=$(date +%s%N)

  # The queue should already be empty; give the watcher a moment to see it.
  waited=0
  while kill -0 "$watch_pid" 2>/dev/null && ((waited < 100)); do
    sleep 0.05
    waited=$((waited + 1))
  done
  if kill -0 "$watch_pid" 2>/dev/null; then
    kill "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    local left
    left=$(rcli -n "$REDIS_DB" LLEN "$BULL_PREFIX:$QUEUE_NAME:wait")
    FAILURES+=("$tag: exit $rc, queue not drained ($left still waiting): $(tail -3 "$out.drain.err" | tr '\n' ' ')")
    return
  fi
  local wrc=0
  wait "$watch_pid" || wrc=$?
  if ((rc != 0)); then
    FAILURES+=("$tag: drainer exited $rc: $(tail -3 "$out.drain.err" | tr '\n' ' ')")
    return
  fi
  if ((wrc != 0)); then
    FAILURES+=("$tag: watcher failed: $(tail -3 "$out.watch.err" | tr '\n' ' ')")
    return
  fi

  local failed completed
  failed=$(json_field "$out.watch" failed)
  completed=$(json_field "$out.watch" completed)
  if [[ "$failed" != 0 ]]; then
    FAILURES+=("$tag: $failed jobs failed")
    return
  fi
  local jps us self wall note=""
  jps=$(json_field "$out.watch" jobs_per_s)
  us=$(json_field "$out.watch" redis_us_per_job)
  self=$(json_field "$out.drain" jobs_per_s)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  JPS_ALL[$peer,$c]+="$jps "
  US_ALL[$peer,$c]+="$us "
  [[ "$completed" == 0 ]] || note="  (!) $completed jobs kept in completed: removeOnComplete not honoured"
  local elapsed busy
  elapsed=$(json_field "$out.watch" elapsed_ms)
  busy=$(awk -v cpu="$(json_field "$out.watch" redis_cpu_ms)" -v ms="$elapsed" 'BEGIN { printf "%.0f%%", 100 * cpu / ms }')
  LOG+=("$(printf '%-9s %5s %4s %10.0f %10.1f %13.1f %6s %12s %6s %7s   %s%s' "$peer" "$c" "$run" "$jps" \
    "$elapsed" "$us" "$busy" "${self:--}" "$(json_field "$out.watch" polls)" "$wall" "$load" "$note")")
  echo "queue.sh: $tag: $jps jobs/s, $us µs Redis CPU/job" >&2
}

median() { # median of the numbers given ("" when none)
  (($#)) || { echo ""; return; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- runs

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
for run in $(seq "$RUNS"); do
  for c in $CONCURRENCY; do
    for peer in $PEERS; do
      run_peer "$peer" "$c" "$run"
    done
  done
done
for key in "${!JPS_ALL[@]}"; do
  # shellcheck disable=SC2086 # word splitting wanted: the lists are space-separated numbers
  JPS[$key]=$(median ${JPS_ALL[$key]})
  # shellcheck disable=SC2086
  US[$key]=$(median ${US_ALL[$key]})
done

# ---------------------------------------------------------------- report

ratio() { # ratio A B -> A/B with 2 decimals, or "-"
  if [[ -n "$1" && -n "$2" ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi
}
num() { # num VALUE FORMAT -> formatted, or "-"
  if [[ -n "$1" ]]; then printf "$2" "$1"; else echo "-"; fi
}

versions() {
  local bullmq official ours_desc
  bullmq=$(node -p 'require(process.argv[1] + "/node_modules/bullmq/package.json").version' "$NODE_PEER" 2>/dev/null || echo "?")
  official=$(sed -n '/^name = "bullmq-official"/{n;s/^version = "\(.*\)"/\1/p}' "$OFFICIAL_DIR/Cargo.lock" 2>/dev/null || true)
  echo "bullmq (node) ${bullmq}, bullmq-official ${official:-?}, Redis ${REDIS_VERSION}, node $(node --version)"
  if has_peer ours; then
    ours_desc=$(git -C "$(dirname "$OURS_BIN")" log -1 --format='%h %s' 2>/dev/null || true)
    echo "ours: $OURS_BIN${ours_desc:+ (repo at $ours_desc)}"
  fi
}

report() {
  echo "bench/queue.sh  $STAMP  N=$N  concurrency: $CONCURRENCY  peers: $PEERS  runs: $RUNS"
  echo "$(versions)"
  echo "machine: $(nproc) cores; Redis on 127.0.0.1:$PORT --save '' --appendonly no, db $REDIS_DB"
  echo "jobs/s and µs/job are measured from Redis (first claim -> queue empty; INFO cpu delta / N)"
  echo
  # (%14s: the µ takes two bytes and one column)
  printf '%-9s %5s %4s %10s %10s %14s %6s %12s %6s %7s   %s\n' peer conc run "jobs/s" "drain ms" "redis µs/job" busy \
    "self jobs/s" polls "wall s" "load before"
  local line
  for line in "${LOG[@]}"; do echo "$line"; done
  echo
  ((RUNS == 1)) || echo "medians of $RUNS runs:"
  echo "      --------- jobs/s ---------   ------------ ours/ ------------   ---- Redis µs/job ----"
  printf '%5s %8s %9s %8s   %9s %10s %10s   %6s %8s %6s\n' conc node official ours node official "max(peers)" node official ours
  local c max best goal_line=""
  for c in $CONCURRENCY; do
    local n=${JPS[node,$c]:-} o=${JPS[official,$c]:-} u=${JPS[ours,$c]:-}
    max=""
    for best in "$n" "$o"; do
      if [[ -n "$best" ]] && { [[ -z "$max" ]] || awk -v a="$best" -v b="$max" 'BEGIN { exit !(a > b) }'; }; then max=$best; fi
    done
    printf '%5s %8s %9s %8s   %9s %10s %10s   %6s %8s %6s\n' "$c" "$(num "$n" %.0f)" "$(num "$o" %.0f)" "$(num "$u" %.0f)" \
      "$(ratio "$u" "$n")" "$(ratio "$u" "$o")" "$(ratio "$u" "$max")" \
      "$(num "${US[node,$c]:-}" %.1f)" "$(num "${US[official,$c]:-}" %.1f)" "$(num "${US[ours,$c]:-}" %.1f)"
    if [[ "$c" == 64 && -n "$u" && -n "$max" ]]; then
      local r
      r=$(ratio "$u" "$max")
      if awk -v r="$r" 'BEGIN { exit !(r >= 1.5) }'; then goal_line="goal at 64: ours/max(peers) = $r >= 1.5: MET"; else goal_line="goal at 64: ours/max(peers) = $r < 1.5: NOT MET"; fi
    fi
  done
  [[ -z "$goal_line" ]] || { echo; echo "$goal_line"; }
  if ((${#FAILURES[@]})); then
    echo
    echo "FAILED runs:"
    local f
    for f in "${FAILURES[@]}"; do echo "  $f"; done
  fi
}

mkdir -p "$BENCH/out"
OUT="$BENCH/out/queue-$STAMP.txt"
report | tee "$OUT"
echo "(written to ${OUT#"$ROOT"/})" >&2

if ((${#FAILURES[@]})); then
  echo "queue.sh: ${#FAILURES[@]} run(s) failed (see above)" >&2
  exit 1
fi
