"""Compiled time loops for the fast engine's LSTM and GRU (gated.py), with Numba.

Each loop runs the steps t0 <= t < t1 (forward) or t1-1 down to t0 (backward) in place: the
step's matrix product by BLAS (np.dot, which Numba sends to SciPy's BLAS; a matrix-vector product
for one sequence), then the step's element-wise part (*_step, *_step_back, which gated.py also
calls on their own), with the logistic function and tanh in arithmetic the compiler turns into
vector instructions. The equations and their order of operations are cells.py's, so the results
equal the reference engine's to rounding (tests/test_fast_gated.py).

Shapes (N batch, T time, H hidden, G = 4H for the LSTM, 3H for the GRU), arrays C-contiguous:
    A    (T, N, G)    the input's part U x_t + b (+ bh for the LSTM) on entry; the gates on exit:
                      [i, f, g, o] (LSTM), [r, z, n] (GRU)
    S    (T+1, N, H)  the hidden outputs h_{-1}, ..., h_{T-1}: S[t0] on entry, the rest on exit
    C    (T+1, N, H)  the LSTM's cell states c_{-1}, ..., c_{T-1}; TC (T, N, H) tanh(c_t)
    REC  (T, N, H)    the GRU's gated recurrent part: W_n h_{t-1} + bh_n (reset after) or
                      r * h_{t-1} (reset before)
    dS   (T, N, H)    dE_t/dh_t from output t itself (read only)
    dA, dR (T, N, G)  the errors of each step's input part and recurrent product (cells.py's
                      d_a and d_r; the LSTM's are one array)
    dh, dc (N, H)     the error arriving at h_{t1-1}, c_{t1-1} from later steps on entry, at
                      h_{t0-1}, c_{t0-1} on exit
float32 arrays are computed in float32 arithmetic (the logistic function and tanh too: eight values
to a vector instruction), float64 ones in float64.

The logistic function and tanh, vectorisable (no calls, no branches: both sides of a choice
computed and one selected), from exp(y) for y <= 0 as kernels.py computes it (float64: a Taylor
polynomial to r^13 of exp(r), |r| <= ln(2)/2; float32: Cephes' expf polynomial), but with 2^k
made from its bits ((k + 1023) << 52: a shift, where kernels.py multiplies binary digits):
    sigma(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|) (activations.py's form);
               for x below -708 (float32: -87), where e leaves the normal numbers, e stays there
    tanh(x)  = -E / (2 + E), E = exp(-2|x|) - 1 = 2^k q + (2^k - 1) without cancellation, and the
               sign of x (kernels._tanh); float32: Cephes' tanhf polynomial below |x| = 0.625
tests/test_fast_gated.py checks them against NumPy's.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .kernels import _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13, _LN2_HI, _LN2_LO, _LOG2E, _OPTS

_F = np.float32
_E0, _E1, _E2, _E3, _E4, _E5 = (_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_T0, _T1, _T2, _T3, _T4 = (_F(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                             1.33314422036e-1, -3.33332819422e-1))
_LOG2E_F, _LN2_HI_F, _LN2_LO_F = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_ZERO, _HALF, _ONE, _TWO, _SWITCH = _F(0.0), _F(0.5), _F(1.0), _F(2.0), _F(0.625)
_MAGIC, _MAGIC_F = 2.0 ** 52 + 1023, _F(2.0 ** 23 + 127)  # k + _MAGIC holds k + 1023 in its low bits


@intrinsic
def _bits(typingctx, x):
    """The bits of a float64 as an int64, or of a float32 as the low 32 bits of an int64."""
    width = 64 if x == types.float64 else 32

    def codegen(context, builder, signature, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(width)), ir.IntType(64)) if width == 32 \
            else builder.bitcast(args[0], ir.IntType(64))
    return types.int64(x), codegen


@intrinsic
def _float64(typingctx, b):
    """The float64 whose bits are the int64 b."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _float32(typingctx, b):
    """The float32 whose bits are the low 32 bits of the int64 b."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())
    return types.float32(types.int64), codegen


@numba.njit(inline="always", **_OPTS)
def _exp_parts(y):
    """(c, q) with exp(y) = c (1 + q), for float64 -708 <= y <= 0 (NaN gives NaN): c = 2^k,
    k = round(y / ln 2), and q = exp(r) - 1 for r = y - k ln 2."""
    k = np.floor(y * _LOG2E + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    p = ((_C2 + _C3 * r) + (_C4 + _C5 * r) * r2) + ((_C6 + _C7 * r) + (_C8 + _C9 * r) * r2) * r4 \
        + ((_C10 + _C11 * r) + (_C12 + _C13 * r) * r2) * (r4 * r4)
    return _float64(_bits(k + _MAGIC) << 52), r + r2 * p


@numba.njit(inline="always", **_OPTS)
def _exp32(y):
    """exp(y) for float32 -87 <= y <= 0 in float32 arithmetic (NaN gives NaN)."""
    k = np.floor(y * _LOG2E_F + _HALF)
    r = (y - k * _LN2_HI_F) - k * _LN2_LO_F
    e = (((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5) * (r * r) + r + _ONE
    return e * _float32(_bits(k + _MAGIC_F) << 23)


@numba.njit(**_OPTS)
def _sigmoid(x):
    """sigma(x) in float64 arithmetic."""
    y = -abs(x)
    c, q = _exp_parts(y if not y < -708.0 else -708.0)  # NaN stays NaN
    e = c * q + c  # exp(-|x|)
    return (1.0 if x >= 0 else e) / (1.0 + e)


@numba.njit(**_OPTS)
def _sigmoid32(x):
    """sigma(x) for a float32 x in float32 arithmetic."""
    y = -abs(x)
    e = _exp32(y if not y < _F(-87.0) else _F(-87.0))
    return (_ONE if x >= _ZERO else e) / (_ONE + e)


@numba.njit(**_OPTS)
def _tanh(x):
    """tanh(x) in float64 arithmetic."""
    y = -2.0 * abs(x)
    c, q = _exp_parts(y if not y < -40.0 else -40.0)  # tanh(20) is 1 to the last bit
    E = c * q + (c - 1.0)  # exp(y) - 1, without cancellation: q alone when c = 1
    t = -E / (2.0 + E)
    return t if x >= 0 else -t  # NaN stays NaN


@numba.njit(**_OPTS)
def _tanh32(x):
    """tanh(x) for a float32 x in float32 arithmetic."""
    a = abs(x)
    w = x * x
    small = ((((_T0 * w + _T1) * w + _T2) * w + _T3) * w + _T4) * w * x + x
    y = -_TWO * a
    e = _exp32(y if not y < _F(-20.0) else _F(-20.0))  # exp(-20) < 2^-28: tanh is 1 in float32
    big = (_ONE - e) / (_ONE + e)
    big = big if x >= _ZERO else -big
    return big if a >= _SWITCH else small


def _sig(x):
    """sigma(x) in the arithmetic of x's type (compiled code only)."""


def _th(x):
    """tanh(x) in the arithmetic of x's type (compiled code only)."""


@overload(_sig, inline="always")
def _sig_typed(x):
    if x == types.float32:
        def impl(x):
            return _sigmoid32(x)
    else:
        def impl(x):
            return _sigmoid(x)
    return impl


@overload(_th, inline="always")
def _th_typed(x):
    if x == types.float32:
        def impl(x):
            return _tanh32(x)
    else:
        def impl(x):
            return _tanh(x)
    return impl


@numba.njit(nogil=True, **_OPTS)
def sigmoid_rows(z, out):
    """out = sigma(z) for 1-D arrays of the same length, in the arithmetic of their type (what
    the steps compute; tests/test_fast_gated.py checks it against activations.py's)."""
    for i in range(z.shape[0]):
        out[i] = _sig(z[i])


@numba.njit(nogil=True, **_OPTS)
def tanh_rows(z, out):
    """out = tanh(z) for 1-D arrays of the same length, in the arithmetic of their type."""
    for i in range(z.shape[0]):
        out[i] = _th(z[i])


@numba.njit(inline="always", **_OPTS)
def _dot(a, b, out):
    """out = a @ b: (N, K) @ (K, M) -> (N, M); a matrix-vector product when N = 1."""
    if a.shape[0] == 1:
        np.dot(a[0], b, out[0])
    else:
        np.dot(a, b, out)


# A step is a product (BLAS) and an element-wise part, a compiled function of its own (*_step,
# *_step_back) that the loops below call and that gated.py calls between NumPy's products where
# NumPy's BLAS is the faster. Each element-wise part is a few short loops over j < H, each reading
# and writing few arrays, the gate blocks as slices, so that the compiler vectorises every loop (a
# loop over many arrays needs many run-time overlap checks; one starting elsewhere than 0 was
# found not to vectorise). A loop runs over one row of H values, in the level-1 cache.
#
# The backward steps of the GRU leave dh = d_r W (the product) and keep = the rest of dE/dh_{t-1};
# the next step adds them (and the caller, after step 0).

# --- LSTM: [i, f, g, o] = U x_t + b + W h_{t-1} + bh;  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t) ---
@numba.njit(nogil=True, **_OPTS)
def lstm_step(A, R, S, C, TC, t):
    """Step t after the product R = W h_{t-1} (N, 4H): the gates into A[t], c_t, tanh c_t, h_t."""
    N, H = S.shape[1], S.shape[2]
    for n in range(N):
        a, w = A[t, n], R[n]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        aif, wif, wg, wo = a[:2 * H], w[:2 * H], w[2 * H:3 * H], w[3 * H:]
        for j in range(2 * H):
            aif[j] = _sig(aif[j] + wif[j])
        for j in range(H):
            g[j] = _th(g[j] + wg[j])
        for j in range(H):
            o[j] = _sig(o[j] + wo[j])
        cp, c, tc, h = C[t, n], C[t + 1, n], TC[t, n], S[t + 1, n]
        for j in range(H):
            c[j] = f[j] * cp[j] + i[j] * g[j]
        for j in range(H):
            tc[j] = _th(c[j])
        for j in range(H):
            h[j] = o[j] * tc[j]


@numba.njit(nogil=True, **_OPTS)
def lstm_step_back(dS, A, C, TC, dA, dh, dc, t):
    """Backward step t before the product: dh, dc (N, H) hold dE/dh_t, dE/dc_t from the later
    steps; writes dA[t] = dE/d[i, f, g, o] pre-activations and leaves dc = dE/dc_{t-1} (the caller
    then sets dh = dA[t] W)."""
    N, H = dS.shape[1], dS.shape[2]
    one = np.ones(1, dS.dtype)[0]  # 1 in the arrays' type: float32 stays float32
    for n in range(N):
        a, d = A[t, n], dA[t, n]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        ds, cp, tc, dhn, dcn = dS[t, n], C[t, n], TC[t, n], dh[n], dc[n]
        for j in range(H):
            dhn[j] = ds[j] + dhn[j]  # dE/dh_t: from output t, and from step t + 1
        for j in range(H):
            dcn[j] = dcn[j] + dhn[j] * o[j] * (one - tc[j] * tc[j])  # dE/dc_t: from c_{t+1} and h_t
        for j in range(H):
            di[j] = dcn[j] * g[j] * i[j] * (one - i[j])
        for j in range(H):
            df[j] = dcn[j] * cp[j] * f[j] * (one - f[j])
        for j in range(H):
            dg[j] = dcn[j] * i[j] * (one - g[j] * g[j])
        for j in range(H):
            do[j] = dhn[j] * tc[j] * o[j] * (one - o[j])
        for j in range(H):
            dcn[j] = dcn[j] * f[j]  # dE/dc_{t-1} along the cell path


@numba.njit(nogil=True, **_OPTS)
def lstm_forward(A, WT, S, C, TC, R, t0, t1):
    """The LSTM's steps t0 <= t < t1. WT (H, 4H) = W^T, contiguous; R (N, 4H) scratch."""
    for t in range(t0, t1):
        _dot(S[t], WT, R)  # W h_{t-1}
        lstm_step(A, R, S, C, TC, t)


@numba.njit(nogil=True, **_OPTS)
def lstm_backward(dS, A, C, TC, W, dA, dh, dc, t0, t1):
    """The LSTM's backward steps t1-1 down to t0 (A holds the gates). W (4H, H)."""
    for t in range(t1 - 1, t0 - 1, -1):
        lstm_step_back(dS, A, C, TC, dA, dh, dc, t)
        _dot(dA[t], W, dh)  # dE/dh_{t-1} = d_pre W


# --- GRU, reset after (PyTorch): n = tanh(U_n x_t + b_n + r * (W_n h_{t-1} + bh_n)) ----------------
@numba.njit(nogil=True, **_OPTS)
def gru_after_step(A, R, bh, S, REC, t):
    """Step t after the product R = W h_{t-1} (N, 3H): [r, z, n] into A[t], rec, h_t. bh (3H,)."""
    N, H = S.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    brz, bn = bh[:2 * H], bh[2 * H:]
    for n in range(N):
        a, w, hp, h, rec = A[t, n], R[n], S[t, n], S[t + 1, n], REC[t, n]
        arz, wrz, r, z, nn, wn = a[:2 * H], w[:2 * H], a[:H], a[H:2 * H], a[2 * H:], w[2 * H:]
        for j in range(2 * H):
            arz[j] = _sig(arz[j] + wrz[j] + brz[j])
        for j in range(H):
            rec[j] = wn[j] + bn[j]  # W_n h_{t-1} + bh_n
        for j in range(H):
            nn[j] = _th(nn[j] + r[j] * rec[j])
        for j in range(H):
            h[j] = (one - z[j]) * nn[j] + z[j] * hp[j]


@numba.njit(nogil=True, **_OPTS)
def gru_after_step_back(dS, A, REC, S, dA, dR, dh, keep, t):
    """Backward step t before the product: dE/dh_t = dS[t] + keep + dh (keep and dh from step
    t + 1); writes dA[t], dR[t] and keep = dE/dh_t * z (the caller then sets dh = dR[t] W)."""
    N, H = dS.shape[1], dS.shape[2]
    one = np.ones(1, dS.dtype)[0]
    for n in range(N):
        a, da, dr_ = A[t, n], dA[t, n], dR[t, n]
        r, z, nn = a[:H], a[H:2 * H], a[2 * H:]
        dar, daz, dan, drr, drn = da[:H], da[H:2 * H], da[2 * H:], dr_[:2 * H], dr_[2 * H:]
        ds, rec, hp, dhn, kn = dS[t, n], REC[t, n], S[t, n], dh[n], keep[n]
        for j in range(H):
            dhn[j] = ds[j] + (kn[j] + dhn[j])  # dE/dh_t: from output t, and from step t + 1
        for j in range(H):
            dan[j] = dhn[j] * (one - z[j]) * (one - nn[j] * nn[j])  # dE/d(n's pre-activation)
        for j in range(H):
            daz[j] = dhn[j] * (hp[j] - nn[j]) * z[j] * (one - z[j])
        for j in range(H):
            dar[j] = dan[j] * rec[j] * r[j] * (one - r[j])
        darz = da[:2 * H]
        for j in range(2 * H):
            drr[j] = darz[j]  # d_r's r and z blocks are d_a's
        for j in range(H):
            drn[j] = dan[j] * r[j]
        for j in range(H):
            kn[j] = dhn[j] * z[j]


@numba.njit(nogil=True, **_OPTS)
def gru_after_forward(A, WT, bh, S, REC, R, t0, t1):
    """The GRU's steps (reset after). WT (H, 3H) = W^T, contiguous; R (N, 3H) scratch."""
    for t in range(t0, t1):
        _dot(S[t], WT, R)  # W h_{t-1}
        gru_after_step(A, R, bh, S, REC, t)


@numba.njit(nogil=True, **_OPTS)
def gru_after_backward(dS, A, REC, S, W, dA, dR, dh, keep, t0, t1):
    """The GRU's backward steps t1-1 down to t0 (reset after). W (3H, H); keep (N, H)."""
    for t in range(t1 - 1, t0 - 1, -1):
        gru_after_step_back(dS, A, REC, S, dA, dR, dh, keep, t)
        _dot(dR[t], W, dh)


# --- GRU, reset before (Keras's reset_after=False): n = tanh(U_n x_t + b_n + W_n (r * h_{t-1}) + bh_n) ---
@numba.njit(nogil=True, **_OPTS)
def gru_before_step(A, R2, bh, S, REC, t):
    """Step t's first part after R2 = W_{r,z} h_{t-1} (N, 2H): r, z into A[t], rec = r * h_{t-1}."""
    N, H = S.shape[1], S.shape[2]
    brz = bh[:2 * H]
    for n in range(N):
        a, w, hp, rec = A[t, n], R2[n], S[t, n], REC[t, n]
        arz, r = a[:2 * H], a[:H]
        for j in range(2 * H):
            arz[j] = _sig(arz[j] + w[j] + brz[j])
        for j in range(H):
            rec[j] = r[j] * hp[j]


@numba.njit(nogil=True, **_OPTS)
def gru_before_step_n(A, R1, bh, S, t):
    """Step t's second part after R1 = W_n rec (N, H): n into A[t], h_t."""
    N, H = S.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    bn = bh[2 * H:]
    for n in range(N):
        a, w, hp, h = A[t, n], R1[n], S[t, n], S[t + 1, n]
        z, nn = a[H:2 * H], a[2 * H:]
        for j in range(H):
            nn[j] = _th(nn[j] + w[j] + bn[j])
        for j in range(H):
            h[j] = (one - z[j]) * nn[j] + z[j] * hp[j]


@numba.njit(nogil=True, **_OPTS)
def gru_before_step_back(dS, A, S, dR, dh, keep, DN, t):
    """Backward step t's first part: dE/dh_t = dS[t] + keep + dh; writes dz, dn into dR[t], DN =
    dn (N, H) and keep = dE/dh_t * z (the caller then computes DREC = DN W_n)."""
    N, H = dS.shape[1], dS.shape[2]
    one = np.ones(1, dS.dtype)[0]
    for n in range(N):
        a, d = A[t, n], dR[t, n]
        z, nn, dz, dn = a[H:2 * H], a[2 * H:], d[H:2 * H], d[2 * H:]
        ds, hp, dhn, kn, dnn = dS[t, n], S[t, n], dh[n], keep[n], DN[n]
        for j in range(H):
            dhn[j] = ds[j] + (kn[j] + dhn[j])
        for j in range(H):
            dn[j] = dhn[j] * (one - z[j]) * (one - nn[j] * nn[j])
        for j in range(H):
            dz[j] = dhn[j] * (hp[j] - nn[j]) * z[j] * (one - z[j])
        for j in range(H):
            kn[j] = dhn[j] * z[j]
        for j in range(H):
            dnn[j] = dn[j]


@numba.njit(nogil=True, **_OPTS)
def gru_before_step_r(A, S, dR, keep, DREC, RZ, t):
    """Backward step t's second part, from DREC = dE/d(r * h_{t-1}) (N, H): dr into dR[t], keep +=
    DREC r, RZ = dR[t]'s r and z blocks (N, 2H) (the caller then sets dh = RZ W_{r,z})."""
    N, H = S.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    for n in range(N):
        a, d = A[t, n], dR[t, n]
        r, dr, drz = a[:H], d[:H], d[:2 * H]
        hp, kn, drn, rz = S[t, n], keep[n], DREC[n], RZ[n]
        for j in range(H):
            dr[j] = drn[j] * hp[j] * r[j] * (one - r[j])
        for j in range(H):
            kn[j] = kn[j] + drn[j] * r[j]
        for j in range(2 * H):
            rz[j] = drz[j]


@numba.njit(nogil=True, **_OPTS)
def gru_before_forward(A, WTrz, WTn, bh, S, REC, R2, R1, t0, t1):
    """The GRU's steps (reset before). WTrz (H, 2H), WTn (H, H): the rows of W for r, z and for n,
    transposed, contiguous; R2 (N, 2H), R1 (N, H) scratch."""
    for t in range(t0, t1):
        _dot(S[t], WTrz, R2)  # W_{r,z} h_{t-1}
        gru_before_step(A, R2, bh, S, REC, t)
        _dot(REC[t], WTn, R1)  # W_n (r * h_{t-1})
        gru_before_step_n(A, R1, bh, S, t)


@numba.njit(nogil=True, **_OPTS)
def gru_before_backward(dS, A, S, Wrz, Wn, dR, dh, keep, DN, DREC, RZ, t0, t1):
    """The GRU's backward steps t1-1 down to t0 (reset before); dR is d_a and d_r both.
    Wrz (2H, H), Wn (H, H): W's rows; DN, DREC (N, H) and RZ (N, 2H) scratch."""
    for t in range(t1 - 1, t0 - 1, -1):
        gru_before_step_back(dS, A, S, dR, dh, keep, DN, t)
        _dot(DN, Wn, DREC)  # dE/d(r * h_{t-1})
        gru_before_step_r(A, S, dR, keep, DREC, RZ, t)
        _dot(RZ, Wrz, dh)


def warm():
    """Load every kernel's machine code (from Numba's cache, or compile it) for the argument types
    gated.py passes, float32 and float64, by calling each once on a one-unit problem: the loops,
    and the steps, which gated.py also calls alone."""
    for dt in (np.float32, np.float64):
        z = lambda *shape: np.zeros(shape, dt)  # noqa: E731
        W4, W3, WT4, WT3, WT2, WT1, bh = z(4, 1), z(3, 1), z(1, 4), z(1, 3), z(1, 2), z(1, 1), z(3)
        for w in (W4, W3, WT4, WT3, WT2, WT1, bh):
            w.flags.writeable = False  # the model's arrays, and gated._weights's, are read-only
        S, C, X, dS, dh, dc = z(2, 1, 1), z(2, 1, 1), z(1, 1, 1), z(1, 1, 1), z(1, 1), z(1, 1)
        A4, A3, dA, dR = z(1, 1, 4), z(1, 1, 3), z(1, 1, 4), z(1, 1, 3)
        lstm_forward(A4, WT4, S, C, X, z(1, 4), 0, 1)
        lstm_backward(dS, A4, C, X, W4, dA, dh, dc, 0, 1)
        lstm_step(A4, z(1, 4), S, C, X, 0)
        lstm_step_back(dS, A4, C, X, dA, dh, dc, 0)
        gru_after_forward(A3, WT3, bh, S, X, z(1, 3), 0, 1)
        gru_after_backward(dS, A3, X, S, W3, z(1, 1, 3), dR, dh, dc, 0, 1)
        gru_after_step(A3, z(1, 3), bh, S, X, 0)
        gru_after_step_back(dS, A3, X, S, z(1, 1, 3), dR, dh, dc, 0)
        gru_before_forward(A3, WT2, WT1, bh, S, X, z(1, 2), z(1, 1), 0, 1)
        gru_before_backward(dS, A3, S, W3[:2], W3[2:], dR, dh, dc, z(1, 1), z(1, 1), z(1, 2), 0, 1)
        gru_before_step(A3, z(1, 2), bh, S, X, 0)
        gru_before_step_n(A3, z(1, 1), bh, S, 0)
        gru_before_step_back(dS, A3, S, dR, dh, dc, z(1, 1), 0)
        gru_before_step_r(A3, S, dR, dc, z(1, 1), z(1, 2), 0)
