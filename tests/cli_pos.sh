#!/usr/bin/env bash
# tests/cli_pos.sh — `train --pos learned|rope|none` from the command line: bad values and odd head
# widths refused with one line (exit 2), --resume refusing another scheme, the checkpoint's config
# ("pos" only when not learned, no wpe), an unknown config pos refused on load, infer --info showing
# the scheme, and train → infer --eval / generation (past ctx: window sliding, Performer streaming)
# for rope and none models.
#   ATTNLAB_BUILD=build/release bash tests/cli_pos.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

small=(--heads 2 --ctx 16 --batch 2 --eval-every 4 --eval-batches 1 --threads 1)  # plus --dim

# config_of CKPT: the checkpoint's config JSON and its tensor names, one per line ("config {...}", "tensor NAME")
config_of() {
    "$PY" - "$1" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
print("config", h["__metadata__"]["config"])
for k in h:
    if k != "__metadata__": print("tensor", k)
EOF
}

check "unknown --pos: exit 2, one line"
expect_err 2 "--pos must be learned, rope, none or rel, got 'rotary'" "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 2 --pos rotary --out "$W/x.st"

check "--pos rope with an odd head width (dim 6, heads 2): refused per kind, one line; learned builds"
for layers in softmax "performer(features=8)" "linformer(chunk=4,k=2)"; do
    expect_err 2 "layer 0 \(${layers%%(*}\): --pos rope needs an even head width \(dim/heads\), got 3" \
        "$TRAIN" "$DATA" "${small[@]}" --dim 6 --steps 2 --layers "$layers" --pos rope --out "$W/x.st"
done
expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 6 --steps 2 --layers softmax --pos none --out "$W/odd-none.st"

check "learned: the config has no \"pos\" and the file has wpe; rope and none: \"pos\" and no wpe"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 4 --layers "softmax,performer(features=8),linformer(chunk=4,k=2)" --out "$W/learned.st"
config_of "$W/learned.st" >"$W/cfg" || fail "cannot read $W/learned.st"
grep -q '"pos"' "$W/cfg" && fail "a learned checkpoint's config names pos: $(head -1 "$W/cfg")"
grep -qx "tensor wpe" "$W/cfg" || fail "a learned checkpoint lacks wpe"
for pos in rope none; do
    expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 8 --stop-after 4 --pos $pos \
        --layers "softmax,performer(features=8),linformer(chunk=4,k=2)" --out "$W/$pos.st"
    grep -q "| pos $pos" "$W/out" || fail "train does not say --pos $pos in its model line"
    config_of "$W/$pos.st" >"$W/cfg" || fail "cannot read $W/$pos.st"
    grep -q "\"pos\":\"$pos\"" "$W/cfg" || fail "the config lacks \"pos\":\"$pos\": $(head -1 "$W/cfg")"
    grep -qx "tensor wpe" "$W/cfg" && fail "a --pos $pos checkpoint has wpe"

    check "--pos $pos: infer --info shows the scheme, --eval and generation past ctx work"
    expect_ok "$INFER" "$W/$pos.st" --info
    grep -qx "positions: $pos" "$W/out" || fail "infer --info does not show 'positions: $pos'"
    grep -q "embeddings (wte): " "$W/out" || fail "infer --info counts a wpe for --pos $pos"
    expect_ok "$INFER" "$W/$pos.st" --eval "$DATA" --threads 1
    grep -Eq "^loss [0-9.]+ \| ppl" "$W/out" || fail "infer --eval printed no figures"
    expect_ok "$INFER" "$W/$pos.st" --tokens 40 --prompt "ab" --seed 1  # ctx 16: the window slides
    [ "$(wc -c <"$W/out")" -ge 40 ] || fail "generation past ctx stopped early"

    check "--pos $pos: --resume keeps the scheme; an explicit other --pos is refused (exit 2, one line)"
    expect_err 2 "checkpoint '$W/$pos.st' was trained with --pos $pos; --pos learned cannot change on --resume" \
        "$TRAIN" "$DATA" --resume "$W/$pos.st" --pos learned --threads 1
    cp "$W/$pos.st" "$W/$pos-copy.st"
    expect_ok "$TRAIN" "$DATA" --resume "$W/$pos-copy.st" --pos $pos --threads 1
    expect_ok "$TRAIN" "$DATA" --resume "$W/$pos.st" --threads 1
    grep -q "| pos $pos" "$W/out" || fail "the resumed run lost --pos $pos"
done

check "a learned run resumed with --pos rope is refused"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 8 --stop-after 4 --out "$W/l2.st"
expect_err 2 "was trained with --pos learned; --pos rope cannot change" "$TRAIN" "$DATA" --resume "$W/l2.st" --pos rope --threads 1

check "Performer under rope streams past ctx (no slide) at the true positions"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 4 --pos rope --layers "2*performer(features=8)" --out "$W/perf.st"
expect_ok "$INFER" "$W/perf.st" --tokens 60 --prompt "ab" --seed 1
[ "$(wc -c <"$W/out")" -ge 60 ] || fail "streamed generation stopped early"

check "--init-from across schemes: learned → rope copies every tensor but wpe"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --dim 16 --steps 2 --pos rope --layers "softmax,performer(features=8),linformer(chunk=4,k=2)" \
    --init-from "$W/learned.st" --out "$W/from-learned.st"
grep -Eq "init-from .*: ([0-9]+) of \1 tensors loaded" "$W/err" || fail "learned → rope did not load every tensor of the rope model"

check "a checkpoint whose config pos is unknown: refused on load with one line"
"$PY" - "$W/rope.st" "$W/badpos.st" <<'EOF' || fail "surgery failed"
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
cfg = json.loads(h["__metadata__"]["config"]); cfg["pos"] = "alibi"
h["__metadata__"]["config"] = json.dumps(cfg, separators=(",", ":"))
hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + b[8 + n:])
EOF
expect_err 1 "config.pos 'alibi' is not one of \"learned\", \"rope\", \"none\", \"rel\"" "$INFER" "$W/badpos.st" --info

echo "cli_pos: ok"
