#!/usr/bin/env bash
# tests/san_cli.sh — the command-line lifecycle under AddressSanitizer + LeakSanitizer (`make check`
# runs it with the sanitized build; tests/run.sh runs san_*.sh only there): train, --resume (which
# restores the stored string flags), infer --eval and generation, each exiting 0 with no sanitizer
# report. A leak or a memory error on any path a user takes every day fails it.
#   ATTNLAB_BUILD=build/release-san bash tests/san_cli.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
nm -D "$TRAIN" 2>/dev/null | grep -q __asan_init || nm "$TRAIN" 2>/dev/null | grep -q __asan_init ||
  { echo "$TRAIN is not built with the sanitizers (make check builds it)"; exit 77; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 OMP_NUM_THREADS=1
clean() {  # CMD...: exit 0 and no sanitizer report on stderr
  expect_ok "$@"
  grep -qE "Sanitizer|runtime error" "$W/err" && fail "sanitizer report"
  return 0
}
small=(--tokenizer char --dim 16 --heads 2 --ctx 16 --batch 2 --threads 1 --eval-every 2 --eval-batches 2)
check "train, then --resume to a longer schedule (stored strings restored), under ASan + LSan"
clean "$TRAIN" "$DATA" "${small[@]}" --steps 2 --out "$W/a.st" --log "$W/a.csv"
clean "$TRAIN" "$DATA" --resume "$W/a.st" --steps 4 --threads 1 --out "$W/a.st"
grep -q "resuming" "$W/out" || fail "the run did not resume"
check "a memory run with rope and --resume"
clean "$TRAIN" "$DATA" "${small[@]}" --pos rope --memory 16 --steps 2 --out "$W/m.st"
clean "$TRAIN" "$DATA" --resume "$W/m.st" --steps 3 --threads 1 --out "$W/m.st"
check "infer --eval and generation"
clean "$INFER" "$W/a.st" --eval "$DATA" --threads 1
clean "$INFER" "$W/a.st" --prompt "The " --tokens 20 --seed 1 --threads 1
check "a refused resume (a conflicting flag) exits 2 without a sanitizer report"
expect_err 2 "conflicts with the run stored" env ASAN_OPTIONS=detect_leaks=0 "$TRAIN" "$DATA" --resume "$W/a.st" --dim 32 --steps 6 --out "$W/a.st"
echo "all passed"
