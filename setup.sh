#!/usr/bin/env bash
# setup.sh — one command sets up a fresh Debian 12 machine and runs the demo or the tests.
#   bash setup.sh demo    install what is missing, build, train the default recipe on Tiny
#                         Shakespeare (char tokenizer, 2000 steps), print a generated sample
#   bash setup.sh test    install what is missing, build, run `make test` (every test) and
#                         `make check` (the unit tests under AddressSanitizer + UBSan)
# Needs nothing but bash and Debian's apt: it installs make and a compiler itself when root;
# otherwise it prints the exact apt-get line to run and stops.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-}
case "$mode" in demo|test) ;; *) echo "usage: bash setup.sh demo|test" >&2; exit 2 ;; esac

# Debian packages: build tools, OpenBLAS (its OpenMP build), cJSON, PCRE2 (BPE's split pattern); curl for the demo's
# download fallback; PyTorch and numpy for the tests' independent reference (the twin); clang with
# its sanitizer and libFuzzer runtimes (libclang-rt-dev is only a Recommends of clang) for the fuzz
# smoke; gnuplot for infer --by-position's plot (tests/cli_eval.sh); OpenMPI for data-parallel
# training (make builds with it when mpicc is found; tests/cli_mpi.sh runs mpirun -np 2 and fails without it).
pkgs=(build-essential libopenblas-openmp-dev libcjson-dev libpcre2-dev ca-certificates curl)
[ "$mode" = test ] && pkgs+=(python3-torch python3-numpy clang libclang-rt-dev gnuplot-nox libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages; run this, then run this script again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"

if [ "$mode" = test ]; then
  make -j"$jobs" test
  make -j"$jobs" check
  exit 0
fi

# --- demo -------------------------------------------------------------------------------------
sha=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
data=data/tinyshakespeare.txt
if [ ! -f "$data" ]; then
  if [ -f ../shared/data/tinyshakespeare.txt ]; then
    data=../shared/data/tinyshakespeare.txt
  else
    echo "setup: downloading Tiny Shakespeare (karpathy/char-rnn)"
    curl -fsSL -o "$data.part" https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
    mv "$data.part" "$data"
  fi
fi
echo "$sha  $data" | sha256sum -c --quiet - || { echo "setup: $data does not have the expected sha256" >&2; exit 1; }
mkdir -p weights
./train "$data" --tokenizer char --out weights/demo.safetensors --log weights/demo.csv
echo
echo "--- a sample from weights/demo.safetensors (infer --tokens 500 --temperature 0.8) ---"
./infer weights/demo.safetensors --tokens 500 --temperature 0.8 --seed 1
