"""The output heads: the loss of each step and its error dE/dq_t, in one place for every engine.

    head "softmax"   o_t = softmax(q_t),  E_t = -log o_t[y_t],   dE_t/dq_t = o_t - onehot(y_t)
    head "mse"       E_t = ||q_t - y_t||^2,                      dE_t/dq_t = 2 (q_t - y_t)

Unscored steps (target id -1, or an all-NaN target row) have E_t = 0 and dE_t/dq_t = 0. The loss
is summed over time and batch; reduction="mean" divides by the number of scored steps.
Arrays are time-major: Q (T, N, O); targets (validate.Targets) are batch-major, (N, T).
"""
from __future__ import annotations

import numpy as np

from .validate import show

REDUCTIONS = ("sum", "mean")


def log_softmax(q):
    """log softmax(q) over the last axis, stable (log-sum-exp)."""
    m = q.max(axis=-1, keepdims=True)
    return q - m - np.log(np.exp(q - m).sum(axis=-1, keepdims=True))


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {show(reduction)}")
    return reduction


def scale(tg, reduction) -> float:
    """The factor every step's loss is multiplied by: 1 for "sum", 1 / (scored steps) for "mean"."""
    check_reduction(reduction)
    return 1.0 if reduction == "sum" else 1.0 / max(int(tg.mask.sum()), 1)


def step_losses(head, Q, tg) -> np.ndarray:
    """E_t of every step and sequence, unscaled: (T, N); zero where unscored."""
    mask = tg.mask.T  # (T, N)
    if head == "mse":
        err = (Q - np.swapaxes(tg.values, 0, 1)) * mask[..., None]
        return (err * err).sum(axis=-1)
    picked = np.take_along_axis(log_softmax(Q), np.maximum(tg.ids.T, 0)[..., None], axis=-1)[..., 0]
    return -picked * mask


def error(head, Q, tg, reduction="sum"):
    """(E, dQ): the scaled loss and dE/dq_t for every step, dQ (T, N, O) like Q."""
    s = scale(tg, reduction)
    mask = tg.mask.T[..., None].astype(Q.dtype)  # (T, N, 1)
    if head == "mse":
        dQ = 2 * s * (Q - np.swapaxes(tg.values, 0, 1).astype(Q.dtype)) * mask
    else:
        dQ = _softmax_error(Q, tg) * (s * mask)
    return float(step_losses(head, Q, tg).sum() * s), dQ


def _softmax_error(Q, tg):
    """o_t - onehot(y_t) for every step, before the mask: (T, N, O)."""
    P = np.exp(log_softmax(Q))
    y = np.maximum(tg.ids.T, 0)[..., None]  # (T, N, 1); unscored steps are masked by the caller
    np.put_along_axis(P, y, np.take_along_axis(P, y, axis=-1) - 1, axis=-1)
    return P
