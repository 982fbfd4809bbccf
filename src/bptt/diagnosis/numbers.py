"""What a diagnosis computes, exactly, from a stack's trace and the error a loss puts on its outputs.

Conventions (N batch, T time, H hidden; each layer and direction in its own time order: a
reverse direction's step 0 reads x_{T-1}; "lag l from step t" means l steps back in that order):
- the error at a state, dE/dh_k, is the whole of it: from every output and every layer above;
  its size is the Frobenius norm over the batch.
- the lag curve of a layer and direction measures its own recurrence: the error arriving at its
  output from above (the head or the next layer) at one step s*, the largest in the later half of
  its order (a classifier's last step), sent back alone through its steps: curve[l] =
  ||dE/dh_{s*-l}|| from that error (in the top layer, dE_{t*}/dh_{t*-l} exactly).
- decay: the factor r per step of a least-squares fit of log curve[l] over the lags where it is
  finite and non-zero; the error halves every log 2 / -log r steps (r < 1) or doubles (r > 1).
- the memory path (an LSTM's cell state, a GRU's update-gate copy): the gate's mean value per step,
  and the mean over units and sequences of the product of the gates along lags 1..l.
- the share beyond lag K: ||g - g_K|| / ||g|| for each layer's weights, g the exact gradient and
  g_K the gradient with the layer's error cut after K steps back (core.backprop_window, the
  notebook's rule, inside the layer; the error arriving from above exact); of the whole batch's
  gradient, or of its first n sequences' when asked (lags=n: the window costs K + 1 error rows a
  step, so K = 100 on a large batch is the one costly number).
- the largest Lyapunov exponent: the growth rate per step of an error vector sent back through the
  steps' Jacobians (a vector-Jacobian product per step, renormalised), mean over the batch.
- per-step weight-gradient terms: ||sum_n dR_t[n]^T h_{t-1}[n]|| for the recurrent weights W, the
  term of step t in dW = sum_t (...).
"""
from __future__ import annotations

import math

import numpy as np

from .. import core
from ..cells import Cell
from .window import LAGS, shares
from ..stack import backprop, weight_grads



def entry_name(k, j) -> str:
    return f"layer {k}" + (" (reverse)" if j else "")


def _norms(a):
    """(T, N, H) -> (T,): the Frobenius norm of each step over the batch."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.sum(np.square(a, dtype=np.float64), axis=tuple(range(1, a.ndim))))


def decay_rate(curve) -> float | None:
    """The factor per step of a least-squares fit of log curve over its finite, non-zero lags."""
    lags = np.arange(len(curve))
    ok = np.isfinite(curve) & (curve > 0)
    if ok.sum() < 2:
        return None
    slope = np.polyfit(lags[ok], np.log(curve[ok]), 1)[0]
    return float(math.exp(slope))


def source(dH) -> int:
    """s*, the step (in the direction's own order) with the largest arriving error in the later
    half of that order, so that the error has at least T/2 steps to travel back."""
    T = dH.shape[0]
    return T // 2 + int(np.argmax(_norms(dH[T // 2:])))


def lag_curve(layer_trace, e):
    """(s*, curve): the error arriving at step s* alone, sent back through the layer's own steps:
    curve[l] = ||dE/dh_{s*-l}|| for l = 0..s* (in the direction's own order)."""
    s = source(e.dH)
    one = np.zeros_like(e.dH)
    one[s] = e.dH[s]
    seen = []
    core.backprop(layer_trace, one, 0, s + 1, seen=seen)
    return s, np.array([float(np.sqrt(np.sum(np.square(d[0], dtype=np.float64)))) for d in seen])


def memory_path(layer_trace, cell):
    """(mean gate per step (T,), mean product over lags from the last step (T,)) or None."""
    if not cell.memory:
        return None
    gate = layer_trace.cache[list(cell.gates).index(cell.memory[1])]  # (T, N, H)
    per_step = gate.mean(axis=(1, 2))
    with np.errstate(under="ignore"):
        prod = np.cumprod(gate[::-1], axis=0).mean(axis=(1, 2))  # lags 1..T from the last step
    return per_step, np.concatenate([[1.0], prod])


def saturation(layer_trace, cell, low=0.05, high=0.95) -> dict:
    """The share of each sigmoid gate's values below low or above high."""
    out = {}
    for name in cell.sigmoid_gates:
        g = layer_trace.cache[list(cell.gates).index(name)]
        out[name] = (float(np.mean(g < low)), float(np.mean(g > high)))
    return out


def spectral_radii(layer) -> dict:
    """The spectral radius of the recurrent matrix, or of each gate's block of it."""
    W = layer.params.get(layer.cell.role("recurrent")) if layer.cell.role("recurrent") else None
    if W is None:
        return {}
    H = W.shape[1]
    blocks = layer.cell.gates or ("W",)
    if W.shape[0] != H * len(blocks):
        return {}
    return {g: float(np.max(np.abs(np.linalg.eigvals(W[i * H:(i + 1) * H])))) for i, g in enumerate(blocks)}


def lyapunov_top(layer_trace, seed=0) -> float | None:
    """The largest Lyapunov exponent per step (natural log), from vector-Jacobian products."""
    model, T = layer_trace.model, layer_trace.inputs.T
    rng = np.random.default_rng(seed)
    d = tuple(rng.normal(size=s[0].shape).astype(model.dtype) for s in layer_trace.cell_states)
    total = np.zeros(layer_trace.inputs.N)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        n = np.sqrt(sum(np.sum(p * p, axis=-1) for p in d))
        d = tuple(p / n[:, None] for p in d)
        for t in range(T - 1, -1, -1):
            _, _, d = model.cell.step_back(model, *core.step(layer_trace, t), d)
            n = np.sqrt(sum(np.sum(p * p, axis=-1) for p in d))
            if not np.all(np.isfinite(n)) or np.any(n == 0):
                return None
            total += np.log(n)
            d = tuple(p / n[:, None] for p in d)
    return float(np.mean(total) / T)


def shares_beyond(layer_trace, e, T, sequences=None) -> dict:
    """{K: share of the layer's weight gradient from lags beyond K} for K in LAGS below T (0 for K
    >= T). sequences: the first n sequences only (the share of their gradient), or None for all:
    the window's backward pass costs K + 1 error rows per step, so the share beyond K = 100 of a
    large batch costs a hundred backward passes of it."""
    if sequences is not None and sequences < layer_trace.inputs.N:
        layer_trace, e = _first(layer_trace, sequences), _first_errors(e, sequences)
    return shares(layer_trace, e, T, LAGS)


def _first(tr, n):
    """A layer's trace restricted to its first n sequences."""
    xin = tr.inputs
    inputs = xin._replace(ids=None if xin.ids is None else xin.ids[:n], X=None if xin.X is None else xin.X[:n], N=n)
    return core.Trace(tr.model, inputs, tuple(s[:, :n] for s in tr.cell_states), tuple(c[:, :n] for c in tr.cache),
                      None if tr.Q is None else tr.Q[:, :n], tr.scan)


def _first_errors(e, n):
    return type(e)(e.dH[:, :n], e.dA[:, :n], e.dR[:, :n], tuple(d[:n] for d in e.d0),
                   None if e.dS is None else tuple(d[:, :n] for d in e.dS))


def step_terms(layer_trace, e) -> np.ndarray:
    """||dW_t||, the recurrent weights' term of each step (in the direction's order): (T,)."""
    model = layer_trace.model
    name = model.cell.role("recurrent")
    if name is None:
        return np.zeros(0)
    prev = layer_trace.cell_states[0][:-1]  # (T, N, H)
    plain = type(model.cell).recurrent_grad is Cell.recurrent_grad  # dW = sum_t dR_t^T h_{t-1}
    terms = np.matmul(np.swapaxes(e.dR, 1, 2), prev) if plain else None  # (T, G, H)
    if terms is None:  # a cell whose dW is its own (the GRU's reset-gated block): one step at a time
        terms = np.stack([model.cell.recurrent_grad(model, e.dR[t:t + 1], tuple(s[t:t + 1] for s in
                                                    layer_trace.cell_states), tuple(c[t:t + 1] for c in
                                                                                     layer_trace.cache))
                          for t in range(layer_trace.inputs.T)])
    return _norms(terms)


def first_nonfinite(trace, errors) -> str | None:
    """Where a state or an error first became non-finite: the layer, direction and step, or None."""
    for k, pair in enumerate(trace.layers):
        for j, tr in enumerate(pair):
            where = core.forward_nonfinite(tr)
            if where:
                return f"{entry_name(k, j)}: the forward pass: {where}"
    T = trace.inputs.T
    for k in range(len(errors) - 1, -1, -1):
        for j, e in enumerate(errors[k]):
            bad = np.flatnonzero(~np.isfinite(e.dA).reshape(T, -1).all(axis=1))
            if bad.size:
                t = int(bad[-1]) if not j else T - 1 - int(bad[-1])
                return f"{entry_name(k, j)}: the backward pass: the error first became non-finite at step t = {t}"
    return None


def compute(trace, dY, final, *, lags=True) -> dict:
    """Every number of a diagnosis: the gradients by the stack's flat names, and per layer and
    direction its curves and figures (the module's notes)."""
    stack, T = trace.model, trace.inputs.T
    errors, _ = backprop(trace, dY, final, states=True)
    grads = weight_grads(trace, errors)
    entries = []
    for k, pair in enumerate(trace.layers):
        for j, tr in enumerate(pair):
            layer, e = tr.model, errors[k][j]
            s, curve = lag_curve(tr, e)
            r = decay_rate(curve[1:]) if len(curve) > 2 else None
            entries.append({
                "name": entry_name(k, j), "layer": k, "reverse": bool(j), "cell": layer.cell.name,
                "label": layer.cell.label or layer.cell.name, "H": layer.H,
                "error": _norms(e.dS[0])[::-1] if j else _norms(e.dS[0]),  # in time order
                "curve": curve, "decay": r, "source": T - 1 - s if j else s,
                "memory": memory_path(tr, layer.cell), "memory_gate": layer.cell.memory[1] if layer.cell.memory else None,
                "saturation": saturation(tr, layer.cell), "radius": spectral_radii(layer),
                "lyapunov": lyapunov_top(tr),
                "shares": shares_beyond(tr, e, T, None if lags is True else lags) if lags else {},
                "terms": step_terms(tr, e),
            })
    return {"grads": grads, "entries": entries, "T": T, "N": trace.inputs.N,
            "lags_over": trace.inputs.N if lags is True else min(int(lags), trace.inputs.N) if lags else 0,
            "nonfinite": first_nonfinite(trace, errors), "errors": errors}
