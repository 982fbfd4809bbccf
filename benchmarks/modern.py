"""Part: one full gradient of an LRU, a minGRU and a minLSTM, bptt vs JAX (lax.scan and
lax.associative_scan) vs a PyTorch loop, float32 and float64.

The problem is the other parts' (a character-level network, D = O, ids in, ids out, a linear head
with its bias, softmax cross-entropy summed over time and batch), with the cells' default random
models (the LRU with its normalisation gamma, minGRU and minLSTM with their bias). Each peer
computes the loss and the gradient of every parameter from the same weights and data, written the
way its users write these models (the gates and the input's part of every step at once, then the
recurrence h_t = a_t * h_{t-1} + b_t, the LRU's in complex numbers):

  JAX scan     jit(value_and_grad(loss)) with the recurrence in lax.scan; compiled before timing
  JAX assoc    the same with lax.associative_scan over the pairs (a_t, b_t), the maps h -> a h + b
               composed as (a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)
  PyTorch      autograd over a Python loop of the steps (torch complex tensors for the LRU)
  bptt         bptt.gradients(model, x, y) (the sequential loop, compiled), and beside it, not a
               target, bptt.gradients(..., scan="parallel") (the odd-even scan)

Before timing, every answer is compared with bptt's (float64 to 1e-10, float32 to 1e-3 relative).
"""
from __future__ import annotations

import numpy as np

import bptt

from .gradient import agree
from .harness import fmt_time, interleaved

CONFIGS = [(1, 25, 100, 65), (32, 100, 128, 64), (64, 200, 256, 128), (1, 1000, 128, 64),
           (1, 10000, 64, 64)]  # (N, T, H, D = O)
CELLS = ("lru", "mingru", "minlstm")
PEERS = ("jax_scan", "jax_assoc", "torch")


def problem(cell, N, T, H, O, dtype, seed=0):
    rng = np.random.default_rng(seed)
    model = bptt.random_model(cell, H, O, O, seed=rng, dtype=dtype)  # D = O: characters in, characters out
    return model, rng.integers(0, O, (N, T)), rng.integers(0, O, (N, T))


def bptt_fn(model, x, y, scan="sequential"):
    names = list(model.params)

    def run():
        loss, g = bptt.gradients(model, x, y, scan=scan)
        return (loss, *(g.params[k] for k in names))
    return run


# --- the models in JAX and PyTorch, as their users write them ------------------------------------
def _recurrence(exp, sig, P, x, H, cell):
    """(a, b) of every step, (T, N, H) each (a (H,) for the LRU): the input's part gathered for the
    ids x (N, T), then the cell's gates; exp and sig (the logistic function) JAX's or PyTorch's."""
    if cell == "lru":
        lam = exp(-exp(P["nu_log"]) + 1j * exp(P["theta_log"]))  # (H,)
        Bx = P["B_re"].T[x.T] + 1j * P["B_im"].T[x.T]  # (T, N, H): B x_t for ids, a gather
        return lam, exp(P["gamma_log"]) * Bx
    A = P["U"].T[x.T] + P["b"]  # (T, N, G)
    if cell == "mingru":
        z = sig(A[..., :H])
        return 1 - z, z * A[..., H:]
    f, i = sig(A[..., :H]), sig(A[..., H:2 * H])
    return f / (f + i), i * A[..., 2 * H:] / (f + i)


def jax_fn(model, x, y, associative=False):
    import jax
    import jax.numpy as jnp
    cell, H, N = model.cell.name, model.H, x.shape[0]

    def loss_fn(P, x, y):
        a, b = _recurrence(jnp.exp, jax.nn.sigmoid, P, x, H, cell)
        if associative:
            a = jnp.broadcast_to(a, b.shape)

            def compose(first, second):
                (a1, b1), (a2, b2) = first, second
                return a1 * a2, a2 * b1 + b2
            _, S = jax.lax.associative_scan(compose, (a, b))  # h_t with h_{-1} = 0
        elif cell == "lru":
            _, S = jax.lax.scan(lambda h, bt: (a * h + bt,) * 2, jnp.zeros((N, H), b.dtype), b)
        else:
            _, S = jax.lax.scan(lambda h, ab: (ab[0] * h + ab[1],) * 2, jnp.zeros((N, H), b.dtype), (a, b))
        if cell == "lru":
            S = jnp.concatenate([S.real, S.imag], axis=-1)  # (T, N, 2H)
        logp = jax.nn.log_softmax(S @ P["V"].T + P["c"])  # (T, N, O)
        return -jnp.take_along_axis(logp, y.T[..., None], axis=-1).sum()

    g = jax.jit(jax.value_and_grad(loss_fn))
    names = list(model.params)
    P = {k: jnp.asarray(model.params[k]) for k in names}
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def run():
        loss, G = jax.block_until_ready(g(P, xj, yj))
        return (float(loss), *(np.asarray(G[k]) for k in names))
    return run


def torch_fn(model, x, y):
    import torch
    cell, H, O = model.cell.name, model.H, model.O
    names = list(model.params)
    P = {k: torch.tensor(model.params[k], requires_grad=True) for k in names}
    X, Y = torch.from_numpy(x), torch.from_numpy(y.T.reshape(-1))  # targets time-major, as the outputs

    def run():
        for p in P.values():
            p.grad = None
        a, b = _recurrence(torch.exp, torch.sigmoid, P, X, H, cell)
        h, states = torch.zeros_like(b[0]), []
        for t in range(b.shape[0]):
            h = (a if cell == "lru" else a[t]) * h + b[t]
            states.append(h)
        S = torch.stack(states)  # (T, N, H)
        if cell == "lru":
            S = torch.cat([S.real, S.imag], dim=-1)
        loss = torch.nn.functional.cross_entropy((S @ P["V"].T + P["c"]).reshape(-1, O), Y, reduction="sum")
        loss.backward()
        return (loss.item(), *(P[k].grad.numpy() for k in names))
    return run


def run(report, *, rounds, configs=CONFIGS, cells=CELLS, peers=PEERS):
    import jax
    jax.config.update("jax_enable_x64", True)  # float64 for the float64 rows; float32 stays float32
    print("\n== modern: LRU, minGRU and minLSTM gradients: bptt vs JAX lax.scan, JAX lax.associative_scan, "
          "a PyTorch loop ==")
    print("   cell     (N, T, H, D)         dtype    bptt        scan=par.   JAX scan    JAX assoc   PyTorch"
          "     bptt/fastest")
    makers = {"bptt": bptt_fn, "bptt_parallel": lambda m, x, y: bptt_fn(m, x, y, "parallel"),
              "jax_scan": jax_fn, "jax_assoc": lambda m, x, y: jax_fn(m, x, y, associative=True),
              "torch": torch_fn}
    for cell in cells:
        for cfg in configs:
            for dtype in (np.float32, np.float64):
                model, x, y = problem(cell, *cfg, dtype)
                fns = {k: makers[k](model, x, y) for k in ("bptt", "bptt_parallel", *peers)}
                worst = agree({k: f() for k, f in fns.items()}, dtype)
                t = interleaved(fns, rounds=rounds)
                med = {k: v.median for k, v in t.items()}
                fastest = min(peers, key=lambda k: med[k])
                ratio = med["bptt"] / med[fastest]
                print(f"   {cell:8s} {str(cfg):20s} {np.dtype(dtype).name:8s} " + " ".join(
                    f"{fmt_time(med.get(k, np.nan)):11s}" for k in ("bptt", "bptt_parallel", *PEERS))
                    + f" {ratio:8.2f} ({fastest})"
                    + f"   (spread {max(v.spread for v in t.values()):.0%}, agree to {max(worst.values()):.0e})",
                    flush=True)
                report.record(part="modern", cell=cell, config=cfg, dtype=np.dtype(dtype).name,
                              **{f"{k}_s": v for k, v in med.items()}, fastest=fastest, ratio=ratio)
                report.target("modern", f"{cell} bptt / fastest peer {cfg} {np.dtype(dtype).name}", ratio, 1.0)
