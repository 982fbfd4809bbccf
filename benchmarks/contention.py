"""Part: the gradient rows again with the machine's cores busy, bptt against PyTorch and JAX alike.

Users run bptt beside data loaders, notebooks and Dask workers. Here k = os.cpu_count() other
processes each spin one core at 100% (a Python loop, started before and stopped after each row)
while the rows of the gradients part (the Elman cell) and of the gated part (LSTM, GRU) are timed,
every library under the same load, interleaved as everywhere in this suite. The target is the same
as without the load: bptt at most 1.0x the faster of PyTorch and JAX.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import numpy as np

from . import gated, gradient
from .harness import fmt_time, interleaved

SPIN = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


@contextlib.contextmanager
def busy(k):
    """k processes that each keep one core busy until the block ends (at most an hour, whatever happens)."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(k)]
    try:
        time.sleep(0.5)  # let them reach their loop
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def rows():
    """(label, part module, make(dtype) -> (model, x, y)) for every row of the gradients and gated parts."""
    for cfg in gradient.CONFIGS:
        yield "rnn", cfg, gradient, lambda dtype, cfg=cfg: gradient.problem(*cfg, dtype)
    for cell in gated.CELLS:
        for cfg in gated.CONFIGS:
            yield cell, cfg, gated, lambda dtype, cell=cell, cfg=cfg: gated.problem(cell, *cfg, dtype)


def run(report, *, rounds, frameworks=("torch", "jax")):
    import jax
    jax.config.update("jax_enable_x64", True)
    k = os.cpu_count() or 1
    print(f"\n== contention: every gradient row with {k} busy processes beside it (one per core) ==")
    print("   cell  (N, T, H, O)        dtype    bptt        PyTorch     JAX         bptt/faster")
    for cell, cfg, part, make in rows():
        for dtype in (np.float32, np.float64):
            model, x, y = make(dtype)
            makers = {"bptt": part.bptt_fn, "torch": part.torch_fn, "jax": part.jax_fn}
            fns = {name: makers[name](model, x, y) for name in ("bptt", *frameworks)}
            part.agree({name: f() for name, f in fns.items()}, dtype)
            with busy(k):
                t = interleaved(fns, rounds=rounds)
            med = {name: v.median for name, v in t.items()}
            ratio = med["bptt"] / min(med[name] for name in frameworks)
            print(f"   {cell:5s} {str(cfg):20s} {np.dtype(dtype).name:8s} " + " ".join(
                f"{fmt_time(med.get(name, np.nan)):11s}" for name in ("bptt", "torch", "jax"))
                + f" {ratio:10.2f}   (spread {max(v.spread for v in t.values()):.0%})", flush=True)
            report.record(part="contention", cell=cell, config=cfg, dtype=np.dtype(dtype).name, busy=k,
                          **{f"{name}_s": v for name, v in med.items()}, ratio=ratio)
            report.target("contention", f"{cell} bptt / faster framework, {k} busy {cfg} {np.dtype(dtype).name}",
                          ratio, 1.0)
