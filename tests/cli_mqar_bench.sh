#!/usr/bin/env bash
# tests/cli_mqar_bench.sh — bench/mqar.sh (docs/mqar.md) on tiny settings: one CSV row per spec,
# setting and seed, keyed by spec (not by position); the tables' mean and min–max over seeds; the two
# plots; an interrupted or repeated benchmark resumes without training again; an unknown spec and
# --seed refused before anything trains (exit 2, one line); a failing run reported and exit 1.
#   ATTNLAB_BUILD=build/release bash tests/cli_mqar_bench.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (bash setup.sh test installs it)"; exit 77; }
export ATTNLAB_BUILD=$BUILD
bench() { LENGTHS="16 32" PAIRS0=2 PAIRS="2 4" LEN0=16 VOCAB=${VOCAB:-16} SEEDS="1 2" JOBS=2 bash bench/mqar.sh "$@"; }
tiny=(-- --dim 16 --steps 20 --eval-every 20 --mqar-eval-seqs 8 --warmup 2)
A="2*softmax/mlp"; B="shortconv/none,softmax/none"

check "two specs x (lengths 16, 32 at 2 pairs; 4 pairs at length 16) x seeds 1, 2: twelve rows"
expect_ok bench "$W/m" "$A" "$B" "${tiny[@]}"
head -1 "$W/m/mqar.csv" | grep -qx "spec,len,pairs,vocab,seed,accuracy,answer_loss,params,steps,train_s" || fail "CSV header"
[ "$(tail -n +2 "$W/m/mqar.csv" | wc -l)" = 12 ] || fail "expected 12 rows: $(cat "$W/m/mqar.csv")"
for s in "$A" "$B"; do
  for set in "16,2" "32,2" "16,4"; do
    for seed in 1 2; do
      grep -Eq "^\"$(printf '%s' "$s" | sed 's/[*]/[*]/g')\",$set,16,$seed,[01]\.[0-9]+,[0-9.]+,[0-9]+,20," "$W/m/mqar.csv" ||
        fail "no finished row for $s at $set seed $seed: $(cat "$W/m/mqar.csv")"
    done
  done
done
[ -f "$W/m/runs/2*softmax_mlp_L32_D2_s2.csv" ] || fail "run files not keyed by spec, setting and seed: $(ls "$W/m/runs")"

check "the tables hold the mean over the seeds, their min–max and the count at 0.9"
a1=$(awk -F, -v s="\"$A\"" '$1 == s && $2 == 32 && $3 == 2 && $5 == 1 { print $6 }' "$W/m/mqar.csv")
a2=$(awk -F, -v s="\"$A\"" '$1 == s && $2 == 32 && $3 == 2 && $5 == 2 { print $6 }' "$W/m/mqar.csv")
want=$(awk -v a="$a1" -v b="$a2" 'BEGIN { lo = a < b ? a : b; hi = a < b ? b : a; printf "%.3f (%.3f–%.3f; %d/2 ≥ 0.9)", (a + b) / 2, lo, hi, (a >= 0.9) + (b >= 0.9) }')
grep -F "| \`$A\` |" "$W/m/mqar.md" | head -1 | grep -qF "| $want |" || fail "N 32 cell of $A is not '$want': $(cat "$W/m/mqar.md")"
grep -q "## By pairs (length 16)" "$W/m/mqar.md" || fail "no pairs table"
for png in acc_vs_len acc_vs_pairs; do
  [ "$(head -c 4 "$W/m/$png.png" | tail -c 3)" = PNG ] || fail "$png.png is not a PNG"
done

check "run again, specs in the other order: nothing trains, every row keeps its spec's figures"
cp "$W/m/mqar.csv" "$W/first.csv"
expect_ok bench "$W/m" "$B" "$A" "${tiny[@]}"
grep -q "^mqar: " "$W/err" && fail "a finished run was trained again"
[ "$(sort "$W/first.csv")" = "$(sort "$W/m/mqar.csv")" ] || fail "rows changed on a resume in another order"

check "an interrupted benchmark resumes: a run without its final row trains again, the others do not"
k=$W/m/runs/$(printf '%s' "$B" | tr -c 'A-Za-z0-9=.,*-' '_')_L16_D4_s1
grep -v ',final,' "$k.csv" >"$k.tmp" && mv "$k.tmp" "$k.csv"
expect_ok bench "$W/m" "$A" "$B" "${tiny[@]}"
[ "$(grep -c "^mqar: " "$W/err")" = 1 ] && grep -q "^mqar: $B, length 16, 4 pairs, seed 1$" "$W/err" ||
  fail "expected exactly the unfinished run to train again: $(cat "$W/err")"
no_time() { sed 's/,[^,]*$//' "$1" | sort; }  # every column but train_s (wall time)
[ "$(no_time "$W/first.csv")" = "$(no_time "$W/m/mqar.csv")" ] || fail "the retrained run gave other figures (train is deterministic)"

check "an unknown spec: exit 2, one line naming it, before anything trains"
expect_err 2 "spec '4\*warp/mlp' does not train" bench "$W/u" "$A" "4*warp/mlp" "${tiny[@]}"
[ -z "$(ls "$W/u/runs" 2>/dev/null)" ] || fail "something trained before the bad spec was refused: $(ls "$W/u/runs")"
check "--seed among the train flags: exit 2 (seeds come from SEEDS)"
expect_err 2 "give seeds in SEEDS, not --seed" bench "$W/u" "$A" "${tiny[@]}" --seed 3

check "a run that fails (4 pairs need a vocabulary of 10; 8 given): marked failed, the rest reported, exit 1"
VOCAB=8 run bench "$W/f" "$A" "${tiny[@]}"
[ $RC = 1 ] || fail "expected exit 1 with a failed run"
[ "$(grep -c ',failed,' "$W/f/mqar.csv")" = 2 ] || fail "expected the two 4-pair runs failed: $(cat "$W/f/mqar.csv")"
[ "$(grep -cE ',[01]\.[0-9]+,' "$W/f/mqar.csv")" = 4 ] || fail "the other runs are not reported: $(cat "$W/f/mqar.csv")"
grep -F "| \`$A\` |" "$W/f/mqar.md" | tail -1 | grep -q "| failed |" || fail "the pairs table does not mark D 4 failed: $(cat "$W/f/mqar.md")"
echo "all passed"
