"""Gated recurrent unit, PyTorch's nn.GRU (gate order r, z, n), or Keras's reset_after=False form:

    r, z = sigma(U_{r,z} x_t + b_{r,z} + W_{r,z} h_{t-1} + bh_{r,z})
    reset after (PyTorch, the default):  n = tanh(U_n x_t + b_n + r * (W_n h_{t-1} + bh_n))
    reset before (reset_after=False):    n = tanh(U_n x_t + b_n + W_n (r * h_{t-1}) + bh_n)
    h_t = (1 - z) * n + z * h_{t-1}

U (3H, D) = weight_ih, W (3H, H) = weight_hh, b (3H,) = bias_ih, bh (3H,) = bias_hh (both optional).
state (h,); cache (r, z, n, rec), rec the reset-gated recurrent part; G = 3H. The error travels
back along the update gate's copy h_k = z_k * h_{k-1} + ... multiplied by z alone.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param, sigmoid
from .registry import register
from ..validate import show


class GRU(Cell):
    """Gated recurrent unit: state (h,); cache (r, z, n, rec); G = 3H; reset_after a setting."""

    name = "gru"
    aliases = {"gru-before": {"reset_after": False}}
    label = "GRU"
    model = "GRU"
    params = {"U": Param(("3H", "D"), role="input"), "W": Param(("3H", "H"), role="recurrent"),
              "b": Param(("3H",), optional=True, role="input bias"),
              "bh": Param(("3H",), optional=True, role="recurrent bias")}
    settings = {"reset_after": True}
    state = ("h",)
    torch, torch_allows = "GRU", {"reset_after": (True,)}  # nn.GRU computes the reset-after form only
    keras, keras_gates = "GRU", (1, 0, 2)  # Keras's z, r, h
    gates = ("r", "z", "n")
    sigmoid_gates = ("r", "z")
    memory = ("h", "z")
    memory_text = ("along the update gate's copy h_k -> h_(k-1), multiplied by the update gate z_k alone", "update",
                   "copies the state")  # the path, its gate's name, what that gate near 1 does

    def __init__(self, **settings):
        super().__init__(**settings)
        if not isinstance(self.reset_after, (bool, np.bool_)):
            raise ValueError(f"reset_after must be True or False, got {show(self.reset_after)}")
        self.values["reset_after"] = bool(self.reset_after)

    def path_lines(self, t) -> list:
        return ["Each step k sends the error at h_k back along two paths:",
                "  along the update gate's copy:  dE/dh_k * z_k",
                "  through the gates:             dE/d(W h_(k-1) + bh)_k . W   (r_k between them)",
                f"The error of h_{t} reaches h_k, if it stays on the copy, times the update gates "
                f"z_{t} * ... * z_(k+1)."]

    def step(self, m, a, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        bh = np.zeros(3 * H, dtype=h_prev.dtype) if m.bh is None else m.bh
        rz = sigmoid(a[..., :2 * H] + h_prev @ m.W[:2 * H].T + bh[:2 * H])  # (N, 2H)
        r, z = rz[..., :H], rz[..., H:]
        if self.reset_after:
            rec = h_prev @ m.W[2 * H:].T + bh[2 * H:]  # W_n h_{t-1} + bh_n, before the reset gate
            n = np.tanh(a[..., 2 * H:] + r * rec)
        else:
            rec = r * h_prev  # the reset gate applied to the state, before W_n
            n = np.tanh(a[..., 2 * H:] + rec @ m.W[2 * H:].T + bh[2 * H:])
        return ((1 - z) * n + z * h_prev,), (r, z, n, rec)

    def step_back(self, m, prev, state, cache, d):
        ((h_prev,), (dh,), (r, z, n, rec)) = prev, d, cache
        H = h_prev.shape[-1]
        dn = dh * (1 - z) * (1 - n * n)  # dE/d(n's pre-activation)
        dz = dh * (h_prev - n) * z * (1 - z)
        if self.reset_after:
            dr = dn * rec * r * (1 - r)
            d_r = np.concatenate([dr, dz, dn * r], axis=-1)  # the error of W h_{t-1} + bh, block by block
            dh_prev = dh * z + d_r @ m.W
        else:
            drec = dn @ m.W[2 * H:]  # dE/d(r * h_{t-1})
            dr = drec * h_prev * r * (1 - r)
            d_r = np.concatenate([dr, dz, dn], axis=-1)
            dh_prev = dh * z + drec * r + d_r[..., :2 * H] @ m.W[:2 * H]
        return np.concatenate([dr, dz, dn], axis=-1), d_r, (dh_prev,)

    def recurrent_grad(self, m, dR, prev, cache):
        if self.reset_after:
            return super().recurrent_grad(m, dR, prev, cache)
        H = prev[0].shape[-1]
        rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        return np.concatenate([rows(dR[..., :2 * H]).T @ rows(prev[0]),  # W_r, W_z multiply h_{t-1}
                               rows(dR[..., 2 * H:]).T @ rows(cache[3])])  # W_n multiplies r * h_{t-1}


register(GRU)
