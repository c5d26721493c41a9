#!/usr/bin/env bash
# tests/cli_resume.sh — resume exactness and determinism from the command line (ARCHITECTURE.md §6,
# §7): N steps == N/2 steps (--stop-after) + --resume to N, with the same per-step losses, evals and
# final --eval, bit for bit on the printed values; the same seed and --threads give the same
# checkpoint; another seed does not; the same with --dropout 0.1; conflicting model flags on
# --resume are exit 2 naming the flag; --steps extends a finished run.
#   ATTNLAB_BUILD=build/release bash tests/cli_resume.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

head -c 40000 "$DATA" >"$W/text.txt"
head -c 6000 "$W/text.txt" >"$W/eval.txt"
N=20; H=$((N / 2))
BASE=(--dim 32 --heads 2 --ctx 16 --batch 4 --steps $N --eval-every 5 --log-every 1 --layers 2*softmax/mlp --warmup 5)

# The deterministic part of a train run's stdout: step/loss/lr/grad-norm and eval values, without
# timings (tok/s, ms/step, elapsed, ETA, seconds).
losses() {
    sed -E -e 's/ \| [0-9.]+ tok\/s.*$//' -e 's/, [0-9.]+s\)$/)/' "$1" | grep -E '^(step|final step) '
}
# The CSV without its timing columns.
csvcore() { cut -d, -f1-7 "$1"; }

# Compare two checkpoints: every tensor bit for bit and every metadata value, except the wall-clock
# training time train_state.elapsed_s. Prints the first difference (tests/ckpt_tool.py).
same_ckpt() { "$PY" tests/ckpt_tool.py same "$1" "$2"; }

# ---------------------------------------------------------------------------------------------
# resume exactness

resume_case() {  # resume_case TAG EXTRA...: one run of N vs N/2 + resume, with the same flags
    local tag=$1; shift
    check "[$tag] one run of $N steps"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --threads 1 "$@" --out "$W/$tag.full.st" --log "$W/$tag.full.csv"
    cp "$W/out" "$W/$tag.full.out"
    check "[$tag] $H steps (--stop-after $H --steps $N), then --resume to $N"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --threads 1 "$@" --stop-after $H --out "$W/$tag.half.st" --log "$W/$tag.half.csv"
    cp "$W/out" "$W/$tag.half.out"
    grep -q "^step $H/$N | loss" "$W/out" || fail "the first half did not stop at step $H"
    grep -q "^step $((H + 1))/" "$W/out" && fail "the first half ran past --stop-after"
    grep -q "^final step" "$W/out" && fail "--stop-after ran the final evaluation (it belongs to the end of the schedule)"
    cp "$W/$tag.half.st" "$W/$tag.mid.st"
    expect_ok "$TRAIN" "$W/text.txt" --resume "$W/$tag.half.st" --threads 1 --log-every 1 --out "$W/$tag.half.st" --log "$W/$tag.half.csv"
    cat "$W/out" >>"$W/$tag.half.out"
    grep -q "^step $N/$N | loss" "$W/out" || fail "the resumed run did not reach step $N"

    check "[$tag] the per-step losses, lr, grad norms and evals are identical"
    losses "$W/$tag.full.out" >"$W/a"; losses "$W/$tag.half.out" >"$W/b"
    [ "$(grep -c '| loss' "$W/a")" -eq $N ] || fail "expected $N progress lines in the full run: $(cat "$W/a")"
    diff "$W/a" "$W/b" >"$W/d" || fail "[$tag] N steps != N/2 + resume:
$(head -20 "$W/d")"
    check "[$tag] the --log CSVs agree (header once, same rows)"
    csvcore "$W/$tag.full.csv" >"$W/a"; csvcore "$W/$tag.half.csv" >"$W/b"
    diff "$W/a" "$W/b" >"$W/d" || fail "[$tag] CSV differs:
$(head -20 "$W/d")"
    [ "$(grep -c '^step,' "$W/$tag.half.csv")" -eq 1 ] || fail "the resumed log repeated its header"
    check "[$tag] the final checkpoints have identical tensors and state, and the same --eval"
    same_ckpt "$W/$tag.full.st" "$W/$tag.half.st" || fail "[$tag] final checkpoints differ"
    expect_ok "$INFER" "$W/$tag.full.st" --eval "$W/eval.txt" --threads 1; cp "$W/out" "$W/a"
    expect_ok "$INFER" "$W/$tag.half.st" --eval "$W/eval.txt" --threads 1
    cmp -s "$W/a" "$W/out" || fail "[$tag] --eval differs: $(cat "$W/a") vs $(cat "$W/out")"
}
resume_case plain
resume_case dropout --dropout 0.1

check "[grad-accum 2] resume is exact with gradient accumulation too"
resume_case accum --grad-accum 2

# ---------------------------------------------------------------------------------------------
# determinism

det_case() {  # det_case TAG THREADS EXTRA...
    local tag=$1 th=$2; shift 2
    check "[$tag] the same seed and --threads $th give identical checkpoints"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --threads "$th" "$@" --out "$W/$tag.1.st"; losses "$W/out" >"$W/$tag.1.l"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --threads "$th" "$@" --out "$W/$tag.2.st"; losses "$W/out" >"$W/$tag.2.l"
    diff "$W/$tag.1.l" "$W/$tag.2.l" >"$W/d" || fail "[$tag] two identical runs print different losses:
$(head -10 "$W/d")"
    same_ckpt "$W/$tag.1.st" "$W/$tag.2.st" || fail "[$tag] two identical runs wrote different checkpoints"
    # Byte-for-byte identity of the files is impossible while train_state.elapsed_s (wall-clock
    # seconds) is stored; everything else is compared above.
}
det_case t1 1
det_case t2 2
det_case t2drop 2 --dropout 0.1
check "a different seed gives a different checkpoint"
expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --threads 1 --seed 7 --out "$W/seed7.st"
same_ckpt "$W/t1.1.st" "$W/seed7.st" >/dev/null && fail "--seed 7 gave the same checkpoint as --seed 1337"
"$PY" tests/ckpt_tool.py tensor-differs "$W/t1.1.st" "$W/seed7.st" wte || fail "--seed 7 and --seed 1337 have the same weights"
check "dropout 0.1 and dropout 0 differ (dropout is really applied)"
same_ckpt "$W/t2.1.st" "$W/t2drop.1.st" >/dev/null && fail "--dropout 0.1 changed nothing"

# ---------------------------------------------------------------------------------------------
# resume with flags

check "--resume with a conflicting model flag (--dim) is exit 2 naming the flag; --out untouched"
cp "$W/plain.mid.st" "$W/mid.copy"
for bad in "--dim 64" "--heads 4" "--layers 1*softmax/mlp" "--tokenizer char" "--lr 5e-3"; do
    run "$TRAIN" "$W/text.txt" --resume "$W/plain.mid.st" --out "$W/plain.mid.st" --threads 1 $bad
    [ $RC -eq 2 ] || fail "expected exit status 2 for $bad"
    [ "$(grep -c . "$W/err")" -eq 1 ] || fail "expected one line on stderr"
    grep -q -- "${bad%% *}" "$W/err" || fail "the message does not name ${bad%% *}"
    cmp -s "$W/plain.mid.st" "$W/mid.copy" || fail "the checkpoint was changed by a refused resume"
done
check "--resume with the same model flags given again is accepted"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/plain.mid.st" --out "$W/same-flags.st" --threads 1 --dim 32 --heads 2 --ctx 16

check "--steps extends a finished run; without it, resuming a finished run is exit 2"
run "$TRAIN" "$W/text.txt" --resume "$W/plain.full.st" --out "$W/ext.st" --threads 1
[ $RC -eq 2 ] || fail "resuming a finished run without a larger --steps should be exit 2"
grep -q -- "--steps" "$W/err" || fail "the message should point at --steps"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/plain.full.st" --out "$W/ext.st" --threads 1 --steps $((N + 6))
grep -q "^resuming .* at step $N of $((N + 6))" "$W/out" || fail "no 'resuming ... at step $N of $((N + 6))' line"
grep -q "^step $((N + 6))/$((N + 6)) | loss" "$W/out" || fail "the extended run did not reach step $((N + 6))"
grep -q "^final step $((N + 6))" "$W/out" || fail "the extended run did not run its final evaluation"
expect_ok "$INFER" "$W/ext.st" --info
grep -Eq "\"step\":[[:space:]]*$((N + 6))" "$W/out" || fail "the extended checkpoint does not record step $((N + 6))"

echo "cli_resume: all checks passed"
