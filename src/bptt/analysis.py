"""Lag analysis of a Flow: how the error of output t shrinks or grows on its way back to step k.

Conventions (flow.py's): output t, step k <= t, lag l = t - k. For one sequence,
- norm[t, l]  = ||dE_t/ds_{t-l}||, the error of output t when it reaches state s_{t-l} (the hidden
  output h_{t-l} of a gated cell);
- ratio[t, l] = norm[t, l] / norm[t, 0], the same error relative to where it started (1 at l = 0);
- term[t, l]  = ||term_{t,t-l}||_F, the size of that step's summand of dE_t/dW: for Elman and LSTM
  cells an outer product, ||dE_t/dz_{t-l}|| ||h_{t-l-1}||; for a GRU read from Flow.dE_dW.
Only scored outputs count: an output t with dE_t/ds_t = 0 (no target, or a perfect fit) starts no
error and is left out of every mean.

Averages over t at a fixed lag l use the outputs t >= l, so the number of samples falls with the
lag (`count`). A batch of sequences is analysed one sequence at a time (batch.py's
`analyse_batch`), and its curves are the mean and spread over sequences of each sequence's curve.

Gated cells (LSTM, GRU) keep their gates in the trace's cache, in the order of W's row blocks
(GATES); `gate_values` reads them, `gate_saturation` measures how many are shut or open.

Memory: a Flow holds two (T, T) tables (three for gated cells: dE_dc of an LSTM, dE_dW of a GRU),
and nothing here adds another. The lag tables norm, ratio and term are read a block of outputs
(rows t0..t1-1, about BLOCK entries) at a time by `lag_blocks`, and every statistic is summed per
lag into (T,) float64 accumulators; only `by_lag_tables`, for inspection, returns whole (T, T)
tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations, cells
from .validate import integer, show

BLOCK = 1 << 15  # entries of one block of lag-table rows (B, L): 256 KiB in float64


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
    c_mean:  LSTM: the mean of ||dE_t/dc_{t-l}|| (Flow.dE_dc); None for other cells
    path_mean: gated cells: the mean of ||Flow.cell_path(t)[t-l]||, the part of the error that
             travelled the cell's direct path alone (the forget gates' product on the cell
             state, the update gates' product on a GRU's copy); None for Elman cells
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
    c_mean: np.ndarray | None = None
    path_mean: np.ndarray | None = None

    def rows(self, lags=None):
        """One dict per lag (for tables and JSON); c_mean and path_mean only where the cell has them."""
        idx = range(len(self.lags)) if lags is None else lags
        keys = ("count", "norm_mean", "norm_std", "norm_min", "norm_max", "ratio_mean", "ratio_std",
                "ratio_geomean", "term_mean", "term_std", "beyond")
        keys += tuple(k for k in ("c_mean", "path_mean") if getattr(self, k) is not None)
        return [{"lag": int(self.lags[i]), **{k: _num(getattr(self, k)[i]) for k in keys}} for i in idx]


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None


def row_blocks(T, rows=None):
    """(t0, t1) pairs that cover the outputs 0..T-1 in order, `rows` outputs each (the last may be
    shorter); by default as many as make a block of BLOCK entries, B = max(1, BLOCK // T)."""
    rows = max(1, BLOCK // max(T, 1)) if rows is None else integer("rows (outputs a block holds)", rows, 1)
    return [(t0, min(T, t0 + rows)) for t0 in range(0, T, rows)]


def lag_blocks(flow, *, rows=None, term=True):
    """The lag tables of one Flow, a block of outputs at a time (see the module's notes).

    Yields (t0, norm, ratio, term) for each block t0..t1-1 of row_blocks(T, rows): three (B, t1)
    arrays, B = t1 - t0, row i for output t0 + i and column l for lag l = 0..t1-1 (the lags this
    block's outputs reach), NaN where l > t or output t is unscored. Rows are those of
    by_lag_tables exactly. term=False yields None for term and skips its work.
    """
    T = flow.T
    start = np.diagonal(flow.dE_ds)  # (T,): ||dE_t/ds_t||
    direct = term and flow.dE_dW is None  # ||term|| = ||dE_t/dz_k|| ||s_{k-1}||: Elman, LSTM
    s_prev = np.linalg.norm(flow.trace.S[:-1, 0], axis=1) if direct else None  # (T,): ||s_{k-1}||
    for t0, t1 in row_blocks(T, rows):
        t = np.arange(t0, t1)[:, None]
        k = t - np.arange(t1)[None, :]  # (B, t1): the step k = t - l
        first = start[t0:t1, None]
        valid = (k >= 0) & (first > 0)
        k = np.maximum(k, 0)
        norm = np.where(valid, flow.dE_ds[t, k], np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = norm / first
        if not term:
            tb = None
        elif direct:
            tb = np.where(valid, flow.dE_dz[t, k] * s_prev[k], np.nan)
        else:
            tb = np.where(valid, flow.dE_dW[t, k], np.nan)
        yield t0, norm, ratio, tb


def by_lag_tables(flow):
    """The whole tables norm[t, l], ratio[t, l], term[t, l] of one Flow: three (T, T) arrays, NaN
    where l > t or t is unscored. For looking at short sequences: by_lag and decay_rate read the
    same numbers through lag_blocks and never hold a (T, T) array."""
    _, norm, ratio, term = next(lag_blocks(flow, rows=flow.T))  # one block: every row
    return norm, ratio, term


class _Moments:
    """Per-lag statistics of a (T, T) table with NaN = missing, fed one block (B, L) of its rows at a
    time (lags 0..L-1, L <= T): float64 accumulators of shape (T,).

    First pass, add(block): count, sum, min, max. Second pass, add_deviations(block): the sum of
    squared deviations from the finished mean (the standard deviation of two passes).
    """

    def __init__(self, T):
        self.n = np.zeros(T, dtype=np.int64)
        self.total = np.zeros(T)
        self.lo = np.full(T, np.inf)
        self.hi = np.full(T, -np.inf)
        self.squares = np.zeros(T)

    def add(self, a):
        """First pass: rows (B, L) of the table, lags 0..L-1."""
        L = a.shape[1]
        ok = ~np.isnan(a)
        self.n[:L] += ok.sum(0)
        self.total[:L] += np.where(ok, a, 0.0).sum(0, dtype=np.float64)
        np.minimum(self.lo[:L], np.where(ok, a, np.inf).min(0), out=self.lo[:L])
        np.maximum(self.hi[:L], np.where(ok, a, -np.inf).max(0), out=self.hi[:L])

    @property
    def mean(self):
        """(T,): NaN where no sample."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.total / self.n

    def add_deviations(self, a, mean):
        """Second pass: the same rows (B, L) again, mean (T,) the finished mean."""
        L = a.shape[1]
        ok = ~np.isnan(a)
        with np.errstate(invalid="ignore"):
            self.squares[:L] += np.where(ok, (a - mean[:L]) ** 2, 0.0).sum(0, dtype=np.float64)

    def result(self):
        """count, mean, std, min, max: five (T,) arrays, NaN statistics where the count is 0."""
        none = self.n == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.sqrt(self.squares / self.n)
        return (self.n, self.mean, std, np.where(none, np.nan, self.lo), np.where(none, np.nan, self.hi))


def by_lag(flow, *, rows=None) -> LagProfile:
    """Per-lag means and spreads of one Flow (see LagProfile), read in blocks of `rows` outputs
    (lag_blocks) into (T,) accumulators: two passes, the second for the standard deviations."""
    T = flow.T
    norm, ratio, log_ratio, term = (_Moments(T) for _ in range(4))
    for _, nb, rb, tb in lag_blocks(flow, rows=rows):
        norm.add(nb)
        ratio.add(rb)
        term.add(tb)
        with np.errstate(divide="ignore"):
            log_ratio.add(np.log(rb))  # log 0 = -inf: a killed error makes the geometric mean 0
    means = norm.mean, ratio.mean, term.mean
    for _, nb, rb, tb in lag_blocks(flow, rows=rows):
        for acc, block, mean in zip((norm, ratio, term), (nb, rb, tb), means):
            acc.add_deviations(block, mean)
    n, nm, ns, nlo, nhi = norm.result()
    _, rm, rs, _, _ = ratio.result()
    _, tm, ts, _, _ = term.result()
    c_mean, path_mean = _path_means(flow, rows) if flow.trace.model.cell.memory else (None, None)
    return LagProfile(np.arange(T), n, nm, ns, nlo, nhi, rm, rs, np.exp(log_ratio.mean), tm, ts,
                      _beyond(term.total), c_mean, path_mean)


def _path_means(flow, rows=None):
    """Per-lag means over the scored outputs of ||dE_t/dc_{t-l}|| (LSTM, else None) and of
    ||cell_path(t)[t-l]||: two (T,) arrays, each output's row made and dropped in turn."""
    T = flow.T
    start = np.diagonal(flow.dE_ds)
    c, path = _Moments(T), _Moments(T)
    for t0, t1 in row_blocks(T, rows):
        for t in range(t0, t1):
            if not start[t] > 0:
                continue
            lag = slice(t, None, -1)  # k = t, t-1, ..., 0 is lag l = 0..t
            path.add(np.linalg.norm(flow.cell_path(t), axis=1)[lag][None])
            if flow.dE_dc is not None:
                c.add(flow.dE_dc[t, lag][None])
    return (c.mean if flow.dE_dc is not None else None), path.mean


def _beyond(mass):
    """The share of the total at lags > l, for mass (T,) the summed term norms at each lag l."""
    total = mass.sum()
    tail = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])  # mass at lags > l
    return tail / total if total > 0 else np.full_like(mass, np.nan)


def decay_rate(flow, *, min_lag=1, max_lag=None, rows=None) -> float:
    """The per-step factor r by which the error shrinks (r < 1) or grows (r > 1) with the lag.

    Estimator: every scored output t and lag l in min_lag..max_lag gives one point
    (l, log ratio[t, l]), ratio[t, l] = ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||. A line through the
    origin is fitted to them by least squares, log ratio ~ l log r (the origin because ratio = 1 at
    l = 0), so log r = sum l log ratio / sum l^2 and r is returned. Points with ratio exactly 0
    (an error killed outright, e.g. by dead relu units) have no logarithm and are left out.

    Properties: if ratio[t, l] = rho^l exactly (identity activation, W = rho * orthogonal), r = rho;
    if ratio[t, l] <= c^l for every point (the bound with c = lambda_1 gamma), then r <= c, because
    the fitted slope is a weighted mean of log ratio / l with weights l^2.

    The sums run per lag over blocks of `rows` outputs (lag_blocks): log_sum[l] = sum over t of
    log ratio[t, l] and count[l], both (T,); then log r = sum l log_sum[l] / sum l^2 count[l].
    """
    T = flow.T
    max_lag = T - 1 if max_lag is None else integer("max_lag", max_lag)
    min_lag = integer("min_lag", min_lag)
    if T < 2:
        raise ValueError(f"a decay rate needs a sequence of at least 2 steps, got T = {T}")
    if not 1 <= min_lag <= max_lag <= T - 1:
        raise ValueError(f"need 1 <= min_lag <= max_lag <= T - 1 = {T - 1}, got min_lag={min_lag}, "
                         f"max_lag={max_lag}")
    log_sum = np.zeros(T)
    count = np.zeros(T, dtype=np.int64)
    for _, _, rb, _ in lag_blocks(flow, rows=rows, term=False):
        L = rb.shape[1]
        fit = (rb > 0) & np.isfinite(rb)  # (B, L): the points with a logarithm
        log_sum[:L] += np.log(rb, out=np.zeros_like(rb), where=fit).sum(0, dtype=np.float64)
        count[:L] += fit.sum(0)
    lag = np.arange(T)
    sel = (lag >= min_lag) & (lag <= max_lag)
    if not count[sel].any():
        raise ValueError("no output error reaches a lag in the fitted range with a non-zero size: "
                         "the decay rate is undefined (every scored error is 0 there)")
    l = lag[sel].astype(float)
    return float(np.exp((l * log_sum[sel]).sum() / (l * l * count[sel]).sum()))


# --- saturation ----------------------------------------------------------------------------------
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


def saturation(flow):
    """Elman: f'(z_t) of one Flow's sequence, from its states s_0..s_{T-1}, a Saturation with
    values (T, H). Gated cells: their gates along the sequence, a GateSaturation. A cell with
    neither (a linear recurrence: the LRU, the linear cell) is a ValueError; has_saturation says
    which cells have it."""
    model = flow.trace.model
    if model.cell.gates:
        return gate_saturation(flow.trace)
    if "activation" not in model.cell.settings:
        raise ValueError(f"saturation is measured on a cell's activation or gates; the {model.cell.name} cell has "
                         "neither setting")
    act = activations.get(model.activation)
    return Saturation(model.activation, act.df_from_output(flow.trace.S[1:, 0]), act.gamma)


def has_saturation(cell) -> bool:
    """Whether saturation() measures something for this cell: it has gates or an activation."""
    return bool(cell.gates) or "activation" in cell.settings


def gate_values(trace, seq=0) -> dict:
    """The gates of a gated cell along sequence `seq` of a trace (or Flow): name -> (T, H) values,
    in the cell's order (cell.gates: LSTM i, f, g, o; GRU r, z, n); those in cell.sigmoid_gates lie
    in [0, 1], the others are tanh candidates."""
    trace = getattr(trace, "trace", trace)
    cell = trace.model.cell
    if not cell.gates:
        raise ValueError(f"gates belong to gated cells ({', '.join(gated_cells())}), not to the {cell.name} cell")
    return {g: trace.cache[j][:, seq] for j, g in enumerate(cell.gates)}


def gated_cells() -> list:
    """The registered cells that have gates."""
    return [n for n in cells.names() if cells.get(n).gates]


@dataclass(frozen=True, eq=False)
class GateSaturation:
    """The sigmoid gates of one sequence of a gated cell: gates, name -> (T, H) values in [0, 1]
    (LSTM: i input, f forget, o output; GRU: r reset, z update).

    A gate near 1 is open and one near 0 is shut; either way its derivative sigma' = sigma (1 -
    sigma) is near 0, so its own weights get almost no error. The gate on the cell's direct path
    decides how far the error travels along it: an LSTM's error reaches c_k from c_t multiplied by
    f_t ... f_{k+1}, a GRU's reaches h_k along its copy multiplied by z_t ... z_{k+1}.
    """

    cell: str
    gates: dict
    path_gate: str | None  # the gate on the direct path (cell.memory): "f" (LSTM) or "z" (GRU)
    threshold: float = 0.1

    def _values(self, gate):
        if gate not in self.gates:
            raise ValueError(f"the {self.cell} cell's sigmoid gates are {', '.join(self.gates)}, got {show(gate)}")
        return self.gates[gate]

    def near_one(self, gate, threshold=None) -> float:
        """The share of (t, unit) pairs whose gate is above 1 - threshold (open)."""
        th = self.threshold if threshold is None else threshold
        return float((self._values(gate) > 1 - th).mean())

    def near_zero(self, gate, threshold=None) -> float:
        """The share of (t, unit) pairs whose gate is below threshold (shut)."""
        th = self.threshold if threshold is None else threshold
        return float((self._values(gate) < th).mean())

    def mean(self, gate) -> float:
        return float(self._values(gate).mean())

    @property
    def path_rate(self) -> float:
        """The geometric mean of the direct path's gate, exp(mean log f) (LSTM) or exp(mean log z)
        (GRU): the per-step factor by which the error that stays on that path shrinks, on average.
        NaN for a cell that declares no such path (cell.memory None, e.g. the minGRU)."""
        if self.path_gate is None:
            return float("nan")
        with np.errstate(divide="ignore"):
            return float(np.exp(np.log(self._values(self.path_gate)).mean()))

    def fraction_saturated(self, threshold=None) -> float:
        """The share of all sigmoid-gate values within threshold of 0 or 1 (the Elman Saturation's
        counterpart: a saturated gate passes almost no error to its own weights)."""
        th = self.threshold if threshold is None else threshold
        v = np.concatenate([a.ravel() for a in self.gates.values()])
        return float(((v < th) | (v > 1 - th)).mean())

    def summary(self) -> dict:
        """Per gate: its mean and the shares near 0 and near 1; and the direct path's rate."""
        out = {g: {"mean": self.mean(g), "near_0": self.near_zero(g), "near_1": self.near_one(g)}
               for g in self.gates}
        return {"cell": self.cell, "threshold": self.threshold, "gates": out, "path_gate": self.path_gate,
                "path_rate": self.path_rate, "saturated": self.fraction_saturated()}

    def histogram(self, gate, bins=20):
        """(counts, edges) of one gate's values over [0, 1]."""
        return np.histogram(self._values(gate), bins=bins, range=(0.0, 1.0))


def gate_saturation(trace, *, seq=0, threshold=0.1) -> GateSaturation:
    """The sigmoid gates of a gated cell along sequence `seq` of a trace (or Flow): a GateSaturation."""
    trace = getattr(trace, "trace", trace)
    values = gate_values(trace, seq)
    cell = trace.model.cell
    return GateSaturation(cell.name, {g: values[g] for g in cell.sigmoid_gates},
                          cell.memory[1] if cell.memory else None, float(threshold))
