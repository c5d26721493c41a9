#!/usr/bin/env bash
# tests/cli_logs.sh — what every run reports (docs/logs.md): the CSV's spans and pkm_usage columns
# against infer --spans and the printed pkm line, --eval-at-start, --final-eval all|none|N (N against
# infer --eval of the same validation tokens), --time-budget ending at --min-lr (also across a
# resume), and each new flag's bad values (one line, exit 2).
#   ATTNLAB_BUILD=build/release bash tests/cli_logs.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
NUM='[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
has() { grep -Eq -- "$1" "$W/out" || fail "stdout lacks a line matching /$1/"; }
col() { awk -F, -v name="$1" 'NR==1 {for (i = 1; i <= NF; i++) if ($i == name) c = i; next} {print $c}' "$2"; }

head -c 60000 "$DATA" >"$W/text.txt"
TINY=(--dim 32 --heads 2 --ctx 32 --batch 4 --threads 1)
MIX="adaptive/mlp,softmax/pkm(slots=64,k=4,heads=2,dk=8)"

check "spans and pkm_usage on evaluation rows (one entry per layer), empty on train rows; --eval-at-start"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers "$MIX" --steps 20 --eval-every 10 --eval-at-start \
    --out "$W/mix.st" --log "$W/mix.csv"
has "^step 0/20 \| val loss $NUM \| ppl $NUM \| bpb $NUM  \(80 random windows, before any step\)$"
[ "$(head -1 "$W/mix.csv")" = "step,split,loss,ppl,bpb,lr,grad_norm,tokens_per_s,ms_per_step,elapsed_s,tokens_seen,spans,pkm_usage,accuracy" ] ||
    fail "CSV header is $(head -1 "$W/mix.csv")"
grep -Eq '^0,val,' "$W/mix.csv" || fail "no step-0 val row: $(cat "$W/mix.csv")"
awk -F, 'NR>1 && $2=="train" && ($12!="" || $13!="") {bad=1} END {exit bad}' "$W/mix.csv" || fail "a train row has spans/pkm_usage"
awk -F, 'NR>1 && $2!="train" && ($12 !~ /^[0-9]+\.[0-9];$/ || $13 !~ /^;(0|1)\.[0-9][0-9][0-9][0-9]$/) {bad=1} END {exit bad}' "$W/mix.csv" ||
    fail "an evaluation row lacks 'SPAN;' or ';USAGE': $(cat "$W/mix.csv")"
[ "$(grep -c ',val,\|,final,' "$W/mix.csv")" -eq 3 ] || fail "expected rows at steps 0, 10 and final: $(cat "$W/mix.csv")"
# the final row's pkm_usage is the printed final "pkm layer 1: X% of" line; spans are infer --spans' mean
printed=$(grep -A3 '^final step' "$W/out" | grep -Eo 'pkm layer 1: [0-9.]+%' | grep -Eo '[0-9.]+%' | tr -d %)
logged=$(awk -F, '$2=="final" {split($13, u, ";"); printf "%.1f", 100 * u[2]}' "$W/mix.csv")
[ -n "$printed" ] && [ "$printed" = "$logged" ] || fail "pkm usage printed '$printed'%, CSV '$logged'%"
expect_ok "$INFER" "$W/mix.st" --spans --spans-png "$W/spans.png"
mean=$(awk '$1=="0" {printf "%.1f", $NF}' "$W/out")
logged=$(awk -F, '$2=="final" {split($12, s, ";"); print s[1]}' "$W/mix.csv")
[ "$mean" = "$logged" ] || fail "layer 0's mean span: infer --spans $mean, CSV $logged"

check "--final-eval N scores the first N validation tokens: the loss of infer --eval on those bytes"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers 2*softmax/mlp --steps 20 --eval-every 10 --final-eval 1500 \
    --out "$W/n.st" --log "$W/n.csv"
n_train=$(grep -Eo '[0-9]+ train' "$W/out" | awk '{print $1}')
has "^final step 20 \| val loss $NUM .*\(--final-eval 1500: the first 1501 of the validation split's [0-9]+ tokens, 1500 scored"
final=$(grep -Eo '^final step 20 \| val loss [0-9.]+' "$W/out" | awk '{print $NF}')
tail -c +$((n_train + 1)) "$W/text.txt" | head -c 1501 >"$W/val1501.txt"
expect_ok "$INFER" "$W/n.st" --eval "$W/val1501.txt"
ev=$(awk '{print $2}' "$W/out")
[ "$final" = "$ev" ] || fail "--final-eval 1500 loss $final, infer --eval on the same 1501 bytes $ev"
grep -Eq "^20,final,$final" "$W/n.csv" || fail "no final row with loss $final: $(cat "$W/n.csv")"

check "--final-eval none: a line says so, no final row, and the last step's periodic evaluation runs instead"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers 2*softmax/mlp --steps 20 --eval-every 10 --final-eval none \
    --out "$W/none.st" --log "$W/none.csv"
has "^final step 20 \| no final evaluation \(--final-eval none\)$"
grep -q ',final,' "$W/none.csv" && fail "a final row with --final-eval none: $(cat "$W/none.csv")"
grep -Eq '^20,val,' "$W/none.csv" || fail "no val row at step 20: $(cat "$W/none.csv")"
has "^step 20/20 \| val loss $NUM"

# The last train row of a CSV (a --time-budget run logs the step that used the budget up): its lr must be
# --min-lr within one step of the cosine's end, where --steps alone would leave it near the peak.
last_lr_at_min() {  # CSV LR MIN_LR
    awk -F, -v lr="$2" -v lo="$3" '$2=="train" {x=$6} END {exit !(x >= lo && x - lo <= 0.01 * (lr - lo))}' "$1" ||
        fail "the last train row's lr is not --min-lr $3 (peak $2): $(tail -4 "$1")"
    # and it never rose after warmup (--warmup 10, logged every 10 steps)
    awk -F, '$2=="train" && $1 > 10 {if (seen && $6 > prev * 1.000001) bad=1; prev=$6; seen=1} END {exit bad}' "$1" ||
        fail "the learning rate rose during the decay: $(grep ',train,' "$1" | head -20)"
}
check "--time-budget: the schedule ends at --min-lr when the budget ends (--steps 10^6 would leave it at the peak)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers 2*softmax/mlp --steps 1000000 --warmup 10 --lr 1e-3 --min-lr 1e-4 \
    --eval-every 100000 --log-every 10 --time-budget 2 --final-eval 500 --out "$W/tb.st" --log "$W/tb.csv"
has "^time budget reached at step [0-9]+$"
last_lr_at_min "$W/tb.csv" 1e-3 1e-4
[ "$(col elapsed_s "$W/tb.csv" | tail -1 | awk '{print ($1 >= 2)}')" = 1 ] || fail "the budgeted run stopped before 2 s"
grep -q ',final,' "$W/tb.csv" || fail "no final row after the budget ended"

check "--time-budget across --resume: the budget and the decay continue from the checkpoint (train_state)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers 2*softmax/mlp --steps 1000000 --warmup 10 --lr 1e-3 --min-lr 1e-4 \
    --eval-every 100000 --log-every 10 --time-budget 2 --stop-after 100 --final-eval none --out "$W/tr.st" --log "$W/tr.csv"
expect_ok timeout 60 "$TRAIN" "$W/text.txt" --resume "$W/tr.st" --log "$W/tr.csv" --threads 1 --final-eval 500
has "^time budget reached at step [0-9]+$"
last_lr_at_min "$W/tr.csv" 1e-3 1e-4
check "a resumed run that has used its budget is refused; a larger --time-budget extends it"
expect_err 2 "has used its time budget .*--time-budget" "$TRAIN" "$W/text.txt" --resume "$W/tr.st" --threads 1
expect_ok timeout 60 "$TRAIN" "$W/text.txt" --resume "$W/tr.st" --threads 1 --time-budget 2.5 --final-eval none
has "^time budget reached at step"

check "bad values of the new flags: one line, exit 2"
expect_err 2 "--final-eval must be all, none or a number of tokens >= 1, got 'some'" \
    "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --final-eval some --out "$W/bad.st"
for v in 0 -5 1.5 "" 12x 99999999999999999999; do
    expect_err 2 "--final-eval must be all, none or a number of tokens >= 1, got '$v'" \
        "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --final-eval "$v" --out "$W/bad.st"
done
expect_err 2 "--time-budget must be in" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --time-budget -1 --out "$W/bad.st"
expect_err 2 "--time-budget" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --time-budget soon --out "$W/bad.st"
expect_err 2 "--eval-at-start takes no value" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --eval-at-start=1 --out "$W/bad.st"
[ ! -e "$W/bad.st" ] || fail "a refused run wrote a checkpoint"

check "a resumed run does not append to a log with another header (an older version's columns)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers softmax/mlp --steps 20 --stop-after 10 --out "$W/old.st"
printf 'step,split,loss\n1,train,5\n' >"$W/old.csv"
expect_err 1 "cannot append to log .*old.csv.*header" "$TRAIN" "$W/text.txt" --resume "$W/old.st" --log "$W/old.csv" --threads 1
echo "cli_logs: all checks passed"
