#!/usr/bin/python3
"""twin.py — an independent PyTorch implementation of attnlab's model (ARCHITECTURE.md §2), the
second reference for correctness.

It reads an attnlab safetensors checkpoint with numpy only (8-byte little-endian header length,
JSON header, F32 data), takes the model config and tokenizer from `__metadata__`, builds the same
GPT-2-style model in PyTorch and evaluates a file exactly as `infer --eval` does (ARCHITECTURE.md
§6): the tokens t_0..t_{N-1} are cut into windows of ctx+1 tokens overlapping by one, window w
covering t[w*ctx .. w*ctx+ctx], each a fresh context; loss = mean nats over predicted tokens,
ppl = exp(loss), bpb = total nats / (ln 2 * bytes of the predicted tokens). The reference runs in
float64.

    /usr/bin/python3 tests/twin.py CKPT --eval FILE      prints "loss X | ppl Y | bpb Z | tokens N"
    /usr/bin/python3 tests/twin.py CKPT --info           config, layer kinds, parameter count

Implemented block kinds: mixer softmax (persist=0), ffn mlp(hidden=N) and none. Any other kind (or
option value) raises NotImplementedError naming the layer. bench/twin_bench.py imports this file
for the same model in float32.

Conventions mirrored here (independently of the C code): wte [V,d], wpe [ctx,d]; pre-LN residual
blocks x += mixer(LN1(x)); x += ffn(LN2(x)) (no LN2 and no ffn term when the ffn is `none`); final
LN; logits = x . wte^T (tied); LayerNorm eps 1e-5 with biased variance; GELU tanh approximation;
linear weights stored [out, in] as nn.Linear; attention head h owns columns h*D..h*D+D-1 of q, k, v.
"""
import json
import math
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# checkpoint


def read_safetensors(path):
    """Returns (tensors: dict name -> np.float32 array, metadata: dict str -> str)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(f"{path}: header length {hlen} beyond the file size {len(raw)}")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + hlen:]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        shape = tuple(info["shape"])
        n = int(np.prod(shape)) if shape else 1
        if b - a != 4 * n or b > len(data):
            raise ValueError(f"{path}: tensor {name} offsets {a}..{b} do not match shape {shape}")
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(shape).copy()
    return tensors, meta


# ------------------------------------------------------------------------------------------------
# layer spec: "softmax(persist=0)/mlp(hidden=512),softmax(persist=0)/none" (resolved, as stored)

_BLOCK_RE = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


def _parse_block(text):
    m = _BLOCK_RE.match(text)
    if not m:
        raise ValueError(f"cannot parse block '{text}'")
    opts = {}
    if m.group(2):
        for kv in m.group(2).split(","):
            k, v = kv.split("=")
            opts[k.strip()] = float(v) if any(c in v for c in ".eE") and not v.startswith("0x") else int(v, 0)
    return m.group(1), opts


def parse_spec(spec):
    """Resolved spec -> list of ((mixer, opts), (ffn, opts)). Accepts N* repeats too."""
    spec = re.sub(r"\s+", "", spec)
    # split on commas outside parentheses
    parts, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    layers = []
    for p in parts:
        rep = 1
        m = re.match(r"^(\d+)\*(.*)$", p)
        if m:
            rep, p = int(m.group(1)), m.group(2)
        # the mixer/ffn separator is the '/' outside parentheses
        depth, cut = 0, -1
        for i, ch in enumerate(p):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "/" and depth == 0:
                cut = i
        mixer = _parse_block(p if cut < 0 else p[:cut])
        ffn = _parse_block(p[cut + 1:]) if cut >= 0 else (("none", {}) if mixer[0] == "allattn" else ("mlp", {}))
        layers.extend([(mixer, ffn)] * rep)
    return layers


# ------------------------------------------------------------------------------------------------
# model


class LayerNorm(nn.Module):
    def __init__(self, C, fast=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C))
        self.fast = fast

    def forward(self, x):
        if self.fast:  # PyTorch's fused kernel (the benchmark twin)
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-5)
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased (population) variance
        return (x - mu) / torch.sqrt(var + 1e-5) * self.weight + self.bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class SoftmaxAttention(nn.Module):
    """Causal multi-head softmax attention; q, k, v, o are separate nn.Linear (weight [out, in])."""

    def __init__(self, C, H):
        super().__init__()
        self.H, self.D = H, C // H
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C) for _ in range(4))

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.H, self.D
        # head h owns columns h*D .. h*D+D-1
        q = self.wq(x).view(B, T, H, D).transpose(1, 2)
        k = self.wk(x).view(B, T, H, D).transpose(1, 2)
        v = self.wv(x).view(B, T, H, D).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(D)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        s = s.masked_fill(~causal, float("-inf"))
        p = torch.softmax(s, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, C)
        return self.wo(o)


class MLP(nn.Module):
    def __init__(self, C, hidden, fast=False):
        super().__init__()
        self.w1 = nn.Linear(C, hidden)
        self.w2 = nn.Linear(hidden, C)
        self.fast = fast

    def forward(self, x):
        h = self.w1(x)
        return self.w2(F.gelu(h, approximate="tanh") if self.fast else gelu_tanh(h))


class Layer(nn.Module):
    def __init__(self, idx, C, H, mixer, ffn, fast=False):
        super().__init__()
        mk, mo = mixer
        fk, fo = ffn
        if mk != "softmax" or mo.get("persist", 0) != 0:
            raise NotImplementedError(f"layer {idx}: mixer '{mk}' with options {mo} is not implemented in the twin "
                                      "(only softmax(persist=0))")
        if fk not in ("mlp", "none"):
            raise NotImplementedError(f"layer {idx}: ffn '{fk}' is not implemented in the twin (only mlp, none)")
        self.ln1 = LayerNorm(C, fast)
        self.attn = SoftmaxAttention(C, H)
        self.has_ffn = fk == "mlp"
        if self.has_ffn:
            self.ln2 = LayerNorm(C, fast)
            self.ffn = MLP(C, int(fo.get("hidden", 4 * C)), fast)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        if self.has_ffn:
            x = x + self.ffn(self.ln2(x))
        return x


class GPT(nn.Module):
    """fast=True uses PyTorch's fused LayerNorm and tanh-GELU kernels (same math; the benchmark twin)."""

    def __init__(self, vocab, dim, heads, ctx, layers, fast=False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads {heads} does not divide dim {dim}")
        self.vocab, self.dim, self.heads, self.ctx = vocab, dim, heads, ctx
        self.wte = nn.Parameter(torch.zeros(vocab, dim))
        self.wpe = nn.Parameter(torch.zeros(ctx, dim))
        self.layers = nn.ModuleList(Layer(i, dim, heads, m, f, fast) for i, (m, f) in enumerate(layers))
        self.lnf = LayerNorm(dim, fast)

    def init_weights(self, gen=None):
        """GPT-2 init (ARCHITECTURE.md §2): std 0.02, output projections 0.02/sqrt(2L), biases 0, LN 1/0."""
        L = len(self.layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("attn.wo.weight") or name.endswith("ffn.w2.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * L), generator=gen)
                elif p.dim() == 2:
                    p.normal_(0.0, 0.02, generator=gen)
                elif ".ln" in name or name.startswith("lnf"):
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                else:
                    p.zero_()

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.wte[idx] + self.wpe[:T]
        for layer in self.layers:
            x = layer(x)
        x = self.lnf(x)
        logits = x @ self.wte.t()  # tied
        if targets is None:
            return logits, None
        nats = F.cross_entropy(logits.reshape(-1, self.vocab), targets.reshape(-1), reduction="none").view(B, T)
        return logits, nats


# attnlab tensor name -> twin parameter name
def _twin_name(name):
    m = re.match(r"^layers\.(\d+)\.(ln1|ln2)\.(weight|bias)$", name)
    if m:
        return f"layers.{m.group(1)}.{m.group(2)}.{m.group(3)}"
    m = re.match(r"^layers\.(\d+)\.attn\.(w|b)([qkvo])$", name)
    if m:
        return f"layers.{m.group(1)}.attn.w{m.group(3)}.{'weight' if m.group(2) == 'w' else 'bias'}"
    m = re.match(r"^layers\.(\d+)\.ffn\.(w|b)([12])$", name)
    if m:
        return f"layers.{m.group(1)}.ffn.w{m.group(3)}.{'weight' if m.group(2) == 'w' else 'bias'}"
    m = re.match(r"^lnf\.(weight|bias)$", name)
    if m:
        return f"lnf.{m.group(1)}"
    return name  # wte, wpe


def load_checkpoint(path, dtype=torch.float64):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "attnlab":
        raise ValueError(f"{path}: not an attnlab checkpoint")
    cfg = json.loads(meta["config"])
    tok = json.loads(meta["tokenizer"])
    layers = parse_spec(cfg["layers"])
    model = GPT(cfg["vocab"], cfg["dim"], cfg["heads"], cfg["ctx"], layers)
    params = dict(model.named_parameters())
    seen = set()
    with torch.no_grad():
        for name, arr in tensors.items():
            if name.startswith("adam."):
                continue
            tn = _twin_name(name)
            if tn not in params:
                raise ValueError(f"{path}: tensor '{name}' has no place in the twin's model ({cfg['layers']})")
            if tuple(params[tn].shape) != arr.shape:
                raise ValueError(f"{path}: tensor '{name}' has shape {arr.shape}, the twin expects {tuple(params[tn].shape)}")
            params[tn].copy_(torch.from_numpy(arr))
            seen.add(tn)
    missing = set(params) - seen
    if missing:
        raise ValueError(f"{path}: tensors missing for the twin: {sorted(missing)}")
    return model.to(dtype), cfg, tok


# ------------------------------------------------------------------------------------------------
# tokenizer and evaluation


def encode(tok, data):
    """Token ids (np.int64) and the byte count of each token."""
    if tok["kind"] == "byte":
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        return ids, np.ones(len(ids), dtype=np.int64)
    if tok["kind"] == "char":
        cps = tok["codepoints"]
        index = {cp: i for i, cp in enumerate(cps)}
        text = data.decode("utf-8")  # strict: invalid UTF-8 is an error, as in attnlab
        ids = np.empty(len(text), dtype=np.int64)
        for i, ch in enumerate(text):
            if ord(ch) not in index:
                raise ValueError(f"character U+{ord(ch):04X} is not in the checkpoint's char vocabulary")
            ids[i] = index[ord(ch)]
        nbytes = np.array([len(chr(cp).encode("utf-8")) for cp in cps], dtype=np.int64)
        return ids, nbytes[ids]
    raise NotImplementedError(f"twin: tokenizer kind '{tok['kind']}' is not implemented")


def evaluate(model, ids, tok_bytes, ctx, batch=16):
    """ARCHITECTURE.md §6 windows. Returns (loss, ppl, bpb, predicted tokens)."""
    n = len(ids)
    W = (n - 1 + ctx - 1) // ctx if n >= 2 else 0
    total_nats, total_bytes, total_tokens = 0.0, 0, 0
    full = [w for w in range(W) if w * ctx + ctx + 1 <= n]
    rest = [w for w in range(W) if w * ctx + ctx + 1 > n]
    with torch.no_grad():
        groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
        for g in groups:
            wins = [ids[w * ctx:min(w * ctx + ctx + 1, n)] for w in g]
            x = torch.from_numpy(np.stack([a[:-1] for a in wins]))
            y = torch.from_numpy(np.stack([a[1:] for a in wins]))
            _, nats = model(x, y)
            total_nats += float(nats.to(torch.float64).sum())
            total_tokens += y.numel()
            for w in g:
                total_bytes += int(tok_bytes[w * ctx + 1:min(w * ctx + ctx + 1, n)].sum())
    loss = total_nats / total_tokens
    return loss, math.exp(loss), total_nats / (math.log(2.0) * total_bytes), total_tokens


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description="PyTorch twin of an attnlab checkpoint")
    ap.add_argument("ckpt")
    ap.add_argument("--eval", metavar="FILE", help="loss/ppl/bpb over FILE with ARCHITECTURE.md §6 windows")
    ap.add_argument("--info", action="store_true", help="print the config and parameter count")
    ap.add_argument("--float32", action="store_true", help="run in float32 instead of float64")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    try:
        model, cfg, tok = load_checkpoint(args.ckpt, torch.float32 if args.float32 else torch.float64)
    except (NotImplementedError, ValueError, KeyError) as e:
        print(f"twin: {e}", file=sys.stderr)
        return 1
    model.eval()
    if args.info or not args.eval:
        n = sum(p.numel() for p in model.parameters())
        print(f"config {json.dumps(cfg)} | tokenizer {tok['kind']} | {n} parameters")
    if args.eval:
        with open(args.eval, "rb") as f:
            data = f.read()
        try:
            ids, tok_bytes = encode(tok, data)
        except (ValueError, UnicodeDecodeError) as e:
            print(f"twin: '{args.eval}': {e}", file=sys.stderr)
            return 1
        if len(ids) < 2:
            print(f"twin: '{args.eval}' has {len(ids)} tokens; evaluation needs at least 2", file=sys.stderr)
            return 1
        loss, ppl, bpb, n = evaluate(model, ids, tok_bytes, cfg["ctx"])
        print(f"loss {loss:.8f} | ppl {ppl:.6f} | bpb {bpb:.8f} | tokens {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
