#!/usr/bin/env bash
# tests/cli_resume_state.sh — what --resume takes from a checkpoint's train_state is checked like the
# flags it stands for (a stored value outside a flag's range is one line and exit 1, not an internal
# error), and sampling at a temperature that is 0 in float is greedy (issue 10 item 11).
#   ATTNLAB_BUILD=build/release bash tests/cli_resume_state.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
head -c 20000 "$DATA" >"$W/text.txt"
expect_ok "$TRAIN" "$W/text.txt" --dim 16 --heads 2 --ctx 16 --batch 2 --steps 3 --stop-after 2 --eval-every 1 \
    --eval-batches 1 --dropout 0.2 --threads 1 --out "$W/run.st"

# patch FROM TO OUT: the checkpoint with one train_state member's text replaced by another of the same
# length (the header keeps its size, so the file stays well-formed)
patch() {
    "$PY" - "$W/run.st" "$1" "$2" "$3" <<'PYEOF' || fail "could not patch the checkpoint"
import struct, sys
src, old, new, out = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4]
d = open(src, "rb").read()
n = struct.unpack("<Q", d[:8])[0]
h = d[8:8 + n]
old, new = old.replace(b'"', b'\\"'), new.replace(b'"', b'\\"')  # train_state is JSON inside a JSON string
assert len(old) == len(new) and h.count(old) == 1, (old, h.count(old))
open(out, "wb").write(d[:8] + h.replace(old, new) + d[8 + n:])
PYEOF
}

check "resume of a stored dropout outside [0, 0.99]: exit 1 naming train_state.dropout"
patch '"dropout":0.2' '"dropout":5.0' "$W/drop.st"
run "$TRAIN" "$W/text.txt" --resume "$W/drop.st" --threads 1 --out "$W/x.st"
[ $RC -eq 1 ] || fail "expected exit status 1"
grep -q "train_state.dropout is 5, outside what --dropout accepts \[0, 0.99\]" "$W/err" || fail "no message naming train_state.dropout"
[ "$(wc -l <"$W/err")" -eq 1 ] || fail "expected one line on stderr"
[ ! -e "$W/x.st" ] || fail "a checkpoint was written"

check "resume of a stored batch 0: exit 1 naming train_state.batch (was an internal error)"
patch '"batch":2,' '"batch":0,' "$W/batch.st"
run "$TRAIN" "$W/text.txt" --resume "$W/batch.st" --threads 1 --out "$W/x.st"
[ $RC -eq 1 ] || fail "expected exit status 1"
grep -q "train_state.batch is 0, outside what --batch accepts \[1, 1048576\]" "$W/err" || fail "no message naming train_state.batch"

check "the unpatched run resumes (the patching itself is harmless)"
patch '"dropout":0.2' '"dropout":0.2' "$W/same.st"
expect_ok "$TRAIN" "$W/text.txt" --resume "$W/same.st" --threads 1 --out "$W/x.st"
grep -q "final step 3" "$W/out" || fail "the resumed run did not finish at step 3"

check "--temperature 1e-50 and 1e-300 generate what --temperature 0 does (greedy)"
expect_ok "$INFER" "$W/x.st" --tokens 40 --prompt "ROMEO:" --temperature 0
cp "$W/out" "$W/greedy.txt"
for t in 1e-50 1e-300; do
    expect_ok "$INFER" "$W/x.st" --tokens 40 --prompt "ROMEO:" --temperature $t
    cmp -s "$W/out" "$W/greedy.txt" || fail "--temperature $t differs from greedy: '$(cat "$W/out")' vs '$(cat "$W/greedy.txt")'"
done
echo "cli_resume_state: all checks passed"
