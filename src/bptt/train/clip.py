"""Gradient clipping over gradient dicts (name -> array), applied in the training step.

- clip_by_value: every element into [-c, c] (min-char-rnn: np.clip(dparam, -5, 5)).
- clip_by_global_norm: Pascanu, Mikolov & Bengio (2013), algorithm 1: if ||g|| > c, g <- c g / ||g||,
  with ||g|| the 2-norm over every parameter together.
- clip_per_param_norm: the same rule applied to each parameter's gradient on its own.
- fallback: Pascanu et al.'s guard (their released code): when ||g|| is NaN, Inf or above a limit
  (1e10), the numbers cannot be trusted, so the gradient is replaced by shrink * W for W and zero
  elsewhere (a step that shrinks the recurrent weights), or by zeros ("skip"). A NaN update is never
  applied; the caller is told that the guard fired.
"""
from __future__ import annotations

import numpy as np

from ..validate import show


def _table(grads, what="grads"):
    """grads when it is a dict (name -> array); else a TypeError."""
    if not isinstance(grads, dict):
        raise TypeError(f"{what} must be a dict of arrays by parameter name, got {type(grads).__name__}")
    return grads


def global_norm(grads) -> float:
    """sqrt(sum of squares of every gradient array): the norm Pascanu et al. clip."""
    _table(grads)
    return float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values())))


def clip_by_value(grads, c):
    """Each element clipped into [-c, c]."""
    if not c > 0:
        raise ValueError(f"the clipping value must be positive, got {show(c)}")
    return {k: g.clip(-c, c) if type(g) is np.ndarray else np.clip(g, -c, c)  # np.clip's method, less its wrappers
            for k, g in _table(grads).items()}


def clip_by_global_norm(grads, max_norm):
    """(clipped grads, norm before): rescaled to norm max_norm when the global norm exceeds it."""
    if not max_norm > 0:
        raise ValueError(f"the clipping norm must be positive, got {show(max_norm)}")
    norm = global_norm(grads)
    if not np.isfinite(norm) or norm <= max_norm:
        return dict(grads), norm
    scale = max_norm / norm
    return {k: (g * scale).astype(g.dtype, copy=False) for k, g in grads.items()}, norm


def clip_per_param_norm(grads, max_norm):
    """Each parameter's gradient rescaled to norm max_norm when its own norm exceeds it."""
    if not max_norm > 0:
        raise ValueError(f"the clipping norm must be positive, got {show(max_norm)}")
    out = {}
    for k, g in _table(grads).items():
        n = float(np.linalg.norm(g))
        out[k] = (g * (max_norm / n)).astype(g.dtype, copy=False) if np.isfinite(n) and n > max_norm else g
    return out


def untrustworthy(norm, limit=1e10) -> bool:
    """True when a gradient norm is NaN, Inf, negative or above `limit` (Pascanu et al.'s test)."""
    return bool(not np.isfinite(norm) or norm < 0 or norm > limit)


def fallback(grads, params, mode="shrink", shrink=0.02):
    """The replacement gradient when the norm cannot be trusted.

    mode "shrink": shrink * W for W and zeros for every other parameter (Pascanu et al.'s code; with
    SGD the step is W <- (1 - lr shrink) W). mode "skip": zeros everywhere (no change).
    """
    if mode not in ("shrink", "skip"):
        raise ValueError(f"fallback mode must be 'shrink' or 'skip', got {show(mode)}")
    _table(grads)
    out = {k: np.zeros_like(p) for k, p in _table(params, "params").items()}
    if mode == "shrink":
        if "W" not in params:
            raise ValueError(f"the fallback 'shrink' scales the recurrent weights W, but params holds "
                             f"only {show(list(params))}")
        out["W"] = shrink * params["W"]
    return out
