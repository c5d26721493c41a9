#!/usr/bin/env python3
"""tests/ckpt_tool.py — reads, compares and edits attnlab checkpoints (safetensors: an 8-byte little-endian
header length, a JSON header naming each tensor's dtype, shape and data offsets plus "__metadata__" with
"config" and "train_state" as JSON strings, then the data) for the command-line tests. Standard library only.

  ckpt_tool.py header CKPT               "config {...}", "state {...}" and "tensor NAME SHAPE" lines
  ckpt_tool.py same A B                  exit 0 if every tensor is bit for bit equal and every metadata value
                                         too (train_state.elapsed_s, wall-clock time, excepted); else print the
                                         first differences and exit 1
  ckpt_tool.py tensor-differs A B NAME   exit 0 if tensor NAME differs between A and B, 1 if equal
  ckpt_tool.py close LOG_A LOG_B A B     two runs equal to rounding: the CSV logs have the same (step, split)
                                         rows with losses within 1e-5 relative, every float32 tensor within
                                         1e-5 + 1e-3·|x|; prints the worst ratios
  ckpt_tool.py zero SRC OUT NAME         OUT is SRC with tensor NAME's bytes zeroed
  ckpt_tool.py surgery SRC OUT PYTHON    OUT is SRC with the header dict h (tensors and "__metadata__") and the
                                         train_state dict st changed by the statement PYTHON
"""
import csv
import json
import struct
import sys


def read(path):
    """(header dict with "__metadata__", data bytes after the header)"""
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def load(path):
    """(metadata with train_state parsed and elapsed_s removed, {name: (shape, bytes)})"""
    h, data = read(path)
    meta = h.pop('__metadata__', {})
    st = json.loads(meta.get('train_state', '{}'))
    st.pop('elapsed_s', None)
    meta['train_state'] = st
    return meta, {k: (v['shape'], data[v['data_offsets'][0]:v['data_offsets'][1]]) for k, v in h.items()}


def write(path, h, data):
    hb = json.dumps(h).encode()
    hb += b' ' * (-len(hb) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + data)


def header(path):
    h, _ = read(path)
    m = h.pop('__metadata__')
    print('config', m['config'])
    print('state', m.get('train_state', '{}'))
    for k, v in h.items():
        print('tensor', k, v['shape'])
    return 0


def same(a, b):
    (ma, ta), (mb, tb) = load(a), load(b)
    if ma != mb:
        diff = {k: (ma.get(k), mb.get(k)) for k in set(ma) | set(mb) if ma.get(k) != mb.get(k)}
        print('metadata differs:', str(diff)[:2000])
        return 1
    if sorted(ta) != sorted(tb):
        print('tensor names differ')
        return 1
    bad = [k for k in ta if ta[k] != tb[k]]
    if bad:
        print('tensors differ:', bad[:5])
        return 1
    return 0


def tensor_differs(a, b, name):
    return 0 if load(a)[1][name] != load(b)[1][name] else 1


def close(log_a, log_b, a, b):
    rows = lambda p: [(r['step'], r['split'], float(r['loss'])) for r in csv.DictReader(open(p))]
    ra, rb = rows(log_a), rows(log_b)
    if [r[:2] for r in ra] != [r[:2] for r in rb] or not ra:
        print('the logs have other rows')
        return 1
    worst = max(abs(x[2] - y[2]) / abs(x[2]) for x, y in zip(ra, rb))
    (_, ta), (_, tb) = load(a), load(b)
    if sorted(ta) != sorted(tb):
        print('tensor names differ')
        return 1
    wt = (0, '')
    for k in ta:
        xs = struct.unpack('<%df' % (len(ta[k][1]) // 4), ta[k][1])
        ys = struct.unpack('<%df' % (len(tb[k][1]) // 4), tb[k][1])
        for x, y in zip(xs, ys):
            r = abs(x - y) / (1e-5 + 1e-3 * abs(x))
            if r > wt[0]:
                wt = (r, k)
    print('%d rows (%d train): worst loss difference %.2e relative; worst tensor %s at %.2f of its tolerance'
          % (len(ra), sum(r[1] == 'train' for r in ra), worst, wt[1], wt[0]))
    return 0 if worst <= 1e-5 and wt[0] <= 1 else 1


def zero(src, out, name):
    h, data = read(src)
    lo, hi = h[name]['data_offsets']
    write(out, h, data[:lo] + bytes(hi - lo) + data[hi:])
    return 0


def surgery(src, out, code):
    h, data = read(src)
    st = json.loads(h['__metadata__']['train_state'])
    exec(code, {'h': h, 'st': st, 'json': json})
    h['__metadata__']['train_state'] = json.dumps(st, separators=(',', ':'))
    write(out, h, data)
    return 0


COMMANDS = {'header': (header, 1), 'same': (same, 2), 'tensor-differs': (tensor_differs, 3), 'close': (close, 4),
            'zero': (zero, 3), 'surgery': (surgery, 3)}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS or len(sys.argv) != 2 + COMMANDS[sys.argv[1]][1]:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    fn, _ = COMMANDS[sys.argv[1]]
    sys.exit(fn(*sys.argv[2:]))
