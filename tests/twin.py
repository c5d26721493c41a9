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

Implemented block kinds, every built one, written from the math of BLOCKS.md and docs/blocks/*.md:
mixers softmax (persist=N), adaptive (span, ramp, persist; BLOCKS.md §2), allattn (§3), performer
(softmax and relu kernels, the stored omega; §5), linformer (causal chunks, window, share=kv; §6),
collab (dk, shared Q/K, mixing, content bias; §7), shortconv (kernel; docs/blocks/shortconv.md); ffns mlp(hidden=N), none and pkm (slots, k,
heads, dk; §4). Any other kind (or option) raises NotImplementedError naming the layer.
Training-only options (init, lambda, redraw) do not enter the forward. bench/twin_bench.py imports
this file for the same model in float32.

Conventions mirrored here (independently of the C code): wte [V,d], wpe [ctx,d]; pre-LN residual
blocks x += mixer(LN1(x)); x += ffn(LN2(x)) (no LN2 and no ffn term when the ffn is `none`); final
LN; logits = x . wte^T (tied); LayerNorm eps 1e-5 with biased variance; GELU tanh approximation;
linear weights stored [out, in] as nn.Linear; attention head h owns columns h*D..h*D+D-1 of q, k, v.
Per-kind tensors (docs/blocks/*.md): attn.span (H) holds z~ with z = span*z~; attn.persist_k and
persist_v are (H, N, D); attn.omega (m, D), one per layer shared by its heads; attn.E, attn.F (k, c),
no F with share=kv; collab's attn.cq, attn.ck (dk, d), attn.mix (H, dk), attn.cb (H, d); pkm:
ffn.wq (H*dk, d), ffn.bq, ffn.qln.{weight,bias} (dk/2), ffn.keys (H, 2, n, dk/2), ffn.values
(n^2, d); shortconv's attn.conv_w (d, k) by lag, attn.conv_b (d), attn.proj_w (d, d), attn.proj_b (d). Evaluation windows are never longer than ctx, so position t uses wpe[t].
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
# positions (LONG_CONTEXT.md §1)

# "learned" | "rope" | "none" | "rel": the model's position scheme. The attention kinds read it at
# forward time (every attention kind rotates its queries and keys under "rope"); load_checkpoint sets
# it from the checkpoint config's "pos" (absent: learned). Only "learned" has the table wpe; "rel"
# gives each softmax-family layer its own learned relative keys rel_k (D, ctx + memory), built with
# the layer (the other kinds refuse it).
pos_scheme = "learned"
POS_SCHEMES = ("learned", "rope", "none", "rel")


def rel_scores(q, rel_k):
    """Under "rel" (the Adaptive Span reference's key_pe): the relative term q_i . r_{i-j} for every
    query i and key j of a window, (B, H, T, T); entries with j > i are 0 (the caller masks them).
    rel_k (D, R): column d is the key of distance d = i - j."""
    T = q.shape[-2]
    if T > rel_k.shape[1]:
        raise ValueError(f"rel: window {T} exceeds the {rel_k.shape[1]} distances of rel_k")
    pos = torch.arange(T, device=q.device)
    d = pos[:, None] - pos[None, :]  # (T, T) i - j
    r = rel_k[:, d.clamp(min=0)]  # (D, T, T): r_{i-j}
    return torch.einsum("bhie,eij->bhij", q, r) * (d >= 0).to(q.dtype)


def _rope_qk(q, k):
    """Under "rope": q, k (B, H, T, D) rotated at their window positions 0..T-1 (R_t q_t, R_t k_t)."""
    if pos_scheme != "rope":
        return q, k
    pos = torch.arange(q.shape[-2], device=q.device)
    return rope_rotate(q, pos, q.shape[-1]), rope_rotate(k, pos, k.shape[-1])


def rope_rotate(x, pos, w):
    """R_p x in the half-split layout (RoFormer; GPT-NeoX/LLaMA): x (..., T, w), pos (T,) the
    positions of the rows. x'[i] = x[i] cos(p t_i) - x[i+w/2] sin(p t_i), x'[i+w/2] = x[i+w/2] cos(p t_i)
    + x[i] sin(p t_i), t_i = 10000^(-2i/w); the angles p t_i and their cos/sin in float64."""
    if w % 2 or x.shape[-1] != w:
        raise ValueError(f"rope_rotate: width {w} must be even and match x's last dimension {x.shape[-1]}")
    half = w // 2
    theta = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float64, device=x.device) / w)
    ang = torch.as_tensor(pos, dtype=torch.float64, device=x.device).reshape(-1, 1) * theta  # (T, w/2)
    c, s = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


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


def _parse_value(v):
    """An option value: int, then float, else a word (kernel=relu, share=kv)."""
    try:
        return int(v, 0)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _parse_block(text):
    m = _BLOCK_RE.match(text)
    if not m:
        raise ValueError(f"cannot parse block '{text}'")
    opts = {}
    if m.group(2):
        for kv in m.group(2).split(","):
            k, v = kv.split("=")
            opts[k.strip()] = _parse_value(v.strip())
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

    def __init__(self, C, H, rel_reach=0):
        super().__init__()
        self.H, self.D = H, C // H
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C) for _ in range(4))
        if rel_reach:  # "rel": s_ij = (q_i.k_j + q_i.r_{i-j}) / sqrt(D)
            self.rel_k = nn.Parameter(torch.zeros(self.D, rel_reach))

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.H, self.D
        # head h owns columns h*D .. h*D+D-1
        q = self.wq(x).view(B, T, H, D).transpose(1, 2)
        k = self.wk(x).view(B, T, H, D).transpose(1, 2)
        v = self.wv(x).view(B, T, H, D).transpose(1, 2)
        q, k = _rope_qk(q, k)  # "rope": s_ij = (R_i q_i).(R_j k_j) / sqrt(D)
        c = q @ k.transpose(-1, -2)
        if pos_scheme == "rel":
            c = c + rel_scores(q, self.rel_k)
        s = c / math.sqrt(D)
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


def _qkv_heads(mod, x):
    """q, k, v of shape (B, H, T, D); head h owns columns h*D .. h*D+D-1."""
    B, T, C = x.shape
    H, D = mod.H, mod.D
    return tuple(w(x).view(B, T, H, D).transpose(1, 2) for w in (mod.wq, mod.wk, mod.wv))


def _merge_heads(mod, o):
    B, H, T, D = o.shape
    return mod.wo(o.transpose(1, 2).reshape(B, T, H * D))


class SpanAttention(nn.Module):
    """BLOCKS.md §2 and §3: softmax attention with an optional adaptive span mask (adaptive, allattn)
    and N optional persistent key/value pairs per head (allattn, persist=N of softmax and adaptive).

    Per head h, query i, key j <= i at distance x = i - j, scores s_ij = q_i.k_j / sqrt(D):
        z_h = S * span_h (span_h the stored z~_h), m(x) = clamp((R + z_h - x) / R, 0, 1)
        persistent logits q_i.Kp_n (Kp stored (H, N, D); the used sqrt(D) Kp over sqrt(D) cancels),
        persistent values sqrt(N) * Vp_n,
        one joint normalization Z_i = sum_j m(i-j) e^{s_ij} + sum_n e^{q_i.Kp_n}
    computed here as a softmax over [s_ij + log m(i-j) (j <= i) | q_i.Kp_n] (log 0 = -inf).
    pos_scheme "rope": s_ij = (R_i q_i).(R_j k_j) / sqrt(D); the persistent logits keep the
    UNROTATED q_i (persistent keys have no position). "rel": s_ij = (q_i.k_j + q_i.r_{i-j}) / sqrt(D),
    the persistent logits without a relative term (no position)."""

    def __init__(self, C, H, span=None, ramp=None, N=0, rel_reach=0):
        super().__init__()
        self.H, self.D = H, C // H
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C) for _ in range(4))
        if rel_reach:
            self.rel_k = nn.Parameter(torch.zeros(self.D, rel_reach))
        self.S, self.R, self.N = span, ramp, N
        if span is not None:
            self.span = nn.Parameter(torch.zeros(H))
        if N > 0:
            self.persist_k = nn.Parameter(torch.zeros(H, N, self.D))
            self.persist_v = nn.Parameter(torch.zeros(H, N, self.D))

    def forward(self, x):
        q, k, v = _qkv_heads(self, x)
        T, D = x.shape[1], self.D
        pos = torch.arange(T, device=x.device)
        qc, kc = (rope_rotate(q, pos, D), rope_rotate(k, pos, D)) if pos_scheme == "rope" else (q, k)
        c = qc @ kc.transpose(-1, -2)
        if pos_scheme == "rel":
            c = c + rel_scores(q, self.rel_k)
        s = c / math.sqrt(D)  # (B, H, T, T)
        dist = (pos[:, None] - pos[None, :]).to(s.dtype)  # i - j
        if self.S is not None:
            z = (self.S * self.span).view(-1, 1, 1)  # (H, 1, 1), tokens
            m = ((self.R + z - dist) / self.R).clamp(0.0, 1.0)  # (H, T, T)
            s = s + torch.log(m)  # mask inside the normalization
        s = s.masked_fill(dist < 0, float("-inf"))  # causal: j <= i
        if self.N > 0:
            sp = q @ self.persist_k.transpose(-1, -2)  # (B, H, T, N): unrotated q, never masked, no position
            p = torch.softmax(torch.cat([s, sp], dim=-1), dim=-1)
            o = p[..., :T] @ v + p[..., T:] @ (math.sqrt(self.N) * self.persist_v)
        else:
            o = torch.softmax(s, dim=-1) @ v
        return _merge_heads(self, o)


class PerformerAttention(nn.Module):
    """BLOCKS.md §5, docs/blocks/performer.md: causal FAVOR+ with the stored random features
    omega (m, D), shared by the layer's heads, as stored (eval never redraws).

    x^ = D^(-1/4) x for q and k. softmax kernel: phi(x^)_r = m^(-1/2) exp(w_r.x^ - |x^|^2/2);
    relu kernel: phi(x^)_r = ReLU(w_r.x^) + 1e-3. y_i = sum_{j<=i} (phi_q_i.phi_k_j) v_j /
    max(sum_{j<=i} phi_q_i.phi_k_j, 1e-30). The prefix sums S_i, z_i are written here as the
    equivalent causal T x T matrix A_ij = phi_q_i.phi_k_j (j <= i), a direct transcription of the
    definition. Stabilizers, factors common to a whole row i of A that cancel between numerator and
    denominator: the query's own max over features (its -|q^|^2/2 is dropped, constant along the
    row too), and for keys c_i = max over j <= i and r of (w_r.k^_j - |k^_j|^2/2), applied as
    phi_k_j relative to its own c_j times exp(c_j - c_i) <= 1 (so no exponent is ever positive).
    pos_scheme "rope": q and k are rotated (R_i q_i, R_j k_j) BEFORE the feature map, and the
    stabilizer is computed on the rotated keys (what phi sees)."""

    def __init__(self, C, H, m, kernel):
        super().__init__()
        if kernel not in ("softmax", "relu"):
            raise NotImplementedError(f"performer kernel '{kernel}'")
        self.H, self.D, self.m, self.kernel = H, C // H, m, kernel
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C) for _ in range(4))
        self.register_buffer("omega", torch.zeros(m, self.D))

    def forward(self, x):
        q, k, v = _qkv_heads(self, x)
        q, k = _rope_qk(q, k)
        T, D, m = x.shape[1], self.D, self.m
        qh, kh = q * D ** -0.25, k * D ** -0.25
        aq = qh @ self.omega.t()  # (B, H, T, m): w_r.x^
        ak = kh @ self.omega.t()
        if self.kernel == "relu":
            fq, fk = torch.relu(aq) + 1e-3, torch.relu(ak) + 1e-3
        else:
            ak = ak - 0.5 * (kh * kh).sum(-1, keepdim=True)
            fq = m ** -0.5 * torch.exp(aq - aq.amax(-1, keepdim=True))
            c = torch.cummax(ak.amax(-1), dim=-1).values  # (B, H, T): prefix max over j <= i and r
            fk = m ** -0.5 * torch.exp(ak - c.unsqueeze(-1))
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        A = fq @ fk.transpose(-1, -2)  # (B, H, T, T)
        if self.kernel == "relu":
            A = A * causal
        else:  # A_ij * exp(c_j - c_i), j <= i
            A = A * torch.exp((c.unsqueeze(-2) - c.unsqueeze(-1)).masked_fill(~causal, float("-inf")))
        o = (A @ v) / A.sum(-1, keepdim=True).clamp_min(1e-30)
        return _merge_heads(self, o)


class LinformerAttention(nn.Module):
    """BLOCKS.md §6, docs/blocks/linformer.md: causal chunked Linformer. Positions are cut into
    chunks of c; every completed chunk u is compressed to k keys Kbar_u = E.K[uc .. uc+c-1] and
    values Vbar_u = F.V[...] (K, V after their biases; E[rho, tau] weighs the chunk's tau-th token,
    oldest first; F = E with share=kv; shared by chunks and heads). A query i in chunk b = i // c
    attends in ONE softmax, scale 1/sqrt(D), to the exact keys j <= i of chunks b-w .. b and to the
    compressed vectors of chunks u < b-w (never both for a chunk). Written here as one score matrix
    over [all completed chunks' compressed vectors | all exact keys] with a per-query column mask.
    pos_scheme "rope": q and every key rotated at its own position BEFORE compression
    (Kbar_u = E.[R_t k_t]); values never rotated."""

    def __init__(self, C, H, chunk, k, window, share):
        super().__init__()
        if share not in ("none", "kv"):
            raise NotImplementedError(f"linformer share '{share}'")
        self.H, self.D, self.c, self.k, self.w, self.share = H, C // H, chunk, k, window, share
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C) for _ in range(4))
        self.E = nn.Parameter(torch.zeros(k, chunk))
        if share == "none":
            self.F = nn.Parameter(torch.zeros(k, chunk))

    def forward(self, x):
        q, k, v = _qkv_heads(self, x)
        q, k = _rope_qk(q, k)
        B, H, T, D = q.shape
        c, kk, w = self.c, self.k, self.w
        F_ = self.E if self.share == "kv" else self.F
        U = T // c  # completed chunks (only these can ever be compressed)
        kc = k[:, :, :U * c].reshape(B, H, U, c, D)
        vc = v[:, :, :U * c].reshape(B, H, U, c, D)
        kbar = torch.einsum("rt,bhutd->bhurd", self.E, kc).reshape(B, H, U * kk, D)
        vbar = torch.einsum("rt,bhutd->bhurd", F_, vc).reshape(B, H, U * kk, D)
        i = torch.arange(T, device=x.device)
        qchunk = i // c  # b of query i
        # compressed column (u, rho) visible to query i iff u < b - w
        ucol = torch.arange(U, device=x.device).repeat_interleave(kk)
        vis_comp = ucol[None, :] < (qchunk[:, None] - w)
        # exact key j visible iff j <= i and chunk(j) >= b - w
        vis_exact = (i[None, :] <= i[:, None]) & ((i[None, :] // c) >= (qchunk[:, None] - w))
        vis = torch.cat([vis_comp, vis_exact], dim=1)  # (T, U*kk + T)
        s = torch.cat([q @ kbar.transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1) / math.sqrt(D)
        p = torch.softmax(s.masked_fill(~vis, float("-inf")), dim=-1)
        o = p[..., :U * kk] @ vbar + p[..., U * kk:] @ v
        return _merge_heads(self, o)


class CollabAttention(nn.Module):
    """BLOCKS.md §7, docs/blocks/collab.md: collaborative attention. Heads share Q~ = x.cq^T and
    K~ = x.ck^T (width dk, no biases) and differ by a mixing vector m_h (row h of mix, (H, dk)); a
    content bias (x_j.cb^T)_h per key (cb (H, d)); the scale is 1/sqrt(d/H) of the original heads.
    s^h_ij = ((Q~_i * m_h).K~_j + (x_j cb^T)_h) / sqrt(D), causal softmax over j <= i; values and the
    output projection as softmax attention (wv, wo nn.Linear). pos_scheme "rope": the MIXED query
    R_i(Q~_i * m_h) and the shared key R_j K~_j are rotated (width dk); content bias and values not."""

    def __init__(self, C, H, dk):
        super().__init__()
        self.H, self.D, self.R = H, C // H, dk
        self.cq = nn.Parameter(torch.zeros(dk, C))
        self.ck = nn.Parameter(torch.zeros(dk, C))
        self.cb = nn.Parameter(torch.zeros(H, C))
        self.mix = nn.Parameter(torch.zeros(H, dk))
        self.wv, self.wo = nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.H, self.D
        qt, kt = x @ self.cq.t(), x @ self.ck.t()                      # (B, T, R)
        qh = qt[:, None, :, :] * self.mix[None, :, None, :]             # (B, H, T, R)
        if pos_scheme == "rope":  # rotate after the mixing: R_i (Q~_i * m_h), R_j K~_j
            pos = torch.arange(T, device=x.device)
            qh, kt = rope_rotate(qh, pos, self.R), rope_rotate(kt, pos, self.R)
        bias = (x @ self.cb.t()).transpose(1, 2)[:, :, None, :]         # (B, H, 1, T): per key j
        s = (qh @ kt[:, None].transpose(-1, -2) + bias) / math.sqrt(D)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        p = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)
        v = self.wv(x).view(B, T, H, D).transpose(1, 2)
        o = (p @ v).transpose(1, 2).reshape(B, T, C)
        return self.wo(o)
class ShortConv(nn.Module):
    """docs/blocks/shortconv.md: Zoology's BaseConv without its "+ u": y = conv_k(x) * (x W^T + b), conv_k
    a depthwise causal convolution with bias (zeros before the window). attnlab stores the taps by lag,
    conv_w[c, s] multiplying x_{t-s}; written here as PyTorch's Conv1d, whose tap j multiplies
    x_{t-(k-1)+j} after k-1 zeros of left padding, so the weight is conv_w flipped along the taps.
    No positions: nothing is rotated under rope."""

    def __init__(self, C, k):
        super().__init__()
        self.k = k
        self.conv_w = nn.Parameter(torch.zeros(C, k))
        self.conv_b = nn.Parameter(torch.zeros(C))
        self.proj_w = nn.Parameter(torch.zeros(C, C))
        self.proj_b = nn.Parameter(torch.zeros(C))

    def forward(self, x):
        B, T, C = x.shape
        weight = self.conv_w.flip(-1).unsqueeze(1)  # (C, 1, k): Conv1d's depthwise layout
        c = F.conv1d(x.transpose(1, 2), weight, self.conv_b, padding=self.k - 1, groups=C)[..., :T]
        return c.transpose(1, 2) * (x @ self.proj_w.t() + self.proj_b)


class PKM(nn.Module):
    """BLOCKS.md §4, docs/blocks/pkm.md: product-key memory as the ffn. Per token and memory head h:
    q = x Wq^T + bq laid out (head, half, dk/2); each half through ONE LayerNorm of width dk/2 shared
    by all heads and halves; sub-key scores s1 = K1_h q1, s2 = K2_h q2 (keys stored (H, 2, n, dk/2));
    the k best of each half; the k^2 sums s1_a + s2_b with slot a*n + b; the k best of those; softmax
    over those k (per head); y = sum_h sum_j w_hj V[slot_hj] with one value table V (n^2, C).
    Every top-k orders by score descending, ties to the lower index (stable sorts)."""

    def __init__(self, C, slots, k, heads, dk):
        super().__init__()
        n = int(round(math.sqrt(slots)))
        if n * n != slots or k > n or dk % 2:
            raise ValueError(f"pkm(slots={slots},k={k},dk={dk}) is not a valid product-key memory")
        self.n, self.k, self.H, self.dk = n, k, heads, dk
        self.wq = nn.Parameter(torch.zeros(heads * dk, C))
        self.bq = nn.Parameter(torch.zeros(heads * dk))
        self.qln = LayerNorm(dk // 2)
        self.keys = nn.Parameter(torch.zeros(heads, 2, n, dk // 2))
        self.values = nn.Parameter(torch.zeros(slots, C))

    def forward(self, x):
        B, T, C = x.shape
        H, n, k, half = self.H, self.n, self.k, self.dk // 2
        q = self.qln((x @ self.wq.t() + self.bq).view(B, T, H, 2, half))
        s = torch.einsum("bthfe,hfne->bthfn", q, self.keys)  # (B, T, H, 2, n)
        sv, si = torch.sort(s, dim=-1, descending=True, stable=True)
        sv, si = sv[..., :k], si[..., :k]  # (B, T, H, 2, k)
        cand = (sv[..., 0, :, None] + sv[..., 1, None, :]).reshape(B, T, H, k * k)
        slot = (si[..., 0, :, None] * n + si[..., 1, None, :]).reshape(B, T, H, k * k)
        # order by slot, then stably by score: ties end up with the lower slot first
        so, oi = torch.sort(slot, dim=-1, stable=True)
        cv = torch.gather(cand, -1, oi)
        best, bi = torch.sort(cv, dim=-1, descending=True, stable=True)
        top = torch.gather(so, -1, bi[..., :k])  # (B, T, H, k)
        w = torch.softmax(best[..., :k], dim=-1)  # per head
        return (w.unsqueeze(-1) * self.values[top]).sum(dim=(2, 3))


# options of every built kind and their defaults (BLOCKS.md, "Options per kind"); None: ctx
_MIXER_OPTS = {
    "softmax": {"persist": 0},
    "adaptive": {"span": None, "ramp": 32, "init": 0.5, "lambda": 2e-6, "persist": 0},
    "allattn": {"persist": 256, "span": None, "ramp": 32, "init": 0.5, "lambda": 2e-6},
    "performer": {"features": 128, "kernel": "softmax", "redraw": 0},
    "linformer": {"chunk": 32, "k": 4, "window": 0, "share": "none"},
    "collab": {"dk": None},  # None: d/2
    "shortconv": {"kernel": 3},
}


_PKM_OPTS = {"slots": 16384, "k": 32, "heads": 4, "dk": 128}


def make_mixer(idx, C, H, ctx, kind, opts, rel_reach=0):
    """rel_reach > 0 (pos "rel"): the layer's rel_k has that many distances; only the softmax family."""
    if rel_reach and kind not in ("softmax", "adaptive", "allattn"):
        raise ValueError(f"layer {idx}: --pos rel: mixer '{kind}' has no learned relative positions")
    if kind not in _MIXER_OPTS:
        raise NotImplementedError(f"layer {idx}: mixer '{kind}' is not implemented in the twin "
                                  f"(only {', '.join(_MIXER_OPTS)})")
    unknown = set(opts) - set(_MIXER_OPTS[kind])
    if unknown:
        raise NotImplementedError(f"layer {idx}: mixer '{kind}' option(s) {sorted(unknown)} not known to the twin")
    o = dict(_MIXER_OPTS[kind], **opts)
    if kind == "softmax":
        if o["persist"] == 0:
            return SoftmaxAttention(C, H, rel_reach)
        return SpanAttention(C, H, N=o["persist"], rel_reach=rel_reach)
    if kind in ("adaptive", "allattn"):
        S = ctx if o["span"] is None else o["span"]
        return SpanAttention(C, H, span=S, ramp=o["ramp"], N=o["persist"], rel_reach=rel_reach)
    if kind == "performer":
        return PerformerAttention(C, H, o["features"], o["kernel"])
    if kind == "collab":
        return CollabAttention(C, H, C // 2 if o["dk"] is None else o["dk"])
    if kind == "shortconv":
        return ShortConv(C, o["kernel"])
    return LinformerAttention(C, H, o["chunk"], o["k"], o["window"], o["share"])


class Layer(nn.Module):
    def __init__(self, idx, C, H, mixer, ffn, fast=False, ctx=None, rel_reach=0):
        super().__init__()
        mk, mo = mixer
        fk, fo = ffn
        if fk not in ("mlp", "none", "pkm"):
            raise NotImplementedError(f"layer {idx}: ffn '{fk}' is not implemented in the twin (only mlp, none, pkm)")
        if mk == "allattn" and fk != "none":
            raise ValueError(f"layer {idx}: allattn takes no ffn (got '{fk}')")
        self.ln1 = LayerNorm(C, fast)
        self.attn = make_mixer(idx, C, H, ctx, mk, mo, rel_reach)
        self.has_ffn = fk != "none"
        if self.has_ffn:
            self.ln2 = LayerNorm(C, fast)
            if fk == "mlp":
                self.ffn = MLP(C, int(fo.get("hidden", 4 * C)), fast)
            else:
                unknown = set(fo) - set(_PKM_OPTS)
                if unknown:
                    raise NotImplementedError(f"layer {idx}: pkm option(s) {sorted(unknown)} not known to the twin")
                o = dict(_PKM_OPTS, **fo)
                self.ffn = PKM(C, o["slots"], o["k"], o["heads"], o["dk"])

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        if self.has_ffn:
            x = x + self.ffn(self.ln2(x))
        return x


class GPT(nn.Module):
    """fast=True uses PyTorch's fused LayerNorm and tanh-GELU kernels (same math; the benchmark twin)."""

    def __init__(self, vocab, dim, heads, ctx, layers, fast=False, pos="learned", memory=0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads {heads} does not divide dim {dim}")
        if pos not in POS_SCHEMES:
            raise ValueError(f"position scheme '{pos}' is not one of {', '.join(POS_SCHEMES)}")
        self.vocab, self.dim, self.heads, self.ctx, self.pos = vocab, dim, heads, ctx, pos
        self.wte = nn.Parameter(torch.zeros(vocab, dim))
        if pos == "learned":  # rope and none have no position table
            self.wpe = nn.Parameter(torch.zeros(ctx, dim))
        rel_reach = ctx + memory if pos == "rel" else 0  # rel_k covers every distance a query sees
        self.layers = nn.ModuleList(Layer(i, dim, heads, m, f, fast, ctx, rel_reach) for i, (m, f) in enumerate(layers))
        self.lnf = LayerNorm(dim, fast)

    def init_weights(self, gen=None):
        """GPT-2 init (ARCHITECTURE.md §2): std 0.02, output projections 0.02/sqrt(2L), biases 0, LN 1/0."""
        L = len(self.layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("attn.wo.weight") or name.endswith("ffn.w2.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * L), generator=gen)
                elif name.endswith("attn.mix"):  # collab mixing, std 0.2 (BLOCKS.md §7)
                    p.normal_(0.0, 0.2, generator=gen)
                elif name.endswith("ffn.values"):  # pkm values std 1/sqrt(d)
                    p.normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
                elif name.endswith("attn.conv_w") or name.endswith("attn.conv_b"):  # Conv1d's U(+-1/sqrt(k))
                    k = self.layers[int(name.split(".")[1])].attn.k
                    p.uniform_(-k ** -0.5, k ** -0.5, generator=gen)
                elif p.dim() == 2:
                    p.normal_(0.0, 0.02, generator=gen)
                elif ".ln" in name or name.startswith("lnf"):
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif name.endswith("attn.span"):
                    p.fill_(0.5)
                elif name.endswith("ffn.keys"):  # pkm sub-keys U(+-1/sqrt(dk/2))
                    p.uniform_(-p.shape[-1] ** -0.5, p.shape[-1] ** -0.5, generator=gen)
                elif name.endswith("attn.persist_k") or name.endswith("attn.persist_v"):
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1 if name.endswith("k") else -2]), generator=gen)
                else:
                    p.zero_()
            for name, b in self.named_buffers():  # performer omega: i.i.d. N(0, 1) rows (not orthogonal)
                if name.endswith("attn.omega"):
                    b.normal_(0.0, 1.0, generator=gen)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        global pos_scheme
        pos_scheme = self.pos  # the attention kinds read it
        x = self.wte[idx] + self.wpe[:T] if self.pos == "learned" else self.wte[idx]
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
    return name  # wte, wpe, layers.L.attn.{span, persist_k, persist_v, rel_k, omega, E, F}


def load_checkpoint(path, dtype=torch.float64):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "attnlab":
        raise ValueError(f"{path}: not an attnlab checkpoint")
    cfg = json.loads(meta["config"])
    tok = json.loads(meta["tokenizer"])
    layers = parse_spec(cfg["layers"])
    pos = cfg.get("pos", "learned")  # absent: learned (checkpoints from before --pos)
    if pos not in POS_SCHEMES:
        raise ValueError(f"{path}: config pos '{pos}' is not one of {', '.join(POS_SCHEMES)}")
    global pos_scheme
    pos_scheme = pos
    model = GPT(cfg["vocab"], cfg["dim"], cfg["heads"], cfg["ctx"], layers, pos=pos, memory=cfg.get("memory", 0))
    params = dict(model.named_parameters())
    params.update(model.named_buffers())  # performer's omega: a buffer, loaded as stored
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
