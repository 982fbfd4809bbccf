"""A linear diagonal recurrence with real eigenvalues, the one-dimensional case of Zucchet & Orvieto
(2024), where the curse of memory is computed in closed form:

    h_t = lambda * h_{t-1} + B x_t          lambda (H,) real, B (H, D)

state (h,); no cache; G = H. The error goes back through a step multiplied by lambda: at lag l it
is lambda^l exactly (it vanishes for |lambda| < 1 and explodes for |lambda| > 1), while the state's
sensitivity to lambda, dh_t/dlambda = sum_k k lambda^(k-1) B x_(t-k), grows as 1/(1 - lambda)^(3/2)
for stationary inputs: the curse of memory (bptt.memory).
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param
from .registry import register


class Linear(Cell):
    """Linear diagonal recurrence: state (h,); G = H; lam a parameter of its own."""

    name = "linear"
    label = "linear diagonal"
    model = "Linear"
    params = {"lam": Param(("H",)), "B": Param(("H", "D"), role="input")}
    state = ("h",)
    time_invariant = True

    def init(self, rng, D, H, O, *, r_min=0.0, r_max=1.0):
        """lambda uniform on [r_min, r_max); B Gaussian with variance 1/D; the head uniform on
        +-1/sqrt(H)."""
        for name, v in (("r_min", r_min), ("r_max", r_max)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not r_min < r_max:
            raise ValueError(f"lambda's range needs r_min < r_max, got r_min={r_min!r}, r_max={r_max!r}")
        k = 1 / np.sqrt(H)
        return {"lam": rng.uniform(r_min, r_max, H), "B": rng.normal(0, 1 / np.sqrt(D), (H, D)),
                "V": rng.uniform(-k, k, (O, H)), "c": rng.uniform(-k, k, O)}

    def step(self, m, a, state):
        (h_prev,) = state
        return (m.lam * h_prev + a,), ()

    def step_back(self, m, prev, state, cache, d):
        (dh,) = d
        return dh, dh, (m.lam * dh,)

    def drive(self, m, A):
        return A, ()

    def decay(self, m, cache):
        return m.lam

    def param_grads(self, m, prev, state, cache, d_a, d_r) -> dict:
        return {"lam": d_r * prev[0]}


register(Linear)
