#!/usr/bin/env bash
# bench/compare.sh — train several layer specs on the same file with the same budget and flags, and
# print one table: final val loss and bpb (whole validation split), parameters, training tokens/s,
# and the learned spans of adaptive layers.
#   bash bench/compare.sh FILE OUTDIR "SPEC1" "SPEC2" ... -- [train flags shared by every run]
# Runs are sequential unless JOBS=N (then N at a time, each with --threads 1 unless flags say
# otherwise). Each run's output stays in OUTDIR/<n>.out, its checkpoint in OUTDIR/<n>.safetensors.
# TABLE_ONLY=1 prints the table again from an earlier run's OUTDIR without training.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: bash bench/compare.sh FILE OUTDIR SPEC... -- [train flags]" >&2; exit 2; }
file=$1; out=$2; shift 2
specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do specs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
flags=("$@")
jobs=${JOBS:-1}
train=./train
[ -n "${ATTNLAB_BUILD:-}" ] && [ -x "$ATTNLAB_BUILD/train" ] && train=$ATTNLAB_BUILD/train
mkdir -p "$out"
extra=()
if [ "$jobs" -gt 1 ] && ! printf '%s\n' "${flags[@]}" | grep -q -- '--threads'; then extra=(--threads 1); fi

run_one() {
  local i=$1 spec=$2
  "$train" "$file" --layers "$spec" "${flags[@]}" "${extra[@]}" --out "$out/$i.safetensors" --log "$out/$i.csv" \
    > "$out/$i.out" 2>&1 || echo "run $i ($spec) failed: see $out/$i.out" >&2
}
i=0
for spec in "${specs[@]}"; do
  [ -n "${TABLE_ONLY:-}" ] && break
  run_one $i "$spec" &
  i=$((i + 1))
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait

printf '%-60s %10s %9s %8s %10s  %s\n' "layers" "params" "val loss" "val bpb" "tok/s" "spans (layer mean/max)"
i=0
for spec in "${specs[@]}"; do
  f=$out/$i.out
  # (each pipeline ends in `|| true`: a missing field prints '-', it must not end the script under pipefail)
  params=$(grep -oE '\| [0-9]+ parameters' "$f" | grep -oE '[0-9]+' | head -1 || true)
  final=$(grep -E '^final step' "$f" | tail -1 || true)
  loss=$(echo "$final" | grep -oE 'val loss [0-9.]+' | awk '{print $3}' || true)
  bpb=$(echo "$final" | grep -oE 'bpb [0-9.]+' | awk '{print $2}' || true)
  # median of the progress lines' tokens/s (the first interval includes start-up)
  tps=$(grep -oE '\| [0-9]+ tok/s' "$f" | awk '{print $2}' | tail -n +2 | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}' || true)
  spans=$(grep -A1 -E '^final step' "$f" | grep 'spans mean/max' | sed 's/.*spans mean\/max: //' || true)
  printf '%-60s %10s %9s %8s %10s  %s\n' "$spec" "${params:--}" "${loss:-failed}" "${bpb:--}" "${tps:--}" "${spans:-}"
  i=$((i + 1))
done
