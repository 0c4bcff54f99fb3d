#!/usr/bin/env bash
# Runs the demo as a user would leave it running (held up, not a terminal), with the Bull Board
# browser check, then stops it by pid with SIGINT as `kill -INT <pid>` would, and checks that:
# it stops within 20 s, it stopped what it started (no worker, producer, fake POS or Prometheus
# left), its summary showed every job completed, its Prometheus saw the three workers up and the
# queue's state, and its workers logged no warning (an idle worker used to
# warn "marker wait overdue" after every burst).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fail() { echo "check-demo: $*" >&2; [ -f "${log:-}" ] && tail -40 "$log" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Job control on, as in the user's terminal: without it bash starts background commands with
# SIGINT ignored, and an ignored signal cannot be trapped, so `kill -INT` would do nothing.
set -m
DEMO_HOLD=1 DEMO_BROWSER_TEST=1 bash compose/demo.sh >"$log" 2>&1 &
demo=$!
# Show the demo's output as it comes (setup and build progress included).
tail -n +1 -f "$log" --pid "$demo" &
follower=$!

for _ in $(seq 1 1800); do
  grep -q '^press Ctrl-C' "$log" && break
  kill -0 "$demo" 2>/dev/null || { wait "$demo" || true; fail "the demo ended before holding"; }
  sleep 0.5
done
grep -q '^press Ctrl-C' "$log" || fail "the demo never reached its hold"
grep -q '^worker warnings: 0$' "$log" || fail "the workers logged warnings"
grep -Eq '^jobs: waiting=0 active=0 delayed=0 completed=[1-9][0-9]* failed=0$' "$log" ||
  fail "the summary does not show every job completed"
grep -q '^prometheus: 3 of 3 workers up$' "$log" || fail "Prometheus does not see the three workers up"
grep -Eq '^  queue by state: .*completed=[1-9]' "$log" || fail "Prometheus has no queue state from the workers"

# The processes it started, found by the ports they serve, before the stop.
children=$(pgrep -P "$demo" || true)
kill -INT "$demo"
for _ in $(seq 1 40); do kill -0 "$demo" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$demo" 2>/dev/null; then
  kill -KILL "$demo" 2>/dev/null || true
  fail "the demo did not stop within 20 s of kill -INT"
fi
wait "$follower" 2>/dev/null || true
grep -q '^stopping the demo' "$log" || fail "the demo did not run its cleanup"
for p in $children; do
  if kill -0 "$p" 2>/dev/null; then
    fail "process $p ($(cat /proc/"$p"/cmdline 2>/dev/null | tr '\0' ' ')) outlived the demo"
  fi
done
echo "check-demo: held, checked in the browser, stopped by kill -INT, nothing left running"
