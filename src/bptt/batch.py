"""The lag analysis of a batch of sequences: flow() of each sequence, analysed one at a time.

A batch's curves are the mean and spread over sequences of each sequence's curve (analysis.py's
LagProfile), and its numbers (decay rate, largest Lyapunov exponent, saturation, loss) one per
sequence. Shapes: N sequences, T steps, H hidden units. Every cell: for gated cells the
saturation is the share of gate values near 0 or 1 (analysis.GateSaturation) and the Lyapunov
exponent that of the whole state (the joint (h, c) of an LSTM).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import analysis, spectra, validate
from .flow import flow


@dataclass(frozen=True, eq=False)
class BatchAnalysis:
    """The lag analysis of N sequences: per-sequence curves (N, T) and numbers (N,), and their spread.

    ratio_mean / norm_mean / beyond: (N, T), each sequence's LagProfile curve (NaN where a
    sequence has no output at that lag). decay: (N,) decay rates, lyapunov_max: (N,) largest
    Lyapunov exponents, saturated: (N,) fraction of f'(z) < 0.1 gamma (gated cells: of sigmoid
    gate values within 0.1 of 0 or 1), loss: (N,). Gated cells also have path_mean (N, T), each
    sequence's mean ||cell_path(t)[t-l]||, and an LSTM c_mean (N, T), its mean ||dE_t/dc_{t-l}||
    (None otherwise; see LagProfile).
    """

    ratio_mean: np.ndarray
    norm_mean: np.ndarray
    beyond: np.ndarray
    decay: np.ndarray
    lyapunov_max: np.ndarray
    saturated: np.ndarray
    loss: np.ndarray
    c_mean: np.ndarray | None = None
    path_mean: np.ndarray | None = None

    @property
    def N(self) -> int:
        return self.decay.shape[0]

    def curve(self, name="ratio_mean"):
        """(mean, std) over sequences of one curve: two (T,) arrays."""
        a = getattr(self, name)
        return _nanmean(a), _nanstd(a)

    def summary(self) -> dict:
        """Mean and standard deviation over sequences of each per-sequence number."""
        out = {"N": self.N}
        for k in ("decay", "lyapunov_max", "saturated", "loss"):
            a = getattr(self, k)
            out[k] = {"mean": _num(np.nanmean(a)), "std": _num(np.nanstd(a)),
                      "min": _num(np.nanmin(a)), "max": _num(np.nanmax(a))}
        return out


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None


def _nanmean(a):
    """Mean over axis 0 of (N, T) with NaN = missing: (T,)."""
    ok = ~np.isnan(a)
    with np.errstate(invalid="ignore"):
        return np.where(ok, a, 0).sum(0) / ok.sum(0)


def _nanstd(a):
    """Standard deviation over axis 0 of (N, T) with NaN = missing: (T,)."""
    ok = ~np.isnan(a)
    m = _nanmean(a)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(ok, (a - m) ** 2, 0).sum(0) / ok.sum(0))


def _check_batch(model, x, y, h0):
    """x (N, T) ids or (N, T, D), y (N, T) or (N, T, O), h0 None or (N, H) (an LSTM's: or the pair
    (h0, c0) of (N, H) arrays): as arrays, or ValueError."""
    validate.a_model(model)
    validate.not_masked(x, "x")
    validate.not_masked(y, "y")
    x, y = np.asarray(x), np.asarray(y)
    dense = np.issubdtype(x.dtype, np.floating)
    if x.ndim != (3 if dense else 2):
        raise ValueError(f"a batch of inputs must be (N, T) ids or (N, T, D) vectors, got shape {x.shape}")
    N = x.shape[0]
    if y.ndim not in (2, 3):
        raise ValueError(f"a batch of targets must be (N, T) ids or (N, T, O) rows, got shape {y.shape}")
    if y.shape[0] != N:
        raise ValueError(f"x holds {N} sequences but y holds {y.shape[0]}")
    for part, H in zip(h0 if isinstance(h0, tuple) else (h0,), model.state_sizes):
        if part is not None and np.shape(part) != (N, H):
            raise ValueError(f"h0 for a batch must be (N, H) = ({N}, {H}), got {np.shape(part)}")
    return x, y


def _row(h0, i):
    """Sequence i's initial state: None, h0[i], or (h0[i], c0[i])."""
    if isinstance(h0, tuple):
        return tuple(None if p is None else p[i] for p in h0)
    return None if h0 is None else h0[i]


def iter_flows(model, x, y, *, h0=None, progress=True):
    """flow() of each sequence of a batch in turn, one Flow alive at a time (see flows)."""
    from .progress import bar

    x, y = _check_batch(model, x, y, h0)
    counted = bar(x.shape[0], "flow", "seq", leave=False) if progress else None  # after a second: a bar or lines
    try:
        for i in range(x.shape[0]):
            yield flow(model, x[i], y[i], h0=_row(h0, i))
            if counted is not None:
                counted.update()
    finally:
        if counted is not None:
            counted.close()


def flows(model, x, y, *, h0=None, progress=True):
    """flow() of every sequence of a batch: x (N, T) ids or (N, T, D), y (N, T) or (N, T, O),
    h0 None or (N, H) (an LSTM's: or (h0, c0)). A progress bar appears when the batch takes more
    than a second (off a terminal: a line on stderr every few seconds, bptt.progress.bar)."""
    return list(iter_flows(model, x, y, h0=h0, progress=progress))


def _decay_or_nan(fl):
    try:
        return analysis.decay_rate(fl)
    except ValueError:  # no error reaches the fitted lags
        return np.nan


def _saturated_or_nan(fl) -> float:
    """The share of saturated units or gates; NaN for a cell with neither an activation nor gates."""
    cell = fl.trace.model.cell
    return analysis.saturation(fl).fraction_saturated() if analysis.has_saturation(cell) else np.nan


def analyse_flows(fls) -> BatchAnalysis:
    """The lag analysis of Flows of N sequences of the same length (a list, or an iterator that
    yields one at a time so that only one is alive), stacked (see BatchAnalysis)."""
    rows = []
    for fl in fls:
        prof = analysis.by_lag(fl)
        rows.append((prof.ratio_mean, prof.norm_mean, prof.beyond, _decay_or_nan(fl),
                     spectra.lyapunov(fl.trace).max, _saturated_or_nan(fl), fl.loss,
                     prof.c_mean, prof.path_mean))
    ratio_mean, norm_mean, beyond, decay, lyap, saturated, loss, c_mean, path_mean = zip(*rows)
    stack = lambda a: None if a[0] is None else np.stack(a)  # noqa: E731
    return BatchAnalysis(ratio_mean=np.stack(ratio_mean), norm_mean=np.stack(norm_mean),
                         beyond=np.stack(beyond), decay=np.array(decay), lyapunov_max=np.array(lyap),
                         saturated=np.array(saturated), loss=np.array(loss), c_mean=stack(c_mean),
                         path_mean=stack(path_mean))


def analyse_batch(model, x, y, *, h0=None, progress=True) -> BatchAnalysis:
    """The lag analysis of every sequence of a batch (shapes as for flows), one Flow alive at a time."""
    return analyse_flows(iter_flows(model, x, y, h0=h0, progress=progress))
