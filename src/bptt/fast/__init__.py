"""The fast backend: the reference engine's functions (bptt.core) for the Elman cell, with the
same arguments and the same results to rounding, computed faster (engine.py, kernels.py).

bptt.gradients and friends use it wherever it supports the model (backend.py says how to choose).
"""
from .engine import backward, forward, gradients, loss, set_compiled, wait_for_kernels


def supports(model) -> bool:
    """Whether this backend computes for the model's cell (the Elman cell only)."""
    return getattr(model.cell, "name", None) == "elman"


__all__ = ["forward", "backward", "gradients", "loss", "set_compiled", "supports", "wait_for_kernels"]
