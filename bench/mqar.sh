#!/usr/bin/env bash
# bench/mqar.sh — the MQAR recall benchmark (docs/mqar.md): trains each layer spec with `train --task
# mqar` on every sequence length of LENGTHS at PAIRS0 pairs, and on every pair count of PAIRS at
# length LEN0, scores each run's recall accuracy on the held-out set (the final evaluation), and writes
#   OUTDIR/mqar.csv        spec,len,pairs,vocab,accuracy,answer_loss,params,steps,train_s (one row per run)
#   OUTDIR/mqar.md         two markdown tables: accuracy by spec x length, by spec x pairs
#   OUTDIR/acc_vs_len.png  accuracy against sequence length, one line per spec (gnuplot)
#   OUTDIR/acc_vs_pairs.png accuracy against pairs, one line per spec
#   bash bench/mqar.sh OUTDIR "SPEC1" "SPEC2" ... [-- train flags]
# Environment: LENGTHS (default "64 128 256 512 1024"), PAIRS0 (16), PAIRS ("4 8 16 32 64"), LEN0 (256),
# VOCAB (256). The train flags after -- replace the matching defaults of the recipe below (docs/mqar.md),
# flag by flag; the others stay. A length that cannot hold PAIRS0 pairs (length < 4·pairs) is skipped.
# Each run's files are named by its spec, length and pairs (OUTDIR/runs/<spec>_L<len>_D<pairs>.*): a
# run whose log already has its final row is not trained again, so an interrupted benchmark resumes; a
# failed run is a row with accuracy "failed". Runs are sequential (the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bash bench/mqar.sh OUTDIR SPEC... [-- train flags]" >&2; exit 2; }
out=$1; shift
specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do specs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
user=("$@")
[ ${#specs[@]} -ge 1 ] || { echo "bench/mqar.sh: no layer spec given" >&2; exit 2; }
lengths=${LENGTHS:-64 128 256 512 1024}; pairs0=${PAIRS0:-16}; pair_list=${PAIRS:-4 8 16 32 64}; len0=${LEN0:-256}
vocab=${VOCAB:-256}
train=./train
[ -n "${ATTNLAB_BUILD:-}" ] && [ -x "$ATTNLAB_BUILD/train" ] && train=$ATTNLAB_BUILD/train
command -v gnuplot >/dev/null || { echo "bench/mqar.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

# The recipe (docs/mqar.md), each "--flag value"; a flag the user gives replaces its default.
defaults=(--dim 64 --heads 8 --pos rope --batch 32 --steps 3000 --lr 3e-3 --warmup 100 --eval-every 1000
          --log-every 100 --mqar-eval-seqs 256 --threads 1 --seed 1)
flags=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  printf '%s\n' "${user[@]}" | grep -qx -- "${defaults[i]}" || flags+=("${defaults[i]}" "${defaults[i+1]}")
done
flags+=("${user[@]}")
mkdir -p "$out/runs"
for s in "${specs[@]}"; do  # an unknown or malformed spec fails here, naming it, before anything trains
  "$train" --task mqar --layers "$s" --steps 1 --mqar-len 64 --mqar-pairs 2 --dim 16 --heads 2 --mqar-eval-seqs 1 \
    --threads 1 --out "$out/runs/spec-check.safetensors" >"$out/runs/spec-check.out" 2>&1 ||
    { echo "bench/mqar.sh: spec '$s' does not train: $(tail -1 "$out/runs/spec-check.out")" >&2; exit 2; }
done
rm -f "$out/runs/spec-check."*

key() { printf '%s' "$1" | tr -c 'A-Za-z0-9=.,*-' '_'; }
# run SPEC LEN PAIRS: trains unless its log has a final row; prints the CSV row.
run() {
  local spec=$1 len=$2 d=$3 k
  k=$out/runs/$(key "$spec")_L${len}_D${d}
  if ! grep -q ',final,' "$k.csv" 2>/dev/null; then
    echo "mqar: $spec, length $len, $d pairs" >&2
    "$train" --task mqar --layers "$spec" --mqar-len "$len" --mqar-pairs "$d" --mqar-vocab "$vocab" "${flags[@]}" \
      --out "$k.safetensors" --log "$k.csv" >"$k.out" 2>&1 || echo "mqar: run failed: see $k.out" >&2
  fi
  # the final row's columns by header name
  awk -F, -v spec="$spec" -v len="$len" -v d="$d" -v V="$vocab" -v outf="$k.out" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["split"] == "final" { acc = $col["accuracy"]; loss = $col["loss"]; steps = $col["step"]; secs = $col["elapsed_s"] }
    END {
      params = "-"
      while ((getline line < outf) > 0) if (match(line, /\| [0-9]+ parameters/)) { split(substr(line, RSTART + 2), a, " "); params = a[1] }
      if (acc == "") { acc = "failed"; loss = "-"; steps = "-"; secs = "-" }
      printf "\"%s\",%s,%s,%s,%s,%s,%s,%s,%s\n", spec, len, d, V, acc, loss, params, steps, secs
    }' "$k.csv" 2>/dev/null || printf '"%s",%s,%s,%s,failed,-,-,-,-\n' "$spec" "$len" "$d" "$vocab"
}

csv=$out/mqar.csv
echo "spec,len,pairs,vocab,accuracy,answer_loss,params,steps,train_s" >"$csv"
for spec in "${specs[@]}"; do
  for len in $lengths; do
    [ $((4 * pairs0)) -le "$len" ] || { echo "mqar: length $len cannot hold $pairs0 pairs: skipped" >&2; continue; }
    run "$spec" "$len" "$pairs0" >>"$csv"
  done
  for d in $pair_list; do
    [ $((4 * d)) -le "$len0" ] || { echo "mqar: $d pairs do not fit in length $len0: skipped" >&2; continue; }
    case " $lengths " in *" $len0 "*) [ "$d" = "$pairs0" ] && continue ;; esac  # already run above
    run "$spec" "$len0" "$d" >>"$csv"
  done
done

# Tables and plots from the CSV (read by header name).
python3 - "$csv" "$out" "$pairs0" "$len0" <<'PYEOF'
import csv, subprocess, sys
path, out, pairs0, len0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path)))
specs = list(dict.fromkeys(r["spec"] for r in rows))
def acc(spec, L, D):
    for r in rows:
        if r["spec"] == spec and int(r["len"]) == L and int(r["pairs"]) == D: return r["accuracy"]
    return None
lens = sorted({int(r["len"]) for r in rows if int(r["pairs"]) == pairs0})
prs = sorted({int(r["pairs"]) for r in rows if int(r["len"]) == len0})
def fmt(a): return "-" if a is None else (a if a == "failed" else "%.3f" % float(a))
md = ["# MQAR recall accuracy", "", "Recall accuracy (argmax == answer, over the answer tokens of the held-out set).", "",
      "## By sequence length (%d pairs)" % pairs0, "", "| spec | " + " | ".join("N %d" % L for L in lens) + " |",
      "|---|" + "---|" * len(lens)]
md += ["| `%s` | " % s + " | ".join(fmt(acc(s, L, pairs0)) for L in lens) + " |" for s in specs]
md += ["", "## By pairs (length %d)" % len0, "", "| spec | " + " | ".join("D %d" % D for D in prs) + " |", "|---|" + "---|" * len(prs)]
md += ["| `%s` | " % s + " | ".join(fmt(acc(s, len0, D)) for D in prs) + " |" for s in specs]
open(out + "/mqar.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
def plot(png, xs, getter, xlabel, title):
    data = out + "/" + png.replace(".png", ".dat")
    with open(data, "w") as f:
        for s in specs:
            f.write("# %s\n" % s)
            for x in xs:
                a = getter(s, x)
                if a not in (None, "failed"): f.write("%d %s\n" % (x, a))
            f.write("\n\n")
    plots = ", ".join("'%s' index %d using 1:2 with linespoints lw 2 pt 7 title '%s'" % (data, i, s.replace("'", "")) for i, s in enumerate(specs))
    script = ("set terminal png size 900,600 noenhanced\nset output '%s/%s'\nset title '%s'\nset xlabel '%s'\n"
              "set ylabel 'recall accuracy'\nset yrange [0:1.05]\nset logscale x 2\nset key outside right\nset grid\nplot %s\n"
              % (out, png, title, xlabel, plots))
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
if lens: plot("acc_vs_len.png", lens, lambda s, L: acc(s, L, pairs0), "sequence length N", "MQAR: accuracy vs length (%d pairs)" % pairs0)
if prs: plot("acc_vs_pairs.png", prs, lambda s, D: acc(s, len0, D), "key-value pairs D", "MQAR: accuracy vs pairs (length %d)" % len0)
PYEOF
echo "wrote $csv, $out/mqar.md and the PNGs in $out" >&2
