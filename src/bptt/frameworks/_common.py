"""What every reference framework shares: the checked problem in float64 and the truncation windows.

Nothing here differentiates anything. It turns (model, x, y, h0, truncate, reduction) into plain
float64 arrays, with the same validation and the same meaning as bptt.gradients, so that each
framework module only has to build the model and let its own autodiff do the rest.

Shapes: N batch, T time, D input, H hidden, O output.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import core, validate
from ..model import RNN


class Problem(NamedTuple):
    params: dict            # name -> float64 array: U (H, D), W (H, H), V (O, H), b (H,), c (O,)
    activation: str
    head: str
    ids: np.ndarray | None  # (N, T) int64 token ids, or None for dense inputs
    X: np.ndarray | None    # (N, T, D) float64 dense inputs, or None for ids
    y_ids: np.ndarray | None     # (N, T) int64 target ids, -1 = unscored (softmax head)
    y_values: np.ndarray | None  # (N, T, O) float64 targets, 0 where unscored (mse head)
    mask: np.ndarray        # (N, T) float64, 1.0 where the step is scored
    h0: np.ndarray          # (N, H) float64
    N: int
    T: int
    batched: bool
    K: int | None           # truncation window, None = full BPTT
    scale: float            # 1, or 1 / (number of scored steps) for reduction="mean"

    def dense(self) -> np.ndarray:
        """Inputs as vectors (N, T, D): one-hot rows for ids."""
        if self.X is not None:
            return self.X
        return np.eye(self.params["U"].shape[1])[self.ids]

    def h0_out(self, g: np.ndarray) -> np.ndarray:
        """dE/dh0 in the public shape: (H,) for one sequence, (N, H) for a batch."""
        return g if self.batched else g[0]


def problem(model, x, y, *, truncate=None, h0=None, reduction="sum") -> Problem:
    """Check the arguments exactly as bptt.gradients does and return them as float64 arrays."""
    if not isinstance(model, RNN):
        raise ValueError(f"model must be a bptt.RNN, got {type(model).__name__}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    K = core.truncation(truncate)  # the engine's own check, so both refuse the same values
    model = model.astype(np.float64)
    model.check_finite()
    xin = validate.inputs(model, x)
    tg = validate.targets(model, y, xin)
    s0 = validate.initial_state(model, h0, xin)
    mask = tg.mask.astype(np.float64)
    scale = 1.0 / max(int(tg.mask.sum()), 1) if reduction == "mean" else 1.0
    return Problem(params={k: np.array(v) for k, v in model.params.items()},
                   activation=model.activation, head=model.head, ids=xin.ids, X=xin.X,
                   y_ids=tg.ids, y_values=tg.values, mask=mask, h0=np.array(s0), N=xin.N, T=xin.T,
                   batched=xin.batched, K=K, scale=scale)


class Window(NamedTuple):
    """Where output t's chain starts under truncate=K: steps start..t are differentiated.

    from_h0: the chain starts at h0 and keeps its gradient (t - K <= -1); otherwise it starts at
    the state s_{start-1}, taken from the forward pass with its gradient stopped (for t = K that
    state is h0 itself, stopped).
    """

    t: int
    start: int
    from_h0: bool


def windows(T: int, K: int) -> list[Window]:
    """The notebook's rule: the error of output t reaches steps t-K..t (K+1 of them)."""
    return [Window(t, max(0, t - K), t - K <= -1) for t in range(T)]


def check_terms_args(p: Problem, name: str, t) -> int:
    if name not in ("W", "U", "b"):
        raise ValueError(f"terms are defined for W, U and b, got {name!r}")
    if name not in p.params:
        raise ValueError("the model has no bias b")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < p.T:
        raise ValueError(f"output step t must be an integer in 0..{p.T - 1}, got {t!r}")
    return int(t)

