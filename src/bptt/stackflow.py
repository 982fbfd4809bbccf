"""The per-output decomposition of a stack's gradient, layer by layer: bptt.flow for a bptt.Stack.

Conventions (one sequence; T time; every table indexed [t, s] in time order):
- E_t is output t's error. h_s^(k, j) is layer k's hidden output at time s in direction j (0
  forward, 1 reverse). dE_dh[k][j][t, s] = ||dE_t/dh_s^(k, j)||, the whole error that output t puts
  on that state: through the layers above and through the layer's own later steps (its earlier ones
  in time for a reverse direction). A forward-only stack's tables are zero above the diagonal
  (s > t); a reverse direction's are zero below it, and in the layers under a bidirectional one
  both halves fill in.
- crossing[k][t, s] = ||dE_t/dx_s^(k)||, the error that output t sends out of layer k through its
  input at time s: what crosses from layer k down to layer k - 1's outputs (both directions side by
  side). Layer 0's is there for dense inputs only (None for ids).
All outputs' errors go back together: one backward pass of the stack's recurrence (stack.backprop)
with a leading axis of T sources, output t's error on row t, so a table costs one pass with T rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import heads, validate
from .stack import backprop, forward


@dataclass(frozen=True, eq=False)
class StackFlow:
    """dE_dh[k][j] and crossing[k], (T, T) tables (the module's notes); dQ (T, O) the output errors;
    loss; trace the stack's forward trace."""

    trace: object
    dQ: np.ndarray
    dE_dh: list
    crossing: list
    loss: float

    @property
    def T(self) -> int:
        return self.dQ.shape[0]

    def table(self, layer, reverse=False) -> np.ndarray:
        """dE_dh of one layer and direction: (T, T), [t, s] = ||dE_t/dh_s||."""
        k = validate.integer("layer", layer, 0, len(self.dE_dh) - 1)
        if reverse and len(self.dE_dh[k]) < 2:
            raise ValueError(f"layer {k} has one direction: reverse=True needs a bidirectional layer")
        return self.dE_dh[k][1 if reverse else 0]

    def by_lag(self, layer, reverse=False) -> np.ndarray:
        """The mean of ||dE_t/dh_s|| over the outputs t, by lag t - s >= 0 (s - t for a reverse
        direction): (T,)."""
        tab = self.table(layer, reverse)
        T = self.T
        return np.array([np.mean(np.diagonal(tab, -lag if not reverse else lag)) for lag in range(T)])


def flow(stack, x, y, *, h0=None) -> StackFlow:
    """Decompose the gradient of one sequence x (T,) ids or (T, D) dense, targets y, through every
    layer of the stack: StackFlow with per-layer (T, T) tables."""
    stack.check_finite()
    xin = validate.inputs(stack, x)
    if xin.batched:
        raise ValueError(f"flow takes one sequence, got a batch of {xin.N}: call it for each sequence")
    tg = validate.targets(stack, y, xin)
    widest = max(m.cell.width(m) for _, _, m in stack.entries)
    validate.too_big(f"a stack's flow over T = {xin.T} steps (T x T errors per layer)", xin.T * xin.T * widest)
    trace = forward(stack, x, h0)
    loss, dQ = heads.error(stack.head, trace.Q, tg)  # dQ (T, 1, O)
    T = xin.T
    with np.errstate(over="ignore", invalid="ignore"):
        dY = np.zeros((T, T, 1, stack.V.shape[1]), dtype=stack.dtype)  # (time, source t, N = 1, out)
        dY[np.arange(T), np.arange(T), 0] = dQ[:, 0] @ stack.V
        errors, crossing = backprop(trace, dY, states=True)
    dE_dh = [[_table(e.dS[0], j) for j, e in enumerate(pair)] for pair in errors]
    cross = [None if c is None else _table(c, 0) for c in crossing]
    if not (np.isfinite(loss) and all(np.isfinite(t).all() for row in dE_dh for t in row)):
        from .stack import nonfinite_message
        raise FloatingPointError(nonfinite_message(trace, errors))
    return StackFlow(trace, dQ[:, 0], dE_dh, cross, float(loss))


def _table(a, j):
    """(T own, T sources, 1, H) errors -> (T, T) norms [t source, s time]."""
    norms = np.sqrt(np.einsum("tsnh,tsnh->st", a, a))  # (source, own step)
    return norms[:, ::-1] if j else norms
