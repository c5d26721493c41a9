#!/usr/bin/env bash
# bench/compare.sh — the old command line of the comparison, kept so that the commands recorded in
# docs/results.md still run; the work is done by the `compare` program (docs/compare.md), which keys
# runs by spec, flags and seed, resumes, and writes OUTDIR/report.md, report.csv and plots.
#   bash bench/compare.sh FILE OUTDIR "SPEC1" "SPEC2" ... -- [train flags shared by every run]
#   JOBS=N runs N at a time (compare --jobs N). TABLE_ONLY is gone: rerun the same command instead
#   (finished runs are not trained again; the report is rewritten).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: bash bench/compare.sh FILE OUTDIR SPEC... -- [train flags]" >&2; exit 2; }
[ -z "${TABLE_ONLY:-}" ] || { echo "bench/compare.sh: TABLE_ONLY is gone; rerun the same command (compare skips finished runs and rewrites OUTDIR/report.md)" >&2; exit 2; }
compare=./compare
[ -n "${ATTNLAB_BUILD:-}" ] && [ -x "$ATTNLAB_BUILD/compare" ] && compare=$ATTNLAB_BUILD/compare
file=$1; out=$2; shift 2
args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=(--spec "$1"); shift; done
[ "${1:-}" = "--" ] && shift
exec "$compare" "$file" "$out" "${args[@]}" --jobs "${JOBS:-1}" -- "$@"
