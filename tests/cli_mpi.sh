#!/usr/bin/env bash
# tests/cli_mpi.sh — MPI data parallel (docs/mpi.md) under `mpirun --oversubscribe -np 2`:
#  - -np 2 with --batch B equals one process with --batch B: every step's loss and every evaluation within
#    1e-5 relative, the final checkpoint's tensors within 1e-5 + 1e-3·|x| (one model holding the kinds with
#    state of their own: adaptive spans with a pkm ffn — sparse value rows —, a performer redrawing its
#    features; --grad-accum 2, clipping on); the same for --streams and --task mqar;
#  - the ranks' weights are bit-identical at the end (train's own check, "identical on all 2 ranks"), and
#    rank 0 alone prints and writes;
#  - with --dropout (a stream per rank) a run is deterministic and resumes exactly: 12 steps equal 6, save,
#    --resume, 6, bit for bit;
#  - bad input: --batch not a multiple of the ranks, --memory, --prepare, resuming with another rank count
#    (both ways) are exit 2 with one message; a rank killed mid-run ends the run with a message from mpirun,
#    the last checkpoint intact and resumable; SIGTERM to one rank stops every rank after the same step,
#    saved by rank 0, exit 130.
# Needs a train built with MPI (the default when mpicc is found; setup.sh installs OpenMPI): without it
# the test fails, saying so — it never skips.
#   ATTNLAB_BUILD=build/release bash tests/cli_mpi.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

command -v mpirun >/dev/null ||
    { echo "FAIL: mpirun not found: install openmpi-bin and libopenmpi-dev (bash setup.sh test does), then make"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI containers run as root
MPI2=(mpirun --oversubscribe -np 2)

check "train is built with MPI"
run "${MPI2[@]}" "$TRAIN" --version
grep -q "built without MPI" "$W/err" &&
    fail "this train was built without MPI: install libopenmpi-dev and openmpi-bin (bash setup.sh test does) and rebuild (make MPI=1)"
[ $RC -eq 0 ] || fail "mpirun -np 2 train --version failed"

head -c 50000 "$DATA" >"$W/text.txt"
SMALL=(--dim 32 --heads 2 --ctx 16 --warmup 5 --log-every 1 --threads 1)

# Compare two runs (tests/ckpt_tool.py): `close` — the CSV rows (train and val/final losses, step by step)
# within 1e-5 relative and the checkpoints' tensors within 1e-5 + 1e-3·|x|; `same` — every tensor and the
# metadata bit for bit (without the wall-clock train_state.elapsed_s).

# same_as_one NAME ARGS...: one process and -np 2 with the same flags; the comparison above.
same_as_one() {
    local n=$1; shift
    expect_ok "$TRAIN" "$@" --out "$W/$n-1.st" --log "$W/$n-1.csv"
    expect_ok "${MPI2[@]}" "$TRAIN" "$@" --out "$W/$n-2.st" --log "$W/$n-2.csv"
    cp "$W/out" "$W/$n-2.out"
    $PY tests/ckpt_tool.py close "$W/$n-1.csv" "$W/$n-2.csv" "$W/$n-1.st" "$W/$n-2.st" >"$W/cmp.out" ||
        fail "-np 2 differs from one process: $(cat "$W/cmp.out")"
    echo "  $n: $(cat "$W/cmp.out")"
}

check "-np 2 equals one process: adaptive/pkm + performer(redraw), grad-accum 2, clipping"
KINDS="adaptive(span=16,ramp=4)/pkm(slots=64,k=4,heads=2,dk=16),performer(features=16,redraw=4)/mlp"
same_as_one kinds "$W/text.txt" "${SMALL[@]}" --batch 4 --steps 24 --eval-every 8 --eval-batches 4 --grad-accum 2 --grad-clip 0.5 --layers "$KINDS"
grep -q "mpi: 2 ranks, 2 rows of each batch per rank" "$W/kinds-2.out" || fail "no line saying how the batch is split"
grep -q "weights and AdamW moments identical on all 2 ranks at step 24" "$W/kinds-2.out" || fail "no check that the ranks' weights are identical"
[ "$(grep -c '^final step' "$W/kinds-2.out")" = 1 ] || fail "expected one final evaluation line (rank 0 alone prints)"
grep -q "pkm" "$W/kinds-2.out" || fail "no pkm slot usage line after the final evaluation"

check "-np 2 equals one process: --streams, and --task mqar"
same_as_one streams "$W/text.txt" "${SMALL[@]}" --batch 4 --steps 12 --eval-every 6 --eval-batches 4 --layers 2*softmax/mlp --streams
same_as_one mqar --task mqar --mqar-len 32 --mqar-pairs 4 --mqar-vocab 64 --mqar-eval-seqs 16 --dim 32 --heads 2 --batch 4 \
    --warmup 5 --log-every 1 --threads 1 --steps 12 --eval-every 6 --layers 2*softmax/mlp

check "-np 2 with dropout resumes exactly: 12 steps == 6 + --resume 6, bit for bit"
DROP=("$W/text.txt" "${SMALL[@]}" --batch 4 --steps 12 --eval-every 6 --eval-batches 2 --dropout 0.1 --layers "softmax/pkm(slots=64,k=4,heads=2,dk=16)")
expect_ok "${MPI2[@]}" "$TRAIN" "${DROP[@]}" --out "$W/full.st"
expect_ok "${MPI2[@]}" "$TRAIN" "${DROP[@]}" --out "$W/half.st" --stop-after 6
expect_ok "${MPI2[@]}" "$TRAIN" "$W/text.txt" --resume "$W/half.st" --threads 1
$PY tests/ckpt_tool.py same "$W/full.st" "$W/half.st" >"$W/cmp.out" || fail "resumed -np 2 run differs: $(cat "$W/cmp.out")"
grep -q '"mpi_ranks":2' <(head -c 20000 "$W/full.st" | tr -d ' \t\\') || fail "train_state does not record mpi_ranks 2"

# mpi_err CODE REGEX CMD...: that status, and every "attnlab:" line (one per rank) the same, matching REGEX.
mpi_err() {
    local code=$1 re=$2; shift 2
    run "$@"
    [ $RC -eq "$code" ] || fail "expected exit status $code"
    local lines; lines=$(grep '^attnlab:' "$W/err" | sort -u)
    [ -n "$lines" ] && [ "$(printf '%s\n' "$lines" | wc -l)" -eq 1 ] || fail "expected one message (the same on every rank)"
    grep -Eq -- "$re" <<<"$lines" || fail "stderr does not match /$re/"
}

check "bad input under mpirun: --batch not split evenly, --memory, --prepare"
mpi_err 2 "--batch 3 does not split over 2 MPI ranks" "${MPI2[@]}" "$TRAIN" "$W/text.txt" "${SMALL[@]}" --batch 3 --out "$W/bad.st"
mpi_err 2 "--memory runs as one process" "${MPI2[@]}" "$TRAIN" "$W/text.txt" "${SMALL[@]}" --batch 4 --memory 16 --pos rope --out "$W/bad.st"
mpi_err 2 "--prepare runs as one process" "${MPI2[@]}" "$TRAIN" --prepare "$W/text.txt" "$W/bad.shard"
[ -e "$W/bad.st" ] && fail "a refused run wrote a checkpoint"

check "resuming with another rank count is refused, both ways"
expect_err 2 "trained with 2 MPI ranks and resumes only with as many \(mpirun -np 2\); this run has 1" \
    "$TRAIN" "$W/text.txt" --resume "$W/half.st" --steps 14
expect_ok "$TRAIN" "$W/text.txt" "${SMALL[@]}" --batch 4 --steps 4 --layers 2*softmax/mlp --out "$W/one.st"
mpi_err 2 "trained as one process; resume it without mpirun" "${MPI2[@]}" "$TRAIN" "$W/text.txt" --resume "$W/one.st" --steps 6

check "a rank killed mid-run: mpirun ends the run with a message; the last checkpoint is intact and resumes"
"${MPI2[@]}" "$TRAIN" "$W/text.txt" "${SMALL[@]}" --batch 4 --steps 1000000 --save-every 20 --layers 2*softmax/mlp \
    --out "$W/kill.st" >"$W/kill.out" 2>"$W/kill.err" &
mp=$!
for _ in $(seq 200); do [ -f "$W/kill.st" ] && break; sleep 0.1; done
[ -f "$W/kill.st" ] || { kill "$mp"; fail "no checkpoint within 20 s"; }
victim=""
for p in $(pgrep -P "$mp"); do grep -qz '^OMPI_COMM_WORLD_RANK=1$' "/proc/$p/environ" 2>/dev/null && victim=$p; done
[ -n "$victim" ] || { kill "$mp"; fail "rank 1's process not found among mpirun's children"; }
kill -9 "$victim"
for _ in $(seq 200); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mp" 2>/dev/null && { kill -9 "$mp"; fail "mpirun still running 20 s after rank 1 was killed"; }
wait "$mp"; RC=$?
[ $RC -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
grep -q "exited on signal 9" "$W/kill.err" || { cat "$W/kill.err"; fail "mpirun did not say that rank 1 was killed"; }
expect_ok "$INFER" "$W/kill.st" --info
at=$(grep -o '"step":[[:space:]]*[0-9]*' "$W/out" | grep -o '[0-9]*$')
[ -n "$at" ] && [ "$at" -ge 20 ] && [ $((at % 20)) -eq 0 ] || fail "the checkpoint's step ($at) is not a --save-every step"
expect_ok "${MPI2[@]}" "$TRAIN" "$W/text.txt" --resume "$W/kill.st" --steps $((at + 2)) --threads 1
grep -q "resuming .* at step $at of" "$W/out" || fail "the resumed run did not start at step $at"

check "SIGTERM to rank 1 alone: every rank stops after the same step, rank 0 saves it, exit 130"
"${MPI2[@]}" "$TRAIN" "$W/text.txt" "${SMALL[@]}" --batch 4 --steps 1000000 --save-every 100000 --layers 2*softmax/mlp \
    --out "$W/term.st" >"$W/term.out" 2>"$W/term.err" &
mp=$!
for _ in $(seq 200); do grep -q '^step 20/' "$W/term.out" 2>/dev/null && break; sleep 0.1; done
victim=""
for p in $(pgrep -P "$mp"); do grep -qz '^OMPI_COMM_WORLD_RANK=1$' "/proc/$p/environ" 2>/dev/null && victim=$p; done
[ -n "$victim" ] || { kill "$mp"; fail "rank 1's process not found among mpirun's children"; }
kill -TERM "$victim"
for _ in $(seq 200); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mp" 2>/dev/null && { kill -9 "$mp"; fail "mpirun still running 20 s after SIGTERM to rank 1"; }
wait "$mp"; RC=$?
[ $RC -eq 130 ] || { cat "$W/term.err"; fail "expected exit status 130 after SIGTERM, got $RC"; }
at=$(sed -n 's/^interrupted at step \([0-9]*\)$/\1/p' "$W/term.out")
[ -n "$at" ] || fail "no 'interrupted at step N' line"
grep -q "identical on all 2 ranks at step $at " "$W/term.out" || fail "the ranks did not stop at the same step $at"
expect_ok "$INFER" "$W/term.st" --info
grep -Eq '"step":[[:space:]]*'"$at"',' "$W/out" || fail "the checkpoint does not hold step $at"

echo "ok"
