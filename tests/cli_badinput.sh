#!/usr/bin/env bash
# tests/cli_badinput.sh — every case of ARCHITECTURE.md §9 (the reliability list) from the command
# line: each bad input gives the right exit status (2 usage error, 1 run-time failure, 130 after
# Ctrl-C/SIGTERM), exactly one line on stderr naming the problem, no crash (no exit >= 128 except
# the deliberate 130), and an existing checkpoint at --out is never lost or corrupted.
#   ATTNLAB_BUILD=build/release bash tests/cli_badinput.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

# expect_err CODE REGEX CMD...: exit status CODE, exactly one non-empty stderr line matching REGEX
# (extended, case-insensitive), and no crash.
expect_err() {
    local code=$1 re=$2; shift 2
    run "$@"
    [ $RC -ge 128 ] && [ $RC -ne 130 ] && fail "crashed (signal $((RC - 128)))"
    [ $RC -eq "$code" ] || fail "expected exit status $code"
    local n; n=$(grep -c . "$W/err")
    [ "$n" -eq 1 ] || fail "expected exactly one line on stderr, got $n"
    grep -Eiq -- "$re" "$W/err" || fail "stderr does not match /$re/"
}
expect_ok() {
    run "$@"
    [ $RC -eq 0 ] || fail "expected success"
}

# A tiny, fast model; any of these defaults can be overridden by passing the flag again.
tiny_args() {
    local -A d=([dim]=16 [heads]=2 [ctx]=16 [batch]=2 [steps]=4 [eval-every]=2 [layers]=1*softmax/mlp
                [threads]=1 [out]="$W/keep.st")
    local extra=() k
    while [ $# -gt 0 ]; do
        if [[ $1 == --* ]] && [[ -v d[${1#--}] ]] && [ $# -ge 2 ]; then k=${1#--}; d[$k]=$2; shift 2; continue; fi
        extra+=("$1"); shift
    done
    TARGS=("${extra[@]}")
    for k in "${!d[@]}"; do TARGS+=("--$k" "${d[$k]}"); done
}
tiny() { tiny_args "$@"; "$TRAIN" "${TARGS[@]}"; }

# The precious checkpoint every failing train run points --out at.
kept() {
    cmp -s "$W/keep.st" "$W/keep.orig" || fail "the existing checkpoint at --out was changed or lost"
    local tmps; tmps=$(find "$W" -name '*.tmp-*' | head -3)
    [ -z "$tmps" ] || fail "temporary files left behind: $tmps"
}

# safetensors surgery with numpy-free Python (struct + json).
cat >"$W/st.py" <<'EOF'
import json, struct, sys
def read(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
def write(p, h, data):
    hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) % 8)
    open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
cmd, src, dst = sys.argv[1:4]
if cmd == 'foreign':          # a valid safetensors file with no attnlab metadata
    data = struct.pack('<4f', 1, 2, 3, 4)
    write(dst, {"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                "__metadata__": {"format": "pt"}}, data)
elif cmd == 'setmeta':        # setmeta SRC DST KEY VALUE
    h, data = read(src); h['__metadata__'][sys.argv[4]] = sys.argv[5]; write(dst, h, data)
elif cmd == 'nan':            # nan SRC DST TENSOR: set the tensor's first value to NaN
    h, data = read(src); a = h[sys.argv[4]]['data_offsets'][0]
    data = data[:a] + struct.pack('<f', float('nan')) + data[a + 4:]; write(dst, h, data)
elif cmd == 'datalen':        # print the header size (8 + N) so tests can cut into the data
    b = open(src, 'rb').read(8); print(8 + struct.unpack('<Q', b)[0])
EOF

head -c 30000 "$DATA" >"$W/text.txt"
check "setup: a checkpoint to protect (train --out keep.st)"
expect_ok tiny "$W/text.txt"
cp "$W/keep.st" "$W/keep.orig"

# ---------------------------------------------------------------------------------------------
# input files

check "missing training file: exit 1, names the file"
expect_err 1 "cannot open.*nosuch\.txt.*(no such|not found)" tiny "$W/nosuch.txt"; kept
check "empty training file: exit 1, says empty"
: >"$W/empty.txt"
expect_err 1 "empty\.txt.*empty" tiny "$W/empty.txt"; kept
check "directory as training file: exit 1, says directory"
mkdir -p "$W/adir"
expect_err 1 "adir.*directory" tiny "$W/adir"; kept
if [ "$(id -u)" -ne 0 ]; then
    check "unreadable training file: exit 1, permission denied"
    cp "$W/text.txt" "$W/noread.txt"; chmod 000 "$W/noread.txt"
    expect_err 1 "noread\.txt.*permission" tiny "$W/noread.txt"; kept
else
    check "unreadable training file: skipped (running as root reads anything)"
fi
check "file shorter than ctx+1 tokens: exit 1, mentions ctx"
head -c 10 "$W/text.txt" >"$W/tiny.txt"
expect_err 1 "tiny\.txt.*ctx" tiny "$W/tiny.txt"; kept
check "validation split shorter than ctx+1 (train split long enough): exit 1, says validation"
head -c 120 "$W/text.txt" >"$W/short.txt"   # 108 train tokens >= 17, 12 validation < 17
expect_err 1 "validation.*ctx" tiny "$W/short.txt"; kept

check "binary / invalid UTF-8 with the byte tokenizer: accepted"
{ head -c 4000 "$W/text.txt"; printf '\xff\xfe\x00\x80\xc3\x28 \xed\xa0\x80'; head -c 2000 /dev/urandom; } >"$W/binary.txt"
expect_ok tiny "$W/binary.txt" --out "$W/bin.st"
check "binary / invalid UTF-8 with the char tokenizer: exit 1, says invalid UTF-8 and where"
expect_err 1 "invalid UTF-8.*offset 4000" tiny "$W/binary.txt" --tokenizer char; kept

check "UTF-8 BOM and CRLF line ends are text: char vocab holds U+FEFF and \\r"
{ printf '\xef\xbb\xbf'; head -c 6000 "$W/text.txt" | sed 's/$/\r/'; } >"$W/bom.txt"
expect_ok tiny "$W/bom.txt" --tokenizer char --out "$W/bom.st"
"$PY" - "$W/bom.st" <<'EOF' || fail "char vocabulary lacks U+FEFF or CR"
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
cps = json.loads(json.loads(b[8:8 + n])['__metadata__']['tokenizer'])['codepoints']
sys.exit(0 if 0xFEFF in cps and 13 in cps and 10 in cps else 1)
EOF
check "BOM/CRLF text round-trips through --eval and a CRLF prompt"
expect_ok "$INFER" "$W/bom.st" --eval "$W/bom.txt"
expect_ok "$INFER" "$W/bom.st" --prompt $'First\r\n' --tokens 5 --temperature 0

check "char checkpoint: a prompt character outside the vocab is exit 2 naming U+ code point"
expect_ok tiny "$W/text.txt" --tokenizer char --out "$W/char.st"
expect_err 2 "U\+00E9.*vocab" "$INFER" "$W/char.st" --prompt "héllo" --tokens 5
check "char checkpoint: --eval file with characters outside the vocab is exit 1 naming the file"
printf 'hello ~ world\n' >"$W/tilde.txt"
expect_err 1 "tilde\.txt.*U\+007E.*vocab" "$INFER" "$W/char.st" --eval "$W/tilde.txt"
check "char checkpoint: --eval on binary text is exit 1 (invalid UTF-8)"
expect_err 1 "invalid UTF-8" "$INFER" "$W/char.st" --eval "$W/binary.txt"
check "--eval with a missing / empty / one-token file: exit 1"
expect_err 1 "nosuch\.txt" "$INFER" "$W/char.st" --eval "$W/nosuch.txt"
expect_err 1 "empty" "$INFER" "$W/char.st" --eval "$W/empty.txt"
printf 'a' >"$W/one.txt"
expect_err 1 "one\.txt.*(token|at least)" "$INFER" "$W/char.st" --eval "$W/one.txt"

# ---------------------------------------------------------------------------------------------
# options

for f in steps batch ctx dim heads; do
    check "--$f: non-numeric, negative and zero are exit 2 naming --$f"
    for v in abc -3 0 1.5; do
        expect_err 2 "--$f" tiny "$W/text.txt" --$f $v; kept
    done
done
for f in lr dropout warmup seed eval-every; do
    check "--$f: non-numeric and negative are exit 2 naming --$f"
    expect_err 2 "--$f" tiny "$W/text.txt" --$f abc; kept
    expect_err 2 "--$f" tiny "$W/text.txt" --$f -1; kept
done
check "a flag without its value, a flag given twice: exit 2"
expect_err 2 "--out.*value" "$TRAIN" "$W/text.txt" --out; kept
expect_err 2 "--prompt.*value" "$INFER" "$W/char.st" --prompt
expect_err 2 "--lr.*twice" tiny "$W/text.txt" --lr 1e-3 --lr 2e-3; kept
expect_err 2 "--layers needs a value, got the option '--check'" "$TRAIN" "$W/text.txt" --layers --check; kept
expect_err 2 "--out needs a value, got the option '--steps=3'" "$TRAIN" "$W/text.txt" --out --steps=3; kept
expect_err 2 "--prompt needs a value, got the option '--help'" "$INFER" "$W/char.st" --prompt --help
check "inconsistent options: --stop-after beyond --steps, --min-lr above --lr: exit 2"
expect_err 2 "stop-after" tiny "$W/text.txt" --steps 4 --stop-after 9; kept
expect_err 2 "min-lr" tiny "$W/text.txt" --lr 1e-4 --min-lr 1e-3; kept
check "--dropout 0 accepted (its zero is documented)"
expect_ok tiny "$W/text.txt" --dropout 0 --out "$W/d0.st"
check "--heads not dividing --dim: exit 2 naming both"
expect_err 2 "heads.*dim|dim.*heads" tiny "$W/text.txt" --dim 18 --heads 4; kept
check "unknown --layers kind: exit 2, names it and lists the known kinds"
expect_err 2 "'?foo'?.*softmax.*mlp" tiny "$W/text.txt" --layers 'foo/mlp'; kept
expect_err 2 "'?bar'?.*softmax.*mlp" tiny "$W/text.txt" --layers 'softmax/bar'; kept
check "unknown block option: exit 2, names it and lists the kind's options"
expect_err 2 "bogus.*persist" tiny "$W/text.txt" --layers 'softmax(bogus=1)/mlp'; kept
expect_err 2 "bogus.*hidden" tiny "$W/text.txt" --layers 'softmax/mlp(bogus=1)'; kept
check "train --list-kinds: one line 'KIND ROLE EXAMPLE...' per kind; every example of every kind trains"
expect_ok "$TRAIN" --list-kinds
cp "$W/out" "$W/kinds"
[ "$(grep -c . "$W/kinds")" -ge 9 ] || fail "--list-kinds lists fewer than the 9 kinds of BLOCKS.md"
for k in softmax adaptive allattn performer linformer collab mlp none pkm; do
    grep -Eq "^$k (mixer|ffn) [^ ]" "$W/kinds" || fail "--list-kinds has no line with examples for '$k'"
done
while read -r kind role examples; do
    for ex in $examples; do
        [ "$role" = ffn ] && spec="softmax/$ex" || spec=$ex
        expect_ok tiny "$W/text.txt" --layers "$spec" --out "$W/kind.st"
    done
    # and the kind with its default options (what users get)
    [ "$role" = ffn ] && spec="softmax/$kind" || spec=$kind
    expect_ok tiny "$W/text.txt" --layers "$spec" --out "$W/kind.st"
done <"$W/kinds"
check "pkm options out of range: exit 2 naming the layer and the option"
expect_err 2 "layer 1 \(pkm\): option slots=1000 is not a perfect square" tiny "$W/text.txt" --layers 'softmax/mlp,softmax/pkm(slots=1000)'; kept
expect_err 2 "layer 0 \(pkm\): option k=32 exceeds sqrt\(slots\)=16" tiny "$W/text.txt" --layers 'softmax/pkm(slots=256)'; kept
expect_err 2 "layer 0 \(pkm\): option dk=9 must be even" tiny "$W/text.txt" --layers 'softmax/pkm(dk=9)'; kept
check "unknown option: exit 2, names it"
expect_err 2 "unknown option.*--bogus" tiny "$W/text.txt" --bogus 1; kept
expect_err 2 "unknown option.*--bogus" "$INFER" "$W/char.st" --bogus
check "unknown --tokenizer: exit 2, lists byte and char"
expect_err 2 "tokenizer.*byte.*char" tiny "$W/text.txt" --tokenizer bpe2; kept
check "infer: --temperature 0 accepted; negative temperature, --top-k 0, --top-p 0, --tokens -1 are exit 2"
expect_ok "$INFER" "$W/char.st" --temperature 0 --tokens 5
expect_err 2 "--temperature" "$INFER" "$W/char.st" --temperature -1
expect_err 2 "--top-k" "$INFER" "$W/char.st" --top-k 0
expect_err 2 "--top-p" "$INFER" "$W/char.st" --top-p 0
expect_err 2 "--tokens" "$INFER" "$W/char.st" --tokens -1
check "infer: --eval and --info together, no checkpoint at all: exit 2"
expect_err 2 "eval.*info|exclude" "$INFER" "$W/char.st" --eval "$W/text.txt" --info
expect_err 2 "checkpoint" "$INFER"
check "train: no FILE, --export with a missing argument: exit 2"
expect_err 2 "FILE|file" "$TRAIN" --steps 3
expect_err 2 "export" "$TRAIN" --export "$W/keep.st"

# ---------------------------------------------------------------------------------------------
# bad checkpoints (infer and train --resume both refuse them)

ck="$W/keep.orig"
check "missing / directory checkpoint: exit 1"
expect_err 1 "nosuch\.st" "$INFER" "$W/nosuch.st" --info
expect_err 1 "adir.*directory" "$INFER" "$W/adir" --info
check "truncated checkpoint (inside the header, inside the data, 4 bytes): exit 1"
head -c 1000 "$ck" >"$W/trunc1.st"
expect_err 1 "trunc1\.st.*(truncated|past the end|short)" "$INFER" "$W/trunc1.st" --info
hl=$("$PY" "$W/st.py" datalen "$ck" -)
head -c $((hl + 100)) "$ck" >"$W/trunc2.st"
expect_err 1 "trunc2\.st.*(truncated|past|short|bounds|end)" "$INFER" "$W/trunc2.st" --info
head -c 4 "$ck" >"$W/trunc3.st"
expect_err 1 "trunc3\.st" "$INFER" "$W/trunc3.st" --info
check "corrupted header (bytes overwritten in the JSON): exit 1"
cp "$ck" "$W/corrupt.st"; printf 'XXXX' | dd of="$W/corrupt.st" bs=1 seek=20 conv=notrunc 2>/dev/null
expect_err 1 "corrupt\.st.*(JSON|corrupt)" "$INFER" "$W/corrupt.st" --info
check "absurd header length: exit 1"
{ printf '\xff\xff\xff\xff\xff\xff\xff\x7f'; head -c 100 /dev/zero; } >"$W/hugelen.st"
expect_err 1 "hugelen\.st" "$INFER" "$W/hugelen.st" --info
check "a text file as checkpoint: exit 1"
expect_err 1 "text\.txt" "$INFER" "$W/text.txt" --info
check "foreign safetensors file (valid, no attnlab metadata): exit 1, says not attnlab"
"$PY" "$W/st.py" foreign - "$W/foreign.st" || fail "could not write the foreign file"
expect_err 1 "foreign\.st.*not an attnlab" "$INFER" "$W/foreign.st" --info
expect_err 1 "foreign\.st.*not an attnlab" "$INFER" "$W/foreign.st" --eval "$W/text.txt"
check "checkpoint from a newer format version: exit 1, names the version and says upgrade"
"$PY" "$W/st.py" setmeta "$ck" "$W/newer.st" format_version 999 || fail "could not rewrite metadata"
expect_err 1 "newer.*999.*|999.*newer" "$INFER" "$W/newer.st" --info
expect_err 1 "999" tiny "$W/text.txt" --resume "$W/newer.st"; kept
check "config metadata that is not JSON: exit 1"
"$PY" "$W/st.py" setmeta "$ck" "$W/badcfg.st" config '{"dim": 16,' || fail "could not rewrite metadata"
expect_err 1 "config" "$INFER" "$W/badcfg.st" --info
check "--resume with a corrupted checkpoint: exit 1, --out untouched"
expect_err 1 "corrupt\.st" tiny "$W/text.txt" --resume "$W/corrupt.st"; kept
check "--resume with a different --ctx (beyond the checkpoint's): exit 2 naming --ctx"
expect_err 2 "--ctx" tiny "$W/text.txt" --resume "$ck" --ctx 64 --steps 8; kept
check "--resume on a different training file: exit 2"
expect_err 2 "not the file" tiny "$W/bom.txt" --resume "$ck" --steps 8; kept

# ---------------------------------------------------------------------------------------------
# run-time failures during training

check "--resume from weights with a NaN: refused at load naming the tensor, keeps --out"
"$PY" "$W/st.py" nan "$ck" "$W/nan.st" wte || fail "could not plant a NaN"
expect_err 1 "tensor .wte. holds a non-finite value" tiny "$W/text.txt" --resume "$W/nan.st" --steps 8; kept

# Divergence: AdamW's decoupled decay at lr 10, weight decay 10 multiplies every decayed weight by
# 1 - 100 = -99 a step, so the loss or a gradient overflows within a few steps (step 9 here, for
# any seed and thread count tried), whatever the data.
diverge=(--steps 60 --lr 10 --min-lr 10 --weight-decay 10 --warmup 0)
check "training diverges (non-finite loss or gradient): exit 1 naming the step, keeps --out"
expect_err 1 "(NaN|infinite|non-finite) at step [0-9]+; stopping without saving" \
    tiny "$W/text.txt" "${diverge[@]}" --eval-every 1000; kept
check "training diverges after checkpoints: the last one (before the failing step) is kept and loads"
expect_err 1 "at step [0-9]+; stopping" tiny "$W/text.txt" "${diverge[@]}" --eval-every 4 --out "$W/div.st"
bad_step=$(grep -Eo "at step [0-9]+" "$W/err" | grep -Eo "[0-9]+")
expect_ok "$INFER" "$W/div.st" --info
grep -Eq "\"step\":[[:space:]]*$(( (bad_step - 1) / 4 * 4 ))," "$W/out" || fail "div.st is not the step-$(( (bad_step - 1) / 4 * 4 )) checkpoint"
[ "$bad_step" -gt 4 ] || fail "diverged at step $bad_step, before any checkpoint"

check "unwritable output path (--out in a missing directory): exit 1, says cannot write"
expect_err 1 "cannot write.*nodir" tiny "$W/text.txt" --out "$W/nodir/x.st"
[ ! -e "$W/nodir" ] || fail "created $W/nodir"
expect_err 1 "cannot write.*nodir" "$TRAIN" --export "$ck" "$W/nodir/x.st"

check "disk full (file size limit, EFBIG): exit 1, old checkpoint kept, no temp files left"
# dim 64 makes the checkpoint (~700 KB) larger than the 64 KB limit; the old one is read first.
expect_ok tiny "$W/text.txt" --dim 64 --out "$W/big.st"
cp "$W/big.st" "$W/big.orig"
run bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' _ "$TRAIN" "$W/text.txt" --dim 64 --heads 2 --ctx 16 --batch 2 \
    --steps 4 --eval-every 2 --layers 1*softmax/mlp --threads 1 --out "$W/big.st"
[ $RC -eq 1 ] || fail "expected exit status 1 when the disk is full"
[ "$(grep -c . "$W/err")" -eq 1 ] || fail "expected exactly one line on stderr"
grep -Eiq "big\.st.*(too large|space|EFBIG)" "$W/err" || fail "message does not name the file and the reason"
cmp -s "$W/big.st" "$W/big.orig" || fail "the old checkpoint was changed by the failed write"
[ -z "$(find "$W" -name '*.tmp-*')" ] || fail "temporary files left behind"
check "disk full during --export: exit 1, no partial file, no temp files"
run bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' _ "$TRAIN" --export "$W/big.orig" "$W/big-export.st"
[ $RC -eq 1 ] || fail "expected exit status 1"
[ ! -e "$W/big-export.st" ] || fail "a partial export was left behind"
[ -z "$(find "$W" -name '*.tmp-*')" ] || fail "temporary files left behind"

# ---------------------------------------------------------------------------------------------
# signals

# interrupt SIG OUT STEPS_SEEN EXTRA...: start a long run, wait until it printed STEPS_SEEN progress
# lines, send SIG; then expect exit 130, a "checkpoint:" line and a loadable checkpoint.
interrupt() {
    local sig=$1 out=$2 seen=$3; shift 3
    rm -f "$out"
    tiny_args "$W/text.txt" --steps 1000000 --eval-every 1000 --log-every 1 --out "$out" "$@"
    "$TRAIN" "${TARGS[@]}" >"$W/sig.out" 2>"$W/sig.err" &
    local pid=$! i
    # Wait for the progress lines (the handler is installed before the first): a signal sent earlier
    # would hit a background job whose SIGINT the shell set to ignored, and the run would never end.
    # Generous bounds for loaded machines; on expiry the test fails instead of hanging.
    for i in $(seq 1 6000); do
        [ "$(grep -c '^step ' "$W/sig.out")" -ge "$seen" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    if [ "$(grep -c '^step ' "$W/sig.out")" -lt "$seen" ]; then
        kill -KILL $pid 2>/dev/null; fail "train printed fewer than $seen progress lines in 300 s"
    fi
    kill -"$sig" $pid 2>/dev/null
    for i in $(seq 1 2400); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fail "train still running 120 s after SIG$sig"; fi
    wait $pid; RC=$?
    LAST="train ... --out $out (then kill -$sig after $seen progress lines)"
    cp "$W/sig.out" "$W/out"; cp "$W/sig.err" "$W/err"
    [ $RC -eq 130 ] || fail "expected exit status 130 after SIG$sig"
    grep -q "^checkpoint: $out" "$W/sig.out" || fail "no final 'checkpoint:' line after SIG$sig"
    [ -z "$(find "$W" -name '*.tmp-*')" ] || fail "temporary files left behind after SIG$sig"
    run "$INFER" "$out" --info
    [ $RC -eq 0 ] || fail "the checkpoint written after SIG$sig does not load"
}
check "Ctrl-C (SIGINT) during training: exit 130, checkpoint written and loadable"
interrupt INT "$W/int.st" 3
check "SIGTERM during training: exit 130, checkpoint written and loadable"
interrupt TERM "$W/term.st" 3
check "the interrupted run resumes from where it stopped"
expect_ok "$INFER" "$W/int.st" --info
step=$(grep -E '^[[:space:]]*"step":' "$W/out" | grep -Eo '[0-9]+' | head -1)
[ -n "$step" ] || fail "--info shows no training step"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/int.st" --steps $((step + 2)) --out "$W/int2.st" --threads 1
grep -q "step $((step + 2))/$((step + 2))" "$W/out" || fail "the resumed run did not reach step $((step + 2))"
check "Ctrl-C during a save (saving every step, larger model, several timings): checkpoint intact"
for seen in 2 5 9; do
    interrupt INT "$W/save.st" $seen --dim 64 --save-every 1
done

echo "cli_badinput: all checks passed"
