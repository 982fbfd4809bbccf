"""The fast backend: the reference engine's functions (bptt.core) with the same arguments and the
same results to rounding, computed faster, for the cells that have kernels here (Elman, LSTM,
GRU). bptt.gradients and friends use it wherever it supports the model (backend.py says how to
choose); a cell without kernels here (a user's own, say) runs on the reference engine.

The modules: driver.py, the entry points for every cell; runtime.py, what every cell shares
(BLAS and thread control, the two-thread pipeline, output errors, inputs' part and weight
products); numerics.py, the Numba math and the kernels every cell shares; one module per cell
with its step kernels and its adapter to the driver (elman.py with window.py, lstm.py, gru.py).
"""
from .driver import backward, forward, gradients, loss, supports, wait_for_kernels
from .runtime import one_blas_thread, set_compiled


__all__ = ["backward", "forward", "gradients", "loss", "one_blas_thread", "set_compiled", "supports",
           "wait_for_kernels"]
