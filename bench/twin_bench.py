#!/usr/bin/python3
"""twin_bench.py — training-step throughput of the PyTorch twin (tests/twin.py's GPT, float32, fused
LayerNorm/GELU kernels) for the comparison in bench/run.sh (docs/performance.md).

    /usr/bin/python3 bench/twin_bench.py [--layers 4*softmax/mlp] [--dim 128] [--heads 4] [--ctx 64]
                                         [--batch 12] [--vocab 65] [--steps 30] [--warmup-steps 3]
                                         [--threads N]

Without --threads it runs in Debian's default environment: no thread settings, no env vars (Debian's
torch then uses one thread); --threads N calls torch.set_num_threads(N). torch.get_num_threads() is
reported. A step is what attnlab's train.c does: zero the gradients, forward with mean cross-entropy,
backward, clip the global gradient norm to 1.0, AdamW (lr 1e-3, betas (0.9, 0.99), eps 1e-8,
weight decay 0.1 on matrices only — wte, wpe, every linear weight — none on biases and LayerNorms).
Random tokens. Prints one line: "twin ... ms_step=MEDIAN tokens_per_s=.. fwd_ms bwd_ms opt_ms peak_rss_mb".
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import twin  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="4*softmax/mlp")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup-steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads(N); 0: leave the default")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = twin.GPT(a.vocab, a.dim, a.heads, a.ctx, twin.parse_spec(a.layers), fast=True)
    model.init_weights()
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    x = torch.randint(0, a.vocab, (a.batch, a.ctx))
    y = torch.randint(0, a.vocab, (a.batch, a.ctx))
    t_step, t_fwd, t_bwd, t_opt = [], [], [], []
    first = last = None
    for s in range(-a.warmup_steps, a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        _, nats = model(x, y)
        loss = nats.mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t3 = time.perf_counter()
        lv = float(loss)
        first = lv if first is None else first
        last = lv
        if s >= 0:
            t_fwd.append(t1 - t0)
            t_bwd.append(t2 - t1)
            t_opt.append(t3 - t2)
            t_step.append(t3 - t0)
    ms = statistics.median(t_step) * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"twin layers={a.layers} dim={a.dim} heads={a.heads} ctx={a.ctx} batch={a.batch} vocab={a.vocab} "
          f"torch={torch.__version__} threads={torch.get_num_threads()} steps={a.steps} ms_step={ms:.3f} "
          f"tokens_per_s={a.batch * a.ctx / (ms * 1e-3):.0f} fwd_ms={statistics.median(t_fwd) * 1e3:.3f} "
          f"bwd_ms={statistics.median(t_bwd) * 1e3:.3f} opt_ms={statistics.median(t_opt) * 1e3:.3f} "
          f"loss_first={first:.4f} loss_last={last:.4f} peak_rss_mb={rss:.1f}")


if __name__ == "__main__":
    main()
