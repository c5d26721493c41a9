# tests/lib_twin.sh — sourced by the scripts that compare with the PyTorch twin (py_twin.sh,
# py_relpos.sh): the repository root as working directory, BUILD, PY, TWIN, and the skip (exit 77)
# when /usr/bin/python3 cannot import torch and numpy. $1: the script's name for the skip line.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${ATTNLAB_BUILD:-build/release}
PY=/usr/bin/python3
TWIN=${TWIN:-tests/twin.py}
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "$1: $PY cannot import torch and numpy (Debian python3-torch); skipped"
  exit 77
fi
