"""The exact bias of truncated gradients: every window K at once, and TBPTT(k1, k2), from the terms.

Conventions (bptt.flow's and bptt.train.tbptt's; N batch, T time, G = gates * H):
- term (t, k) is step k's part of the error of output t: its errors dE_t/da_k, dE_t/dr_k of the
  step's input and recurrent parts, mapped to the parameters as core.weight_grads does. Its lag is
  l = t - k. The initial state's term of output t is dE_t/dstate_{-1}, at lag t + 1.
- the notebook's window K (truncate=K) keeps the terms with lag l <= K and the initial state's
  terms with t + 1 <= K; TBPTT(k1, k2) keeps the terms kept_terms(T, k1=k1, k2=k2) marks and the
  initial state's terms of the outputs whose update window starts at step 0 (their term (t, 0) is
  kept), as summing bptt.train.tbptt_gradients' blocks over a stream with fixed weights gives.
  The head (V, c) has no terms over time: every rule gets its gradient exactly.
- the bias of a rule with gradient g_R against the full gradient g, per parameter and for all
  parameters together ("all"): the relative error ||g_R - g|| / ||g|| and the cosine
  g_R . g / (||g_R|| ||g||) (1 when both are zero, nan when one is).

All outputs' errors go back through the engine's recurrence (core.backprop) together, one row per
output (rows = outputs, as bptt.flow does), in chunks of outputs that fit a memory budget; the
per-lag sums of a chunk are read off its diagonals, one core.weight_grads call per lag. That is
O(T^2 G H) products for one sequence: T of a few hundred takes well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import core, heads, validate
from ..train import tbptt
from ..validate import show

CHUNK_BYTES = 1 << 27  # the budget for one chunk's errors (dA and dR of all its rows)


def _setup(model, x, y, h0, reduction):
    heads.check_reduction(reduction)
    trace = core.forward(model, x, h0)
    tg = validate.targets(model, y, trace.inputs)
    loss, dQ = heads.error(model.head, trace.Q, tg, reduction)
    return trace, loss, dQ


def chunks(trace, dH, budget=CHUNK_BYTES):
    """Every output's error sent back through the steps before it, one row per output, in chunks
    of outputs [ta, tb): yields (ta, tb, dA, dR, d) with dA, dR (tb, tb - ta, N, G) the errors of
    each step's input and recurrent parts for each row (output ta + j in row j; zero for steps after
    the output), and d the rows' errors at state_{-1}, a tuple of (tb - ta, N, H).
    dH (T, N, H): dE_t/dh_t of each output at its own step."""
    T, N = dH.shape[:2]
    G = trace.model.cell.width(trace.model)
    per_row = 2 * T * N * G * dH.itemsize
    C = int(max(1, min(T, budget // max(per_row, 1))))
    for ta in range(0, T, C):
        tb = min(T, ta + C)
        j = np.arange(tb - ta)
        E = np.zeros((tb, tb - ta) + dH.shape[1:], dtype=dH.dtype)
        E[ta + j, j] = dH[ta + j]  # output ta + j puts its error at its own step
        dA, dR, d = core.backprop(trace, E, 0, tb)
        yield ta, tb, dA, dR, tuple(np.broadcast_to(s, (tb - ta,) + s.shape[-2:]) for s in d)


@dataclass(frozen=True, eq=False)
class LagTable:
    """The gradient split by lag: by_lag[name] (T + 1, *shape) for the recurrent parameters (lag
    l = 0..T-1; row T is zero) and for the initial state ("h0", and "c0" for an LSTM: lag t + 1 of
    output t, rows 1..T; shape (T + 1, H) or (T + 1, N, H) for a batch); exact holds the head's
    gradients (V, c), which no truncation changes. Summing every row gives the full gradient."""

    loss: float
    by_lag: dict
    exact: dict
    state_names: tuple
    order: tuple  # the model's parameter names, in its order

    @property
    def T(self) -> int:
        return next(iter(self.by_lag.values())).shape[0] - 1

    def window(self, K) -> core.Grads:
        """The gradient of the notebook's window K (bptt.gradients(..., truncate=K)): lags 0..K."""
        K = core.truncation(K)
        K = self.T if K is None else min(K, self.T)
        summed = {k: v[:K + 1].sum(axis=0) for k, v in self.by_lag.items()}
        return self._grads(summed)

    def windows(self) -> dict:
        """{name: (T + 1, *shape)}: the window-K gradient of every K = 0..T at once (row K)."""
        out = {k: np.cumsum(v, axis=0) for k, v in self.by_lag.items()}
        out.update({k: np.broadcast_to(v, (self.T + 1,) + v.shape) for k, v in self.exact.items()})
        return out

    def dropped(self) -> dict:
        """{name: (T + 1, *shape)}: what the window K leaves out, the sum of the lags l > K (row K;
        summed from the longest lag down, so a small bias is not lost to rounding); zero for the head."""
        out = {}
        for k, v in self.by_lag.items():
            tail = np.cumsum(v[::-1], axis=0)[::-1]  # row l: the lags l..T
            out[k] = np.concatenate([tail[1:], np.zeros_like(tail[:1])])
        out.update({k: np.zeros((self.T + 1,) + v.shape, dtype=v.dtype) for k, v in self.exact.items()})
        return out

    def full(self) -> core.Grads:
        return self.window(None)

    def _grads(self, summed):
        params = {k: summed[k] if k in summed else self.exact[k] for k in self.order}
        return core.Grads(params, tuple(summed[k] for k in self.state_names))


def lag_table(model, x, y, *, h0=None, reduction="sum", budget=CHUNK_BYTES) -> LagTable:
    """Split the gradient of one sequence (or batch) by lag, exactly: a LagTable.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: targets as for bptt.gradients.
    """
    trace, loss, dQ = _setup(model, x, y, h0, reduction)
    xin, T = trace.inputs, trace.inputs.T
    with np.errstate(over="ignore", invalid="ignore"):
        dH = dQ @ model.V
    zero = np.zeros_like(dQ)
    G = model.cell.width(model)
    head = core.weight_grads(trace, dQ, np.zeros(dQ.shape[:2] + (G,), dQ.dtype), np.zeros(dQ.shape[:2] + (G,), dQ.dtype))
    rec = [k for k in model.cell.params if k in model.params]
    by_lag = {k: np.zeros((T + 1,) + model.params[k].shape, dtype=model.dtype) for k in rec}
    names = ("h0", "c0")[:len(model.cell.state)]
    state = [np.zeros((T + 1, xin.N, H), dtype=model.dtype) for H in model.state_sizes]
    with np.errstate(over="ignore", invalid="ignore"):
        for ta, tb, dA, dR, d in chunks(trace, dH, budget):
            for s, part in zip(state, d):
                s[ta + 1:tb + 1] += part  # output t reaches state_{-1} at lag t + 1
            for lag in range(tb):
                j = np.arange(max(0, lag - ta), tb - ta)  # the rows whose step ta + j - lag exists
                if j.size == 0:
                    continue
                k = ta + j - lag  # consecutive steps
                g = core.weight_grads(trace, zero, dA[k, j], dR[k, j], int(k[0]), int(k[-1]) + 1)
                for name in rec:
                    by_lag[name][lag] += g[name]
    for name, s in zip(names, state):
        by_lag[name] = s if xin.batched else s[:, 0]
    table = LagTable(loss, by_lag, {k: v for k, v in head.items() if k not in rec}, names, tuple(model.params))
    core.finite(trace, loss, table.full(), dQ)  # a FloatingPointError naming the step, if any overflowed
    return table


def rule_gradient(model, x, y, keep, keep0, *, h0=None, reduction="sum", budget=CHUNK_BYTES):
    """The gradient that keeps the terms keep (T, T) bool [t, k] marks, and the initial state's
    terms of the outputs keep0 (T,) marks: (loss, Grads). The head's gradients are exact."""
    trace, loss, dQ = _setup(model, x, y, h0, reduction)
    T = trace.inputs.T
    keep, keep0 = np.asarray(keep, dtype=bool), np.asarray(keep0, dtype=bool)
    if keep.shape != (T, T) or keep0.shape != (T,):
        raise ValueError(f"keep must be (T, T) and keep0 (T,) with T = {T}, got {keep.shape} and {keep0.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        dH = dQ @ model.V
        A = np.zeros(dQ.shape[:2] + (model.cell.width(model),), dtype=dQ.dtype)  # (T, N, G)
        R = np.zeros_like(A)
        state = [np.zeros_like(s[0]) for s in trace.cell_states]
        for ta, tb, dA, dR, d in chunks(trace, dH, budget):
            w = keep[ta:tb, :tb].T.astype(dQ.dtype)  # (tb, rows): [step k, row j]
            A[:tb] += np.einsum("kj,kjng->kng", w, dA)
            R[:tb] += np.einsum("kj,kjng->kng", w, dR)
            for s, part in zip(state, d):
                s += np.einsum("j,jnh->nh", keep0[ta:tb].astype(dQ.dtype), part)
    params = core.weight_grads(trace, dQ, A, R)
    grads = core.Grads(params, tuple(s if trace.inputs.batched else s[0] for s in state))
    return core.finite(trace, loss, grads, dQ)


def tbptt_keep(T, k1, k2=None):
    """(keep (T, T), keep0 (T,)) of TBPTT(k1, k2) over T steps with fixed weights (module notes)."""
    keep = tbptt.kept_terms(T, k1=k1, k2=k2 if k2 is not None else k1)
    return keep, keep[:, 0].copy()


def window_keep(T, K):
    """(keep (T, T), keep0 (T,)) of the notebook's window K."""
    K = core.truncation(K)
    keep = tbptt.kept_terms(T, truncate=K)
    return keep, (np.arange(T) - (T if K is None else K) <= -1)


def tbptt_gradient(model, x, y, k1, k2=None, *, h0=None, reduction="sum"):
    """TBPTT(k1, k2)'s gradient over one stream with the weights held fixed, summed over its
    updates: (loss, Grads). Its h0 (c0) is the initial state's part (module notes)."""
    xin = validate.inputs(model, x)
    keep, keep0 = tbptt_keep(xin.T, k1, k2)
    return rule_gradient(model, x, y, keep, keep0, h0=h0, reduction=reduction)


# --- how far an approximation is from the exact gradient ---------------------------------------
def _rel_cos(a, g, missing=None):
    """Relative error and cosine of a (..., n) against g (n,); missing (..., n): g - a when known
    more accurately than the difference (the sum of the dropped terms)."""
    ng = np.linalg.norm(g)
    na = np.linalg.norm(a, axis=-1)
    diff = np.linalg.norm(a - g if missing is None else missing, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ng > 0, diff / ng, np.where(diff > 0, np.inf, 0.0))
        cos = np.where((na > 0) & (ng > 0), (a @ g) / (na * ng), np.where((na == 0) & (ng == 0), 1.0, np.nan))
    return rel, cos


def _vectors(grads: core.Grads, lead=0) -> dict:
    """{name: (..., n)}: each parameter, the initial state, and "all" (every parameter together)."""
    out = {}
    for k, v in grads.params.items():
        v = np.asarray(v, dtype=np.float64)
        out[k] = v.reshape(v.shape[:lead] + (-1,))
    out["all"] = np.concatenate([out[k] for k in grads.params], axis=-1)
    for k, v in zip(("h0", "c0"), grads.state0):
        v = np.asarray(v, dtype=np.float64)
        out[k] = v.reshape(v.shape[:lead] + (-1,))
    return out


@dataclass(frozen=True)
class Agreement:
    """An approximation against the exact gradient: rel[name], cos[name] for every parameter, the
    initial state (h0, c0) and "all" (the model's parameters together). Arrays when measured for
    many approximations at once (a curve over K)."""

    rel: dict
    cos: dict

    def as_dict(self) -> dict:
        conv = lambda v: np.asarray(v).tolist()  # noqa: E731
        return {k: {"rel": conv(self.rel[k]), "cos": conv(self.cos[k])} for k in self.rel}


def compare(exact: core.Grads, approx: core.Grads) -> Agreement:
    """How far approx is from exact, per parameter and for "all" (see the module's notes)."""
    for what, g in (("exact", exact), ("approx", approx)):
        if not isinstance(g, core.Grads):
            raise TypeError(f"{what} must be the Grads of a gradient ((loss, Grads) = bptt.gradients(...)), "
                            f"got {type(g).__name__}")
    e, a = _vectors(exact), _vectors(approx)
    rel, cos = {}, {}
    for k in e:
        rel[k], cos[k] = (float(v) for v in _rel_cos(a[k], e[k]))
    return Agreement(rel, cos)


@dataclass(frozen=True)
class Curve:
    """The bias of the notebook's window for every K = 0..T: .K (T + 1,), .bias (an Agreement of
    (T + 1,) arrays), .table the LagTable it came from."""

    K: np.ndarray
    bias: Agreement
    table: LagTable

    def smallest_window(self, delta, name="all"):
        """The smallest K from which on every window meets the tolerance: rel[name][K'] <= delta for
        all K' >= K (K = T always does: its bias is zero)."""
        if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, (int, float, np.integer, np.floating)) \
                or not np.isfinite(delta) or delta < 0:
            raise ValueError(f"delta must be a finite number >= 0, got {show(delta)}")
        if name not in self.bias.rel:
            raise ValueError(f"no curve for {show(name)}: expected one of {', '.join(self.bias.rel)}")
        bad = np.flatnonzero(~(self.bias.rel[name] <= delta))
        return 0 if bad.size == 0 else int(bad[-1]) + 1


def window_curve(model, x, y, *, h0=None, reduction="sum", budget=CHUNK_BYTES) -> Curve:
    """The exact bias of the notebook's window, relative error and cosine per parameter, for every
    K = 0..T of one sequence (or batch), from one pass over the terms."""
    table = lag_table(model, x, y, h0=h0, reduction=reduction, budget=budget)
    full = _vectors(table.full())
    as_grads = lambda d: core.Grads({k: d[k] for k in table.full().params},  # noqa: E731
                                    tuple(d[k] for k in table.state_names))
    every, dropped = _vectors(as_grads(table.windows()), lead=1), _vectors(as_grads(table.dropped()), lead=1)
    rel, cos = {}, {}
    for k in full:
        rel[k], cos[k] = _rel_cos(every[k], full[k], dropped[k])
    return Curve(np.arange(table.T + 1), Agreement(rel, cos), table)


def smallest_window(model, x, y, delta, *, name="all", h0=None, reduction="sum"):
    """The smallest K whose window, and every longer one, has relative error <= delta (see Curve)."""
    return window_curve(model, x, y, h0=h0, reduction=reduction).smallest_window(delta, name)
