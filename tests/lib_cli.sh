# tests/lib_cli.sh — sourced by the command-line tests (tests/cli_*.sh): finds the binaries, makes a
# scratch directory removed on exit with a generated corpus in it ($DATA, 100 kB of tests/gen_text.sh:
# no file outside the clone is needed), and defines the helpers every script uses.
#   run CMD...       run, keeping stdout in $W/out, stderr in $W/err and the status in $RC
#   expect_ok CMD... run and require exit status 0
#   fail MSG         print MSG with the last command, its status and output; exit 1
#   check MSG        announce what is checked next
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${ATTNLAB_BUILD:-.}
TRAIN=$BUILD/train; [ -x "$TRAIN" ] || TRAIN=./train
INFER=$BUILD/infer; [ -x "$INFER" ] || INFER=./infer
PY=/usr/bin/python3
[ -x "$TRAIN" ] && [ -x "$INFER" ] || { echo "train/infer not built (run make)"; exit 1; }
# Passive OpenMP waiting: on a loaded 2-core machine, spinning threads make multi-threaded runs
# 10-20x slower; the wait policy changes no result.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
DATA=$W/corpus.txt
bash tests/gen_text.sh 100000 >"$DATA" || { echo "tests/gen_text.sh failed"; exit 1; }

LAST=""; RC=0
fail() {
    echo "FAIL: $*"
    if [ -n "$LAST" ]; then
        echo "  command: $LAST"; echo "  exit status: $RC"
        echo "  stdout: $(head -c 3000 "$W/out" 2>/dev/null)"; echo "  stderr: $(head -c 1500 "$W/err" 2>/dev/null)"
    fi
    exit 1
}
check() { echo "check: $*"; }
run() { LAST="$*"; "$@" >"$W/out" 2>"$W/err"; RC=$?; }
expect_ok() { run "$@"; [ $RC -eq 0 ] || fail "expected exit status 0"; }
expect_err() {  # CODE REGEX CMD...: that status, exactly one stderr line matching REGEX, no crash
    local code=$1 re=$2; shift 2
    run "$@"
    [ $RC -ge 128 ] && fail "crashed (signal $((RC - 128)))"
    [ $RC -eq "$code" ] || fail "expected exit status $code"
    local n; n=$(grep -c . "$W/err")
    [ "$n" -eq 1 ] || fail "expected exactly one line on stderr, got $n"
    grep -Eq -- "$re" "$W/err" || fail "stderr does not match /$re/"
}
