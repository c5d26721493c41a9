#!/usr/bin/env bash
# test_longrange_corpus.sh — data/make_longrange_corpus.py: two runs give the same bytes; the
# train/validation split computed as data/dataset.c does (byte tokenizer: n_train = floor(0.9·n))
# lands exactly on a file header; headers are unique, sorted bytewise and name no test suite; the
# text is valid UTF-8. Skips (77) where Debian's packaged Python is missing.
set -u
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
[ -x "$PY" ] && command -v dpkg-query >/dev/null || { echo "skip: needs /usr/bin/python3 and dpkg-query"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$PY" data/make_longrange_corpus.py "$tmp/a.txt" > "$tmp/a.log" || fail "first run exited $?: $(cat "$tmp/a.log")"
"$PY" data/make_longrange_corpus.py "$tmp/b.txt" > "$tmp/b.log" || fail "second run exited $?"
cmp -s "$tmp/a.txt" "$tmp/b.txt" || fail "two runs differ"
sha=$(sha256sum "$tmp/a.txt" | cut -d' ' -f1)
grep -q "^sha256 $sha\$" "$tmp/a.log" || fail "printed sha256 is not the file's ($sha): $(cat "$tmp/a.log")"
[ ! -e "$tmp/a.txt.tmp" ] || fail "temporary file left behind"

n=$(stat -c %s "$tmp/a.txt")
[ "$n" -gt 1000000 ] || fail "only $n bytes"
n_train=$(( n / 10 * 9 + n % 10 * 9 / 10 ))   # dataset.c, byte tokenizer
head8=$(tail -c +$((n_train + 1)) "$tmp/a.txt" | head -c 11)
prev=$(tail -c +"$n_train" "$tmp/a.txt" | head -c 1 | od -An -c | tr -d ' ')
[ "$head8" = "#### file: " ] && [ "$prev" = '\n' ] ||
  fail "the split at byte $n_train of $n does not start a header line: got '$head8' after '$prev'"
first_val=$(tail -c +$((n_train + 1)) "$tmp/a.txt" | head -n 1)

grep -a '^#### file: ' "$tmp/a.txt" | sed 's/^#### file: //' > "$tmp/files"
files=$(wc -l < "$tmp/files")
[ "$files" -gt 100 ] || fail "only $files file headers"
LC_ALL=C sort -c "$tmp/files" 2>/dev/null || fail "headers are not in bytewise order"
[ "$(sort -u "$tmp/files" | wc -l)" -eq "$files" ] || fail "a header appears twice (a file in both splits?)"
! grep -Eq '(^|/)(test|tests|idle_test|site-packages|dist-packages)/|_sysconfigdata' "$tmp/files" ||
  fail "a test suite or site package is included: $(grep -E '(^|/)(test|tests|idle_test)/' "$tmp/files" | head -1)"
"$PY" -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$tmp/a.txt" || fail "not valid UTF-8"
train_files=$(head -c "$n_train" "$tmp/a.txt" | grep -ac '^#### file: ')

echo "corpus: $n bytes, $files files, split at byte $n_train = header of file $((train_files + 1)) (${first_val#\#\#\#\# file: }), deterministic, sha256 ${sha:0:16}…"
