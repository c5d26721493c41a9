#!/usr/bin/env bash
# tests/py_relpos.sh — the PyTorch twin (tests/twin.py) computes the same loss and the same
# gradients as attnlab for a --pos rel model holding every softmax-family kind (softmax,
# softmax(persist), adaptive, allattn), attn.rel_k included: `test_relpos --dump` writes the model
# (ctx 12, memory 4: rel_k (8, 16)), one batch and attnlab's gradient of its mean loss (as the
# checkpoint's adam.m.* tensors); the twin loads the checkpoint in float64, runs the batch and
# backpropagates with autograd. Tolerance per tensor: max |g − g_twin| ≤ 1e-4·max|g_twin| + 1e-6
# (float32 against float64); the loss to 1e-5 relative. (The loss over a text is py_twin.sh's.)
# Exit 77 (skip) when /usr/bin/python3 cannot import torch and numpy.
#   bash tests/py_relpos.sh            (ATTNLAB_BUILD=build/release by default; TWIN=path overrides the twin)
set -u
# shellcheck source=tests/lib_twin.sh
source "$(dirname "$0")/lib_twin.sh" py_relpos
DUMP=$BUILD/tests/test_relpos
[ -x "$DUMP" ] || { echo "FAIL: $DUMP not built (make tests-build)"; exit 1; }
tmp=$(mktemp -d /tmp/py_relpos.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$DUMP" --dump "$tmp" || { echo "FAIL: test_relpos --dump"; exit 1; }
"$PY" - "$TWIN" "$tmp/rel.safetensors" "$tmp/batch.txt" <<'EOF'
import importlib.util, sys
import numpy as np
import torch
spec = importlib.util.spec_from_file_location("twin", sys.argv[1]); twin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(twin)
model, cfg, tok = twin.load_checkpoint(sys.argv[2], torch.float64)
tensors, _ = twin.read_safetensors(sys.argv[2])
lines = open(sys.argv[3]).read().split("\n")
B, T = map(int, lines[0].split()); loss_c = float(lines[1])
x = torch.tensor([int(v) for v in lines[2].split()]).view(B, T)
y = torch.tensor([int(v) for v in lines[3].split()]).view(B, T)
assert cfg["pos"] == "rel", cfg
_, nats = model(x, y)
loss = nats.mean()
loss.backward()
ok = abs(loss.item() - loss_c) <= 1e-5 * abs(loss.item())
print(f"loss: attnlab {loss_c:.8f}, twin {loss.item():.8f}")
params = dict(model.named_parameters())
checked = rel = 0
for name, arr in tensors.items():
    if not name.startswith("adam.m."):
        continue
    p = params[twin._twin_name(name[len("adam.m."):])]
    want = p.grad.detach().numpy() if p.grad is not None else np.zeros(p.shape)
    err, scale = float(np.abs(arr - want).max()), float(np.abs(want).max())
    good = err <= 1e-4 * scale + 1e-6
    checked += 1
    if name.endswith("rel_k"):
        rel += 1
        print(f"  {name[7:]}: max |grad| {scale:.3e}, max difference {err:.2e}")
        good = good and scale > 1e-3  # a gradient large enough to tell a missing term
    if not good:
        print(f"FAIL {name[7:]}: max difference {err:.3e} against max |grad| {scale:.3e}")
        ok = False
if rel != 4:
    print(f"FAIL: expected 4 rel_k tensors, found {rel}"); ok = False
print(f"{checked} gradient tensors compared")
sys.exit(0 if ok else 1)
EOF
rc=$?
[ $rc = 0 ] && echo "py_relpos: attnlab and the PyTorch twin agree (loss and every gradient)"
exit $rc
