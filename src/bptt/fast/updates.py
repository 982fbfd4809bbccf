"""Optimisers' element-wise updates in one compiled pass over each parameter, with the numbers of
their NumPy expressions to the bit (bptt.train.optim calls them; NumPy's form makes seven passes
and as many arrays, which at a small model's sizes is most of an update's time).

Each function returns the results of the parameters it applies to: not where calls run no
compiled kernels or NumPy's error handling for underflow is set to other than "ignore", nor to
arrays other than C-ordered float64 arrays of one shape; the caller evaluates the NumPy
expression for the others. Where a result is not finite the caller does that too, so NumPy's
warnings (overflow, invalid value) come as they would.
"""
from __future__ import annotations

import numpy as np

from . import runtime


def adagrad(params, grads, mems, lr, eps) -> dict:
    """{name: (p - lr g / sqrt(mem + g^2 + eps), mem + g^2)} as new arrays laid out as the NumPy
    expression lays them out (C order: p and mem are), for the names where this applies (none,
    {}, without compiled kernels). params, grads, mems: dicts of arrays by the same names."""
    numerics = runtime.kernels()
    if numerics is None or np.geterr()["under"] != "ignore":
        return {}
    done, lr, eps = {}, float(lr), float(eps)
    for k in params:
        p, g, mem = params[k], grads[k], mems[k]
        if type(p) is np.ndarray and type(g) is np.ndarray and type(mem) is np.ndarray and p.ndim \
                and p.dtype == g.dtype == mem.dtype == np.float64 and p.flags.c_contiguous \
                and mem.flags.c_contiguous and g.shape == p.shape == mem.shape:
            new_p, new_mem = np.empty_like(p), np.empty_like(mem)
            flat = np.ascontiguousarray(g).reshape(-1)  # a column-major gradient (dU's transposed view) copied
            if numerics.adagrad_step(p.reshape(-1), flat, mem.reshape(-1), lr, eps, new_p.reshape(-1),
                                     new_mem.reshape(-1)):
                done[k] = new_p, new_mem
    return done
