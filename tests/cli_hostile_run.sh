#!/usr/bin/env bash
# tests/cli_hostile_run.sh — the command-line defects of issue 10 that a hostile (or unlucky) user
# meets: outputs that would replace a device, an input or a directory (items 1, 2, 9), two runs on
# one --out (13), temporaries left by kill -9 (6), the replaced checkpoint's mode and CSV log write
# errors (14), training from a pipe (7), a doctored training state on --resume (4), Ctrl-C during a
# long step (8) and --init-from that carries nothing or remaps the vocabulary (16).
# Each check fails with the binaries of commit 69562e3 (before the fixes).
#   ATTNLAB_BUILD=build/release bash tests/cli_hostile_run.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
head -c 20000 "$DATA" >"$W/text.txt"
REST=(--heads 2 --ctx 16 --batch 2 --eval-every 1 --eval-batches 1 --threads 1)
TINY=(--dim 16 "${REST[@]}")
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 3 --stop-after 2 --log-every 1 --out "$W/run.st"
cp "$W/text.txt" "$W/text.orig"
cp "$W/run.st" "$W/run.orig"

# refused ITEM MESSAGE CMD...: exit 1, the message on stderr, nothing trained
refused() {
    local msg=$1; shift
    run "$@"
    [ $RC -eq 1 ] || fail "expected exit status 1"
    grep -q -- "$msg" "$W/err" || fail "stderr does not say '$msg'"
    ! grep -q "^step " "$W/out" || fail "it trained before refusing"
}
unchanged() { cmp -s "$1" "$2" || fail "'$1' was changed"; }

check "--out naming a device node (through a symlink to /dev/null) is refused, not replaced (item 1)"
ln -s /dev/null "$W/devnull.st"
refused "not a regular file" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/devnull.st"
[ -L "$W/devnull.st" ] && [ -c /dev/null ] || fail "the symlink or /dev/null was replaced"
mkfifo "$W/fifo.st"
refused "not a regular file" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/fifo.st"
[ -p "$W/fifo.st" ] || fail "the FIFO was replaced"

check "--out or --log naming the training file, --spans-png naming the checkpoint, --export onto itself: refused (item 2)"
refused "same file as the training file" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/text.txt"
unchanged "$W/text.txt" "$W/text.orig"
refused "same file as the training file" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/o.st" --log "$W/text.txt"
unchanged "$W/text.txt" "$W/text.orig"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --layers "adaptive/mlp" --out "$W/span.st"
cp "$W/span.st" "$W/span.orig"
refused "same file as the checkpoint" "$INFER" "$W/span.st" --spans --spans-png "$W/span.st"
unchanged "$W/span.st" "$W/span.orig"
refused "same file as export CKPT" "$TRAIN" --export "$W/run.st" "$W/run.st"
unchanged "$W/run.st" "$W/run.orig"

check "infer --spans-png is written whole through a temporary (item 2)"
expect_ok "$INFER" "$W/span.st" --spans --spans-png "$W/spans.png"
[ "$(head -c 4 "$W/spans.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "no PNG written"
ls "$W"/spans.png.tmp-* >/dev/null 2>&1 && fail "a temporary was left behind"

check "--out naming a directory or ending in / fails before training (item 9)"
mkdir "$W/dir"
refused "directory" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/dir"
refused "a path ending in '/' names a directory" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/new/"

check "a stale temporary of a dead run is removed with one line; a live one is kept (item 6)"
true & dead=$!; wait $dead
echo junk >"$W/run.st.tmp-$dead"
echo live >"$W/run.st.tmp-$$"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/run.st"
[ ! -e "$W/run.st.tmp-$dead" ] || fail "the stale temporary is still there"
[ -e "$W/run.st.tmp-$$" ] || fail "the temporary of a live process was removed"
grep -q "removed 1 stale temporary file of" "$W/err" || fail "no line about the removed temporary"
rm -f "$W/run.st.tmp-$$"

check "a save keeps the replaced checkpoint's mode 0600 (item 14)"
chmod 600 "$W/run.st"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/run.st"
[ "$(stat -c %a "$W/run.st")" = 600 ] || fail "mode became $(stat -c %a "$W/run.st")"

check "training from a pipe works and stores the hash of the file (item 7)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/file.st"
LAST="cat text | train /dev/stdin"
cat "$W/text.txt" | "$TRAIN" /dev/stdin "${TINY[@]}" --steps 2 --out "$W/pipe.st" >"$W/out" 2>"$W/err"; RC=$?
[ $RC -eq 0 ] || fail "training from a pipe failed"
cmp -s "$W/file.st" "$W/pipe.st" || fail "the checkpoints trained from the pipe and from the file differ"

check "a CSV log that cannot be written (file size limit) is an error, not ignored (item 14)"
LAST="ulimit -f 1; train --log (SIGXFSZ ignored)"
(trap '' XFSZ; ulimit -f 1; exec "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 60 --log-every 1 --save-every 1000 \
    --out "$W/small.st" --log "$W/log.csv") >"$W/out" 2>"$W/err"; RC=$?
[ $RC -ne 0 ] || fail "a failed log write exited 0"
grep -q "cannot write log '$W/log.csv': File too large" "$W/err" || fail "no line about the log"

# edit_state CKPT OUT KEY JSON: the checkpoint with train_state.KEY set to the JSON value
edit_state() {
    "$PY" - "$@" <<'PYEOF' || fail "could not edit the checkpoint"
import json, struct, sys
src, out, key, value = sys.argv[1:5]
d = open(src, "rb").read()
n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n])
st = json.loads(h["__metadata__"]["train_state"])
st[key] = json.loads(value)
h["__metadata__"]["train_state"] = json.dumps(st, separators=(",", ":"))
hb = json.dumps(h, separators=(",", ":")).encode()
hb += b" " * (-len(hb) % 8)
open(out, "wb").write(struct.pack("<Q", len(hb)) + hb + d[8 + n:])
PYEOF
}

check "--resume refuses a doctored training state with one line (item 4)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 3 --stop-after 2 --out "$W/res.st"
edit_state "$W/res.st" "$W/same.st" batch 2
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/same.st" --threads 1 --out "$W/x.st"  # the editing itself is harmless
for kv in "log-every 0:train_state.log-every is 0" "eval-every 0:train_state.eval-every is 0" \
          "grad-accum 0:train_state.grad-accum is 0" "warmup -5:train_state.warmup is -5" \
          "beta2 1.0:train_state.beta2 is 1" "log-every 1e300:train_state.log-every is 1e+300" \
          "rng_data \"$(printf '0%.0s' {1..64})\":train_state.rng_data is all zeros" \
          "ctx 32:train_state.ctx is 32 but the model's config has ctx 16" \
          "batch 3:train_state.tokens_seen is 64, not step 2 x batch 3" \
          "step 1e300:train_state.step is 1e+300"; do
    set -- ${kv%%:*}
    edit_state "$W/res.st" "$W/bad.st" "$1" "$2"
    LAST="resume with train_state.$1 = $2"
    timeout -s KILL 20 "$TRAIN" "$W/text.txt" --resume "$W/bad.st" --threads 1 --out "$W/x2.st" >"$W/out" 2>"$W/err"; RC=$?
    [ $RC -eq 1 ] || fail "expected exit status 1"
    grep -qF "${kv#*:}" "$W/err" || fail "stderr does not say '${kv#*:}'"
    [ "$(wc -l <"$W/err")" -eq 1 ] || fail "expected one line on stderr"
done

check "two runs on one --out: the second is refused naming the first's pid (item 13); Ctrl-C says what happens, a second one exits at once keeping the checkpoint (item 8)"
LONG=(--dim 64 --heads 2 --ctx 128 --batch 8 --grad-accum 200 --steps 5 --eval-every 1000 --eval-batches 1 --threads 1)
cp "$W/run.st" "$W/sig.st"
cp "$W/sig.st" "$W/sig.orig"
"$TRAIN" "$DATA" "${LONG[@]}" --out "$W/sig.st" >"$W/long.out" 2>"$W/long.err" &
pid=$!
for _ in $(seq 100); do grep -q "^data:" "$W/long.out" 2>/dev/null && break; sleep 0.1; done
refused "another run (pid $pid) is writing it" "$TRAIN" "$W/text.txt" "${TINY[@]}" --steps 2 --out "$W/sig.st"
sleep 0.3
t0=$(date +%s.%N)
kill -INT $pid; sleep 0.3; kill -INT $pid
wait $pid; RC=$?
t1=$(date +%s.%N)
LAST="train (long steps), SIGINT twice"; cp "$W/long.out" "$W/out"; cp "$W/long.err" "$W/err"
[ $RC -eq 130 ] || fail "expected exit status 130"
grep -q "interrupt: finishing step 1, then saving; press Ctrl-C again to quit without saving" "$W/err" || fail "no line at the first signal"
grep -q "second signal, exiting now without saving" "$W/err" || fail "no line at the second signal"
"$PY" -c "import sys; sys.exit(0 if $t1 - $t0 < 1.5 else 1)" || fail "the second signal took $(echo "$t1 - $t0" | bc) s"
unchanged "$W/sig.st" "$W/sig.orig"

check "--init-from with no tensor matching is an error (item 16)"
refused "no tensor matches the model" "$TRAIN" "$W/text.txt" "${REST[@]}" --dim 24 --steps 2 --init-from "$W/run.st" --out "$W/i.st"

check "--init-from into fewer layers needs --init-partial; the fresh tensors are named (item 16)"
refused "pass --init-partial if that is intended" "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers "2*softmax/mlp" --steps 2 \
    --init-from "$W/run.st" --out "$W/i.st"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers "2*softmax/mlp" --steps 2 --init-from "$W/run.st" --init-partial --out "$W/i.st"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --layers "5*softmax/mlp" --steps 2 --init-from "$W/run.st" --out "$W/i.st"
grep -q "initialized fresh (16): layers.4.ln1.weight, .*layers.4.attn.wq, .*layers.4.ffn.b2$" "$W/err" || fail "the fresh layer's tensors are not named"

check "--init-from keeps the source's char tokenizer; a text it cannot encode is refused naming the character (item 16)"
expect_ok "$TRAIN" "$W/text.txt" "${TINY[@]}" --tokenizer char --steps 2 --out "$W/char.st"
expect_ok "$INFER" "$W/char.st" --info
vocab=$(grep -o "vocab [0-9]*" "$W/out")
tr -d 'e' <"$W/text.txt" >"$W/no_e.txt"  # one character fewer: a vocabulary rebuilt from it would shift
expect_ok "$TRAIN" "$W/no_e.txt" "${TINY[@]}" --steps 3 --stop-after 2 --init-from "$W/char.st" --out "$W/ft.st"
grep -q "[0-9]* of [0-9]* tensors loaded" "$W/err" && ! grep -q "initialized fresh" "$W/err" || fail "not every tensor was carried over"
expect_ok "$INFER" "$W/ft.st" --info
grep -q "$vocab" "$W/out" || fail "the fine-tuned model's vocabulary is not the source's ($vocab)"
expect_ok "$TRAIN" "$W/no_e.txt" --resume "$W/ft.st" --threads 1  # its train_state names the tokenizer it uses
printf 'abc~\n' >"$W/tilde.txt"; cat "$W/no_e.txt" >>"$W/tilde.txt"
refused "character U+007E ('~') at byte offset 3 is not in the checkpoint's char vocabulary" \
    "$TRAIN" "$W/tilde.txt" "${TINY[@]}" --steps 2 --init-from "$W/char.st" --out "$W/ft2.st"
echo "cli_hostile_run: all checks passed"
