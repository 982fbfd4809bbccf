"""minLSTM's compiled steps in the fast backend (linear.py's notes), registered as "minlstm". The
equations and their order of operations are cells/minlstm.py's, so the results equal the
reference engine's to rounding (tests/test_fast_linear.py):

    f, i = sigma(U_{f,i} x_t + b_{f,i}),  h_t = (f * h_{t-1} + i * h~_t) / (f + i)

N batch, T time, H hidden, G = 3H; arrays C-contiguous, time-major:
    A       (T, N, 3H)   [U_f x_t; U_i x_t; U_h x_t] on entry; [f; i; h~] on exit (the cache)
    b       (3H,)        the input bias [b_f; b_i; b_h] (zeros without one), added on the way
    S       (T+1, N, H)  h_{-1}, ..., h_{T-1}
    dS      (T, N, H)    dE_t/dh_t from output t itself (read only)
    dA      (T, N, 3H)   the errors of the step's input part (d_a, and d_r: the same)
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
    bc = b[2 * H:]
    for t in range(T):
        for n in range(N):  # one array written a loop: loops that vectorise
            a, hp, h = A[t, n], S[t, n], S[t + 1, n]
            f, i, cand = a[:H], a[H:2 * H], a[2 * H:]
            for j in range(2 * H):
                a[j] = sig(a[j] + b[j])
            for j in range(H):
                cand[j] = cand[j] + bc[j]
            for j in range(H):
                h[j] = (f[j] * hp[j] + i[j] * cand[j]) / (f[j] + i[j])


@kernel
def backward_steps(dS, A, S, dA, dh):
    T, N, H = A.shape[0], A.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    for t in range(T - 1, -1, -1):
        for n in range(N):
            a, da, hp, ds, d = A[t, n], dA[t, n], S[t, n], dS[t, n], dh[n]
            f, i, cand, df, di, dc = a[:H], a[H:2 * H], a[2 * H:], da[:H], da[H:2 * H], da[2 * H:]
            for j in range(H):
                g = ds[j] + d[j]  # dE/dh_t: from output t, and from step t + 1
                s = f[j] + i[j]
                diff = g * (hp[j] - cand[j]) / (s * s)
                df[j] = diff * i[j] * f[j] * (one - f[j])
                di[j] = -diff * f[j] * i[j] * (one - i[j])
                dc[j] = g * i[j] / s
                d[j] = g * f[j] / s


class MinLSTM:
    """minLSTM's compiled steps (linear.py's notes)."""

    @staticmethod
    def forward(model, A, S, b):
        forward_steps(A, S, b)
        H = S.shape[-1]
        return A[..., :H], A[..., H:2 * H], A[..., 2 * H:]

    @staticmethod
    def backward(model, dS, A, S, dA, dh):
        backward_steps(dS, A, S, dA, dh)
        return dA


driver.register("minlstm", linear.fused(MinLSTM))
