#!/usr/bin/env bash
# Times `fetch-worker combine` on the legacy samples as a whole process (start-up, reading all
# 117 files, writing 7,452 rows to /dev/null) and compares it with the legacy Python combiner.
#
# The legacy figure, 1.1-1.3 s for the same inputs, is the one measured on the team's machines;
# the Python combiner is not available here, so it is a constant below, not a measurement.
#
# Usage: bench/combine.sh [RUNS]   (default 15; RUNS >= 1)
# Uses hyperfine when installed, else a loop with `date` for wall time and GNU `/usr/bin/time`
# for peak RSS (reported as n/a when that is missing too).
set -euo pipefail

runs="${1:-15}"
root="$(cd "$(dirname "$0")/.." && pwd)"
input="$root/tests/fixtures/legacy-samples/input"
legacy_low=1.1
legacy_high=1.3

cd "$root"
cargo build --release --quiet --bin fetch-worker --features test-doubles
bin="${CARGO_TARGET_DIR:-$root/target}/release/fetch-worker"
cmd=("$bin" combine "$input" --out /dev/null)

# One warm-up run: it fills the page cache and shows the summary's first line once.
summary="$("${cmd[@]}" 2>&1)"
echo "${summary%%$'\n'*}"

if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 2 --runs "$runs" --style basic "${cmd[*]} 2>/dev/null"
fi

have_time=0
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
    have_time=1
fi

walls=()
rss_max=0
rss_file="$(mktemp)"
trap 'rm -f "$rss_file"' EXIT
for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    if [[ $have_time == 1 ]]; then
        /usr/bin/time -f '%M' -o "$rss_file" "${cmd[@]}" 2>/dev/null
    else
        "${cmd[@]}" 2>/dev/null
    fi
    end=$(date +%s%N)
    walls+=($(( (end - start) / 1000 )))   # microseconds
    if [[ $have_time == 1 ]]; then
        rss=$(tail -n 1 "$rss_file")
        (( rss > rss_max )) && rss_max=$rss
    fi
done

sorted=($(printf '%s\n' "${walls[@]}" | sort -n))
best=${sorted[0]}
median=${sorted[$(( runs / 2 ))]}

awk -v best="$best" -v median="$median" -v runs="$runs" -v lo="$legacy_low" -v hi="$legacy_high" \
    -v rss="$rss_max" -v have_time="$have_time" 'BEGIN {
    printf "runs:        %d\n", runs
    printf "wall best:   %.1f ms\n", best / 1000
    printf "wall median: %.1f ms\n", median / 1000
    printf "vs legacy:   %.0f-%.0fx faster (median vs %.1f-%.1f s, team machines)\n", \
        lo * 1e6 / median, hi * 1e6 / median, lo, hi
    if (have_time == 1) printf "peak RSS:    %.1f MiB (max over runs)\n", rss / 1024
    else print "peak RSS:    n/a (GNU time not installed)"
}'
