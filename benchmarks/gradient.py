"""Part 1: one full gradient, bptt vs PyTorch vs JAX, float32 and float64.

The problem: a character-level Elman RNN (tanh, no biases) with D = O, ids in, ids out, softmax
cross-entropy summed over time and batch. Each framework computes the loss and the gradients of
U, W and V from the same weights and data, written the way its users write it:

  PyTorch  nn.RNN(D, H, bias=False, batch_first=True) + nn.Linear(H, O, bias=False) +
           F.cross_entropy(reduction="sum"), .backward(); the one-hot inputs are built once,
           outside the timing (nn.RNN takes dense inputs)
  JAX      jit(value_and_grad(loss)) with the recurrence in lax.scan and U's columns gathered
           for the ids (the same input projection bptt uses); compiled before timing
  bptt     bptt.gradients(model, x, y)

Before timing, the three answers are compared (float64 to 1e-10, float32 to 1e-3 relative).
"""
from __future__ import annotations

import numpy as np

import bptt

from .harness import fmt_time, interleaved

CONFIGS = [(1, 25, 100, 65), (32, 100, 128, 64), (64, 200, 256, 128), (1, 1000, 128, 64)]  # (N, T, H, O)


def problem(N, T, H, O, dtype, seed=0):
    rng = np.random.default_rng(seed)
    model = bptt.random_rnn(H, O, O, seed=rng, dtype=dtype)  # D = O: characters in, characters out
    return model, rng.integers(0, O, (N, T)), rng.integers(0, O, (N, T))


def bptt_fn(model, x, y):
    def run():
        loss, g = bptt.gradients(model, x, y)
        return loss, g.U, g.W, g.V
    return run


def torch_fn(model, x, y):
    import torch
    dt = {np.float32: torch.float32, np.float64: torch.float64}[model.dtype.type]
    D, H, O = model.D, model.H, model.O
    rnn = torch.nn.RNN(D, H, bias=False, batch_first=True).to(dt)
    lin = torch.nn.Linear(H, O, bias=False).to(dt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(model.U))
        rnn.weight_hh_l0.copy_(torch.tensor(model.W))
        lin.weight.copy_(torch.tensor(model.V))
    X = torch.nn.functional.one_hot(torch.from_numpy(x), D).to(dt)  # (N, T, D)
    Y = torch.from_numpy(y).reshape(-1)
    params = [rnn.weight_ih_l0, rnn.weight_hh_l0, lin.weight]

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

    def loss_fn(P, x, y):
        UX = P["U"].T[x.T]  # (T, N, H): U x_t for ids is a gather of U's columns

        def step(s, ux):
            s = jnp.tanh(ux + s @ P["W"].T)
            return s, s
        _, S = jax.lax.scan(step, jnp.zeros((N, H), P["W"].dtype), UX)  # (T, N, H)
        logp = jax.nn.log_softmax(S @ P["V"].T)  # (T, N, O)
        return -jnp.take_along_axis(logp, y.T[..., None], axis=-1).sum()

    g = jax.jit(jax.value_and_grad(loss_fn))
    P = {k: jnp.asarray(model.params[k]) for k in "UWV"}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def run():
        loss, G = jax.block_until_ready(g(P, xj, yj))
        return float(loss), np.asarray(G["U"]), np.asarray(G["W"]), np.asarray(G["V"])
    return run


def agree(results, dtype):
    """Largest relative difference of loss and gradients between bptt and each framework."""
    ref = results["bptt"]
    worst = {}
    for name, r in results.items():
        if name == "bptt":
            continue
        w = abs(r[0] - ref[0]) / abs(ref[0])
        for a, b in zip(r[1:], ref[1:]):
            w = max(w, float(np.max(np.abs(a - b)) / np.max(np.abs(b))))
        worst[name] = w
    tol = 1e-10 if dtype == np.float64 else 1e-3
    bad = {k: v for k, v in worst.items() if v > tol}
    if bad:
        raise AssertionError(f"the frameworks disagree with bptt beyond {tol:g}: {bad}")
    return worst


def run(report, *, rounds, configs=CONFIGS, frameworks=("torch", "jax")):
    import jax
    jax.config.update("jax_enable_x64", True)  # float64 for the float64 rows; float32 stays float32
    print("\n== 1. one full gradient: bptt vs PyTorch autograd vs JAX jit(value_and_grad(lax.scan)) ==")
    print("   (N, T, H, O)        dtype    bptt        PyTorch     JAX         bptt/PyTorch  bptt/JAX  "
          "bptt/faster")
    for cfg in configs:
        for dtype in (np.float32, np.float64):
            model, x, y = problem(*cfg, dtype)
            makers = {"bptt": bptt_fn, "torch": torch_fn, "jax": jax_fn}
            fns = {k: makers[k](model, x, y) for k in ("bptt", *frameworks)}
            worst = agree({k: f() for k, f in fns.items()}, dtype)
            t = interleaved(fns, rounds=rounds)
            med = {k: v.median for k, v in t.items()}
            r = {k: med["bptt"] / med[k] for k in frameworks}
            best = min(med[k] for k in frameworks)
            ratio = med["bptt"] / best
            print(f"   {str(cfg):20s} {np.dtype(dtype).name:8s} " + " ".join(
                f"{fmt_time(med.get(k, np.nan)):11s}" for k in ("bptt", "torch", "jax"))
                + f" {r.get('torch', np.nan):12.2f}  {r.get('jax', np.nan):8.2f}  {ratio:10.2f}"
                + f"   (spread {max(v.spread for v in t.values()):.0%}, agree to {max(worst.values()):.0e})",
                flush=True)
            report.record(part="gradients", config=cfg, dtype=np.dtype(dtype).name,
                          **{f"{k}_s": v for k, v in med.items()}, ratio=ratio)
            report.target("gradients", f"bptt / faster framework {cfg} {np.dtype(dtype).name}", ratio, 1.0)
