#!/usr/bin/env bash
# tests/cli_mqar_bench.sh — bench/mqar.sh (docs/mqar.md) on tiny settings: each spec trained once per seed
# on the mixture, then scored at every cell of the grid (the score infer gives for that checkpoint); one
# CSV row per spec, seed and cell, keyed by spec (not by position); the tables' mean and min–max over
# seeds; the two plots; a repeated or interrupted benchmark resumes without redoing finished work; an
# unknown spec and --seed refused before anything trains (exit 2, one line); a failing score reported
# and exit 1.
#   ATTNLAB_BUILD=build/release bash tests/cli_mqar_bench.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (bash setup.sh test installs it)"; exit 77; }
export ATTNLAB_BUILD=$BUILD
bench() { TRAIN_LEN=32 TRAIN_PAIRS=4 MIX="16:2:3,32:4" LENGTHS="16 32 64" PAIRS0=2 PAIRS="2 4" LEN0=32 VOCAB=16 SEEDS="1 2" \
          JOBS=2 bash bench/mqar.sh "$@"; }
tiny=(-- --dim 16 --steps 20 --eval-every 20 --mqar-eval-seqs 8 --warmup 2)
A="2*softmax/mlp"; B="shortconv/none,softmax/none"
ka=$W/m/runs/2*softmax_mlp; kb=$W/m/runs/shortconv_none,softmax_none
no_time() { sed 's/,[^,]*$//' "$1" | sort; }  # every column but train_s (wall time)

check "two specs x seeds 1, 2, trained once each on the mixture; cells N 16, 32, 64 at 2 pairs and D 4 at N 32"
expect_ok bench "$W/m" "$A" "$B" "${tiny[@]}"
[ "$(grep -c "^mqar: training" "$W/err")" = 4 ] || fail "expected 4 trainings: $(cat "$W/err")"
head -1 "$W/m/mqar.csv" | grep -qx "spec,len,pairs,vocab,seed,accuracy,answer_loss,params,train_steps,train_s" || fail "CSV header"
[ "$(tail -n +2 "$W/m/mqar.csv" | wc -l)" = 16 ] || fail "expected 16 rows: $(cat "$W/m/mqar.csv")"
grep -q "task: mqar | length 32, 4 pairs, vocab 16 | .* | training mixture 16:2:3,32:4 |" "$ka"_s2.out ||
  fail "the training did not use the mixture: $(head -3 "$ka"_s2.out)"
for s in "$A" "$B"; do
  for set in "16,2" "32,2" "64,2" "32,4"; do
    for seed in 1 2; do
      grep -Eq "^\"$(printf '%s' "$s" | sed 's/[*]/[*]/g')\",$set,16,$seed,[01]\.[0-9]+,[0-9.]+,[0-9]+,20," "$W/m/mqar.csv" ||
        fail "no scored row for $s at $set seed $seed: $(cat "$W/m/mqar.csv")"
    done
  done
done

check "a cell is what infer --mqar-eval gives for that checkpoint and setting"
expect_ok "$INFER" "$kb"_s1.safetensors --mqar-eval --mqar-len 64 --mqar-pairs 2 --mqar-seqs 256 --threads 1
got=$(sed -E 's/.*recall accuracy ([0-9.]+).*/\1/' "$W/out")
row=$(grep -F "\"$B\",64,2,16,1," "$W/m/mqar.csv")
[ "$(echo "$row" | cut -d, -f7)" = "$got" ] || fail "the N 64 cell of $B seed 1 is not infer's $got: $row"

check "the tables hold the mean over the seeds, their min–max and the count at 0.9"
a1=$(grep -F "\"$A\",64,2,16,1," "$W/m/mqar.csv" | cut -d, -f6); a2=$(grep -F "\"$A\",64,2,16,2," "$W/m/mqar.csv" | cut -d, -f6)
want=$(awk -v a="$a1" -v b="$a2" 'BEGIN { lo = a < b ? a : b; hi = a < b ? b : a; printf "%.3f (%.3f–%.3f; %d/2 ≥ 0.9)", (a + b) / 2, lo, hi, (a >= 0.9) + (b >= 0.9) }')
grep -F "| \`$A\` |" "$W/m/mqar.md" | head -1 | grep -qF "| $want |" || fail "N 64 cell of $A is not '$want': $(cat "$W/m/mqar.md")"
grep -q "## By pairs (length 32)" "$W/m/mqar.md" || fail "no pairs table"
grep -q "trained at length 32 with 4 pairs on the mixture 16:2:3,32:4" "$W/m/mqar.md" || fail "the report does not say how the specs were trained"
for png in acc_vs_len acc_vs_pairs; do
  [ "$(head -c 4 "$W/m/$png.png" | tail -c 3)" = PNG ] || fail "$png.png is not a PNG"
done

check "run again, specs in the other order: nothing trains or is scored again, every row keeps its spec's figures"
cp "$W/m/mqar.csv" "$W/first.csv"
touch -d "2000-01-01" "$W"/m/runs/*.eval
expect_ok bench "$W/m" "$B" "$A" "${tiny[@]}"
grep -q "^mqar: training" "$W/err" && fail "a finished training was run again"
[ -z "$(find "$W/m/runs" -name '*.eval' -newer "$W/first.csv")" ] || fail "a finished score was redone"
[ "$(sort "$W/first.csv")" = "$(sort "$W/m/mqar.csv")" ] || fail "rows changed on a resume in another order"

check "an interrupted benchmark resumes: an unfinished training and a missing score are redone, nothing else"
grep -v ',final,' "$kb"_s1.csv >"$W/tmp" && mv "$W/tmp" "$kb"_s1.csv
rm "$ka"_s2_L16_D2.eval
expect_ok bench "$W/m" "$A" "$B" "${tiny[@]}"
[ "$(grep -c "^mqar: training" "$W/err")" = 1 ] && grep -q "^mqar: training $B, seed 1$" "$W/err" ||
  fail "expected exactly the unfinished training again: $(cat "$W/err")"
[ "$(find "$W/m/runs" -name '*.eval' -newer "$W/first.csv" | wc -l)" = 5 ] ||
  fail "expected the retrained run's 4 scores and the missing one redone: $(find "$W/m/runs" -name '*.eval' -newer "$W/first.csv")"
[ "$(no_time "$W/first.csv")" = "$(no_time "$W/m/mqar.csv")" ] || fail "the redone work gave other figures (train is deterministic)"

check "an unknown spec: exit 2, one line naming it, before anything trains"
expect_err 2 "spec '4\*warp/mlp' does not train" bench "$W/u" "$A" "4*warp/mlp" "${tiny[@]}"
[ -z "$(ls "$W/u/runs" 2>/dev/null)" ] || fail "something trained before the bad spec was refused: $(ls "$W/u/runs")"
check "--seed among the train flags: exit 2 (seeds come from SEEDS)"
expect_err 2 "give seeds in SEEDS, not --seed" bench "$W/u" "$A" "${tiny[@]}" --seed 3

check "scores that fail (learned positions cannot score length 64 > 32): marked failed, the rest reported, exit 1"
run bench "$W/f" "$A" "${tiny[@]}" --pos learned
[ $RC = 1 ] || fail "expected exit 1 with failed scores"
[ "$(grep -c ',failed,' "$W/f/mqar.csv")" = 2 ] || fail "expected the two N 64 cells failed: $(cat "$W/f/mqar.csv")"
[ "$(grep -cE ',[01]\.[0-9]+,' "$W/f/mqar.csv")" = 6 ] || fail "the other cells are not reported: $(cat "$W/f/mqar.csv")"
grep -F "| \`$A\` |" "$W/f/mqar.md" | head -1 | grep -q "| failed |$" || fail "the length table does not mark N 64 failed: $(cat "$W/f/mqar.md")"
echo "all passed"
