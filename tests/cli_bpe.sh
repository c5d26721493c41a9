#!/usr/bin/env bash
# tests/cli_bpe.sh — BPE and token shards from the command line (docs/tokenizers.md): train
# --tokenizer bpe --vocab N, --prepare (byte and bpe, --tokenizer-from), training on a mapped shard
# == training on the text step for step (random windows and segment-memory streams), a list of
# shards, --val (text or shard), infer --eval on a shard and --export-vocab (tiktoken's format),
# and bad input: one line each, exit 2 for usage, 1 for data.
#   ATTNLAB_BUILD=build/release bash tests/cli_bpe.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"

small=(--dim 16 --heads 2 --ctx 16 --batch 3 --layers 1*softmax/mlp --steps 12 --eval-every 6 --eval-batches 2 --threads 1 --seed 5 --log-every 2)
VAL=$W/val.txt
bash tests/gen_text.sh 20000 9 >"$VAL" || fail "gen_text"

# losses CKPT_LOG: the step, split and loss columns of a CSV log, found by header name
losses() { awk -F, 'NR==1{for(i=1;i<=NF;i++)c[$i]=i; next}{print $c["step"], $c["split"], $c["loss"], $c["bpb"]}' "$1"; }

check "--tokenizer bpe --vocab 300 trains on the text; the checkpoint holds the merges"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --tokenizer bpe --vocab 300 --out "$W/text.st" --log "$W/text.csv"
grep -q "vocab 300 (bpe)" "$W/out" || fail "header does not name the bpe vocabulary"
expect_ok "$INFER" "$W/text.st" --info
grep -q "tokenizer: bpe (300 tokens)" "$W/out" || fail "infer --info does not show the bpe tokenizer"

check "--prepare with --tokenizer bpe makes a 16-bit shard whose split is the text's"
expect_ok "$TRAIN" --prepare "$DATA" "$W/bpe.shard" --tokenizer bpe --vocab 300
grep -q "tokens of 16 bits | tokenizer bpe, 300 tokens" "$W/out" || fail "prepare summary"
"$PY" - "$W/bpe.shard" <<'PYEOF' || fail "shard header"
import struct, sys
b = open(sys.argv[1], 'rb').read()
magic, ver, bits, n, ntrain, tbytes = b[:8], *struct.unpack('<IIQQQ', b[8:40])
jlen, doff = struct.unpack('<II', b[56:64])
assert magic == b'ATNLSHRD' and ver == 1 and bits == 16, (magic, ver, bits)
assert doff % 64 == 0 and len(b) == doff + n * 2, (doff, n, len(b))
assert tbytes == 100000 and 0 < ntrain < n
assert b[64:64 + jlen].startswith(b'{"kind":"bpe","merges":[[')
PYEOF

check "training on the shard (mapped) == training on the text, step for step"
expect_ok "$TRAIN" "$W/bpe.shard" "${small[@]}" --out "$W/shard.st" --log "$W/shard.csv"
grep -q "(1 shard, mapped)" "$W/out" || fail "header does not say the shard is mapped"
[ "$(losses "$W/text.csv")" = "$(losses "$W/shard.csv")" ] || fail "losses differ: $(diff <(losses "$W/text.csv") <(losses "$W/shard.csv") | head -4)"
[ "$(losses "$W/text.csv" | wc -l)" -ge 5 ] || fail "too few log rows"

check "train --check (compare's validation) reads a shard as a run would: same parameter count as the text"
expect_ok "$TRAIN" --check "$W/bpe.shard" "${small[@]}"
from_shard=$(grep -E '^check: ' "$W/out") || fail "no check line for the shard"
expect_ok "$TRAIN" --check "$DATA" "${small[@]}" --tokenizer bpe --vocab 300
[ "$(grep -E '^check: ' "$W/out")" = "$from_shard" ] || fail "--check on the shard says '$from_shard', on the text '$(cat "$W/out")'"

check "byte shard, segment memory (streams): shard == text step for step"
mem=(--pos rope --memory 16)
expect_ok "$TRAIN" --prepare "$DATA" "$W/byte.shard"
expect_ok "$TRAIN" "$DATA" "${small[@]}" "${mem[@]}" --out "$W/mt.st" --log "$W/mt.csv"
expect_ok "$TRAIN" "$W/byte.shard" "${small[@]}" "${mem[@]}" --out "$W/ms.st" --log "$W/ms.csv"
[ "$(losses "$W/mt.csv")" = "$(losses "$W/ms.csv")" ] || fail "memory-mode losses differ"

check "a run trained on the text resumes from its shard (the shard records the text's hash)"
expect_ok "$TRAIN" "$W/byte.shard" --resume "$W/mt.st" --steps 14 --out "$W/mt2.st"

check "a list of shards: one sequence, the last shard's split is the validation"
head -c 60000 "$DATA" >"$W/a.txt"; tail -c +60001 "$DATA" >"$W/b.txt"
expect_ok "$TRAIN" --prepare "$W/a.txt" "$W/a.shard"
expect_ok "$TRAIN" --prepare "$W/b.txt" "$W/b.shard"
expect_ok "$TRAIN" "$W/a.shard" "$W/b.shard" "${small[@]}" --out "$W/ab.st"
grep -q "(2 shards, mapped) | 100000 tokens: 96000 train, 4000 validation" "$W/out" || fail "two shards: $(grep data: "$W/out")"

check "--val: a text or a shard replaces the split, with the same numbers"
expect_ok "$TRAIN" "$DATA" "${small[@]}" --tokenizer bpe --vocab 300 --val "$VAL" --out "$W/v1.st" --log "$W/v1.csv"
grep -Eq "tokens: ([0-9]+) train, [0-9]+ validation from .*val.txt" "$W/out" || fail "--val not in the header"
ntok=$(sed -n 's/.*| \([0-9]*\) tokens: \([0-9]*\) train.*/\1 \2/p' "$W/out"); set -- $ntok
[ "$1" = "$2" ] || fail "with --val every token of the file trains ($ntok)"
expect_ok "$TRAIN" --prepare "$DATA" "$W/all.shard" --tokenizer-from "$W/v1.st"
expect_ok "$TRAIN" --prepare "$VAL" "$W/val.shard" --tokenizer-from "$W/v1.st"
expect_ok "$TRAIN" "$W/all.shard" "${small[@]}" --val "$W/val.shard" --out "$W/v2.st" --log "$W/v2.csv"
[ "$(losses "$W/v1.csv")" = "$(losses "$W/v2.csv")" ] || fail "--val text vs shard: losses differ"

check "--val is kept by --resume (the stored path, its tokens checked); a changed file or another --val is refused"
expect_ok "$TRAIN" "$DATA" --resume "$W/v1.st" --steps 14 --out "$W/v1r.st"
grep -Eq "[0-9]+ validation from .*val.txt" "$W/out" || fail "resume without --val lost it: $(grep data: "$W/out")"
cp "$VAL" "$W/val.keep"; printf 'x' >>"$VAL"
expect_err 2 "is not the validation data of the run" "$TRAIN" "$DATA" --resume "$W/v1.st" --steps 14 --out "$W/v1x.st"
cp "$W/val.keep" "$VAL"
expect_err 2 "^attnlab: --val conflicts with the run stored" "$TRAIN" "$DATA" --resume "$W/v1.st" --val "$DATA" --steps 14 --out "$W/v1x.st"
[ -e "$W/v1x.st" ] && fail "a refused resume wrote a checkpoint"

check "a shard's pages do not stay resident: training on a 12x larger shard keeps the peak RSS"
# Random windows fault in pages (and the kernel maps 64 KB around each fault); shard_read drops them
# again, so the resident set is the model's, not the corpus's. Without that, 400 steps of 3 rows on
# the large shard would keep ~75 MB of it mapped.
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do cat "$DATA"; done >"$W/x12.txt"
while [ "$(wc -c <"$W/x12.txt")" -lt 24000000 ]; do cat "$W/x12.txt" "$W/x12.txt" >"$W/x24.txt"; mv "$W/x24.txt" "$W/x12.txt"; done
head -c 2000000 "$W/x12.txt" >"$W/x1.txt"
expect_ok "$TRAIN" --prepare "$W/x1.txt" "$W/x1.shard"
expect_ok "$TRAIN" --prepare "$W/x12.txt" "$W/x12.shard"
rm -f "$W/x12.txt"
# peak_rss SHARD: the peak resident set (KB) of a 400-step run on it (getrusage of the child)
peak_rss() {
  "$PY" - "$TRAIN" "$1" "$W/rss.st" "$VAL" <<'PYEOF'
import resource, subprocess, sys
train, shard, out, val = sys.argv[1:5]
r = subprocess.run([train, shard, "--val", val, "--dim", "16", "--heads", "2", "--ctx", "16", "--batch", "3",
                    "--layers", "1*softmax/mlp", "--steps", "400", "--eval-every", "1000", "--final-eval", "none",
                    "--threads", "1", "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)
PYEOF
}
small_rss=$(peak_rss "$W/x1.shard"); big_rss=$(peak_rss "$W/x12.shard")
[ "$small_rss" -gt 0 ] && [ "$big_rss" -gt 0 ] || fail "a run on the shards failed ($small_rss, $big_rss)"
[ "$big_rss" -le $((small_rss * 11 / 10 + 1024)) ] || fail "peak RSS grows with the shard: $small_rss KB (2 MB) vs $big_rss KB (24 MB)"
rm -f "$W/x1.shard" "$W/x12.shard"

check "infer --eval on a shard == on its text (byte: the same tokens); --export-vocab"
expect_ok "$INFER" "$W/mt.st" --eval "$DATA"; a=$(cat "$W/out")
expect_ok "$INFER" "$W/mt.st" --eval "$W/byte.shard"; b=$(cat "$W/out")
[ "$a" = "$b" ] || fail "eval differs: $a vs $b"
expect_ok "$INFER" "$W/text.st" --export-vocab "$W/vocab.tiktoken"
"$PY" - "$W/vocab.tiktoken" <<'PYEOF' || fail "tiktoken export"
import base64, sys
ranks = {}
for line in open(sys.argv[1], 'rb').read().splitlines():
    tok, rank = line.split(b' ')
    ranks[base64.b64decode(tok, validate=True)] = int(rank)
assert len(ranks) == 300 and sorted(ranks.values()) == list(range(300)), len(ranks)
assert all(ranks[bytes([i])] == i for i in range(256))
# every merged token is two earlier tokens' bytes joined
for t, r in ranks.items():
    if r >= 256:
        assert any(ranks.get(t[:k], 1e9) < r and ranks.get(t[k:], 1e9) < r for k in range(1, len(t))), t
PYEOF

check "bad input: one line each"
expect_err 2 "--vocab" "$TRAIN" "$DATA" "${small[@]}" --tokenizer bpe --vocab 256 --out "$W/x.st"
expect_err 2 "--tokenizer bpe needs --vocab N" "$TRAIN" "$DATA" "${small[@]}" --tokenizer bpe --out "$W/x.st"
expect_err 2 "--vocab .*needs --tokenizer bpe" "$TRAIN" "$DATA" "${small[@]}" --vocab 300 --out "$W/x.st"
head -c 300 "$DATA" >"$W/tiny.txt"
expect_err 1 "--vocab 5000 is more than the training text supports" "$TRAIN" "$W/tiny.txt" --tokenizer bpe --vocab 5000 --ctx 4 --out "$W/x.st"
expect_err 1 "--vocab 5000 is more than the training text supports" "$TRAIN" --prepare "$W/tiny.txt" "$W/x.shard" --tokenizer bpe --vocab 5000
sz=$(stat -c %s "$W/bpe.shard")
head -c $((sz - 1)) "$W/bpe.shard" >"$W/trunc.shard"
expect_err 1 "shard '.*trunc.shard' is truncated" "$TRAIN" "$W/trunc.shard" "${small[@]}" --out "$W/x.st"
head -c 40 "$W/bpe.shard" >"$W/head.shard"
expect_err 1 "is truncated" "$TRAIN" "$W/head.shard" "${small[@]}" --out "$W/x.st"
expect_err 2 "--tokenizer char conflicts with shard .* made by a bpe tokenizer" "$TRAIN" "$W/bpe.shard" "${small[@]}" --tokenizer char --out "$W/x.st"
expect_err 2 "--vocab learns a vocabulary from a text" "$TRAIN" "$W/bpe.shard" "${small[@]}" --tokenizer bpe --vocab 300 --out "$W/x.st"
expect_err 2 "shard '.*byte.shard' was made by another tokenizer \(byte, 256 tokens\) than the checkpoint" "$TRAIN" "$W/byte.shard" --resume "$W/text.st" --steps 20 --out "$W/x.st"
expect_err 2 "was made by another tokenizer \(byte, 256 tokens\) than shard" "$TRAIN" "$W/bpe.shard" "$W/byte.shard" "${small[@]}" --out "$W/x.st"
expect_err 2 "was made by another tokenizer \(bpe, 300 tokens\) than the checkpoint" "$INFER" "$W/mt.st" --eval "$W/bpe.shard"
expect_err 2 "was made by another tokenizer" "$TRAIN" "$DATA" "${small[@]}" --val "$W/bpe.shard" --out "$W/x.st"
expect_err 2 "'.*corpus.txt' is not a token shard" "$TRAIN" "$W/byte.shard" "$DATA" "${small[@]}" --out "$W/x.st"
expect_err 2 "--steps does not apply to --prepare" "$TRAIN" --prepare "$DATA" "$W/x.shard" --steps 3
expect_err 2 "--tokenizer-from is for --prepare" "$TRAIN" "$DATA" "${small[@]}" --tokenizer-from "$W/text.st" --out "$W/x.st"
expect_err 2 "--prepare makes char shards only with --tokenizer-from" "$TRAIN" --prepare "$DATA" "$W/x.shard" --tokenizer char
[ -e "$W/x.shard" ] && fail "a failed prepare left its output"
echo "cli_bpe: all checks passed"
