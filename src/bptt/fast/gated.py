"""The fast engine for the LSTM and GRU cells (both GRU forms): the reference engine's functions
(core.py) and results, computed with buffers written in place, one product per step for all the
gates, compiled steps and loops (gated_kernels.py), BLAS thread control and engine.py's helper
thread. Every result equals core.py's to rounding (tests/test_fast_gated.py).

The conventions are core.py's (time-major arrays, truncate=K the notebook's window, the loss
summed over time and batch) and the equations cells.py's. N batch, T time, D input, H hidden,
O output, G = 4H (LSTM) or 3H (GRU). The forward pass keeps, time-major:

    A    (T, N, G)    U x_t + b (+ bh for the LSTM), then in place the gates: [i, f, g, o] (LSTM),
                      [r, z, n] (GRU); the trace's cache holds views of its blocks of H columns
    S    (T+1, N, H)  the hidden outputs h_{-1}, ..., h_{T-1}
    C    (T+1, N, H)  the LSTM's cell states; X (T, N, H) its tanh(c_t)
    X    (T, N, H)    the GRU's gated recurrent part (cells.GRU's `rec`)

so the Trace is core.py's: cell_states (S,) or (S, C), cache (i, f, g, o, tanh c_t) or
(r, z, n, rec). Full BPTT runs the backward loop here; truncate=K < T runs the reference's window
(core.backprop_window) on this trace. The weight gradients are one product per parameter over the
steps, as core.weight_grads computes them.

Each step is a product for all the gates and an element-wise part. Three ways to run the steps,
the same numbers to rounding: the whole time loop compiled (gated_kernels' *_forward and
*_backward; the products by BLAS through Numba), for one sequence and for small steps, where the
cost of a call from Python would count; a Python loop calling NumPy's product and the compiled
element-wise step, for larger steps (NumPy's BLAS can be the faster of the two); and NumPy's
loop throughout (_NumPySteps) without the compiled kernels. Problems with large steps run in
engine.py's two-thread pipeline (blocks of steps; the helper computes the inputs' part, outputs,
errors and weight gradients of the blocks the loop has finished; _plan says when).
"""
from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .. import activations, heads, validate
from ..core import Grads, Trace, backprop_window, finite, initial_state, nonfinite_message, reports_overflow, \
    truncation
from . import engine

COMPILED_LOOP_MAX_WORK = 1 << 20  # N * H * G multiply-adds a step up to which the whole loop is compiled
PIPELINE_MIN_STEP_WORK = 1 << 22  # N * H * G multiply-adds a step from which a helper thread takes work (_plan)
WORKSPACE_MAX_BYTES = 1 << 26  # gradients() keeps its working arrays (per thread) for the next call up to this size
_workspace = threading.local()


class _Memory:
    """Where a call's working arrays come from: new ones, or (key given, for a call that returns
    none of them) this thread's arrays from its last call with the same key, which spares the
    allocations and finds them in the cache. One key is kept per thread."""

    def __init__(self, dtype, key=None):
        self.dtype, self.kept = dtype, None
        if key is not None:
            kept = getattr(_workspace, "arrays", None)
            if kept is None or kept[0] != key:
                kept = _workspace.arrays = (key, {})
            self.kept = kept[1]

    @classmethod
    def reused(cls, model, xin):
        """For gradients() and backward(): the kept arrays when they take at most
        WORKSPACE_MAX_BYTES, else new ones."""
        T, N, H, G, O = xin.T, xin.N, model.H, model.W.shape[0], model.O
        size = model.dtype.itemsize * (T + 1) * N * (3 * G + 5 * H + 2 * O)
        key = (_kind(model), T, N, H, O, model.dtype.str)
        return cls(model.dtype, key if size <= WORKSPACE_MAX_BYTES else None)

    def empty(self, name, shape):
        if self.kept is None:
            return np.empty(shape, dtype=self.dtype)
        a = self.kept.get(name)
        if a is None:
            a = self.kept[name] = np.empty(shape, dtype=self.dtype)
        return a

    def zeros(self, name, shape):
        a = self.empty(name, shape)
        a.fill(0)
        return a


_prepared = weakref.WeakKeyDictionary()  # model -> _weights(model)


def _weights(model):
    """(WT, W, bh, UT), made once per model (its arrays are read-only), all C-contiguous (a
    model's arrays keep the order they came in): the recurrent weights as the forward products
    read them, WT = (W^T,) or for the reset-before GRU (W_{r,z}^T, W_n^T), and as the backward
    products do, W = (W,) or (W_{r,z}, W_n); bh (G,) the GRU's recurrent bias, zeros without one;
    UT (D, G) = U^T, whose rows the inputs' part gathers for ids."""
    got = _prepared.get(model)
    if got is None:
        H = model.H
        blocks = (model.W[:2 * H], model.W[2 * H:]) if _kind(model) == "gru_before" else (model.W,)
        got = (tuple(np.ascontiguousarray(w.T) for w in blocks), tuple(np.ascontiguousarray(w) for w in blocks),
               np.zeros(model.W.shape[0], dtype=model.dtype) if model.bh is None else np.ascontiguousarray(model.bh),
               np.ascontiguousarray(model.U.T))
        for a in got[0] + got[1] + got[2:]:
            a.flags.writeable = False
        _prepared[model] = got
    return got


def _kind(model) -> str:
    """"lstm", "gru_after" (PyTorch's GRU) or "gru_before" (Keras's reset_after=False)."""
    if model.cell.name == "lstm":
        return "lstm"
    return "gru_after" if model.cell.reset_after else "gru_before"


def _loops(N, H, G):
    """(steps, whole): the step functions (gated_kernels when the calls use compiled loops, else
    _NumPySteps) and whether the whole time loop runs compiled."""
    if engine._kernels() is None:
        return _NumPySteps, False
    from . import gated_kernels  # loaded by engine.py with its kernels
    return gated_kernels, N == 1 or N * H * G <= COMPILED_LOOP_MAX_WORK


def _plan(T, N, H, G):
    """One block in this thread, or engine.py's pipeline (engine._plan, which reads N H'^2
    multiply-adds a step) where each step's product, N H G multiply-adds, is at least
    PIPELINE_MIN_STEP_WORK. There BLAS would split every step's product over its threads, which
    wait for each other at every step; below, the steps' products run on one BLAS thread and the
    products over all steps, after the loop, on all of them."""
    if N * H * G < PIPELINE_MIN_STEP_WORK:
        return engine._Plan([(0, T)], engine._Inline())
    return engine._plan(T, N, math.isqrt(H * G))


# --- forward ---------------------------------------------------------------------------------
def _project(model, xin, UT, A, t0, t1):
    """A[t] = U x_t + b for t0 <= t < t1, in place (+ bh for the LSTM, whose two biases add before
    the gates): a gather of the rows of UT = U^T (U's columns) for ids, else one product."""
    G = A.shape[-1]
    if xin.ids is not None:
        # mode="clip" writes straight into out (the ids are checked already: nothing is clipped)
        np.take(UT, xin.ids.T[t0:t1], axis=0, out=A[t0:t1], mode="clip")
    else:
        X = np.swapaxes(xin.X[:, t0:t1], 0, 1).reshape(-1, model.D)  # time-major rows (a copy)
        np.matmul(X, UT, out=A[t0:t1].reshape(-1, G))
    bias = [v for v in (model.b, model.bh if _kind(model) == "lstm" else None) if v is not None]
    if bias:
        A[t0:t1] += bias[0] if len(bias) == 1 else bias[0] + bias[1]


@dataclass(frozen=True)
class _Forward:
    """The forward pass's arrays (the module's notes) and the weights as its loops read them."""
    kind: str
    A: np.ndarray
    S: np.ndarray
    C: np.ndarray | None  # LSTM only
    X: np.ndarray  # tanh(c_t) (LSTM) or rec (GRU)
    Q: np.ndarray  # (T, N, O) the outputs
    WT: tuple  # (W^T,) or, reset before, (W_{r,z}^T, W_n^T): contiguous
    bh: np.ndarray  # (G,): the GRU's recurrent bias (zeros without one), which its steps add
    R: tuple  # scratch: each step's products

    @classmethod
    def new(cls, model, xin, state0, mem: _Memory):
        T, N, H, O = xin.T, xin.N, model.H, model.O
        G, kind = model.W.shape[0], _kind(model)
        S = mem.empty("S", (T + 1, N, H))
        S[0] = state0[0]
        C = None
        if kind == "lstm":
            C = mem.empty("C", (T + 1, N, H))
            C[0] = state0[1]
        R = (mem.empty("R2", (N, 2 * H)), mem.empty("R1", (N, H))) if kind == "gru_before" \
            else (mem.empty("R", (N, G)),)
        WT, _, bh, _ = _weights(model)
        return cls(kind, mem.empty("A", (T, N, G)), S, C, mem.empty("X", (T, N, H)), mem.empty("Q", (T, N, O)),
                   WT, bh, R)

    def trace(self, model, xin) -> Trace:
        H, gates = model.H, 4 if self.kind == "lstm" else 3
        cache = tuple(self.A[..., k * H:(k + 1) * H] for k in range(gates)) + (self.X,)
        return Trace(model, xin, (self.S,) if self.C is None else (self.S, self.C), cache, self.Q)


def _forward_steps(F: _Forward, t0, t1, steps, whole):
    """The forward steps t0 <= t < t1 into F's arrays (see _loops for steps and whole)."""
    A, S, C, X, WT, R, bh = F.A, F.S, F.C, F.X, F.WT, F.R, F.bh
    if F.kind == "lstm":
        if whole:
            return steps.lstm_forward(A, WT[0], S, C, X, R[0], t0, t1)
        for t in range(t0, t1):
            np.matmul(S[t], WT[0], out=R[0])  # W h_{t-1}, all four gates
            steps.lstm_step(A, R[0], S, C, X, t)
    elif F.kind == "gru_after":
        if whole:
            return steps.gru_after_forward(A, WT[0], bh, S, X, R[0], t0, t1)
        for t in range(t0, t1):
            np.matmul(S[t], WT[0], out=R[0])
            steps.gru_after_step(A, R[0], bh, S, X, t)
    else:
        if whole:
            return steps.gru_before_forward(A, WT[0], WT[1], bh, S, X, R[0], R[1], t0, t1)
        for t in range(t0, t1):
            np.matmul(S[t], WT[0], out=R[0])  # W_{r,z} h_{t-1}
            steps.gru_before_step(A, R[0], bh, S, X, t)
            np.matmul(X[t], WT[1], out=R[1])  # W_n (r * h_{t-1})
            steps.gru_before_step_n(A, R[1], bh, S, t)


def forward(model, x, h0=None) -> Trace:
    """Run the network over x: a Trace with .states (T+1, H) / (N, T+1, H), .q, .o, .final.

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if
    None; for the LSTM h0 or the pair (h0, c0).
    """
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    with engine._call():
        plan = _plan(xin.T, xin.N, model.H, model.W.shape[0])
        return _forward_blocks(model, xin, state0, plan, _Memory(model.dtype))[0]


def _forward_blocks(model, xin, state0, plan, mem, then=None):
    """The forward pass a block of steps at a time (engine._plan): (trace, futures, after, A), as
    engine._forward_blocks: after each block the helper computes after(t0, t1), its outputs q_t
    and then, if given, then(trace, t0, t1), whose results the futures hold, in time order; A
    (T, N, G) the gates, which the trace's cache holds in blocks."""
    N, H, G = xin.N, model.H, model.W.shape[0]
    F = _Forward.new(model, xin, state0, mem)
    trace = F.trace(model, xin)
    steps, whole = _loops(N, H, G)

    def after(t0, t1):  # q_t = V h_t + c for t0 <= t < t1, then `then`: one task, claimed whole
        engine._matmul(F.S[t0 + 1:t1 + 1].reshape(-1, H), model.V.T, threaded=plan.threaded,
                       out=F.Q[t0:t1].reshape(-1, model.O))  # a view: Q is contiguous
        if model.c is not None:
            F.Q[t0:t1] += model.c
        return None if then is None else then(trace, t0, t1)

    blocks = plan.blocks
    done = []
    UT = _weights(model)[3] if xin.ids is not None else model.U.T  # rows gathered: contiguous
    with plan.section(), np.errstate(over="ignore", invalid="ignore"):  # finite() names an overflow
        _project(model, xin, UT, F.A, *blocks[0])
        ins = [plan.helper.submit(_project, model, xin, UT, F.A, t0, t1) for t0, t1 in blocks[1:]]
        try:
            for i, (t0, t1) in enumerate(blocks):
                if i > 0:
                    engine._claim(ins, i - 1, _project, model, xin, UT, F.A, t0, t1)
                with engine._one_blas_thread(0 if plan.threaded else N * H * G):
                    _forward_steps(F, t0, t1, steps, whole)
                done.append(plan.helper.submit(after, t0, t1))
            if then is None:  # the blocks the helper has not started, this thread does, from the end
                for i in reversed(range(len(blocks))):
                    engine._claim(done, i, after, *blocks[i])
        finally:
            engine._results(ins + ([] if then is not None else done))
    return trace, done, after, F.A


_sigmoid = activations.get("sigmoid").f


class _NumPySteps:
    """gated_kernels' step functions in NumPy (same names, arguments and results), for when the
    compiled kernels are off or missing."""

    @staticmethod
    def lstm_step(A, R, S, C, TC, t):
        H, a = S.shape[-1], A[t]
        a += R  # the pre-activations [i, f, g, o]
        a[:, :2 * H] = _sigmoid(a[:, :2 * H])
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        a[:, 3 * H:] = _sigmoid(a[:, 3 * H:])
        i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
        np.add(f * C[t], i * g, out=C[t + 1])
        np.tanh(C[t + 1], out=TC[t])
        np.multiply(o, TC[t], out=S[t + 1])

    @staticmethod
    def lstm_step_back(dS, A, C, TC, dA, dh, dc, t):
        H, d, tc = dS.shape[-1], dA[t], TC[t]
        i, f, g, o = (A[t, :, k * H:(k + 1) * H] for k in range(4))
        dh += dS[t]  # dE/dh_t: from output t, and from step t + 1
        dc += dh * o * (1 - tc * tc)  # dE/dc_t: from c_{t+1}, and from h_t
        d[:, :H] = dc * g * i * (1 - i)
        d[:, H:2 * H] = dc * C[t] * f * (1 - f)
        d[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        d[:, 3 * H:] = dh * tc * o * (1 - o)
        dc *= f  # dE/dc_{t-1} along the cell path

    @staticmethod
    def gru_after_step(A, R, bh, S, REC, t):
        H, a, hp = S.shape[-1], A[t], S[t]
        a[:, :2 * H] = _sigmoid(a[:, :2 * H] + R[:, :2 * H] + bh[:2 * H])  # r, z
        np.add(R[:, 2 * H:], bh[2 * H:], out=REC[t])  # W_n h_{t-1} + bh_n
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        np.tanh(n + r * REC[t], out=n)
        S[t + 1] = (1 - z) * n + z * hp

    @staticmethod
    def gru_after_step_back(dS, A, REC, S, dA, dR, dh, keep, t):
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
    def gru_before_step(A, R2, bh, S, REC, t):
        H, a = S.shape[-1], A[t]
        a[:, :2 * H] = _sigmoid(a[:, :2 * H] + R2 + bh[:2 * H])  # r, z
        np.multiply(a[:, :H], S[t], out=REC[t])  # r * h_{t-1}

    @staticmethod
    def gru_before_step_n(A, R1, bh, S, t):
        H, a = S.shape[-1], A[t]
        z, n = a[:, H:2 * H], a[:, 2 * H:]
        np.tanh(n + R1 + bh[2 * H:], out=n)
        S[t + 1] = (1 - z) * n + z * S[t]

    @staticmethod
    def gru_before_step_back(dS, A, S, dR, dh, keep, DN, t):
        H, d, hp = dS.shape[-1], dR[t], S[t]
        z, n = A[t, :, H:2 * H], A[t, :, 2 * H:]
        np.add(keep, dh, out=dh)
        dh += dS[t]
        d[:, 2 * H:] = DN[...] = dh * (1 - z) * (1 - n * n)
        d[:, H:2 * H] = dh * (hp - n) * z * (1 - z)
        np.multiply(dh, z, out=keep)

    @staticmethod
    def gru_before_step_r(A, S, dR, keep, DREC, RZ, t):
        H, d, r = S.shape[-1], dR[t], A[t, :, :S.shape[-1]]
        d[:, :H] = DREC * S[t] * r * (1 - r)
        keep += DREC * r
        RZ[...] = d[:, :2 * H]


# --- backward --------------------------------------------------------------------------------
def _stacked(parts):
    """The (T, N, G) array whose blocks of H columns are the arrays parts (T, N, H): the array the
    forward pass wrote them in when they are its views, else a copy (a trace of the reference)."""
    base, H = parts[0].base, parts[0].shape[-1]
    shape = parts[0].shape[:-1] + (H * len(parts),)
    if isinstance(base, np.ndarray) and base.flags.c_contiguous and base.shape == shape:
        views = (base[..., k * H:(k + 1) * H] for k in range(len(parts)))  # where the blocks would be
        if all(p.base is base and p.__array_interface__ == v.__array_interface__ for p, v in zip(parts, views)):
            return base
    return np.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class _Backward:
    """The backward loop's arrays: the forward pass's (A the gates, S, C, X as in _Forward), dS
    (T, N, H) dE_t/dh_t from output t, the step errors dA, dR (T, N, G) (one array for the LSTM and
    the reset-before GRU), the errors dh, dc, keep (N, H) carried from step to step (see
    gated_kernels), W and scratch."""
    kind: str
    dS: np.ndarray
    A: np.ndarray
    S: np.ndarray
    C: np.ndarray | None
    X: np.ndarray
    W: tuple  # (W,) or, reset before, (W_{r,z}, W_n)
    dA: np.ndarray
    dR: np.ndarray
    dh: np.ndarray
    dc: np.ndarray
    keep: np.ndarray
    scratch: tuple

    @classmethod
    def new(cls, trace, dS, mem: _Memory, gates=None):
        """The arrays for the trace; gates: its gates as one (T, N, G) array, if at hand."""
        model, kind = trace.model, _kind(trace.model)
        N, H, G = trace.inputs.N, model.H, model.W.shape[0]
        ngates = 4 if kind == "lstm" else 3
        C = np.ascontiguousarray(trace.cell_states[1]) if kind == "lstm" else None
        W = _weights(model)[1]
        dA = mem.empty("dA", dS.shape[:2] + (G,))
        dR = mem.empty("dR", dA.shape) if kind == "gru_after" else dA
        scratch = (mem.empty("DN", (N, H)), mem.empty("DREC", (N, H)), mem.empty("RZ", (N, 2 * H)))
        A = _stacked(trace.cache[:ngates]) if gates is None else gates
        return cls(kind, dS, A, np.ascontiguousarray(trace.S), C, np.ascontiguousarray(trace.cache[ngates]), W, dA,
                   dR, *(mem.zeros(k, (N, H)) for k in ("dh", "dc", "keep")), scratch)

    def state0(self):
        """dE/d(initial state): (dh,) or (dh, dc), (N, H) each, once the loop reached t = 0."""
        if self.kind == "lstm":
            return self.dh, self.dc
        return (self.dh + self.keep,)  # the GRU's step leaves its two parts apart


def _backward_steps(B: _Backward, t0, t1, steps, whole):
    """The backward steps t1-1 down to t0 (see _loops for steps and whole)."""
    dS, A, S, C, X, W, dA, dR, dh, dc, keep = B.dS, B.A, B.S, B.C, B.X, B.W, B.dA, B.dR, B.dh, B.dc, B.keep
    if B.kind == "lstm":
        if whole:
            return steps.lstm_backward(dS, A, C, X, W[0], dA, dh, dc, t0, t1)
        for t in range(t1 - 1, t0 - 1, -1):
            steps.lstm_step_back(dS, A, C, X, dA, dh, dc, t)
            np.matmul(dA[t], W[0], out=dh)  # dE/dh_{t-1} from step t
    elif B.kind == "gru_after":
        if whole:
            return steps.gru_after_backward(dS, A, X, S, W[0], dA, dR, dh, keep, t0, t1)
        for t in range(t1 - 1, t0 - 1, -1):
            steps.gru_after_step_back(dS, A, X, S, dA, dR, dh, keep, t)
            np.matmul(dR[t], W[0], out=dh)
    else:
        DN, DREC, RZ = B.scratch
        if whole:
            return steps.gru_before_backward(dS, A, S, W[0], W[1], dR, dh, keep, DN, DREC, RZ, t0, t1)
        for t in range(t1 - 1, t0 - 1, -1):
            steps.gru_before_step_back(dS, A, S, dR, dh, keep, DN, t)
            np.matmul(DN, W[1], out=DREC)  # dE/d(r * h_{t-1})
            steps.gru_before_step_r(A, S, dR, keep, DREC, RZ, t)
            np.matmul(RZ, W[0], out=dh)


class _Errors:
    """What the backward loop starts from, a block of steps at a time: dE/dq_t (dQ) and dE_t/dh_t
    from output t itself (dS)."""

    def __init__(self, model, xin, tg, scale, plan, mem: _Memory):
        self.tg, self.scale, self.threaded = tg, scale, plan.threaded
        self.dQ = mem.empty("dQ", (xin.T, xin.N, model.O))
        self.dS = mem.empty("dS", (xin.T, xin.N, model.H))

    def block(self, trace, t0, t1) -> float:
        """Fills steps t0 <= t < t1 and returns their loss."""
        model = trace.model
        loss = engine._errors(trace, self.tg, self.scale, self.dQ, t0, t1)
        engine._matmul(self.dQ[t0:t1].reshape(-1, model.O), model.V, threaded=self.threaded,
                       out=self.dS[t0:t1].reshape(-1, model.H))  # a view: dS is contiguous
        return loss


def _weight_terms(trace, dQ, dA, dR, t0, t1, threaded=False) -> dict:
    """The steps t0 <= t < t1's share of the weight gradients, by name (model.params): one product
    (or a scatter, for ids) per parameter over all of them, as core.weight_grads computes them."""
    model, xin = trace.model, trace.inputs
    H, G, O, dt = model.H, model.W.shape[0], model.O, model.dtype
    A2, R2, Q2 = dA[t0:t1].reshape(-1, G), dR[t0:t1].reshape(-1, G), dQ[t0:t1].reshape(-1, O)  # a row per step
    S = trace.S
    if xin.ids is not None:  # x_t one-hot: dU's column d sums dA_t over the steps with x_t = d
        ids = xin.ids.T[t0:t1].reshape(-1)
        kernels = engine._kernels()
        if kernels is not None:
            dUT = np.zeros((model.D, G), dtype=dt)
            kernels.scatter_rows(ids, A2, dUT)  # np.add.at, compiled
        else:
            dUT = engine._scatter_rows(ids, A2, model.D)
        dU = dUT.T
    else:
        dU = engine._matmul(A2, np.swapaxes(xin.X, 0, 1)[t0:t1].reshape(-1, model.D), tn=True, threaded=threaded)
    prev = S[t0:t1].reshape(-1, H)  # h_{t-1}, a row per step and sequence
    if _kind(model) == "gru_before":  # W_r, W_z multiply h_{t-1}; W_n multiplies rec = r * h_{t-1}
        dW = np.empty((G, H), dtype=dt)
        engine._matmul(R2[:, :2 * H], prev, tn=True, threaded=threaded, out=dW[:2 * H])
        rec = np.ascontiguousarray(trace.cache[3][t0:t1]).reshape(-1, H)
        engine._matmul(R2[:, 2 * H:], rec, tn=True, threaded=threaded, out=dW[2 * H:])
    else:
        dW = engine._matmul(R2, prev, tn=True, threaded=threaded)
    g = {"U": dU, "W": dW, "V": engine._matmul(Q2, S[t0 + 1:t1 + 1].reshape(-1, H), tn=True, threaded=threaded)}
    if model.b is not None or (model.bh is not None and dR is dA):
        g["b"] = A2.sum(axis=0)
    if model.bh is not None:
        g["bh"] = g["b"].copy() if dR is dA else R2.sum(axis=0)
    if model.c is not None:
        g["c"] = Q2.sum(axis=0)
    return {k: g[k] for k in model.params}


def _backward_full(trace, plan, errors, losses, block, mem, gates=None):
    """Full BPTT, the loop from t = T-1 down to 0 a block at a time, as engine._backward_full:
    each block once its errors are there (losses: the futures of block(t0, t1)); the helper sums
    each finished block's share of the weight gradients. mem, gates: as _Backward.new takes them."""
    model, xin = trace.model, trace.inputs
    N, H, G = xin.N, model.H, model.W.shape[0]
    B = _Backward.new(trace, errors.dS, mem, gates)
    steps, whole = _loops(N, H, G)
    terms = [None] * len(plan.blocks)
    try:
        for i in reversed(range(len(plan.blocks))):
            t0, t1 = plan.blocks[i]
            engine._claim(losses, i, block, t0, t1)
            with engine._one_blas_thread(0 if plan.threaded else N * H * G):
                _backward_steps(B, t0, t1, steps, whole)
            terms[i] = plan.helper.submit(_weight_terms, trace, errors.dQ, B.dA, B.dR, t0, t1, plan.threaded)
        for i in range(len(terms)):  # the helper works from the end; this thread from the start
            engine._claim(terms, i, _weight_terms, trace, errors.dQ, B.dA, B.dR, *plan.blocks[i], plan.threaded)
    finally:
        loss = sum(engine._results(losses))
        terms = engine._results([f for f in terms if f is not None])
    grads = terms[0] if len(terms) == 1 else {k: sum(t[k] for t in terms) for k in terms[0]}
    state0 = tuple(np.array(s if xin.batched else s[0]) for s in B.state0())  # copies: B's arrays may be kept
    return finite(trace, loss, Grads(grads, state0), errors.dQ)


def _backward_truncated(trace, tg, K, reduction):
    """The notebook's truncated BPTT, K < T: the reference's window (core.backprop_window)."""
    model, xin = trace.model, trace.inputs
    loss, dQ = engine.output_error(trace, tg, reduction)
    dS = engine._matmul(dQ.reshape(-1, model.O), model.V).reshape(xin.T, xin.N, model.H)
    dA, dR, d = backprop_window(trace, dS, K)
    grads = Grads(_weight_terms(trace, dQ, dA, dR, 0, xin.T), tuple(s if xin.batched else s[0] for s in d))
    return finite(trace, loss, grads, dQ)


@reports_overflow
def backward(trace: Trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads). See core.py's notes for truncate=K."""
    model, xin = trace.model, trace.inputs
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    with engine._call():
        if K is not None and K < xin.T:
            return _backward_truncated(trace, tg, K, reduction)
        plan = _plan(xin.T, xin.N, model.H, model.W.shape[0])
        mem = _Memory.reused(model, xin)  # the errors and the loop's arrays: none is returned
        errors = _Errors(model, xin, tg, scale, plan, mem)
        with plan.section():
            losses = [None] * len(plan.blocks)
            for i in reversed(range(len(plan.blocks))):  # from the end: the loop starts there
                losses[i] = plan.helper.submit(errors.block, trace, *plan.blocks[i])
            return _backward_full(trace, plan, errors, losses, lambda t0, t1: errors.block(trace, t0, t1), mem)


@reports_overflow
def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """Loss and gradients: (loss, grads) with grads.params by name (U, W, V, b, bh, c), .h0 and,
    for the LSTM, .c0. x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids (-1 = no loss) or
    one-hot rows, or real values for the mse head. truncate=K: the notebook's rule."""
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    with engine._call():
        plan = _plan(xin.T, xin.N, model.H, model.W.shape[0])
        mem = _Memory.reused(model, xin)  # the trace and the errors: gradients() returns none of them
        if K is not None and K < xin.T:
            return _backward_truncated(_forward_blocks(model, xin, state0, plan, mem)[0], tg, K, reduction)
        errors = _Errors(model, xin, tg, scale, plan, mem)
        with plan.section():  # the errors of each block are computed while the forward loop goes on
            trace, losses, block, gates = _forward_blocks(model, xin, state0, plan, mem, then=errors.block)
            return _backward_full(trace, plan, errors, losses, block, mem, gates)


@reports_overflow
def loss(model, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (a forward pass)."""
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    tg = validate.targets(model, y, xin)
    heads.check_reduction(reduction)
    with engine._call():
        plan = _plan(xin.T, xin.N, model.H, model.W.shape[0])
        trace = _forward_blocks(model, xin, state0, plan, _Memory.reused(model, xin))[0]  # not returned
        value = engine.output_error(trace, tg, reduction)[0]
        if not np.isfinite(value):
            raise FloatingPointError(nonfinite_message(trace))
    return value
