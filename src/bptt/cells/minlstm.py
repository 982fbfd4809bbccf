"""minLSTM (Feng et al. 2024, "Were RNNs all we needed?"), in its sequential form: gates that read the
input alone, normalised so that they sum to one.

    [f; i; h~] = U x_t + b,  f, i = sigma(.)      U (3H, D) rows [f; i; h~], b (3H,) optional
    f' = f / (f + i),  i' = i / (f + i)
    h_t = f'_t * h_{t-1} + i'_t * h~_t

state (h,); cache (f, i, h~); G = 3H; no recurrent matrix. The error goes back through a step
multiplied by f'_t alone.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param, sigmoid
from .registry import register


class MinLSTM(Cell):
    """minLSTM: state (h,); cache (f, i, h~); G = 3H."""

    name = "minlstm"
    label = "minLSTM"
    model = "MinLSTM"
    params = {"U": Param(("3H", "D"), role="input"), "b": Param(("3H",), optional=True, role="input bias")}
    state = ("h",)
    gates = ("f", "i", "cand")
    sigmoid_gates = ("f", "i")

    def step(self, m, a, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        f, i, cand = sigmoid(a[..., :H]), sigmoid(a[..., H:2 * H]), a[..., 2 * H:]
        s = f + i
        return ((f * h_prev + i * cand) / s,), (f, i, cand)

    def drive(self, m, A):
        H = A.shape[-1] // 3
        f, i, cand = sigmoid(A[..., :H]), sigmoid(A[..., H:2 * H]), A[..., 2 * H:]
        return i * cand / (f + i), (f, i, cand)

    def decay(self, m, cache):
        f, i, _ = cache
        return f / (f + i)

    def step_back(self, m, prev, state, cache, d):
        """With s = f + i: dE/df = i (h_{t-1} - h~) dh / s^2, dE/di = f (h~ - h_{t-1}) dh / s^2."""
        ((h_prev,), (dh,), (f, i, cand)) = prev, d, cache
        s = f + i
        diff = dh * (h_prev - cand) / (s * s)
        d_a = np.concatenate([diff * i * f * (1 - f), -diff * f * i * (1 - i), dh * i / s], axis=-1)
        return d_a, d_a, (dh * f / s,)


register(MinLSTM)
