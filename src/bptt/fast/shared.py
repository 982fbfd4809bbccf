"""The parts of the fast backend's computation that do not depend on the cell: the inputs' part
U x_t + b, the output errors (softmax cross-entropy or mse) with dE_t/ds_t, and the weight
gradients' products for dU, dV, db, dc. The driver calls them a block of steps at a time.

Conventions are core.py's: arrays time-major, N batch, T time, D input, H hidden, O output,
G = the columns of a step's input part (H for the Elman cell, 4H for the LSTM, 3H for the GRU,
2H for an LRU, whose two input parameters B_re and B_im are stacked by rows: Cell.stacked); the
outputs read the state's first entry, H' = out(H) wide (2H for an LRU, H for the others).
"""
from __future__ import annotations

import numpy as np

from .. import heads, validate
from ..core import backprop_window
from . import runtime


def project(xin, UT, bias, A, t0, t1):
    """A[t] = U x_t + bias for t0 <= t < t1, in place: a gather of the rows of UT = U^T (D, G)
    (U's columns) for ids, else one product; bias (G,) or None."""
    if xin.ids is not None:
        # mode="clip" writes straight into out (the ids are checked already: nothing is clipped)
        np.take(UT, xin.ids.T[t0:t1], axis=0, out=A[t0:t1], mode="clip")
    else:
        X = np.swapaxes(xin.X[:, t0:t1], 0, 1).reshape(-1, UT.shape[0])  # time-major rows (a copy)
        runtime.matmul(X, UT, threaded=True, out=A[t0:t1].reshape(-1, UT.shape[1]))  # in halves within halves()
    if bias is not None:
        A[t0:t1] += bias


def output_error(trace, tg: validate.Targets, reduction="sum"):
    """The loss E and dE/dq_t for every step: (loss, dQ (T, N, O)). Unscored steps get zero."""
    dQ = np.empty_like(trace.Q)
    return block_errors(trace, tg, heads.scale(tg, reduction), dQ, 0, trace.inputs.T), dQ


def block_errors(trace, tg, scale, dQ, t0, t1) -> float:
    """Writes dE/dq_t into dQ[t0:t1] and returns the loss of the steps t0 <= t < t1."""
    Q = trace.Q[t0:t1]
    if trace.model.head == "mse":
        err = (Q - np.swapaxes(tg.values, 0, 1)[t0:t1]) * tg.mask.T[t0:t1, :, None]  # (t1-t0, N, O)
        np.multiply(err, 2 * scale, out=dQ[t0:t1])
        return float((err * err).sum() * scale)
    O = trace.model.O
    rows = Q.reshape(-1, O)  # ((t1-t0)*N, O)
    ids = np.ascontiguousarray(tg.ids.T[t0:t1]).reshape(-1)  # -1 where unscored
    P = dQ[t0:t1].reshape(-1, O)  # a view: dQ is contiguous
    numerics = runtime.kernels()
    if numerics is not None:  # softmax_error below, compiled: a dozen NumPy calls become one pass a row
        return float(numerics.softmax_error(rows, ids, scale, P))
    return softmax_error(rows, ids, scale, P)


def softmax_error(Q, ids, scale, P):
    """Writes P = scale (o_r - onehot(y_r)) for the rows r of Q (zero where ids[r] = -1) and
    returns the loss -scale sum_r log o_r[y_r], with o_r = exp(q_r - m_r) / sum exp(q_r - m_r),
    m_r = max q_r (stable). The targets are picked by flat index: take_along_axis and
    put_along_axis cost tens of microseconds of Python each, the whole budget at small sizes."""
    m = Q.max(axis=1, keepdims=True)  # (R, 1)
    np.subtract(Q, m, out=P)
    np.exp(P, out=P)
    total = P.sum(axis=1, keepdims=True)  # (R, 1)
    scored = ids >= 0
    every = bool(scored.all())
    r = np.arange(Q.shape[0]) if every else np.flatnonzero(scored)  # rows with a loss
    y = ids[r]
    loss = -float((Q[r, y] - m[r, 0] - np.log(total[r, 0])).sum() * scale)  # -log o_t[y_t]
    P /= total  # o_t
    P[r, y] -= 1  # o_t - onehot(y_t)
    if not every:
        P[~scored] = 0
    if scale != 1.0:
        P *= scale
    return loss


class Errors:
    """What the backward loop starts from, a block of steps at a time: dE/dq_t (dQ, (T, N, O)) and
    dE_t/ds_t from output t itself (dS, (T, N, H'))."""

    def __init__(self, model, xin, tg, scale, threaded, mem):
        self.tg, self.scale, self.threaded = tg, scale, threaded
        self.dQ = mem.empty("dQ", (xin.T, xin.N, model.O))
        self.dS = mem.empty("dS", (xin.T, xin.N, model.params["V"].shape[1]))

    def block(self, trace, t0, t1) -> float:
        """Fills steps t0 <= t < t1 and returns their loss."""
        model = trace.model
        loss = block_errors(trace, self.tg, self.scale, self.dQ, t0, t1)
        runtime.matmul(self.dQ[t0:t1].reshape(-1, model.O), model.params["V"], threaded=self.threaded,
                       out=self.dS[t0:t1].reshape(-1, self.dS.shape[-1]))  # a view: dS is contiguous
        return loss


def scatter_rows(ids, rows, D):
    """sum of rows[i] over the i with ids[i] = d, for d = 0..D-1: (D, G).

    np.add.at does this one element at a time; sorting the ids once and summing each run of equal
    ids with np.add.reduceat is several times faster and independent of D.
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((D, rows.shape[1]), dtype=rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def weight_terms(trace, dQ, dA, t0, t1, threaded=False) -> dict:
    """The steps t0 <= t < t1's share of dU, dV and, where the model has them, db and dc, by name
    (U and b: the parameters with the roles "input" and "input bias", each its rows of dA): one
    product (or a scatter, for ids) for all the steps. dA (T, N, G): the errors of the steps'
    input parts; dQ (T, N, O) the outputs', or None for a layer without a head (no dV, dc). For ids, db sums dU's D columns where they are fewer than the T N rows of dA
    (every row of dA goes into exactly one column of dU)."""
    model, xin = trace.model, trace.inputs
    G = dA.shape[-1]
    A2 = dA[t0:t1].reshape(-1, G)  # a row per step and sequence
    if xin.ids is not None:  # x_t one-hot: dU's column d sums dA_t over the steps with x_t = d
        ids = xin.ids.T[t0:t1].reshape(-1)
        numerics = runtime.kernels()
        if numerics is not None:
            dUT = np.zeros((model.D, G), dtype=model.dtype)
            numerics.scatter_rows(ids, A2, dUT)  # np.add.at, compiled
        else:
            dUT = scatter_rows(ids, A2, model.D)
        dU, summed = dUT.T, dUT if model.D < A2.shape[0] else A2
    else:
        dU = runtime.matmul(A2, np.swapaxes(xin.X, 0, 1)[t0:t1].reshape(-1, model.D), tn=True, threaded=threaded)
        summed = A2
    g, db = {}, None
    if dQ is not None:  # the head's (a layer of a stack has none)
        S, Q2 = trace.S[t0 + 1:t1 + 1], dQ[t0:t1].reshape(-1, model.O)
        g["V"] = runtime.matmul(Q2, S.reshape(-1, S.shape[-1]), tn=True, threaded=threaded)
        if "c" in model.params:
            g["c"] = Q2.sum(axis=0)
    for name, role, rows in runtime.prepared(model, input_rows):
        if role == "input":
            g[name] = dU[rows]
        else:
            db = summed.sum(axis=0) if db is None else db
            g[name] = db[rows]
    return g


def input_rows(model) -> tuple:
    """(name, role, rows) of the model's parameters with the roles "input" and "input bias": the
    rows of the step's input part each makes (Cell.rows); found once per model."""
    cell = model.cell
    return tuple((name, p.role, cell.rows(model, name)) for name, p in cell.params.items()
                 if name in model.params and p.role in ("input", "input bias"))


class Gated:
    """What the adapters of the cells whose step is one product for all the gates share."""

    pipelines = staticmethod(runtime.gated_pipelines)
    splits = True  # a large batch outside the pipeline runs as parts on this thread and the helper
    # (driver.py): each part's chain of steps is one core's work, where one chain would leave the
    # second core idle

    @staticmethod
    def step_work(model, N):
        """W h_{t-1} for all the gates: N H G multiply-adds."""
        return N * model.H * model.W.shape[0]

    @staticmethod
    def truncated(trace, dS, K):
        """The notebook's window: the reference's (core.backprop_window) on the trace."""
        return backprop_window(trace, dS, K)
