#!/usr/bin/env bash
# bench/pipeline.sh — how fast does the whole fetch pipeline import POS days into MongoDB, and
# what does the import cost over a plain batched insert of the same rows?
#
# WHAT
#   The legacy samples' 17 (branch, pos, date) groups (tests/fixtures/legacy-samples/input,
#   117 files, 7,452 rows), repeated DAYS times as *distinct* days, so every job is a first
#   import of its day (re-importing one day would measure the upsert path instead), are
#   drained as `fetch-job` {branch, pos, date} jobs (enqueued by Node BullMQ with the app's
#   default options: attempts 3, exponential backoff) by `fetch-worker run` (the POS
#   pipeline: list and download from `fetch-worker fake-pos`, combine, import into MongoDB).
#   One run per entry of WORKERS, each into a fresh database:
#     1x1   one process, one job at a time: nothing overlaps, so the import's time is
#           measured exactly (the isolation run);
#     1, 3  one and three processes of JOB_CONCURRENCY jobs each (the throughput runs).
#   The same rows are also written by a plain batched `insert_many` loop
#   (examples/plain_insert.rs) into another fresh database on the same server. Reported:
#     jobs/s, rows/s   jobs (rows) / wall, per run;
#     plain rows/s     rows / time of the plain insert loop;
#     pipe/plain       (pipeline wall per row) / (plain insert time per row): what the whole
#                      job (list, download, file records, combine, import, BullMQ) costs over
#                      the bare write of its rows;
#     imp/plain        (import time per row) / (plain insert time per row): exact in a 1x1
#                      run, estimated (~) in the others (see below). The goal: <= 1.5.
#
# HOW
#   - Data: DAYS copies of the samples, copy k (k = 0..DAYS-1) with each group's business date
#     moved k days later: in the file names and in the files' text (the rd5000 DATE column
#     must match the file name's date, or the rows become monitor rows). Only the two sample
#     dates occur as YYYY-MM-DD text in the files (phone numbers are bare digits), so the text
#     replacement touches nothing else. `fetch-worker combine --format jsonl` over the
#     generated set must give DAYS x 7,452 rows (checked; that JSONL is also the plain
#     insert's input). DAYS <= 124, so the 2025-10-08 and 2026-02-09 copies never meet.
#   - Servers, all our own on free loopback ports, stopped at the end: redis-server (--save ''
#     --appendonly no; queue in db 1, the app's cache in db 0); MongoDB = MONGO_URI when set
#     (databases pbench_<stamp>_*, dropped at the end), else the MongoDB-wire server nx-27017
#     through tests/support/nx_mongo.py (Decimal128 patched in, the tests' launcher), data in
#     a temporary directory; `fetch-worker fake-pos --port 0` over the generated files.
#   - Plain insert, first (examples/plain_insert.rs): the JSONL parsed up front, the
#     importer's indexes created (both untimed), then timed: documents built with the
#     importer's `transaction_document` and written with unordered `insert_many`,
#     IMPORT_BATCH_SIZE rows per call (across days), one connection, one call after another.
#   - Each pipeline run: FLUSHALL, enqueue one job per day with
#     node-producer-example/scripts/enqueue.js (not timed), then start W processes of
#     `fetch-worker run --until-drained` (C jobs each, IMPORT_BATCH_SIZE rows per write,
#     DRAIN_DELAY_MS=500 so idle processes see the end soon, SHUTDOWN_TIMEOUT_MS=2000 so an
#     interrupted bench stops them quickly, LOG_FORMAT=json).
#       wall = the last job's finishedOn (Redis) - the moment the processes were started,
#     so process start-up (connecting, creating indexes) counts and process exit does not.
#     A run fails unless every job completed (none failed, nothing left in wait, active,
#     delayed, prioritized or paused), the summed `rows.imported` of the return values and the
#     database's transactions count both equal DAYS x 7,452, and the processes exit 0.
#   - Phases. Every job logs (stderr, JSON, timestamped) `listing files…`, `downloaded …` per
#     file, `combined …` and `imported …`. Per job:
#       fetch  = listing -> last download (list, downloads, one file record upsert per file);
#       import = last download -> `imported`: take the day's lease and look for earlier rows
#                of the day, write the combined rows batch by batch as the combine thread
#                produces them (the combine itself takes a few ms per day), then `finish` =
#                `combined` -> `imported`: delete the day's rows of other imports, release
#                the lease, mark the file records parsed;
#       other  = the job's durationMs (its return value) - fetch - import (log lines,
#                progress, the cache scan).
#     imp/plain = (summed import phases) / (plain insert time) in a 1x1 run: exact, as the
#     jobs run one after another and BullMQ's work between them is outside the phases.
#     When jobs overlap, the sums exceed the wall and a phase's time includes waiting for the
#     server behind other jobs' writes; imp/plain is then estimated as
#       wall x (summed import) / (summed durationMs) / (plain insert time)   (shown as ~x),
#     which undercounts the import: waiting fetches take a larger share of job time than of
#     the server's work. The truth lies between ~x and pipe/plain.
#   - mongo cpu: with nx-27017, its process's CPU time (/proc) during the run / wall: near
#     100% means the single-threaded server is the bottleneck.
#   - This machine has 2 cores shared by Redis, MongoDB (nx-27017 is one Python process),
#     the fake POS server and the workers; anything else running (a compile) skews the
#     figures; the load average before each run is written to the report. One run each.
#   - nx-27017 does not use the {branch, date, pos} index for the importer's per-day queries
#     (the look-up before the first batch, the stale-row delete at the end): they scan the
#     collection, so their cost grows with the rows already stored, and so does imp/plain
#     with DAYS. A real MongoDB (MONGO_URI) answers them from the index. A 1x1 run also
#     prints the import µs/row of its first and its last 17 jobs (the first and the last copy
#     of the samples: an almost empty collection, then one holding (DAYS-1) x 7,452 rows).
#
# BUILDS (skipped with NO_BUILD=1)
#   cargo build --release --bin fetch-worker --features test-doubles --example plain_insert (CARGO_BUILD_JOBS passes
#   through); FETCH_WORKER_BIN and PLAIN_INSERT_BIN point at other builds.
#
# USAGE
#   bench/pipeline.sh                                  # DAYS=8: 136 jobs, 59,616 rows, ~2.5 min
#   DAYS=20 WORKERS="1 3" JOB_CONCURRENCY=4 bench/pipeline.sh
#   MONGO_URI=mongodb://127.0.0.1:27017 bench/pipeline.sh     # a real MongoDB
#   Settings (env): DAYS (8), WORKERS ("1x1 1 3": runs of W processes, xC jobs each, C
#   defaulting to JOB_CONCURRENCY), JOB_CONCURRENCY (4), IMPORT_BATCH_SIZE (1000),
#   MONGO_URI (unset: nx-27017), DRAIN_TIMEOUT_S (600), QUEUE_NAME (pipeline-bench),
#   REDIS_SERVER (redis-server), NO_BUILD, FETCH_WORKER_BIN, PLAIN_INSERT_BIN, KEEP_WORK (keep
#   the temporary directory: data, logs, nx-27017's files).
#   Output: a table on stdout, also written to bench/out/pipeline-<UTC timestamp>.txt.
#   Exit status 1, with the reason on stderr, when anything fails.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
BENCH_NAME=pipeline.sh
# shellcheck source=bench/lib/stack.sh
source "$BENCH/lib/stack.sh"

DAYS=${DAYS:-8}
WORKERS=${WORKERS:-"1x1 1 3"}
JOB_CONCURRENCY=${JOB_CONCURRENCY:-4}
IMPORT_BATCH_SIZE=${IMPORT_BATCH_SIZE:-1000}
DRAIN_TIMEOUT_S=${DRAIN_TIMEOUT_S:-600}
QUEUE_NAME=${QUEUE_NAME:-pipeline-bench}
BULL_PREFIX=bull
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NO_BUILD=${NO_BUILD:-}
MONGO_URI=${MONGO_URI:-}

positive DAYS "$DAYS"
positive JOB_CONCURRENCY "$JOB_CONCURRENCY"
positive IMPORT_BATCH_SIZE "$IMPORT_BATCH_SIZE"
positive DRAIN_TIMEOUT_S "$DRAIN_TIMEOUT_S"
((DAYS <= 124)) || die "DAYS must be at most 124 (the two sample dates would meet), got $DAYS"
[[ -n "${WORKERS// /}" ]] || die "WORKERS must list runs (W or WxC)"
for spec in $WORKERS; do
  [[ "$spec" =~ ^[1-9][0-9]*(x[1-9][0-9]*)?$ ]] || die "WORKERS must list W or WxC (positive integers), got '$spec'"
done

check_tools "$REDIS_SERVER"

# ---------------------------------------------------------------- builds

if [[ -z "$NO_BUILD" && ( -z "${FETCH_WORKER_BIN:-}" || -z "${PLAIN_INSERT_BIN:-}" ) ]]; then
  say "cargo build --release --bin fetch-worker --features test-doubles --example plain_insert"
  (cd "$ROOT" && cargo build --release --bin fetch-worker --features test-doubles --example plain_insert >&2) || die "cargo build failed"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${FETCH_WORKER_BIN:-$TARGET_DIR/release/fetch-worker}
PLAIN_BIN=${PLAIN_INSERT_BIN:-$TARGET_DIR/release/examples/plain_insert}
[[ -x "$BIN" ]] || die "no fetch-worker binary at $BIN (run without NO_BUILD, or set FETCH_WORKER_BIN)"
[[ -x "$PLAIN_BIN" ]] || die "no plain_insert binary at $PLAIN_BIN (run without NO_BUILD, or set PLAIN_INSERT_BIN)"

# ---------------------------------------------------------------- clean-up

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-bench.XXXXXX")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DB_PREFIX="pbench_${STAMP}_$$"
WORKER_PIDS=()
DBS_MADE=()

cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${WORKER_PIDS[@]}"; do stop "$pid"; done
  [[ -z "$POS_PID" ]] || stop "$POS_PID"
  if [[ -n "$MONGO_URI" && ${#DBS_MADE[@]} -gt 0 ]]; then
    local args=() db
    for db in "${DBS_MADE[@]}"; do args+=(--db "$db"); done
    "$PLAIN_BIN" drop --uri "$MONGO_URI" "${args[@]}" >/dev/null 2>&1 ||
      echo "pipeline.sh: could not drop the bench databases ${DBS_MADE[*]}" >&2
  fi
  end_stack
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- data

generate_days "$DAYS"

# ---------------------------------------------------------------- servers

start_redis --save '' --appendonly no
start_mongo

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
mongo_cpu_ms() { # CPU time of the nx-27017 process so far, in ms ("" with MONGO_URI)
  [[ -n "$MONGO_PID" && -r "/proc/$MONGO_PID/stat" ]] || return 0
  # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
  sed 's/^.*) //' "/proc/$MONGO_PID/stat" | awk -v hz="$CLK_TCK" '{ printf "%.0f", ($12 + $13) * 1000 / hz }'
}
busy() { # busy CPU_MS_BEFORE CPU_MS_AFTER WALL_MS -> "NN%" or "-"
  if [[ -n "$1" && -n "$2" ]]; then awk -v a="$1" -v b="$2" -v w="$3" 'BEGIN { printf "%.0f%%", 100 * (b - a) / w }'; else echo "-"; fi
}

start_fake_pos

# ---------------------------------------------------------------- plain insert

say "plain insert_many of $ROWS rows"
PLAIN_DB="${DB_PREFIX}_plain"
DBS_MADE+=("$PLAIN_DB")
PLAIN_LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
cpu0=$(mongo_cpu_ms)
"$PLAIN_BIN" insert --uri "$MONGO_BASE" --db "$PLAIN_DB" --jsonl "$WORK/rows.jsonl" \
  --batch "$IMPORT_BATCH_SIZE" >"$WORK/plain.out" 2>"$WORK/plain.err" ||
  die "plain insert failed: $(tail -3 "$WORK/plain.err")"
cpu1=$(mongo_cpu_ms)
json() { # json FILE FIELD: a field of FILE's last JSON line
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
    const v = JSON.parse(lines.filter((l) => l.startsWith("{")).pop())[process.argv[2]];
    console.log(v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : v);' "$1" "$2"
}
PLAIN_MS=$(json "$WORK/plain.out" elapsed_ms)
PLAIN_BATCHES=$(json "$WORK/plain.out" batches)
# (the plain run's process also parses the JSONL and connects outside elapsed_ms, so this
# slightly overstates the server's busy share)
PLAIN_BUSY=$(busy "$cpu0" "$cpu1" "$PLAIN_MS")
PLAIN_COUNT=$("$PLAIN_BIN" count --uri "$MONGO_BASE" --db "$PLAIN_DB") || die "counting the plain insert's rows failed"
((PLAIN_COUNT == ROWS)) || die "plain insert left $PLAIN_COUNT transactions, expected $ROWS"
say "plain insert: $ROWS rows in $PLAIN_MS ms"

# ---------------------------------------------------------------- pipeline runs

# Reads the queue and the workers' logs after a run; prints one JSON object.
summarize() { # summarize T0_MS LOG...
  # shellcheck disable=SC2016 # JavaScript (template literals), not shell
  NODE_EXAMPLE="$NODE_EXAMPLE" REDIS_JOB_URL="$REDIS_JOB_URL" QUEUE_NAME="$QUEUE_NAME" \
    BULL_PREFIX="$BULL_PREFIX" GROUP_JOBS="$((JOBS / DAYS))" node -e '
    const fs = require("fs");
    const Redis = require(process.env.NODE_EXAMPLE + "/node_modules/ioredis");
    const [t0, ...logs] = process.argv.slice(1);
    const p = `${process.env.BULL_PREFIX}:${process.env.QUEUE_NAME}:`;
    (async () => {
      const r = new Redis(process.env.REDIS_JOB_URL);
      const out = { completed: 0, failed: 0, left: 0, retried: 0, imported: 0, durationMs: 0,
        lastFinishedOn: 0, failedReasons: [] };
      for (const k of ["wait", "active", "paused"]) out.left += await r.llen(p + k);
      for (const k of ["delayed", "prioritized"]) out.left += await r.zcard(p + k);
      const done = await r.zrange(p + "completed", 0, -1);
      const failed = await r.zrange(p + "failed", 0, -1);
      out.completed = done.length;
      out.failed = failed.length;
      for (const id of done.concat(failed)) {
        const [rv, fin, atm, reason] = await r.hmget(p + id, "returnvalue", "finishedOn", "atm", "failedReason");
        out.lastFinishedOn = Math.max(out.lastFinishedOn, Number(fin) || 0);
        if (Number(atm) > 1) out.retried++;
        if (reason && out.failedReasons.length < 3) out.failedReasons.push(`${id}: ${reason}`);
        if (rv) {
          const v = JSON.parse(rv);
          out.imported += (v && v.rows && v.rows.imported) || 0;
          out.durationMs += (v && v.durationMs) || 0;
        }
      }
      await r.quit();
      // Phases from the job log lines (the last attempt of each job that got that far).
      const phase = { fetchMs: 0, importMs: 0, finishMs: 0, jobs: 0 };
      const seq = []; // [rows, import ms] in log order (the order of completion with one slot)
      const open = new Map();
      for (const file of logs) {
        for (const line of fs.readFileSync(file, "utf8").split("\n")) {
          if (!line.startsWith("{")) continue;
          let e;
          try { e = JSON.parse(line); } catch { continue; }
          if (e.job_id === undefined || typeof e.message !== "string") continue;
          const t = Date.parse(e.timestamp);
          const m = e.message;
          if (m.startsWith("listing files for ")) open.set(e.job_id, { start: t, dl: t, comb: t });
          const j = open.get(e.job_id);
          if (!j) continue;
          if (m.startsWith("downloaded ")) j.dl = j.comb = t;
          else if (m.startsWith("combined ")) {
            j.comb = t;
            j.rows = Number(m.split(" ")[1]) || 0;
          }
          else if (m.startsWith("imported ")) {
            phase.fetchMs += j.dl - j.start;
            phase.importMs += t - j.dl;
            phase.finishMs += t - j.comb;
            seq.push([j.rows || 0, t - j.dl]);
            phase.jobs++;
            open.delete(e.job_id);
          }
        }
      }
      // Import µs per row of the first and the last GROUP_JOBS jobs: the first and the last
      // copy of the samples when the jobs ran one at a time.
      const n = Number(process.env.GROUP_JOBS);
      const usPerRow = (part) => {
        const rows = part.reduce((a, x) => a + x[0], 0);
        return rows ? Math.round((part.reduce((a, x) => a + x[1], 0) * 1000) / rows) : null;
      };
      if (seq.length >= 2 * n) {
        out.firstUsPerRow = usPerRow(seq.slice(0, n));
        out.lastUsPerRow = usPerRow(seq.slice(-n));
      }
      Object.assign(out, phase, { wallMs: out.lastFinishedOn - Number(t0) });
      console.log(JSON.stringify(out));
    })().catch((e) => { console.error(e.message); process.exit(1); });' "$@"
}

declare -A R_FIRST R_LAST R_WALL R_FETCH R_IMPORT R_FINISH R_DUR R_RETRIED R_PHASEJOBS R_LOAD R_CONC R_BUSY
FAILURES=()

run_pipeline() { # run_pipeline SPEC: W processes of C jobs each ("W" or "WxC")
  local spec=$1 w=${1%%x*} c=$JOB_CONCURRENCY i
  [[ "$spec" != *x* ]] || c=${spec#*x}
  local tag="$w worker(s) x $c" db="${DB_PREFIX}_w${w}x$c"
  DBS_MADE+=("$db")
  R_CONC[$spec]=$c
  local out="$WORK/run-$spec"
  mkdir -p "$out"
  rcli FLUSHALL >/dev/null
  if ! env REDIS_JOB_URL="$REDIS_JOB_URL" QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" \
    node "$NODE_EXAMPLE/scripts/enqueue.js" --spec - <"$WORK/jobs.json" >"$out/ids" 2>"$out/enqueue.err"; then
    FAILURES+=("$tag: enqueue failed: $(tail -3 "$out/enqueue.err" | tr '\n' ' ')")
    return
  fi
  local n
  n=$(wc -l <"$out/ids")
  if ((n != JOBS)); then
    FAILURES+=("$tag: enqueue.js added $n jobs, expected $JOBS")
    return
  fi

  say "$tag: draining $JOBS jobs"
  R_LOAD[$spec]=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
  local t0 t1 logs=() cpu0 cpu1
  WORKER_PIDS=()
  cpu0=$(mongo_cpu_ms)
  t0=$(date +%s%3N)
  for i in $(seq "$w"); do
    env REDIS_JOB_URL="$REDIS_JOB_URL" REDIS_CACHE_URL="$REDIS_CACHE_URL" \
      QUEUE_NAME="$QUEUE_NAME" BULL_PREFIX="$BULL_PREFIX" JOB_CONCURRENCY="$c" \
      WORKER_NAME="pbench-$spec-$i" MONGO_URI="$(mongo_uri_for "$db")" \
      POS_LIST_URL="$POS_LIST_URL" POS_FILE_BASE_URL="$POS_BASE_URL" \
      RAW_STORAGE_PATH="$out/raw" IMPORT_BATCH_SIZE="$IMPORT_BATCH_SIZE" \
      DRAIN_DELAY_MS=500 SHUTDOWN_TIMEOUT_MS=2000 LOG_FORMAT=json \
      timeout --kill-after=5 "$DRAIN_TIMEOUT_S" "$BIN" run --until-drained \
      >"$out/worker-$i.out" 2>"$out/worker-$i.log" &
    WORKER_PIDS+=($!)
    logs+=("$out/worker-$i.log")
  done
  local rc bad=()
  for i in "${!WORKER_PIDS[@]}"; do
    rc=0
    wait "${WORKER_PIDS[$i]}" || rc=$?
    ((rc == 0)) || bad+=("worker $((i + 1)) exited $rc: $(grep -v '^{' "${logs[$i]}" | tail -2 | tr '\n' ' ' || true)$(grep '"level":"ERROR"' "${logs[$i]}" | tail -1 || true)")
  done
  t1=$(date +%s%3N)
  cpu1=$(mongo_cpu_ms)
  WORKER_PIDS=()
  R_BUSY[$spec]=$(busy "$cpu0" "$cpu1" "$((t1 - t0))")
  if ((${#bad[@]})); then
    FAILURES+=("$tag: ${bad[*]}")
    return
  fi

  if ! summarize "$t0" "${logs[@]}" >"$out/summary.json" 2>"$out/summary.err"; then
    FAILURES+=("$tag: reading the results failed: $(tail -3 "$out/summary.err")")
    return
  fi
  local s="$out/summary.json" completed failed left imported count
  completed=$(json "$s" completed)
  failed=$(json "$s" failed)
  left=$(json "$s" left)
  imported=$(json "$s" imported)
  if ((completed != JOBS || failed != 0 || left != 0)); then
    FAILURES+=("$tag: $completed of $JOBS jobs completed, $failed failed, $left left in the queue $(json "$s" failedReasons)")
    return
  fi
  if ((imported != ROWS)); then
    FAILURES+=("$tag: the jobs report $imported rows imported, expected $ROWS")
    return
  fi
  if ! count=$("$PLAIN_BIN" count --uri "$MONGO_BASE" --db "$db" 2>"$out/count.err"); then
    FAILURES+=("$tag: counting transactions failed: $(tail -2 "$out/count.err")")
    return
  fi
  if ((count != ROWS)); then
    FAILURES+=("$tag: the database holds $count transactions, expected $ROWS")
    return
  fi
  R_WALL[$spec]=$(json "$s" wallMs)
  R_FETCH[$spec]=$(json "$s" fetchMs)
  R_IMPORT[$spec]=$(json "$s" importMs)
  R_FINISH[$spec]=$(json "$s" finishMs)
  R_FIRST[$spec]=$(json "$s" firstUsPerRow)
  R_LAST[$spec]=$(json "$s" lastUsPerRow)
  R_DUR[$spec]=$(json "$s" durationMs)
  R_RETRIED[$spec]=$(json "$s" retried)
  R_PHASEJOBS[$spec]=$(json "$s" jobs)
  say "$tag: $JOBS jobs, $ROWS rows in ${R_WALL[$spec]} ms"
}

for spec in $WORKERS; do
  run_pipeline "$spec"
done

# ---------------------------------------------------------------- report

calc() { awk "BEGIN { printf \"$1\", $2 }"; }

report() {
  local desc
  desc=$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null || echo "?")
  echo "bench/pipeline.sh  $STAMP  DAYS=$DAYS: $JOBS jobs (17 sample groups x $DAYS days), $ROWS rows"
  echo "fetch-worker $BIN (repo at $desc)"
  echo "MongoDB: $MONGO_DESC; Redis $REDIS_VERSION; node $(node --version); $(nproc) cores"
  echo "IMPORT_BATCH_SIZE=$IMPORT_BATCH_SIZE; every job a first import of its day"
  echo
  echo "plain insert_many: $ROWS rows in $PLAIN_BATCHES calls of <= $IMPORT_BATCH_SIZE, one connection:" \
    "$(calc '%.2f' "$PLAIN_MS / 1000") s, $(calc '%.0f' "$ROWS / ($PLAIN_MS / 1000)") rows/s," \
    "$(calc '%.0f' "$PLAIN_MS * 1000 / $ROWS") µs/row; mongo cpu $PLAIN_BUSY; load before $PLAIN_LOAD"
  echo
  # (µ and Σ take two bytes and one column: their fields are one wider)
  printf '%-6s %6s %6s %6s %7s %10s %5s %6s   %7s %6s %6s %6s %6s   %9s   %s\n' "procs" "wall s" "jobs/s" "rows/s" \
    "µs/row" "pipe/plain" retry "mongo" "Σjob s" fetch import finish other "imp/plain" "load before"
  local spec wall dur fetch imp fin label r goal="" note growth=""
  for spec in $WORKERS; do
    label="${spec%%x*}x${R_CONC[$spec]:-?}"
    wall=${R_WALL[$spec]:-}
    if [[ -z "$wall" ]]; then
      printf '%-6s %6s\n' "$label" "FAILED"
      continue
    fi
    dur=${R_DUR[$spec]}
    fetch=${R_FETCH[$spec]}
    imp=${R_IMPORT[$spec]}
    fin=${R_FINISH[$spec]}
    if [[ "$label" == 1x1 ]]; then
      r=$(calc '%.2f' "$imp / $PLAIN_MS")
      note="exact"
    else
      r=$(calc '%.2f' "$wall * $imp / $dur / $PLAIN_MS")
      note="estimate"
    fi
    printf '%-6s %6.1f %6.2f %6.0f %7.0f %10.2f %5s %6s   %7.1f %5.0f%% %5.0f%% %5.0f%% %5.0f%%   %9s   %s\n' \
      "$label" "$(calc '%.3f' "$wall / 1000")" "$(calc '%.3f' "$JOBS / ($wall / 1000)")" \
      "$(calc '%.1f' "$ROWS / ($wall / 1000)")" "$(calc '%.1f' "$wall * 1000 / $ROWS")" \
      "$(calc '%.3f' "$wall / $PLAIN_MS")" "${R_RETRIED[$spec]}" "${R_BUSY[$spec]}" \
      "$(calc '%.3f' "$dur / 1000")" "$(calc '%.2f' "100 * $fetch / $dur")" \
      "$(calc '%.2f' "100 * $imp / $dur")" "$(calc '%.2f' "100 * $fin / $dur")" \
      "$(calc '%.2f' "100 * ($dur - $fetch - $imp) / $dur")" \
      "$([[ "$note" == exact ]] || printf '~')$r" "${R_LOAD[$spec]}"
    if [[ "$note" == exact ]]; then
      if [[ -n "${R_FIRST[$spec]}" && -n "${R_LAST[$spec]}" ]]; then
        local per_row
        per_row=$(calc '%.1f' "$PLAIN_MS * 1000 / $ROWS")
        growth+=$'\n'"$label import by copy of the samples: first $((JOBS / DAYS)) jobs ${R_FIRST[$spec]} µs/row"
        growth+=" ($(calc '%.2f' "${R_FIRST[$spec]} / $per_row") x plain), last $((JOBS / DAYS)) jobs"
        growth+=" ${R_LAST[$spec]} µs/row ($(calc '%.2f' "${R_LAST[$spec]} / $per_row") x plain)"
      fi
      if awk -v r="$r" 'BEGIN { exit !(r <= 1.5) }'; then
        goal+=$'\n'"goal, $label: import = $r x plain insert (exact) <= 1.5: MET"
      else
        goal+=$'\n'"goal, $label: import = $r x plain insert (exact) > 1.5: NOT MET"
      fi
    else
      local upper
      upper=$(calc '%.2f' "$wall / $PLAIN_MS")
      if awk -v r="$upper" 'BEGIN { exit !(r <= 1.5) }'; then
        goal+=$'\n'"goal, $label: import <= whole pipeline = $upper x plain insert <= 1.5: MET"
      elif awk -v r="$r" 'BEGIN { exit !(r > 1.5) }'; then
        goal+=$'\n'"goal, $label: import ~ $r x plain insert (an undercount) > 1.5: NOT MET"
      else
        goal+=$'\n'"goal, $label: import between ~$r and $upper x plain insert: undecided (see 1x1)"
      fi
    fi
    ((R_PHASEJOBS[$spec] == JOBS)) || goal+=" (phases read for ${R_PHASEJOBS[$spec]} of $JOBS jobs)"
  done
  echo
  echo "procs: worker processes x jobs each. wall: processes started -> last job finished."
  echo "pipe/plain: pipeline wall / plain insert time, same rows. retry: jobs that needed a second attempt."
  echo "mongo: nx-27017 CPU / wall. Σjob s: summed job durationMs (jobs overlap), split into fetch,"
  echo "import (which includes finish) and other (see the header)."
  echo "imp/plain: summed import / plain time (1x1: exact); ~: wall x import share / plain time."
  [[ -z "$growth" ]] || echo "$growth"
  echo "$goal"
  if ((${#FAILURES[@]})); then
    echo
    echo "FAILED runs:"
    local f
    for f in "${FAILURES[@]}"; do echo "  $f"; done
  fi
}

mkdir -p "$BENCH/out"
OUT="$BENCH/out/pipeline-$STAMP.txt"
report | tee "$OUT"
echo "(written to ${OUT#"$ROOT"/})" >&2

if ((${#FAILURES[@]})); then
  die "${#FAILURES[@]} run(s) failed (see above)"
fi
