"""What every reference framework shares: the checked problem in float64 and the truncation windows.

Nothing here differentiates anything. It turns (model, x, y, h0, truncate, reduction) into plain
float64 arrays, with the same validation and the same meaning as bptt.gradients, so that each
framework module only has to build the model and let its own autodiff do the rest.

Shapes: N batch, T time, D input, H hidden, O output, G = gates x H (Elman H, LSTM 4H, GRU 3H).
The cells are those of bptt.cells, in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import core, validate
from ..model import Model


class Problem(NamedTuple):
    params: dict            # name -> float64 array: the model's params (U (G, D), W (G, H), V (O, H), b, bh, c)
    cell: str               # the registered cell's name
    activation: str | None  # the Elman cell's f; None for a gated cell
    reset_after: bool       # GRU: PyTorch's form (True) or Keras's reset-before form (False)
    head: str
    ids: np.ndarray | None  # (N, T) int64 token ids, or None for dense inputs
    X: np.ndarray | None    # (N, T, D) float64 dense inputs, or None for ids
    y_ids: np.ndarray | None     # (N, T) int64 target ids, -1 = unscored (softmax head)
    y_values: np.ndarray | None  # (N, T, O) float64 targets, 0 where unscored (mse head)
    mask: np.ndarray        # (N, T) float64, 1.0 where the step is scored
    state0: tuple           # the initial state, (N, S) float64 arrays: (h0,), or (h0, c0) for an LSTM;
                            # S = H, or the cell's wider state (an LRU's [Re h, Im h], S = 2H)
    N: int
    T: int
    batched: bool
    K: int | None           # truncation window, None = full BPTT
    scale: float            # 1, or 1 / (number of scored steps) for reduction="mean"
    D: int = 0              # the input width (one-hot rows for ids)
    settings: dict | None = None  # the cell's settings by name (a coRNN's dt, gamma, eps, implicit)

    @property
    def h0(self) -> np.ndarray:
        """The initial hidden output h0 = s_{-1}: (N, H)."""
        return self.state0[0]

    @property
    def state_names(self) -> tuple:
        """The gradient names of the initial state's entries: ("h0",) or ("h0", "c0")."""
        return ("h0", "c0")[:len(self.state0)]

    def dense(self) -> np.ndarray:
        """Inputs as vectors (N, T, D): one-hot rows for ids."""
        if self.X is not None:
            return self.X
        return np.eye(self.D)[self.ids]

    def h0_out(self, g: np.ndarray) -> np.ndarray:
        """dE/dh0 (or dE/dc0) in the public shape: (H,) for one sequence, (N, H) for a batch."""
        return g if self.batched else g[0]

    def state_grads(self, gs) -> dict:
        """{"h0": ..., ["c0": ...]} from the gradients of the state0 entries, each (N, H)."""
        return {k: self.h0_out(np.asarray(g, dtype=np.float64)) for k, g in zip(self.state_names, gs)}


def problem(model, x, y, *, truncate=None, h0=None, reduction="sum") -> Problem:
    """Check the arguments exactly as bptt.gradients does and return them as float64 arrays.

    h0: (H,) / (N, H) or None; for a cell whose state has two entries (LSTM, coRNN) also the pair
    (h0, c0), as bptt.gradients takes it.
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a bptt model (bptt.Model), got {type(model).__name__}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    K = core.truncation(truncate)  # the engine's own check, so both refuse the same values
    model = model.astype(np.float64)
    model.check_finite()
    xin = validate.inputs(model, x)
    tg = validate.targets(model, y, xin)
    state0 = core.initial_state(model, h0, xin)  # argument checks only: (N, H) arrays, zeros if not given
    mask = tg.mask.astype(np.float64)
    scale = 1.0 / max(int(tg.mask.sum()), 1) if reduction == "mean" else 1.0
    return Problem(params={k: np.array(v) for k, v in model.params.items()}, cell=model.cell.name,
                   activation=model.cell.values.get("activation"),
                   reset_after=bool(model.cell.values.get("reset_after", True)), head=model.head,
                   ids=xin.ids, X=xin.X, y_ids=tg.ids, y_values=tg.values, mask=mask,
                   state0=tuple(np.array(s, dtype=np.float64) for s in state0), N=xin.N, T=xin.T,
                   batched=xin.batched, K=K, scale=scale, D=model.D, settings=dict(model.cell.values))


class Window(NamedTuple):
    """Where output t's chain starts under truncate=K: steps start..t are differentiated.

    from_h0: the chain starts at the initial state and keeps its gradient (t - K <= -1); otherwise
    it starts at the state before step `start`, taken from the forward pass with its gradient
    stopped (for t = K that state is the initial state itself, stopped). A cell with a memory
    restarts from both h and c.
    """

    t: int
    start: int
    from_h0: bool


def windows(T: int, K: int) -> list[Window]:
    """The notebook's rule: the error of output t reaches steps t-K..t (K+1 of them)."""
    return [Window(t, max(0, t - K), t - K <= -1) for t in range(T)]


def check_terms_args(p: Problem, name: str, t) -> int:
    if p.cell != "rnn":
        raise ValueError(f"terms are defined for the Elman cell (bptt.RNN) only, got a {p.cell} model: "
                         "use gradients for a gated cell")
    if name not in ("W", "U", "b"):
        raise ValueError(f"terms are defined for W, U and b, got {name!r}")
    if name not in p.params:
        raise ValueError("the model has no bias b")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < p.T:
        raise ValueError(f"output step t must be an integer in 0..{p.T - 1}, got {t!r}")
    return int(t)


# --- saying a framework's import before its silence ---------------------------------------------
SPELLED = {"torch": "PyTorch", "jax": "JAX", "tensorflow": "TensorFlow"}
IMPORT_SECONDS = {"torch": 4, "jax": 3, "tensorflow": 8}  # roughly, the first import on a laptop


def announce(names, say=None) -> str | None:
    """Say, before a long silence, which frameworks are about to be imported and about how long it
    takes: "importing PyTorch, JAX and TensorFlow (about 15 s)..." on stderr (or through say).
    Nothing when each is imported already. Returns the line said, or None."""
    import sys

    todo = [n for n in names if n in SPELLED and n not in sys.modules]
    if not todo:
        return None
    words = [SPELLED[n] for n in todo]
    line = (f"importing {words[0] if len(words) == 1 else ', '.join(words[:-1]) + ' and ' + words[-1]} "
            f"(about {sum(IMPORT_SECONDS[n] for n in todo)} s)...")
    (say or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
    return line
