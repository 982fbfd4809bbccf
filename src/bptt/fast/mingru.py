"""minGRU's compiled steps in the fast backend (linear.py's notes), registered as "mingru". The
equations and their order of operations are cells/mingru.py's, so the results equal the
reference engine's to rounding (tests/test_fast_linear.py):

    z = sigma(U_z x_t + b_z),  h_t = (1 - z) * h_{t-1} + z * h~_t     (h~_t = U_h x_t + b_h)

N batch, T time, H hidden, G = 2H; arrays C-contiguous, time-major:
    A       (T, N, 2H)   [U_z x_t; U_h x_t] on entry; [z; h~] on exit (the cache: its blocks)
    b       (2H,)        the input bias [b_z; b_h] (zeros without one), added on the way
    S       (T+1, N, H)  h_{-1}, ..., h_{T-1}
    dS      (T, N, H)    dE_t/dh_t from output t itself (read only)
    dA      (T, N, 2H)   the errors of the step's input part (d_a, and d_r: the same)
    dh      (N, H)       the error carried back: zeros on entry, dE/dh_{-1} on exit
float32 arrays are computed in float32 arithmetic (numerics.sig).
"""
from __future__ import annotations

import numpy as np

from . import driver, linear
from .numerics import kernel, sig


@kernel
def forward_steps(A, S, b):
    T, N, H = A.shape[0], A.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    bz, bc = b[:H], b[H:]
    for t in range(T):
        for n in range(N):  # one array written a loop: loops that vectorise
            a, hp, h = A[t, n], S[t, n], S[t + 1, n]
            z, cand = a[:H], a[H:]
            for j in range(H):
                z[j] = sig(z[j] + bz[j])
            for j in range(H):
                cand[j] = cand[j] + bc[j]
            for j in range(H):
                h[j] = (one - z[j]) * hp[j] + z[j] * cand[j]


@kernel
def backward_steps(dS, A, S, dA, dh):
    T, N, H = A.shape[0], A.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da, hp, ds, d = A[t, n], dA[t, n], S[t, n], dS[t, n], dh[n]
            z, cand, dz, dc = a[:H], a[H:], da[:H], da[H:]
            for j in range(H):
                g = ds[j] + d[j]  # dE/dh_t: from output t, and from step t + 1
                dz[j] = g * (cand[j] - hp[j]) * z[j] * (one - z[j])
                dc[j] = g * z[j]
                d[j] = g * (one - z[j])


class MinGRU:
    """minGRU's compiled steps (linear.py's notes)."""

    @staticmethod
    def forward(model, A, S, b):
        forward_steps(A, S, b)
        H = S.shape[-1]
        return A[..., :H], A[..., H:]

    @staticmethod
    def backward(model, dS, A, S, dA, dh):
        backward_steps(dS, A, S, dA, dh)
        return dA


driver.register("mingru", linear.fused(MinGRU))
