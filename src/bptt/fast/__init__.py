"""The fast backend: the reference engine's functions (bptt.core) with the same arguments and the
same results to rounding, computed faster, for the cells that have kernels here (Elman, LSTM,
GRU, LRU, minGRU, minLSTM) and every cell whose step is linear in its state (Cell.linear).
bptt.gradients and friends use it wherever it supports the model (backend.py says how to choose);
any other cell (a user's own, say) runs on the reference engine.

The modules: driver.py, the entry points for every cell; the runtime every cell shares,
runtime.py (compiled kernels or not, BLAS and thread control, the two-thread pipeline, working
arrays) and shared.py (inputs' part, output errors, weight products); numerics.py, the Numba math
and the kernels every cell shares; one module per cell with its step kernels and its adapter to
the driver (elman.py with window.py, lstm.py, gru.py), and linear.py, the adapter of every cell
whose step is linear in its state, with the compiled steps of lru.py, mingru.py and minlstm.py;
stacked.py, a bptt.Stack's loop through its layers, each by the driver's headless pair; updates.py,
optimisers' element-wise updates in one compiled pass (bptt.train.optim's Adagrad); compiling.py,
the lines a call says while Numba compiles, and ahead.py, which on a cold cache has a forked
process compile some of a call's kernels while this one compiles the others.

A call's numbers depend on its inputs, sizes, dtype and set_compiled only: the same call gives the
same bits first in a process or hundredth, the kernels cached or not.
"""
from . import stacked  # a bptt.Stack's engine (backend.engine returns it)
from .driver import backward, forward, gradients, loss, supports, wait_for_kernels
from .runtime import one_blas_thread, set_compiled
from .updates import adagrad as adagrad_update

__all__ = ["adagrad_update", "backward", "forward", "gradients", "loss", "one_blas_thread", "set_compiled",
           "supports", "wait_for_kernels"]
