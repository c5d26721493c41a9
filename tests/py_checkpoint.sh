#!/usr/bin/env bash
# tests/py_checkpoint.sh — the numpy example in docs/checkpoint.md (between the
# <!-- example:begin --> / <!-- example:end --> markers) runs against checkpoints made here, with
# both tokenizers and after train --export, and what it prints matches the checkpoint.
#   ATTNLAB_BUILD=build/release bash tests/py_checkpoint.sh     (exit 77 when numpy is missing)
set -u
cd "$(dirname "$0")/.."
BUILD=${ATTNLAB_BUILD:-.}
TRAIN=$BUILD/train; [ -x "$TRAIN" ] || TRAIN=./train
PY=/usr/bin/python3
DOC=docs/checkpoint.md
[ -x "$TRAIN" ] || { echo "train not built (run make)"; exit 1; }
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || { echo "skip: numpy is not available to $PY"; exit 77; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "check: $DOC has one example between the markers"
awk '/<!-- example:begin -->/{on=1; next} /<!-- example:end -->/{on=0} on && !/^```/' "$DOC" >"$W/example.py"
[ "$(grep -c 'example:begin' "$DOC")" -eq 1 ] || fail "expected exactly one <!-- example:begin --> marker"
grep -q "load_checkpoint" "$W/example.py" || fail "no example found between the markers"

bash tests/gen_text.sh 20000 >"$W/text.txt" || fail "tests/gen_text.sh failed"
for tk in byte char; do
    ck="$W/$tk.st"
    echo "check: [$tk] train a tiny checkpoint, run the example on it and on its export"
    "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 2 --steps 4 --eval-every 2 --layers 2*softmax/mlp \
        --tokenizer $tk --threads 1 --out "$ck" >"$W/train.out" 2>&1 || { cat "$W/train.out"; fail "training failed"; }
    "$TRAIN" --export "$ck" "$W/$tk.export.st" >/dev/null 2>&1 || fail "export failed"
    for f in "$ck" "$W/$tk.export.st"; do
        "$PY" "$W/example.py" "$f" >"$W/py.out" 2>&1 || { cat "$W/py.out"; fail "the example failed on $f"; }
        grep -Eq "^wte +\((256|[0-9]+), 16\)$" "$W/py.out" || { cat "$W/py.out"; fail "no 'wte (V, 16)' line"; }
        grep -Eq "^layers\.1\.ffn\.w2 +\(16, 64\)$" "$W/py.out" || { cat "$W/py.out"; fail "no 'layers.1.ffn.w2 (16, 64)' line"; }
        grep -q "^tokenizer: $tk" "$W/py.out" || { cat "$W/py.out"; fail "tokenizer kind not printed"; }
        grep -q "^trained steps: 4$" "$W/py.out" || { cat "$W/py.out"; fail "trained steps not printed"; }
        grep -q "embedding\[:4\]" "$W/py.out" || { cat "$W/py.out"; fail "no embedding printed"; }
    done
    grep -q "^optimizer moment tensors: 0$" "$W/py.out" || fail "the export still has optimizer moments"
done

echo "check: every tensor the doc's table names for softmax/mlp is in the checkpoint, and nothing else"
"$PY" - "$W/char.st" <<'PYEOF' || fail "docs/checkpoint.md and the checkpoint disagree on tensor names"
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
meta = h.pop('__metadata__')
names = set(h)
want = {'wte', 'wpe', 'lnf.weight', 'lnf.bias'}
for l in range(2):
    p = f'layers.{l}.'
    want |= {p + s for s in ['ln1.weight', 'ln1.bias', 'ln2.weight', 'ln2.bias', 'attn.wq', 'attn.wk', 'attn.wv',
                             'attn.bq', 'attn.bk', 'attn.bv', 'attn.wo', 'attn.bo', 'ffn.w1', 'ffn.b1', 'ffn.w2', 'ffn.b2']}
want |= {'adam.m.' + w for w in want} | {'adam.v.' + w for w in want}
if names != want:
    print('missing:', sorted(want - names), 'unexpected:', sorted(names - want)); sys.exit(1)
doc = open('docs/checkpoint.md').read()
for key in list(meta) + list(json.loads(meta['config'])) + list(json.loads(meta['train_state'])):
    if f'`{key}`' not in doc:
        print('metadata key not documented:', key); sys.exit(1)
PYEOF
echo "py_checkpoint: all checks passed"
