"""The Elman cell in the fast backend: its compiled step kernels (Numba) and its adapter to the
driver (driver.py's notes), registered under the cell's name, "rnn".

    forward step    z_t = (U x_t + b) + W s_{t-1},  s_t = f(z_t)
    backward step   dE/ds_t += W^T delta_{t+1},  delta_t = dE/ds_t * f'(z_t)

N batch, T time, H hidden. The forward pass keeps Z (T, N, H), U x_t + b and then z_t in place,
and S (T+1, N, H), s_{-1}, ..., s_{T-1}; the backward pass writes delta_t into dZ (T, N, H).

Why compiled: at small N * H a step is a few thousand multiply-adds, while NumPy spends a fixed
overhead on each call (three a step); a compiled loop over the steps removes it. The axpy kernels
do the step's product as axpys over the output index (contiguous, vectorised, no sum reordered);
the _blas kernels hand it to BLAS (numerics.dot: np.dot's BLAS call, SciPy's BLAS) and do the rest of the step in
one fused pass. step_kernel picks by size; NumPy's loop runs where neither pays, or without
compiled kernels. Activation codes (ACT_CODES): 0 tanh, 1 relu, 2 sigmoid, 3 identity, and 4 tanh
in float32 arithmetic (numerics.tanh32, for float32 arrays: eight values to a vector instruction).
modReLU (s_t = sign(z_t) relu(|z_t| + bm), its bias bm the cell's own) has no code: it runs NumPy's
loop at every size, with its bias's gradient sum_t delta_t sign(s_t) among the weight terms.
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations
from ..core import Trace
from . import driver, runtime
from .numerics import PerCode, dot, inline, tanh, tanh32
from .window import window

ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}
COMPILED_MAX_WORK = 1 << 17  # N * H * H multiply-adds a step up to which the axpy kernels do the product


@inline
def f(z, act):
    """f(z) for the codes other than tanh."""
    if act == 1:
        return z if z >= 0 or z != z else 0.0  # as np.maximum(z, 0): NaN stays NaN
    if act == 2:  # the two branches of activations._sigmoid, each finite for every z
        e = math.exp(-abs(z))
        return 1 / (1 + e) if z >= 0 else e / (1 + e)
    return z


@inline
def df(s, act):
    """f'(z) from s = f(z), as activations.py's df_from_output."""
    if act == 0 or act == 4:
        return 1 - s * s
    if act == 1:
        return 1.0 if s > 0 else 0.0
    if act == 2:
        return s * (1 - s)
    return 1.0


def _forward_steps(act):
    """The axpy forward loop for the activation code act (numerics.PerCode)."""
    def forward_steps(Z, S, WT, t0, t1):
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
                        s[i] = tanh(z[i])
                elif act == 4:
                    for i in range(H):
                        s[i] = tanh32(z[i])
                else:
                    for i in range(H):
                        s[i] = f(z[i], act)
    return forward_steps


def _backward_steps(act):
    """The axpy backward loop for the activation code act (numerics.PerCode)."""
    def backward_steps(dS, dZ, S, W, dh, t0, t1):
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
                    dz[i] = ds[i] * df(s[i], act)  # delta_t = dE/ds_t * f'(z_t)
                    h[i] = 0
                for i in range(H):  # dE/ds_{t-1} = W^T delta_t: row i of W times delta_t[i], an axpy
                    di = dz[i]
                    w = W[i]
                    for j in range(H):
                        h[j] += w[j] * di
    return backward_steps


def _forward_steps_blas(act):
    """The BLAS forward loop for the activation code act (numerics.PerCode)."""
    def forward_steps_blas(Z, S, WT, t0, t1):
        """forward_steps with each step's product W s_{t-1} by BLAS (numerics.dot, SciPy's BLAS),
        for the sizes where BLAS beats the axpys; the rest of the step is one fused pass."""
        N, H = Z.shape[1], Z.shape[2]
        for t in range(t0, t1):
            s = S[t + 1]
            dot(S[t], WT, s)  # W s_{t-1}, parked in s_t until f(z_t) overwrites it
            z = Z[t]
            for n in range(N):
                zn = z[n]
                sn = s[n]
                if act == 0:
                    for i in range(H):
                        zn[i] += sn[i]  # z_t = U x_t + b + W s_{t-1}
                        sn[i] = tanh(zn[i])
                elif act == 4:
                    for i in range(H):
                        zn[i] += sn[i]
                        sn[i] = tanh32(zn[i])
                else:
                    for i in range(H):
                        zn[i] += sn[i]
                        sn[i] = f(zn[i], act)
    return forward_steps_blas


def _backward_steps_blas(act):
    """The BLAS backward loop for the activation code act (numerics.PerCode)."""
    def backward_steps_blas(dS, dZ, S, W, dh, t0, t1):
        """backward_steps with each step's product W^T delta_t by BLAS (numerics.dot): see forward_steps_blas."""
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
                    dzn[i] = dsn[i] * df(sn[i], act)  # delta_t = dE/ds_t * f'(z_t)
            dot(dz, W, dh)  # dE/ds_{t-1} from step t
    return backward_steps_blas


# each loop compiled for the one activation a call needs: a kernel with every code's branches
# took about twice as long to compile
forward_steps, backward_steps = PerCode(_forward_steps), PerCode(_backward_steps)
forward_steps_blas, backward_steps_blas = PerCode(_forward_steps_blas), PerCode(_backward_steps_blas)


def act_code(model):
    """The activation's code for the kernels: tanh of float32 arrays in float32 arithmetic."""
    act = ACT_CODES[model.activation]
    return 4 if act == 0 and model.dtype == np.float32 else act


def step_kernel(kind, N, H, threaded=False):
    """The compiled time loops ("forward" or "backward", numerics.PerCode: one kernel for each
    activation code) for this size, or None (NumPy's loop):
    axpys up to COMPILED_MAX_WORK multiply-adds a step; a BLAS call per step for one sequence (a
    matrix-vector product, which BLAS does well at every size; its matrix products of a few rows
    are slow) and above COMPILED_MAX_WORK. Outside a pipeline (threaded), NumPy's loop from
    runtime.ONE_THREAD_MAX_PRODUCT, where BLAS gets both threads for each step's product."""
    w = N * H * H
    if not runtime.compiled() or (not threaded and w >= runtime.ONE_THREAD_MAX_PRODUCT):
        return None
    return _STEP_KERNELS[kind, N == 1 or w > COMPILED_MAX_WORK]


_STEP_KERNELS = {("forward", False): forward_steps, ("forward", True): forward_steps_blas,
                 ("backward", False): backward_steps, ("backward", True): backward_steps_blas}


def _weights(model):
    """(WT, UT, W): W^T as the compiled forward loops read it (row j is W's column j), U^T, whose
    rows the inputs' part gathers for ids, and W as the compiled backward loops read it (the
    product by BLAS takes C-ordered arrays); contiguous, read-only, made once per model."""
    got = tuple(np.ascontiguousarray(w) for w in (model.W.T, model.U.T, model.W))
    for a in got:
        a.flags.writeable = False
    return got


# f(z, out) for the activations that have such a form, so the NumPy loop allocates nothing
_F_INTO = {
    "tanh": np.tanh,
    "relu": lambda z, out: np.maximum(z, 0, out=out),
    "identity": lambda z, out: np.copyto(out, z),
}


def _df_into(model, s, out):
    """f'(z_t) from s_t (any block of steps), into out."""
    if model.activation == "tanh":  # 1 - s^2 in two passes, no allocation
        np.multiply(s, s, out=out)
        np.subtract(1.0, out, out=out)
    else:
        out[...] = activations.get(model.activation).df_from_output(s)


def _bias(model):
    """What the inputs' part adds at every step: b, and bh (PyTorch's bias_hh), which adds to z_t as
    b does (their sum, or the one given, or None)."""
    b, bh = model.params.get("b"), model.params.get("bh")
    return bh if b is None else b if bh is None else b + bh


class Forward:
    """The forward pass's arrays: Z (T, N, H) the inputs' part, then z_t (A, for the driver), S, Q."""

    def __init__(self, model, xin, state0, mem, threaded, scan="sequential"):
        T, N, H = xin.T, xin.N, model.H
        self.model, self.A = model, mem.empty("A", (T, N, H))
        self.S = mem.empty("S", (T + 1, N, H))
        self.S[0] = state0[0]
        self.trace = Trace(model, xin, (self.S,), (self.A,), mem.empty("Q", (T, N, model.O)))
        WT, UT, _ = runtime.prepared(model, _weights)
        self.UT, self.bias = UT if xin.ids is not None else model.U.T, _bias(model)
        self.compiled = None if model.activation not in ACT_CODES else step_kernel("forward", N, H, threaded)
        self.WT = WT if self.compiled is not None else model.W.T

    def steps(self, t0, t1):
        """z_t and s_t for t0 <= t < t1."""
        Z, S, WT, model = self.A, self.S, self.WT, self.model
        if self.compiled is not None:
            return self.compiled[act_code(model)](Z, S, WT, t0, t1)
        f_into = _F_INTO.get(model.activation)
        for t in range(t0, t1):
            s_prev, s, z = S[t], S[t + 1], Z[t]  # (N, H) views
            np.matmul(s_prev, WT, out=s)  # W s_{t-1}, parked in s_t's row until f(z_t) overwrites it
            z += s  # z_t = U x_t + b + W s_{t-1}
            if f_into is not None:
                f_into(z, s)  # s_t = f(z_t)
            elif model.activation == "modrelu":
                s[...] = activations.modrelu(z, 0.0 if model.bm is None else model.bm)
            else:
                s[...] = activations.get(model.activation).f(z)


class Backward:
    """The backward loop's arrays: dS (T, N, H) dE_t/ds_t from output t (added to in place), dZ
    (T, N, H) delta_t (dA and dR, for the driver), dh (N, H) dE/ds_{t-1} from the steps after."""

    def __init__(self, trace, dS, mem, threaded, forward=None):
        N, H = trace.inputs.N, trace.model.H
        self.trace, self.dS = trace, dS
        self.dA = self.dR = mem.empty("dA", dS.shape)
        self.dh = mem.zeros("dh", (N, H))
        self.compiled = None if trace.model.activation not in ACT_CODES else step_kernel("backward", N, H, threaded)
        self.W = trace.model.W if self.compiled is None else runtime.prepared(trace.model, _weights)[2]

    def steps(self, t0, t1):
        """t = t1-1 down to t0."""
        model, S, dS, dZ, dh, W = self.trace.model, self.trace.S, self.dS, self.dA, self.dh, self.W
        if self.compiled is not None:  # the loop below, compiled, with f'(z_t) from s_t on the way
            return self.compiled[act_code(model)](dS, dZ, S, W, dh, t0, t1)
        _df_into(model, S[t0 + 1:t1 + 1], dZ[t0:t1])
        for t in range(t1 - 1, t0 - 1, -1):
            ds, dz = dS[t], dZ[t]  # (N, H) views
            ds += dh  # dE/ds_t: from output t, and from step t + 1 through W
            dz *= ds  # delta_t = dE/ds_t * f'(z_t)
            np.matmul(dz, W, out=dh)  # dE/ds_{t-1} from step t

    def state0(self):
        return (self.dh,)


class Elman:
    """The Elman cell's adapter to the driver."""

    forward, backward = Forward, Backward

    @staticmethod
    def accepts(model):
        """The kernels compute the plain activations, and NumPy's loop modReLU (b and bh both as
        one bias of the inputs' part, _bias)."""
        activation = model.activation
        return activation in ACT_CODES or activation == "modrelu"

    @staticmethod
    def step_work(model, N):
        return N * model.H * model.H  # W s_{t-1}

    @staticmethod
    def kernels(model, N, threaded):
        """The compiled loops a call on N sequences runs, with their argument types (ahead.py):
        ([forward], [backward]), empty where NumPy's loops run."""
        fw, bw = step_kernel("forward", N, model.H, threaded), step_kernel("backward", N, model.H, threaded)
        if fw is None or bw is None or model.activation not in ACT_CODES:
            return [], []
        from . import ahead
        act, arrays, step = act_code(model), ahead.array(model.dtype, 3), ahead.INDEX
        WT, _, W = (ahead.type_of(w) for w in runtime.prepared(model, _weights))
        return ([(fw[act], (arrays, arrays, WT, step, step))],
                [(bw[act], (arrays, arrays, arrays, W, ahead.array(model.dtype, 2), step, step))])

    @staticmethod
    def pipelines(step_work):
        return True

    @staticmethod
    def truncated(trace, dS, K):
        model, S = trace.model, trace.S
        d = np.empty(dS.shape, dtype=model.dtype)
        _df_into(model, S[1:], d)
        g, dh0 = window(dS, d, model.W, K)
        dZ = np.multiply(g, d, out=g)  # delta_t
        return dZ, dZ, (dh0,)

    @staticmethod
    def weight_terms(trace, dA, dR, t0, t1, threaded=False):
        H = trace.model.H
        g = {"W": runtime.matmul(dA[t0:t1].reshape(-1, H), trace.S[t0:t1].reshape(-1, H), tn=True,
                                 threaded=threaded)}  # sum_t delta_t s_{t-1}^T
        if "bh" in trace.model.params:  # bh adds to z_t as b does: sum_t delta_t, as shared.weight_terms's db
            g["bh"] = dA[t0:t1].reshape(-1, H).sum(axis=0)
        if "bm" in trace.model.params:  # modReLU's bias: sum_t delta_t sign(s_t)
            g["bm"] = np.einsum("tnh,tnh->h", dA[t0:t1], np.sign(trace.S[t0 + 1:t1 + 1]))
        return g


driver.register("rnn", Elman)
