#!/usr/bin/env bash
# bench/under_load.sh — the under-load round of `make bench` (issue 12; run.sh calls it, or run it
# alone: BUILD=build/release BENCH_ROUNDS=3 bash bench/under_load.sh).
# The default shape, 400 steps a run, each run's mean tokens/s over all its steps: quiet, then beside
# one busy loop (a shell spinning on a core, started before and killed after each run, bounded by
# timeout). Ours as it runs by default (--threads 0: every core, the count following the load,
# cli/thread_tuner.h, its probes and its switch included), with --threads 1, and with --threads 2
# fixed (what --threads 0 was before the tuner). Rounds interleaved. The last line is the summary.
set -u
cd "$(dirname "$0")/.." || exit 1
B=${BUILD:-build/release}/bench
ROUNDS=${BENCH_ROUNDS:-3}
[ -x "$B/bench_train" ] || { echo "under_load: $B/bench_train is not built (run make bench)"; exit 1; }
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

steps=400
[ "${BENCH_QUICK:-0}" = 1 ] && steps=150
d_flags="--layers 4*softmax/mlp --dim 128 --heads 4 --ctx 64 --batch 12 --vocab 65 --steps $steps --warmup-steps 5"
echo "== under load (default shape, $steps steps a run, mean tokens/s): quiet, and beside one busy process =="
tps() {  # tps busy|quiet [FLAGS] -> mean tokens/s of bench_train $d_flags FLAGS
  local bp=
  if [ "$1" = busy ]; then timeout 300 sh -c 'while :; do :; done' & bp=$!; sleep 0.2; fi
  # shellcheck disable=SC2086
  field tokens_per_s_mean "$("$B/bench_train" $d_flags ${2:-} 2>/dev/null)"
  if [ -n "$bp" ]; then kill "$bp" 2>/dev/null; wait "$bp" 2>/dev/null; fi
}
q0=(); q1=(); l0=(); l1=(); l2=(); lr=(); qr=()
for r in $(seq 1 "$ROUNDS"); do
  q0+=("$(tps quiet)"); q1+=("$(tps quiet "--threads 1")")
  l0+=("$(tps busy)"); l1+=("$(tps busy "--threads 1")"); l2+=("$(tps busy "--threads 2")")
  lr+=("$(calc "${l0[-1]} / ${l1[-1]}" 2)"); qr+=("$(calc "${q0[-1]} / ${q1[-1]}" 2)")
  echo "round $r  quiet: default ${q0[-1]}, 1 thread ${q1[-1]} | loaded: default ${l0[-1]}, 1 thread ${l1[-1]}, 2 threads fixed ${l2[-1]} tok/s   load $(load)"
done
echo "-- quiet: default $(med "${q0[@]}"), 1 thread $(med "${q1[@]}") tokens/s (default / 1 thread $(med "${qr[@]}"))"
echo "-- one busy neighbour: default $(med "${l0[@]}"), 1 thread $(med "${l1[@]}"), 2 threads fixed $(med "${l2[@]}") tokens/s;"
echo "   default / 1 thread under the same load: median of per-round ratios $(med "${lr[@]}") (rounds: ${lr[*]}; target >= 0.9)"
echo "under load, default shape: quiet $(med "${q0[@]}") tok/s (1 thread $(med "${q1[@]}")) | one busy neighbour: default $(med "${l0[@]}"), 1 thread $(med "${l1[@]}"), 2 threads fixed $(med "${l2[@]}") tok/s; default/1 thread $(med "${lr[@]}")x"
