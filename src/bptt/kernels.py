"""Compiled inner loops for core.py (optional: installed with `pip install 'bptt[fast]'`, Numba).

Why: at small N * H one time step is a few thousand multiply-adds, which a compiled loop does in
about a microsecond, while NumPy spends about a microsecond on *each call* (three calls a step).
So for short, narrow problems the per-call overhead is the whole cost, and a compiled loop over all
T steps removes it. For large N * H the per-step products are real matrix products and BLAS wins;
core.py picks by size (core._kernels, core.COMPILED_MAX_WORK).

Each kernel is the NumPy loop of core.py written out element by element, step for step:
  forward step    z_t = (U x_t + b) + W s_{t-1},  s_t = f(z_t)
  backward step   dE/ds_t += W^T delta_{t+1},  delta_t = dE/ds_t * f'(z_t)
so the results equal core.py's NumPy path up to the order of floating-point additions inside
the products (tests/test_perf_equivalence.py checks this to 1e-12 in float64). No fastmath
beyond fused multiply-adds: the inner loops vectorise without reordering sums because they run
over the output index (an axpy per input), not over a dot product.

Activation codes: 0 tanh, 1 relu, 2 sigmoid, 3 identity (core.ACT_CODES).

tanh and exp: np.tanh and math.tanh call the C library one value at a time, about 35 ns a
float64 value here, which at H = 128 costs more than the step's matrix product. tanh_rows computes
it in arithmetic the compiler turns into vector instructions (four float64 values at a time),
about 12 ns a value, and within 2 units in the last place of np.tanh (tests/test_kernels.py checks
this over 10^6 values at five scales, and at the edges):
  |x| < 0.625   x + x^3 P(x^2) / Q(x^2), the rational approximation of Cephes' tanh.c
  otherwise     (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29, so no cancellation, and the sign
                of x.
exp(y) for y <= 0 (_exp_neg, also the softmax's exp) is 2^-m exp(r) with m = round(-y / ln 2),
|r| <= ln(2)/2, exp(r) by its Taylor polynomial to r^13 (the rest is below 1e-17), and 2^-m by
m's binary digits (select and multiply vectorise; a table lookup would not); below -708 it is 0.
Both branches are computed and one selected: a branch would stop the vectorisation. Float32
values are computed in float64 and rounded. error_model="numpy" lets divisions be IEEE divisions
(Numba's default checks each divisor for zero, a branch); fastmath={"contract"} only fuses
multiply-adds, which is as accurate or more.
"""
from __future__ import annotations

import math

import numba
import numpy as np


# Cephes tanh.c for |x| < 0.625: tanh x = x + x^3 P(x^2) / Q(x^2)
_P0, _P1, _P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_Q0, _Q1, _Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6  # ln 2 = HI + LO, k * HI exact
_C = [1.0 / math.factorial(i) for i in range(14)]  # exp(r) = sum r^i / i!, i = 0..13
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C
_DIGITS = tuple((2.0 ** i, 2.0 ** -2 ** i) for i in range(9, -1, -1))  # (d, 2^-d), d = 512 .. 1
_OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"})


@numba.njit(inline="always", **_OPTS)
def _exp_neg(y):
    """exp(y) for y <= 0 (NaN stays NaN, below -708 gives 0), vectorisable: see the module's notes."""
    x = y if not y < -708.0 else -708.0  # exp(-708) is still a normal number
    k = np.floor(x * _LOG2E + 0.5)  # in [-1021, 0]
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln(2)/2
    r2 = r * r
    r4 = r2 * r2
    e = ((_C0 + _C1 * r) + (_C2 + _C3 * r) * r2) + ((_C4 + _C5 * r) + (_C6 + _C7 * r) * r2) * r4 \
        + (((_C8 + _C9 * r) + (_C10 + _C11 * r) * r2) + (_C12 + _C13 * r) * r4) * (r4 * r4)
    m = -k  # e *= 2^-m, one binary digit of m at a time
    for d, scale in _DIGITS:  # a tuple of constants
        bit = m >= d
        e *= scale if bit else 1.0
        m -= d if bit else 0.0
    return e if not y < -708.0 else 0.0


@numba.njit(inline="always", **_OPTS)
def _tanh(x):
    """tanh(x) in float64 arithmetic, vectorisable: see the module's notes."""
    a = abs(x)
    w = x * x
    small = x + x * w * ((_P0 * w + _P1) * w + _P2) / (((w + _Q0) * w + _Q1) * w + _Q2)
    e = _exp_neg(-2.0 * a)  # <= exp(-1.25) where it is used
    big = (1.0 - e) / (1.0 + e)
    big = big if x >= 0 else -big
    return big if a >= 0.625 else small  # NaN fails the test and takes small, which is NaN


@numba.njit(nogil=True, **_OPTS)
def tanh_rows(z, out):
    """out = tanh(z) for 2-D arrays of the same shape (out may be z)."""
    for n in range(z.shape[0]):
        zn = z[n]
        on = out[n]
        for i in range(z.shape[1]):
            on[i] = _tanh(zn[i])


@numba.njit(inline="always", **_OPTS)
def _f(z, act):
    if act == 1:
        return z if z >= 0 or z != z else 0.0  # as np.maximum(z, 0): NaN stays NaN
    if act == 2:  # the two branches of activations._sigmoid, each finite for every z
        e = math.exp(-abs(z))
        return 1 / (1 + e) if z >= 0 else e / (1 + e)
    return z


@numba.njit(nogil=True, **_OPTS)
def forward_steps(Z, S, WT, act):
    """In place. Z (T, N, H): U x_t + b on entry, z_t on exit. S (T+1, N, H): S[0] = h0 on entry,
    s_t in S[t+1] on exit. WT (H, H) = W^T, contiguous, so row j of WT is column j of W."""
    T, N, H = Z.shape
    for t in range(T):
        for n in range(N):
            z = Z[t, n]  # (H,)
            s_prev = S[t, n]  # (H,)
            for j in range(H):  # z += W[:, j] s_{t-1}[j]: an axpy over i, contiguous, vectorised
                sj = s_prev[j]
                w = WT[j]
                for i in range(H):
                    z[i] += w[i] * sj
            s = S[t + 1, n]
            if act == 0:
                for i in range(H):
                    s[i] = _tanh(z[i])
            else:
                for i in range(H):
                    s[i] = _f(z[i], act)


@numba.njit(nogil=True, **_OPTS)
def backward_steps(dS, dZ, W, dh):
    """In place, t = T-1 .. 0. dS (T, N, H): dE_t/ds_t from output t (overwritten). dZ (T, N, H):
    f'(z_t) on entry, delta_t on exit. dh (N, H): zeros on entry, dE/ds_{-1} on exit."""
    T, N, H = dS.shape
    for t in range(T - 1, -1, -1):
        for n in range(N):
            ds = dS[t, n]
            dz = dZ[t, n]
            h = dh[n]
            for i in range(H):
                ds[i] += h[i]  # dE/ds_t: from output t, and from step t + 1 through W
                dz[i] *= ds[i]  # delta_t = dE/ds_t * f'(z_t)
                h[i] = 0
            for i in range(H):  # dE/ds_{t-1} = W^T delta_t: row i of W times delta_t[i], an axpy
                di = dz[i]
                w = W[i]
                for j in range(H):
                    h[j] += w[j] * di


@numba.njit(nogil=True, **_OPTS)
def scatter_rows(ids, rows, out):
    """out[ids[i]] += rows[i] for every i, in order. ids (M,), rows (M, H), out (D, H)."""
    for m in range(ids.shape[0]):
        o = out[ids[m]]
        r = rows[m]
        for i in range(r.shape[0]):
            o[i] += r[i]



@numba.njit(nogil=True, **_OPTS)
def softmax_error(Q, ids, scale, P):
    """The softmax cross-entropy of core.output_error, row by row. Q (R, O) outputs, ids (R,)
    targets (-1 = unscored). Writes P = scale (o_r - onehot(y_r)), zero on unscored rows, and
    returns the loss -scale sum_r log o_r[y_r], with o_r = exp(q_r - m_r) / sum exp(q_r - m_r)."""
    R, O = Q.shape
    loss = 0.0
    for r in range(R):
        p = P[r]
        if ids[r] < 0:
            p[:] = 0
            continue
        q = Q[r]
        m = q[0]
        for i in range(1, O):
            m = max(m, q[i])
        for i in range(O):  # vectorised: the sum is a loop of its own
            p[i] = _exp_neg(q[i] - m)
        total = 0.0
        for i in range(O):
            total += p[i]
        loss += q[ids[r]] - m - math.log(total)
        for i in range(O):
            p[i] = p[i] / total * scale
        p[ids[r]] -= scale
    return -loss * scale
