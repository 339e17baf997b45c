#!/usr/bin/env bash
# Profile gatednet's side of one workload with perf (falls back to valgrind --tool=callgrind
# when perf can't sample), printing the hottest symbols overall and for the busiest thread.
#   benchmarks/profile.sh '{"workload":"train","regime":"fixed_hard","n":10000,"batch":32,"runs":3}'
#   benchmarks/profile.sh '{"workload":"npk","n":10000,"runs":2}'
# Task fields are those of harness/worker_gatednet.py (see bench.py's plan()).
set -eu
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TASK="$1"
OUT="${PROFILE_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
export GATEDNET_LIB="${GATEDNET_LIB:-$HERE/../.build/release/libgatednet.so}"
if perf record -F 1999 -g -o "$OUT/perf.data" true > /dev/null 2>&1; then
  perf record -F 1999 -g -o "$OUT/perf.data" python3 "$HERE/harness/worker_gatednet.py" "$TASK" 2> /dev/null |
    grep -o '"times[^]]*]' || true
  echo "== all threads"
  perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,symbol 2> /dev/null |
    grep -E '^ +[0-9.]+%' | head -20 | cut -c1-150
  main_tid=$(perf script -i "$OUT/perf.data" -F tid 2> /dev/null | sort | uniq -c | sort -rn | head -1 | awk '{print $2}')
  echo "== busiest thread ($main_tid), relative"
  perf report -i "$OUT/perf.data" --stdio --no-children --tid "$main_tid" --percentage relative \
    --sort dso,symbol 2> /dev/null | grep -E '^ +[0-9.]+%' | head -20 | cut -c1-150
else
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    python3 "$HERE/harness/worker_gatednet.py" "$TASK" > /dev/null 2>&1 || true
  callgrind_annotate "$OUT/callgrind.out" 2> /dev/null | head -40
fi
echo "profile data: $OUT"
