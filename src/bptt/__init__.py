"""bptt: exact backpropagation through time for Elman RNNs, term by term, verified."""
import functools

from . import backend as _backend
from .batch import analyse_batch
from .check import CheckReport, check
from .backend import forward, gradients, loss
from .core import Grads, Trace
from .flow import Flow, flow
from .frameworks import compare
from .spectra import jacobian_spectrum, lyapunov
from .theory import Theory, cliff
from .model import (RNN, identity, normal, orthogonal, random_rnn, seed_example, spectral_radius,
                    uniform, with_spectral_radius)
from .model import GRU, LSTM, Model, random_gated



@functools.wraps(_backend.backward)
def backward(trace, y, **kwargs):
    if not isinstance(trace, Trace):  # the backend reads trace.model first: anything else is an AttributeError there
        raise TypeError(f"backward takes the Trace that bptt.forward returns, got {type(trace).__name__}")
    return _backend.backward(trace, y, **kwargs)


__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Model", "random_gated", "Trace", "Grads", "flow", "Flow", "forward",
           "backward", "gradients", "loss", "check",
           "CheckReport", "compare", "random_rnn",
           "seed_example", "uniform", "normal", "orthogonal", "identity", "spectral_radius",
           "with_spectral_radius", "analyse_batch", "jacobian_spectrum", "lyapunov", "Theory",
           "cliff"]
