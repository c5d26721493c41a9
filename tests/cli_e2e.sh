#!/usr/bin/env bash
# tests/cli_e2e.sh — end to end from the command line (ARCHITECTURE.md §6, §7): train a tiny model
# with both tokenizers, check the progress/eval/final lines and the --log CSV, generate (greedy is
# deterministic, top-k >= vocab is no truncation), --eval, --info, --help, --version, and
# train --export (loads in infer with the same --eval, refused by --resume).
#   ATTNLAB_BUILD=build/release bash tests/cli_e2e.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
has() { grep -Eq -- "$1" "$W/out" || fail "stdout lacks a line matching /$1/"; }
NUM='[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'

head -c 60000 "$DATA" >"$W/text.txt"
tail -c 5000 "$W/text.txt" >"$W/eval.txt"; head -c 2000 "$W/text.txt" >"$W/prompt.txt"
TINY=(--dim 32 --heads 2 --ctx 32 --batch 4 --steps 30 --eval-every 10 --layers 2*softmax/mlp --threads 1)

for tk in byte char; do
    ck="$W/$tk.st"
    check "[$tk] train 30 steps: progress, eval and final lines; --log CSV"
    expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --tokenizer $tk --out "$ck" --log "$W/$tk.csv"
    [ ! -s "$W/err" ] || fail "train wrote to stderr on a clean run"
    # progress: step/total, loss, tokens/s, ETA
    for s in 10 20 30; do
        has "^step $s/30 \| loss $NUM \|.*\| $NUM tok/s \|.*ETA [0-9]+:[0-9]{2}:[0-9]{2}$"
    done
    # evals at 10 and 20 (the final one replaces the one at 30)
    for s in 10 20; do has "^step $s/30 \| val loss $NUM \| ppl $NUM \| bpb $NUM"; done
    has "val loss $NUM \| ppl $NUM \| bpb $NUM.*whole validation split"
    [ "$(tail -1 "$W/out")" = "checkpoint: $ck" ] || fail "the last line does not name the checkpoint"
    [ -s "$ck" ] || fail "no checkpoint written at $ck"
    if [ $tk = char ]; then has "vocab [0-9]+ \(char\)"; else has "vocab 256 \(byte\)"; fi
    V=$(grep -Eo "vocab [0-9]+ \($tk\)" "$W/out" | awk '{print $2}')
    # CSV: header row and one row per report
    csv="$W/$tk.csv"
    [ "$(head -1 "$csv")" = "step,split,loss,ppl,bpb,lr,grad_norm,tokens_per_s,ms_per_step,elapsed_s,tokens_seen,spans,pkm_usage,accuracy" ] || fail "CSV header is $(head -1 "$csv")"
    awk -F, 'NR>1 && NF!=14 {bad=1} END {exit bad}' "$csv" || fail "a CSV row does not have 14 fields: $(cat "$csv")"
    # spans and pkm_usage: empty for a model without adaptive spans or pkm layers (tests/cli_logs.sh fills them)
    awk -F, 'NR>1 && ($12 != "" || $13 != "") {bad=1} END {exit bad}' "$csv" || fail "spans/pkm_usage not empty: $(cat "$csv")"
    # tokens_seen = step·batch·ctx (TINY: batch 4, ctx 32); elapsed_s never decreases
    awk -F, 'NR>1 && $11 != $1*4*32 {bad=1} END {exit bad}' "$csv" || fail "tokens_seen is not step*4*32: $(cat "$csv")"
    awk -F, 'NR>1 && ($10 < prev || $10 < 0) {bad=1} NR>1 {prev=$10} END {exit bad}' "$csv" || fail "elapsed_s decreases: $(cat "$csv")"
    [ "$(grep -c ',train,' "$csv")" -eq 3 ] || fail "expected 3 train rows in the CSV: $(cat "$csv")"
    [ "$(grep -c ',val,' "$csv")" -eq 2 ] || fail "expected 2 val rows in the CSV: $(cat "$csv")"
    grep -Eq "^30,final,$NUM,$NUM,$NUM," "$csv" || fail "no final row in the CSV: $(cat "$csv")"
    # the printed final val loss matches the CSV to the printed precision
    pl=$(grep -Eo 'final step 30 \| val loss [0-9.]+' "$W/out" | awk '{print $NF}')
    cl=$(awk -F, '$2=="final"{printf "%.4f", $3}' "$csv")
    [ "$pl" = "$cl" ] || fail "final val loss printed $pl, CSV $cl"

    check "[$tk] generate: streamed text on stdout only, starts with the prompt, diagnostics on stderr"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 60 --temperature 0.8 --seed 7
    [ "$(head -c 6 "$W/out")" = "ROMEO:" ] || fail "generated text does not start with the prompt"
    [ "$(wc -c <"$W/out")" -ge 60 ] || fail "fewer than 60 generated tokens of text"
    grep -q "generated 60 tokens" "$W/err" || fail "no tokens/s diagnostic on stderr"
    grep -Eq "generated|tokens/s|loss" "$W/out" && fail "diagnostics leaked into stdout"
    check "[$tk] greedy (--temperature 0) is deterministic, and --top-k at/above the vocab changes nothing"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --temperature 0; cp "$W/out" "$W/g1"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --temperature 0 --seed 99; cp "$W/out" "$W/g2"
    cmp -s "$W/g1" "$W/g2" || fail "greedy generation differs between two runs"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --temperature 0 --top-k $V
    cmp -s "$W/g1" "$W/out" || fail "greedy with --top-k $V differs"
    # sampling: same seed same text; top-k = vocab and top-k far above it are the same distribution
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --seed 5 --top-k $V; cp "$W/out" "$W/s1"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --seed 5 --top-k 100000; cp "$W/out" "$W/s2"
    cmp -s "$W/s1" "$W/s2" || fail "--top-k $V and --top-k 100000 sample differently (both mean no truncation)"
    expect_ok "$INFER" "$ck" --prompt "ROMEO:" --tokens 80 --seed 5 --top-k $V; cmp -s "$W/s1" "$W/out" || fail "sampling with one seed is not repeatable"
    check "[$tk] generation past the context window (ctx 32, 200 tokens) and with no prompt"
    expect_ok "$INFER" "$ck" --tokens 200 --temperature 0
    expect_ok "$INFER" "$ck" --prompt-file "$W/prompt.txt" --tokens 10 --temperature 0

    check "[$tk] --eval prints one line: loss X | ppl Y | bpb Z"
    expect_ok "$INFER" "$ck" --eval "$W/eval.txt"
    [ "$(grep -c . "$W/out")" -eq 1 ] || fail "--eval printed more than one line"
    has "^loss $NUM \| ppl $NUM \| bpb $NUM"
    cp "$W/out" "$W/$tk.eval"
    # ppl = exp(loss) to the printed precision
    awk '{l=$2; p=$5; if (p/exp(l) > 1.001 || p/exp(l) < 0.999) exit 1}' "$W/out" || fail "ppl is not exp(loss)"

    check "[$tk] --info: config, per-layer parameter counts, training state"
    expect_ok "$INFER" "$ck" --info
    has "d 32, heads 2, ctx 32"
    has "layer 0 \(softmax/mlp\): [0-9]+"
    has "layer 1 \(softmax/mlp\): [0-9]+"
    has "total trainable: [0-9]+"
    has "\"step\":[[:space:]]*30"
    has "optimizer state: present"

    check "[$tk] train --export: no optimizer state, loads, same --eval, refused by --resume"
    expect_ok "$TRAIN" --export "$ck" "$W/$tk.export.st"
    has "checkpoint: $W/$tk.export.st"
    [ "$(wc -c <"$W/$tk.export.st")" -lt "$(wc -c <"$ck")" ] || fail "export is not smaller than the original"
    expect_ok "$INFER" "$W/$tk.export.st" --info
    has "optimizer state: absent"
    expect_ok "$INFER" "$W/$tk.export.st" --eval "$W/eval.txt"
    cmp -s "$W/out" "$W/$tk.eval" || fail "--eval of the export differs from the original's: $(cat "$W/$tk.eval")"
    expect_ok "$INFER" "$W/$tk.export.st" --prompt "ROMEO:" --tokens 80 --temperature 0
    run "$TRAIN" "$W/text.txt" --resume "$W/$tk.export.st" --steps 40 --out "$W/resumed.st"
    [ $RC -ne 0 ] && [ $RC -lt 128 ] || fail "--resume from an export should fail"
    grep -Eiq "optimizer|export" "$W/err" || fail "the refusal does not say why (optimizer state / export)"
    [ ! -e "$W/resumed.st" ] || fail "a checkpoint was written by the refused resume"
done

check "--help of both binaries lists every flag of ARCHITECTURE.md §6 with its default"
expect_ok "$TRAIN" --help
for f in layers:4*softmax/mlp dim:128 heads:4 ctx:64 batch:12 steps:2000 lr:1e-3 min-lr:1e-4 warmup:100 \
    weight-decay:0.1 beta1:0.9 beta2:0.99 grad-clip:1.0 grad-accum:1 dropout:0 tokenizer:byte eval-every:250 \
    eval-batches:20 save-every seed:1337 threads out:weights/model.safetensors log resume stop-after init-from \
    time-budget help version; do
    name=${f%%:*}; def=${f#*:}
    grep -Eq -- "^ *--$name( |$)" "$W/out" || fail "train --help does not list --$name"
    if [ "$def" != "$f" ]; then
        grep -E -- "^ *--$name( |$)" "$W/out" | grep -Fq "[$def]" || fail "train --help does not give --$name's default [$def]"
    fi
done
grep -q -- "--export" "$W/out" || fail "train --help does not mention --export"
expect_ok "$INFER" --help
for f in prompt prompt-file tokens:500 temperature:0.8 top-k:200 top-p:1.0 seed eval info spans threads help version; do
    name=${f%%:*}; def=${f#*:}
    grep -Eq -- "^ *--$name( |$)" "$W/out" || fail "infer --help does not list --$name"
    if [ "$def" != "$f" ]; then
        grep -E -- "^ *--$name( |$)" "$W/out" | grep -Fq "[$def]" || fail "infer --help does not give --$name's default [$def]"
    fi
done
check "--version of both binaries: one line with a version number, exit 0"
for b in "$TRAIN" "$INFER"; do
    expect_ok "$b" --version
    [ "$(grep -c . "$W/out")" -eq 1 ] || fail "--version printed more than one line"
    has "[0-9]+\.[0-9]+"
done

echo "cli_e2e: all checks passed"
