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
the products (tests/test_perf_equivalence.py checks this to 1e-12 in float64). No fastmath: the
compiled loops keep IEEE semantics, and the inner loops vectorise without reordering sums
because they run over the output index (an axpy per input), not over a dot product.

Activation codes: 0 tanh, 1 relu, 2 sigmoid, 3 identity (core.ACT_CODES), and 4 tanh for float32
models: Numba's scalar tanh costs as much in float32 as in float64 (about four times NumPy's
float32 tanh), so float32 tanh is computed in float64 as 1 - 2 / (exp(2z) + 1), which is 2.5 times
faster and, rounded to float32, within one float32 unit of NumPy's np.tanh (the float64 value is
correct to 1e-12 relative, so the float32 result is the correctly rounded tanh but for ties).
Float64 tanh likewise avoids math.tanh (about 30 ns a value, more than the step's products at
H = 100): expm1(2z) / (expm1(2z) + 2) for |z| < 1/2, where it has no cancellation, and
1 - 2 / (exp(2z) + 1) beyond, where the subtraction loses at most one bit; measured on 10^5
Gaussian values, within 6.5e-16 relative of np.tanh, at 17 ns a value.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _f(z, act):
    if act == 0:  # tanh for float64, see the module's notes
        if abs(z) < 0.5:
            e = math.expm1(2 * z)
            return e / (e + 2)
        return 1 - 2 / (math.exp(2 * z) + 1)
    if act == 1:
        return z if z >= 0 or z != z else 0.0  # as np.maximum(z, 0): NaN stays NaN
    if act == 2:  # the two branches of activations._sigmoid, each finite for every z
        e = math.exp(-abs(z))
        return 1 / (1 + e) if z >= 0 else e / (1 + e)
    if act == 4:  # tanh for float32, see the module's notes
        x = np.float64(z)
        if abs(x) < 2.0 ** -12:
            return x - x * x * x / 3  # the series: the next term is below 1e-15 of x
        return 1 - 2 / (math.exp(2 * x) + 1)  # exp(+-inf) gives +-1, NaN stays NaN
    return z


@numba.njit(cache=True)
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
            for i in range(H):
                s[i] = _f(z[i], act)


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def scatter_rows(ids, rows, out):
    """out[ids[i]] += rows[i] for every i, in order. ids (M,), rows (M, H), out (D, H)."""
    for m in range(ids.shape[0]):
        o = out[ids[m]]
        r = rows[m]
        for i in range(r.shape[0]):
            o[i] += r[i]



@numba.njit(cache=True)
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
        total = 0.0
        for i in range(O):
            p[i] = math.exp(q[i] - m)
            total += p[i]
        loss += q[ids[r]] - m - math.log(total)
        for i in range(O):
            p[i] = p[i] / total * scale
        p[ids[r]] -= scale
    return -loss * scale
