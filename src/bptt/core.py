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
        UX = np.swapaxes(xin.X, 0, 1) @ model.U.T  # (T, N, H)
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


def _forward(model, xin, h0):
    f = activations.get(model.activation).f
    T, N, H = xin.T, xin.N, model.H
    Z = input_projection(model, xin)  # (T, N, H), becomes z_t in place
    S = np.empty((T + 1, N, H), dtype=model.dtype)
    S[0] = h0
    WT = model.W.T
    for t in range(T):
        Z[t] += S[t] @ WT  # z_t = U x_t + b + W s_{t-1}
        S[t + 1] = f(Z[t])  # s_t = f(z_t)
    Q = S[1:] @ model.V.T  # (T, N, O)
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
    logp = log_softmax(trace.Q)  # (T, N, O), stable: log-sum-exp
    ids = tg.ids.T  # (T, N)
    picked = np.take_along_axis(logp, np.maximum(ids, 0)[..., None], axis=-1)[..., 0]
    loss = -float((picked * mask).sum() * scale)
    dQ = np.exp(logp)  # a new array: the probabilities are never changed in place
    np.put_along_axis(dQ, np.maximum(ids, 0)[..., None],
                      np.take_along_axis(dQ, np.maximum(ids, 0)[..., None], axis=-1) - 1, axis=-1)
    dQ *= mask[..., None] * scale  # o_t - onehot(y_t) on scored steps
    return loss, dQ


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


def _backward(trace: Trace, dQ, K):
    model, xin = trace.model, trace.inputs
    S, T, N, H = trace.S, xin.T, xin.N, model.H
    df = activations.get(model.activation).df_from_output(S[1:])  # (T, N, H): ds_t/dz_t
    dS = dQ @ model.V  # (T, N, H): dE_t/ds_t from output t itself
    dZ = np.empty_like(dS)  # (T, N, H): delta_t = dE/dz_t
    W = model.W
    if K is None or K >= T:
        dh = np.zeros((N, H), dtype=model.dtype)  # dE/ds_t from the steps after t
        for t in range(T - 1, -1, -1):
            dZ[t] = (dS[t] + dh) * df[t]  # delta_t
            dh = dZ[t] @ W  # dE/ds_{t-1}
        dh0 = dh
    else:
        # G[j] is dE_{t+j}/ds_t, the error of output t + j at step t, for j = 0..K (the window)
        G = np.zeros((K + 1, N, H), dtype=model.dtype)
        for t in range(T - 1, -1, -1):
            G[1:] = G[:-1] @ W if t < T - 1 else 0  # outputs t+1..t+K reach s_t; t+K+1 stops at t+1
            G[0] = dS[t]
            G *= df[t]  # now dE_{t+j}/dz_t
            dZ[t] = G.sum(axis=0)
        dh0 = G[:-1].sum(axis=0) @ W  # outputs 0..K-1 reach s_{-1}
    return _weight_grads(trace, dQ, dZ, dh0)


def _weight_grads(trace, dQ, dZ, dh0):
    """Sum every step's term at once: one matrix product per parameter instead of T."""
    model, xin = trace.model, trace.inputs
    H, O = model.H, model.O
    dZ2 = dZ.reshape(-1, H)  # (T*N, H)
    dW = dZ2.T @ trace.S[:-1].reshape(-1, H)  # sum_t delta_t s_{t-1}^T
    dV = dQ.reshape(-1, O).T @ trace.S[1:].reshape(-1, H)  # sum_t dq_t s_t^T
    if xin.ids is not None:
        dU = np.zeros((model.D, H), dtype=model.dtype)  # built transposed: rows are U's columns
        np.add.at(dU, xin.ids.T.reshape(-1), dZ2)
        dU = dU.T
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
