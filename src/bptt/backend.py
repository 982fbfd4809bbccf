"""The public engine functions, each run by one of two backends with the same interface:

    "reference"   bptt.core: plain NumPy, one step at a time, the definition every path is tested against
    "fast"        bptt.fast: the same results to rounding, with compiled loops (Numba), buffers
                  written in place, BLAS thread control and a helper thread; the cells it has
                  kernels for and every cell whose step is linear in its state (fast.supports)

backend=None picks the environment variable BPTT_BACKEND when it is set ("reference" or "fast"),
else the fast backend wherever it supports the model and the reference elsewhere (a cell a user
registers runs on the reference, unless its step is linear in its state: Cell.linear). A
bptt.Stack follows the same rule with its layers: the fast backend (fast/stacked.py) where it
supports every layer, else the reference stack (bptt.stack). Naming "fast" for a model it does not
support is an error, not a quiet fallback.
"""
from __future__ import annotations

import os

from . import core, fast, stack
from .validate import a_network, show

BACKENDS = ("reference", "fast")


def engine(model, backend=None):
    """The module that computes for this model: bptt.core or bptt.fast; for a bptt.Stack,
    bptt.stack (the reference engine's loop through the layers) or bptt.fast.stacked."""
    a_network(model)
    name = backend if backend is not None else os.environ.get("BPTT_BACKEND") or None
    where = "backend" if backend is not None else "the environment variable BPTT_BACKEND"
    if name is not None and (not isinstance(name, str) or name not in BACKENDS):
        raise ValueError(f"{where} must be one of {', '.join(BACKENDS)}, got {show(name)}")
    if isinstance(model, stack.Stack):
        missing = None if name == "reference" else fast.stacked.unsupported(model)
        if name == "fast" and missing is not None:
            raise ValueError(f"the fast backend has no kernels for {missing} of this stack: use "
                             "backend='reference' (or backend=None, which takes the reference for it)")
        return stack if name == "reference" or missing is not None else fast.stacked
    if name == "reference":
        return core
    if fast.supports(model):
        return fast
    if name == "fast":
        raise ValueError(f"the fast backend has no kernels for the {model.cell.name} cell: use backend='reference' "
                         "(or backend=None, which takes the reference for it)")
    return core


def name(module) -> str:
    """The name of a backend module: "reference" for bptt.core and bptt.stack, "fast" for
    bptt.fast and bptt.fast.stacked."""
    return "fast" if module is fast or module is fast.stacked else "reference"


def _scan(model, scan):
    """scan checked for the model (every layer of a stack)."""
    return stack.scan_method(model, scan) if isinstance(model, stack.Stack) else core.scan_method(model, scan)


def forward(model, x, h0=None, *, scan="sequential", backend=None):
    """Run the network over x: a Trace with .states (T+1, H) / (N, T+1, H), .z, .q, .o, .final.

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if None.
    scan: "sequential" (a loop over the steps) or "parallel" (an associative scan, for a cell whose
    step is linear in its state: bptt.scan); backward then computes the errors the same way.
    """
    return engine(model, backend).forward(model, x, h0, scan=_scan(model, scan))


def backward(trace, y, *, truncate=None, reduction="sum", backend=None):
    """BPTT from a forward trace: (loss, Grads). truncate=K: the notebook's window (core.py)."""
    if not isinstance(trace, (core.Trace, stack.StackTrace)):
        raise TypeError(f"backward takes the Trace that bptt.forward returns, got {type(trace).__name__}")
    return engine(trace.model, backend).backward(trace, y, truncate=truncate, reduction=reduction)


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum", scan="sequential", backend=None):
    """Loss and gradients: (loss, grads) with grads.params by name (grads.U, .W, .V, .b, .c, None
    for a bias the model lacks) and grads.h0.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids (-1 = no loss) or one-hot rows, or
    real values for the mse head. truncate=K: the notebook's rule (output t reaches steps t-K..t).
    scan: "sequential" or "parallel" (an associative scan, for a cell whose step is linear in its
    state; full BPTT's errors by a scan too). A loss or gradient that overflows raises a
    FloatingPointError naming the step where it began.
    """
    return engine(model, backend).gradients(model, x, y, truncate=truncate, h0=h0, reduction=reduction,
                                            scan=_scan(model, scan))


def loss(model, x, y, *, h0=None, reduction="sum", backend=None) -> float:
    """The loss E alone (a forward pass)."""
    return engine(model, backend).loss(model, x, y, h0=h0, reduction=reduction)
