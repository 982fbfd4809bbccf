"""The fast backend: the reference engine's functions (bptt.core) for the Elman, LSTM and GRU
cells, with the same arguments and the same results to rounding, computed faster (engine.py and
kernels.py for the Elman cell, gated.py and gated_kernels.py for the LSTM and the GRU).

bptt.gradients and friends use it wherever it supports the model (backend.py says how to choose).
"""
from . import engine, gated
from .engine import set_compiled, wait_for_kernels

CELLS = ("rnn", "lstm", "gru")  # the cells this backend computes


def supports(model) -> bool:
    """Whether this backend computes for the model's cell."""
    return getattr(model.cell, "name", None) in CELLS


def _module(model):
    """engine.py for the Elman cell, gated.py for the LSTM and the GRU."""
    return engine if model.cell.name == "rnn" else gated


def forward(model, x, h0=None):
    """Run the network over x: a Trace (core.forward's)."""
    return _module(model).forward(model, x, h0)


def backward(trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads) (core.backward's)."""
    return _module(trace.model).backward(trace, y, truncate=truncate, reduction=reduction)


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """Loss and gradients: (loss, Grads) (core.gradients's)."""
    return _module(model).gradients(model, x, y, truncate=truncate, h0=h0, reduction=reduction)


def loss(model, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (core.loss's)."""
    return _module(model).loss(model, x, y, h0=h0, reduction=reduction)


__all__ = ["forward", "backward", "gradients", "loss", "set_compiled", "supports", "wait_for_kernels"]
