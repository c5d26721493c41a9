#!/usr/bin/env bash
# tests/py_twin.sh — the PyTorch twin (tests/twin.py) reproduces `infer --eval` to 1e-4 relative.
# Trains small models with ./train for a few steps — byte and char tokenizers, a layer whose ffn is
# `none`, a ctx that is not a multiple of the attention's 32-row tiling, a file with multi-byte
# UTF-8 characters (so bpb's byte counts matter) and an eval file whose last window is short — then
# compares loss, ppl and bpb of `infer CKPT --eval FILE` with the twin's float64 figures.
# Exit 77 (skip) when /usr/bin/python3 cannot import torch and numpy.
#   bash tests/py_twin.sh            (ATTNLAB_BUILD=build/release by default; TWIN=path overrides the twin)
set -u
cd "$(dirname "$0")/.."
BUILD=${ATTNLAB_BUILD:-build/release}
PY=/usr/bin/python3
TWIN=${TWIN:-tests/twin.py}
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "py_twin: $PY cannot import torch and numpy (Debian python3-torch); skipped"
  exit 77
fi
TRAIN=$BUILD/train; INFER=$BUILD/infer
[ -x "$TRAIN" ] || TRAIN=./train
[ -x "$INFER" ] || INFER=./infer
DATA=../shared/data/tinyshakespeare.txt
[ -f "$DATA" ] || DATA=data/tinyshakespeare.txt
if ! [ -f "$DATA" ]; then echo "py_twin: no tinyshakespeare.txt found"; exit 77; fi

tmp=$(mktemp -d /tmp/py_twin.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# eval text: 4000 bytes of late Shakespeare with 2-, 3- and 4-byte UTF-8 characters (last window short)
{ tail -c 4000 "$DATA"; printf 'Café — 日本語 🙂 ✓ naïve\n'; } >"$tmp/eval.txt"
# training text: 60 kB of Shakespeare, lines with the same characters, and the eval text (so the char
# vocabulary covers it)
{ head -c 60000 "$DATA"; for i in 1 2 3 4 5 6 7 8; do printf 'Café naïve — 日本語 ✓ 🙂 señor %d\n' "$i"; done
  cat "$tmp/eval.txt"; } >"$tmp/train.txt"

fail=0
# compare NAME CKPT: run both, check |a-b| <= 1e-4·|b| for loss, ppl and bpb
compare() {
  local name=$1 ckpt=$2 ours twin
  ours=$("$INFER" "$ckpt" --eval "$tmp/eval.txt" 2>"$tmp/err") || { echo "FAIL $name: infer --eval failed: $(cat "$tmp/err")"; fail=1; return; }
  twin=$("$PY" "$TWIN" "$ckpt" --eval "$tmp/eval.txt" 2>"$tmp/err") || { echo "FAIL $name: twin failed: $(cat "$tmp/err")"; fail=1; return; }
  echo "$name"
  echo "  attnlab: $ours"
  echo "  twin:    $twin"
  if ! "$PY" - "$ours" "$twin" <<'EOF'
import re, sys
def fields(s):
    return {k: float(v) for k, v in re.findall(r"(loss|ppl|bpb|tokens) ([0-9.eE+-]+)", s)}
a, b = fields(sys.argv[1]), fields(sys.argv[2])
ok = True
for k in ("loss", "ppl", "bpb"):
    # infer prints 4 decimals (ppl 3): allow that rounding on top of 1e-4 relative
    rel = abs(a[k] - b[k]) / abs(b[k])
    tol = 1e-4 + (5e-4 if k == "ppl" else 5e-5) / abs(b[k])
    print(f"  {k}: relative difference {rel:.2e} (tolerance {tol:.2e})")
    ok &= rel <= tol
if a["tokens"] != b["tokens"]:
    print(f"  tokens differ: {a['tokens']} vs {b['tokens']}")
    ok = False
sys.exit(0 if ok else 1)
EOF
  then
    echo "FAIL $name: attnlab and the twin disagree"; fail=1
  fi
}

# a high learning rate without warmup grows the weights enough that attention scores matter
common=(--steps 40 --lr 1e-2 --min-lr 1e-3 --warmup 0 --eval-every 40 --eval-batches 2 --batch 8 --threads 2)
# 1: char tokenizer, mixed layers incl. an ffn `none` layer and a custom mlp width, ctx 37 (32 + 5)
"$TRAIN" "$tmp/train.txt" --tokenizer char --layers "softmax/mlp, softmax/none, softmax/mlp(hidden=96)" \
  --dim 48 --heads 3 --ctx 37 --out "$tmp/char.safetensors" "${common[@]}" >"$tmp/log1" 2>&1 \
  || { cat "$tmp/log1"; echo "FAIL: train (char)"; exit 1; }
compare "char tokenizer, softmax/mlp,softmax/none,softmax/mlp(hidden=96), d 48, 3 heads, ctx 37" "$tmp/char.safetensors"
# 2: byte tokenizer, ctx 70 (two full row blocks + 6), ffn none first
"$TRAIN" "$tmp/train.txt" --tokenizer byte --layers "softmax/none, 2*softmax/mlp" \
  --dim 64 --heads 4 --ctx 70 --out "$tmp/byte.safetensors" "${common[@]}" >"$tmp/log2" 2>&1 \
  || { cat "$tmp/log2"; echo "FAIL: train (byte)"; exit 1; }
compare "byte tokenizer, softmax/none,2*softmax/mlp, d 64, 4 heads, ctx 70" "$tmp/byte.safetensors"

# the twin refuses kinds it does not implement, with a message naming the layer
if "$TRAIN" "$tmp/train.txt" --tokenizer byte --layers "softmax/mlp,softmax(persist=4)/mlp" --dim 32 --heads 2 --ctx 16 \
     --steps 1 --eval-every 1 --eval-batches 1 --batch 2 --threads 2 --out "$tmp/p.safetensors" >/dev/null 2>&1; then
  if "$PY" "$TWIN" "$tmp/p.safetensors" --eval "$tmp/eval.txt" >/dev/null 2>"$tmp/err" || ! grep -q "layer 1" "$tmp/err"; then
    echo "FAIL: the twin should refuse softmax(persist=4) naming layer 1; said: $(cat "$tmp/err")"; fail=1
  else
    echo "twin refuses an unimplemented kind: $(cat "$tmp/err")"
  fi
fi

[ $fail = 0 ] && echo "py_twin: attnlab and the PyTorch twin agree"
exit $fail
