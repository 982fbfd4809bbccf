"""The LSTM in the fast backend: its compiled step kernels (Numba) and its adapter to the driver
(driver.py's notes), registered as "lstm". The equations and their order of operations are
cells.py's, so the results equal the reference engine's to rounding (tests/test_fast_gated.py):

    [i, f, g, o] = U x_t + b + W h_{t-1} + bh,  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)

N batch, T time, H hidden, G = 4H; arrays C-contiguous, time-major:
    A    (T, N, G)    U x_t + b + bh on entry; the gates [i, f, g, o] on exit (the trace's cache
                      holds views of its blocks of H columns)
    S    (T+1, N, H)  h_{-1}, ..., h_{T-1};  C (T+1, N, H) c_{-1}, ..., c_{T-1}
    TC   (T, N, H)    tanh(c_t)
    dS   (T, N, H)    dE_t/dh_t from output t itself (read only)
    dA   (T, N, G)    the errors of each step's pre-activations (d_a and d_r, one array)
    dh, dc (N, H)     the errors arriving at h_{t1-1}, c_{t1-1} from later steps on entry, at
                      h_{t0-1}, c_{t0-1} on exit
A step is a product (BLAS) and an element-wise part (step, step_back), a few short loops over
j < H, each reading and writing few arrays, the gate blocks as slices, so that every loop
vectorises. float32 arrays are computed in float32 arithmetic (numerics.sig, numerics.th).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from ..core import Trace
from . import driver, runtime, shared
from .numerics import dot, kernel, sig, th


@kernel
def step(A, R, S, C, TC, t):
    """Step t after the product R = W h_{t-1} (N, 4H): the gates into A[t], c_t, tanh c_t, h_t."""
    N, H = S.shape[1], S.shape[2]
    for n in range(N):
        a, w = A[t, n], R[n]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        aif, wif, wg, wo = a[:2 * H], w[:2 * H], w[2 * H:3 * H], w[3 * H:]
        for j in range(2 * H):
            aif[j] = sig(aif[j] + wif[j])
        for j in range(H):
            g[j] = th(g[j] + wg[j])
        for j in range(H):
            o[j] = sig(o[j] + wo[j])
        cp, c, tc, h = C[t, n], C[t + 1, n], TC[t, n], S[t + 1, n]
        for j in range(H):
            c[j] = f[j] * cp[j] + i[j] * g[j]
        for j in range(H):
            tc[j] = th(c[j])
        for j in range(H):
            h[j] = o[j] * tc[j]


@kernel
def step_back(dS, A, C, TC, dA, dh, dc, t):
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


@kernel
def forward_loop(A, WT, S, C, TC, R, t0, t1):
    """The steps t0 <= t < t1. WT (H, 4H) = W^T, contiguous; R (N, 4H) scratch."""
    for t in range(t0, t1):
        dot(S[t], WT, R)  # W h_{t-1}
        step(A, R, S, C, TC, t)


@kernel
def backward_loop(dS, A, C, TC, W, dA, dh, dc, t0, t1):
    """The backward steps t1-1 down to t0 (A holds the gates). W (4H, H)."""
    for t in range(t1 - 1, t0 - 1, -1):
        step_back(dS, A, C, TC, dA, dh, dc, t)
        dot(dA[t], W, dh)  # dE/dh_{t-1} = d_pre W


_sigmoid = activations.get("sigmoid").f


def numpy_step(A, R, S, C, TC, t):
    """step in NumPy (same arguments and results), for when the compiled kernels are off."""
    H, a = S.shape[-1], A[t]
    a += R  # the pre-activations [i, f, g, o]
    a[:, :2 * H] = _sigmoid(a[:, :2 * H])
    np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
    a[:, 3 * H:] = _sigmoid(a[:, 3 * H:])
    i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    np.add(f * C[t], i * g, out=C[t + 1])
    np.tanh(C[t + 1], out=TC[t])
    np.multiply(o, TC[t], out=S[t + 1])


def numpy_step_back(dS, A, C, TC, dA, dh, dc, t):
    """step_back in NumPy."""
    H, d, tc = dS.shape[-1], dA[t], TC[t]
    i, f, g, o = (A[t, :, k * H:(k + 1) * H] for k in range(4))
    dh += dS[t]  # dE/dh_t: from output t, and from step t + 1
    dc += dh * o * (1 - tc * tc)  # dE/dc_t: from c_{t+1}, and from h_t
    d[:, :H] = dc * g * i * (1 - i)
    d[:, H:2 * H] = dc * C[t] * f * (1 - f)
    d[:, 2 * H:3 * H] = dc * i * (1 - g * g)
    d[:, 3 * H:] = dh * tc * o * (1 - o)
    dc *= f  # dE/dc_{t-1} along the cell path


def _weights(model):
    """(WT, W, UT): W^T (H, 4H) as the forward products read it, W (4H, H) as the backward ones do,
    U^T (D, 4H), whose rows the inputs' part gathers for ids; contiguous, read-only."""
    got = tuple(np.ascontiguousarray(w) for w in (model.W.T, model.W, model.U.T))
    for a in got:
        a.flags.writeable = False
    return got


class Forward:
    """The forward pass's arrays (the module's notes) and its steps."""

    def __init__(self, model, xin, state0, mem, threaded, scan="sequential"):
        T, N, H, G = xin.T, xin.N, model.H, model.W.shape[0]
        self.A, self.S, self.C = mem.empty("A", (T, N, G)), mem.empty("S", (T + 1, N, H)), mem.empty("C", (T + 1, N, H))
        self.S[0], self.C[0] = state0
        self.TC, self.R = mem.empty("X", (T, N, H)), mem.empty("R", (N, G))
        cache = tuple(self.A[..., k * H:(k + 1) * H] for k in range(4)) + (self.TC,)
        self.trace = Trace(model, xin, (self.S, self.C), cache, mem.empty("Q", (T, N, model.O)))
        self.WT, _, UT = runtime.prepared(model, _weights)
        self.UT = UT if xin.ids is not None else model.U.T  # rows gathered: contiguous
        biases = [v for v in (model.b, model.bh) if v is not None]  # both before the gates
        self.bias = biases[0] + biases[1] if len(biases) == 2 else (biases or [None])[0]
        self.compiled, self.whole = runtime.gated_loops(N, N * H * G)

    def steps(self, t0, t1):
        A, WT, S, C, TC, R = self.A, self.WT, self.S, self.C, self.TC, self.R
        if self.whole:
            return forward_loop(A, WT, S, C, TC, R, t0, t1)
        one = step if self.compiled else numpy_step
        for t in range(t0, t1):
            np.matmul(S[t], WT, out=R)  # W h_{t-1}, all four gates
            one(A, R, S, C, TC, t)


class Backward:
    """The backward loop's arrays (the module's notes) and its steps; forward: the Forward of the
    trace, if at hand (its gates are one array already)."""

    def __init__(self, trace, dS, mem, threaded, forward=None):
        model, N, H = trace.model, trace.inputs.N, trace.model.H
        self.dS, self.W = dS, runtime.prepared(model, _weights)[1]
        self.A = forward.A if forward is not None else runtime.stacked(trace.cache[:4])
        self.C, self.TC = np.ascontiguousarray(trace.cell_states[1]), np.ascontiguousarray(trace.cache[4])
        self.dA = self.dR = mem.empty("dA", self.A.shape)
        self.dh, self.dc = mem.zeros("dh", (N, H)), mem.zeros("dc", (N, H))
        self.compiled, self.whole = runtime.gated_loops(N, N * H * self.A.shape[-1])

    def steps(self, t0, t1):
        dS, A, C, TC, W, dA, dh, dc = self.dS, self.A, self.C, self.TC, self.W, self.dA, self.dh, self.dc
        if self.whole:
            return backward_loop(dS, A, C, TC, W, dA, dh, dc, t0, t1)
        one = step_back if self.compiled else numpy_step_back
        for t in range(t1 - 1, t0 - 1, -1):
            one(dS, A, C, TC, dA, dh, dc, t)
            np.matmul(dA[t], W, out=dh)  # dE/dh_{t-1} from step t

    def arrive(self, d):
        """The errors (dh, dc) arriving at h_{T-1}, c_{T-1} from beyond, before the steps."""
        self.dh[...], self.dc[...] = d

    def state0(self):
        return self.dh, self.dc


class LSTM(shared.Gated):
    """The LSTM's adapter to the driver."""

    forward, backward = Forward, Backward

    @staticmethod
    def weight_terms(trace, dA, dR, t0, t1, threaded=False):
        model, H, G = trace.model, trace.model.H, dA.shape[-1]
        A2 = dA[t0:t1].reshape(-1, G)
        g = {"W": runtime.matmul(A2, trace.S[t0:t1].reshape(-1, H), tn=True, threaded=threaded)}
        if model.bh is not None:
            g["bh"] = A2.sum(axis=0)
        return g


driver.register("lstm", LSTM)
