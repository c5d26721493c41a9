#!/usr/bin/env bash
# bench/run.sh — the performance report `make bench` prints (method: docs/performance.md).
#   BUILD=build/release bash bench/run.sh
# Env: BENCH_ROUNDS (default 3) interleaved ours/twin rounds per shape; BENCH_QUICK=1 fewer steps;
#      BENCH_SCALING_REPS (default 2, 1 with BENCH_QUICK) timed runs per bench_scaling row.
# 1. the machine's cblas_sgemm ceiling on 2 threads (bench/sgemm_ceiling.c);
# 2. per shape, rounds of  attnlab (bench_train) | PyTorch twin (bench/twin_bench.py) with 1 and with 2
#    threads, interleaved, so
#    that load from other processes hits both; medians over rounds, the ratio of tokens/s, MFU;
# 3. KV-cached decode tokens/s and per-token time early vs late in the window; an all-performer
#    model's per-token time at positions 100-199 vs 10,000-10,099 of one 10,100-token stream (ctx 64);
#    segment memory's cost: each kind's step with --memory 1024 over the same step without (ctx 128);
# 4. under load: the default shape quiet and beside a busy loop — ours by default (the thread count
#    following the load), with --threads 1 and with --threads 2 fixed (issue 12);
# 5. bench_adaptive / bench_pkm / bench_scaling if they are built (bench_scaling also writes bench/out/scaling.png).
# A copy of the report goes to bench/out/ (git-ignored).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build/release}
B=$BUILD/bench
ROUNDS=${BENCH_ROUNDS:-3}
PY=/usr/bin/python3
mkdir -p bench/out
report=bench/out/bench-$(date +%Y%m%d-%H%M%S).txt
exec > >(tee "$report") 2>&1

for bin in bench_train sgemm_ceiling; do
  [ -x "$B/$bin" ] || { echo "bench: $B/$bin is not built (run make bench)"; exit 1; }
done
have_twin=0
if [ -x "$PY" ] && "$PY" -c 'import torch' >/dev/null 2>&1; then have_twin=1; fi

# field NAME LINE -> value of NAME=... in LINE
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
# med v1 v2 ... -> median
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "attnlab bench — $(date -u '+%Y-%m-%d %H:%M UTC') — $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)'); build $BUILD; rounds $ROUNDS"
echo "load average at start (1/5/15 min): $(load)   [2 cores: above ~2 means other processes compete]"
echo

echo "== cblas_sgemm ceiling (2 threads, square 1024/1536/2048, median of 7) =="
sg=$("$B/sgemm_ceiling" --threads 2 --reps 7)
echo "$sg"
ceiling=$(field ceiling_gflops "$sg")
echo

# run_shape NAME "flags" ours_steps ours_warm twin_steps twin_warm
summary=()
run_shape() {
  local name=$1 flags=$2 steps=$3 warm=$4 tsteps=$5 twarm=$6
  local o_tps=() o_ms=() t_tps=() t_ms=() ratios=() t2_tps=() t2_ms=() ratios2=() rss_o=() rss_t=() line fpt=0 fwd=() bwd=() opt=()
  echo "== training: $name ($flags) =="
  for r in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    line=$("$B/bench_train" $flags --steps "$steps" --warmup-steps "$warm")
    echo "round $r  ours: $line"
    o_tps+=("$(field tokens_per_s "$line")"); o_ms+=("$(field ms_step "$line")"); rss_o+=("$(field peak_rss_mb "$line")")
    fwd+=("$(field fwd_ms "$line")"); bwd+=("$(field bwd_ms "$line")"); opt+=("$(field opt_ms "$line")")
    fpt=$(field flops_per_token "$line")
    if [ $have_twin = 1 ]; then
      # the twin with Debian's default (torch uses 1 thread there) and with torch.set_num_threads(2)
      # shellcheck disable=SC2086
      line=$("$PY" bench/twin_bench.py $flags --steps "$tsteps" --warmup-steps "$twarm" --threads 1)
      echo "round $r  twin 1 thread:  $line"
      t_tps+=("$(field tokens_per_s "$line")"); t_ms+=("$(field ms_step "$line")"); rss_t+=("$(field peak_rss_mb "$line")")
      ratios+=("$(calc "${o_tps[-1]} / ${t_tps[-1]}" 3)")
      # shellcheck disable=SC2086
      line=$("$PY" bench/twin_bench.py $flags --steps "$tsteps" --warmup-steps "$twarm" --threads 2)
      echo "round $r  twin 2 threads: $line"
      t2_tps+=("$(field tokens_per_s "$line")"); t2_ms+=("$(field ms_step "$line")")
      ratios2+=("$(calc "${o_tps[-1]} / ${t2_tps[-1]}" 3)")
    fi
    echo "         load $(load)"
  done
  local ot om gf mfu
  ot=$(med "${o_tps[@]}"); om=$(med "${o_ms[@]}")
  gf=$(calc "$fpt * $ot / 1e9" 1); mfu=$(calc "100 * $gf / $ceiling" 1)
  echo "-- $name: ours median $om ms/step, $ot tokens/s (fwd $(med "${fwd[@]}") | bwd $(med "${bwd[@]}") | opt $(med "${opt[@]}") ms)"
  echo "   model FLOPs/token $(calc "$fpt / 1e6" 2) M -> $gf GFLOP/s = MFU $mfu% of the $ceiling GFLOP/s sgemm ceiling; peak RSS $(med "${rss_o[@]}") MB"
  local line_sum
  line_sum="$name: ours $ot tok/s ($om ms/step), $gf GFLOP/s, MFU $mfu%, RSS $(med "${rss_o[@]}") MB"
  if [ $have_twin = 1 ]; then
    local tt tm tt2 tm2
    tt=$(med "${t_tps[@]}"); tm=$(med "${t_ms[@]}"); tt2=$(med "${t2_tps[@]}"); tm2=$(med "${t2_ms[@]}")
    echo "   twin, 2 threads: median $tm2 ms/step, $tt2 tokens/s; 1 thread (Debian's default): $tm ms/step, $tt tokens/s; peak RSS $(med "${rss_t[@]}") MB"
    echo "   ratio ours/twin tokens/s, median of per-round ratios: vs 2 threads $(med "${ratios2[@]}") (rounds: ${ratios2[*]}); vs 1 thread $(med "${ratios[@]}") (rounds: ${ratios[*]})"
    line_sum="$line_sum | twin 2 threads $tt2 tok/s, ours/twin $(med "${ratios2[@]}")x | twin 1 thread $tt tok/s, ours/twin $(med "${ratios[@]}")x"
  fi
  summary+=("$line_sum")
  echo
}

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  run_shape "default (4 layers, d 128, ctx 64, batch 12, vocab 65)" "--layers 4*softmax/mlp --dim 128 --heads 4 --ctx 64 --batch 12 --vocab 65" 10 2 10 2
  run_shape "large (6 layers, 6 heads, d 384, ctx 256, batch 16)" "--layers 6*softmax/mlp --dim 384 --heads 6 --ctx 256 --batch 16 --vocab 65" 2 1 2 1
else
  run_shape "default (4 layers, d 128, ctx 64, batch 12, vocab 65)" "--layers 4*softmax/mlp --dim 128 --heads 4 --ctx 64 --batch 12 --vocab 65" 30 3 30 3
  run_shape "large (6 layers, 6 heads, d 384, ctx 256, batch 16)" "--layers 6*softmax/mlp --dim 384 --heads 6 --ctx 256 --batch 16 --vocab 65" 3 1 2 1
fi

echo "== decode (default model, KV cache, 1 thread as infer uses; full 64-token windows) =="
dec_tps=(); dec_e=(); dec_l=()
for r in $(seq 1 "$ROUNDS"); do
  line=$("$B/bench_train" --decode --layers 4*softmax/mlp --dim 128 --heads 4 --ctx 64 --vocab 65 --reps 30)
  echo "round $r: $line"
  dec_tps+=("$(field tokens_per_s "$line")"); dec_e+=("$(field us_token_first8 "$line")"); dec_l+=("$(field us_token_last8 "$line")")
done
de=$(med "${dec_e[@]}"); dl=$(med "${dec_l[@]}")
echo "-- decode: median $(med "${dec_tps[@]}") tokens/s; per token $de us at positions 0-7, $dl us at 56-63 (late/early $(calc "$dl / $de" 2))"
summary+=("decode: $(med "${dec_tps[@]}") tok/s; per token $de us (pos 0-7) vs $dl us (pos 56-63)")
echo

echo "== decode far past ctx (4*performer/mlp, d 128, ctx 64; one stream of 10,100 tokens, 2 per round, 1 thread) =="
far_e=(); far_l=(); far_r=()
for r in $(seq 1 "$ROUNDS"); do
  line=$("$B/bench_train" --decode --positions 10100 --layers '4*performer/mlp' --dim 128 --heads 4 --ctx 64 --vocab 65 --reps 2)
  echo "round $r: $line"
  far_e+=("$(field us_token_pos100_199 "$line")"); far_l+=("$(field us_token_pos10000_10099 "$line")")
  far_r+=("$(field late_over_early "$line")")
done
fe=$(med "${far_e[@]}"); fl=$(med "${far_l[@]}")
echo "-- performer decode: per token $fe us at positions 100-199, $fl us at 10,000-10,099; late/early median of per-round ratios $(med "${far_r[@]}") (rounds: ${far_r[*]})"
summary+=("performer decode: per token $fe us (pos 100-199) vs $fl us (pos 10,000-10,099), late/early $(med "${far_r[@]}")")
echo

# Segment memory (LONG_CONTEXT.md §2): a step with --memory M against the same model without, rounds
# interleaved. Bound for softmax (Transformer-XL): (ctx+M)/ctx; performer carries a constant-size state.
mem_ctx=128; mem_M=1024; mem_steps=10
[ "${BENCH_QUICK:-0}" = 1 ] && mem_steps=4
echo "== segment memory cost (4 layers, d 128, 4 heads, ctx $mem_ctx, batch 12, vocab 256, --pos rope; memory 0 vs $mem_M, 2 threads) =="
# pairs "memory-free spec|memory spec": a span kind's span may reach M only with memory (span ≤ ctx without)
for pair in '4*softmax/mlp|4*softmax/mlp' '4*adaptive(span=128)/mlp|4*adaptive(span=1024)/mlp' \
            '4*allattn(span=128)|4*allattn(span=1024)' '4*performer/mlp|4*performer/mlp' \
            '4*linformer/mlp|4*linformer/mlp' '4*collab/mlp|4*collab/mlp'; do
  spec0=${pair%%|*}; spec=${pair#*|}
  m0=(); m1=(); rr=()
  for r in $(seq 1 "$ROUNDS"); do
    f="--dim 128 --heads 4 --ctx $mem_ctx --batch 12 --vocab 256 --pos rope --steps $mem_steps --warmup-steps 2"
    # shellcheck disable=SC2086
    a=$(field ms_step "$("$B/bench_train" --layers "$spec0" $f --memory 0)")
    # shellcheck disable=SC2086
    b=$(field ms_step "$("$B/bench_train" --layers "$spec" $f --memory $mem_M)")
    m0+=("$a"); m1+=("$b"); rr+=("$(calc "$b / $a" 2)")
  done
  echo "-- $spec0 memory 0 -> $spec memory $mem_M: $(med "${m0[@]}") ms/step, memory $mem_M $(med "${m1[@]}") ms/step; ratio median of rounds $(med "${rr[@]}") (rounds: ${rr[*]}; (ctx+M)/ctx = $(calc "($mem_ctx + $mem_M) / $mem_ctx" 1)); load $(load)"
  summary+=("memory $mem_M cost, $spec: x$(med "${rr[@]}") of the memory-free step ($(med "${m0[@]}") -> $(med "${m1[@]}") ms)")
done
echo

# Under load (issue 12): bench/under_load.sh (its last line is the summary's)
ul=$(BUILD="$BUILD" BENCH_ROUNDS="$ROUNDS" bash bench/under_load.sh)
printf '%s\n' "$ul" | sed '$d'
summary+=("$(printf '%s\n' "$ul" | tail -1)")
echo

if [ -x "$B/bench_adaptive" ]; then
  echo "== bench_adaptive =="
  "$B/bench_adaptive" || echo "(bench_adaptive exited with status $?)"
  echo
fi
if [ -x "$B/bench_collab" ]; then
  echo "== bench_collab (collab vs softmax fwd+bwd, ratios; CP/ALS conversion) =="
  "$B/bench_collab" || echo "(bench_collab exited with status $?)"
  echo
fi
if [ -x "$B/bench_pkm" ]; then
  echo "== bench_pkm (one ffn's training step: mlp vs pkm at 16384 and 262144 slots, default shape) =="
  pk=$("$B/bench_pkm" 7 16384,262144) || echo "(bench_pkm exited with status $?)"
  echo "$pk"
  summary+=("$(printf '%s\n' "$pk" | grep '^ratio pkm/mlp')")
  echo
fi
if [ -x "$B/bench_scaling" ]; then
  if [ "${BENCH_QUICK:-0}" = 1 ]; then sreps=${BENCH_SCALING_REPS:-1}; else sreps=${BENCH_SCALING_REPS:-2}; fi
  echo "== bench_scaling (tokens 4096, ctx 128-4096, reps $sreps; plot bench/out/scaling.png) =="
  "$B/bench_scaling" 4096 4096 "$sreps" 4096 --png bench/out || echo "(bench_scaling exited with status $?)"
  [ bench/out/scaling.png -nt "$report" ] && summary+=("scaling plot (us/token vs ctx, log-log): bench/out/scaling.png")
  echo
fi

echo "== summary (sgemm ceiling $ceiling GFLOP/s on 2 threads; load at end $(load)) =="
printf '%s\n' "${summary[@]}"
echo "report: $report"
