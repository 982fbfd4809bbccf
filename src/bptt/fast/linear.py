"""Every cell whose step is linear in its state (Cell.linear: the LRU, minGRU, minLSTM, the linear
diagonal recurrence, and a user's cell that defines drive and decay) in the fast backend: one
adapter for all of them, registered for the family (driver.register_family).

Such a step is, elementwise and in the cell's scan form (Cell.to_scan: real, or complex for an
LRU),

    h_t = a_t * h_{t-1} + b_t        (b, cache) = cell.drive(m, A), a = cell.decay(m, cache)

so everything but the recurrence is vectorised over the steps: the cell's drive makes b and what
the steps keep, its step_back every step's errors at once, its param_grads the gradients of its
own parameters; the inputs' part, the outputs, the output errors and the input's and the head's
weight gradients are the driver's (shared.py). The recurrence, forward and back,

    h_t = a_t * h_{t-1} + b_t,   g_t = e_t + conj(a_{t+1}) * g_{t+1}   (e_t = dE_t/dh_t from output t)

is the one sequential part: a compiled loop over the steps (real or complex; the states written
where the trace keeps them when the scan form is the state itself), or for scan="parallel" the
odd-even scan of bptt.scan, compiled and in place, with the reference's grouping of the products.
Without the compiled kernels the same arithmetic runs in NumPy (bptt.scan's loop and scan).

Conventions are core.py's; N batch, T time, W the width of the scan form (H; an LRU's 2H state
is H complex numbers), G the columns of a step's input part. One block of steps: the whole
sequence (the cell's vectorised functions take all its steps at once).

A cell may have compiled steps of its own (its module here registers `fused(Steps)` under its
name): the drive and the recurrence in one pass over the steps, and the recurrence back with the
step's errors in another, with no array between them. They run where calls run compiled kernels
and the scan is "sequential"; everywhere else this module's path runs. Steps gives

    forward(model, A, S, b) -> cache A (T, N, G) the inputs' part without the input bias b (G,)
                                     (zeros without one), which the steps add (the cache may be
                                     views of A, written over); S (T+1, N, H') the states, S[0] given
    backward(model, dS, A, S, dA, dh) -> dR   dA (T, N, G) written; dh (N, H') zeros on entry, the
                                     error at the initial state on exit; dR what weight_terms
                                     reads: the errors of the recurrent parts, or Sums

truncate=K, the notebook's window (output t reaches steps t-K..t), in scan form for all outputs at
once (window): O(T N W) and nothing subtracted, by blocks of K+1 steps, as elman's window.py.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import scan as scans
from ..cells import Cell
from ..core import Trace, cell_grads
from . import driver, runtime
from .numerics import kernel


# --- the recurrence, compiled ------------------------------------------------------------------
@kernel
def recur(a, b, h):
    """h[t+1] = a[t] * h[t] + b[t] for t = 0..T-1. a (Ta, Na, W) with Ta in (1, T) and Na in
    (1, N) (the same coefficients for every step, or every sequence, where 1); b (T, N, W);
    h (T+1, N, W), h[0] given. Real or complex, all of one type."""
    T, N, W = b.shape
    for t in range(T):
        at = a[t if a.shape[0] > 1 else 0]
        for n in range(N):
            ar, br, hp, hn = at[n if at.shape[0] > 1 else 0], b[t, n], h[t, n], h[t + 1, n]
            for j in range(W):
                hn[j] = ar[j] * hp[j] + br[j]


@kernel
def recur_back(c, e, g):
    """g[T-1] = e[T-1], g[t] = c[t+1] * g[t+1] + e[t] for t = T-2..0: the errors of the states,
    with c = conj(a) (Ta, Na, W) as recur's a; e, g (T, N, W)."""
    T, N, W = e.shape
    g[T - 1] = e[T - 1]
    for t in range(T - 2, -1, -1):
        ct = c[t + 1 if c.shape[0] > 1 else 0]
        for n in range(N):
            cr, er, gn, gp = ct[n if ct.shape[0] > 1 else 0], e[t, n], g[t + 1, n], g[t, n]
            for j in range(W):
                gp[j] = cr[j] * gn[j] + er[j]


@kernel
def prefixes(a, b):
    """bptt.scan.prefixes in place: a, b (T, M) become (A, B), A_t h + B_t the steps 0..t applied
    to h. The same tree (pairs of neighbours, then pairs of pairs, ..., then the positions between),
    by strides: up the tree, position i takes the pair that ends at i - d; down, the positions
    between take the prefix that ends before them."""
    T, M = b.shape
    d = 1
    while 2 * d <= T:
        for i in range(2 * d - 1, T, 2 * d):
            a0, b0, a1, b1 = a[i - d], b[i - d], a[i], b[i]
            for j in range(M):
                b1[j] = a1[j] * b0[j] + b1[j]
                a1[j] = a0[j] * a1[j]
        d *= 2
    d //= 2
    while d >= 1:
        for i in range(3 * d - 1, T, 2 * d):
            a0, b0, a1, b1 = a[i - d], b[i - d], a[i], b[i]
            for j in range(M):
                b1[j] = a1[j] * b0[j] + b1[j]
                a1[j] = a0[j] * a1[j]
        d //= 2


def recurrence(a, b, h):
    """recur, compiled where calls run compiled kernels, else NumPy's loop."""
    if runtime.compiled():
        return recur(a, b, h)
    for t in range(b.shape[0]):
        np.multiply(a[t if a.shape[0] > 1 else 0], h[t], out=h[t + 1])
        h[t + 1] += b[t]


def recurrence_back(c, e, g):
    """recur_back, compiled where calls run compiled kernels, else NumPy's loop."""
    if runtime.compiled():
        return recur_back(c, e, g)
    T = e.shape[0]
    g[T - 1] = e[T - 1]
    for t in range(T - 2, -1, -1):
        np.multiply(c[t + 1 if c.shape[0] > 1 else 0], g[t + 1], out=g[t])
        g[t] += e[t]


def scanned(a, b):
    """(A, B), the prefixes of the maps (a_t, b_t), each (T, N, W) C-contiguous: in place on a
    and b, compiled where calls run compiled kernels, else by bptt.scan.prefixes (NumPy)."""
    if not runtime.compiled():
        return scans.prefixes(a, b)
    T = b.shape[0]
    prefixes(a.reshape(T, -1), b.reshape(T, -1))  # views: a and b are contiguous
    return a, b


# --- the arrays ----------------------------------------------------------------------------
def _inputs(model):
    """(UT, bias): the input parameters stacked by rows (Cell.stacked), transposed, (D, G),
    contiguous (the inputs' part gathers its rows for ids), and the stacked input bias (G,) or
    None; read-only, made once per model."""
    cell = model.cell
    UT = np.ascontiguousarray(cell.stacked(model, "input").T)
    bias = cell.stacked(model, "input bias")
    for v in (UT, bias):
        if v is not None:
            v.flags.writeable = False
    return UT, bias


def _bias(model):
    """The stacked input bias (G,), zeros without one, contiguous and read-only."""
    b = runtime.prepared(model, _inputs)[1]
    b = np.zeros(runtime.width(model), dtype=model.dtype) if b is None else np.ascontiguousarray(b)
    b.flags.writeable = False
    return b


def _coefficients(a, T, N, W, dtype):
    """The decay a (anything that broadcasts against (T, N, W)) as the kernels read it: (Ta, Na, W),
    Ta in (1, T), Na in (1, N), contiguous, of the scan's dtype."""
    a = np.asarray(a, dtype=dtype)
    a = a.reshape((1,) * (3 - a.ndim) + a.shape)
    return np.ascontiguousarray(np.broadcast_to(a, (T if a.shape[0] > 1 else 1, N if a.shape[1] > 1 else 1, W)))


def _plain(cell) -> bool:
    """Whether the cell's scan form is its state itself (the recurrence may write into the trace)."""
    return type(cell).to_scan is Cell.to_scan and type(cell).from_scan is Cell.from_scan


class Sums(NamedTuple):
    """What a cell's compiled backward steps give for the gradients of its own parameters: the
    gradients themselves, by name, summed over the steps on the way."""
    grads: dict


class Forward:
    """The forward pass: A (T, N, G) the inputs' part, S (T+1, N, H') the states, Q the outputs; the
    steps (one block: all of them) make b and the cache by the cell's drive and run the recurrence."""

    fused = None  # the cell's compiled steps, where it has them (the module's notes)

    def __init__(self, model, xin, state0, mem, threaded, scan="sequential"):
        T, N = xin.T, xin.N
        self.model, self.xin, self.scan, self.trace = model, xin, scan, None
        self.A = mem.empty("A", (T, N, runtime.width(model)))
        self.S = mem.empty("S", (T + 1, N, state0[0].shape[-1]))
        self.S[0] = state0[0]
        self.Q = mem.empty("Q", (T, N, model.O))
        self.UT, self.bias = runtime.prepared(model, _inputs)
        self.own = self.fused is not None and scan == "sequential" and runtime.compiled()
        if self.own:  # the cell's own steps add the bias as they go: one pass fewer over A
            self.bias, self.b = None, runtime.prepared(model, _bias)

    def steps(self, t0, t1):
        model, cell, S, T = self.model, self.model.cell, self.S, self.xin.T
        if (t0, t1) != (0, T):
            raise ValueError(f"the linear cells' forward pass runs all {T} steps at once, got steps {t0}..{t1 - 1}")
        self.decay = None
        if self.own:
            cache = self.fused.forward(model, self.A, S, self.b)
            self.trace = Trace(model, self.xin, (S,), cache, self.Q, self.scan)
            return
        b, cache = cell.drive(model, self.A)
        h0, a = cell.to_scan(S[0]), cell.decay(model, cache)
        dtype = np.result_type(a, b, h0)
        T, N, W = b.shape
        a = _coefficients(a, T, N, W, dtype)
        b = np.asarray(b, dtype=dtype)
        plain = _plain(cell) and dtype == model.dtype
        if self.scan == "parallel":
            A, B = scanned(np.array(np.broadcast_to(a, b.shape), order="C"), np.array(b, order="C"))  # copies
            if plain:
                np.multiply(A, h0, out=S[1:])
                S[1:] += B
            else:
                S[1:] = cell.from_scan(A * h0 + B)
        elif plain:
            recurrence(a, np.ascontiguousarray(b), S)
        else:
            h = np.empty((T + 1, N, W), dtype=dtype)
            h[0] = h0
            recurrence(a, np.ascontiguousarray(b), h)
            S[1:] = cell.from_scan(h[1:])
        self.decay = a
        self.trace = Trace(model, self.xin, (S,), tuple(cache), self.Q, self.scan)


class Backward:
    """The backward pass, all steps at once: the errors of the states by the recurrence back (or
    the scan), then the cell's step_back on every step: dA, dR (T, N, G)."""

    fused = None  # as Forward's

    def __init__(self, trace, dS, mem, threaded, forward=None):
        self.trace, self.dS, self.mem, self.forward = trace, dS, mem, forward
        self.decay = forward.decay if forward is not None else None
        self.dA = self.dR = self.d0 = None

    def steps(self, t0, t1):
        trace, model = self.trace, self.trace.model
        T = trace.inputs.T
        if (t0, t1) != (0, T):
            raise ValueError(f"the linear cells' backward pass runs all {T} steps at once, got steps {t0}..{t1 - 1}")
        if self.fused is not None and trace.scan == "sequential" and runtime.compiled():
            cache, F = trace.cache, self.forward
            A = F.A if F is not None else cache[0] if len(cache) == 1 else runtime.stacked(cache)
            A, S = np.ascontiguousarray(A), np.ascontiguousarray(trace.S)
            self.dA, dh = self.mem.empty("dA", A.shape), self.mem.zeros("dh", S.shape[1:])
            self.dR = self.fused.backward(model, self.dS, A, S, self.dA, dh)
            self.d0 = (dh,)
            return
        e, c = _errors(trace, self.dS, self.decay)
        if trace.scan == "parallel":  # the errors are the recurrence over the reversed steps
            coef = np.empty(e.shape, dtype=e.dtype)
            coef[0] = 0
            coef[1:] = np.broadcast_to(c, e.shape)[:0:-1]
            g = scanned(coef, np.array(e[::-1], order="C"))[1][::-1]
        else:
            g = self.mem.empty("G", e.shape, e.dtype)
            recurrence_back(c, e, g)
        self.dA, self.dR, self.d0 = _step_errors(trace, g, c[0] * g[0])

    def state0(self):
        return self.d0


def _errors(trace, dS, decay=None):
    """(e, c): the errors dE_t/dh_t from the outputs in scan form, (T, N, W) contiguous, and the
    coefficients of the recurrence back, conj(a) (Ta, Na, W), of one dtype; decay: a as the
    forward pass kept it, if at hand."""
    model, cell = trace.model, trace.model.cell
    e = cell.to_scan(dS)
    a = cell.decay(model, trace.cache) if decay is None else decay
    dtype = np.result_type(a, e)
    a = _coefficients(a, *e.shape, dtype)
    return np.ascontiguousarray(e, dtype=dtype), np.conj(a) if np.iscomplexobj(a) else a


def _step_errors(trace, g, g0):
    """(dA, dR, state0) from the errors of the states in scan form, g (T, N, W) at h_0..h_{T-1}
    and g0 (N, W) at h_{-1}: the cell's step_back on every step at once."""
    model, cell, S = trace.model, trace.model.cell, trace.S
    d = np.asarray(cell.from_scan(g), dtype=model.dtype)
    dA, dR, _ = cell.step_back(model, (S[:-1],), (S[1:],), trace.cache, (d,))
    return dA, dR, (np.asarray(cell.from_scan(g0), dtype=model.dtype),)


def window(e, c, K):
    """The notebook's window in scan form: (g, g0), g[k] = sum over t = k..min(k+K, T-1) of
    conj(a_{k+1}) ... conj(a_t) e_t (T, N, W), and g0 the same sum at h_{-1} (N, W) (outputs t <= K-1).

    By blocks of L = K+1 positions p = 0..T (p = 0 is h_{-1}, p = k+1 is h_k), all blocks at once:
    position p = cL+i sums the outputs of its own block from p on (a backward recurrence that
    restarts at every block's end) and those of the next block's first i positions, u_i, gathered
    at that block's start s = (c+1)L (a forward sum with the products Pre_j of the factors from s
    to s+j) and carried back to p by the product Suf_i of the factors from s down to p+1. Nothing
    is subtracted. c = conj(a) as recur_back's; e (T, N, W)."""
    T, N, W = e.shape
    L = K + 1
    nb = -(-(T + 1) // L)
    E = np.zeros((nb * L, N, W), dtype=e.dtype)
    C = np.zeros_like(E)
    E[1:T + 1], C[1:T + 1] = e, c  # E_p = e_{p-1}; C_p = conj(a_{p-1}), from p back to p-1
    E, C = E.reshape(nb, L, N, W), C.reshape(nb, L, N, W)
    g = np.empty_like(E)
    g[:, L - 1] = E[:, L - 1]
    for i in range(L - 2, -1, -1):  # within each block, from its end
        g[:, i] = C[:, i + 1] * g[:, i + 1] + E[:, i]
    if nb > 1:  # block pairs (c, c+1)
        u = np.zeros((nb - 1, L, N, W), dtype=e.dtype)  # u[c, i]: block c+1's outputs j < i, at its start
        pre = np.ones((nb - 1, N, W), dtype=e.dtype)
        for j in range(L - 1):
            if j:
                pre = pre * C[1:, j]
            u[:, j + 1] = pre * E[1:, j] + u[:, j]
        suf = C[1:, 0]
        for i in range(L - 1, 0, -1):  # u[:, 0] = 0: position cL gets nothing from the next block
            if i < L - 1:
                suf = C[:-1, i + 1] * suf
            g[:-1, i] += u[:, i] * suf
    g = g.reshape(-1, N, W)
    return g[1:T + 1], g[0]


class Linear:
    """The adapter of every cell whose step is linear in its state."""

    forward, backward = Forward, Backward
    splits = True  # a large batch runs as parts on two threads (driver.py): two, with no step products

    @staticmethod
    def step_work(model, N):
        return 0  # no products in the steps

    @staticmethod
    def pipelines(step_work):
        return False  # one block: the cell's functions take all the steps at once

    @staticmethod
    def truncated(trace, dS, K):
        return _step_errors(trace, *window(*_errors(trace, dS), K))

    @staticmethod
    def weight_terms(trace, dA, dR, t0, t1, threaded=False):
        """The cell's own parameters (and a recurrent matrix's, where a cell has one) by core's
        cell_grads, all steps at once; or the sums a cell's compiled steps made."""
        if isinstance(dR, Sums):
            return dict(dR.grads)
        if not runtime.prepared(trace.model, _has_others):
            return {}
        return cell_grads(trace, dA[t0:t1], dR[t0:t1], t0, t1)


def _has_others(model) -> bool:
    """Whether the model has parameters other than the input's and the head's (cell_grads's)."""
    return any(p.role not in ("input", "input bias") for k, p in model.cell.params.items() if k in model.params)


def fused(steps) -> type:
    """The adapter of a cell with compiled steps of its own (the module's notes)."""
    forward = type("Forward", (Forward,), {"fused": steps})
    backward = type("Backward", (Backward,), {"fused": steps})
    return type(f"Linear[{steps.__name__}]", (Linear,), {"forward": forward, "backward": backward})


driver.register_family(lambda cell: cell.linear(), Linear)
