"""Part: one full gradient of an LSTM and a GRU, bptt vs PyTorch vs JAX, float32 and float64.

The problem: a character-level network (D = O, ids in, ids out) with both bias vectors, a linear
head with its bias, and softmax cross-entropy summed over time and batch. Each framework computes
the loss and the gradients of every parameter from the same weights and data, written the way its
users write it:

  PyTorch  nn.LSTM / nn.GRU(D, H, batch_first=True) + nn.Linear(H, O) +
           F.cross_entropy(reduction="sum"), .backward(); the one-hot inputs are built once,
           outside the timing (nn.LSTM and nn.GRU take dense inputs)
  JAX      jit(value_and_grad(loss)) with the recurrence in lax.scan and U's columns gathered
           for the ids (the same input projection bptt uses); compiled before timing
  bptt     bptt.gradients(model, x, y) (the GRU in PyTorch's form, reset_after=True)

Before timing, the three answers are compared (float64 to 1e-10, float32 to 1e-3 relative).

PyTorch here is checked against PyTorch as its users get it: at PLAIN_ROW, the plain script of
docs/performance.md (the block marked name=plain-pytorch: nn.LSTM with its own initialisation, or
nn.GRU in its place) runs in a fresh process with only the thread count set, timed in the same
rounds as the three; the target is this benchmark's PyTorch / the script's at most 1.2.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import bptt
from bptt.model import random_gated

from .gradient import agree
from .harness import Script, fmt_time, interleaved

CONFIGS = [(1, 25, 100, 65), (32, 100, 128, 64), (64, 200, 256, 128), (1, 1000, 128, 64)]  # (N, T, H, O)
CELLS = ("lstm", "gru")
NAMES = ("U", "W", "b", "bh", "V", "c")  # the gradients compared, in this order
PLAIN_ROW = ((32, 100, 128, 64), np.float32)  # the row timed beside the plain script as well
DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def plain_script(cell):
    """The docs' plain PyTorch script (its nn.LSTM, or nn.GRU in its place), as a string of code."""
    found = re.findall(r"^```python[^\n]*name=plain-pytorch[^\n]*\n(.*?)^```", DOCS.read_text(), re.S | re.M)
    if len(found) != 1:
        raise ValueError(f"expected one python block marked name=plain-pytorch in {DOCS}, found {len(found)}")
    return found[0].replace("torch.nn.LSTM", {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}[cell])


def problem(cell, N, T, H, O, dtype, seed=0):
    rng = np.random.default_rng(seed)
    model = random_gated(cell, H, O, O, seed=rng, dtype=dtype)  # D = O: characters in, characters out
    return model, rng.integers(0, O, (N, T)), rng.integers(0, O, (N, T))


def bptt_fn(model, x, y):
    def run():
        loss, g = bptt.gradients(model, x, y)
        return (loss, *(g.params[k] for k in NAMES))
    return run


def torch_fn(model, x, y):
    import torch
    dt = {np.float32: torch.float32, np.float64: torch.float64}[model.dtype.type]
    D, H, O = model.D, model.H, model.O
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell.name]
    rnn = kind(D, H, batch_first=True).to(dt)
    lin = torch.nn.Linear(H, O).to(dt)
    with torch.no_grad():
        for p, k in ((rnn.weight_ih_l0, "U"), (rnn.weight_hh_l0, "W"), (rnn.bias_ih_l0, "b"),
                     (rnn.bias_hh_l0, "bh"), (lin.weight, "V"), (lin.bias, "c")):
            p.copy_(torch.tensor(model.params[k]))
    X = torch.nn.functional.one_hot(torch.from_numpy(x), D).to(dt)  # (N, T, D)
    Y = torch.from_numpy(y).reshape(-1)
    params = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0, lin.weight, lin.bias]

    def run():
        for p in params:
            p.grad = None
        out, _ = rnn(X)  # (N, T, H)
        loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, O), Y, reduction="sum")
        loss.backward()
        return loss.item(), *(p.grad.numpy() for p in params)
    return run


def jax_fn(model, x, y):
    import jax
    import jax.numpy as jnp
    N, H = x.shape[0], model.H
    lstm = model.cell.name == "lstm"

    def lstm_step(P, state, a):
        h, c = state
        pre = a + h @ P["W"].T + P["bh"]  # (N, 4H): i, f, g, o
        i, f, o = (jax.nn.sigmoid(pre[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
        c = f * c + i * jnp.tanh(pre[:, 2 * H:3 * H])
        h = o * jnp.tanh(c)
        return (h, c), h

    def gru_step(P, state, a):
        (h,) = state
        rec = h @ P["W"].T + P["bh"]  # (N, 3H): r, z, n
        rz = jax.nn.sigmoid(a[:, :2 * H] + rec[:, :2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = jnp.tanh(a[:, 2 * H:] + r * rec[:, 2 * H:])
        h = (1 - z) * n + z * h
        return (h,), h

    def loss_fn(P, x, y):
        A = P["U"].T[x.T] + P["b"]  # (T, N, G): U x_t for ids is a gather of U's columns
        zero = jnp.zeros((N, H), P["W"].dtype)
        step = lstm_step if lstm else gru_step
        _, S = jax.lax.scan(lambda s, a: step(P, s, a), (zero, zero) if lstm else (zero,), A)  # (T, N, H)
        logp = jax.nn.log_softmax(S @ P["V"].T + P["c"])  # (T, N, O)
        return -jnp.take_along_axis(logp, y.T[..., None], axis=-1).sum()

    g = jax.jit(jax.value_and_grad(loss_fn))
    P = {k: jnp.asarray(model.params[k]) for k in NAMES}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def run():
        loss, G = jax.block_until_ready(g(P, xj, yj))
        return (float(loss), *(np.asarray(G[k]) for k in NAMES))
    return run


def run(report, *, rounds, configs=CONFIGS, cells=CELLS, frameworks=("torch", "jax")):
    import jax
    jax.config.update("jax_enable_x64", True)  # float64 for the float64 rows; float32 stays float32
    print("\n== gated: an LSTM's and a GRU's gradient: bptt vs PyTorch autograd vs JAX "
          "jit(value_and_grad(lax.scan)) ==")
    print("   cell  (N, T, H, O)        dtype    bptt        PyTorch     JAX         bptt/PyTorch  bptt/JAX  "
          "bptt/faster")
    for cell in cells:
        for cfg in configs:
            for dtype in (np.float32, np.float64):
                model, x, y = problem(cell, *cfg, dtype)
                makers = {"bptt": bptt_fn, "torch": torch_fn, "jax": jax_fn}
                fns = {k: makers[k](model, x, y) for k in ("bptt", *frameworks)}
                worst = agree({k: f() for k, f in fns.items()}, dtype)
                if "torch" in fns and (cfg, dtype) == PLAIN_ROW:
                    t = plain_check(report, cell, cfg, fns, rounds)
                else:
                    t = interleaved(fns, rounds=rounds)
                med = {k: v.median for k, v in t.items()}
                r = {k: med["bptt"] / med[k] for k in frameworks}
                ratio = med["bptt"] / min(med[k] for k in frameworks)
                print(f"   {cell:5s} {str(cfg):20s} {np.dtype(dtype).name:8s} " + " ".join(
                    f"{fmt_time(med.get(k, np.nan)):11s}" for k in ("bptt", "torch", "jax"))
                    + f" {r.get('torch', np.nan):12.2f}  {r.get('jax', np.nan):8.2f}  {ratio:10.2f}"
                    + f"   (spread {max(v.spread for v in t.values()):.0%}, agree to {max(worst.values()):.0e})",
                    flush=True)
                report.record(part="gated", cell=cell, config=cfg, dtype=np.dtype(dtype).name,
                              **{f"{k}_s": v for k, v in med.items()}, ratio=ratio)
                report.target("gated", f"{cell} bptt / faster framework {cfg} {np.dtype(dtype).name}", ratio, 1.0)


def plain_check(report, cell, cfg, fns, rounds):
    """Time fns and the docs' plain script in the same rounds; report PyTorch here / the script's."""
    with Script(plain_script(cell), "gradient") as plain:
        said, name = " ".join(plain.printed), {"lstm": "LSTM", "gru": "GRU"}[cell]
        want = f"{name} {cfg}:"
        if not said.startswith(want):
            raise ValueError(f"expected the plain script to print {want!r} first, it printed {said!r}")
        t = interleaved({**fns, "plain": plain}, rounds=rounds)
    ratio = t["torch"].median / t["plain"].median
    print(f"   {cell:5s} the plain script of docs/performance.md, its own process: {fmt_time(t['plain'].median)} "
          f"in these rounds ({said.split(': ')[-1]} by its own loop)", flush=True)
    report.record(part="gated-plain", cell=cell, config=cfg, torch_s=t["torch"].median,
                  plain_s=t["plain"].median, ratio=ratio)
    report.target("gated", f"{cell} PyTorch in this benchmark / the plain script's PyTorch {cfg} float32", ratio, 1.2)
    del t["plain"]
    return t
