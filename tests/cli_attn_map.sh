#!/usr/bin/env bash
# tests/cli_attn_map.sh — infer --attn-map (cli/attn_map.h; its probabilities are checked against a
# direct computation in test_attn_map.c): a PNG for the kinds with a map, written through a temporary,
# and one line with exit 2 for every bad request (performer/linformer, layer or head out of range, no
# prompt, a prompt longer than ctx, flags without --attn-map); gnuplot missing is exit 1 naming the
# package. Also infer --spans' picture (gnuplot) and its table.
#   ATTNLAB_BUILD=build/release bash tests/cli_attn_map.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed (Debian package gnuplot-nox; setup.sh test installs it)"; exit 77; }
png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$1 is not a PNG"; }

head -c 30000 "$DATA" >"$W/text.txt"
TINY=(--dim 16 --heads 2 --ctx 32 --batch 4 --steps 5 --eval-every 5 --threads 1 --final-eval none)
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers "softmax(persist=2)/mlp,adaptive/mlp,performer/mlp,linformer(chunk=8)/mlp,collab/mlp" --out "$W/m.st"

check "--attn-map: a PNG per layer with a map (softmax(persist), adaptive, collab), no temporary left"
for l in 0 1 4; do
    expect_ok "$INFER" "$W/m.st" --attn-map "$W/map$l.png" --prompt "ROMEO: a light" --layer $l --head 1
    png "$W/map$l.png"
    grep -q "^wrote $W/map$l.png (layer $l, head 1" "$W/err" || fail "no 'wrote' line"
    [ ! -s "$W/out" ] || fail "--attn-map wrote to stdout"
done
ls "$W"/map*.png.tmp-* >/dev/null 2>&1 && fail "a temporary was left behind"
head -c 20 "$W/text.txt" >"$W/prompt.txt"
expect_ok "$INFER" "$W/m.st" --attn-map "$W/mapf.png" --prompt-file "$W/prompt.txt" --layer 0 --head 0
grep -q ", 20 tokens\|head 0" "$W/err" && png "$W/mapf.png"

check "--attn-map refused with one line, exit 2"
expect_err 2 "layer 2 \(performer\) has no attention map" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --layer 2
expect_err 2 "layer 3 \(linformer\) has no attention map" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --layer 3
expect_err 2 "--layer 5: the model has layers 0 to 4" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --layer 5
expect_err 2 "--head 2: the model has heads 0 to 1" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --head 2
expect_err 2 "--attn-map needs a prompt" "$INFER" "$W/m.st" --attn-map "$W/x.png"
expect_err 2 "the prompt has 33 tokens; --attn-map covers one window of at most 32" \
    "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "$(head -c 33 "$W/text.txt" | tr '\n' ' ')"
expect_err 2 "--layer needs --attn-map" "$INFER" "$W/m.st" --layer 1 --prompt "ab"
expect_err 2 "--head needs --attn-map" "$INFER" "$W/m.st" --head 1 --prompt "ab"
expect_err 2 "exclude each other" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --spans
expect_err 2 "--attn-map needs an output path" "$INFER" "$W/m.st" --attn-map "" --prompt "ab"
expect_err 2 "--layer must be" "$INFER" "$W/m.st" --attn-map "$W/x.png" --prompt "ab" --layer -1
[ ! -e "$W/x.png" ] || fail "a refused request wrote a picture"
expect_err 1 "same file as the checkpoint" "$INFER" "$W/m.st" --attn-map "$W/m.st" --prompt "ab"

check "gnuplot missing: one line naming the package, exit 1, nothing written"
expect_err 1 "gnuplot is not installed \(Debian package gnuplot-nox\)" env PATH=/nonexistent "$INFER" "$W/m.st" \
    --attn-map "$W/nogp.png" --prompt "ab"
[ ! -e "$W/nogp.png" ] && ! ls "$W"/nogp.png.tmp-* >/dev/null 2>&1 || fail "a picture or temporary was left"

check "--spans: the table and a gnuplot PNG"
expect_ok "$INFER" "$W/m.st" --spans --spans-png "$W/spans.png"
png "$W/spans.png"
grep -q "colour: span in tokens, 0 to 32" "$W/err" || fail "the colour scale is not 0 to ctx 32: $(cat "$W/err")"
grep -Eq "^1 +[0-9.]+ +[0-9.]+ +[0-9.]+$" "$W/out" || fail "no span row for layer 1"
echo "cli_attn_map: all checks passed"
