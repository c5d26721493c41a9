#!/usr/bin/env bash
# tests/cli_compare.sh — `compare` end to end on tiny specs (docs/compare.md), and `train --check`:
# the report files; rows keyed by spec (specs reordered give the same rows, nothing retrained);
# per-spec flags replacing shared ones; threads per job; resume skipping finished runs (and an
# interrupted comparison resuming its runs' checkpoints); an unknown spec failing before anything
# trains; a foreign OUTDIR refused; a failing run marked failed while the others complete; the loss by
# position (every run's train --by-position CSV): report.md's table (bucket × spec, mean ± sd over
# seeds, recomputed here from the runs' CSVs), loss_by_position.png, n/a for runs without the CSV.
#   ATTNLAB_BUILD=build/release bash tests/cli_compare.sh
set -u
# shellcheck source=tests/lib_cli.sh
source "$(dirname "$0")/lib_cli.sh"
COMPARE=$BUILD/compare; [ -x "$COMPARE" ] || COMPARE=./compare
[ -x "$COMPARE" ] || fail "compare not built (run make)"
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (Debian package gnuplot-nox)"; exit 77; }

head -c 30000 "$DATA" >"$W/text.txt"
T=$W/text.txt
SHARED=(--dim 32 --heads 2 --ctx 32 --batch 4 --steps 40 --eval-every 10 --eval-batches 2 --tokenizer char --lr 1e-3)
sums() { find "$1/runs" -name train.out -o -name result.json | sort | xargs md5sum; }
row() { grep -F "\"$2\"," "$1/report.csv"; }
# bypos_rows OUTDIR SPEC...: the "Loss by position" table's rows recomputed from the runs' by_position.csv
# files (mean ± sample sd over a spec's runs that have one, n/a for a spec with none, – for a bucket
# none of its runs has), as report.md prints them
bypos_rows() {
    python3 - "$@" <<'PY'
import csv, glob, json, os, statistics, sys
out, specs = sys.argv[1], sys.argv[2:]
per = {s: [] for s in specs}
for rj in glob.glob(out + "/runs/*/result.json"):
    j = json.load(open(rj))
    f = os.path.join(os.path.dirname(rj), "by_position.csv")
    if j["status"] == "ok" and j["spec"] in per and os.path.exists(f):
        per[j["spec"]].append({(int(r["context_lo"]), int(r["context_hi"])): float(r["loss"]) for r in csv.DictReader(open(f))})
buckets = sorted({b for s in specs for run in per[s] for b in run})
for lo, hi in buckets:
    cells = []
    for s in specs:
        v = [run[(lo, hi)] for run in per[s] if (lo, hi) in run]
        if not per[s]: cells.append("n/a")
        elif not v: cells.append("–")
        elif len(v) == 1: cells.append("%.4f" % v[0])
        else: cells.append("%.4f ± %.4f" % (statistics.mean(v), statistics.stdev(v)))
    print("| %s | %s |" % (str(lo) if lo == hi else "%d-%d" % (lo, hi), " | ".join(cells)))
PY
}
md_bypos_rows() { sed -n '/^## Loss by position/,/^## Plots/p' "$1/report.md" | grep -E '^\| [0-9]'; }
col() {  # col CSV SPEC NAME: the field NAME of SPEC's row (the spec is the only quoted field with commas)
    python3 -c 'import csv,sys
r=[x for x in csv.DictReader(open(sys.argv[1])) if x["spec"]==sys.argv[2]]
print(r[0][sys.argv[3]] if r else "NOROW")' "$1" "$2" "$3"
}

check "train --check: the parameter count train would print, nothing written; a bad spec exits 2"
expect_ok "$TRAIN" "$T" --check --layers "2*softmax/mlp" "${SHARED[@]}" --out "$W/never.st"
p_check=$(grep -Eo '[0-9]+ parameters' "$W/out" | awk '{print $1}')
expect_ok "$TRAIN" "$T" --layers "2*softmax/mlp" "${SHARED[@]}" --stop-after 1 --out "$W/once.st"
p_train=$(grep -Eo '[0-9]+ parameters' "$W/out" | head -1 | awk '{print $1}')
[ -n "$p_check" ] && [ "$p_check" = "$p_train" ] || fail "--check says $p_check parameters, train $p_train"
[ ! -e "$W/never.st" ] && [ ! -e "$W/never.st.lock" ] || fail "--check wrote or locked its --out"
expect_err 2 "unknown mixer kind 'softmx'" "$TRAIN" "$T" --check --layers "2*softmx/mlp"

O=$W/cmp
check "2 specs x 2 seeds, 2 jobs: exit 0, report.md/csv, runs.csv, manifest, PNGs, one directory per run"
expect_ok "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*adaptive/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 --progress-every 0.2 -- "${SHARED[@]}"
for f in report.md report.csv runs.csv manifest.json val_loss_vs_step.png val_loss_vs_time.png val_loss_vs_tokens.png \
         final_bpb.png spans.png loss_by_position.png; do
    [ -s "$O/$f" ] || fail "no $f"
done
for f in "$O"/*.png; do [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$f is not a PNG"; done
[ "$(ls "$O/runs" | wc -l)" -eq 4 ] || fail "expected 4 run directories: $(ls "$O/runs")"
for s in 1337 1338; do
    ls "$O/runs" | grep -q "^2xsoftmax-mlp-s$s-[0-9a-f]\{12\}$" || fail "no run directory named by spec and seed $s: $(ls "$O/runs")"
done
grep -q '"status":[[:space:]]*"ok"' "$O"/runs/*/result.json || fail "no ok result.json"
[ "$(grep -l '"status":[[:space:]]*"ok"' "$O"/runs/*/result.json | wc -l)" -eq 4 ] || fail "not every run is ok"
grep -q "^compare: finished 2\*adaptive/mlp seed 1338" "$W/out" || fail "no line when a run finished"
[ "$(grep -c '^| `2\*' "$O/report.md")" -eq 2 ] || fail "report.md does not have one row per spec"
[ "$(col "$O/report.csv" "2*softmax/mlp" runs_ok)" = 2 ] || fail "softmax row: runs_ok is not 2"
[ -n "$(col "$O/report.csv" "2*softmax/mlp" val_bpb_sd)" ] || fail "no spread of val bpb"
[ -n "$(col "$O/report.csv" "2*adaptive/mlp" spans_mean)" ] || fail "the adaptive row has no spans"
[ -z "$(col "$O/report.csv" "2*softmax/mlp" spans_mean)" ] || fail "the softmax row has spans"
grep -q "mean ± sample standard deviation" "$O/report.md" || fail "report.md does not say which spread"

check "CPU share: each run's CPU time over wall × its cores, in result.json, runs.csv and report.csv (mean over seeds)"
python3 - "$O" <<'PY' || fail "CPU share figures disagree (above)"
import csv, glob, json, statistics, sys
out = sys.argv[1]
res = [json.load(open(f)) for f in glob.glob(out + "/runs/*/result.json")]
runs = {(r["spec"], int(r["seed"])): r for r in csv.DictReader(open(out + "/runs.csv"))}
rep = {r["spec"]: r for r in csv.DictReader(open(out + "/report.csv"))}
bad = []
for j in res:
    sh = j.get("cpu_share")
    if not isinstance(sh, (int, float)) or not 0.05 < sh <= 1.1: bad.append(f"{j['spec']} {j['seed']}: cpu_share {sh}")
    elif abs(float(runs[(j["spec"], j["seed"])]["cpu_share"]) - sh) > 1e-4: bad.append(f"runs.csv differs for {j['spec']} {j['seed']}")
for spec, r in rep.items():
    v = [j["cpu_share"] for j in res if j["spec"] == spec]
    if abs(float(r["cpu_share_mean"]) - statistics.mean(v)) > 1e-6: bad.append(f"{spec}: report mean {r['cpu_share_mean']}, runs {v}")
print("\n".join(bad)); sys.exit(1 if bad else 0)
PY
grep -q '| ms/step | tokens/s | CPU share |' "$O/report.md" || fail "report.md has no CPU share column"
command -v taskset >/dev/null || fail "taskset not found (Debian's util-linux, which every system has)"
{   # one core shared with a busy loop: the run gets about half of it
    taskset -c 0 sh -c 'while :; do :; done' & bpid=$!
    expect_ok taskset -c 0 "$COMPARE" "$T" "$W/loaded" --spec "2*softmax/mlp" -- --dim 32 --heads 2 --ctx 32 --batch 4 --steps 400 \
        --eval-every 200 --eval-batches 2 --tokenizer char
    kill $bpid; wait $bpid 2>/dev/null
    share=$(col "$W/loaded/report.csv" "2*softmax/mlp" cpu_share_mean)
    awk -v s="$share" 'BEGIN { exit !(s > 0.05 && s < 0.75) }' || fail "a run sharing its one core with a busy loop has CPU share $share"
}

check "loss by position: every run wrote runs/<key>/by_position.csv; report.md's table is their mean ± sd by bucket"
[ "$(ls "$O"/runs/*/by_position.csv | wc -l)" -eq 4 ] || fail "not every run has by_position.csv: $(ls "$O"/runs/*)"
tr -d '\n\t ' <"$(ls "$O"/runs/*/result.json | head -1)" | grep -q '"--by-position","[^"]*/by_position.csv"' ||
    fail "no --by-position in $(ls "$O"/runs/*/result.json | head -1)"
grep -q '^| context (tokens) | `2\*softmax/mlp` | `2\*adaptive/mlp` |$' "$O/report.md" || fail "no by-position table header"
want=$(bypos_rows "$O" "2*softmax/mlp" "2*adaptive/mlp")
# ctx 32, every window full or not: buckets 1 | 2-3 | 4-7 | 8-15 | 16-31 | 32-63, each cell with a spread
[ "$(echo "$want" | wc -l)" -eq 6 ] && [ "$(echo "$want" | grep -c ' ± .* ± ')" -eq 6 ] || fail "unexpected buckets: $want"
[ "$(md_bypos_rows "$O")" = "$want" ] || fail "report.md's by-position rows: $(md_bypos_rows "$O"); from the CSVs: $want"
grep -q '^plot .plots/by_position_0.dat' "$O/plots/plots.gp" && grep -q 'by_position_1.dat' "$O/plots/plots.gp" ||
    fail "loss_by_position.png does not draw both specs"

check "per-spec flags replace the shared ones; --threads max(1, cores/jobs) added"
cores=$(nproc); th=$((cores / 2)); [ $th -ge 1 ] || th=1
a=$(grep -l '"2\*adaptive/mlp"' "$O"/runs/*/result.json | head -1)
tr -d '\n\t ' <"$a" | grep -q '"--lr","2e-3"' || fail "the adaptive run lacks its own --lr 2e-3: $(cat "$a")"
tr -d '\n\t ' <"$a" | grep -q '"1e-3"' && fail "the adaptive run still has the shared --lr 1e-3: $(cat "$a")"
tr -d '\n\t ' <"$a" | grep -q "\"--threads\",\"$th\"" || fail "no --threads $th in $(cat "$a")"

check "specs reordered: nothing retrained, the same rows"
before=$(sums "$O"); cp "$O/report.csv" "$W/first.csv"
expect_ok "$COMPARE" "$T" "$O" --spec "2*adaptive/mlp" --spec "2*softmax/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 -- "${SHARED[@]}"
grep -q "4 finished earlier, 0 to train" "$W/out" || fail "a finished run was scheduled again"
[ "$(sums "$O")" = "$before" ] || fail "a finished run's files changed"
diff <(sort "$W/first.csv") <(sort "$O/report.csv") >/dev/null || fail "reordered specs changed the rows: $(diff <(sort "$W/first.csv") <(sort "$O/report.csv"))"
[ "$(head -2 "$O/report.csv" | tail -1 | cut -c1-17)" = '"2*adaptive/mlp",' ] || fail "rows are not in the command's order"

check "runs without by_position.csv (an older comparison): n/a, nothing fails; a spec with it from some seeds says so"
mkdir "$W/saved"; for d in "$O"/runs/*; do cp "$d/by_position.csv" "$W/saved/$(basename "$d").csv"; done
rm "$O"/runs/2xadaptive-mlp-*/by_position.csv "$O"/runs/2xsoftmax-mlp-s1338-*/by_position.csv
expect_ok "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*adaptive/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 -- "${SHARED[@]}"
grep -q "4 finished earlier, 0 to train" "$W/out" || fail "a run was scheduled again"
want=$(bypos_rows "$O" "2*softmax/mlp" "2*adaptive/mlp")
[ "$(echo "$want" | grep -c '^| .* | [0-9.]* | n/a |$')" -eq 6 ] || fail "unexpected rows: $want"
[ "$(md_bypos_rows "$O")" = "$want" ] || fail "report.md's by-position rows: $(md_bypos_rows "$O"); from the CSVs: $want"
grep -q '^- `2\*softmax/mlp`: from 1 of its 2 finished runs' "$O/report.md" || fail "report.md does not say 1 of 2 runs"
grep -q 'by_position_1.dat' "$O/plots/plots.gp" && fail "a spec without by-position data has a line in loss_by_position.png"
rm "$O"/runs/*/by_position.csv
expect_ok "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*adaptive/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 -- "${SHARED[@]}"
grep -q '^n/a: no finished run has a `by_position.csv`' "$O/report.md" || fail "report.md does not say n/a"
grep -q 'loss_by_position' "$O/plots/plots.gp" && fail "a by-position plot without data"
for d in "$O"/runs/*; do cp "$W/saved/$(basename "$d").csv" "$d/by_position.csv"; done

check "resume: a run killed before its first save is trained again, the others are not"
victim=$(ls -d "$O"/runs/2xsoftmax-mlp-s1338-*)
rm "$victim/result.json" "$victim/model.safetensors"; head -3 "$victim/log.csv" >"$W/part.csv"; mv "$W/part.csv" "$victim/log.csv"
others=$(sums "$O" | grep -v "$(basename "$victim")")
expect_ok "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*adaptive/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 -- "${SHARED[@]}"
grep -q "3 finished earlier, 1 to train" "$W/out" || fail "expected exactly one run to train"
grep -q "started 2\*softmax/mlp seed 1338 -> " "$W/out" || fail "the run was not started afresh"
[ "$(sums "$O" | grep -v "$(basename "$victim")")" = "$others" ] || fail "another run's files changed"
grep -q '"status":[[:space:]]*"ok"' "$victim/result.json" || fail "the retrained run has no ok result"
[ "$(grep -c ',final,' "$victim/log.csv")" -eq 1 ] || fail "the retrained run's log is not one complete run: $(cat "$victim/log.csv")"

check "a run that completed but lost its result.json (compare killed) is adopted, not retrained"
rm "$victim/result.json"; others=$(sums "$O" | grep -v "$(basename "$victim")")
expect_ok "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*adaptive/mlp" --spec-flags "2*adaptive/mlp=--lr 2e-3" \
    --seeds 2 --jobs 2 -- "${SHARED[@]}"
grep -q "softmax/mlp seed 1338 finished before.*adopted" "$W/out" || fail "the complete run was not adopted"
grep -q "4 finished earlier, 0 to train" "$W/out" || fail "the complete run was scheduled again"

check "--time-budget: every run gets train --time-budget, the report says so, the budget is part of the key"
B=$W/budget
expect_ok "$COMPARE" "$T" "$B" --spec "2*softmax/mlp" --time-budget 60 -- "${SHARED[@]}"
tr -d '\n\t ' <"$B"/runs/*/result.json | grep -q '"--time-budget","60"' || fail "the run lacks --time-budget 60"
grep -q "budget: equal wall-clock time, \`--time-budget 60\` s per run" "$B/report.md" || fail "report.md does not state the budget"
[ "$(ls "$B/runs")" != "$(ls "$O/runs" | grep s1337 | grep softmax)" ] || fail "the time budget did not change the key"
expect_err 2 "holds another comparison: it was made with another --time-budget" \
    "$COMPARE" "$T" "$B" --spec "2*softmax/mlp" --time-budget 30 -- "${SHARED[@]}"

check "an interrupted comparison stops its runs (exit 130) and the next command resumes them"
I=$W/int
"$COMPARE" "$T" "$I" --spec "2*softmax/mlp" --progress-every 0.2 -- --dim 32 --heads 2 --ctx 32 --batch 4 --steps 2000 \
    --eval-every 1000 --eval-batches 2 --tokenizer char --threads 1 >"$W/int.out" 2>&1 &
cpid=$!
for _ in $(seq 300); do  # until the run has logged a step (at most 30 s)
    [ -n "$(cat "$I"/runs/*/log.csv 2>/dev/null | grep -m1 ',train,')" ] && break; sleep 0.1
done
sleep 0.6  # a progress report or two
kill -INT $cpid; wait $cpid; rc=$?
grep -Eq '^  2\*softmax/mlp seed 1337: step [0-9]+/2000 \| loss [0-9.]+ \| [0-9:]+ \| ETA [0-9]+:[0-9]{2}:[0-9]{2}$' "$W/int.out" ||
    fail "no progress line (spec, seed, step/total, loss, ETA): $(cat "$W/int.out")"
grep -q '"status"' "$I"/runs/*/result.json 2>/dev/null && fail "the run finished before the interrupt reached it"
[ $rc -eq 130 ] || { cat "$W/int.out"; fail "interrupted compare exited $rc, not 130"; }
grep -q "interrupted; rerun the same command to resume" "$W/int.out" || fail "no resume hint: $(cat "$W/int.out")"
[ -s "$I"/runs/*/model.safetensors ] || fail "the interrupted run saved no checkpoint"
expect_ok "$COMPARE" "$T" "$I" --spec "2*softmax/mlp" --progress-every 100 -- --dim 32 --heads 2 --ctx 32 --batch 4 \
    --steps 2000 --eval-every 1000 --eval-batches 2 --tokenizer char --threads 1
grep -q "(resuming its checkpoint)" "$W/out" || fail "the interrupted run did not resume"
[ "$(col "$I/report.csv" "2*softmax/mlp" steps_mean)" = 2000 ] || fail "the resumed run did not reach step 2000"

check "a comparison killed outright (SIGKILL: no record of the attempt) resumes, and the run's wall time keeps the first attempt's"
K=$W/kill
KFLAGS=(--dim 32 --heads 2 --ctx 32 --batch 4 --steps 6000 --eval-every 3000 --eval-batches 2 --tokenizer char --threads 1 --save-every 20)
"$COMPARE" "$T" "$K" --spec "2*softmax/mlp" --progress-every 100 -- "${KFLAGS[@]}" >"$W/kill.out" 2>&1 &
cpid=$!
e1=0
for _ in $(seq 600); do  # until the first attempt has trained 2 s and saved (at most 60 s)
    e1=$(awk -F, '$2 == "train" { e = $10 } END { print e + 0 }' "$K"/runs/*/log.csv 2>/dev/null || echo 0)
    [ -s "$(ls "$K"/runs/*/model.safetensors 2>/dev/null | head -1)" ] && awk -v e="$e1" 'BEGIN { exit !(e >= 2) }' && break
    sleep 0.1
done
tpid=$(pgrep -f -- "--out $K/runs/" | head -1)
kill -9 $cpid ${tpid:+$tpid}; wait $cpid 2>/dev/null
[ -n "$tpid" ] || fail "no train process found for the killed comparison"
awk -v e="$e1" 'BEGIN { exit !(e >= 2) }' || fail "the first attempt never logged 2 s (last elapsed_s $e1)"
[ ! -e "$K"/runs/*/result.json ] || fail "the killed run has a result.json"
expect_ok "$COMPARE" "$T" "$K" --spec "2*softmax/mlp" --progress-every 100 -- "${KFLAGS[@]}"
grep -q "(resuming its checkpoint)" "$W/out" || fail "the killed run did not resume: $(cat "$W/out")"
took=$(grep -Eo 'finished 2\*softmax/mlp seed 1337 in [0-9.]+ s' "$W/out" | awk '{print $(NF-1)}')
wall=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1] + "/runs/*/result.json")[0]))["wall_s"])' "$K")
# the first attempt's training up to its last save (20 steps before the kill at most) is kept
awk -v w="$wall" -v t="$took" -v e="$e1" 'BEGIN { exit !(w >= t + e - 0.5) }' ||
    fail "wall_s $wall: the resumed attempt alone took $took s, the killed one had trained $e1 s"
awk -v a="$(col "$K/report.csv" "2*softmax/mlp" wall_s_mean)" -v b="$wall" 'BEGIN { d = a - b; exit !(d < 1e-3 && d > -1e-3) }' ||
    fail "report.csv's wall_s_mean $(col "$K/report.csv" "2*softmax/mlp" wall_s_mean) is not the run's $wall"

check "an unknown spec fails before anything trains, naming it"
expect_err 2 "spec '2\*softmx/mlp' is refused by train \(nothing was trained\): .*unknown mixer kind 'softmx'" \
    "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" --spec "2*softmx/mlp" -- "${SHARED[@]}"
[ ! -e "$W/new" ] || fail "OUTDIR was created for a refused comparison"
before=$(sums "$O")
expect_err 2 "unknown option 'hiden'" "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" --spec "2*softmax/mlp(hiden=3)" -- "${SHARED[@]}"
[ "$(sums "$O")" = "$before" ] || fail "a refused comparison changed the runs"
expect_err 2 "--spec-flags '2\*adaptive/mlp=--lr 1' names no --spec" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" \
    --spec-flags "2*adaptive/mlp=--lr 1"
expect_err 2 "shared train flag '--seed' is set by compare" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" -- --seed 3
expect_err 2 "shared train flag '--by-position' is set by compare" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" -- --by-position x.csv
expect_err 2 "'--by-position=x.csv' is set by compare" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" \
    --spec-flags "2*softmax/mlp=--by-position=x.csv"
expect_err 2 "unknown option '--sedes'" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" --sedes
expect_err 2 "--seeds needs a value" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" --seeds
expect_err 2 "--equal-params is not implemented" "$COMPARE" "$T" "$W/new" --spec "2*softmax/mlp" --equal-params

check "a foreign OUTDIR is refused: other shared flags, another file, files without a manifest"
expect_err 2 "holds another comparison: it was made with other shared train flags" \
    "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" -- "${SHARED[@]}" --dropout 0.1
head -c 20000 "$DATA" >"$W/other.txt"
expect_err 2 "holds another comparison: it was made on another training file" \
    "$COMPARE" "$W/other.txt" "$O" --spec "2*softmax/mlp" -- "${SHARED[@]}"
mkdir "$W/junk"; echo x >"$W/junk/notes.txt"
expect_err 2 "holds files but no comparison" "$COMPARE" "$T" "$W/junk" --spec "2*softmax/mlp" -- "${SHARED[@]}"
[ "$(sums "$O")" = "$before" ] || fail "a refused comparison changed the runs"
flock -o "$O/compare.lock" sleep 30 & lpid=$!   # another compare holding the OUTDIR
for _ in $(seq 200); do flock -n "$O/compare.lock" true || break; sleep 0.05; done
expect_err 2 "OUTDIR '.*' is in use by another compare" "$COMPARE" "$T" "$O" --spec "2*softmax/mlp" -- "${SHARED[@]}"
pkill -P $lpid; kill $lpid 2>/dev/null; wait $lpid 2>/dev/null

check "a failing run is marked failed, the others complete, compare exits 1 naming it"
# a train that fails (exit 3, after a partial log) for one spec and is the real one otherwise
cat >"$W/train_wrap.sh" <<WRAP
#!/usr/bin/env bash
case " \$* " in *" --check "*) exec "$PWD/$TRAIN" "\$@";; esac
case " \$* " in *"hidden=24"*) echo "simulated failure: out of luck" >&2; exit 3;; esac
exec "$PWD/$TRAIN" "\$@"
WRAP
chmod +x "$W/train_wrap.sh"
F=$W/fail
run "$COMPARE" "$T" "$F" --train "$W/train_wrap.sh" --spec "2*softmax/mlp(hidden=24)" --spec "2*softmax/mlp" --jobs 1 -- "${SHARED[@]}"
[ $RC -eq 1 ] || fail "expected exit 1 with a failed run"
grep -q "FAILED 2\*softmax/mlp(hidden=24) seed 1337 (exit 3).*simulated failure" "$W/err" || fail "no FAILED line naming the run"
grep -q "1 run failed: '2\*softmax/mlp(hidden=24)' seed 1337" "$W/err" || fail "no closing line naming the failed run"
[ "$(col "$F/report.csv" "2*softmax/mlp" runs_ok)" = 1 ] || fail "the other spec did not complete"
[ "$(col "$F/report.csv" "2*softmax/mlp(hidden=24)" runs_failed)" = 1 ] || fail "the failed run is not marked in report.csv"
grep -q '| `2\*softmax/mlp(hidden=24)` | – | 0 of 1 (\*\*failed\*\*)' "$F/report.md" || fail "report.md does not mark the failed row"
grep -q "^## Failed runs" "$F/report.md" || fail "report.md has no failed-runs section"
[ "$(md_bypos_rows "$F" | grep -c ' | n/a | [0-9.]* |$')" -eq 6 ] || fail "the failed spec is not n/a by position: $(md_bypos_rows "$F")"
grep -q 'by_position_0.dat' "$F/plots/plots.gp" && fail "the failed run has a line in loss_by_position.png"
echo "all compare checks passed"
