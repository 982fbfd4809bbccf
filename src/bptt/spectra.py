"""Spectra of the state-to-state Jacobians: singular values of ds_t/ds_k and Lyapunov exponents.

Conventions: A_j = ds_j/ds_{j-1} (S, S), the one-step Jacobian of the cell's whole state, for
j = 0..T-1 (A_0 maps s_{-1} = h0 to s_0), from the cell's own `jacobian` (cells.py): for an Elman
cell diag(f'(z_j)) W with S = H; for an LSTM the joint state (h, c), S = 2H, rows and columns in
the order h then c, whose c -> c block is diag(f_j) (the cell path); for a GRU S = H. The Jacobian
across several steps is the product ds_t/ds_k = A_t A_{t-1} ... A_{k+1} (the identity when
k = t), and the error of output t at step k is dE_t/ds_k = dE_t/ds_t . ds_t/ds_k, so its singular
values bound how much that error can shrink or grow:
sigma_min ||dE_t/ds_t|| <= ||dE_t/ds_k|| <= sigma_max ||dE_t/ds_t||.
A step that cannot pass anything through some direction (an LSTM with W = 0: h_j does not depend on
h_{j-1}) has exact zero singular values; their logarithms and exponents are -inf.
The step Jacobians are made a chunk of steps at a time (`iter_step_jacobians`, CHUNK entries of the
cell's step errors per chunk), and `lyapunov` consumes them chunk by chunk, holding no (T, S, S)
array.

A product of hundreds of such factors overflows or underflows in floating point (0.5^1000 and
3^1000 are out of range), so nothing here forms it. Both computations carry an orthonormal basis
through the factors, re-orthonormalising with a QR decomposition at every step, and add up the
logarithms of R's diagonal:
- singular values (`jacobian_spectrum`): subspace iteration on the product, one forward sweep
  through the factors and one backward sweep through their transposes per round, until the
  log singular values stop changing (Stewart, "On graded QR decompositions of products of
  matrices", 1995). The results are natural logarithms, finite however long the product.
- Lyapunov exponents (`lyapunov`): one forward sweep along the whole sequence (Benettin et al.,
  1980; the QR method); exponent i is the average per step of log |R_ii|.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import integer

CHUNK = 1 << 16  # entries (S x steps x G) of the step errors a chunk of step Jacobians is made from


def iter_step_jacobians(trace, seq=0, start=0, stop=None):
    """A_j for j = start..stop-1 (default: every step) along sequence `seq`, in order, as (C, S, S)
    chunks of C consecutive steps (the cell's jacobian takes a chunk at once; C * S * G <= CHUNK)."""
    T = trace.cell_states[0].shape[0] - 1
    stop = T if stop is None else stop
    model = trace.model
    S = sum(s.shape[-1] for s in trace.cell_states)
    C = max(1, CHUNK // (S * model.cell.width(model)))
    for j0 in range(start, stop, C):
        j1 = min(stop, j0 + C)
        prev = tuple(s[j0:j1, seq] for s in trace.cell_states)  # (C, H) each: the states before
        now = tuple(s[j0 + 1:j1 + 1, seq] for s in trace.cell_states)
        yield model.cell.jacobian(model, prev, now, tuple(c[j0:j1, seq] for c in trace.cache))


def step_jacobians(trace, seq=0, start=0, stop=None) -> np.ndarray:
    """A_j = d state_j / d state_{j-1} for j = start..stop-1 (default 0..T-1), the cell's step
    Jacobians along sequence `seq` of a trace: (stop - start, S, S) (Elman: diag(f'(z_j)) W, S = H;
    LSTM: the joint state (h, c), S = 2H)."""
    T = trace.cell_states[0].shape[0] - 1
    stop = T if stop is None else stop
    S = sum(s.shape[-1] for s in trace.cell_states)
    out = np.empty((max(stop - start, 0), S, S), dtype=trace.model.dtype)
    j = 0
    for A in iter_step_jacobians(trace, seq, start, stop):
        out[j:j + len(A)] = A
        j += len(A)
    return out


def _logabs_diag(R):
    with np.errstate(divide="ignore"):
        return np.log(np.abs(np.diagonal(R)))


def _sweep(mats, Q, transpose=False):
    """Carry the basis Q through mats in order (each A, or A^T): returns (new Q, sum of log|diag R|)."""
    acc = np.zeros(Q.shape[1])
    for A in mats:
        Q, R = np.linalg.qr((A.T if transpose else A) @ Q)
        acc += _logabs_diag(R)
    return Q, acc


def _close(a, b, tol):
    same_inf = (a == b)
    both = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore"):  # -inf - -inf: exact zeros, already counted as equal
        near = np.abs(a - b) <= tol * np.maximum(1.0, np.abs(a))
    return bool(np.all(same_inf | (both & near)))


def product_log_singular_values(mats, *, tol=1e-12, max_rounds=20, cluster=3.0) -> np.ndarray:
    """ln of the singular values of M = mats[-1] @ ... @ mats[0], descending: (S,). -inf for exact zeros.

    mats: (n, S, S), the factors in the order they act. Each round sweeps forward (M Q) and back
    (M^T Q); the sums of log |R_ii| of the two sweeps agree once Q spans M's right singular
    vectors, and that is the stopping rule (relative tolerance tol). Well separated singular
    values, the usual case for long products, converge in one or two rounds. Values closer than
    e^cluster to each other converge slowly one by one but fast as a group, so after max_rounds
    each such group is finished exactly: the group's diagonal block of the triangular factor
    R_n ... R_1 is the product of the R_j's diagonal blocks (kept rescaled), and its SVD gives them.
    """
    max_rounds = integer("max_rounds", max_rounds, 1)
    mats = np.asarray(mats)
    if mats.ndim != 3 or mats.shape[1] != mats.shape[2]:
        raise ValueError(f"mats must be (n, H, H) square factors, got shape {mats.shape}")
    H = mats.shape[1]
    if mats.shape[0] == 0:
        return np.zeros(H)
    Q = np.eye(H)
    prev = None
    for _ in range(max_rounds):
        U, fwd = _sweep(mats, Q)
        if prev is not None and _close(fwd, prev, tol):
            return np.sort(fwd)[::-1]
        Q, bwd = _sweep(mats[::-1], U, transpose=True)
        if _close(fwd, bwd, tol):
            return np.sort(fwd)[::-1]
        prev = fwd
    return np.sort(_clustered_sweep(mats, Q, _clusters(fwd, cluster)))[::-1]


def _clusters(logsv, gap):
    """Contiguous groups of columns whose neighbouring log values differ by less than gap."""
    cuts = [0] + [i + 1 for i in range(len(logsv) - 1)
                  if not (np.isfinite(logsv[i]) and np.isfinite(logsv[i + 1]))
                  or abs(logsv[i] - logsv[i + 1]) >= gap] + [len(logsv)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _clustered_sweep(mats, Q, groups):
    """One forward sweep keeping each group's diagonal block of the R product; their SVDs."""
    blocks = [np.eye(g.stop - g.start) for g in groups]
    scale = np.zeros(len(groups))
    for A in mats:
        Q, R = np.linalg.qr(A @ Q)
        for i, g in enumerate(groups):
            P = R[g, g] @ blocks[i]
            m = np.abs(P).max()
            if m == 0:
                scale[i] = -np.inf
                m = 1.0
            blocks[i] = P / m
            scale[i] += np.log(m)
    with np.errstate(divide="ignore"):
        return np.concatenate([np.log(np.linalg.svd(P, compute_uv=False)) + c for P, c in zip(blocks, scale)])


def jacobian_spectrum(trace, t, k, *, seq=0, tol=1e-12, max_rounds=20) -> np.ndarray:
    """ln sigma_i(ds_t/ds_k), descending: (S,) (the joint state (h, c) of an LSTM: S = 2H).
    Needs 0 <= k <= t <= T-1 (k = t gives zeros: the identity).

    trace: a Trace (bptt.forward) or a Flow; seq picks the sequence of a batch.
    """
    trace = _trace(trace)
    T = trace.S.shape[0] - 1
    t, k = integer("the step t", t), integer("the step k", k)
    seq = _seq(trace, seq)
    if not 0 <= k <= t <= T - 1:
        raise ValueError(f"need 0 <= k <= t <= T - 1 = {T - 1} for ds_t/ds_k, got t={t}, k={k}")
    A = step_jacobians(trace, seq, k + 1, t + 1)  # A_{k+1} .. A_t, in the order they act
    return product_log_singular_values(A, tol=tol, max_rounds=max_rounds)


def _trace(trace):
    """The Trace of a Trace or a Flow; anything else is a TypeError."""
    from .core import Trace

    trace = getattr(trace, "trace", trace)
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace (bptt.forward) or a Flow (bptt.flow), got {type(trace).__name__}")
    return trace


def _seq(trace, seq) -> int:
    """seq checked against the batch: an integer in 0..N-1 (a negative one would index from the end)."""
    return integer("seq (the sequence of the batch)", seq, 0, trace.cell_states[0].shape[1] - 1)


def lag_spectrum(trace, t, lags, *, seq=0) -> np.ndarray:
    """ln sigma_i(ds_t/ds_{t-l}) for each lag l in lags: (len(lags), S), each row descending."""
    return np.stack([jacobian_spectrum(trace, t, t - int(l), seq=seq) for l in lags])


@dataclass(frozen=True, eq=False)
class Lyapunov:
    """Lyapunov exponents of the state's dynamics along one input sequence (natural log per step).

    exponents: (S,) descending (the joint state (h, c) of an LSTM: S = 2H; -inf for directions a
    step maps to zero); steps: how many Jacobians were averaged (after burn_in).
    exp(max) is the asymptotic per-step growth factor of a generic perturbation of the state, and
    of a generic error travelling back (the transposed product has the same exponents), so it is
    what a gradient's decay rate tends to on long sequences.
    """

    exponents: np.ndarray
    steps: int
    burn_in: int

    @property
    def max(self) -> float:
        return float(self.exponents[0])


def lyapunov(trace, *, seq=0, burn_in=0) -> Lyapunov:
    """The QR method: carry an orthonormal basis through A_0, A_1, ..., A_{T-1}, re-orthonormalising
    each step, and average log |R_ii| over the steps after the first burn_in (which only align the
    basis). trace: a Trace (bptt.forward) or a Flow; seq picks the sequence of a batch."""
    trace = _trace(trace)
    T = trace.cell_states[0].shape[0] - 1
    burn_in = integer("burn_in", burn_in, 0, T - 1)
    seq = _seq(trace, seq)
    Q = np.eye(sum(s.shape[-1] for s in trace.cell_states))
    for A in iter_step_jacobians(trace, seq, 0, burn_in):
        Q, _ = _sweep(A, Q)
    acc = 0.0
    for A in iter_step_jacobians(trace, seq, burn_in, T):
        Q, part = _sweep(A, Q)
        acc = acc + part
    steps = T - burn_in
    return Lyapunov(np.sort(acc / steps)[::-1], steps, burn_in)
