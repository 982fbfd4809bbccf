"""The shares of a layer's weight gradient beyond lags K, for every K at once, lag by lag.

numbers.shares_beyond runs the notebook's window (core.backprop_window) once per K: T steps, each
carrying K + 1 errors (the outputs whose window holds the step). The same sums come lag by lag,
every step at once: B_0[t] = dE_t/dh_t (output t's own error at its state), and B_l[t] (output
t+l's error carried back l steps to state t) = the step_back of step t+1 applied to B_{l-1}[t+1],
one call of the cell's step_back over all steps t = 0..T-1-l. The window K's error at state t is
the sum of B_0..B_K at t, and its step errors (dA, dR) are one more step_back of that sum (the
step is linear in the error it is given). So one pass of max K lags gives every K's window: the
T (K + 1) vector-Jacobian products of the largest K, in K calls on whole sequences instead of T
calls on K + 1 rows, and the smaller Ks for nothing. The result equals numbers.shares_beyond's
to rounding (tests/test_diagnose_window.py).
"""
from __future__ import annotations

import math

import numpy as np

from .. import core

LAGS = (10, 100, 1000)  # the lags a diagnosis gives the share of the gradient beyond


def windows(layer_trace, dH, Ks):
    """{K: (dA, dR)} of the notebook's window K for each K in Ks (each below T), from one pass."""
    model, cell, T = layer_trace.model, layer_trace.model.cell, layer_trace.inputs.T
    prev = tuple(s[:-1] for s in layer_trace.cell_states)  # state_{t-1} of each step t: (T, N, H)
    state = tuple(s[1:] for s in layer_trace.cell_states)
    cache = layer_trace.cache
    B = (dH,) + tuple(np.zeros_like(s) for s in prev[1:])  # lag 0: output t's error at its own state
    total = [b.copy() for b in B]
    out = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for lag in range(1, max(Ks, default=0) + 1):
            if lag < T and any(np.any(b) for b in B):  # once every carried error is 0, nothing more arrives
                at = slice(1, T - lag + 1)  # the steps t + 1 that send B back to states t = 0..T-1-lag
                _, _, B = cell.step_back(model, tuple(p[at] for p in prev), tuple(s[at] for s in state),
                                         tuple(c[at] for c in cache), tuple(b[1:] for b in B))
                for acc, b in zip(total, B):
                    acc[:T - lag] += b
            if lag in Ks:
                # copies: a cell may hand back the error it was given as dR (the LRU does), and total grows on
                dA, dR, _ = cell.step_back(model, prev, state, cache, tuple(t.copy() for t in total))
                out[lag] = (dA, dR)
    return out


def shares(layer_trace, e, T, lags=LAGS) -> dict:
    """{K: share of the layer's weight gradient from lags beyond K} for K in lags, as
    numbers.shares_beyond gives it (0.0 for K >= T), from one pass of windows()."""
    full = core.weight_grads(layer_trace, None, e.dA, e.dR)
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in full.values()))
    cut = windows(layer_trace, e.dH, [K for K in lags if K < T])
    out = {}
    for K in lags:
        if K >= T:
            out[K] = 0.0
            continue
        g = core.weight_grads(layer_trace, None, *cut[K])
        diff = math.sqrt(sum(float(np.sum((full[k] - g[k]).astype(np.float64) ** 2)) for k in full))
        out[K] = diff / norm if norm > 0 else 0.0 if norm == 0 else float("nan")  # NaN: a non-finite gradient
    return out
