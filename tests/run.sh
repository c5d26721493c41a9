#!/usr/bin/env bash
# tests/run.sh — runs every test and prints one closing line "N passed, N failed, K skipped".
#   BUILD=build/release bash tests/run.sh          all tests
#   BUILD=build/release bash tests/run.sh --unit   C unit tests and tests/san_*.sh only (what `make check` runs)
# Each C test binary prints its own "N passed, N failed"; script tests (tests/*.sh, tests/*.py)
# count as one test each; a script that exits 77 (skip: something it needs is missing, e.g. PyTorch for
# the twin) is counted as skipped. Exit status is non-zero if anything failed or was skipped: a run
# that did not test everything is not a success (CI must notice).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build/release}
unit_only=0
[ "${1:-}" = "--unit" ] && unit_only=1
export ATTNLAB_BUILD=$BUILD
passed=0; failed=0; skipped=0; failures=(); skips=()

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed or exited non-zero without saying
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ] || [ "$f" != 0 ]; then
    failures+=("$name"); printf '%s\n' "$out" | grep -vE '^ok ' ; echo "FAILED: $name (exit $rc)"
  else
    echo "ok   $name ($p checks)"
  fi
done

# Scripts that run the command line under the sanitizers: only with the sanitized build (--unit, from
# `make check`); with a plain build they could not fail.
if [ $unit_only = 1 ]; then scripts=(tests/san_*.sh); else scripts=(tests/cli_*.sh tests/test_*.sh tests/py_*.sh); fi
for t in "${scripts[@]}"; do
  [ -f "$t" ] || continue
  name=$(basename "$t")
  out=$(bash "$t" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $name"
  elif [ $rc -eq 77 ]; then
    skipped=$((skipped + 1)); skips+=("$name"); echo "SKIP $name: $(printf '%s\n' "$out" | tail -1)"
  else
    failed=$((failed + 1)); failures+=("$name"); printf '%s\n' "$out" | tail -30; echo "FAILED: $name (exit $rc)"
  fi
done

[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}"
[ ${#skips[@]} -gt 0 ] && echo "skipped (the run fails until they can run): ${skips[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ] && [ $skipped -eq 0 ]
