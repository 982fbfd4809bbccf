"""Which terms of the gradient each training rule keeps, and truncated BPTT over a stream.

Term (t, k) is step k's part of the error of output t (bptt.flow's convention; lag t - k).

    rule                      keeps term (t, k) when                       where
    full BPTT                 0 <= k <= t                                  bptt.gradients(truncate=None)
    per-output window K       t - K <= k <= t                              bptt.gradients(truncate=K)
    (the notebook's bptt_truncate)
    TBPTT(k1, k2)             tau(t) - k2 < k <= t, tau(t) the end of      tbptt_gradients, Stream
    (Williams & Peng 1990)    t's block of k1 outputs; every k1 steps one
                              update backpropagates k2 steps
    min-char-rnn chunks       TBPTT(k1, k1) with the state carried          Stream(k1=25, k2=25)

For T = 6, k1 = 2, k2 = 3 (rows: output t, columns: step k; x = kept):

    t\\k  0 1 2 3 4 5
    0     x . . . . .        block 1 ends at tau = 1: window k = 0..1
    1     x x . . . .
    2     . x x . . .        block 2 ends at tau = 3: window k = 1..3
    3     . x x x . .
    4     . . . x x .        block 3 ends at tau = 5: window k = 3..5
    5     . . . x x x

kept_terms(T, ...) returns that table; tbptt_gradients sums exactly those terms, one update per block,
and Stream runs the rule over a long text while the model changes: each update re-runs the forward
pass over its k2-step window from the carried state at the window's start (min-char-rnn's hprev
when k1 = k2) and backpropagates through the whole window, scoring only the window's last k1 outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend, core, heads, validate
from ..validate import integer, show, too_big


def _check_k(k1, k2):
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {show(k)}")
    if k2 < k1:
        raise ValueError(f"TBPTT(k1, k2) needs k2 >= k1 (every output's error must reach its own step), "
                         f"got k1 = {k1}, k2 = {k2}")
    return min(int(k1), 2**31), min(int(k2), 2**31)  # any k beyond the stream's length acts as its length


def blocks(T, k1):
    """The updates of TBPTT over T steps: list of (first output, last output tau) of each block."""
    T = integer("T", T, 0)
    k1, _ = _check_k(k1, k1)
    too_big(f"TBPTT over T = {T} steps in blocks of k1 = {k1}", T // k1 + 1)
    return [(s, min(s + k1, T) - 1) for s in range(0, T, k1)]


def kept_terms(T, *, truncate=None, k1=None, k2=None) -> np.ndarray:
    """(T, T) bool: True where term (t, k) is kept. truncate=K: the per-output window; k1, k2: TBPTT."""
    T = integer("T", T, 0)
    too_big(f"the (T, T) table of kept terms, T = {T}", 2 * T * T)
    t, k = np.indices((T, T))
    keep = k <= t
    if truncate is not None:
        keep &= k >= t - min(integer("truncate", truncate, 0), T)  # a window beyond T keeps every term
    if k1 is not None:
        k1, k2 = _check_k(k1, k2 if k2 is not None else k1)
        tau = np.minimum((t // k1 + 1) * k1, T) - 1
        keep &= k > tau - k2
    return keep


def tbptt_gradients(model, x, y, k1, k2=None, *, h0=None):
    """TBPTT(k1, k2) over one stream with the parameters held fixed: a list of (loss, Grads), one per
    block of k1 outputs. Grads.h0 is dE_block/d s_{ws-1}, the error at the carried state before the
    block's window. Summing the list gives the sum of the terms kept_terms(T, k1=k1, k2=k2) marks.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: targets as for bptt.backward.
    """
    k1, k2 = _check_k(k1, k2 if k2 is not None else k1)
    trace = backend.forward(model, x, h0)
    xin = trace.inputs
    tg = validate.targets(model, y, xin)
    _, dQ = heads.error(model.head, trace.Q, tg, "sum")
    dH = dQ @ model.V  # (T, N, H): dE_t/ds_t from output t itself
    losses = heads.step_losses(model.head, trace.Q, tg).sum(axis=1)  # (T,)
    inject = np.zeros_like(dH)  # the block's outputs only
    out = []
    for first, tau in blocks(xin.T, k1):
        ws = max(0, tau - k2 + 1)
        inject[first:tau + 1] = dH[first:tau + 1]
        dA, dR, d = core.backprop(trace, inject, ws, tau + 1)  # steps tau down to ws
        inject[first:tau + 1] = 0
        params = core.weight_grads(trace, dQ, dA, dR, ws, tau + 1, q0=first)
        g = core.Grads(params, tuple(s if xin.batched else s[0] for s in d))
        out.append((float(losses[first:tau + 1].sum()), g))
    return out


@dataclass
class Stream:
    """TBPTT(k1, k2) over N parallel token streams data (N, L), with the state carried between updates.

    Position p is the first output of the next block; ws the first step of its window; h the cell's
    state before it, state_{ws-1}, a tuple of (N, H) arrays ((h,), or (h, c) for an LSTM; zeros at
    the start). Like min-char-rnn, the stream goes back to its start (and the state
    to zeros) when the next block would run past the end: when p + k1 + 1 >= L.
    """

    data: np.ndarray
    k1: int
    k2: int
    p: int = 0
    ws: int = 0
    h: tuple | None = None
    epoch: int = 0

    def __post_init__(self):
        self.k1, self.k2 = _check_k(self.k1, self.k2)
        data = np.asarray(self.data)
        if data.dtype.kind not in "iu" or data.size and not 0 <= data.min() <= data.max() <= np.iinfo(np.int64).max:
            raise ValueError(f"a stream's data must be token ids, integers >= 0, got {show(data)}")
        self.data = data.astype(np.int64)
        if self.data.ndim != 2 or self.data.shape[1] < self.k1 + 2:
            raise ValueError(f"a stream needs data of shape (N, L) with L >= k1 + 2 = {self.k1 + 2}, "
                             f"got {self.data.shape}")

    def window(self, widths, dtype, layers=None):
        """(x (N, n), y (N, n) with -1 before the block, h0) for the next update: h0 (N, H) for a
        state of one array, the tuple (h0, c0) for two (an LSTM's). widths: the state entries'
        widths (model.state_sizes). layers: for a unidirectional stack, its number of layers L:
        every state entry is then (L, N, H), PyTorch's h_0 layout."""
        lead = () if layers is None else (layers,)
        parts = len(widths)
        L = self.data.shape[1]
        if self.p + self.k1 + 1 >= L or self.h is None:
            if self.h is not None:
                self.epoch += 1
            self.p, self.ws, self.h = 0, 0, tuple(np.zeros(lead + (self.data.shape[0], H), dtype=dtype) for H in widths)
        if len(self.h) != parts:
            raise ValueError(f"the stream carries a state of {len(self.h)} array(s), the model's has {parts}")
        end = self.p + self.k1
        x = self.data[:, self.ws:end]
        y = self.data[:, self.ws + 1:end + 1].copy()
        y[:, :self.p - self.ws] = -1
        return x, y, self.h[0] if parts == 1 else self.h

    def advance(self, trace):
        """Move to the next block, keeping the state at the next window's start from this trace (a
        stack's: every layer's, StackTrace.cell_states)."""
        nws = max(0, self.p + 2 * self.k1 - self.k2)
        self.h = tuple(np.array(s[nws - self.ws]) for s in trace.cell_states)
        self.ws, self.p = nws, self.p + self.k1

    def state(self):
        """(scalars, the carried state: a tuple of (N, H) arrays, or None before the first window)."""
        return {"p": self.p, "ws": self.ws, "epoch": self.epoch}, self.h

    def restore(self, scalars, h, where="the stream's state"):
        """Back to a state() taken earlier; h a tuple of arrays (an array alone: a one-array state) or None.
        A state this stream cannot have reached (a position past the end of the data, a window start
        that does not go with it, no carried state after the first block, a state of another batch
        size) is a ValueError naming where it came from."""
        p, ws, epoch = (scalars.get(k) if isinstance(scalars, dict) else None for k in ("p", "ws", "epoch"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (p, ws, epoch)):
            raise ValueError(f"{where}: the stream's p, ws and epoch must be integers >= 0, got {show(scalars)}")
        N, L = self.data.shape
        if p % self.k1 or p >= L - 1 or ws != max(0, p + self.k1 - self.k2):
            raise ValueError(f"{where}: stream position p = {p}, ws = {ws} is not one this stream reaches: p is a "
                             f"multiple of k1 = {self.k1} below L - 1 = {L - 1}, ws = max(0, p + k1 - k2) "
                             f"= {max(0, p + self.k1 - self.k2)}")
        if h is not None and not isinstance(h, tuple):
            h = (h,)
        if h is None and p > 0:
            raise ValueError(f"{where}: the stream is at p = {p} but its carried state is missing; resuming "
                             "from zeros would silently change the run")
        if h is not None and any(np.shape(a)[-2:-1] != (N,) for a in h):  # (N, H), or a stack's (L, N, H)
            raise ValueError(f"{where}: the carried state must hold {N} rows (the batch), got shape(s) "
                             f"{', '.join(str(np.shape(a)) for a in h)}")
        self.p, self.ws, self.epoch = p, ws, epoch
        self.h = None if h is None else tuple(np.array(a) for a in h)
