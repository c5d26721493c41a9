#!/usr/bin/env bash
# fuzz/run.sh SECONDS HARNESS... — run each libFuzzer harness for SECONDS, one after another, on
# its seed corpus (made by fuzz/make_corpus.sh when missing) plus what earlier runs found
# (build/fuzz/corpus/<name>/). Prints one summary line per harness (executions, cov:, ft:); a crash
# leaves the input as build/fuzz/crash-<name>-* and makes the script fail.
set -u
cd "$(dirname "$0")/.."
secs=$1; shift
[ -d build/fuzz/seeds ] || bash fuzz/make_corpus.sh build/fuzz/seeds || exit 1
status=0
for bin in "$@"; do
  name=$(basename "$bin"); name=${name#fuzz_}
  corpus=build/fuzz/corpus/$name; mkdir -p "$corpus"
  log=build/fuzz/$name.log
  # -rss_limit_mb: a harness whose input makes it allocate beyond this is a finding too.
  "$bin" "$corpus" "build/fuzz/seeds/$name" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
         -print_final_stats=1 -close_fd_mask=3 -artifact_prefix="build/fuzz/crash-$name-" >"$log" 2>&1
  rc=$?
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -ao '[0-9]*$' | tail -1)
  last=$(grep -aE '^#[0-9]+.*(pulse|DONE|NEW|REDUCE)' "$log" | tail -1)
  cov=$(echo "$last" | grep -ao 'cov: [0-9]*'); ft=$(echo "$last" | grep -ao 'ft: [0-9]*')
  if [ $rc -ne 0 ]; then
    status=1
    echo "FAIL fuzz $name (exit $rc, log $log):"; grep -aE 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -5
  else
    echo "ok   fuzz $name: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, ${ft:-ft: ?}, corpus $(ls "$corpus" | wc -l) files"
  fi
done
exit $status
