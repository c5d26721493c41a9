#!/usr/bin/env bash
# bench/mqar.sh — the MQAR recall benchmark (docs/mqar.md): trains each layer spec with `train --task
# mqar`, once per seed, on every sequence length of LENGTHS at PAIRS0 pairs and on every pair count of
# PAIRS at length LEN0, scores each run's recall accuracy on the held-out set (train's final
# evaluation), and writes
#   OUTDIR/mqar.csv         spec,len,pairs,vocab,seed,accuracy,answer_loss,params,steps,train_s (one row per run)
#   OUTDIR/mqar.md          two markdown tables: accuracy by spec x length, by spec x pairs (mean over the
#                           seeds, min-max beside it, and how many seeds reached 0.9)
#   OUTDIR/acc_vs_len.png   accuracy against sequence length, one line per spec, min-max bars (gnuplot)
#   OUTDIR/acc_vs_pairs.png accuracy against pairs, the same
#   bash bench/mqar.sh OUTDIR "SPEC1" "SPEC2" ... [-- train flags]
# Environment: LENGTHS (default "64 128 256 512 1024"), PAIRS0 (16), PAIRS ("4 8 16 32 64"), LEN0 (256),
# VOCAB (256), SEEDS ("1": the --seed of each run), JOBS (1: runs at once; each has its own --threads).
# The default recipe is Zoology's model's (docs/mqar.md): a spec such as "shortconv/none,softmax/none"
# with `--dim 64 --heads 2 --pos none --batch 32 --steps 3000 --lr 3e-3 --warmup 100`; train flags after
# -- replace the matching defaults flag by flag, the others stay (give seeds in SEEDS, not --seed).
# A length that cannot hold PAIRS0 pairs (length < 4*pairs) is skipped.
# Each run's files are named by its spec, length, pairs and seed (OUTDIR/runs/<spec>_L<len>_D<pairs>_s<seed>.*):
# a run whose log already has its final row is not trained again, so an interrupted benchmark resumes; a
# failed run is a row with accuracy "failed" and the script exits 1 after writing the report.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash bench/mqar.sh OUTDIR SPEC... [-- train flags]" >&2; exit 2; }
out=$(realpath -m -- "$1"); shift  # OUTDIR is relative to the caller's directory, not the script's
[ -n "${ATTNLAB_BUILD:-}" ] && ATTNLAB_BUILD=$(realpath -m -- "$ATTNLAB_BUILD")
cd "$(dirname "$0")/.."
specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do specs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
user=("$@")
[ ${#specs[@]} -ge 1 ] || { echo "bench/mqar.sh: no layer spec given" >&2; exit 2; }
lengths=${LENGTHS:-64 128 256 512 1024}; pairs0=${PAIRS0:-16}; pair_list=${PAIRS:-4 8 16 32 64}; len0=${LEN0:-256}
vocab=${VOCAB:-256}; seeds=${SEEDS:-1}; jobs=${JOBS:-1}
for v in $lengths $pairs0 $pair_list $len0 $vocab $seeds $jobs; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "bench/mqar.sh: '$v' in LENGTHS/PAIRS0/PAIRS/LEN0/VOCAB/SEEDS/JOBS is not a number" >&2; exit 2; }
done
[ "$jobs" -ge 1 ] || { echo "bench/mqar.sh: JOBS must be at least 1" >&2; exit 2; }
printf '%s\n' "${user[@]}" | grep -qx -- "--seed" && { echo "bench/mqar.sh: give seeds in SEEDS, not --seed" >&2; exit 2; }
train=./train
[ -n "${ATTNLAB_BUILD:-}" ] && [ -x "$ATTNLAB_BUILD/train" ] && train=$ATTNLAB_BUILD/train
command -v gnuplot >/dev/null || { echo "bench/mqar.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

# The recipe (docs/mqar.md), each "--flag value"; a flag the user gives replaces its default.
defaults=(--dim 64 --heads 2 --pos none --batch 32 --steps 3000 --lr 3e-3 --warmup 100 --eval-every 1000
          --log-every 100 --mqar-eval-seqs 256 --threads 1)
flags=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  printf '%s\n' "${user[@]}" | grep -qx -- "${defaults[i]}" || flags+=("${defaults[i]}" "${defaults[i+1]}")
done
flags+=("${user[@]}")
mkdir -p "$out/runs"
for s in "${specs[@]}"; do  # an unknown or malformed spec fails here, naming it, before anything trains
  "$train" --task mqar --layers "$s" --steps 1 --mqar-len 64 --mqar-pairs 2 --dim 16 --heads 2 --mqar-eval-seqs 1 \
    --threads 1 --out "$out/runs/spec-check.safetensors" >"$out/runs/spec-check.out" 2>&1 ||
    { echo "bench/mqar.sh: spec '$s' does not train: $(tail -1 "$out/runs/spec-check.out")" >&2
      rm -f "$out/runs/spec-check."*; exit 2; }
done
rm -f "$out/runs/spec-check."*

key() { printf '%s' "$1" | tr -c 'A-Za-z0-9=.,*-' '_'; }
# The runs, as "spec<TAB>len<TAB>pairs<TAB>seed" lines, in table order.
plan=()
for spec in "${specs[@]}"; do
  for seed in $seeds; do
    for len in $lengths; do
      [ $((4 * pairs0)) -le "$len" ] || continue
      plan+=("$spec"$'\t'"$len"$'\t'"$pairs0"$'\t'"$seed")
    done
    for d in $pair_list; do
      [ $((4 * d)) -le "$len0" ] || continue
      case " $lengths " in *" $len0 "*) [ "$d" = "$pairs0" ] && continue ;; esac  # already in the length sweep
      plan+=("$spec"$'\t'"$len0"$'\t'"$d"$'\t'"$seed")
    done
  done
done
for len in $lengths; do [ $((4 * pairs0)) -le "$len" ] || echo "mqar: length $len cannot hold $pairs0 pairs: skipped" >&2; done
for d in $pair_list; do [ $((4 * d)) -le "$len0" ] || echo "mqar: $d pairs do not fit in length $len0: skipped" >&2; done

# train_one SPEC LEN PAIRS SEED: trains unless its log has a final row.
train_one() {
  local spec=$1 len=$2 d=$3 seed=$4 k
  k=$out/runs/$(key "$spec")_L${len}_D${d}_s${seed}
  grep -q ',final,' "$k.csv" 2>/dev/null && return 0
  echo "mqar: $spec, length $len, $d pairs, seed $seed" >&2
  "$train" --task mqar --layers "$spec" --mqar-len "$len" --mqar-pairs "$d" --mqar-vocab "$vocab" "${flags[@]}" \
    --seed "$seed" --out "$k.safetensors" --log "$k.csv" >"$k.out" 2>&1 || echo "mqar: run failed: see $k.out" >&2
}
running=0
for p in "${plan[@]}"; do
  IFS=$'\t' read -r spec len d seed <<<"$p"
  if [ "$jobs" -le 1 ]; then train_one "$spec" "$len" "$d" "$seed"; continue; fi
  [ $running -ge "$jobs" ] && { wait -n || true; running=$((running - 1)); }
  train_one "$spec" "$len" "$d" "$seed" &
  running=$((running + 1))
done
wait

# row SPEC LEN PAIRS SEED: the CSV row of a finished run (its final row's columns by header name).
row() {
  local spec=$1 len=$2 d=$3 seed=$4 k
  k=$out/runs/$(key "$spec")_L${len}_D${d}_s${seed}
  awk -F, -v spec="$spec" -v len="$len" -v d="$d" -v V="$vocab" -v seed="$seed" -v outf="$k.out" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["split"] == "final" { acc = $col["accuracy"]; loss = $col["loss"]; steps = $col["step"]; secs = $col["elapsed_s"] }
    END {
      params = "-"
      while ((getline line < outf) > 0) if (match(line, /\| [0-9]+ parameters/)) { split(substr(line, RSTART + 2), a, " "); params = a[1] }
      if (acc == "") { acc = "failed"; loss = "-"; steps = "-"; secs = "-" }
      printf "\"%s\",%s,%s,%s,%s,%s,%s,%s,%s,%s\n", spec, len, d, V, seed, acc, loss, params, steps, secs
    }' "$k.csv" 2>/dev/null || printf '"%s",%s,%s,%s,%s,failed,-,-,-,-\n' "$spec" "$len" "$d" "$vocab" "$seed"
}
csv=$out/mqar.csv
echo "spec,len,pairs,vocab,seed,accuracy,answer_loss,params,steps,train_s" >"$csv"
for p in "${plan[@]}"; do
  IFS=$'\t' read -r spec len d seed <<<"$p"
  row "$spec" "$len" "$d" "$seed" >>"$csv"
done

# Tables and plots from the CSV (read by header name): per cell the mean over the seeds that finished,
# min-max when there are several, and the count of seeds at 0.9 or more.
python3 - "$csv" "$out" "$pairs0" "$len0" <<'PYEOF'
import csv, subprocess, sys
path, out, pairs0, len0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path)))
specs = list(dict.fromkeys(r["spec"] for r in rows))
nseeds = len({r["seed"] for r in rows})
def cell(spec, L, D):
    """(accuracies of the finished seeds, number of failed runs) of one spec at one setting"""
    rs = [r for r in rows if r["spec"] == spec and int(r["len"]) == L and int(r["pairs"]) == D]
    return [float(r["accuracy"]) for r in rs if r["accuracy"] != "failed"], sum(r["accuracy"] == "failed" for r in rs), len(rs)
lens = sorted({int(r["len"]) for r in rows if int(r["pairs"]) == pairs0})
prs = sorted({int(r["pairs"]) for r in rows if int(r["len"]) == len0})
def fmt(spec, L, D):
    a, nfail, n = cell(spec, L, D)
    if n == 0: return "-"
    if not a: return "failed"
    s = "%.3f" % (sum(a) / len(a))
    if len(a) > 1: s += " (%.3f–%.3f; %d/%d ≥ 0.9)" % (min(a), max(a), sum(x >= 0.9 for x in a), len(a))
    if nfail: s += " + %d failed" % nfail
    return s
md = ["# MQAR recall accuracy", "",
      "Recall accuracy (argmax == answer, over the answer tokens of the held-out set) at the final step; "
      + ("one seed a cell." if nseeds == 1 else
         "mean over %d seeds, (min–max; how many seeds reached 0.9)." % nseeds), "",
      "## By sequence length (%d pairs)" % pairs0, "", "| spec | " + " | ".join("N %d" % L for L in lens) + " |",
      "|---|" + "---|" * len(lens)]
md += ["| `%s` | " % s + " | ".join(fmt(s, L, pairs0) for L in lens) + " |" for s in specs]
md += ["", "## By pairs (length %d)" % len0, "", "| spec | " + " | ".join("D %d" % D for D in prs) + " |", "|---|" + "---|" * len(prs)]
md += ["| `%s` | " % s + " | ".join(fmt(s, len0, D) for D in prs) + " |" for s in specs]
open(out + "/mqar.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
def plot(png, xs, setting, xlabel, title):
    data = out + "/" + png.replace(".png", ".dat")
    with open(data, "w") as f:
        for s in specs:
            f.write("# %s: x mean min max\n" % s)
            for x in xs:
                a = cell(s, *setting(x))[0]
                if a: f.write("%d %.4f %.4f %.4f\n" % (x, sum(a) / len(a), min(a), max(a)))
            f.write("\n\n")
    plots = ", ".join("'%s' index %d using 1:2:3:4 with yerrorlines lw 2 pt 7 title '%s'" % (data, i, s.replace("'", ""))
                      for i, s in enumerate(specs))
    script = ("set terminal png size 900,600 noenhanced\nset output '%s/%s'\nset title '%s'\nset xlabel '%s'\n"
              "set ylabel 'recall accuracy (mean, min-max over seeds)'\nset yrange [0:1.05]\nset logscale x 2\n"
              "set key outside right\nset grid\nplot %s\n" % (out, png, title, xlabel, plots))
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
if lens: plot("acc_vs_len.png", lens, lambda L: (L, pairs0), "sequence length N", "MQAR: accuracy vs length (%d pairs)" % pairs0)
if prs: plot("acc_vs_pairs.png", prs, lambda D: (len0, D), "key-value pairs D", "MQAR: accuracy vs pairs (length %d)" % len0)
PYEOF
echo "wrote $csv, $out/mqar.md and the PNGs in $out" >&2
! grep -q ',failed,' "$csv"
