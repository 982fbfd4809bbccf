"""Lag analysis of a Flow: how the error of output t shrinks or grows on its way back to step k.

Conventions (flow.py's): output t, step k <= t, lag l = t - k. For one sequence,
- norm[t, l]  = ||dE_t/ds_{t-l}||, the error of output t when it reaches state s_{t-l};
- ratio[t, l] = norm[t, l] / norm[t, 0], the same error relative to where it started (1 at l = 0);
- term[t, l]  = ||term_{t,t-l}||_F = ||dE_t/dz_{t-l}|| ||s_{t-l-1}||, the size of that step's
  summand of dE_t/dW (an outer product, so its Frobenius norm is the product of the two norms).
Only scored outputs count: an output t with dE_t/ds_t = 0 (no target, or a perfect fit) starts no
error and is left out of every mean.

Averages over t at a fixed lag l use the outputs t >= l, so the number of samples falls with the
lag (`count`). A batch of sequences is analysed one sequence at a time (`analyse_batch`), and its
curves are the mean and spread over sequences of each sequence's curve.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations


@dataclass(frozen=True, eq=False)
class LagProfile:
    """Per-lag statistics of one sequence's gradient; every array is (T,), indexed by lag l.

    norm_*:  ||dE_t/ds_{t-l}|| over the scored outputs t >= l (mean, standard deviation, min, max)
    ratio_*: ||dE_t/ds_{t-l}|| / ||dE_t/ds_t|| (mean, standard deviation, geometric mean)
    term_*:  ||term_{t,t-l}||_F (mean, standard deviation)
    beyond:  the share of all the terms' mass (sum of ||term_{t,k}||_F over every t, k) carried by
             terms with lag > l: the part of the gradient that truncate=l would drop. It falls
             with l and is 0 at l = T - 1.
    count:   how many outputs t contribute at lag l (NaN statistics where it is 0)
    """

    lags: np.ndarray
    count: np.ndarray
    norm_mean: np.ndarray
    norm_std: np.ndarray
    norm_min: np.ndarray
    norm_max: np.ndarray
    ratio_mean: np.ndarray
    ratio_std: np.ndarray
    ratio_geomean: np.ndarray
    term_mean: np.ndarray
    term_std: np.ndarray
    beyond: np.ndarray

    def rows(self, lags=None):
        """One dict per lag (for tables and JSON)."""
        idx = range(len(self.lags)) if lags is None else lags
        keys = ("count", "norm_mean", "norm_std", "norm_min", "norm_max", "ratio_mean", "ratio_std",
                "ratio_geomean", "term_mean", "term_std", "beyond")
        return [{"lag": int(self.lags[i]), **{k: _num(getattr(self, k)[i]) for k in keys}} for i in idx]


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None


def by_lag_tables(flow):
    """The (T, T) tables norm[t, l], ratio[t, l], term[t, l] of one Flow, NaN where l > t or t unscored."""
    T = flow.T
    t = np.arange(T)[:, None]
    l = np.arange(T)[None, :]
    k = t - l
    start = np.diagonal(flow.dE_ds)  # (T,): ||dE_t/ds_t||
    valid = (k >= 0) & (start[:, None] > 0)
    kk = np.clip(k, 0, None)
    norm = np.where(valid, flow.dE_ds[t, kk], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = norm / start[:, None]
    s_prev = np.linalg.norm(flow.trace.S[:-1, 0], axis=1)  # (T,): ||s_{k-1}||
    term = np.where(valid, flow.dE_dz[t, kk] * s_prev[kk], np.nan)
    return norm, ratio, term


def _stats(a):
    """Column statistics of a (T, L) table with NaN = missing: count, mean, std, min, max."""
    ok = ~np.isnan(a)
    n = ok.sum(0)
    z = np.where(ok, a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = z.sum(0) / n
        var = np.where(ok, (a - mean) ** 2, 0.0).sum(0) / n
        lo = np.where(ok, a, np.inf).min(0)
        hi = np.where(ok, a, -np.inf).max(0)
    nan = n == 0
    return n, mean, np.sqrt(var), np.where(nan, np.nan, lo), np.where(nan, np.nan, hi)


def by_lag(flow) -> LagProfile:
    """Per-lag means and spreads of one Flow (see LagProfile)."""
    norm, ratio, term = by_lag_tables(flow)
    n, nm, ns, nlo, nhi = _stats(norm)
    _, rm, rs, _, _ = _stats(ratio)
    with np.errstate(divide="ignore"):
        _, lg, _, _, _ = _stats(np.log(ratio))
    _, tm, ts, _, _ = _stats(term)
    mass = np.nansum(term, axis=0)  # (T,): total term norm at each lag
    total = mass.sum()
    tail = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])  # mass at lags > l
    beyond = tail / total if total > 0 else np.full_like(mass, np.nan)
    return LagProfile(np.arange(flow.T), n, nm, ns, nlo, nhi, rm, rs, np.exp(lg), tm, ts, beyond)


def decay_rate(flow, *, min_lag=1, max_lag=None) -> float:
    """The per-step factor r by which the error shrinks (r < 1) or grows (r > 1) with the lag.

    Estimator: every scored output t and lag l in min_lag..max_lag gives one point
    (l, log ratio[t, l]), ratio[t, l] = ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||. A line through the
    origin is fitted to them by least squares, log ratio ~ l log r (the origin because ratio = 1 at
    l = 0), so log r = sum l log ratio / sum l^2 and r is returned. Points with ratio exactly 0
    (an error killed outright, e.g. by dead relu units) have no logarithm and are left out.

    Properties: if ratio[t, l] = rho^l exactly (identity activation, W = rho * orthogonal), r = rho;
    if ratio[t, l] <= c^l for every point (the bound with c = lambda_1 gamma), then r <= c, because
    the fitted slope is a weighted mean of log ratio / l with weights l^2.
    """
    T = flow.T
    max_lag = T - 1 if max_lag is None else int(max_lag)
    if T < 2:
        raise ValueError(f"a decay rate needs a sequence of at least 2 steps, got T = {T}")
    if not 1 <= min_lag <= max_lag <= T - 1:
        raise ValueError(f"need 1 <= min_lag <= max_lag <= T - 1 = {T - 1}, got min_lag={min_lag}, "
                         f"max_lag={max_lag}")
    _, ratio, _ = by_lag_tables(flow)
    lag = np.broadcast_to(np.arange(T)[None, :], ratio.shape)
    sel = (lag >= min_lag) & (lag <= max_lag) & (ratio > 0) & np.isfinite(ratio)
    if not sel.any():
        raise ValueError("no output error reaches a lag in the fitted range with a non-zero size: "
                         "the decay rate is undefined (every scored error is 0 there)")
    l, lr = lag[sel].astype(float), np.log(ratio[sel])
    return float(np.exp((l * lr).sum() / (l * l).sum()))


@dataclass(frozen=True, eq=False)
class Saturation:
    """The derivatives f'(z_t) of one sequence: values (T, H), gamma = max |f'|.

    A unit with f'(z) near 0 (tanh or sigmoid near its asymptotes, relu below 0) passes almost no
    error back, whatever W is: every backward step multiplies by diag(f'(z_t)) W.
    """

    activation: str
    values: np.ndarray  # (T, H)
    gamma: float

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def fraction_saturated(self, threshold=0.1) -> float:
        """The share of (t, unit) pairs with f'(z) < threshold * gamma."""
        return float((self.values < threshold * self.gamma).mean())

    @property
    def per_step(self) -> np.ndarray:
        """Mean f'(z_t) over units at each step: (T,)."""
        return self.values.mean(1)

    def histogram(self, bins=20):
        """(counts, edges) of f'(z) over [0, gamma]."""
        return np.histogram(self.values, bins=bins, range=(0.0, self.gamma))


def saturation(flow) -> Saturation:
    model = flow.trace.model
    act = activations.get(model.activation)
    return Saturation(model.activation, act.df_from_output(flow.trace.S[1:, 0]), act.gamma)


# --- batches ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchAnalysis:
    """The lag analysis of N sequences: per-sequence curves (N, T) and numbers (N,), and their spread.

    ratio_mean / norm_mean / beyond: (N, T), each sequence's LagProfile curve (NaN where a
    sequence has no output at that lag). decay: (N,) decay rates, lyapunov_max: (N,) largest
    Lyapunov exponents, saturated: (N,) fraction of f'(z) < 0.1 gamma, loss: (N,).
    """

    ratio_mean: np.ndarray
    norm_mean: np.ndarray
    beyond: np.ndarray
    decay: np.ndarray
    lyapunov_max: np.ndarray
    saturated: np.ndarray
    loss: np.ndarray

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


def _nanmean(a):
    ok = ~np.isnan(a)
    with np.errstate(invalid="ignore"):
        return np.where(ok, a, 0).sum(0) / ok.sum(0)


def _nanstd(a):
    ok = ~np.isnan(a)
    m = _nanmean(a)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(ok, (a - m) ** 2, 0).sum(0) / ok.sum(0))


def flows(model, x, y, *, h0=None, progress=True):
    """flow() of every sequence of a batch: x (N, T) ids or (N, T, D), y (N, T) or (N, T, O),
    h0 None or (N, H). A progress bar appears when the batch takes more than a second."""
    from tqdm.auto import tqdm

    from .flow import flow

    x, y = np.asarray(x), np.asarray(y)
    dense = np.issubdtype(x.dtype, np.floating)
    if x.ndim != (3 if dense else 2):
        raise ValueError(f"a batch of inputs must be (N, T) ids or (N, T, D) vectors, got shape {x.shape}")
    N = x.shape[0]
    if y.shape[0] != N:
        raise ValueError(f"x holds {N} sequences but y holds {y.shape[0]}")
    if h0 is not None and np.shape(h0) != (N, model.H):
        raise ValueError(f"h0 for a batch must be (N, H) = ({N}, {model.H}), got {np.shape(h0)}")
    it = tqdm(range(N), desc="flow", unit="seq", delay=1.0, disable=not progress, leave=False)
    return [flow(model, x[i], y[i], h0=None if h0 is None else h0[i]) for i in it]


def analyse_batch(model, x, y, *, h0=None, progress=True) -> BatchAnalysis:
    """The lag analysis of every sequence of a batch, stacked (see BatchAnalysis)."""
    from . import spectra

    fls = flows(model, x, y, h0=h0, progress=progress)
    profiles = [by_lag(f) for f in fls]
    decay = []
    for f in fls:
        try:
            decay.append(decay_rate(f))
        except ValueError:
            decay.append(np.nan)
    return BatchAnalysis(
        ratio_mean=np.stack([p.ratio_mean for p in profiles]),
        norm_mean=np.stack([p.norm_mean for p in profiles]),
        beyond=np.stack([p.beyond for p in profiles]),
        decay=np.array(decay),
        lyapunov_max=np.array([spectra.lyapunov(f.trace).max for f in fls]),
        saturated=np.array([saturation(f).fraction_saturated() for f in fls]),
        loss=np.array([f.loss for f in fls]))
