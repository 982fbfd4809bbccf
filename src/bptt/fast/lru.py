"""The LRU's compiled steps in the fast backend (linear.py's notes), registered as "lru": its
complex recurrence in real arithmetic, the real and imaginary parts side by side as the state
keeps them. The equations and their order of operations are cells/lru.py's, so the results
equal the reference engine's to rounding (tests/test_fast_linear.py):

    h_t = lambda * h_{t-1} + gamma * (B x_t)        lambda = lr + i li, (H,) each

N batch, T time, H hidden (the state is 2H wide), G = 2H; arrays C-contiguous, time-major:
    A       (T, N, 2H)   [B_re x_t; B_im x_t] (read only: the cache)
    S       (T+1, N, 2H) h_{-1}, ..., h_{T-1}, [Re h, Im h]
    dS      (T, N, 2H)   dE_t/dh_t from output t itself (read only)
    dA      (T, N, 2H)   the errors of the step's input part, gamma dE/dh_t
    dh      (N, 2H)      the error carried back: zeros on entry, dE/dh_{-1} on exit
    sums    (3, H)       float64, on the way back: sum over steps and sequences of dE/d Re lambda,
                         dE/d Im lambda and of dE/dh_t . (B x_t), from which the gradients of
                         nu_log, theta_log and gamma_log follow
float32 arrays are computed in float32 arithmetic; the sums are kept in float64.
"""
from __future__ import annotations

import numpy as np

from ..cells.lru import LRU as LRUCell
from . import driver, linear, runtime
from .numerics import kernel


@kernel
def forward_steps(A, S, lr, li, g):
    T, N, H = A.shape[0], A.shape[1], lr.shape[0]
    for t in range(T):
        for n in range(N):
            a, hp, h = A[t, n], S[t, n], S[t + 1, n]
            ar, ai, pr, pi, hr, hi = a[:H], a[H:], hp[:H], hp[H:], h[:H], h[H:]
            for j in range(H):  # one array written a loop: loops that vectorise
                hr[j] = lr[j] * pr[j] - li[j] * pi[j] + g[j] * ar[j]
            for j in range(H):
                hi[j] = li[j] * pr[j] + lr[j] * pi[j] + g[j] * ai[j]


@kernel
def backward_steps(dS, A, S, lr, li, g, dA, dh, sums):
    T, N, H = A.shape[0], A.shape[1], lr.shape[0]
    s_lr, s_li, s_g = sums[0], sums[1], sums[2]
    carry = np.empty(2 * H, dtype=dh.dtype)
    cr, ci = carry[:H], carry[H:]
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da, hp, ds, d = A[t, n], dA[t, n], S[t, n], dS[t, n], dh[n]
            if N == 1:  # rows this short: one loop (the loops' set-up would cost more than they save)
                for j in range(H):
                    gr, gi = ds[j] + d[j], ds[H + j] + d[H + j]  # dE/dh_t: from output t, and from step t + 1
                    hr, hi = hp[j], hp[H + j]
                    da[j] = g[j] * gr
                    da[H + j] = g[j] * gi
                    s_lr[j] += gr * hr + gi * hi
                    s_li[j] += gi * hr - gr * hi
                    s_g[j] += gr * a[j] + gi * a[H + j]
                    d[j] = lr[j] * gr + li[j] * gi
                    d[H + j] = lr[j] * gi - li[j] * gr
                continue
            ar, ai, pr, pi, gr, gi = a[:H], a[H:], hp[:H], hp[H:], d[:H], d[H:]
            for j in range(2 * H):  # one array written a loop: loops that vectorise
                d[j] = ds[j] + d[j]
            for j in range(H):
                da[j] = g[j] * gr[j]
            for j in range(H):
                da[H + j] = g[j] * gi[j]
            for j in range(H):
                s_lr[j] += gr[j] * pr[j] + gi[j] * pi[j]
            for j in range(H):
                s_li[j] += gi[j] * pr[j] - gr[j] * pi[j]
            for j in range(H):
                s_g[j] += gr[j] * ar[j] + gi[j] * ai[j]
            for j in range(H):
                cr[j] = lr[j] * gr[j] + li[j] * gi[j]
            for j in range(H):
                ci[j] = lr[j] * gi[j] - li[j] * gr[j]
            for j in range(2 * H):
                d[j] = carry[j]


def _constants(model):
    """(lr, li, gamma), each (H,) in the model's dtype, contiguous: lambda's parts and the
    normalisation (ones without gamma_log); made once per model."""
    return tuple(np.ascontiguousarray(v, dtype=model.dtype) for v in (*LRUCell.eigenvalues(model), LRUCell.gamma(model)))


class LRU:
    """The LRU's compiled steps (linear.py's notes)."""

    @staticmethod
    def forward(model, A, S, b):
        forward_steps(A, S, *runtime.prepared(model, _constants))  # b: zeros, the LRU has no input bias
        return (A,)

    @staticmethod
    def backward(model, dS, A, S, dA, dh):
        lr, li, g = runtime.prepared(model, _constants)
        sums = np.zeros((3, model.H))
        backward_steps(dS, A, S, lr, li, g, dA, dh, sums)
        d_lr, d_li, d_g = sums
        out = {"nu_log": -np.exp(model.nu_log) * (d_lr * lr + d_li * li),
               "theta_log": np.exp(model.theta_log) * (d_li * lr - d_lr * li)}
        if model.gamma_log is not None:
            out["gamma_log"] = g * d_g
        return linear.Sums({k: v.astype(model.dtype) for k, v in out.items()})


driver.register("lru", linear.fused(LRU))
