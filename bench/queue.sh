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
#               (db 1), QUEUE_NAME, BULL_PREFIX=bull, JOB_CONCURRENCY=C and
#               RESULT_TTL_SECONDS=0: the BullMQ work alone, as the other peers do it
#     ours-app  the same with the app's result cache on (the worker's default): each job's
#               result is also written (SET … EX) to REDIS_CACHE_URL, db 0 of the same Redis,
#               so that work counts in its µs/job. Reported beside the table, not in its
#               ratios: no other peer writes anything for an app
#   and the floor (issue 12), the least Redis work that makes each job look the same to
#   Node's Queue, QueueEvents and Bull Board, with no worker around it:
#     floor     one script call per job (finish + claim the next, as fetch-next does)
#     floor2    two script calls per job (a claim script, then a finish script)
#     floor16   one script call per batch of 16 jobs (finish 16 + claim the next 16)
#     floor64   the same with batches of 64
#               all bench/peers/node/floor.js, whose header lists every Redis call it keeps
#               or drops and why; a batch variant runs only where C >= its batch (C/B
#               slots of B jobs). The report gives each peer's µs/job as a ratio to them.
#   at each concurrency of CONCURRENCY (default "1 16 64"), one run each (RUNS=R: R rounds,
#   interleaved, and the summary shows medians; the figures on a 2-core machine vary by
#   ±30% from run to run in jobs/s, much less in µs/job).
#   Reported per run: jobs/s, and Redis CPU per job in µs. Per concurrency: ours/node,
#   ours/official and ours/max(node, official). The goal: ours >= 1.5 x max(peers) at 64.
#
# HOW
#   - Before any floor drain, bench/peers/node/floor_check.js checks that Node sees the
#     floor's jobs as a real worker's (the bench stops if not).
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
#   - Redis's own accounting per command: CONFIG RESETSTAT just before the drainer starts,
#     INFO commandstats once the queue is empty (so it also holds the drainer's start-up and
#     the watcher's polls, a few hundred calls in all: < 0.05 calls/job). Redis 7 counts the
#     commands a script runs under their own names as well as in EVALSHA, whose µs include
#     them. Reported per run (first round) as command -> calls/job, µs/job, µs/call.
#     calls/job are exact; the µs are wall-clock time inside the command, so a busy machine
#     inflates them (INFO cpu is the CPU figure).
#   - Once before the drains, bench/peers/node/calibrate.js measures what a round trip
#     (PING), an empty script call and one redis.call inside a script cost this Redis, to
#     read the per-command tables with ("what would one call fewer per job save").
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
#   N=20000 CONCURRENCY="1 16 64" PEERS="node official ours floor floor16" bench/queue.sh
#   FETCH_WORKER_BIN=/path/to/fetch-worker bench/queue.sh
#   Settings (env): N (20000), CONCURRENCY ("1 16 64"), RUNS (1),
#   PEERS ("node official ours ours-app floor floor2 floor16 floor64"),
#   FETCH_WORKER_BIN, QUEUE_NAME (bench), DRAIN_TIMEOUT_S (600), POLL_MS (1),
#   REDIS_SERVER (redis-server), NO_BUILD (unset).
#   Output: a table on stdout, also written to bench/out/queue-<UTC timestamp>.txt.
#
# CLUSTER RUN (issue 10)
#   After the standalone runs, the same drain on a Redis Cluster of 3 masters (no replicas:
#   they would only add replication work), one queue with BULL_PREFIX={bull}, drained by the
#   peers of CLUSTER_PEERS (default "node ours"; empty skips the Cluster run) at the same
#   concurrencies: node through an ioredis Cluster (bench/peers/node/common.js), ours with
#   REDIS_JOB_URL=redis+cluster://… and its cache on the same cluster (its default). The
#   official Rust port has no Cluster mode, so it is not run there. Reported in a second
#   table: jobs/s and Redis CPU per job summed over the 3 masters. One queue is one hash slot,
#   so one master does all the queue's work (the `busiest` column: that master's share of the
#   Redis CPU; ours also writes each job's result to its cache, whose keys spread over every
#   master); a cluster spreads queues, not one queue.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
NODE_PEER="$BENCH/peers/node"
OFFICIAL_DIR="$BENCH/official-rs"
OFFICIAL_BIN="$OFFICIAL_DIR/target/release/official-rs-drain"

N=${N:-20000}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
PEERS=${PEERS:-"node official ours ours-app floor floor2 floor16 floor64"}
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
  case "$p" in node | official | ours | ours-app | floor | floor2 | floor16 | floor64) ;;
    *) die "unknown peer '$p' in PEERS (node, official, ours, ours-app, floor, floor2, floor16, floor64)" ;;
  esac
done
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
has_ours() { has_peer ours || has_peer ours-app; }
CLUSTER_PEERS=${CLUSTER_PEERS-"node ours"}
for p in $CLUSTER_PEERS; do
  case "$p" in node | ours) ;; *) die "unknown peer '$p' in CLUSTER_PEERS (node, ours: the official port has no Cluster mode)" ;; esac
done

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
  if has_ours && [[ -z "${FETCH_WORKER_BIN:-}" ]]; then
    echo "queue.sh: cargo build --release in $ROOT" >&2
    (cd "$ROOT" && cargo build --release --bin fetch-worker --features test-doubles >&2) || die "building fetch-worker failed"
  fi
fi
OURS_BIN=${FETCH_WORKER_BIN:-$ROOT/target/release/fetch-worker}
[[ -d "$NODE_PEER/node_modules/bullmq" ]] || die "bench/peers/node has no node_modules (run without NO_BUILD)"
if has_peer official; then
  [[ -x "$OFFICIAL_BIN" ]] || die "no $OFFICIAL_BIN (run without NO_BUILD)"
fi
if has_ours; then
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

# ---------------------------------------------------------------- the floor and Redis's own accounting (issue 12)

# floor_batch PEER: jobs per script call of a floor variant ("" for the other peers).
floor_batch() {
  case "$1" in floor | floor2) echo 1 ;; floor16) echo 16 ;; floor64) echo 64 ;; *) echo "" ;; esac
}

# floor_applies PEER C: false for a batch variant whose batch is larger than C (C jobs in
# flight cannot make a batch of more than C; it would repeat a smaller batch's run).
floor_applies() {
  local b
  b=$(floor_batch "$1")
  [[ -z "$b" ]] || ((b <= $2))
}

# floor_env PEER: the floor.js settings of a floor variant, as env assignments.
floor_env() {
  echo "FLOOR_BATCH=$(floor_batch "$1") FLOOR_SPLIT=$([[ "$1" == floor2 ]] && echo 1 || echo 0)"
}

declare -A CMDSTATS # [peer,c] -> INFO commandstats of the first round's drain

# stats_reset: zero Redis's per-command counters just before a drainer starts.
stats_reset() { rcli CONFIG RESETSTAT >/dev/null; }

# stats_save FILE PEER C RUN: INFO commandstats once the queue is empty; kept for the report
# (first round only).
stats_save() {
  rcli INFO commandstats | tr -d '\r' >"$1"
  ((${4} == 1)) && CMDSTATS[$2,$3]=$1
  return 0
}

# cmdstats_table FILE N: command -> calls/job, µs/job, µs/call, the most expensive first;
# commands below 0.001 calls/job and 0.01 µs/job are summed into one line.
cmdstats_table() {
  awk -F'[:,=]' -v n="$2" '
    /^cmdstat_/ {
      name = substr($1, 9); calls = $3; usec = $5
      if (calls / n < 0.001 && usec / n < 0.01) { oc += calls; ou += usec; on++; next }
      rows[name] = usec; c[name] = calls
    }
    END {
      printf "    %-22s %10s %9s %9s\n", "command", "calls/job", "µs/job", "µs/call"
      while (length(rows) > 0) {
        best = ""; for (k in rows) if (best == "" || rows[k] > rows[best]) best = k
        note = (best == "evalsha" || best == "eval") ? "  (the whole script call: includes the commands it runs, listed too)" : ""
        printf "    %-22s %10.3f %9.2f %9.2f%s\n", best, c[best] / n, rows[best] / n, rows[best] / c[best], note
        delete rows[best]
      }
      if (on) printf "    %-22s %10.3f %9.2f %9s\n", "(" on " others)", oc / n, ou / n, "-"
    }' "$1"
}

# floor_report: each peer's Redis µs/job against the floor variants (medians), and the
# per-command tables.
floor_report() {
  local c p f have=""
  for p in floor floor2 floor16 floor64; do has_peer "$p" && have+="$p "; done
  if [[ -n "$have" ]]; then
    echo
    echo "the floor (bench/peers/node/floor.js): Redis µs/job, and each peer's µs/job as a ratio to it"
    printf '%5s  %-11s' conc "µs/job"
    for f in $have; do printf '%9s' "$f"; done
    echo
    for c in $CONCURRENCY; do
      printf '%5s  %-10s' "$c" ""
      for f in $have; do printf '%9s' "$(num "${US[$f,$c]:-}" %.1f)"; done
      echo
      for p in $PEERS; do
        [[ -z "$(floor_batch "$p")" && -n "${US[$p,$c]:-}" ]] || continue
        printf '%5s  %-10s' "" "$p/"
        for f in $have; do printf '%9s' "$(ratio "${US[$p,$c]}" "${US[$f,$c]:-}")"; done
        echo
      done
    done
  fi
  if ((${#CMDSTATS[@]})); then
    echo
    echo "Redis commands per job (INFO commandstats after CONFIG RESETSTAT, first round). The calls"
    echo "scripts make count under their own names too. calls/job are exact; µs are the wall-clock"
    echo "time Redis spent in the command (not the I/O and parsing around it, which INFO cpu counts),"
    echo "so on a busy machine they include time Redis was descheduled and can add up to more than"
    echo "INFO cpu: read them as shares of a peer's time, and INFO cpu as its CPU."
    for c in $CONCURRENCY; do
      for p in $PEERS; do
        [[ -n "${CMDSTATS[$p,$c]:-}" ]] || continue
        echo
        echo "  $p c=$c (INFO cpu: $(num "$(first "${US_ALL[$p,$c]:-}")" %.1f) µs/job)"
        cmdstats_table "${CMDSTATS[$p,$c]}" "$N"
      done
    done
  fi
}

first() { echo "${1%% *}"; } # first word of a space-separated list

# calibrate: what a round trip, a script call and a redis.call inside a script cost this
# Redis (bench/peers/node/calibrate.js), once, before the drains. Sets CALIBRATION ("" when
# it failed: the drains do not depend on it).
CALIBRATION=""
calibrate() {
  local out="$WORK/calibrate"
  rcli FLUSHALL >/dev/null
  if REDIS_URL="$REDIS_URL" CONCURRENCY=16 node "$NODE_PEER/calibrate.js" >"$out" 2>"$out.err"; then
    CALIBRATION=$(tail -1 "$out")
  else
    echo "queue.sh: calibration failed (the report goes without it): $(tail -1 "$out.err")" >&2
  fi
}

# floor_check: bench/peers/node/floor_check.js (Node's Queue and QueueEvents see the floor's
# jobs as a real worker's), once before the drains when a floor variant runs; a failure stops
# the bench, as a floor that Node would see differently measures nothing.
floor_check() {
  local p want=""
  for p in $PEERS; do [[ -n "$(floor_batch "$p")" ]] && want=1; done
  [[ -n "$want" ]] || return 0
  rcli FLUSHALL >/dev/null
  REDIS_URL="$REDIS_URL" node "$NODE_PEER/floor_check.js" >"$WORK/floor_check" 2>&1 ||
    die "the floor check failed: $(tail -5 "$WORK/floor_check")"
}

calibration_report() {
  [[ -n "$CALIBRATION" ]] || return 0
  echo
  echo "calibration (bench/peers/node/calibrate.js, Redis CPU µs per call from INFO cpu, 16 in flight):"
  node -e '
    const c = JSON.parse(process.argv[1]);
    console.log(`  PING ${c.ping} (one in flight: ${c.ping_c1}); EVALSHA of an empty script with the 7 keys and 8 arguments of a floor call ${c.eval0};`);
    console.log(`  each redis.call("EXISTS") inside a script ${c.per_redis_call} (EXISTS itself: ${c.exists_us} in INFO commandstats)`);' "$CALIBRATION"
}

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

# start_watcher TAG OUT ENV-WORDS...: starts watch.js under the `env` words given (the run's
# Redis, queue and N) and waits until it says `ready`, so the drain never starts unwatched. Sets
# WATCH_PID; returns 1, with a FAILURES entry, when the watcher never gets ready.
start_watcher() {
  local tag=$1 out=$2
  shift 2
  "$@" POLL_MS="$POLL_MS" WATCH_TIMEOUT_S="$((DRAIN_TIMEOUT_S + 30))" \
    node "$NODE_PEER/watch.js" >"$out.watch" 2>"$out.watch.err" &
  WATCH_PID=$!
  CHILD_PIDS+=("$WATCH_PID")
  local waited=0
  until grep -q '^ready$' "$out.watch" 2>/dev/null; do
    if ! kill -0 "$WATCH_PID" 2>/dev/null || ((waited > 600)); then
      kill "$WATCH_PID" 2>/dev/null || true
      FAILURES+=("$tag: watcher did not get ready: $(tail -3 "$out.watch.err")")
      return 1
    fi
    sleep 0.05
    waited=$((waited + 1))
  done
}

# await_watcher: once the drainer has exited the queue should already be empty, so the watcher
# gets 5 s to see it and exit. Sets WATCH_RC to its exit status; returns 1 (watcher stopped)
# when it is still waiting for the queue to empty.
await_watcher() {
  local waited=0
  while kill -0 "$WATCH_PID" 2>/dev/null && ((waited < 100)); do
    sleep 0.05
    waited=$((waited + 1))
  done
  if kill -0 "$WATCH_PID" 2>/dev/null; then
    kill "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
    return 1
  fi
  WATCH_RC=0
  wait "$WATCH_PID" || WATCH_RC=$?
}

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

  start_watcher "$tag" "$out" "${common[@]}" || return

  local cmd
  case "$peer" in
    node) cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" node "$NODE_PEER/drain.js") ;;
    official) cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" "$OFFICIAL_BIN") ;;
    floor | floor2 | floor16 | floor64)
      # shellcheck disable=SC2046 # word splitting wanted: floor_env prints NAME=VALUE words
      cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" $(floor_env "$peer")
        node "$NODE_PEER/floor.js") ;;
    # REDIS_CACHE_URL points at this Redis too (db 0): its default is port 6379. Retention off,
    # as the peers keep every job. `ours` writes no results (RESULT_TTL_SECONDS=0), `ours-app`
    # writes them with the default TTL.
    ours | ours-app)
      local results_ttl=0
      [[ "$peer" == ours ]] || results_ttl=86400
      cmd=(env REDIS_JOB_URL="$REDIS_URL" REDIS_CACHE_URL="redis://127.0.0.1:$PORT/0"
        QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" JOB_CONCURRENCY="$c"
        REMOVE_ON_COMPLETE=false REMOVE_ON_FAIL=false JOB_TIMEOUT_MS=0
        RESULT_TTL_SECONDS="$results_ttl" "$OURS_BIN" run --processor noop --until-drained) ;;
  esac

  local load t0 t1 rc=0
  load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
  stats_reset
  t0=$(date +%s%N)
  timeout --kill-after=5 "$((DRAIN_TIMEOUT_S + 10))" "${cmd[@]}" >"$out.drain" 2>"$out.drain.err" || rc=$?
  t1=$(date +%s%N)

  if ! await_watcher; then
    local left
    left=$(rcli -n "$REDIS_DB" LLEN "$BULL_PREFIX:$QUEUE_NAME:wait")
    FAILURES+=("$tag: exit $rc, queue not drained ($left still waiting): $(tail -3 "$out.drain.err" | tr '\n' ' ')")
    return
  fi
  local wrc=$WATCH_RC
  if ((rc != 0)); then
    FAILURES+=("$tag: drainer exited $rc: $(tail -3 "$out.drain.err" | tr '\n' ' ')")
    return
  fi
  if ((wrc != 0)); then
    FAILURES+=("$tag: watcher failed: $(tail -3 "$out.watch.err" | tr '\n' ' ')")
    return
  fi
  stats_save "$out.cmdstats" "$peer" "$c" "$run"

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

# ---------------------------------------------------------------- cluster (issue 10)

CLUSTER_PORTS=()
CLUSTER_URL=""
CLUSTER_PREFIX="{bull}"
declare -A CJPS_ALL CUS_ALL CJPS CUS
CLOG=()

# cluster_start: 3 cluster-enabled redis-servers on free loopback ports (their bus ports,
# port + 10000, free too), joined with redis-cli --cluster create (no replicas).
cluster_start() {
  local i port dir
  for i in 1 2 3; do
    port=$(free_port)
    while ((port >= 55000 || port == 6379)) || ! node -e '
      const s = require("net").createServer();
      s.once("error", () => process.exit(1));
      s.listen(Number(process.argv[1]), "127.0.0.1", () => s.close(() => process.exit(0)));' "$((port + 10000))"; do
      port=$(free_port)
    done
    dir="$WORK/cluster-$i"
    mkdir -p "$dir"
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000 --dir "$dir" --logfile "$dir/redis.log" \
      --daemonize no &
    CHILD_PIDS+=("$!")
    CLUSTER_PORTS+=("$port")
  done
  for port in "${CLUSTER_PORTS[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$port" PING >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  local addrs=()
  for port in "${CLUSTER_PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log" 2>&1 ||
    die "redis-cli --cluster create failed: $(tail -5 "$WORK/cluster-create.log")"
  for port in "${CLUSTER_PORTS[@]}"; do
    for _ in $(seq 200); do
      redis-cli -p "$port" CLUSTER INFO | tr -d '\r' | grep -qx 'cluster_state:ok' && break
      sleep 0.05
    done
    redis-cli -p "$port" CLUSTER INFO | tr -d '\r' | grep -qx 'cluster_state:ok' ||
      die "cluster node $port never said cluster_state:ok"
  done
  CLUSTER_URL="redis+cluster://$(IFS=,; echo "${addrs[*]}")"
}

# run_cluster_peer PEER CONCURRENCY RUN: fill, watch and drain on the cluster, as run_peer does
# on the standalone Redis; appends to CJPS_ALL/CUS_ALL[PEER,C] and CLOG.
run_cluster_peer() {
  local peer=$1 c=$2 run=$3 tag="cluster $1 c=$2"
  ((RUNS == 1)) || tag="$tag run $run"
  local out="$WORK/cluster-$peer-$c-$run"
  local common=(env REDIS_URL="$CLUSTER_URL" QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$CLUSTER_PREFIX" N="$N")
  local port
  for port in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$port" FLUSHALL >/dev/null; done
  if ! "${common[@]}" node "$NODE_PEER/fill.js" >"$out.fill" 2>&1; then
    FAILURES+=("$tag: fill failed: $(tail -3 "$out.fill")")
    return
  fi
  start_watcher "$tag" "$out" "${common[@]}" || return
  local cmd
  case "$peer" in
    node) cmd=("${common[@]}" CONCURRENCY="$c" DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" node "$NODE_PEER/drain.js") ;;
    # The cache is the cluster too (REDIS_CACHE_URL's default in Cluster mode).
    ours) cmd=(env -u REDIS_CACHE_URL REDIS_JOB_URL="$CLUSTER_URL" QUEUE_NAME="$QUEUE_NAME"
      BULL_PREFIX="$CLUSTER_PREFIX" JOB_CONCURRENCY="$c" REMOVE_ON_COMPLETE=false REMOVE_ON_FAIL=false
      JOB_TIMEOUT_MS=0 METRICS_ADDR= "$OURS_BIN" run --processor noop --until-drained) ;;
  esac
  local load t0 t1 rc=0 wrc=0
  load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
  t0=$(date +%s%N)
  timeout --kill-after=5 "$((DRAIN_TIMEOUT_S + 10))" "${cmd[@]}" >"$out.drain" 2>"$out.drain.err" || rc=$?
  t1=$(date +%s%N)
  if ! await_watcher; then
    FAILURES+=("$tag: exit $rc, queue not drained: $(tail -3 "$out.drain.err" | tr '\n' ' ')")
    return
  fi
  wrc=$WATCH_RC
  if ((rc != 0 || wrc != 0)); then
    FAILURES+=("$tag: drainer exited $rc, watcher $wrc: $(tail -3 "$out.drain.err" "$out.watch.err" | tr '\n' ' ')")
    return
  fi
  local failed jps us busy share wall elapsed
  failed=$(json_field "$out.watch" failed)
  if [[ "$failed" != 0 ]]; then
    FAILURES+=("$tag: $failed jobs failed")
    return
  fi
  jps=$(json_field "$out.watch" jobs_per_s)
  us=$(json_field "$out.watch" redis_us_per_job)
  elapsed=$(json_field "$out.watch" elapsed_ms)
  share=$(json_field "$out.watch" busiest_master_share)
  busy=$(awk -v cpu="$(json_field "$out.watch" redis_cpu_ms)" -v ms="$elapsed" 'BEGIN { printf "%.0f%%", 100 * cpu / ms }')
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  CJPS_ALL[$peer,$c]+="$jps "
  CUS_ALL[$peer,$c]+="$us "
  CLOG+=("$(printf '%-9s %5s %4s %10.0f %10.1f %13.1f %6s %8s %12s %7s   %s' "$peer" "$c" "$run" "$jps" "$elapsed" "$us" "$busy" \
    "$(awk -v s="$share" 'BEGIN { printf "%.0f%%", 100 * s }')" "$(json_field "$out.drain" jobs_per_s | sed 's/^$/-/')" "$wall" "$load")")
  echo "queue.sh: $tag: $jps jobs/s, $us µs Redis CPU/job (summed over the masters)" >&2
}

cluster_report() {
  echo
  echo "Redis Cluster: 3 masters (no replicas) on 127.0.0.1:$(IFS=,; echo "${CLUSTER_PORTS[*]}"), one queue, BULL_PREFIX=$CLUSTER_PREFIX"
  echo "one queue is one hash slot, so one master does all its work (busiest = that master's share of the"
  echo "Redis CPU; ours also writes each result to its cache, the same cluster, whose keys spread over every"
  echo "master); µs/job is summed over the 3 masters. The official Rust port has no Cluster mode: not run."
  printf '%-9s %5s %4s %10s %10s %14s %6s %8s %12s %7s   %s\n' peer conc run "jobs/s" "drain ms" "redis µs/job" busy busiest \
    "self jobs/s" "wall s" "load before"
  local line c
  for line in "${CLOG[@]}"; do echo "$line"; done
  echo
  ((RUNS == 1)) || echo "medians of $RUNS runs:"
  echo "       -- cluster jobs/s --   -- standalone jobs/s --   ours/node   -- cluster µs/job --"
  printf '%5s %10s %10s   %10s %10s   %9s   %9s %9s\n' conc node ours node ours cluster node ours
  for c in $CONCURRENCY; do
    printf '%5s %10s %10s   %10s %10s   %9s   %9s %9s\n' "$c" "$(num "${CJPS[node,$c]:-}" %.0f)" "$(num "${CJPS[ours,$c]:-}" %.0f)" \
      "$(num "${JPS[node,$c]:-}" %.0f)" "$(num "${JPS[ours,$c]:-}" %.0f)" "$(ratio "${CJPS[ours,$c]:-}" "${CJPS[node,$c]:-}")" \
      "$(num "${CUS[node,$c]:-}" %.1f)" "$(num "${CUS[ours,$c]:-}" %.1f)"
  done
  local f shown=""
  for f in "${FAILURES[@]}"; do
    [[ "$f" == cluster* ]] || continue
    [[ -n "$shown" ]] || { echo; echo "FAILED Cluster runs:"; shown=1; }
    echo "  $f"
  done
}

cluster_runs() {
  [[ -n "$CLUSTER_PEERS" ]] || return 0
  if [[ " $CLUSTER_PEERS " == *" ours "* ]]; then
    [[ -x "$OURS_BIN" ]] || die "no fetch-worker binary at $OURS_BIN for the Cluster run (set FETCH_WORKER_BIN)"
  fi
  cluster_start
  local run c peer key
  for run in $(seq "$RUNS"); do
    for c in $CONCURRENCY; do
      for peer in $CLUSTER_PEERS; do
        run_cluster_peer "$peer" "$c" "$run"
      done
    done
  done
  for key in "${!CJPS_ALL[@]}"; do
    # shellcheck disable=SC2086 # word splitting wanted: space-separated numbers
    CJPS[$key]=$(median ${CJPS_ALL[$key]})
    # shellcheck disable=SC2086
    CUS[$key]=$(median ${CUS_ALL[$key]})
  done
}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
floor_check
calibrate
for run in $(seq "$RUNS"); do
  for c in $CONCURRENCY; do
    for peer in $PEERS; do
      floor_applies "$peer" "$c" || continue
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
delta() { # delta A B -> A-B signed with 1 decimal, or "-"
  if [[ -n "$1" && -n "$2" ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; else echo "-"; fi
}
faster_peer() { # faster_peer C -> the higher median jobs/s of node and official at C ("" when neither ran)
  local best max=""
  for best in "${JPS[node,$1]:-}" "${JPS[official,$1]:-}"; do
    if [[ -n "$best" ]] && { [[ -z "$max" ]] || awk -v a="$best" -v b="$max" 'BEGIN { exit !(a > b) }'; }; then max=$best; fi
  done
  echo "$max"
}

versions() {
  local bullmq official ours_desc
  bullmq=$(node -p 'require(process.argv[1] + "/node_modules/bullmq/package.json").version' "$NODE_PEER" 2>/dev/null || echo "?")
  official=$(sed -n '/^name = "bullmq-official"/{n;s/^version = "\(.*\)"/\1/p}' "$OFFICIAL_DIR/Cargo.lock" 2>/dev/null || true)
  echo "bullmq (node) ${bullmq}, bullmq-official ${official:-?}, Redis ${REDIS_VERSION}, node $(node --version)"
  if has_ours; then
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
  local c max goal_line=""
  for c in $CONCURRENCY; do
    local n=${JPS[node,$c]:-} o=${JPS[official,$c]:-} u=${JPS[ours,$c]:-}
    max=$(faster_peer "$c")
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
  if has_peer ours-app; then
    echo
    echo "ours-app: ours with the app's result cache on (the default; one SET … EX per job in db 0)"
    printf '%5s %8s %10s %14s %16s\n' conc jobs/s "/max(peers)" "Redis µs/job" "µs/job - ours"
    for c in $CONCURRENCY; do
      local a=${JPS[ours-app,$c]:-} au=${US[ours-app,$c]:-}
      printf '%5s %8s %10s %14s %16s\n' "$c" "$(num "$a" %.0f)" "$(ratio "$a" "$(faster_peer "$c")")" \
        "$(num "$au" %.1f)" "$(delta "$au" "${US[ours,$c]:-}")"
    done
  fi
  calibration_report
  floor_report
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
cluster_runs
[[ -z "$CLUSTER_PEERS" ]] || cluster_report | tee -a "$OUT"
echo "(written to ${OUT#"$ROOT"/})" >&2

if ((${#FAILURES[@]})); then
  echo "queue.sh: ${#FAILURES[@]} run(s) failed (see above)" >&2
  exit 1
fi
