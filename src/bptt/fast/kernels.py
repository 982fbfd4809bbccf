"""Compiled inner loops for the fast engine (engine.py), with Numba.

Why: at small N * H one time step is a few thousand multiply-adds, while NumPy spends a fixed
overhead on *each call* (three calls a step). So for short, narrow problems the per-call overhead
is the whole cost, and a compiled loop over all T steps removes it. For larger N * H each step's product is a real matrix product: the _blas
loops hand it to BLAS (np.dot, which Numba sends to SciPy's BLAS) and do the rest of the step in
one fused pass. engine.py picks by size (engine._step_kernel, engine.COMPILED_MAX_WORK).

Each kernel is the NumPy loop of engine.py written out element by element, step for step:
  forward step    z_t = (U x_t + b) + W s_{t-1},  s_t = f(z_t)
  backward step   dE/ds_t += W^T delta_{t+1},  delta_t = dE/ds_t * f'(z_t)
so the results equal engine.py's NumPy path and the reference engine up to rounding
(tests/test_fast.py checks this to 1e-11 in float64). No fastmath beyond fused multiply-adds: the inner loops vectorise without reordering sums because they run
over the output index (an axpy per input), not over a dot product.

Activation codes: 0 tanh, 1 relu, 2 sigmoid, 3 identity (engine.ACT_CODES), 4 tanh for float32.

tanh and exp: np.tanh and math.tanh call the C library one value at a time, which at H = 128
can cost more than the step's matrix product (docs/performance.md). The kernels
compute them in arithmetic the compiler turns into vector instructions (no calls, no branches:
both sides of a choice are computed and one selected, or the vectorisation would stop):
  exp(y), y <= 0   2^-m (1 + q), m = round(-y / ln 2) and q = exp(r) - 1 for r = y + m ln 2,
                   |r| <= ln(2)/2, by its Taylor polynomial to r^13 (the rest is below 1e-17);
                   2^-m by m's binary digits (select and multiply vectorise, a table lookup would
                   not).
  tanh(x)          -E / (2 + E) with E = exp(-2|x|) - 1 = 2^-m q + (2^-m - 1), which has no
                   cancellation (q alone for small |x|), and the sign of x.
  tanh, float32    the same in float32 arithmetic, eight values to an instruction, with Cephes'
                   tanhf.c near 0 (tanh32_rows).
tests/test_kernels.py checks them against NumPy over 10^6 values at five scales and at the
edges: float64 within 3 units in the last place of np.tanh, float32 within 2 float32 units of
tanh. error_model="numpy" lets divisions be IEEE divisions (Numba's default checks each divisor
for zero, a branch); fastmath={"contract"} only fuses multiply-adds, which is as accurate or more.
"""
from __future__ import annotations

import math

import numba
import numpy as np
# Numba's np.dot calls SciPy's BLAS: loaded now, so that threadpoolctl sees and controls it
import scipy.linalg.cython_blas  # noqa: F401


_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6  # ln 2 = HI + LO, k * HI exact
_C = [1.0 / math.factorial(i) for i in range(14)]  # exp(r) = sum r^i / i!, i = 0..13
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C[2:]
_DIGITS_TANH = tuple((2.0 ** i, 2.0 ** -2 ** i) for i in range(5, -1, -1))  # (d, 2^-d), d = 32 .. 1
_OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"})


@numba.njit(inline="always", **_OPTS)
def _exp_parts(y, digits):
    """(c, q) with exp(y) = c (1 + q) for y <= 0 (-y below twice the largest digit): c = 2^-m,
    m = round(-y / ln 2) by its binary digits, and q = exp(r) - 1 for r = y + m ln 2, |r| <= ln(2)/2,
    by its Taylor polynomial to r^13 (the rest is below 1e-17)."""
    k = np.floor(y * _LOG2E + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    p = ((_C2 + _C3 * r) + (_C4 + _C5 * r) * r2) + ((_C6 + _C7 * r) + (_C8 + _C9 * r) * r2) * r4 \
        + ((_C10 + _C11 * r) + (_C12 + _C13 * r) * r2) * (r4 * r4)
    m = -k
    c = 1.0
    for d, scale in digits:  # a tuple of constants
        bit = m >= d
        c *= scale if bit else 1.0
        m -= d if bit else 0.0
    return c, r + r2 * p


@numba.njit(inline="always", **_OPTS)
def _tanh(x):
    """tanh(x) in float64 arithmetic, vectorisable: -E / (2 + E) with E = exp(-2|x|) - 1, the sign
    of x; see the module's notes."""
    y = -2.0 * abs(x)
    c, q = _exp_parts(y if not y < -40.0 else -40.0, _DIGITS_TANH)  # tanh(20) is 1 to the last bit
    E = c * q + (c - 1.0)  # exp(y) - 1, without cancellation: q alone when c = 1
    t = -E / (2.0 + E)
    return t if x >= 0 else -t  # NaN stays NaN


# float32: the same two branches in float32 arithmetic, eight values to a vector instruction;
# Cephes' tanhf.c below 0.625 and its expf.c polynomial (|r| <= ln(2)/2) beyond. Every constant is
# a float32, or NumPy's rules would carry the arithmetic to float64.
_F = np.float32
_T0, _T1, _T2, _T3, _T4 = (_F(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                             1.33314422036e-1, -3.33332819422e-1))
_E0, _E1, _E2, _E3, _E4, _E5 = (_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_LOG2E_F, _LN2_HI_F, _LN2_LO_F = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_DIGITS_F = tuple((_F(2.0 ** i), _F(2.0 ** -2 ** i)) for i in range(4, -1, -1))  # d = 16 .. 1
_ZERO, _HALF, _ONE, _TWO, _SWITCH, _FLOOR_F = (_F(c) for c in (0.0, 0.5, 1.0, 2.0, 0.625, -20.0))


@numba.njit(inline="always", **_OPTS)
def _tanh32(x):
    """tanh(x) for a float32 x in float32 arithmetic, vectorisable: within 2 float32 units."""
    a = abs(x)
    w = x * x
    small = ((((_T0 * w + _T1) * w + _T2) * w + _T3) * w + _T4) * w * x + x
    y = -_TWO * a
    y = y if not y < _FLOOR_F else _FLOOR_F  # exp(-20) < 2^-28: tanh is 1 in float32; NaN stays
    k = np.floor(y * _LOG2E_F + _HALF)  # in [-29, -2]
    r = (y - k * _LN2_HI_F) - k * _LN2_LO_F
    e = (((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5) * (r * r) + r + _ONE
    m = -k
    for d, scale in _DIGITS_F:
        bit = m >= d
        e *= scale if bit else _ONE
        m -= d if bit else _ZERO
    big = (_ONE - e) / (_ONE + e)
    big = big if x >= _ZERO else -big
    return big if a >= _SWITCH else small


@numba.njit(nogil=True, **_OPTS)
def tanh32_rows(z, out):
    """out = tanh(z) for 2-D float32 arrays of the same shape, in float32 arithmetic."""
    for n in range(z.shape[0]):
        zn = z[n]
        on = out[n]
        for i in range(z.shape[1]):
            on[i] = _tanh32(zn[i])


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


@numba.njit(inline="always", **_OPTS)
def _df(s, act):
    """f'(z) from s = f(z), as activations.py's df_from_output."""
    if act == 0 or act == 4:
        return 1 - s * s
    if act == 1:
        return 1.0 if s > 0 else 0.0
    if act == 2:
        return s * (1 - s)
    return 1.0


@numba.njit(nogil=True, **_OPTS)
def forward_steps(Z, S, WT, act, t0, t1):
    """In place, for the steps t0 <= t < t1. Z (T, N, H): U x_t + b on entry, z_t on exit.
    S (T+1, N, H): s_{t0-1} in S[t0] on entry, s_t in S[t+1] on exit. WT (H, H) = W^T,
    contiguous, so row j of WT is column j of W."""
    T, N, H = Z.shape
    for t in range(t0, t1):
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
            elif act == 4:
                for i in range(H):
                    s[i] = _tanh32(z[i])
            else:
                for i in range(H):
                    s[i] = _f(z[i], act)


@numba.njit(nogil=True, **_OPTS)
def backward_steps(dS, dZ, S, W, dh, act, t0, t1):
    """In place, t = t1-1 down to t0. dS (T, N, H): dE_t/ds_t from output t (overwritten).
    dZ (T, N, H): delta_t on exit, with f'(z_t) from s_t = S[t+1]. dh (N, H): dE/ds_{t1-1} from
    the steps after t1-1 on entry (zeros for t1 = T), dE/ds_{t0-1} on exit."""
    T, N, H = dS.shape
    for t in range(t1 - 1, t0 - 1, -1):
        for n in range(N):
            ds = dS[t, n]
            dz = dZ[t, n]
            s = S[t + 1, n]
            h = dh[n]
            for i in range(H):
                ds[i] += h[i]  # dE/ds_t: from output t, and from step t + 1 through W
                dz[i] = ds[i] * _df(s[i], act)  # delta_t = dE/ds_t * f'(z_t)
                h[i] = 0
            for i in range(H):  # dE/ds_{t-1} = W^T delta_t: row i of W times delta_t[i], an axpy
                di = dz[i]
                w = W[i]
                for j in range(H):
                    h[j] += w[j] * di


@numba.njit(nogil=True, **_OPTS)
def forward_steps_blas(Z, S, WT, act, t0, t1):
    """forward_steps with each step's product W s_{t-1} by BLAS (np.dot, through SciPy's BLAS),
    for the sizes where BLAS beats the loops above; the rest of the step is one fused pass."""
    N, H = Z.shape[1], Z.shape[2]
    for t in range(t0, t1):
        s = S[t + 1]
        np.dot(S[t], WT, s)  # W s_{t-1}, parked in s_t until f(z_t) overwrites it
        z = Z[t]
        for n in range(N):
            zn = z[n]
            sn = s[n]
            if act == 0:
                for i in range(H):
                    zn[i] += sn[i]  # z_t = U x_t + b + W s_{t-1}
                    sn[i] = _tanh(zn[i])
            elif act == 4:
                for i in range(H):
                    zn[i] += sn[i]
                    sn[i] = _tanh32(zn[i])
            else:
                for i in range(H):
                    zn[i] += sn[i]
                    sn[i] = _f(zn[i], act)


@numba.njit(nogil=True, **_OPTS)
def backward_steps_blas(dS, dZ, S, W, dh, act, t0, t1):
    """backward_steps with each step's product W^T delta_t by BLAS (np.dot): see forward_steps_blas."""
    N, H = dS.shape[1], dS.shape[2]
    for t in range(t1 - 1, t0 - 1, -1):
        ds = dS[t]
        dz = dZ[t]
        s = S[t + 1]
        for n in range(N):
            dsn = ds[n]
            dzn = dz[n]
            sn = s[n]
            h = dh[n]
            for i in range(H):
                dsn[i] += h[i]  # dE/ds_t: from output t, and from step t + 1 through W
                dzn[i] = dsn[i] * _df(sn[i], act)  # delta_t = dE/ds_t * f'(z_t)
        np.dot(dz, W, dh)  # dE/ds_{t-1} from step t


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
    """The softmax cross-entropy of heads.error, row by row. Q (R, O) outputs, ids (R,)
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
        y = ids[r]
        loss += q[y] - m - math.log(total)
        for i in range(O):  # (o_i - [i = y]) scale: o_y - 1 is exactly 0 when o_y = 1 (O = 1)
            o = p[i] / total
            p[i] = ((o - 1.0) if i == y else o) * scale
    return -loss * scale


def warm():
    """Load every kernel's machine code (from Numba's cache, or compile it) for the argument types
    engine.py passes, float32 and float64, by calling each once on a two-unit problem."""
    for dt in (np.float32, np.float64):
        Z, S, dS, dZ = (np.zeros((1, 1, 2), dt), np.zeros((2, 1, 2), dt), np.zeros((1, 1, 2), dt),
                        np.zeros((1, 1, 2), dt))
        WT, dh = np.zeros((2, 2), dt), np.zeros((1, 2), dt)
        W = np.zeros((2, 2), dt)
        W.flags.writeable = False  # the model's arrays are read-only
        for act in (0, 4) if dt == np.float32 else (0,):
            for forward, backward in ((forward_steps, backward_steps), (forward_steps_blas, backward_steps_blas)):
                forward(Z, S, WT, act, 0, 1)
                backward(dS, dZ, S, W, dh, act, 0, 1)
        ids = np.zeros(1, np.int64)
        softmax_error(np.zeros((1, 2), dt), ids, 1.0, np.zeros((1, 2), dt))
        scatter_rows(ids, np.zeros((1, 2), dt), np.zeros((1, 2), dt))
