# bench/lib/stack.sh — the pieces bench/pipeline.sh and bench/chaos.sh share: messages, the
# shifted copies of the legacy samples, and the servers of the stack (redis-server, nx-27017 or
# MONGO_URI, `fetch-worker fake-pos`), each on a free loopback port.
#
# Sourced, not run. The caller sets, before sourcing:
#   BENCH_NAME  the script's name, for messages ("chaos.sh")
#   ROOT        the repository
# and, before calling the functions that need them:
#   WORK        its temporary directory
#   BIN         the fetch-worker binary
# Each function's comment says which variables it sets.

SAMPLES="$ROOT/tests/fixtures/legacy-samples/input"
EXPECTED_CSV="$ROOT/tests/fixtures/legacy-samples/expected.csv"
NODE_EXAMPLE="$ROOT/node-producer-example"
NX_LAUNCHER="$ROOT/tests/support/nx_mongo.py"
# The servers this file starts (empty: none yet; never taken from the environment).
REDIS_PORT=""
REDIS_PID=""
MONGO_PORT=""
MONGO_PID=""
POS_PID=""

die() {
  echo "$BENCH_NAME: $*" >&2
  exit 1
}
say() { echo "$BENCH_NAME: $*" >&2; }

positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }

# Checks the tools every run needs, and MONGO_URI (or nx-27017 when it is unset).
check_tools() { # check_tools REDIS_SERVER
  local tool
  for tool in node redis-cli timeout "$1"; do
    command -v "$tool" >/dev/null || die "'$tool' is needed and not on PATH"
  done
  if [[ -z "${MONGO_URI:-}" ]]; then
    python3 -c 'import nx_27017' 2>/dev/null || die "no MONGO_URI and no nx-27017 (python3 -m pip install nx-27017, or bash tests/setup.sh)"
  else
    [[ "$MONGO_URI" =~ ^mongodb(\+srv)?:// ]] || die "MONGO_URI must start with mongodb:// or mongodb+srv://"
  fi
  [[ -d "$NODE_EXAMPLE/node_modules/bullmq" ]] || die "node-producer-example has no node_modules (bash tests/setup.sh, or npm ci there)"
}

stop() { # stop PID: SIGTERM, wait up to 5 s, then SIGKILL
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

free_port() {
  node -e '
    const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

wait_port() { # wait_port PORT PID NAME LOG
  local i
  for i in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited at start: $(tail -5 "$4" 2>/dev/null)"
    sleep 0.1
  done
  die "$3 did not listen on port $1 within 20 s: $(tail -5 "$4" 2>/dev/null)"
}

# ---------------------------------------------------------------- data

# DAYS copies of the samples, copy k (k = 0..DAYS-1) with each group's business date moved k
# days later, in the file names and in the files' text (see bench/pipeline.sh, HOW). Writes the
# files to $WORK/pos, one job spec per day to $WORK/jobs.json (day-major order, as a backfill
# would enqueue them) and the combined rows to $WORK/rows.jsonl (checked: DAYS x the samples'
# rows). Sets DATA, SRC_FILES, JOBS, PER_DAY, ROWS.
generate_days() { # generate_days DAYS
  local days=$1 got
  ((days <= 124)) || die "DAYS must be at most 124 (the two sample dates would meet), got $days"
  PER_DAY=$(($(wc -l <"$EXPECTED_CSV") - 1))
  DATA="$WORK/pos"
  mkdir -p "$DATA"
  say "generating $days shifted copies of the samples"
  # shellcheck disable=SC2016 # JavaScript (template literals), not shell
  node -e '
    const fs = require("fs");
    const path = require("path");
    const [src, out, daysArg, jobsFile] = process.argv.slice(1);
    const days = Number(daysArg);
    const re = /^a_([^_]+)_(\d+)_([^_]+)_(\d{4}-\d{2}-\d{2})_(\d{2}-\d{2})_\.csv$/;
    const shift = (date, k) => {
      const [y, m, d] = date.split("-").map(Number);
      return new Date(Date.UTC(y, m - 1, d + k)).toISOString().slice(0, 10);
    };
    const groups = new Map();
    let files = 0;
    for (const name of fs.readdirSync(src).sort()) {
      const m = re.exec(name);
      if (!m) continue;
      const [, branch, pos, type, date, hm] = m;
      // latin1 maps every byte to one char and back: the copies differ only in the date text.
      const text = fs.readFileSync(path.join(src, name), "latin1");
      for (let k = 0; k < days; k++) {
        const nd = shift(date, k);
        const key = `${branch}|${pos}|${nd}`;
        const seen = groups.get(key);
        if (seen && seen.from !== date) throw new Error(`${key} comes from both ${seen.from} and ${date}`);
        groups.set(key, { from: date, k, job: { branch, pos: Number(pos), date: nd } });
        fs.writeFileSync(path.join(out, `a_${branch}_${pos}_${type}_${nd}_${hm}_.csv`),
          text.split(date).join(nd), "latin1");
      }
      files++;
    }
    // Day-major order, as a backfill would enqueue them.
    const jobs = [...groups.values()]
      .sort((a, b) => a.k - b.k || a.job.date.localeCompare(b.job.date) || a.job.branch.localeCompare(b.job.branch))
      .map((g) => ({ name: "fetch-job", data: g.job }));
    fs.writeFileSync(jobsFile, JSON.stringify(jobs));
    console.log(`${files} ${jobs.length}`);' "$SAMPLES" "$DATA" "$days" "$WORK/jobs.json" >"$WORK/gen.out" ||
    die "generating the data failed"
  read -r SRC_FILES JOBS <"$WORK/gen.out"
  ROWS=$((days * PER_DAY))
  "$BIN" combine "$DATA" --format jsonl --out "$WORK/rows.jsonl" 2>"$WORK/combine.err" ||
    die "fetch-worker combine failed on the generated data: $(tail -3 "$WORK/combine.err")"
  got=$(wc -l <"$WORK/rows.jsonl")
  ((got == ROWS)) || die "the generated data combines to $got rows, expected $days x $PER_DAY = $ROWS (see the date shifting)"
  say "$SRC_FILES sample files x $days days: $JOBS jobs, $ROWS rows"
}

# ---------------------------------------------------------------- servers

# Starts redis-server on REDIS_PORT (a free port, never 6379, chosen on the first call; a later
# call restarts it on the same port and directory, so an append-only file is read back), with
# the extra arguments given, logging to $WORK/redis.log. Sets REDIS_PORT, REDIS_PID,
# REDIS_VERSION, REDIS_JOB_URL (db 1), REDIS_CACHE_URL (db 0).
start_redis() { # start_redis [REDIS ARGS...]
  if [[ -z "${REDIS_PORT:-}" ]]; then
    REDIS_PORT=$(free_port)
    while [[ "$REDIS_PORT" == 6379 ]]; do REDIS_PORT=$(free_port); done
  fi
  "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --logfile "$WORK/redis.log" \
    --daemonize no "$@" &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" "$REDIS_PID" redis-server "$WORK/redis.log"
  REDIS_VERSION=$(rcli INFO server | tr -d '\r' | sed -n 's/^redis_version://p')
  REDIS_JOB_URL="redis://127.0.0.1:$REDIS_PORT/1"
  REDIS_CACHE_URL="redis://127.0.0.1:$REDIS_PORT/0"
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# Starts nx-27017 (through the tests' launcher) on MONGO_PORT with its files in $WORK/nx (a
# later call restarts it on the same port and data). Sets MONGO_PORT, MONGO_PID.
start_nx() {
  [[ -n "${MONGO_PORT:-}" ]] || MONGO_PORT=$(free_port)
  mkdir -p "$WORK/nx"
  # nx-27017 writes relative files into its working directory: keep them in WORK.
  (cd "$WORK/nx" && exec python3 "$NX_LAUNCHER" --port "$MONGO_PORT" --data-dir "$WORK/nx/data" \
    --pid-file "$WORK/nx/nx.pid" --log-file "$WORK/nx/nx.log") >>"$WORK/nx/out.log" 2>&1 &
  MONGO_PID=$!
  wait_port "$MONGO_PORT" "$MONGO_PID" nx-27017 "$WORK/nx/out.log"
}

# MongoDB: MONGO_URI when set, else a fresh nx-27017. Sets MONGO_BASE, MONGO_DESC (and, for
# nx-27017, MONGO_PORT and MONGO_PID).
start_mongo() {
  if [[ -n "${MONGO_URI:-}" ]]; then
    MONGO_BASE=$MONGO_URI
    MONGO_DESC="MongoDB at MONGO_URI ($(sed -E 's#^(mongodb(\+srv)?://)([^@/]*@)?([^/?]*).*#\1\4#' <<<"$MONGO_URI"))"
  else
    start_nx
    MONGO_BASE="mongodb://127.0.0.1:$MONGO_PORT"
    local version
    version=$(python3 -c 'import importlib.metadata as m; print(m.version("nx-27017"))' 2>/dev/null || echo "?")
    MONGO_DESC="nx-27017 $version (MongoDB wire, SQLite WAL on disk; tests/support/nx_mongo.py)"
  fi
}

mongo_uri_for() { # mongo_uri_for DB [BASE]: BASE (MONGO_BASE) with its database replaced by DB
  local uri=${2:-$MONGO_BASE} query="" scheme rest hosts
  if [[ "$uri" == *\?* ]]; then
    query="?${uri#*\?}"
    uri=${uri%%\?*}
  fi
  scheme=${uri%%://*}
  rest=${uri#*://}
  hosts=${rest%%/*}
  echo "$scheme://$hosts/$1$query"
}

# The end of a clean-up: stops MongoDB (ours) and Redis, then removes WORK, or keeps it with
# KEEP_WORK=1.
end_stack() {
  [[ -z "${MONGO_PID:-}" ]] || stop "$MONGO_PID"
  [[ -z "${REDIS_PID:-}" ]] || stop "$REDIS_PID"
  if [[ -n "${KEEP_WORK:-}" ]]; then
    echo "$BENCH_NAME: KEEP_WORK: data and logs left in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}

# Starts `fetch-worker fake-pos` over $DATA on a free port, with fault rules (JSON, optional).
# Sets POS_PID, POS_BASE_URL, POS_LIST_URL.
start_fake_pos() { # start_fake_pos [FAULTS_JSON]
  local args=(fake-pos --dir "$DATA" --port 0)
  [[ -z "${1:-}" ]] || args+=(--faults "$1")
  "$BIN" "${args[@]}" >"$WORK/pos.out" 2>"$WORK/pos.err" &
  POS_PID=$!
  for _ in $(seq 200); do
    grep -q 'listening on' "$WORK/pos.out" 2>/dev/null && break
    kill -0 "$POS_PID" 2>/dev/null || die "fake-pos exited at start: $(tail -3 "$WORK/pos.err")"
    sleep 0.05
  done
  POS_BASE_URL=$(sed -n 's/^fake-pos listening on \([^ ]*\) (list: \([^)]*\))$/\1/p' "$WORK/pos.out")
  POS_LIST_URL=$(sed -n 's/^fake-pos listening on \([^ ]*\) (list: \([^)]*\))$/\2/p' "$WORK/pos.out")
  [[ -n "$POS_BASE_URL" && -n "$POS_LIST_URL" ]] || die "fake-pos did not print its address: $(cat "$WORK/pos.out")"
}
