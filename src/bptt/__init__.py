"""bptt: exact backpropagation through time for Elman RNNs, term by term, verified."""
from .batch import analyse_batch
from .check import CheckReport, check
from .backend import backward, forward, gradients, loss
from .core import Grads, Trace
from .flow import Flow, flow
from .frameworks import compare
from .spectra import jacobian_spectrum, lyapunov
from .theory import Theory, cliff
from .model import (RNN, identity, normal, orthogonal, random_rnn, seed_example, spectral_radius,
                    uniform, with_spectral_radius)
from .model import GRU, LSTM, Model, random_gated

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "Model", "random_gated", "Trace", "Grads", "flow", "Flow", "forward",
           "backward", "gradients", "loss", "check",
           "CheckReport", "compare", "random_rnn",
           "seed_example", "uniform", "normal", "orthogonal", "identity", "spectral_radius",
           "with_spectral_radius", "analyse_batch", "jacobian_spectrum", "lyapunov", "Theory",
           "cliff"]
