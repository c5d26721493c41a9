#!/usr/bin/env bash
# tests/cli_hostile_ckpt.sh — the programs on hostile checkpoint paths and files, end to end (issue
# 10 items 5, 10, 12): a FIFO is refused at once (not opened and waited on), a checkpoint with a
# NaN weight is refused naming the tensor (before: `infer --eval` printed "loss nan", exit 0), and
# a terminal escape in the file's metadata reaches the message only as \xNN. Each: one line, exit 1.
# Needs no data beside the repository: it trains on a slice of README.md.
cd "$(dirname "$0")/.." || exit 1
BUILD=${ATTNLAB_BUILD:-.}
TRAIN=$BUILD/train; [ -x "$TRAIN" ] || TRAIN=./train
INFER=$BUILD/infer; [ -x "$INFER" ] || INFER=./infer
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export OMP_WAIT_POLICY=passive
fail() { echo "FAIL: $*"; echo "  status $rc; stderr: $(head -c 600 "$W/err")"; exit 1; }
one_line_exit1() {  # $1: what; the last run must exit 1 with one line on stderr containing $2
  [ "$rc" = 1 ] || fail "$1: exit status $rc, want 1"
  [ "$(wc -l < "$W/err")" = 1 ] || fail "$1: stderr is not one line"
  grep -qF -- "$2" "$W/err" || fail "$1: message lacks '$2'"
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$W/err"; then fail "$1: control bytes in the message"; fi
}

head -c 4096 README.md > "$W/text.txt"
"$TRAIN" "$W/text.txt" --layers softmax/mlp --dim 8 --heads 2 --ctx 8 --batch 2 --steps 2 --eval-every 2 \
    --eval-batches 1 --tokenizer byte --threads 1 --out "$W/good.safetensors" >/dev/null 2>"$W/err" || { rc=$?; fail "train"; }

echo "check: a FIFO as the checkpoint is refused without waiting for a writer"
mkfifo "$W/fifo.safetensors"
timeout 20 "$INFER" "$W/fifo.safetensors" --tokens 1 >/dev/null 2>"$W/err"; rc=$?
[ $rc = 124 ] && fail "infer on a FIFO hung (killed after 20 s)"
one_line_exit1 "fifo" "not a regular file (a FIFO)"

# Rewrites good.safetensors with python's struct/json only: $1 = python statements on `h` (the
# header dict) and `data` (a bytearray of the data section).
rewrite() {
  python3 - "$W/good.safetensors" "$W/bad.safetensors" "$1" <<'PY'
import json, struct, sys
src, dst, code = sys.argv[1:4]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = bytearray(b[8 + n:])
exec(code)
hb = json.dumps(h, separators=(",", ":")).encode()
hb += b" " * (-(8 + len(hb)) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + bytes(data))
PY
}

echo "check: a NaN weight is refused at load, naming the tensor (no 'loss nan')"
rewrite 'o = h["wte"]["data_offsets"][0] + 4 * 3; data[o:o + 4] = struct.pack("<f", float("nan"))'
"$INFER" "$W/bad.safetensors" --eval "$W/text.txt" --threads 1 >"$W/out" 2>"$W/err"; rc=$?
grep -q "nan" "$W/out" && fail "--eval printed a NaN loss"
one_line_exit1 "nan" "tensor 'wte' holds a non-finite value (NaN at element 3)"

echo "check: a terminal escape in the file's metadata is shown as \\xNN"
rewrite 'h["__metadata__"]["format_version"] = "\x1b[2J1"'
"$INFER" "$W/bad.safetensors" --tokens 1 >/dev/null 2>"$W/err"; rc=$?
one_line_exit1 "escape" "format_version '\\x1b[2J1' is invalid"
echo "ok"
