"""Writes tests/fixtures/adamw/torch_adamw.json: three steps of PyTorch's AdamW with gradient-norm
clipping on two small parameters, the numbers tests/ops/adamw_test.ts checks the adamw,
sumSquares and clipFactor kernels against.

  /usr/bin/python3 tools/make_adamw_fixture.py      (needs torch; Debian's python3-torch works)

Per step it sets each parameter's .grad, calls torch.nn.utils.clip_grad_norm_(params, 1.0) (the
total norm and the factor it applies are recorded), then optimizer.step(). Upstream's settings:
betas (0.9, 0.96), eps 1e-7, weight decay 0.01; lr 0.01 so that the steps move the parameters
visibly. The gradients of step 2 are small enough that no clipping happens. The parameters appear
in the JSON flattened and concatenated, as the flat buffer the kernels update.
"""

import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "adamw" / "torch_adamw.json"
SHAPES = [(3, 5), (4, 3)]
HYPER = {"lr": 0.01, "beta1": 0.9, "beta2": 0.96, "eps": 1e-7, "weightDecay": 0.01, "maxNorm": 1.0}
GRAD_SCALES = [0.8, 0.05, 2.0]


def flat(tensors):
    return [float(v) for t in tensors for v in t.detach().reshape(-1).tolist()]


def main():
    rng = np.random.default_rng(20241207)
    params = [torch.tensor(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    for p in params:
        p.requires_grad_(True)
    initial = flat(params)
    opt = torch.optim.AdamW(
        params,
        lr=HYPER["lr"],
        betas=(HYPER["beta1"], HYPER["beta2"]),
        eps=HYPER["eps"],
        weight_decay=HYPER["weightDecay"],
    )
    steps = []
    for scale in GRAD_SCALES:
        grads = [torch.tensor((rng.standard_normal(s) * scale).astype(np.float32)) for s in SHAPES]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = float(torch.nn.utils.clip_grad_norm_(params, HYPER["maxNorm"]))
        factor = min(1.0, HYPER["maxNorm"] / (norm + 1e-6))
        opt.step()
        state = [opt.state[p] for p in params]
        steps.append({
            "grad": flat(grads),
            "norm": norm,
            "factor": factor,
            "p": flat(params),
            "m": flat([s["exp_avg"] for s in state]),
            "v": flat([s["exp_avg_sq"] for s in state]),
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "torch": torch.__version__,
        "hyper": HYPER,
        "initial": initial,
        "steps": steps,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
