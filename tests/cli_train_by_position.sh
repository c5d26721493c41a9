#!/usr/bin/env bash
# tests/cli_train_by_position.sh — `train --by-position CSV` (docs/logs.md): the final evaluation's loss
# by visible context, bucketed as `infer --eval --by-position` buckets it.
#  - train's final evaluation scores the same windows as infer's: windows mode (eval_sequence's windows,
#    each starting empty) for a memory-free model, memory mode for a --memory model. With infer --batch
#    equal to train's --batch the forwards are the same, so the two CSVs are identical byte for byte
#    (a memory model runs one segment per forward in both);
#  - the buckets are the expected ones (a planted off-by-one bucket fails here), partition the scored
#    targets, and their token-weighted mean loss is the final line's val loss (to its 4 decimals);
#  - --final-eval N buckets the first N targets; under MPI (-np 2, windows dealt out to the ranks) the
#    buckets are summed over the ranks: the same counts, losses within 1e-4 relative (the -np 2 training
#    equals one process within 1e-5);
#  - no final evaluation (--final-eval none, --stop-after), no CSV and one line on stderr; --resume
#    to the end writes it;
#  - bad input: --task mqar (exit 2), an output that is the training file, --val, --log, or lies in a
#    missing directory (exit 1), each one line.
#   ATTNLAB_BUILD=build/release bash tests/cli_train_by_position.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

head -c 40000 "$DATA" >"$W/text.txt"
tail -c 3001 "$W/text.txt" >"$W/val.txt"   # byte tokenizer: 3001 tokens, 3000 targets
T=$W/text.txt
RUN=(--val "$W/val.txt" --dim 32 --heads 2 --ctx 32 --batch 4 --steps 20 --eval-every 20 --layers 2*softmax/mlp
     --tokenizer byte --threads 1)
rows() { awk -F, 'NR > 1 {print $1, $2, $3, $4}' "$1"; }  # "lo hi tokens bytes"
final_loss() { grep -Eo '^final step [0-9]+ \| val loss [0-9.]+' "$1" | awk '{print $NF}'; }
# the buckets partition the targets (their tokens sum to N) and their token-weighted mean loss is the
# final line's val loss
partition() {  # CSV N
    local t l v
    [ "$(head -1 "$1")" = "context_lo,context_hi,tokens,bytes,loss,bpb" ] || fail "CSV header: $(head -1 "$1")"
    t=$(awk -F, 'NR > 1 {s += $3} END {print s}' "$1")
    l=$(awk -F, 'NR > 1 {n += $3; s += $3 * $5} END {printf "%.4f", s / n}' "$1")
    v=$(final_loss "$W/out")
    [ "$t" = "$2" ] || fail "bucket tokens sum to $t, not $2"
    [ -n "$v" ] && [ "$l" = "$v" ] || fail "bucket-weighted loss $l; final val loss '$v'"
}

check "memory-free model: windows mode, the buckets of 93 full windows of 32 and one of 24; infer's CSV exactly"
expect_ok "$TRAIN" "$T" "${RUN[@]}" --out "$W/m.st" --by-position "$W/m.csv"
partition "$W/m.csv" 3000
want=$'1 1 94 94\n2 3 188 188\n4 7 376 376\n8 15 752 752\n16 31 1497 1497\n32 63 93 93'
[ "$(rows "$W/m.csv")" = "$want" ] || fail "windows buckets: $(rows "$W/m.csv")"
expect_ok "$INFER" "$W/m.st" --eval "$W/val.txt" --batch 4 --threads 1 --by-position --by-position-out "$W/im"
cmp -s "$W/m.csv" "$W/im.csv" || fail "train's CSV differs from infer's: $(diff "$W/m.csv" "$W/im.csv")"

check "memory model (--pos rope --memory 48): memory mode, segment w > 1 sees 48 + i + 1 tokens; infer's CSV exactly"
expect_ok "$TRAIN" "$T" "${RUN[@]}" --pos rope --memory 48 --out "$W/mm.st" --by-position "$W/mm.csv"
grep -q "memory mode M 48" "$W/out" || fail "the final evaluation was not in memory mode"
partition "$W/mm.csv" 3000
# segment 0: 1..32; segment 1: 33..64; segments 2..92: 49..80; segment 93 (24 targets): 49..72
want=$'1 1 1 1\n2 3 2 2\n4 7 4 4\n8 15 8 8\n16 31 16 16\n32 63 1412 1412\n64 127 1557 1557'
[ "$(rows "$W/mm.csv")" = "$want" ] || fail "memory buckets: $(rows "$W/mm.csv")"
run "$INFER" "$W/mm.st" --eval "$W/val.txt" --threads 1 --by-position --by-position-out "$W/imm"
[ $RC -eq 0 ] && grep -q "memory mode" "$W/err" || fail "infer did not evaluate in memory mode"
cmp -s "$W/mm.csv" "$W/imm.csv" || fail "train's CSV differs from infer's: $(diff "$W/mm.csv" "$W/imm.csv")"

check "--final-eval 100: the buckets of the first 100 targets (3 windows of 32 and one of 4)"
expect_ok "$TRAIN" "$T" "${RUN[@]}" --final-eval 100 --out "$W/n.st" --by-position "$W/n.csv"
partition "$W/n.csv" 100
want=$'1 1 4 4\n2 3 8 8\n4 7 13 13\n8 15 24 24\n16 31 48 48\n32 63 3 3'
[ "$(rows "$W/n.csv")" = "$want" ] || fail "--final-eval 100 buckets: $(rows "$W/n.csv")"

check "no final evaluation: no CSV, one line on stderr; --resume to the last step writes it"
expect_ok "$TRAIN" "$T" "${RUN[@]}" --final-eval none --out "$W/x.st" --by-position "$W/x.csv"
[ ! -e "$W/x.csv" ] || fail "--final-eval none wrote a CSV"
[ "$(grep -c . "$W/err")" -eq 1 ] && grep -q "no --by-position CSV: --final-eval none" "$W/err" || fail "no line saying so"
expect_ok "$TRAIN" "$T" "${RUN[@]}" --stop-after 10 --out "$W/s.st" --by-position "$W/s.csv"
[ ! -e "$W/s.csv" ] || fail "--stop-after wrote a CSV"
[ "$(grep -c . "$W/err")" -eq 1 ] && grep -q "no --by-position CSV: the run stopped at step 10 of --steps 20" "$W/err" ||
    fail "no line saying so"
expect_ok "$TRAIN" "$T" --resume "$W/s.st" --threads 1 --by-position "$W/s.csv"
partition "$W/s.csv" 3000

check "bad input: one line; --task mqar exit 2, a clashing or unwritable output exit 1"
expect_err 2 "--by-position has no meaning with --task mqar" "$TRAIN" --task mqar --steps 2 --out "$W/q.st" --by-position "$W/q.csv"
expect_err 1 "cannot write --by-position '.*': directory '.*/nodir' does not exist" \
    "$TRAIN" "$T" "${RUN[@]}" --out "$W/b.st" --by-position "$W/nodir/b.csv"
expect_err 1 "cannot write --by-position '.*': it is the same file as the training file" \
    "$TRAIN" "$T" "${RUN[@]}" --out "$W/b.st" --by-position "$T"
expect_err 1 "cannot write --by-position '.*': it is the same file as --val" \
    "$TRAIN" "$T" "${RUN[@]}" --out "$W/b.st" --by-position "$W/val.txt"
expect_err 1 "cannot write --by-position '.*': it is the same file as --log" \
    "$TRAIN" "$T" "${RUN[@]}" --out "$W/b.st" --log "$W/b.csv" --by-position "$W/b.csv"
[ ! -e "$W/b.st" ] || fail "a refused run trained"

if command -v mpirun >/dev/null && ! mpirun --oversubscribe -np 1 "$TRAIN" --version 2>&1 | grep -q "built without MPI"; then
    check "MPI -np 2: the windows dealt out to the ranks, the buckets summed: the same counts, losses within 1e-4 relative"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    expect_ok mpirun --oversubscribe -np 2 "$TRAIN" "$T" "${RUN[@]}" --out "$W/p.st" --by-position "$W/p.csv"
    grep -q "identical on all 2 ranks" "$W/out" || fail "not a 2-rank run"
    partition "$W/p.csv" 3000
    [ "$(rows "$W/p.csv")" = "$(rows "$W/m.csv")" ] || fail "MPI buckets: $(rows "$W/p.csv")"
    paste -d, "$W/p.csv" "$W/m.csv" | awk -F, 'NR > 1 {d = $5 - $11; if (d < 0) d = -d; if (d > 1e-4 * $11) exit 1}' ||
        fail "MPI bucket losses differ: $(paste -d, "$W/p.csv" "$W/m.csv")"
fi
echo "all train --by-position checks passed"
