#!/usr/bin/env bash
# bench/mqar.sh — the MQAR recall benchmark (docs/mqar.md), Zoology's protocol: each layer spec is trained
# once per seed on a mixture of MQAR settings (train --task mqar --mqar-mix), then its checkpoint is scored
# (infer --mqar-eval, 256 held-out sequences) at every sequence length of LENGTHS with PAIRS0 pairs and at
# every pair count of PAIRS with length LEN0. Writes
#   OUTDIR/mqar.csv         spec,len,pairs,vocab,seed,accuracy,answer_loss,params,train_steps,train_s (a row per cell)
#   OUTDIR/mqar.md          two markdown tables: accuracy by spec x length, by spec x pairs (mean over the
#                           seeds, min-max beside it, and how many seeds reached 0.9)
#   OUTDIR/acc_vs_len.png   accuracy against sequence length, one line per spec, min-max bars (gnuplot)
#   OUTDIR/acc_vs_pairs.png accuracy against pairs, the same
#   bash bench/mqar.sh OUTDIR "SPEC1" "SPEC2" ... [-- train flags]
# Environment: LENGTHS (default "64 128 256 512 1024"), PAIRS0 (16), PAIRS ("4 8 16 32 64"), LEN0 (256),
# VOCAB (256), SEEDS ("1": the --seed of each training run), JOBS (1: trainings at once, each --threads 1);
# the training: TRAIN_LEN (256) and TRAIN_PAIRS (16), its --mqar-len (the rows' ctx) and --mqar-pairs (its
# own evaluations), and MIX (default Zoology's training set "64:4:5,128:8,256:16,256:32,256:64"; "none"
# trains on TRAIN_LEN x TRAIN_PAIRS only). The train flags default to Zoology's model's recipe for specs
# such as "shortconv/none,softmax/none": --dim 64 --heads 2 --pos none --batch 32 --steps 3000 --lr 3e-3
# --warmup 100; flags after -- replace the matching defaults flag by flag (seeds go in SEEDS, not --seed).
# Lengths above TRAIN_LEN need positions that extend (--pos none or rope). A cell the generator cannot
# fill (length < 4*pairs, pairs > VOCAB/2 - 1) is skipped.
# Files are keyed by spec and seed (OUTDIR/runs/<spec>_s<seed>.*, a cell's score in
# <spec>_s<seed>_L<len>_D<pairs>.eval): a finished training or score is not redone, so an interrupted
# benchmark resumes. A failed training or score is a row with accuracy "failed", and the script exits 1
# after writing the report.
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
vocab=${VOCAB:-256}; seeds=${SEEDS:-1}; jobs=${JOBS:-1}; train_len=${TRAIN_LEN:-256}; train_pairs=${TRAIN_PAIRS:-16}
mix=${MIX:-64:4:5,128:8,256:16,256:32,256:64}
for v in $lengths $pairs0 $pair_list $len0 $vocab $seeds $jobs $train_len $train_pairs; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "bench/mqar.sh: '$v' in LENGTHS/PAIRS0/PAIRS/LEN0/VOCAB/SEEDS/JOBS/TRAIN_LEN/TRAIN_PAIRS is not a number" >&2; exit 2; }
done
[ "$jobs" -ge 1 ] || { echo "bench/mqar.sh: JOBS must be at least 1" >&2; exit 2; }
printf '%s\n' "${user[@]}" | grep -qx -- "--seed" && { echo "bench/mqar.sh: give seeds in SEEDS, not --seed" >&2; exit 2; }
train=./train; infer=./infer
[ -n "${ATTNLAB_BUILD:-}" ] && [ -x "$ATTNLAB_BUILD/train" ] && train=$ATTNLAB_BUILD/train && infer=$ATTNLAB_BUILD/infer
command -v gnuplot >/dev/null || { echo "bench/mqar.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

# The recipe (docs/mqar.md), each "--flag value"; a flag the user gives replaces its default.
defaults=(--dim 64 --heads 2 --pos none --batch 32 --steps 3000 --lr 3e-3 --warmup 100 --eval-every 1000
          --log-every 100 --mqar-eval-seqs 256 --threads 1)
flags=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  printf '%s\n' "${user[@]}" | grep -qx -- "${defaults[i]}" || flags+=("${defaults[i]}" "${defaults[i+1]}")
done
flags+=("${user[@]}")
task=(--task mqar --mqar-len "$train_len" --mqar-pairs "$train_pairs" --mqar-vocab "$vocab")
[ "$mix" != none ] && task+=(--mqar-mix "$mix")
mkdir -p "$out/runs"
# An unknown or malformed spec, or a training setting train refuses, fails here before anything trains.
for s in "${specs[@]}"; do
  "$train" "${task[@]}" --layers "$s" --steps 1 --dim 16 --heads 2 --mqar-eval-seqs 1 --threads 1 \
    --out "$out/runs/spec-check.safetensors" >"$out/runs/spec-check.out" 2>&1 ||
    { echo "bench/mqar.sh: spec '$s' does not train: $(tail -1 "$out/runs/spec-check.out")" >&2
      rm -f "$out/runs/spec-check."*; exit 2; }
done
rm -f "$out/runs/spec-check."*

key() { printf '%s' "$1" | tr -c 'A-Za-z0-9=.,*-' '_'; }
fits() { [ $((4 * $2)) -le "$1" ] && [ "$2" -le $((vocab / 2 - 1)) ]; }  # fits LEN PAIRS: the generator can fill it
# The grid, as "len pairs" lines: the length sweep, then the pairs sweep without the cell both share.
cells=()
for len in $lengths; do
  if fits "$len" "$pairs0"; then cells+=("$len $pairs0"); else echo "mqar: length $len with $pairs0 pairs cannot be generated: skipped" >&2; fi
done
for d in $pair_list; do
  case " $lengths " in *" $len0 "*) [ "$d" = "$pairs0" ] && continue ;; esac
  if fits "$len0" "$d"; then cells+=("$len0 $d"); else echo "mqar: $d pairs at length $len0 cannot be generated: skipped" >&2; fi
done

# train_and_score SPEC SEED: trains unless its log has a final row, then scores every cell not yet scored.
train_and_score() {
  local spec=$1 seed=$2 k c
  k=$out/runs/$(key "$spec")_s${seed}
  if ! grep -q ',final,' "$k.csv" 2>/dev/null; then
    echo "mqar: training $spec, seed $seed" >&2
    rm -f "$k"_L*_D*.eval  # scores of an earlier checkpoint
    "$train" "${task[@]}" --layers "$spec" "${flags[@]}" --seed "$seed" --out "$k.safetensors" --log "$k.csv" >"$k.out" 2>&1 ||
      { echo "mqar: training failed: see $k.out" >&2; return 0; }
  fi
  for c in "${cells[@]}"; do
    set -- $c
    grep -q "recall accuracy" "$k"_L$1_D$2.eval 2>/dev/null && continue
    "$infer" "$k.safetensors" --mqar-eval --mqar-len "$1" --mqar-pairs "$2" --mqar-seqs 256 --threads 1 >"$k"_L$1_D$2.eval 2>&1 ||
      echo "mqar: scoring $spec seed $seed at length $1, $2 pairs failed: see $k""_L$1_D$2.eval" >&2
  done
}
running=0
for spec in "${specs[@]}"; do
  for seed in $seeds; do
    if [ "$jobs" -le 1 ]; then train_and_score "$spec" "$seed"; continue; fi
    [ $running -ge "$jobs" ] && { wait -n || true; running=$((running - 1)); }
    train_and_score "$spec" "$seed" &
    running=$((running + 1))
  done
done
wait

# row SPEC SEED LEN PAIRS: the CSV row of one cell (the score's line; the training's log and output).
row() {
  local spec=$1 seed=$2 len=$3 d=$4 k
  k=$out/runs/$(key "$spec")_s${seed}
  awk -F, -v spec="$spec" -v len="$len" -v d="$d" -v V="$vocab" -v seed="$seed" -v outf="$k.out" -v evalf="$k"_L${len}_D${d}.eval '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["split"] == "final" { steps = $col["step"]; secs = $col["elapsed_s"] }
    END {
      params = "-"; acc = ""; loss = "-"
      while ((getline line < outf) > 0) if (match(line, /\| [0-9]+ parameters/)) { split(substr(line, RSTART + 2), a, " "); params = a[1] }
      while ((getline line < evalf) > 0)
        if (match(line, /recall accuracy [0-9.]+/)) {
          acc = substr(line, RSTART + 16, RLENGTH - 16)
          if (match(line, /answer loss [0-9.naif]+/)) loss = substr(line, RSTART + 12, RLENGTH - 12)
        }
      if (steps == "" || acc == "") { acc = "failed"; loss = "-" }
      if (steps == "") { steps = "-"; secs = "-" }
      printf "\"%s\",%s,%s,%s,%s,%s,%s,%s,%s,%s\n", spec, len, d, V, seed, acc, loss, params, steps, secs
    }' "$k.csv" 2>/dev/null || printf '"%s",%s,%s,%s,%s,failed,-,-,-,-\n' "$spec" "$len" "$d" "$vocab" "$seed"
}
csv=$out/mqar.csv
echo "spec,len,pairs,vocab,seed,accuracy,answer_loss,params,train_steps,train_s" >"$csv"
for spec in "${specs[@]}"; do
  for seed in $seeds; do
    for c in "${cells[@]}"; do row "$spec" "$seed" $c >>"$csv"; done
  done
done

# Tables and plots from the CSV (read by header name): per cell the mean over the seeds that finished,
# min-max when there are several, and the count of seeds at 0.9 or more.
python3 - "$csv" "$out" "$pairs0" "$len0" "$train_len" "$train_pairs" "$mix" <<'PYEOF'
import csv, subprocess, sys
path, out, pairs0, len0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
train_len, train_pairs, mix = sys.argv[5], sys.argv[6], sys.argv[7]
rows = list(csv.DictReader(open(path)))
specs = list(dict.fromkeys(r["spec"] for r in rows))
nseeds = len({r["seed"] for r in rows})
def cell(spec, L, D):
    """(accuracies of the seeds scored, number of failed ones, number of rows) of one spec at one setting"""
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
trained = "trained at length %s with %s pairs" % (train_len, train_pairs) + ("" if mix == "none" else " on the mixture %s" % mix)
md = ["# MQAR recall accuracy", "",
      "Recall accuracy (argmax == answer, over the answer tokens of 256 held-out sequences) of each spec %s; " % trained
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
    # Each spec its own point shape and dash pattern, drawn larger first: lines that coincide (at 1.0,
    # say) stay visible as stacked markers.
    plots = ", ".join("'%s' index %d using 1:2:3:4 with yerrorlines lw 2 dt %d pt %d ps %.1f title '%s'"
                      % (data, i, 1 + i % 5, 4 + 2 * (i % 6), 2.6 - 1.6 * i / max(1, len(specs) - 1), s.replace("'", ""))
                      for i, s in enumerate(specs))
    script = ("set terminal png size 900,650 noenhanced\nset output '%s/%s'\nset title '%s'\nset xlabel '%s'\n"
              "set ylabel 'recall accuracy (mean, min-max over seeds)'\nset yrange [-0.02:1.08]\nset logscale x 2\n"
              "set key below\nset grid\nplot %s\n" % (out, png, title, xlabel, plots))
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
if lens: plot("acc_vs_len.png", lens, lambda L: (L, pairs0), "sequence length N", "MQAR: accuracy vs length (%d pairs)" % pairs0)
if prs: plot("acc_vs_pairs.png", prs, lambda D: (len0, D), "key-value pairs D", "MQAR: accuracy vs pairs (length %d)" % len0)
PYEOF
echo "wrote $csv, $out/mqar.md and the PNGs in $out" >&2
! grep -q ',failed,' "$csv"
