"""Part 10: a stack's gradient, bptt's fast backend vs its reference engine vs PyTorch.

The case: a 2-layer bidirectional LSTM (H = 64 per direction) under a Linear head, a batch of N = 32
dense sequences of T = 200 steps (D = 16), every step scored (O = 5); float64 and float32. Timed,
interleaved round by round after a warm-up: bptt.gradients(stack) on the fast backend (each layer
and direction by the LSTM's kernels, bptt.fast.stacked) and on the reference engine (bptt.stack),
and PyTorch's nn.LSTM(num_layers=2, bidirectional=True) + nn.Linear + cross_entropy (summed) with
loss.backward(), the same weights (bptt.frameworks.to_torch), on the same number of threads.
"""
from __future__ import annotations

import os

import numpy as np

from .harness import fmt_time, interleaved

N, T, H, D, O, LAYERS = 32, 200, 64, 16, 5, 2


def case(dtype):
    """(stack, x, y) of the part's sizes in dtype."""
    from bptt.stack import random_stack

    stack = random_stack("lstm", H, D, O, layers=LAYERS, bidirectional=True, seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    return stack, rng.normal(size=(N, T, D)).astype(dtype), rng.integers(0, O, (N, T))


def torch_step(stack, x, y):
    """A call of PyTorch's forward and backward pass for the stack (to_torch's module)."""
    import torch

    from bptt.frameworks import to_torch

    module, head = to_torch(stack)
    X, Y = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

    def step():
        module.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        out, _ = module(X)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, O), Y, reduction="sum")
        loss.backward()
        return loss.item()

    return step


def run(report, *, rounds):
    import bptt

    print(f"\n== 10. a stack's gradient: {LAYERS}-layer bidirectional LSTM, H = {H}, T = {T}, N = {N}, D = {D} ==")
    for dtype in (np.float64, np.float32):
        stack, x, y = case(dtype)
        fns = {"bptt fast": lambda: bptt.gradients(stack, x, y, backend="fast"),
               "bptt reference": lambda: bptt.gradients(stack, x, y, backend="reference"),
               "PyTorch": torch_step(stack, x, y)}
        times = interleaved(fns, rounds=rounds, warmup=1, sample_s=0.2)
        load = os.getloadavg()
        name = np.dtype(dtype).name
        print(f"   {name}: " + ", ".join(f"{k} {fmt_time(t.median)} (spread {t.spread:.0%})" for k, t in times.items())
              + f"; load averages {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        fast, ref, torch_s = (times[k].median for k in fns)
        report.record(part="stack", dtype=name, N=N, T=T, H=H, D=D, layers=LAYERS, bidirectional=True,
                      fast_s=fast, reference_s=ref, torch_s=torch_s, load=load[0])
        report.target("stack", f"fast / reference, {name}", fast / ref, 1.0)
        report.target("stack", f"fast / PyTorch, {name}", fast / torch_s, 1.0)
