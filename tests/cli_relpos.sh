#!/usr/bin/env bash
# tests/cli_relpos.sh — `train --pos rel` (learned relative keys attn.rel_k, blocks/relpos.h) from the
# command line: kinds without it refused with one line naming the layer and kind (exit 2); the
# checkpoint's config ("pos":"rel") and tensors (rel_k (D, ctx+M) per softmax-family layer, no wpe);
# infer --info/--eval/generation past ctx, without and with --memory; the reach ctx + M bounds
# infer --eval --ctx and --memory (one line, exit 2) and allows a wider window up to it; --resume
# continues exactly (N steps == N/2 + resume, checkpoints equal but for the wall clock).
#   ATTNLAB_BUILD=build/release bash tests/cli_relpos.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

head -c 40000 "$DATA" >"$W/text.txt"
head -c 5000 "$W/text.txt" >"$W/eval.txt"
small=(--dim 16 --heads 2 --ctx 16 --batch 2 --eval-every 4 --eval-batches 1 --threads 1 --tokenizer byte)

# tensors_of CKPT: "config {...}" then "tensor NAME SHAPE" per tensor
tensors_of() {
    "$PY" - "$1" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
print("config", h["__metadata__"]["config"])
for k, v in h.items():
    if k != "__metadata__": print("tensor", k, "x".join(map(str, v["shape"])))
EOF
}
# Two checkpoints: every tensor bit for bit, every metadata value but train_state.elapsed_s.
same_ckpt() {
    "$PY" - "$1" "$2" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    st = json.loads(meta.get('train_state', '{}')); st.pop('elapsed_s', None); meta['train_state'] = st
    return meta, {k: b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]] for k, v in h.items()}
(ma, ta), (mb, tb) = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if ma == mb and ta == tb else 1)
EOF
}

check "--pos rel with a kind that has no relative keys: exit 2, one line naming layer and kind"
for layers in "performer(features=8)" "linformer(chunk=4,k=2)" "collab"; do
    expect_err 2 "^attnlab: train: --pos rel: layer 1 \(${layers%%(*}\) has no learned relative positions" \
        "$TRAIN" "$W/text.txt" "${small[@]}" --steps 2 --layers "softmax,$layers" --pos rel --out "$W/x.st"
done

check "--pos rel: the config says rel; each softmax-family layer has attn.rel_k (D, ctx); no wpe"
expect_ok "$TRAIN" "$W/text.txt" "${small[@]}" --steps 8 --stop-after 4 --pos rel \
    --layers "softmax,softmax(persist=2),adaptive(span=8,ramp=4),allattn(persist=4,span=8,ramp=4)" --out "$W/rel.st"
grep -q "| pos rel" "$W/out" || fail "train does not say --pos rel in its model line"
tensors_of "$W/rel.st" >"$W/cfg" || fail "cannot read $W/rel.st"
grep -q '"pos":"rel"' "$W/cfg" || fail "the config lacks \"pos\":\"rel\": $(head -1 "$W/cfg")"
grep -q "^tensor wpe " "$W/cfg" && fail "a --pos rel checkpoint has wpe"
for l in 0 1 2 3; do
    grep -qx "tensor layers.$l.attn.rel_k 8x16" "$W/cfg" || fail "layer $l lacks attn.rel_k (8, 16): $(grep rel_k "$W/cfg")"
done

check "--pos rel: infer --info, --eval, generation past ctx (the window slides: distances < ctx)"
expect_ok "$INFER" "$W/rel.st" --info
grep -qx "positions: rel" "$W/out" || fail "infer --info does not show 'positions: rel'"
expect_ok "$INFER" "$W/rel.st" --eval "$W/eval.txt" --threads 1
grep -Eq "^loss [0-9.]+ \| ppl" "$W/out" || fail "infer --eval printed no figures"
expect_ok "$INFER" "$W/rel.st" --tokens 40 --prompt "ab" --seed 1
[ "$(wc -c <"$W/out")" -ge 40 ] || fail "generation past ctx stopped early"

check "--pos rel without memory: infer --eval --ctx 17 exceeds the reach 16 (exit 2, one line); --memory too"
expect_err 2 "^attnlab: infer: --ctx 17: .*rel_k" "$INFER" "$W/rel.st" --eval "$W/eval.txt" --ctx 17 --threads 1
expect_err 2 "^attnlab: infer: --memory 4: .*rel_k" "$INFER" "$W/rel.st" --eval "$W/eval.txt" --memory 4 --threads 1

check "--pos rel: --resume continues exactly (8 steps == 4 + resume)"
expect_ok "$TRAIN" "$W/text.txt" "${small[@]}" --steps 8 --pos rel \
    --layers "softmax,softmax(persist=2),adaptive(span=8,ramp=4),allattn(persist=4,span=8,ramp=4)" --out "$W/full.st"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/rel.st" --threads 1
grep -q "| pos rel" "$W/out" || fail "the resumed run lost --pos rel"
same_ckpt "$W/full.st" "$W/rel.st" || fail "8 steps != 4 steps + resume"

check "--pos rel --memory 16: rel_k (D, 32); memory eval, windows up to ctx 32, generation with memory"
expect_ok "$TRAIN" "$W/text.txt" "${small[@]}" --steps 6 --stop-after 3 --pos rel --memory 16 \
    --layers "softmax,adaptive(span=16,ramp=4)" --out "$W/mem.st"
tensors_of "$W/mem.st" >"$W/cfg"
grep -qx "tensor layers.0.attn.rel_k 8x32" "$W/cfg" || fail "rel_k is not (8, ctx + M): $(grep rel_k "$W/cfg")"
expect_ok "$INFER" "$W/mem.st" --eval "$W/eval.txt" --threads 1
grep -q "memory mode" "$W/err" || fail "a rel memory model did not evaluate in memory mode"
expect_ok "$INFER" "$W/mem.st" --eval "$W/eval.txt" --memory 0 --ctx 32 --threads 1
grep -Eq "^loss [0-9.]+ \| ppl" "$W/out" || fail "windows of 32 (= the reach) printed no figures"
expect_err 2 "^attnlab: infer: --ctx 33: .*rel_k" "$INFER" "$W/mem.st" --eval "$W/eval.txt" --memory 0 --ctx 33 --threads 1
expect_err 2 "^attnlab: infer: --ctx 24: .*rel_k" "$INFER" "$W/mem.st" --eval "$W/eval.txt" --ctx 24 --threads 1
expect_err 2 "^attnlab: infer: --memory 17: .*rel_k" "$INFER" "$W/mem.st" --eval "$W/eval.txt" --memory 17 --threads 1
expect_ok "$INFER" "$W/mem.st" --eval "$W/eval.txt" --memory 8 --threads 1
expect_ok "$INFER" "$W/mem.st" --tokens 70 --prompt "ab" --seed 1
[ "$(wc -c <"$W/out")" -ge 70 ] || fail "generation with memory stopped early"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/mem.st" --threads 1
grep -q "| pos rel" "$W/out" && grep -q "memory 16" "$W/out" || fail "the resumed memory run lost --pos rel or its memory"

echo "cli_relpos: ok"
