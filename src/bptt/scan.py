"""Linear recurrences h_t = a_t * h_{t-1} + b_t (elementwise), solved step by step or by an
associative scan, forward in time and backward.

Conventions: b (T, ...), and a broadcasting against it as NumPy broadcasts (a (T, 1, H) differs
per step and is shared by the batch; a (H,) is the same every step); h0 (...,) the state before
step 0; real or complex. Returns h (T, ...), h_t for t = 0..T-1.

The scan composes steps: the pair (a, b) stands for the map h -> a h + b, and two maps in a row,
first (a1, b1) then (a2, b2), are (a1 a2, a2 b1 + b2), which is associative. "parallel" computes
every prefix of these maps with the odd-even recursion (Blelloch's work-efficient scan, as
jax.lax.associative_scan does): pairs of neighbours are combined, the half-length sequence is
scanned, and the even positions are filled in, log2 T levels of whole-array operations and about
twice the multiplications of the loop. Its rounding differs from the loop's (the products are
grouped differently); both are exact to the last few bits for |a| <= 1.
"""
from __future__ import annotations

import numpy as np

from .validate import not_masked, show

METHODS = ("sequential", "parallel")


def method(scan) -> str:
    """scan as one of METHODS; a ValueError for anything else."""
    if not isinstance(scan, str) or scan not in METHODS:
        raise ValueError(f"scan must be one of {', '.join(METHODS)}, got {show(scan)}")
    return scan


def _numbers(name, v, steps=False):
    """v as an array of real or complex numbers; steps: with a leading time axis of T >= 1 steps."""
    not_masked(v, name)
    try:
        a = np.asarray(v)
    except (TypeError, ValueError):
        a = np.array(None, dtype=object)
    if a.dtype.kind not in "iufc" or (steps and (a.ndim < 1 or a.shape[0] < 1)):
        raise ValueError(f"{name} must be an array of numbers{' with a leading time axis (T >= 1, ...)' if steps else ''}, "
                         f"got {show(v)}")
    return a


def _shape(names, *arrays):
    try:
        return np.broadcast_shapes(*(np.shape(x) for x in arrays))
    except ValueError:
        raise ValueError(f"{names} must broadcast together, got shapes "
                         + ", ".join(str(np.shape(x)) for x in arrays)) from None


def _steps(a, b, what):
    """(a, b) broadcast to one shape (T, ...), T = b's steps."""
    full = _shape(what, a, b)
    if full[0] != b.shape[0]:
        raise ValueError(f"{what} must broadcast to b's {b.shape[0]} steps, got shapes {np.shape(a)} and {b.shape}")
    return np.broadcast_to(a, full), np.broadcast_to(b, full)


def linear(a, b, h0, scan="sequential"):
    """h_t = a_t * h_{t-1} + b_t for t = 0..T-1 from h_{-1} = h0: (T, ...)."""
    method(scan)
    a, b = _steps(_numbers("a", a), _numbers("b", b, True), "a and b")
    h0 = _numbers("h0", h0)
    T = b.shape[0]
    shape = _shape("the steps and h0", b[0], h0)
    dtype = np.result_type(a, b, h0)
    if method(scan) == "sequential":
        h = np.empty((T,) + shape, dtype=dtype)
        prev = h0
        for t in range(T):
            prev = h[t] = a[t] * prev + b[t]
        return h
    A, B = prefixes(np.broadcast_to(a, (T,) + shape), np.broadcast_to(b, (T,) + shape))
    return A * h0 + B


def prefixes(a, b):
    """(A, B) (T, ...): A_t h + B_t is steps 0..t applied to h, for every t (the odd-even scan);
    a and b of the same shape."""
    a, b = _numbers("a", a, True), _numbers("b", b, True)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    T = a.shape[0]
    if T == 1:
        return a, b
    n = T // 2  # pairs (2i, 2i+1)
    a0, b0, a1, b1 = a[0:2 * n:2], b[0:2 * n:2], a[1:2 * n:2], b[1:2 * n:2]
    Ap, Bp = prefixes(a0 * a1, a1 * b0 + b1)  # the prefixes that end at odd positions
    A, B = np.empty(a.shape, np.result_type(a, b)), np.empty(b.shape, np.result_type(a, b))
    A[1::2], B[1::2] = Ap, Bp
    A[0], B[0] = a[0], b[0]
    ae, be = a[2::2], b[2::2]  # even positions 2i, i >= 1: the prefix at 2i - 1, then step 2i
    A[2::2], B[2::2] = Ap[:len(ae)] * ae, ae * Bp[:len(ae)] + be
    return A, B


def backward(a, e, scan="sequential"):
    """The errors of a linear recurrence: g_t = e_t + conj(a_{t+1}) g_{t+1}, g_{T-1} = e_{T-1}, with
    e (T, ...) the error each output puts on h_t directly. Returns (g (T, ...), conj(a_0) g_0, the
    error at h_{-1})."""
    method(scan)
    a, e = _steps(_numbers("a", a), _numbers("e", e, True), "a and e")
    ca = np.conj(a)
    coef = np.concatenate([np.zeros_like(ca[:1]), ca[:0:-1]])  # reversed: step s carries conj(a_{T-s})
    g = linear(coef, e[::-1], np.zeros(e.shape[1:], np.result_type(ca, e)), scan)[::-1]
    return g, ca[0] * g[0]
