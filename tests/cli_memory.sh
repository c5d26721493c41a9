#!/usr/bin/env bash
# tests/cli_memory.sh — segment memory (`--memory M`, LONG_CONTEXT.md §2–§3) from the command line:
# bad input refused with one line (exit 2); the checkpoint's config "memory" and memory.state.<i>
# tensors (dropped by --export); --resume ends byte-identical to an uninterrupted run, stopped with a
# partly filled memory and resumed across a stream wrap (also with --grad-accum 2 and dropout); a
# hostile training state refused with one line (exit 1); infer --eval names its mode, memory mode with
# M ≥ the text equals one window over it, its by-position buckets are min(j, M+i)+1; generation
# past ctx.
#   ATTNLAB_BUILD=build/release bash tests/cli_memory.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

# 200 bytes: 180 training tokens in 2 streams of 90, ⌊89/16⌋ = 5 segments of 16 per cycle, so the
# streams wrap (and the memory is cleared) before segments 5 and 10; 20 validation tokens.
head -c 200 "$DATA" >"$W/text.txt"
N=12; H=6   # stopped after segment 5 (just wrapped: memory n = 16 of 32), resumed across the wrap at 10
BASE=(--dim 32 --heads 2 --ctx 16 --batch 2 --eval-every 4 --eval-batches 1 --log-every 1 --warmup 3
      --layers 2*softmax/mlp --pos rope --memory 32 --threads 1)

# ckpt_json CKPT: "config {...}", "state {...}" and "tensor NAME SHAPE" lines (tests/ckpt_tool.py)
ckpt_json() { "$PY" tests/ckpt_tool.py header "$1"; }
# The deterministic part of a train run's stdout (no timings).
losses() { sed -E -e 's/ \| [0-9.]+ tok\/s.*$//' -e 's/, [0-9.]+s\)$/)/' "$1" | grep -E '^(step|final step) '; }
# Two checkpoints identical: every tensor bit for bit, every metadata value.
same_ckpt() { "$PY" tests/ckpt_tool.py same "$1" "$2"; }
# surgery SRC OUT PYTHON: OUT is SRC with the header dict h (tensors and "__metadata__") and the
# train_state dict st changed by PYTHON.
surgery() { "$PY" tests/ckpt_tool.py surgery "$1" "$2" "$3" || fail "surgery failed"; }

# ---------------------------------------------------------------------------------------------
check "bad input: one line, exit 2"
expect_err 2 "train: --memory needs relative positions.*use --pos rope or --pos none" \
    "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 2 --steps 2 --memory 32 --out "$W/x.st"
expect_err 2 "--memory must be in \[0, 1048576\], got -1" \
    "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 2 --steps 2 --pos rope --memory -1 --out "$W/x.st"
expect_err 2 "train: the training split's 180 tokens in 16 streams of 11 tokens: a stream needs at least ctx\+1 = 17; use a smaller --batch or --ctx" \
    "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 16 --steps 2 --pos rope --memory 32 --out "$W/x.st"
[ -e "$W/x.st" ] && fail "a refused run wrote a checkpoint"

# ---------------------------------------------------------------------------------------------
check "train --memory 32: the config says memory, the file holds each mixer's state; memory-free has neither"
expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --steps $N --out "$W/full.st"
cp "$W/out" "$W/full.out"
grep -q "| memory 32$" "$W/out" || fail "the model line does not say memory 32"
grep -q "| 2 streams of 90 tokens$" "$W/out" || fail "the data line does not give the streams"
grep -q "^step 4/$N | val loss .*(memory mode, M 32: the first 20 validation tokens)$" "$W/out" ||
    fail "the periodic validation does not say memory mode over its stretch"
grep -Eq "^final step $N \| val loss .*\(whole validation split, memory mode M 32, 19 tokens, [0-9.]+s\)$" "$W/out" ||
    fail "the final evaluation does not say memory mode"
ckpt_json "$W/full.st" >"$W/j" || fail "cannot read the checkpoint"
grep -q '^config .*"memory":32' "$W/j" || fail "config lacks memory 32: $(head -1 "$W/j")"
grep -q '"memory_offset":' "$W/j" || fail "train_state lacks memory_offset"
[ "$(grep -c '^tensor memory\.state\.' "$W/j")" -eq 2 ] || fail "expected memory.state.0 and .2 (the two mixers)"
grep -q '^tensor memory.state.0 ' "$W/j" && grep -q '^tensor memory.state.2 ' "$W/j" || fail "state tensors misnamed"
expect_ok "$TRAIN" "$W/text.txt" --dim 32 --heads 2 --ctx 16 --batch 2 --steps 2 --eval-every 1 --layers 2*softmax/mlp --pos rope --threads 1 --out "$W/free.st"
ckpt_json "$W/free.st" >"$W/j"
grep -q '"memory' "$W/j" && fail "a memory-free checkpoint mentions memory"
grep -q "val loss .*random windows" "$W/out" || fail "memory-free periodic validation is not random windows"

check "--export drops the memory state with the moments; infer --info names the memory"
expect_ok "$TRAIN" --export "$W/full.st" "$W/export.st"
ckpt_json "$W/export.st" >"$W/j"
grep -q '^tensor memory\.state' "$W/j" && fail "the export kept memory.state tensors"
grep -q '^tensor adam\.' "$W/j" && fail "the export kept moments"
expect_ok "$INFER" "$W/export.st" --info
grep -qx "segment memory: 32 tokens" "$W/out" || fail "infer --info does not name the memory"

# ---------------------------------------------------------------------------------------------
resume_case() {  # TAG STEPS STOP EXTRA...: STEPS steps vs STOP steps + --resume: same stdout values, same checkpoint
    local tag=$1 steps=$2 stop=$3; shift 3
    check "[$tag] $steps steps == $stop steps (memory partly filled, just after a wrap) + --resume across the next wrap"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --steps "$steps" "$@" --out "$W/$tag.full.st"
    losses "$W/out" >"$W/$tag.full.l"
    expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --steps "$steps" "$@" --stop-after "$stop" --out "$W/$tag.half.st"
    losses "$W/out" >"$W/$tag.half.l"
    ckpt_json "$W/$tag.half.st" | grep -q '"memory_n":16,' || fail "[$tag] the stopped run's memory is not partly filled (n 16)"
    cp "$W/$tag.half.st" "$W/$tag.mid.st"
    expect_ok "$TRAIN" "$W/text.txt" --resume "$W/$tag.half.st" --threads 1
    losses "$W/out" >>"$W/$tag.half.l"
    grep -q "^resuming " "$W/out" || fail "[$tag] did not resume"
    diff "$W/$tag.full.l" "$W/$tag.half.l" >"$W/diff" || { cat "$W/diff"; fail "[$tag] the resumed run's values differ"; }
    same_ckpt "$W/$tag.full.st" "$W/$tag.half.st" || fail "[$tag] the resumed checkpoint differs from the uninterrupted one"
}
resume_case plain $N $H
resume_case accum $((N / 2)) $((H / 2)) --grad-accum 2 --dropout 0.1
check "--streams without memory: the memory run's batches (step 1 equal, memory still empty), not random windows; exact resume across a wrap"
NOMEM=()
skip=0
for a in "${BASE[@]}"; do
    if [ $skip = 1 ]; then skip=0; elif [ "$a" = --memory ]; then skip=1; else NOMEM+=("$a"); fi
done
expect_ok "$TRAIN" "$W/text.txt" "${NOMEM[@]}" --streams --steps "$N" --out "$W/streams.full.st"
grep -q "| 2 streams of 90 tokens$" "$W/out" || fail "--streams: the data line does not name the streams"
losses "$W/out" >"$W/streams.full.l"
step1() { grep -m1 '^step 1/' "$1"; }
[ "$(step1 "$W/streams.full.l")" = "$(step1 "$W/plain.full.l")" ] || fail "--streams step 1 differs from the memory run's: $(step1 "$W/streams.full.l")"
expect_ok "$TRAIN" "$W/text.txt" "${NOMEM[@]}" --steps "$N" --out "$W/windows.st"
losses "$W/out" >"$W/windows.l"
[ "$(step1 "$W/windows.l")" = "$(step1 "$W/streams.full.l")" ] && fail "--streams reads the same first batch as random windows"
expect_ok "$TRAIN" "$W/text.txt" "${NOMEM[@]}" --streams --steps "$N" --stop-after "$H" --out "$W/streams.half.st"
losses "$W/out" >"$W/streams.half.l"
ckpt_json "$W/streams.half.st" | grep -q '"memory_offset":16,"memory_n":0,"memory_pos0":16' ||
    fail "--streams: the stopped run (just wrapped) does not record stream offset 16, n 0: $(ckpt_json "$W/streams.half.st" | grep state)"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/streams.half.st" --threads 1
losses "$W/out" >>"$W/streams.half.l"
diff "$W/streams.full.l" "$W/streams.half.l" >"$W/diff" || { cat "$W/diff"; fail "--streams: the resumed run's values differ"; }
same_ckpt "$W/streams.full.st" "$W/streams.half.st" || fail "--streams: the resumed checkpoint differs from the uninterrupted one"
expect_err 2 "checkpoint '$W/windows.st' was trained on random windows; --streams cannot change on --resume" "$TRAIN" "$W/text.txt" --resume "$W/windows.st" --streams --steps 20 --threads 1

check "--stream-chunk 40: 4 shuffled chunks of 40 tokens (2 segments each); exact resume across cycles and epochs; refusals"
expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --stream-chunk 40 --steps "$N" --out "$W/chunk.full.st"
grep -q "| 2 streams over 4 shuffled chunks of 40 tokens$" "$W/out" || fail "--stream-chunk: the data line does not name the chunks"
losses "$W/out" >"$W/chunk.full.l"
cmp -s "$W/chunk.full.l" "$W/plain.full.l" && fail "--stream-chunk trains on the contiguous streams' batches"
# Stopped after segment 4: cycles 0 and 1 (the first epoch) done, cycle 2 one segment in (memory n 16).
expect_ok "$TRAIN" "$W/text.txt" "${BASE[@]}" --stream-chunk 40 --steps "$N" --stop-after 5 --out "$W/chunk.half.st"
losses "$W/out" >"$W/chunk.half.l"
ckpt_json "$W/chunk.half.st" | grep -q '"memory_offset":16,"memory_n":16,"memory_pos0":16,"stream_cycle":2}' ||
    fail "--stream-chunk: the stopped run does not record offset 16, n 16, cycle 2: $(ckpt_json "$W/chunk.half.st" | grep state)"
cp "$W/chunk.half.st" "$W/chunk.mid.st"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/chunk.half.st" --threads 1
losses "$W/out" >>"$W/chunk.half.l"
diff "$W/chunk.full.l" "$W/chunk.half.l" >"$W/diff" || { cat "$W/diff"; fail "--stream-chunk: the resumed run's values differ"; }
same_ckpt "$W/chunk.full.st" "$W/chunk.half.st" || fail "--stream-chunk: the resumed checkpoint differs from the uninterrupted one"
expect_err 2 "--stream-chunk conflicts with the run stored in '$W/chunk.mid.st' \\(40\\)" \
    "$TRAIN" "$W/text.txt" --resume "$W/chunk.mid.st" --stream-chunk 20 --threads 1
expect_err 2 "--stream-chunk conflicts with the run stored in '$W/plain.mid.st' \\(0\\)" \
    "$TRAIN" "$W/text.txt" --resume "$W/plain.mid.st" --stream-chunk 40 --threads 1
expect_err 2 "train: --stream-chunk 16 is shorter than ctx\\+1 = 17" "$TRAIN" "$W/text.txt" "${BASE[@]}" --stream-chunk 16 --out "$W/x.st"
expect_err 2 "train: the training split's 180 tokens hold 1 chunks of 91 tokens, fewer than the 2 rows of a batch; use a smaller --stream-chunk or --batch" \
    "$TRAIN" "$W/text.txt" "${BASE[@]}" --stream-chunk 91 --out "$W/x.st"
expect_err 2 "train: --stream-chunk needs --memory or --streams" "$TRAIN" "$W/text.txt" "${NOMEM[@]}" --stream-chunk 40 --out "$W/x.st"
[ -e "$W/x.st" ] && fail "a refused --stream-chunk run wrote a checkpoint"
expect_ok "$TRAIN" "$W/text.txt" "${NOMEM[@]}" --streams --stream-chunk 40 --steps 3 --out "$W/x.st"
grep -q "| 2 streams over 4 shuffled chunks of 40 tokens$" "$W/out" || fail "--streams --stream-chunk: the data line does not name the chunks"

check "the state is needed: zeroing the memory state before resuming changes the result"
"$PY" tests/ckpt_tool.py zero "$W/plain.mid.st" "$W/zero.st" memory.state.0 || fail "zeroing failed"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/zero.st" --threads 1
same_ckpt "$W/plain.full.st" "$W/zero.st" >/dev/null && fail "a resume without the memory state gave the same checkpoint"

check "--resume with another --memory: refused (exit 2, one line); the same value is accepted"
expect_err 2 "checkpoint '$W/plain.mid.st' was trained with --memory 32; --memory 16 cannot change on --resume" \
    "$TRAIN" "$W/text.txt" --resume "$W/plain.mid.st" --memory 16 --threads 1
cp "$W/plain.mid.st" "$W/same.st"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/same.st" --memory 32 --threads 1 --stop-after 7

# ---------------------------------------------------------------------------------------------
check "a hostile training state: one line, exit 1"
hostile() {  # REGEX PYTHON
    surgery "$W/plain.mid.st" "$W/bad.st" "$2"
    expect_err 1 "$1" "$TRAIN" "$W/text.txt" --resume "$W/bad.st" --threads 1 --out "$W/bad-out.st"
    [ -e "$W/bad-out.st" ] && fail "a refused resume wrote a checkpoint"
}
hostile "train_state.memory_offset: stream offset 17 is not a multiple of ctx 16 within a stream of 90 tokens" 'st["memory_offset"] = 17'
hostile "train_state.memory_offset: stream offset 96 is not a multiple" 'st["memory_offset"] = 96; st["memory_pos0"] = 96'
hostile "train_state.memory_offset: stream offset 1e\+300 is not" 'st["memory_offset"] = 1e300'
hostile "train_state.memory_pos0 is 32, not the stream offset 16" 'st["memory_pos0"] = 32'
hostile "train_state.memory_n is 32, not min\(memory_pos0, memory\) = 16" 'st["memory_n"] = 32'
hostile "train_state.memory_n is -1, not min" 'st["memory_n"] = -1'
hostile "train_state lacks the segment memory's position" 'del st["memory_n"], st["memory_offset"], st["memory_pos0"]'
hostile "train_state has 2 of the segment memory's" 'del st["memory_n"]'
hostile "train_state has a stream_cycle, but its --stream-chunk is 0" 'st["stream_cycle"] = 1'
surgery "$W/chunk.mid.st" "$W/bad.st" 'del st["stream_cycle"]'
expect_err 1 "train_state lacks the stream_cycle, but its --stream-chunk is 40" "$TRAIN" "$W/text.txt" --resume "$W/bad.st" --threads 1
surgery "$W/plain.mid.st" "$W/old.st" 'del st["stream-chunk"]'   # written before --stream-chunk existed
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/old.st" --threads 1
same_ckpt "$W/plain.full.st" "$W/old.st" >/dev/null || fail "a checkpoint without stream-chunk does not resume as contiguous streams"
for v in -1 0.5 1e300 '"2"'; do
    surgery "$W/chunk.mid.st" "$W/bad.st" "st['stream_cycle'] = $v"
    expect_err 1 "train_state.stream_cycle( is not a number|: stream cycle .* is not a count in \\[0, 2\\^50\\])" \
        "$TRAIN" "$W/text.txt" --resume "$W/bad.st" --threads 1 --out "$W/bad-out.st"
    [ -e "$W/bad-out.st" ] && fail "a refused resume wrote a checkpoint"
done
hostile "lacks tensor 'memory.state.2', the segment memory of layer 1 \(softmax\)" 'del h["memory.state.2"]'
hostile "tensor 'memory.state.0' has 3 floats, but the memory of layer 0 \(softmax\) for --batch 2 holds" \
    'e = h["memory.state.0"]; e["shape"] = [3]; e["data_offsets"][1] = e["data_offsets"][0] + 12'
hostile "has tensor 'memory.state.1', which it cannot hold: that block keeps no memory" \
    'h["memory.state.1"] = h.pop("memory.state.0")'
hostile "has tensor 'memory.state.00', which it cannot hold: no block of its config has that index" \
    'h["memory.state.00"] = h.pop("memory.state.0")'
hostile "has tensor 'memory.state.4', which it cannot hold: no block of its config has that index" \
    'h["memory.state.4"] = h.pop("memory.state.0")'
hostile "has tensor 'memory.state.0', which it cannot hold: the file has no optimizer state" \
    '[h.pop(k) for k in list(h) if k.startswith("adam.")]'
hostile "config.memory is missing or not an integer in \[0, 1048576\]" \
    'c = json.loads(h["__metadata__"]["config"]); c["memory"] = -1; h["__metadata__"]["config"] = json.dumps(c)'

# ---------------------------------------------------------------------------------------------
head -c 300 "$DATA" >"$W/eval.txt"   # 300 tokens, 299 targets
check "infer --eval names its mode: memory by default on a memory model; --memory 0 windows; --stride stride"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --threads 1
grep -qx "infer: memory mode: one stream in segments of 16 tokens, memory 32" "$W/err" || fail "no memory-mode line"
grep -Eq "^loss [0-9.]+ \| ppl [0-9.]+ \| bpb [0-9.]+ \| tokens 299$" "$W/out" || fail "no summary line"
cp "$W/out" "$W/mem32.out"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --memory 32 --threads 1
cmp -s "$W/out" "$W/mem32.out" || fail "--memory 32 (the checkpoint's) differs from the default"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --memory 0 --threads 1
grep -qx "infer: windows mode: windows of 16 tokens, each starting empty" "$W/err" || fail "no windows-mode line"
cmp -s "$W/out" "$W/mem32.out" && fail "windows mode equals memory mode"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --stride 4 --threads 1
grep -qx "infer: stride mode: windows of 16 tokens, 4 apart, each starting empty" "$W/err" || fail "no stride-mode line"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --ctx 32 --threads 1
grep -qx "infer: memory mode: one stream in segments of 32 tokens, memory 32" "$W/err" || fail "--ctx 32 is not segments of 32"
expect_ok "$INFER" "$W/free.st" --eval "$W/eval.txt" --memory 24 --threads 1
grep -qx "infer: memory mode: one stream in segments of 16 tokens, memory 24" "$W/err" || fail "--memory 24 on a memory-free rope model"

check "infer: --memory refused for learned positions, with --stride, without --eval (exit 2, one line)"
expect_ok "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 2 --steps 2 --threads 1 --out "$W/learned.st"
expect_err 2 "infer: --memory needs relative positions" "$INFER" "$W/learned.st" --eval "$W/eval.txt" --memory 8
expect_err 2 "infer: --stride and --memory 8 exclude each other" "$INFER" "$W/full.st" --eval "$W/eval.txt" --memory 8 --stride 4
expect_err 2 "infer: --memory needs --eval FILE" "$INFER" "$W/full.st" --memory 8

check "memory mode with M >= the text equals one window over it (rope softmax; by-position buckets, 1e-4 relative)"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --memory 512 --by-position --by-position-out "$W/m512" --threads 1
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --memory 0 --ctx 320 --by-position --by-position-out "$W/one" --threads 1
grep -qx "infer: windows mode: windows of 320 tokens, each starting empty" "$W/err" || fail "not one window of 320"
"$PY" - "$W/m512.csv" "$W/one.csv" <<'EOF' || fail "memory mode and one window differ"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert [r["context_lo"] for r in a] == [r["context_lo"] for r in b] and [r["tokens"] for r in a] == [r["tokens"] for r in b], "buckets differ"
assert sum(int(r["tokens"]) for r in a) == 299
for ra, rb in zip(a, b):
    la, lb = float(ra["loss"]), float(rb["loss"])
    assert abs(la - lb) <= 1e-4 * abs(lb), (ra["context_lo"], la, lb)
EOF

check "memory mode's by-position buckets count min(j, M+i)+1 (M 32, segments of 16)"
expect_ok "$INFER" "$W/full.st" --eval "$W/eval.txt" --by-position --by-position-out "$W/m32" --threads 1
"$PY" - "$W/m32.csv" <<'EOF' || fail "memory-mode bucket counts differ from min(j, M+i)+1"
import csv, sys
from collections import Counter
want = Counter((min(j, 32 + j % 16) + 1).bit_length() - 1 for j in range(299))
got = {int(r["context_lo"]).bit_length() - 1: int(r["tokens"]) for r in csv.DictReader(open(sys.argv[1]))}
assert got == dict(want), (got, dict(want))
EOF

# ---------------------------------------------------------------------------------------------
check "generation past ctx with memory (ctx 16, 60 tokens): no slide, it keeps going"
expect_ok "$INFER" "$W/full.st" --tokens 60 --prompt "ab" --seed 1 --threads 1
[ "$(head -c 2 "$W/out")" = "ab" ] && [ "$(wc -c <"$W/out")" -ge 62 ] || fail "generation stopped early"
grep -q "generated 60 tokens" "$W/err" || fail "no generation summary"

# ---------------------------------------------------------------------------------------------
check "performer with memory (block-local rotations): --ctx 8 (divides ctx 16) evaluates; --ctx 12 would cross blocks: refused (exit 2, one line)"
expect_ok "$TRAIN" "$W/text.txt" --dim 32 --heads 2 --ctx 16 --batch 2 --steps 3 --layers "performer(features=8)/mlp" \
    --pos rope --memory 16 --threads 1 --out "$W/perf.st"
expect_ok "$INFER" "$W/perf.st" --eval "$W/eval.txt" --ctx 8 --threads 1
grep -qx "infer: memory mode: one stream in segments of 8 tokens, memory 16" "$W/err" || fail "no memory-mode line at --ctx 8"
expect_err 2 "^attnlab: infer: --ctx 12: layer 0 \\(performer\\): memory segments of 12 tokens would cross its window blocks of 16 positions" \
    "$INFER" "$W/perf.st" --eval "$W/eval.txt" --ctx 12 --threads 1
expect_ok "$INFER" "$W/perf.st" --eval "$W/eval.txt" --ctx 12 --memory 0 --threads 1   # windows mode: no memory segments
expect_ok "$INFER" "$W/perf.st" --tokens 40 --prompt "ab" --seed 1 --threads 1

echo "cli_memory: all checks passed"
