"""The linear recurrent unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long
sequences"): a complex diagonal linear recurrence, written in real numbers.

    lambda = exp(-exp(nu_log) + i exp(theta_log))     (H,) complex, |lambda| = exp(-exp(nu_log)) < 1
    gamma  = exp(gamma_log)                           (H,) the normalisation, sqrt(1 - |lambda|^2) at init
    h_t    = lambda * h_{t-1} + gamma * (B x_t),      B = B_re + i B_im  (H, D)
    q_t    = V [Re h_t, Im h_t] + c                   V (O, 2H)

Its state is h's real and imaginary parts side by side, (N, 2H); a_t = [B_re x_t, B_im x_t] (G = 2H,
the two input parameters stacked). Gradients are with respect to the real parameters nu_log,
theta_log, gamma_log, B_re and B_im. A model without gamma_log has gamma = 1: the complex diagonal
recurrence without normalisation. The error goes back through a step multiplied by conj(lambda),
so its size at lag l is |lambda|^l exactly: it vanishes at the rate the unit forgets, and never
explodes.
"""
from __future__ import annotations

import numpy as np

from .base import Cell, Param
from .registry import register


class LRU(Cell):
    """Linear recurrent unit: state (h,) = [Re h, Im h] (N, 2H); cache (a,), a = [B_re x, B_im x]."""

    name = "lru"
    label = "LRU"
    model = "LRU"
    params = {"nu_log": Param(("H",)), "theta_log": Param(("H",)),
              "B_re": Param(("H", "D"), role="input"), "B_im": Param(("H", "D"), role="input"),
              "gamma_log": Param(("H",), optional=True)}
    state = ("h",)
    time_invariant = True

    def state_sizes(self, H) -> tuple:
        return (2 * H,)

    @staticmethod
    def eigenvalues(m):
        """(Re lambda, Im lambda), each (H,)."""
        r, phase = np.exp(-np.exp(m.nu_log)), np.exp(m.theta_log)
        return r * np.cos(phase), r * np.sin(phase)

    @staticmethod
    def gamma(m):
        return np.ones_like(m.nu_log) if m.gamma_log is None else np.exp(m.gamma_log)

    def init(self, rng, D, H, O, *, r_min=0.0, r_max=1.0, max_phase=2 * np.pi, normalise=True):
        """The ring initialisation: |lambda| uniform on the ring r_min <= |lambda| <= r_max (its
        square uniform, as in the paper), phase uniform on [0, max_phase]; gamma = sqrt(1 - |lambda|^2)
        (normalise=False leaves gamma_log out: gamma = 1); B_re, B_im Gaussian with variance 1/(2D);
        the head uniform on +-1/sqrt(2H)."""
        for name, v in (("r_min", r_min), ("r_max", r_max), ("max_phase", max_phase)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not 0 <= r_min < r_max <= 1:
            raise ValueError(f"the ring needs 0 <= r_min < r_max <= 1, got r_min={r_min!r}, r_max={r_max!r}")
        if max_phase <= 0:
            raise ValueError(f"max_phase must be > 0, got {max_phase!r}")
        if not isinstance(normalise, (bool, np.bool_)):
            raise ValueError(f"normalise must be True or False, got {normalise!r}")
        u1, u2 = rng.uniform(size=H), rng.uniform(size=H)
        r2 = np.clip(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2, 1e-12, 1 - 1e-12)  # |lambda|^2
        params = {"nu_log": np.log(-0.5 * np.log(r2)), "theta_log": np.log(max_phase * np.maximum(u2, 1e-12)),
                  "B_re": rng.normal(0, 1 / np.sqrt(2 * D), (H, D)), "B_im": rng.normal(0, 1 / np.sqrt(2 * D), (H, D))}
        if normalise:
            params["gamma_log"] = 0.5 * np.log1p(-r2)
        k = 1 / np.sqrt(2 * H)
        params["V"], params["c"] = rng.uniform(-k, k, (O, 2 * H)), rng.uniform(-k, k, O)
        return params

    def step(self, m, a, state):
        (h,) = state
        H = h.shape[-1] // 2
        hr, hi = h[..., :H], h[..., H:]
        lr, li = self.eigenvalues(m)
        g = self.gamma(m)
        return (np.concatenate([lr * hr - li * hi + g * a[..., :H], li * hr + lr * hi + g * a[..., H:]], axis=-1),), (a,)

    def step_back(self, m, prev, state, cache, d):
        """dE/dh_{t-1} = conj(lambda) dE/dh_t (in complex form); d_a = gamma dE/dh_t; d_r = dE/dh_t."""
        (dh,) = d
        H = dh.shape[-1] // 2
        gr, gi = dh[..., :H], dh[..., H:]
        lr, li = self.eigenvalues(m)
        g = self.gamma(m)
        return (np.concatenate([g * gr, g * gi], axis=-1), dh,
                (np.concatenate([lr * gr + li * gi, lr * gi - li * gr], axis=-1),))

    def drive(self, m, A):
        H = A.shape[-1] // 2
        g = self.gamma(m)
        return g * A[..., :H] + 1j * (g * A[..., H:]), (A,)

    def decay(self, m, cache):
        lr, li = self.eigenvalues(m)
        return lr + 1j * li

    def to_scan(self, s):
        H = s.shape[-1] // 2
        return s[..., :H] + 1j * s[..., H:]

    def from_scan(self, h):
        return np.concatenate([h.real, h.imag], axis=-1)

    def param_grads(self, m, prev, state, cache, d_a, d_r) -> dict:
        H = d_r.shape[-1] // 2
        gr, gi = d_r[..., :H], d_r[..., H:]
        hr, hi = prev[0][..., :H], prev[0][..., H:]
        lr, li = self.eigenvalues(m)
        d_lr, d_li = gr * hr + gi * hi, gi * hr - gr * hi  # dE/d Re lambda, dE/d Im lambda
        out = {"nu_log": -np.exp(m.nu_log) * (d_lr * lr + d_li * li),
               "theta_log": np.exp(m.theta_log) * (d_li * lr - d_lr * li)}
        if m.gamma_log is not None:
            (a,) = cache
            out["gamma_log"] = self.gamma(m) * (gr * a[..., :H] + gi * a[..., H:])
        return out


register(LRU)
