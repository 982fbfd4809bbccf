"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"), in its sequential form: a GRU whose gate and
candidate read the input alone, so the recurrence is linear in h.

    [z; h~] = U x_t + b,  z = sigma(.)        U (2H, D) rows [z; h~], b (2H,) optional
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

state (h,); cache (z, h~); G = 2H; no recurrent matrix. The error goes back through a step
multiplied by 1 - z_t alone: it never explodes, and it vanishes where the gate opens.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param, sigmoid
from .registry import register


class MinGRU(Cell):
    """minGRU: state (h,); cache (z, h~); G = 2H."""

    name = "mingru"
    label = "minGRU"
    model = "MinGRU"
    params = {"U": Param(("2H", "D"), role="input"), "b": Param(("2H",), optional=True, role="input bias")}
    state = ("h",)
    gates = ("z", "cand")
    sigmoid_gates = ("z",)

    def step(self, m, a, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        z, cand = sigmoid(a[..., :H]), a[..., H:]
        return ((1 - z) * h_prev + z * cand,), (z, cand)

    def drive(self, m, A):
        H = A.shape[-1] // 2
        z, cand = sigmoid(A[..., :H]), A[..., H:]
        return z * cand, (z, cand)

    def decay(self, m, cache):
        return 1 - cache[0]

    def step_back(self, m, prev, state, cache, d):
        ((h_prev,), (dh,), (z, cand)) = prev, d, cache
        d_a = np.concatenate([dh * (cand - h_prev) * z * (1 - z), dh * z], axis=-1)
        return d_a, d_a, (dh * (1 - z),)


register(MinGRU)
