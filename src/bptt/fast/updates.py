"""Optimisers' element-wise updates in one compiled pass over each parameter, with the numbers of
their NumPy expressions to the bit (bptt.train.optim calls them; NumPy's form makes seven passes
and as many arrays, which at a small model's sizes is most of an update's time).

Each function returns its results, or None where it does not apply (no compiled kernels, arrays
that are not C-ordered float64 arrays of one shape, NumPy's error handling for underflow set to
other than "ignore"); the caller then evaluates the NumPy expression. Where a result is not finite
the caller does that too, so NumPy's warnings (overflow, invalid value) come as they would.
"""
from __future__ import annotations

import numpy as np

from . import runtime


def adagrad(p, g, mem, lr, eps):
    """(p - lr g / sqrt(mem + g^2 + eps), mem + g^2) as new arrays laid out as the NumPy
    expression lays them out (C order: p and mem are), or None. p, g, mem: arrays of one shape."""
    numerics = runtime.kernels()
    if numerics is None or not (type(p) is np.ndarray and type(g) is np.ndarray and type(mem) is np.ndarray) \
            or p.dtype != np.float64 or g.dtype != np.float64 or mem.dtype != np.float64 or p.ndim == 0 \
            or not (p.flags.c_contiguous and mem.flags.c_contiguous) or g.shape != p.shape \
            or mem.shape != p.shape or np.geterr()["under"] != "ignore":
        return None
    new_p, new_mem = np.empty_like(p), np.empty_like(mem)
    flat = np.ascontiguousarray(g).reshape(-1)  # a column-major gradient (dU's transposed view) copied
    if not numerics.adagrad_step(p.reshape(-1), flat, mem.reshape(-1), float(lr), float(eps),
                                 new_p.reshape(-1), new_mem.reshape(-1)):
        return None
    return new_p, new_mem
