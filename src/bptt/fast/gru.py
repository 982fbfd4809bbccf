"""The GRU in the fast backend, both forms: its compiled step kernels (Numba) and its adapter to
the driver (driver.py's notes), registered as "gru". The equations and their order of operations
are cells.py's, so the results equal the reference engine's to rounding (tests/test_fast_gated.py):

    [r, z] = sigma(U_{r,z} x_t + b_{r,z} + W_{r,z} h_{t-1} + bh_{r,z}),  h_t = (1 - z) n + z h_{t-1}
    reset after (PyTorch's):  n = tanh(U_n x_t + b_n + r * (W_n h_{t-1} + bh_n))
    reset before (Keras's reset_after=False):  n = tanh(U_n x_t + b_n + W_n (r * h_{t-1}) + bh_n)

N batch, T time, H hidden, G = 3H; arrays C-contiguous, time-major:
    A    (T, N, G)    U x_t + b on entry; the gates [r, z, n] on exit (the trace's cache holds
                      views of its blocks of H columns)
    S    (T+1, N, H)  h_{-1}, ..., h_{T-1}
    REC  (T, N, H)    the gated recurrent part (cells.py's `rec`): W_n h_{t-1} + bh_n (reset
                      after) or r * h_{t-1} (reset before)
    dS   (T, N, H)    dE_t/dh_t from output t itself (read only)
    dA, dR (T, N, G)  the errors of each step's input part and recurrent product (cells.py's d_a
                      and d_r; one array for the reset-before form)
    dh   (N, H)       the error arriving at h_{t1-1} on entry, at h_{t0-1} on exit; the backward
                      steps leave dh = d_r W (the product) and keep (N, H) the rest of dE/dh_{t-1},
                      which the next step adds (and state0, after step 0)
bh (G,) is the recurrent bias, zeros without one. A step is one product for the gates (two for the
reset-before form) and element-wise parts, short loops over j < H that vectorise; float32 arrays
are computed in float32 arithmetic (numerics.sig, numerics.th).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from ..core import Trace
from . import driver, runtime, shared
from .numerics import dot, kernel, sig, th


# --- reset after -------------------------------------------------------------------------------
@kernel
def after_step(A, R, bh, S, REC, t):
    """Step t after the product R = W h_{t-1} (N, 3H): [r, z, n] into A[t], rec, h_t."""
    N, H = S.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    brz, bn = bh[:2 * H], bh[2 * H:]
    for n in range(N):
        a, w, hp, h, rec = A[t, n], R[n], S[t, n], S[t + 1, n], REC[t, n]
        arz, wrz, r, z, nn, wn = a[:2 * H], w[:2 * H], a[:H], a[H:2 * H], a[2 * H:], w[2 * H:]
        for j in range(2 * H):
            arz[j] = sig(arz[j] + wrz[j] + brz[j])
        for j in range(H):
            rec[j] = wn[j] + bn[j]  # W_n h_{t-1} + bh_n
        for j in range(H):
            nn[j] = th(nn[j] + r[j] * rec[j])
        for j in range(H):
            h[j] = (one - z[j]) * nn[j] + z[j] * hp[j]


@kernel
def after_step_back(dS, A, REC, S, dA, dR, dh, keep, t):
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


@kernel
def after_forward(A, WT, bh, S, REC, R, t0, t1):
    """The steps t0 <= t < t1 (reset after). WT (H, 3H) = W^T, contiguous; R (N, 3H) scratch."""
    for t in range(t0, t1):
        dot(S[t], WT, R)  # W h_{t-1}
        after_step(A, R, bh, S, REC, t)


@kernel
def after_backward(dS, A, REC, S, W, dA, dR, dh, keep, t0, t1):
    """The backward steps t1-1 down to t0 (reset after). W (3H, H); keep (N, H)."""
    for t in range(t1 - 1, t0 - 1, -1):
        after_step_back(dS, A, REC, S, dA, dR, dh, keep, t)
        dot(dR[t], W, dh)


# --- reset before ------------------------------------------------------------------------------
@kernel
def before_step(A, R2, bh, S, REC, t):
    """Step t's first part after R2 = W_{r,z} h_{t-1} (N, 2H): r, z into A[t], rec = r * h_{t-1}."""
    N, H = S.shape[1], S.shape[2]
    brz = bh[:2 * H]
    for n in range(N):
        a, w, hp, rec = A[t, n], R2[n], S[t, n], REC[t, n]
        arz, r = a[:2 * H], a[:H]
        for j in range(2 * H):
            arz[j] = sig(arz[j] + w[j] + brz[j])
        for j in range(H):
            rec[j] = r[j] * hp[j]


@kernel
def before_step_n(A, R1, bh, S, t):
    """Step t's second part after R1 = W_n rec (N, H): n into A[t], h_t."""
    N, H = S.shape[1], S.shape[2]
    one = np.ones(1, S.dtype)[0]
    bn = bh[2 * H:]
    for n in range(N):
        a, w, hp, h = A[t, n], R1[n], S[t, n], S[t + 1, n]
        z, nn = a[H:2 * H], a[2 * H:]
        for j in range(H):
            nn[j] = th(nn[j] + w[j] + bn[j])
        for j in range(H):
            h[j] = (one - z[j]) * nn[j] + z[j] * hp[j]


@kernel
def before_step_back(dS, A, S, dR, dh, keep, DN, t):
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


@kernel
def before_step_r(A, S, dR, keep, DREC, RZ, t):
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


@kernel
def before_forward(A, WTrz, WTn, bh, S, REC, R2, R1, t0, t1):
    """The steps t0 <= t < t1 (reset before). WTrz (H, 2H), WTn (H, H): the rows of W for r, z and
    for n, transposed, contiguous; R2 (N, 2H), R1 (N, H) scratch."""
    for t in range(t0, t1):
        dot(S[t], WTrz, R2)  # W_{r,z} h_{t-1}
        before_step(A, R2, bh, S, REC, t)
        dot(REC[t], WTn, R1)  # W_n (r * h_{t-1})
        before_step_n(A, R1, bh, S, t)


@kernel
def before_backward(dS, A, S, Wrz, Wn, dR, dh, keep, DN, DREC, RZ, t0, t1):
    """The backward steps t1-1 down to t0 (reset before); dR is d_a and d_r both.
    Wrz (2H, H), Wn (H, H): W's rows; DN, DREC (N, H) and RZ (N, 2H) scratch."""
    for t in range(t1 - 1, t0 - 1, -1):
        before_step_back(dS, A, S, dR, dh, keep, DN, t)
        dot(DN, Wn, DREC)  # dE/d(r * h_{t-1})
        before_step_r(A, S, dR, keep, DREC, RZ, t)
        dot(RZ, Wrz, dh)


# --- the same steps in NumPy, for when the compiled kernels are off ---------------------------------
_sigmoid = activations.get("sigmoid").f


class NumPySteps:
    """The element-wise steps above in NumPy: same names, arguments and results."""

    @staticmethod
    def after_step(A, R, bh, S, REC, t):
        H, a, hp = S.shape[-1], A[t], S[t]
        a[:, :2 * H] = _sigmoid(a[:, :2 * H] + R[:, :2 * H] + bh[:2 * H])  # r, z
        np.add(R[:, 2 * H:], bh[2 * H:], out=REC[t])  # W_n h_{t-1} + bh_n
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        np.tanh(n + r * REC[t], out=n)
        S[t + 1] = (1 - z) * n + z * hp

    @staticmethod
    def after_step_back(dS, A, REC, S, dA, dR, dh, keep, t):
        H, hp = dS.shape[-1], S[t]
        r, z, n = (A[t, :, k * H:(k + 1) * H] for k in range(3))
        np.add(keep, dh, out=dh)
        dh += dS[t]  # dE/dh_t
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (hp - n) * z * (1 - z)
        dr = dn * REC[t] * r * (1 - r)
        dA[t] = np.concatenate([dr, dz, dn], axis=-1)
        dR[t] = np.concatenate([dr, dz, dn * r], axis=-1)
        np.multiply(dh, z, out=keep)

    @staticmethod
    def before_step(A, R2, bh, S, REC, t):
        H, a = S.shape[-1], A[t]
        a[:, :2 * H] = _sigmoid(a[:, :2 * H] + R2 + bh[:2 * H])  # r, z
        np.multiply(a[:, :H], S[t], out=REC[t])  # r * h_{t-1}

    @staticmethod
    def before_step_n(A, R1, bh, S, t):
        H, a = S.shape[-1], A[t]
        z, n = a[:, H:2 * H], a[:, 2 * H:]
        np.tanh(n + R1 + bh[2 * H:], out=n)
        S[t + 1] = (1 - z) * n + z * S[t]

    @staticmethod
    def before_step_back(dS, A, S, dR, dh, keep, DN, t):
        H, d, hp = dS.shape[-1], dR[t], S[t]
        z, n = A[t, :, H:2 * H], A[t, :, 2 * H:]
        np.add(keep, dh, out=dh)
        dh += dS[t]
        d[:, 2 * H:] = DN[...] = dh * (1 - z) * (1 - n * n)
        d[:, H:2 * H] = dh * (hp - n) * z * (1 - z)
        np.multiply(dh, z, out=keep)

    @staticmethod
    def before_step_r(A, S, dR, keep, DREC, RZ, t):
        H, d, r = S.shape[-1], dR[t], A[t, :, :S.shape[-1]]
        d[:, :H] = DREC * S[t] * r * (1 - r)
        keep += DREC * r
        RZ[...] = d[:, :2 * H]


class CompiledSteps:
    """The compiled element-wise steps, by the names NumPySteps has."""

    after_step, after_step_back = after_step, after_step_back
    before_step, before_step_n, before_step_back, before_step_r = before_step, before_step_n, before_step_back, \
        before_step_r


# --- the adapter -------------------------------------------------------------------------------
def _weights(model):
    """(WT, W, bh, UT), contiguous, read-only: the recurrent weights as the forward products read
    them, WT = (W^T,) or for the reset-before form (W_{r,z}^T, W_n^T), and as the backward ones
    do, W = (W,) or (W_{r,z}, W_n); bh (G,) the recurrent bias, zeros without one; UT (D, G) = U^T,
    whose rows the inputs' part gathers for ids."""
    H = model.H
    blocks = (model.W,) if model.cell.reset_after else (model.W[:2 * H], model.W[2 * H:])
    got = (tuple(np.ascontiguousarray(w.T) for w in blocks), tuple(np.ascontiguousarray(w) for w in blocks),
           np.zeros(model.W.shape[0], dtype=model.dtype) if model.bh is None else np.ascontiguousarray(model.bh),
           np.ascontiguousarray(model.U.T))
    for a in got[0] + got[1] + got[2:]:
        a.flags.writeable = False
    return got


class Forward:
    """The forward pass's arrays (the module's notes) and its steps."""

    def __init__(self, model, xin, state0, mem, threaded, scan="sequential"):
        T, N, H, G = xin.T, xin.N, model.H, model.W.shape[0]
        self.after = model.cell.reset_after
        self.A, self.S, self.REC = mem.empty("A", (T, N, G)), mem.empty("S", (T + 1, N, H)), mem.empty("X", (T, N, H))
        self.S[0] = state0[0]
        self.R = (mem.empty("R", (N, G)),) if self.after else (mem.empty("R2", (N, 2 * H)), mem.empty("R1", (N, H)))
        cache = tuple(self.A[..., k * H:(k + 1) * H] for k in range(3)) + (self.REC,)
        self.trace = Trace(model, xin, (self.S,), cache, mem.empty("Q", (T, N, model.O)))
        self.WT, _, self.bh, UT = runtime.prepared(model, _weights)
        self.UT, self.bias = UT if xin.ids is not None else model.U.T, model.b
        compiled, self.whole = runtime.gated_loops(N, N * H * G)
        self.one = CompiledSteps if compiled else NumPySteps

    def steps(self, t0, t1):
        A, S, REC, WT, R, bh, one = self.A, self.S, self.REC, self.WT, self.R, self.bh, self.one
        if self.after:
            if self.whole:
                return after_forward(A, WT[0], bh, S, REC, R[0], t0, t1)
            for t in range(t0, t1):
                np.matmul(S[t], WT[0], out=R[0])
                one.after_step(A, R[0], bh, S, REC, t)
        else:
            if self.whole:
                return before_forward(A, WT[0], WT[1], bh, S, REC, R[0], R[1], t0, t1)
            for t in range(t0, t1):
                np.matmul(S[t], WT[0], out=R[0])  # W_{r,z} h_{t-1}
                one.before_step(A, R[0], bh, S, REC, t)
                np.matmul(REC[t], WT[1], out=R[1])  # W_n (r * h_{t-1})
                one.before_step_n(A, R[1], bh, S, t)


class Backward:
    """The backward loop's arrays (the module's notes) and its steps; forward: the Forward of the
    trace, if at hand (its gates are one array already)."""

    def __init__(self, trace, dS, mem, threaded, forward=None):
        model, N, H = trace.model, trace.inputs.N, trace.model.H
        self.after, self.dS, self.W = model.cell.reset_after, dS, runtime.prepared(model, _weights)[1]
        self.A = forward.A if forward is not None else runtime.stacked(trace.cache[:3])
        self.S, self.REC = np.ascontiguousarray(trace.S), np.ascontiguousarray(trace.cache[3])
        self.dA = mem.empty("dA", self.A.shape)
        self.dR = mem.empty("dR", self.A.shape) if self.after else self.dA
        self.dh, self.keep = mem.zeros("dh", (N, H)), mem.zeros("keep", (N, H))
        self.scratch = (mem.empty("DN", (N, H)), mem.empty("DREC", (N, H)), mem.empty("RZ", (N, 2 * H)))
        compiled, self.whole = runtime.gated_loops(N, N * H * self.A.shape[-1])
        self.one = CompiledSteps if compiled else NumPySteps

    def steps(self, t0, t1):
        dS, A, S, REC, W, dA, dR, dh, keep, one = (self.dS, self.A, self.S, self.REC, self.W, self.dA, self.dR,
                                                   self.dh, self.keep, self.one)
        if self.after:
            if self.whole:
                return after_backward(dS, A, REC, S, W[0], dA, dR, dh, keep, t0, t1)
            for t in range(t1 - 1, t0 - 1, -1):
                one.after_step_back(dS, A, REC, S, dA, dR, dh, keep, t)
                np.matmul(dR[t], W[0], out=dh)
            return None
        DN, DREC, RZ = self.scratch
        if self.whole:
            return before_backward(dS, A, S, W[0], W[1], dR, dh, keep, DN, DREC, RZ, t0, t1)
        for t in range(t1 - 1, t0 - 1, -1):
            one.before_step_back(dS, A, S, dR, dh, keep, DN, t)
            np.matmul(DN, W[1], out=DREC)  # dE/d(r * h_{t-1})
            one.before_step_r(A, S, dR, keep, DREC, RZ, t)
            np.matmul(RZ, W[0], out=dh)
        return None

    def state0(self):
        return (self.dh + self.keep,)  # the step leaves its two parts apart


class GRU(shared.Gated):
    """The GRU's adapter to the driver, both forms."""

    forward, backward = Forward, Backward

    @staticmethod
    def weight_terms(trace, dA, dR, t0, t1, threaded=False):
        """dW and dbh: W_{r,z} multiply h_{t-1}; W_n multiplies rec (h_{t-1} after, r * h_{t-1} before)."""
        model, H, G = trace.model, trace.model.H, dA.shape[-1]
        R2, prev = dR[t0:t1].reshape(-1, G), trace.S[t0:t1].reshape(-1, H)  # a row per step and sequence
        if model.cell.reset_after:
            dW = runtime.matmul(R2, prev, tn=True, threaded=threaded)
        else:
            dW = np.empty((G, H), dtype=model.dtype)
            runtime.matmul(R2[:, :2 * H], prev, tn=True, threaded=threaded, out=dW[:2 * H])
            rec = np.ascontiguousarray(trace.cache[3][t0:t1]).reshape(-1, H)
            runtime.matmul(R2[:, 2 * H:], rec, tn=True, threaded=threaded, out=dW[2 * H:])
        g = {"W": dW}
        if model.bh is not None:
            g["bh"] = R2.sum(axis=0)
        return g


driver.register("gru", GRU)
