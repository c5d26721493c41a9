#!/usr/bin/env bash
# fuzz/make_corpus.sh DIR — seed corpora for the fuzz harnesses, in DIR/<harness>/:
#   checkpoint  small real checkpoints written by ./train (every kind; one with --pos rope --memory 16; char and byte tokenizers; with
#               and without optimizer state), so mutations start from valid files
#   spec        --layers strings: every kind, options, repeats, whitespace, and near-misses
#   tokenizer   texts (ASCII, multi-byte UTF-8, invalid UTF-8, binary) and tokenizer JSON
#   args        command lines (NUL-separated argv) for the flag parser
# Needs ./train (make train). Texts come from the repository itself (README.md, docs/).
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/fuzz/seeds}
[ -x ./train ] || { echo "make_corpus: ./train not built (run make)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"/{checkpoint,spec,tokenizer,args}

# --- checkpoints: tiny models of every kind, 2 steps each, from a 4 KB slice of README.md
head -c 4096 README.md > "$tmp/text.txt"
specs=("softmax/mlp" "softmax(persist=2)/none" "adaptive(span=8)/mlp(hidden=8)" "allattn(persist=2)"
       "performer(features=4)/mlp(hidden=8)" "linformer(chunk=4,k=2)/none" "collab(dk=4)/mlp(hidden=8)"
       "softmax/pkm(slots=16,k=2,heads=1,dk=4)" "2*softmax/mlp(hidden=8)")
i=0
for s in "${specs[@]}"; do
  i=$((i+1))
  tk=char; [ $((i % 2)) = 0 ] && tk=byte
  OMP_WAIT_POLICY=passive ./train "$tmp/text.txt" --layers "$s" --dim 8 --heads 2 --ctx 8 --batch 2 --steps 2 \
      --eval-every 2 --eval-batches 1 --tokenizer $tk --threads 1 --out "$out/checkpoint/k$i.safetensors" >/dev/null
done
./train --export "$out/checkpoint/k1.safetensors" "$out/checkpoint/k1-export.safetensors" >/dev/null
# segment memory: rope positions, the memory's state tensors and train_state keys (docs/checkpoint.md)
OMP_WAIT_POLICY=passive ./train "$tmp/text.txt" --layers "softmax/mlp,performer(features=4)/none" --dim 8 --heads 2 \
    --ctx 8 --batch 2 --steps 2 --eval-every 2 --eval-batches 1 --tokenizer byte --pos rope --memory 16 --threads 1 \
    --out "$out/checkpoint/mem.safetensors" >/dev/null

# --- layer specs
n=0
while IFS= read -r line; do n=$((n+1)); printf '%s' "$line" > "$out/spec/s$n"; done <<'SPECS'
softmax/mlp
4*softmax/mlp
2*softmax(persist=4)/mlp,softmax/none
adaptive(span=32,ramp=8)/mlp(hidden=16)
allattn(persist=8)
performer(features=16,redraw=5)/mlp
linformer(chunk=8,k=2,window=1,share=kv)/none
collab(dk=16)/mlp
softmax/pkm(slots=256,k=4,heads=2,dk=16)
 2 * softmax / mlp , performer ( features = 8 )
softmax/
3*
softmax(persist=)/mlp
softmax(persist=1,persist=2)
1001*softmax
unknown/mlp
SPECS

# --- tokenizer inputs: first byte picks the tokenizer (odd: char) and the split point
printf '\x01%s' "$(head -c 300 README.md)" > "$out/tokenizer/t1"
printf '\x41%s' "$(head -c 300 docs/design.md)" > "$out/tokenizer/t2"
printf '\x21héllo wörld — ünïcödé 日本語 😀 done' > "$out/tokenizer/t3"
printf '\x00\xff\xfe\x00binary\x80\xc0\xaf\xed\xa0\x80' > "$out/tokenizer/t4"
printf '\x31abc\xe2\x82' > "$out/tokenizer/t5"
printf '{"kind":"char","codepoints":[10,32,65,97,233,8212,128512]}' > "$out/tokenizer/j1"
printf '{"kind":"byte"}' > "$out/tokenizer/j2"

# --- command lines (argv separated by NUL)
printf 'data.txt\0--steps\0100\0--lr=3e-4\0--layers\0%s\0--quiet' '2*softmax/mlp' > "$out/args/a1"
printf -- '--ctx=128\0--dropout\00.1\0--out\0x.safetensors\0in.txt' > "$out/args/a2"
printf -- '--steps\0-5\0--unknown\0-x\0--quiet=1\0--help' > "$out/args/a3"
echo "make_corpus: $(ls "$out/checkpoint" | wc -l) checkpoints, $(ls "$out/spec" | wc -l) specs, $(ls "$out/tokenizer" | wc -l) tokenizer inputs, $(ls "$out/args" | wc -l) command lines in $out"
