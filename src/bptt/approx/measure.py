"""Every approximation of the gradient measured against the exact one, on one model and data, as
plain data: what `bptt approx` prints and what a sweep of kind "approx" stores.

The problem (random_problem): a random model of a cell with each H x H block of W rescaled to a
spectral radius, ids in and out (softmax head; Gaussian targets for mse), one sequence or a batch.
measure() compares, for every parameter and for all together ("all"), the relative error
||g_R - g|| / ||g|| and the cosine of each rule R's gradient g_R to the exact gradient g (bias.py):
the notebook's window K, TBPTT(k1, k2) with fixed weights, RTRL (exact: its error is rounding),
UORO averaged over n estimates, SnAp-1 and SnAp-2.
"""
from __future__ import annotations

import numpy as np

from .. import core, validate
from . import influence
from .bias import Agreement, compare, tbptt_gradient, window_curve
from .influence import rtrl, snap
from .uoro import uoro
from ..validate import show

def rescalable(cell) -> bool:
    """Whether a random model of this cell (a name or alias) has a recurrent weight W that `radius`
    rescales (the Elman cell, the LSTM, the GRU); a cell without one (the LRU, the minGRU, ...)
    starts from its own initialisation whatever the radius."""
    from .. import cells

    return any(p.role == "recurrent" for p in cells.resolve(cell)[0].params.values())


def focus(cell) -> str:
    """The parameter the tables single out, by the cell's declaration: its recurrent weight W; else
    its first parameter of its own (no role: the LRU's nu_log, the linear cell's lam, the recurrence);
    else its first parameter (the minGRU's U)."""
    from .. import cells

    c = cells.resolve(cell)[0]()
    return c.role("recurrent") or next((n for n, p in c.params.items() if p.role is None), next(iter(c.params)))


def random_model(cell, H, D, O, radius, rng):
    """A random model of `cell` (a registered cell or alias, bptt.cells.variants()), H x D x O, with
    biases (a cell whose init takes `bias`), each H x H block of its recurrent weight at spectral
    radius `radius` (a cell without one: its own initialisation, the radius unused; rescalable);
    an input bias that its initialisation leaves at zero (the Elman cell's) drawn from N(0, 0.1^2)."""
    from .. import cells
    from ..model import random_model as draw
    from ..model import with_spectral_radius

    for name, v in (("H", H), ("D", D), ("O", O)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {show(v)}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.number)) or not np.isfinite(radius) \
            or radius <= 0:
        raise ValueError(f"a spectral radius must be a positive number, got {show(radius)}")
    model = draw(cell, H, D, O, seed=rng, **({"bias": True} if "bias" in cells.resolve(cell)[0].options() else {}))
    rec, bias = model.cell.role("recurrent"), model.cell.role("input bias")
    if rec is not None:
        W = model.params[rec]
        model = model.replace(**{rec: np.concatenate([with_spectral_radius(W[g:g + H], radius)
                                                      for g in range(0, W.shape[0], H)])})
    if bias is not None and not model.params[bias].any():
        model = model.replace(**{bias: rng.normal(0, 0.1, model.params[bias].shape)})
    return model


def random_data(model, T, N, rng):
    """(x, y): N random sequences of T ids in and targets out ((T,) each when N = 1)."""
    for name, v in (("T", T), ("N", N)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {show(v)}")
    x = rng.integers(0, model.D, (N, T))
    y = rng.normal(size=(N, T, model.O)) if model.head == "mse" else rng.integers(0, model.O, (N, T))
    return (x, y) if N > 1 else (x[0], y[0])


def measure(model, x, y, *, windows=(0, 1, 2, 5, 10, 20), rules=((5, 5), (5, 10)), samples=100, seed=0,
            delta=0.01, stage=None) -> dict:
    """Every method's relative error and cosine against the exact gradient: {"model", "T", "N",
    "loss", "delta", "smallest_window", "methods": [{"method", "cost", name: {"rel", "cos"}, ...}]}
    with one entry per window K, TBPTT(k1, k2) rule, RTRL, UORO (mean of `samples`), SnAp-1, SnAp-2;
    names: each parameter, "h0" (and "c0"), "all". Non-finite values are None (JSON has no NaN).
    stage: None, or a function told the name of each method as it starts (bptt.progress.Stages)."""
    stage = stage or (lambda name: None)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {show(samples)}")
    N = validate.inputs(model, x).N
    influence.check_size(influence.state_size(model), influence.layout(model).P, N)  # before any other work
    stage("the exact gradient and every window K")
    loss, exact = core.gradients(model, x, y)
    curve = window_curve(model, x, y)
    T = len(curve.K) - 1
    rows = []

    def row(method, cost, grads=None, agreement=None):
        a = agreement if agreement is not None else compare(exact, grads)
        rows.append({"method": method, "cost": cost,
                     **{k: {"rel": _finite(a.rel[k]), "cos": _finite(a.cos[k])} for k in a.rel}})

    for K in windows:
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or not 0 <= K <= T:
            raise ValueError(f"a window K must lie in 0..T = {T} (an integer), got {show(K)}")
        rel = {k: float(v[K]) for k, v in curve.bias.rel.items()}
        cos = {k: float(v[K]) for k, v in curve.bias.cos.items()}
        row(f"window K={K}", f"{min(K + 1, T)} steps back per output", agreement=Agreement(rel, cos))
    for k1, k2 in rules:
        stage(f"TBPTT({k1}, {k2})")
        row(f"TBPTT({k1}, {k2})", f"{k2} steps back every {k1}", tbptt_gradient(model, x, y, k1, k2)[1])
    stage("RTRL, O(S^2 P) a step")
    row("RTRL", "O(S^2 P) per step", rtrl(model, x, y)[1])
    stage(f"UORO, {samples} estimates")
    row(f"UORO, mean of {samples}", "O(P) per step and sample", uoro(model, x, y, seed=seed, samples=samples)[1])
    for n in (1, 2):
        stage(f"SnAp-{n}")
        row(f"SnAp-{n}", "its pattern's entries per step", snap(model, x, y, order=n)[1])
    return {"model": repr(model), "T": T, "N": 1 if np.ndim(x) == 1 else int(np.shape(x)[0]), "loss": float(loss),
            "delta": delta, "smallest_window": curve.smallest_window(delta), "methods": rows}


def _finite(v):
    """A float, or None where it is not finite."""
    v = float(v)
    return v if np.isfinite(v) else None
