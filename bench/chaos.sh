#!/usr/bin/env bash
# bench/chaos.sh — does every POS day end exact, and is no job lost, when workers are killed,
# Redis restarts, MongoDB goes away and writes arrive late, all while the queue drains?
#
# WHAT
#   The whole stack on loopback: the Node producer (node-producer-example/scripts/enqueue.js,
#   the app's default job options with attempts raised to ATTEMPTS: exponential backoff from
#   1 s) enqueues one `fetch-job` per POS day, in waves, plus DUP_PCT % of the days a second
#   time as duplicate jobs (each right after its original, delayed 0-3 s at random, so it
#   meets the first job at any stage of its import); three `fetch-worker run`
#   processes; redis-server with its append-only file; MongoDB (nx-27017, or MONGO_URI); the
#   fake POS server over DAYS shifted copies of the legacy samples (17 POS days each, as
#   bench/pipeline.sh makes them) with 10 % of list and download calls faulted at random.
#   While it drains, on a fixed timetable:
#     kill     SIGKILL a random worker, start a new one in its slot at once;
#     term     SIGTERM a random worker (SHUTDOWN_TIMEOUT_MS=500: its jobs are handed back),
#              start a new one once it has exited;
#     redis    restart redis-server (SIGTERM, then again on the same port and directory: the
#              append-only file brings the queue back);
#     outage   SIGKILL nx-27017, start it again on the same port and data 10 s later (with
#              MONGO_URI: the proxy below drops every connection and refuses new ones for 10 s);
#     hold     arm the proxy (bench/lib/hold_proxy.py, between the workers and MongoDB) to
#              hold the next 2 `update`/`delete` commands on `transactions` (the import's
#              fenced batches of rows, its stale-row delete) for HOLD_MS (5 s), longer than the
#              import lease (IMPORT_LEASE_MS, 3.5 s); when the first held write is an import
#              batch, the producer at once adds a duplicate job of that day (a second
#              request while the first import's write is stuck in the network): it waits for
#              the lease, takes the day over, and the held batch then arrives late and must
#              be fenced off.
#   Then it waits until every job has finished (or DRAIN_TIMEOUT_S), stops the workers and
#   checks, from Redis and MongoDB (bench/lib/chaos_check.js):
#     - jobs: added = completed + failed + pending + lost; lost must be 0, pending 0, and
#       failed 0 (only transient faults are injected; a failed job would also need a monitor
#       entry for its day, which is checked too);
#     - per day: the `_id`s of its transactions are exactly the row keys of its export
#       (0 missing, 0 extra, 0 duplicates), no rows of other days, and its `imports` record
#       says `done`;
#     - every injected fault happened (the counts are printed).
#   Exit status 1, with the reasons, when any check fails.
#
# HOW
#   - Workers: JOB_CONCURRENCY 2 each, LOCK_DURATION_MS 4000 and STALLED_INTERVAL_MS 1500 (a
#     killed worker's jobs come back within seconds), MAX_STALLED_COUNT 1000 (a job whose
#     worker we kill is not a bad job: the default of 1 would fail a job killed twice),
#     IMPORT_LEASE_MS 3500, MONGO_WRITE_MAX_TIME_MS 1000 (a takeover of an unfinished import
#     waits 3 s before deleting stale rows: less than the lease, see the report's note),
#     MONGO_SERVER_SELECTION_TIMEOUT_MS 3000, MONGO_OP_TIMEOUT_MS 10000, DRAIN_DELAY_MS 500,
#     METRICS_ADDR off, LOG_FORMAT json; one log file per process started.
#   - POS faults (fake-pos `--faults`, rules with `chance`): list calls 5 % HTTP 503 and 5 %
#     connection reset; downloads 5 % HTTP 500 and 5 % truncated bodies (the second rule's
#     chance is 0.0526, so the two together fault 10 % of calls). Each POS call is also
#     retried inside an attempt (POS_FETCH_ATTEMPTS, 3).
#   - Redis: --appendonly yes --appendfsync everysec --save ''; restarts are clean (SIGTERM),
#     so the file holds every acknowledged write. Enqueue waves and Redis restarts never
#     overlap (one timetable, run in order).
#   - The random choices (duplicate days, which worker) come from SEED.
#   - The timetable (seconds after the workers start):
#       full  (default): DAYS=8 (136 days + 14 duplicates), waves every 4 s until 36 s; kills
#             every 5 s from 3 s to 78 s (16); SIGTERM at 24 and 61 s; Redis restarts at 14
#             and 49 s; MongoDB outage 33-43 s; holds armed at 7, 19, 47, 56 and 69 s.
#       short (CHAOS_SHORT=1 or --short; tests/run-all.sh): DAYS=2 (34 days + 4
#             duplicates), waves at 0, 3, 6, 9 s; kills at 4, 11, 17 and 24 s; SIGTERM at
#             14 s; a Redis restart at 8 s; MongoDB outage 19-29 s; holds at 2 and 12 s.
#     About a minute for the short one on 2 cores; the full one a few minutes.
#
# BUILDS (skipped with NO_BUILD=1)
#   cargo build --release --bin fetch-worker --features test-doubles (CARGO_BUILD_JOBS passes through);
#   FETCH_WORKER_BIN points at another build.
#
# USAGE
#   bench/chaos.sh                 # the full run (a bench)
#   bench/chaos.sh --short         # about a minute (CI: tests/run-all.sh); or CHAOS_SHORT=1
#   Settings (env): DAYS, DUP_PCT (10), ATTEMPTS (10), IMPORT_LEASE_MS (3500), HOLD_MS (5000),
#   WRITE_MAX_TIME_MS (the workers' MONGO_WRITE_MAX_TIME_MS, 1000),
#   DRAIN_TIMEOUT_S (full 600, short 240), SEED (random; printed), MONGO_URI (a plain
#   mongodb://host:port[/…] of one server; unset: nx-27017), REDIS_SERVER, NO_BUILD,
#   FETCH_WORKER_BIN, KEEP_WORK=1 (keep data, logs of every process, nx-27017's files).
#   Output: the figures on stdout, also written to bench/out/chaos-<UTC timestamp>.txt.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BENCH_NAME=chaos.sh
# shellcheck source=bench/lib/stack.sh
source "$BENCH/lib/stack.sh"

CHAOS_SHORT=${CHAOS_SHORT:-}
for arg in "$@"; do
  case "$arg" in
    --short) CHAOS_SHORT=1 ;;
    -h | --help)
      sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done

if [[ -n "$CHAOS_SHORT" ]]; then
  MODE=short
  DAYS=${DAYS:-2}
  DRAIN_TIMEOUT_S=${DRAIN_TIMEOUT_S:-240}
else
  MODE=full
  DAYS=${DAYS:-8}
  DRAIN_TIMEOUT_S=${DRAIN_TIMEOUT_S:-600}
fi
DUP_PCT=${DUP_PCT:-10}
ATTEMPTS=${ATTEMPTS:-10}
IMPORT_LEASE_MS=${IMPORT_LEASE_MS:-3500}
HOLD_MS=${HOLD_MS:-5000}
WRITE_MAX_TIME_MS=${WRITE_MAX_TIME_MS:-1000}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
WORKERS=3
JOB_CONCURRENCY=2
QUEUE_NAME=chaos
BULL_PREFIX=bull
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NO_BUILD=${NO_BUILD:-}
MONGO_URI=${MONGO_URI:-}
OUTAGE_S=10

positive DAYS "$DAYS"
positive ATTEMPTS "$ATTEMPTS"
positive IMPORT_LEASE_MS "$IMPORT_LEASE_MS"
positive HOLD_MS "$HOLD_MS"
positive WRITE_MAX_TIME_MS "$WRITE_MAX_TIME_MS"
positive DRAIN_TIMEOUT_S "$DRAIN_TIMEOUT_S"
positive SEED "$SEED"
[[ "$DUP_PCT" =~ ^[0-9]+$ ]] && ((DUP_PCT <= 100)) || die "DUP_PCT must be 0..100, got '$DUP_PCT'"
((HOLD_MS > IMPORT_LEASE_MS)) || say "note: HOLD_MS ($HOLD_MS) <= IMPORT_LEASE_MS ($IMPORT_LEASE_MS): held writes will not outlive the lease"
check_tools "$REDIS_SERVER"
if [[ -n "$MONGO_URI" ]]; then
  [[ "$MONGO_URI" =~ ^mongodb://([^@/]*@)?([^/?,]+):([0-9]+)(/[^?]*)?(\?.*)?$ ]] ||
    die "MONGO_URI must be mongodb://[user:pass@]host:port[/db][?options] of one server (the proxy needs one upstream)"
  UPSTREAM_HOST=${BASH_REMATCH[2]}
  UPSTREAM_PORT=${BASH_REMATCH[3]}
fi
RANDOM=$SEED

# ---------------------------------------------------------------- builds

if [[ -z "$NO_BUILD" && -z "${FETCH_WORKER_BIN:-}" ]]; then
  say "cargo build --release --bin fetch-worker --features test-doubles"
  (cd "$ROOT" && cargo build --release --bin fetch-worker --features test-doubles >&2) || die "cargo build failed"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${FETCH_WORKER_BIN:-$TARGET_DIR/release/fetch-worker}
[[ -x "$BIN" ]] || die "no fetch-worker binary at $BIN (run without NO_BUILD, or set FETCH_WORKER_BIN)"

# ---------------------------------------------------------------- clean-up

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chaos.XXXXXX")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DB="chaos_${STAMP}_$$"
PROXY_PID=""
declare -a WORKER_PID WORKER_GEN WORKER_TERM
CHECKED=""

cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${WORKER_PID[@]}"; do [[ -z "$pid" ]] || stop "$pid"; done
  [[ -z "$POS_PID" ]] || stop "$POS_PID"
  [[ -z "$PROXY_PID" ]] || stop "$PROXY_PID"
  if [[ -n "$MONGO_URI" && -z "$CHECKED" && -n "${MONGO_CHECK_URI:-}" ]]; then
    # The checker drops the database; when it did not run, drop it here.
    MONGO_CHECK_URI="$MONGO_CHECK_URI" node -e '
      const { MongoClient } = require(process.argv[1] + "/node_modules/mongodb");
      const c = new MongoClient(process.env.MONGO_CHECK_URI, { serverSelectionTimeoutMS: 5000 });
      c.connect().then(() => c.db().dropDatabase()).finally(() => c.close());' "$NODE_EXAMPLE" >/dev/null 2>&1 ||
      echo "chaos.sh: could not drop the database $DB" >&2
  fi
  end_stack
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- data

generate_days "$DAYS"

# The jobs, in waves: each duplicate right after its original, so the two often run at once.
WAVES=$([[ "$MODE" == short ]] && echo 4 || echo 10)
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
  const fs = require("fs");
  const [jobsFile, dir, pctArg, seedArg, wavesArg, attemptsArg] = process.argv.slice(1);
  const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));
  let s = Number(seedArg) >>> 0 || 1;
  const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  const dups = Math.round((jobs.length * Number(pctArg)) / 100);
  const order = jobs.map((_, i) => i).sort((a, b) => rnd() - 0.5 || a - b);
  const twice = new Set(order.slice(0, dups));
  const opts = { attempts: Number(attemptsArg) };
  const all = [];
  jobs.forEach((j, i) => {
    all.push({ ...j, opts });
    // A second request for the day a moment later (0-3 s): it meets the first at any stage.
    if (twice.has(i)) all.push({ ...j, opts: { ...opts, delay: Math.floor(rnd() * 3000) } });
  });
  const waves = Number(wavesArg);
  const per = Math.ceil(all.length / waves);
  for (let w = 0; w < waves; w++) fs.writeFileSync(`${dir}/wave-${w}.json`, JSON.stringify(all.slice(w * per, (w + 1) * per)));
  console.log(`${dups} ${all.length}`);' "$WORK/jobs.json" "$WORK" "$DUP_PCT" "$SEED" "$WAVES" "$ATTEMPTS" >"$WORK/waves.out" ||
  die "splitting the jobs into waves failed"
read -r DUPS TOTAL_JOBS <"$WORK/waves.out"
say "$JOBS days + $DUPS duplicate jobs = $TOTAL_JOBS jobs in $WAVES waves"

# ---------------------------------------------------------------- servers

REDIS_ARGS=(--appendonly yes --appendfsync everysec --save '')
start_redis "${REDIS_ARGS[@]}"
start_mongo
if [[ -z "$MONGO_URI" ]]; then
  UPSTREAM_HOST=127.0.0.1
  UPSTREAM_PORT=$MONGO_PORT
fi
MONGO_CHECK_URI=$(mongo_uri_for "$DB")

python3 "$BENCH/lib/hold_proxy.py" --upstream-host "$UPSTREAM_HOST" --upstream-port "$UPSTREAM_PORT" \
  --hold-ms "$HOLD_MS" --per-signal 2 >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$WORK/proxy.log" && break
  kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy exited at start: $(tail -3 "$WORK/proxy.log")"
  sleep 0.1
done
PROXY_PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/proxy.log")
[[ -n "$PROXY_PORT" ]] || die "the proxy did not print its port"
WORKER_MONGO_URI=$(mongo_uri_for "$DB" "${MONGO_BASE/$UPSTREAM_HOST:$UPSTREAM_PORT/127.0.0.1:$PROXY_PORT}")

POS_FAULTS='[{"fault":"status","status":503,"target":"list","chance":0.05},
  {"fault":"reset","target":"list","chance":0.0526},
  {"fault":"status","status":500,"target":"download","chance":0.05},
  {"fault":"truncate","target":"download","chance":0.0526}]'
start_fake_pos "$POS_FAULTS"

# ---------------------------------------------------------------- workers

start_worker() { # start_worker SLOT: a new process in that slot, its own log file
  local slot=$1 gen=$((${WORKER_GEN[$1]:-0} + 1))
  WORKER_GEN[$slot]=$gen
  env REDIS_JOB_URL="$REDIS_JOB_URL" REDIS_CACHE_URL="$REDIS_CACHE_URL" \
    QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" JOB_CONCURRENCY="$JOB_CONCURRENCY" \
    WORKER_NAME="chaos-$slot-$gen" MONGO_URI="$WORKER_MONGO_URI" \
    POS_LIST_URL="$POS_LIST_URL" POS_FILE_BASE_URL="$POS_BASE_URL" RAW_STORAGE_PATH="$WORK/raw" \
    LOCK_DURATION_MS=4000 STALLED_INTERVAL_MS=1500 MAX_STALLED_COUNT=1000 \
    IMPORT_LEASE_MS="$IMPORT_LEASE_MS" MONGO_WRITE_MAX_TIME_MS="$WRITE_MAX_TIME_MS" MONGO_OP_TIMEOUT_MS=10000 \
    MONGO_SERVER_SELECTION_TIMEOUT_MS=3000 MONGO_CONNECT_TIMEOUT_MS=2000 \
    DRAIN_DELAY_MS=500 SHUTDOWN_TIMEOUT_MS=500 METRICS_ADDR="" LOG_FORMAT=json \
    "$BIN" run >"$WORK/worker-$slot-$gen.out" 2>"$WORK/worker-$slot-$gen.log" &
  WORKER_PID[$slot]=$!
  WORKER_TERM[$slot]=""
}

KILLS=0
TERMS=0
TERM_EXITS=()
REDIS_RESTARTS=0
OUTAGES=0
HOLDS_ARMED=0
UNEXPECTED=()
START_REFUSED=()
HELD_DUPS=()
WAVES_ADDED=0
ENQUEUE_FAILED=()
: >"$WORK/ids"

# Restarts workers that exited: one we SIGTERMed (its exit status noted); one that could not
# start (MongoDB away during an outage: `fetch-worker: setting up …`; started again a second
# later, as a container's restart policy would); or one that died on its own after starting (a
# finding: noted with its last log lines, then replaced so the run goes on).
supervise() {
  local slot pid rc log fatal
  for slot in $(seq "$WORKERS"); do
    pid=${WORKER_PID[$slot]}
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    log="$WORK/worker-$slot-${WORKER_GEN[$slot]}.log"
    fatal=$(grep -v '^{' "$log" | tail -2 | tr '\n' ' ' || true)
    if [[ -n "${WORKER_TERM[$slot]}" ]]; then
      TERM_EXITS+=("$rc after $(($(date +%s%3N) - WORKER_TERM[slot])) ms")
    elif [[ "$fatal" == *"setting up"* ]] && ! grep -q '"job_id"' "$log"; then
      START_REFUSED+=("worker $slot-${WORKER_GEN[$slot]}: $fatal")
      sleep 1
    else
      UNEXPECTED+=("worker $slot-${WORKER_GEN[$slot]} exited $rc: $fatal$(grep '"level":"ERROR"' "$log" | tail -1 | cut -c1-300 || true)")
    fi
    start_worker "$slot"
  done
}

random_slot() { echo $((RANDOM % WORKERS + 1)); }

act() { # act ACTION: one step of the timetable
  local slot
  case "$1" in
    wave)
      if env REDIS_JOB_URL="$REDIS_JOB_URL" QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" \
        node "$NODE_EXAMPLE/scripts/enqueue.js" --spec - <"$WORK/wave-$WAVES_ADDED.json" \
        >>"$WORK/ids" 2>>"$WORK/enqueue.err"; then
        :
      else
        ENQUEUE_FAILED+=("wave $WAVES_ADDED: $(tail -1 "$WORK/enqueue.err")")
      fi
      WAVES_ADDED=$((WAVES_ADDED + 1))
      ;;
    kill)
      slot=$(random_slot)
      kill -9 "${WORKER_PID[$slot]}" 2>/dev/null || true
      wait "${WORKER_PID[$slot]}" 2>/dev/null || true
      KILLS=$((KILLS + 1))
      start_worker "$slot"
      ;;
    term)
      slot=$(random_slot)
      WORKER_TERM[$slot]=$(date +%s%3N)
      kill -TERM "${WORKER_PID[$slot]}" 2>/dev/null || true
      TERMS=$((TERMS + 1))
      ;;
    redis)
      kill -TERM "$REDIS_PID"
      wait "$REDIS_PID" 2>/dev/null || true
      start_redis "${REDIS_ARGS[@]}"
      REDIS_RESTARTS=$((REDIS_RESTARTS + 1))
      ;;
    outage-start)
      if [[ -n "$MONGO_PID" ]]; then
        kill -9 "$MONGO_PID"
        wait "$MONGO_PID" 2>/dev/null || true
      else
        kill -USR2 "$PROXY_PID"
      fi
      ;;
    outage-end)
      if [[ -n "$MONGO_PID" ]]; then start_nx; else kill -USR2 "$PROXY_PID"; fi
      OUTAGES=$((OUTAGES + 1))
      ;;
    hold)
      local before day i b p d
      before=$(grep -c '^held ' "$WORK/proxy.log" || true)
      kill -USR1 "$PROXY_PID"
      HOLDS_ARMED=$((HOLDS_ARMED + 1))
      # The day of the first batch held now (within 3 s), if it is one: a duplicate of it.
      for i in $(seq 15); do
        day=$(grep '^held ' "$WORK/proxy.log" | tail -n +"$((before + 1))" | sed -n 's/.* day \([^ ]*\)$/\1/p' | head -1 || true)
        [[ -z "$day" ]] || break
        sleep 0.2
      done
      [[ -n "$day" ]] || return 0
      IFS='|' read -r b p d <<<"$day"
      if env REDIS_JOB_URL="$REDIS_JOB_URL" QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" \
        node "$NODE_EXAMPLE/scripts/enqueue.js" --name fetch-job \
        --data "{\"branch\":\"$b\",\"pos\":$p,\"date\":\"$d\"}" --opts "{\"attempts\":$ATTEMPTS}" \
        >>"$WORK/ids" 2>>"$WORK/enqueue.err"; then
        HELD_DUPS+=("$day")
      else
        ENQUEUE_FAILED+=("duplicate of held $day: $(tail -1 "$WORK/enqueue.err")")
      fi
      ;;
  esac
}

# The timetable: "SECONDS ACTION" lines, in time order.
timetable() {
  local t
  if [[ "$MODE" == short ]]; then
    printf '%s\n' "0 wave" "2 hold" "3 wave" "4 kill" "6 wave" "8 redis" "9 wave" "11 kill" \
      "12 hold" "14 term" "17 kill" "19 outage-start" "24 kill" "29 outage-end"
  else
    {
      for t in $(seq 0 4 36); do echo "$t wave"; done
      for t in $(seq 3 5 78); do echo "$t kill"; done
      printf '%s\n' "7 hold" "14 redis" "19 hold" "24 term" "33 outage-start" "43 outage-end" \
        "47 hold" "49 redis" "56 hold" "61 term" "69 hold"
    } | sort -n -s -k1,1
  fi
}

# Jobs finished (completed + failed), read from Redis; empty while Redis is away.
finished() {
  local c f
  c=$(redis-cli -p "$REDIS_PORT" -n 1 ZCARD "$BULL_PREFIX:$QUEUE_NAME:completed" 2>/dev/null) || return 0
  f=$(redis-cli -p "$REDIS_PORT" -n 1 ZCARD "$BULL_PREFIX:$QUEUE_NAME:failed" 2>/dev/null) || return 0
  [[ "$c" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]] && echo $((c + f))
}

say "$MODE run: $WORKERS workers x $JOB_CONCURRENCY, seed $SEED"
T0=$(date +%s%3N)
for slot in $(seq "$WORKERS"); do start_worker "$slot"; done

timetable >"$WORK/timetable"
while read -r at action; do
  while (($(date +%s%3N) - T0 < at * 1000)); do
    supervise
    sleep 0.2
  done
  say "t=${at}s: $action"
  act "$action"
done <"$WORK/timetable"
T_CHAOS=$(($(date +%s%3N) - T0))

ADDED=$(wc -l <"$WORK/ids")
say "faults done at $((T_CHAOS / 1000)) s; draining ($ADDED jobs added)"
DRAINED=""
while (($(date +%s%3N) - T0 < DRAIN_TIMEOUT_S * 1000)); do
  supervise
  n=$(finished)
  if [[ -n "$n" ]] && ((n >= ADDED)); then
    DRAINED=1
    break
  fi
  sleep 0.5
done
T_DRAINED=$(($(date +%s%3N) - T0))
[[ -n "$DRAINED" ]] || say "not drained within DRAIN_TIMEOUT_S=$DRAIN_TIMEOUT_S s"

for slot in $(seq "$WORKERS"); do stop "${WORKER_PID[$slot]}"; done
WORKER_PID=()

# ---------------------------------------------------------------- checks

HELD=$(grep -c '^held ' "$WORK/proxy.log" || true)
DELIVERED=$(grep -c '^delivered ' "$WORK/proxy.log" || true)
CHECK="$WORK/check.json"
CHECKED=1
NODE_EXAMPLE="$NODE_EXAMPLE" REDIS_JOB_URL="$REDIS_JOB_URL" QUEUE_NAME="$QUEUE_NAME" \
  BULL_PREFIX="$BULL_PREFIX" MONGO_CHECK_URI="$MONGO_CHECK_URI" DROP_DB="$([[ -n "$MONGO_URI" ]] && echo 1 || echo 0)" \
  node "$BENCH/lib/chaos_check.js" "$WORK/ids" "$WORK/jobs.json" "$WORK/rows.jsonl" >"$CHECK" 2>"$WORK/check.err" ||
  die "reading the end state failed: $(tail -5 "$WORK/check.err")"

get() { # get PATH: a field of the check's JSON (arrays joined by newlines)
  node -e '
    let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const k of process.argv[2].split(".")) v = v[k];
    console.log(Array.isArray(v) ? v.join("\n") : v);' "$CHECK" "$1"
}

FAILURES=()
fail() { FAILURES+=("$*"); }
q_added=$(get queue.added)
q_completed=$(get queue.completed)
q_failed=$(get queue.failed)
q_pending=$(get queue.pending)
q_lost=$(get queue.lost)
((q_added == TOTAL_JOBS + ${#HELD_DUPS[@]})) || fail "the producer added $q_added jobs, expected $((TOTAL_JOBS + ${#HELD_DUPS[@]})) ($(printf '%s; ' "${ENQUEUE_FAILED[@]}"))"
((q_lost == 0)) || fail "$q_lost job(s) lost (in no state): $(get queue.lostIds | head -5 | tr '\n' ' ')"
((q_pending == 0)) || fail "$q_pending job(s) still pending after the drain"
((q_failed == 0)) || fail "$q_failed job(s) failed with only transient faults injected: $(get queue.failedReasons | head -3 | tr '\n' ';')"
while read -r day; do
  [[ -z "$day" ]] && continue
  get database.monitorDays | grep -qF "$day: " || fail "failed day $day has no monitor entry"
done < <(get queue.failedDays)
d_days=$(get database.days)
d_exact=$(get database.exactDays)
d_missing=$(get database.missing)
d_extra=$(get database.extra)
d_dup=$(get database.duplicates)
d_other=$(get database.otherDayRows)
d_done=$(get database.importsDone)
d_rows=$(get database.rows)
d_expected=$(get database.expectedRows)
((d_exact == d_days)) || fail "$((d_days - d_exact)) of $d_days days not exact: $(get database.badDays | head -5 | tr '\n' ';')"
((d_other == 0)) || fail "$d_other transactions of days no job asked for"
((d_done == d_days)) || fail "$((d_days - d_done)) imports records not done: $(get database.importsNotDone | head -5 | tr '\n' ';')"
((d_expected == ROWS)) || fail "the exports hold $d_expected rows, expected $ROWS"
((KILLS > 0)) || fail "no worker was killed"
((TERMS > 0 && ${#TERM_EXITS[@]} == TERMS)) || fail "$TERMS SIGTERM(s) sent, ${#TERM_EXITS[@]} worker exit(s) seen"
((REDIS_RESTARTS > 0)) || fail "Redis was not restarted"
((OUTAGES > 0)) || fail "MongoDB was not stopped"
((HELD > 0)) || fail "no write was held by the proxy"
((${#UNEXPECTED[@]} == 0)) || fail "${#UNEXPECTED[@]} worker(s) exited on their own: ${UNEXPECTED[*]}"
((${#ENQUEUE_FAILED[@]} == 0)) || fail "enqueueing failed: ${ENQUEUE_FAILED[*]}"

# ---------------------------------------------------------------- report

report() {
  local desc
  desc=$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-100 || echo "?")
  echo "bench/chaos.sh  $STAMP  $MODE: DAYS=$DAYS ($JOBS POS days, $ROWS rows), seed $SEED"
  echo "fetch-worker $BIN (repo at $desc)"
  echo "MongoDB: $MONGO_DESC, through bench/lib/hold_proxy.py; Redis $REDIS_VERSION (AOF); node $(node --version); $(nproc) cores"
  echo "$WORKERS workers x $JOB_CONCURRENCY; IMPORT_LEASE_MS=$IMPORT_LEASE_MS, MONGO_WRITE_MAX_TIME_MS=$WRITE_MAX_TIME_MS, held writes ${HOLD_MS} ms; attempts $ATTEMPTS"
  echo
  echo "jobs      added $q_added ($JOBS days + $DUPS duplicates + ${#HELD_DUPS[@]} of days whose batch was held), completed $q_completed, failed $q_failed, pending $q_pending, lost $q_lost"
  echo "          retried (more than one attempt) $(get queue.retried), most attempts $(get queue.maxAttempts), parked behind another job of the day $(get queue.parked)"
  echo "          imports fenced off by a newer import of their day (log lines) $FENCED"
  echo "days      $d_exact of $d_days exact; rows $d_rows of $d_expected (missing $d_missing, extra $d_extra, duplicates $d_dup, other days $d_other)"
  echo "imports   done $d_done of $d_days; fence guards $(get database.guards); monitor entries $(get database.monitorEntries)"
  echo "faults    SIGKILLs $KILLS, SIGTERMs $TERMS (exits: ${TERM_EXITS[*]:-none}), Redis restarts $REDIS_RESTARTS,"
  echo "          MongoDB outages $OUTAGES x ${OUTAGE_S} s, writes held $HELD (delivered late $DELIVERED; proxy armed $HOLDS_ARMED x 2),"
  echo "          POS calls faulted $POS_FAULTED of $POS_CALLS"
  echo "          worker processes started $(($(printf '%s+' "${WORKER_GEN[@]}")0)); exited at start-up (MongoDB away) ${#START_REFUSED[@]}; exited on their own later ${#UNEXPECTED[@]}"
  echo "time      faults until $(awk -v t="$T_CHAOS" 'BEGIN { printf "%.1f", t / 1000 }') s; all jobs finished at $(awk -v t="$T_DRAINED" 'BEGIN { printf "%.1f", t / 1000 }') s$([[ -n "$DRAINED" ]] || echo " (NOT drained)")"
  if ((${#FAILURES[@]})); then
    echo
    echo "FAILED checks:"
    local f
    for f in "${FAILURES[@]}"; do echo "  $f"; done
  else
    echo
    echo "all checks passed: 0 lost, 0 failed, every day exact and done"
  fi
}

# POS calls seen and faulted, from the fake server's request log.
node -e '
  const fs = require("fs");
  fetch(process.argv[1]).then((r) => r.json()).then((log) => {
    const calls = log.filter((r) => r.target !== "any");
    fs.writeFileSync(process.argv[2], calls.map((r) => r.path + "\n").join(""));
    fs.writeFileSync(process.argv[3], calls.filter((r) => r.fault).map((r) => r.path + "\n").join(""));
  });' "${POS_BASE_URL%/}/__requests" "$WORK/pos-requests" "$WORK/pos-faulted" 2>/dev/null || true
POS_CALLS="?"
POS_FAULTED="?"
if [[ -f "$WORK/pos-faulted" ]]; then
  POS_CALLS=$(wc -l <"$WORK/pos-requests")
  POS_FAULTED=$(wc -l <"$WORK/pos-faulted")
fi
FENCED=$(cat "$WORK"/worker-*.log | grep -c 'was taken over by a newer import' || true)

mkdir -p "$BENCH/out"
OUT="$BENCH/out/chaos-$STAMP.txt"
report | tee "$OUT"
echo "(written to ${OUT#"$ROOT"/})" >&2

if ((${#FAILURES[@]})); then
  die "${#FAILURES[@]} check(s) failed (see above; KEEP_WORK=1 keeps the logs)"
fi
