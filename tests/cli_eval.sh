#!/usr/bin/env bash
# tests/cli_eval.sh — `infer --eval` past the window (docs/long_context.md, "Evaluation modes"): --stride S
# (S = ctx is windows mode, digit for digit; S = 1 gives every target after the first window ctx − 1
# tokens of context), --ctx N, --by-position (table, CSV, gnuplot PNG; the buckets partition the
# scored targets and their weighted mean is the overall loss), and every bad input: one line, exit 2.
# The target-by-target check of stride mode against the contract's windows is tests/test_eval.c.
#   ATTNLAB_BUILD=build/release bash tests/cli_eval.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
NUM='[0-9]+\.[0-9]+'

head -c 40000 "$DATA" >"$W/text.txt"
tail -c 3001 "$W/text.txt" >"$W/eval.txt"   # byte tokenizer: 3001 tokens, 3000 targets
CK=$W/m.st
expect_ok "$TRAIN" "$W/text.txt" --dim 32 --heads 2 --ctx 32 --batch 4 --steps 20 --eval-every 20 \
    --layers 2*softmax/mlp --tokenizer byte --threads 1 --out "$CK"
E=(--eval "$W/eval.txt" --threads 1)

check "--stride 32 (= ctx) prints exactly windows mode's line"
expect_ok "$INFER" "$CK" "${E[@]}"; windows=$(cat "$W/out")
[[ $windows =~ ^loss\ $NUM\ \|\ ppl\ $NUM\ \|\ bpb\ $NUM\ \|\ tokens\ 3000$ ]] || fail "windows line: $windows"
expect_ok "$INFER" "$CK" "${E[@]}" --stride 32
[ "$(cat "$W/out")" = "$windows" ] || fail "--stride 32: $(cat "$W/out"); windows: $windows"
expect_ok "$INFER" "$CK" "${E[@]}" --ctx 32 --stride 32
[ "$(cat "$W/out")" = "$windows" ] || fail "--ctx 32 --stride 32: $(cat "$W/out"); windows: $windows"

# CSV rows of PREFIX.csv as "lo hi tokens" lines
rows() { awk -F, 'NR > 1 {print $1, $2, $3}' "$1"; }
# the buckets partition the targets (sum of tokens = the summary's), and their token-weighted mean
# loss is the summary's loss (to its 4 printed decimals)
partition() {  # CSV SUMMARY-LINE
    local t l
    t=$(awk -F, 'NR > 1 {s += $3} END {print s}' "$1")
    l=$(awk -F, 'NR > 1 {n += $3; s += $3 * $5} END {printf "%.4f", s / n}' "$1")
    [ "$t" = "$(echo "$2" | awk '{print $NF}')" ] || fail "bucket tokens sum to $t; summary: $2"
    [ "$l" = "$(echo "$2" | awk '{print $2}')" ] || fail "bucket-weighted loss $l; summary: $2"
}

check "--by-position, windows mode: each full window puts 1, 2, 4, 8, 16, 1 targets in 1 | 2-3 | ... | 32-63"
expect_ok "$INFER" "$CK" "${E[@]}" --by-position --by-position-out "$W/win"
[ "$(head -1 "$W/out")" = "$windows" ] || fail "--by-position changed the summary line"
grep -Eq '^context +tokens +loss +bpb$' "$W/out" || fail "no table header"
grep -Eq "^4-7 +[0-9]+ +$NUM +$NUM$" "$W/out" || fail "no table row for 4-7"
[ "$(head -1 "$W/win.csv")" = "context_lo,context_hi,tokens,bytes,loss,bpb" ] || fail "CSV header: $(head -1 "$W/win.csv")"
# 3000 targets = 93 full windows of 32 + one of 24 (visible 1 | 2-3 | 4-7 | 8-15 | 16-24: 1, 2, 4, 8, 9)
want=$'1 1 94\n2 3 188\n4 7 376\n8 15 752\n16 31 1497\n32 63 93'
[ "$(rows "$W/win.csv")" = "$want" ] || fail "windows buckets: $(rows "$W/win.csv")"
partition "$W/win.csv" "$windows"

check "--stride 1: every target after the first window sees ctx = 32 tokens; buckets partition the targets"
expect_ok "$INFER" "$CK" "${E[@]}" --stride 1 --by-position --by-position-out "$W/s1"
s1=$(head -1 "$W/out")
[[ $s1 =~ tokens\ 3000$ ]] || fail "--stride 1 summary: $s1"
[ "$s1" != "$windows" ] || fail "--stride 1 gives windows mode's figures exactly (no longer context?)"
want=$'1 1 1\n2 3 2\n4 7 4\n8 15 8\n16 31 16\n32 63 2969'
[ "$(rows "$W/s1.csv")" = "$want" ] || fail "stride-1 buckets: $(rows "$W/s1.csv")"
partition "$W/s1.csv" "$s1"

check "--stride 8: after the first window every target sees 25..32 tokens (buckets 16-31 and 32-63)"
expect_ok "$INFER" "$CK" "${E[@]}" --stride 8 --by-position --by-position-out "$W/s8"
partition "$W/s8.csv" "$(head -1 "$W/out")"
# the first window: 1, 2, 4, 8, 16, 1; then 2968 targets at 25..31 (7 of each 8) or 32 (1 of each 8)
want=$'1 1 1\n2 3 2\n4 7 4\n8 15 8\n16 31 2613\n32 63 372'
[ "$(rows "$W/s8.csv")" = "$want" ] || fail "stride-8 buckets: $(rows "$W/s8.csv")"

check "--ctx 16 (shorter than trained): windows of 16, --stride 16 the same; visible context at most 16"
expect_ok "$INFER" "$CK" "${E[@]}" --ctx 16 --by-position --by-position-out "$W/c16"
c16=$(head -1 "$W/out")
[ "$c16" != "$windows" ] || fail "--ctx 16 gives the ctx-32 figures"
want=$'1 1 188\n2 3 376\n4 7 752\n8 15 1497\n16 31 187'
[ "$(rows "$W/c16.csv")" = "$want" ] || fail "ctx-16 buckets: $(rows "$W/c16.csv")"
partition "$W/c16.csv" "$c16"
expect_ok "$INFER" "$CK" "${E[@]}" --ctx 16 --stride 16
[ "$(cat "$W/out")" = "$c16" ] || fail "--ctx 16 --stride 16: $(cat "$W/out"); --ctx 16: $c16"

check "bad input: one line on stderr, exit 2"
bad() {  # PATTERN ARGS...
    local pat=$1; shift
    run "$INFER" "$CK" "$@"
    [ $RC -eq 2 ] || fail "expected exit status 2"
    [ "$(wc -l <"$W/err")" -eq 1 ] || fail "expected one line on stderr"
    grep -Eq -- "$pat" "$W/err" || fail "stderr does not match /$pat/"
    [ ! -s "$W/out" ] || fail "stdout is not empty"
}
bad 'stride.*got 0' "${E[@]}" --stride 0
bad 'stride must be between 1 and ctx = 32 \(got 33\)' "${E[@]}" --stride 33
bad 'stride must be between 1 and ctx = 16 \(got 17\)' "${E[@]}" --ctx 16 --stride 17
bad 'ctx.*got 0' "${E[@]}" --ctx 0
bad 'ctx 33 exceeds the trained ctx 32: .*learned positions \(a table of 32 rows\)' "${E[@]}" --ctx 33
bad 'by-position needs --eval' --by-position
bad 'stride needs --eval' --stride 4
bad 'ctx needs --eval' --ctx 16
bad 'by-position-out needs --by-position' "${E[@]}" --by-position-out "$W/x"

check "--by-position-out checked before the evaluation: a missing directory, the --eval file itself"
run "$INFER" "$CK" "${E[@]}" --by-position --by-position-out "$W/no/such"
[ $RC -eq 1 ] && [ "$(wc -l <"$W/err")" -eq 1 ] && grep -q "cannot write --by-position-out (CSV) '$W/no/such.csv'" "$W/err" ||
    fail "missing directory not refused in one line"
[ ! -s "$W/out" ] || fail "evaluated before refusing the output"
cp "$W/eval.txt" "$W/ev.csv"
run "$INFER" "$CK" --eval "$W/ev.csv" --by-position --by-position-out "$W/ev"
[ $RC -eq 1 ] && grep -q "cannot write --by-position-out (CSV) '$W/ev.csv'" "$W/err" || fail "the --eval file as the CSV not refused"
cmp -s "$W/eval.txt" "$W/ev.csv" || fail "the --eval file was overwritten"

check "gnuplot missing: one line naming the package, exit 1, the CSV still written"
run env PATH=/nonexistent "$INFER" "$CK" "${E[@]}" --by-position --by-position-out "$W/nogp"
[ $RC -eq 1 ] || fail "expected exit status 1"
[ "$(wc -l <"$W/err")" -eq 1 ] && grep -q 'gnuplot is not installed (Debian package gnuplot-nox)' "$W/err" ||
    fail "stderr: $(cat "$W/err")"
[ -s "$W/nogp.csv" ] || fail "no CSV without gnuplot"

check "the PNGs (gnuplot): written, PNG signature"
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed (Debian package gnuplot-nox; setup.sh test installs it)"; exit 77; }
for p in win s1 s8 c16; do
    [ "$(head -c 8 "$W/$p.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$p.png is not a PNG"
done
echo "all cli_eval checks passed"
