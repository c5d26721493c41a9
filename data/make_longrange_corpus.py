#!/usr/bin/python3
"""make_longrange_corpus.py — a long-range text corpus from the Python standard library sources
Debian installs, deterministic on a given Debian Python package version, with its train/validation
split at a file boundary exactly where attnlab's data/dataset.c cuts (byte tokenizer).

    /usr/bin/python3 data/make_longrange_corpus.py [OUT]      (default: data/pystdlib.txt)

Files: the *.py files that Debian's libpython3.X-minimal and libpython3.X-stdlib packages install
under the running interpreter's lib dir (/usr/lib/python3.X), so nothing else installed on the
machine (site-packages, dist-packages, python3-tk, python3-lib2to3, python3-distutils, the test
suite) changes the result; minus test directories (test, tests, idle_test), the arch-specific
_sysconfigdata* modules and symlinks. Sorted by their path relative to the lib dir, bytewise
(LC_ALL=C order). Each file is written as one header line "#### file: <relative path>" followed by
its bytes, with a final newline added if it has none.

Split: dataset.c keeps the first n_train = floor(0.9·n) tokens for training (byte tokenizer: one
token per byte of the n-byte file). The validation files are the last ones in sorted order: the
split file index k is the largest one for which the files from k on hold at least a ninth of the
bytes before it (V ≥ B/9). The validation part is then cut to exactly V = ceil(B/9) bytes — at the
last newline at or before that length, the rest padded with newlines (at most one line's worth) —
so that floor(0.9·(B + V)) = B: the validation split starts exactly at the header of file k. The
files (or the tail of the last one) beyond V are dropped; the script says how many bytes.

Prints the size, the split and the sha256 of the result; writes atomically (temporary + rename).
Exit 0; 1 if the packaged standard library cannot be listed; 2 on a usage error.
"""
import hashlib
import os
import subprocess
import sys
import sysconfig

HEADER = "#### file: {}\n"
USAGE = "usage: /usr/bin/python3 data/make_longrange_corpus.py [OUT]   (default: data/pystdlib.txt)"
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages"}


def fail(code, msg):
    print("make_longrange_corpus: " + msg, file=sys.stderr)
    sys.exit(code)


def packaged_sources(libdir, xy):
    """Relative paths (str) of the stdlib *.py files the two Debian packages install, sorted bytewise."""
    pkgs = ["libpython%s-minimal" % xy, "libpython%s-stdlib" % xy]
    try:
        out = subprocess.run(["dpkg-query", "-L"] + pkgs, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        fail(1, "cannot list the files of %s (%s); this script needs Debian's packaged Python"
             % (" and ".join(pkgs), detail.strip().splitlines()[0] if detail.strip() else "no output"))
    rels = set()
    prefix = libdir + "/"
    for path in out.splitlines():
        if not path.startswith(prefix) or not path.endswith(".py"):
            continue
        rel = path[len(prefix):]
        parts = rel.split("/")
        if SKIP_DIRS.intersection(parts[:-1]) or parts[-1].startswith("_sysconfigdata"):
            continue
        if os.path.islink(path) or not os.path.isfile(path) or os.path.realpath(path) != path:
            continue
        rels.add(rel)
    if not rels:
        fail(1, "no standard library sources found under %s" % libdir)
    return sorted(rels, key=lambda r: r.encode("utf-8"))


def entry(libdir, rel):
    with open(os.path.join(libdir, rel), "rb") as f:
        body = f.read()
    if body and not body.endswith(b"\n"):
        body += b"\n"
    try:
        body.decode("utf-8")  # --tokenizer char needs valid UTF-8
    except UnicodeDecodeError as e:
        fail(1, "%s/%s is not valid UTF-8 (%s)" % (libdir, rel, e))
    return HEADER.format(rel).encode("utf-8") + body


def n_train_of(n):
    """dataset.c: n_train = n / 10 * 9 + n % 10 * 9 / 10 (floor(0.9 n)), byte tokenizer."""
    return n // 10 * 9 + n % 10 * 9 // 10


def build(libdir, rels):
    entries = [entry(libdir, r) for r in rels]
    total = sum(len(e) for e in entries)
    before = 0
    k = None
    for i, e in enumerate(entries):  # B(i) = bytes before file i, V(i) = total - B(i)
        if i > 0 and 9 * (total - before) >= before:
            k = i
        before += len(e)
    if k is None:
        fail(1, "too few standard library files to split")
    train = b"".join(entries[:k])
    B = len(train)
    V = (B + 8) // 9  # ceil(B/9): 9V in [B, B+8]
    val_all = b"".join(entries[k:])
    cut = val_all.rfind(b"\n", 0, V) + 1  # keep whole lines
    val = val_all[:cut] + b"\n" * (V - cut)
    text = train + val
    assert n_train_of(len(text)) == B and text[B:].startswith(HEADER.format(rels[k]).encode("utf-8"))
    kept, offset = 0, 0  # validation files that keep at least their header
    for e in entries[k:]:
        if offset >= cut:
            break
        kept, offset = kept + 1, offset + len(e)
    info = {"files": len(rels), "train_files": k, "val_files": kept, "train": B, "val": V,
            "dropped": len(val_all) - cut, "padding": V - cut, "first_val": rels[k]}
    return text, info


def main():
    args = sys.argv[1:]
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(USAGE, file=sys.stderr if len(args) > 1 else sys.stdout)
        sys.exit(2 if len(args) > 1 else 0)
    here = os.path.dirname(os.path.abspath(__file__))
    out = args[0] if args else os.path.join(here, "pystdlib.txt")
    xy = "%d.%d" % sys.version_info[:2]
    libdir = os.path.realpath(sysconfig.get_path("stdlib"))
    text, info = build(libdir, packaged_sources(libdir, xy))
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as e:
        fail(1, "cannot write %s: %s" % (out, e))
    print("wrote %s: %d bytes from %d of %d files of %s (Python %s)" % (
        out, len(text), info["train_files"] + info["val_files"], info["files"], libdir, sys.version.split()[0]))
    print("split: train %d bytes (%d files), validation %d bytes (%d files from %s; %d bytes dropped, %d padding)" % (
        info["train"], info["train_files"], info["val"], info["val_files"], info["first_val"], info["dropped"],
        info["padding"]))
    print("sha256 %s" % hashlib.sha256(text).hexdigest())


if __name__ == "__main__":
    main()
