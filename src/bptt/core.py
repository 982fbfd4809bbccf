"""Forward propagation and backpropagation through time (BPTT), full or truncated.

Conventions (N batch, T time, H hidden; arrays are time-major inside, (T, N, ...)):
- states hold s_{-1} = h0, s_0, ..., s_{T-1}; the step-t quantities are z_t, s_t, q_t, E_t.
- dX means dE/dX. delta_t = dE/dz_t is the error at step t; a step's weight-gradient term is
  delta_t s_{t-1}^T for W, delta_t x_t^T for U, delta_t for b.
- truncate=K is the notebook's rule (bptt_truncate in its source): the error of output t flows
  back to steps t-K, ..., t only, K+1 terms, so K = 0 still keeps the step's own term. The
  gradient with respect to h0 = s_{-1}, the state before step 0, takes the error of outputs t
  whose window reaches it, t - K <= -1. truncate=None is full BPTT; any K >= T equals it exactly.
- the loss is summed over time and batch (the notebook's and min-char-rnn's convention);
  reduction="mean" divides by the number of scored steps.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from . import activations, validate
from .model import RNN


@dataclass(frozen=True, eq=False)
class Trace:
    """What the forward pass keeps. Time-major arrays inside; properties give the public shapes."""

    model: RNN
    inputs: validate.Inputs
    S: np.ndarray  # (T+1, N, H): s_{-1}, s_0, ..., s_{T-1}
    Z: np.ndarray  # (T, N, H): pre-activations z_t
    Q: np.ndarray  # (T, N, O): outputs q_t (logits for the softmax head)

    def _public(self, a):  # (T', N, ...) -> (N, T', ...) for a batch, (T', ...) for one sequence
        a = np.swapaxes(a, 0, 1)
        return a if self.inputs.batched else a[0]

    @property
    def states(self):
        """s_{-1}, s_0, ..., s_{T-1}: (T+1, H), or (N, T+1, H) for a batch."""
        return self._public(self.S)

    @property
    def z(self):
        """Pre-activations z_t: (T, H) or (N, T, H)."""
        return self._public(self.Z)

    @property
    def q(self):
        """Outputs q_t = V s_t + c: (T, O) or (N, T, O)."""
        return self._public(self.Q)

    @property
    def o(self):
        """Probabilities o_t = softmax(q_t) (softmax head): (T, O) or (N, T, O)."""
        return np.exp(self._public(log_softmax(self.Q)))

    @property
    def final(self):
        """The last state s_{T-1}, to carry into the next chunk as h0: (H,) or (N, H)."""
        return self.S[-1] if self.inputs.batched else self.S[-1, 0]


@dataclass(frozen=True, eq=False)
class Grads:
    """dE/d(parameter) with the model's names; b and c are None where the model has no such bias.

    h0 is dE/ds_{-1}: (H,), or (N, H) for a batch.
    """

    U: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray | None
    c: np.ndarray | None
    h0: np.ndarray

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("U", "W", "V", "b", "c") if getattr(self, k) is not None}


def log_softmax(q):
    m = q.max(axis=-1, keepdims=True)
    return q - m - np.log(np.exp(q - m).sum(axis=-1, keepdims=True))


def input_projection(model: RNN, xin: validate.Inputs) -> np.ndarray:
    """U x_t + b for every step at once: (T, N, H). For ids, a gather of U's columns."""
    if xin.ids is not None:
        UX = model.U.T[xin.ids.T]  # (T, N, H)
    else:
        UX = (xin.X.reshape(-1, model.D) @ model.U.T).reshape(xin.N, xin.T, model.H).swapaxes(0, 1)
        UX = np.ascontiguousarray(UX)  # (T, N, H): one large product, then time-major
    if model.b is not None:
        UX += model.b
    return UX


def forward(model: RNN, x, h0=None) -> Trace:
    """Run the RNN over x; returns a Trace with .states (T+1, H) / (N, T+1, H), .z, .q, .o, .final.

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if None.
    """
    model.check_finite()
    xin = validate.inputs(model, x)
    return _forward(model, xin, validate.initial_state(model, h0, xin))


# Speed: at small N * H the time goes into NumPy's per-call overhead (about a microsecond a call),
# so the loops below make three calls per step, allocate nothing and write into preallocated
# buffers with out=. Where Numba is installed (the `fast` extra) and the per-step products are
# small, the same loops run compiled (kernels.py, written step for step like the loops here),
# which removes the per-call overhead altogether; results agree to rounding.
ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}  # kernels.py's activation codes
COMPILED_MAX_WORK = 1 << 17  # N * H * H multiply-adds per step up to which the compiled loop wins
_compiled = {"enabled": os.environ.get("BPTT_COMPILED", "1") != "0", "kernels": None, "blas": None}


def set_compiled(enabled: bool) -> bool:
    """Use the compiled inner loops (Numba, `pip install 'bptt[fast]'`) where they are faster.

    Returns the previous setting. Off, or without Numba, everything runs in NumPy; the two agree
    to rounding. The environment variable BPTT_COMPILED=0 turns them off at start-up.
    """
    previous = _compiled["enabled"]
    _compiled["enabled"] = bool(enabled)
    return previous


def _kernels(N=1, H=1):
    """kernels.py when it is enabled, importable and faster for this size, else None."""
    if not _compiled["enabled"] or N * H * H > COMPILED_MAX_WORK:
        return None
    if _compiled["kernels"] is None:
        try:
            from . import kernels  # imports Numba: lazily, on the first call that can use it
        except ImportError:
            kernels = False
        _compiled["kernels"] = kernels
    return _compiled["kernels"] or None


COMPILED_MAX_SOFTMAX = 1 << 14  # T*N*O up to which the compiled softmax error wins (NumPy's exp is SIMD)
ONE_THREAD_MAX_PRODUCT = 1 << 22  # multiply-adds per product below which BLAS gets one thread


def _one_blas_thread(work):
    """A context in which BLAS runs on one thread when a product has fewer than
    ONE_THREAD_MAX_PRODUCT multiply-adds (threadpoolctl, in the `fast` extra), else a no-op.

    Small products are not worth splitting, yet OpenBLAS splits them over its threads and waits
    for all of them at every call, at every time step in the loops. Measured on 2 cores: on a
    quiet machine one thread is faster below about 2^22 multiply-adds, two above; on a busy one
    the wait can cost many times the product (a forward pass with N = 64, T = 200, H = 256 took
    6.5 s on two threads against 0.38 s on one).
    """
    if work < 1 << 18 or work >= ONE_THREAD_MAX_PRODUCT:  # below 2^18 OpenBLAS uses one thread itself
        return contextlib.nullcontext()
    if _compiled["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
            _compiled["blas"] = ThreadpoolController()
        except ImportError:
            _compiled["blas"] = False
    blas = _compiled["blas"]
    return blas.limit(limits=1, user_api="blas") if blas else contextlib.nullcontext()


def _matmul(A, B, tn=False):
    """A @ B, or A^T @ B when tn, for the products over all steps: small ones on one BLAS thread,
    large ones on all (see _one_blas_thread)."""
    with _one_blas_thread(A.shape[0] * A.shape[1] * B.shape[1]):
        return A.T @ B if tn else A @ B


# f(z, out=s) for the activations that have such a form, so the NumPy loop allocates nothing
_F_INTO = {
    "tanh": np.tanh,
    "relu": lambda z, out: np.maximum(z, 0, out=out),
    "identity": lambda z, out: np.copyto(out, z),
}


def _forward(model, xin, h0):
    T, N, H = xin.T, xin.N, model.H
    f = activations.get(model.activation).f
    f_into = _F_INTO.get(model.activation)
    if model.activation == "tanh" and model.dtype == np.float64 and _kernels() is not None:
        f_into = _kernels().tanh_rows  # a third of np.tanh's time (float32's np.tanh is fast): kernels.py
    Z = input_projection(model, xin)  # (T, N, H), becomes z_t in place
    S = np.empty((T + 1, N, H), dtype=model.dtype)
    S[0] = h0
    WT = model.W.T
    kernels = _kernels(N, H)
    if kernels is not None:  # the loop below, compiled
        kernels.forward_steps(Z, S, np.ascontiguousarray(WT), ACT_CODES[model.activation])
    else:
        with _one_blas_thread(N * H * H):
            for t in range(T):
                s_prev, s, z = S[t], S[t + 1], Z[t]  # (N, H) views
                np.matmul(s_prev, WT, out=s)  # W s_{t-1}, parked in s_t's row until f(z_t) overwrites it
                z += s  # z_t = U x_t + b + W s_{t-1}
                if f_into is not None:
                    f_into(z, s)  # s_t = f(z_t)
                else:
                    s[...] = f(z)
    Q = _matmul(S[1:].reshape(T * N, H), model.V.T).reshape(T, N, model.O)  # one product for all steps
    if model.c is not None:
        Q += model.c
    return Trace(model, xin, S, Z, Q)


def output_error(trace: Trace, tg: validate.Targets, reduction="sum"):
    """The loss E and dE/dq_t for every step: (loss, dQ (T, N, O)). Unscored steps get zero."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    mask = tg.mask.T  # (T, N)
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / max(int(mask.sum()), 1)
    if trace.model.head == "mse":
        err = (trace.Q - np.swapaxes(tg.values, 0, 1)) * mask[..., None]  # (T, N, O)
        return float((err * err).sum() * scale), (2 * scale) * err
    # softmax, stable: o_t = exp(q_t - m_t) / sum exp(q_t - m_t) with m_t = max q_t. Rows are
    # flattened to (T*N, O) and the targets picked by flat index: take_along_axis/put_along_axis
    # cost tens of microseconds of Python each, which is the whole budget at small sizes.
    O = trace.model.O
    Q = trace.Q.reshape(-1, O)  # (T*N, O)
    kernels = _kernels() if Q.size <= COMPILED_MAX_SOFTMAX else None
    if kernels is not None:  # the lines below, compiled: a dozen NumPy calls become one
        P = np.empty_like(Q)
        loss = kernels.softmax_error(Q, np.ascontiguousarray(tg.ids.T).reshape(-1), scale, P)
        return float(loss), P.reshape(trace.Q.shape)
    m = Q.max(axis=1, keepdims=True)  # (T*N, 1)
    P = np.subtract(Q, m)  # a new array: becomes the probabilities, then dQ
    np.exp(P, out=P)
    total = P.sum(axis=1, keepdims=True)  # (T*N, 1)
    scored = mask.all()
    rows = slice(None) if scored else np.flatnonzero(mask)  # rows with a loss
    r = np.arange(Q.shape[0]) if scored else rows
    ids = tg.ids.T.reshape(-1)[rows]
    loss = -float((Q[r, ids] - m[rows, 0] - np.log(total[rows, 0])).sum() * scale)  # -log o_t[y_t]
    P /= total  # o_t
    P[r, ids] -= 1  # o_t - onehot(y_t)
    if not scored:
        P[~mask.reshape(-1)] = 0
    if scale != 1.0:
        P *= scale
    return loss, P.reshape(trace.Q.shape)


def backward(trace: Trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads). See the module's notes for truncate=K."""
    model, xin = trace.model, trace.inputs
    tg = validate.targets(model, y, xin)
    K = _truncation(truncate)
    loss, dQ = output_error(trace, tg, reduction)
    return loss, _backward(trace, dQ, K)


def _truncation(truncate):
    if truncate is None:
        return None
    if isinstance(truncate, bool) or int(truncate) != truncate or truncate < 0:
        raise ValueError(f"truncate must be None (full BPTT) or an integer K >= 0, got {truncate!r}")
    return int(truncate)


def _df(model, S):
    """f'(z_t) from s_t for every step, (T, N, H), a new array (the backward pass overwrites it)."""
    if model.activation == "tanh":  # 1 - s^2 in two passes and one allocation instead of three
        d = np.multiply(S[1:], S[1:])
        return np.subtract(1.0, d, out=d)
    return np.array(activations.get(model.activation).df_from_output(S[1:]), dtype=model.dtype)


def _backward(trace: Trace, dQ, K):
    model, xin = trace.model, trace.inputs
    S, T, N, H = trace.S, xin.T, xin.N, model.H
    dS = _matmul(dQ.reshape(T * N, -1), model.V).reshape(T, N, H)  # dE_t/ds_t from output t itself
    dZ = _df(model, S)  # (T, N, H): ds_t/dz_t, turned into delta_t = dE/dz_t in place
    W = model.W
    kernels = _kernels(N, H)
    if (K is None or K >= T) and kernels is not None:  # the loop below, compiled
        dh0 = np.zeros((N, H), dtype=model.dtype)
        kernels.backward_steps(dS, dZ, W, dh0)
    elif K is None or K >= T:
        dh = np.zeros((N, H), dtype=model.dtype)  # dE/ds_t from the steps after t
        with _one_blas_thread(N * H * H):
            for t in range(T - 1, -1, -1):
                ds, dz = dS[t], dZ[t]  # (N, H) views
                ds += dh  # dE/ds_t: from output t, and from step t + 1 through W
                dz *= ds  # delta_t = dE/ds_t * f'(z_t)
                np.matmul(dz, W, out=dh)  # dE/ds_{t-1} from step t
        dh0 = dh
    else:
        df = dZ.copy()
        # G[j] is dE_{t+j}/ds_t, the error of output t + j at step t, for j = 0..K (the window)
        G = np.zeros((K + 1, N, H), dtype=model.dtype)
        for t in range(T - 1, -1, -1):
            G[1:] = G[:-1] @ W if t < T - 1 else 0  # outputs t+1..t+K reach s_t; t+K+1 stops at t+1
            G[0] = dS[t]
            G *= df[t]  # now dE_{t+j}/dz_t
            G.sum(axis=0, out=dZ[t])
        dh0 = G[:-1].sum(axis=0) @ W  # outputs 0..K-1 reach s_{-1}
    return _weight_grads(trace, dQ, dZ, dh0)


def _scatter_rows(ids, rows, D):
    """sum of rows[i] over the i with ids[i] = d, for d = 0..D-1: (D, H).

    np.add.at does this one element at a time; sorting the ids once and summing each run of equal
    ids with np.add.reduceat is several times faster and independent of D.
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((D, rows.shape[1]), dtype=rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def _weight_grads(trace, dQ, dZ, dh0):
    """Sum every step's term at once: one matrix product per parameter instead of T."""
    model, xin = trace.model, trace.inputs
    H, O = model.H, model.O
    dZ2 = dZ.reshape(-1, H)  # (T*N, H)
    dW = _matmul(dZ2, trace.S[:-1].reshape(-1, H), tn=True)  # sum_t delta_t s_{t-1}^T
    dV = _matmul(dQ.reshape(-1, O), trace.S[1:].reshape(-1, H), tn=True)  # sum_t dq_t s_t^T
    if xin.ids is not None:
        kernels = _kernels()
        ids = xin.ids.T.reshape(-1)  # (T*N,)
        if kernels is not None:
            dUT = np.zeros((model.D, H), dtype=model.dtype)
            kernels.scatter_rows(ids, dZ2, dUT)  # np.add.at, compiled
        else:
            dUT = _scatter_rows(ids, dZ2, model.D)
        dU = dUT.T  # column d sums delta_t over the steps with x_t = d
    else:
        dU = dZ2.T @ np.swapaxes(xin.X, 0, 1).reshape(-1, model.D)
    db = dZ2.sum(axis=0) if model.b is not None else None
    dc = dQ.reshape(-1, O).sum(axis=0) if model.c is not None else None
    return Grads(U=dU, W=dW, V=dV, b=db, c=dc, h0=dh0 if xin.batched else dh0[0])


def gradients(model: RNN, x, y, *, truncate=None, h0=None, reduction="sum"):
    """Loss and gradients: (loss, grads) with grads.U, .W, .V, .b, .c (None without biases), .h0.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids (-1 = no loss) or one-hot rows, or
    real values for the mse head. truncate=K: the notebook's rule (output t reaches steps t-K..t).
    """
    return backward(forward(model, x, h0), y, truncate=truncate, reduction=reduction)


def loss(model: RNN, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (a forward pass)."""
    trace = forward(model, x, h0)
    return output_error(trace, validate.targets(model, y, trace.inputs), reduction)[0]
