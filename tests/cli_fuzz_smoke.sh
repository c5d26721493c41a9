#!/usr/bin/env bash
# tests/cli_fuzz_smoke.sh — every libFuzzer harness (fuzz/fuzz_*.c) builds under ASan+UBSan and runs
# a few seconds from its seed corpus without a finding (`make fuzz-smoke`; docs/testing.md
# "Fuzzing"). clang with its fuzzer runtime is a test dependency (setup.sh installs it), so its
# absence is a failure, not a skip.
cd "$(dirname "$0")/.." || exit 1
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' > "$t/probe.c"
if ! ${FUZZ_CC:-clang} -fsanitize=fuzzer,address,undefined "$t/probe.c" -o "$t/probe" >"$t/log" 2>&1; then
  echo "FAIL: clang's libFuzzer runtime is not available (${FUZZ_CC:-clang} -fsanitize=fuzzer failed):"
  head -3 "$t/log"
  echo "install it: apt-get install clang (bash setup.sh test does)"
  exit 1
fi
make -s fuzz-smoke 2>&1 | grep -v '^make'
exit "${PIPESTATUS[0]}"
