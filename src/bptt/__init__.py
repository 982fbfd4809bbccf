"""bptt: exact backpropagation through time for recurrent networks, term by term, verified.

Every registered cell's model class is an attribute by its name: bptt.RNN, and bptt.LSTM,
bptt.GRU and the rest of bptt.cells.names() (bptt.model.model_class). bptt.memory (the curse of
memory: the state's exact sensitivities, the closed forms) and bptt.floss (Lyapunov exponents'
exact gradient, gradient flossing) are imported on first use.
"""
from . import cells
from .batch import analyse_batch
from .check import CheckReport, check
from .backend import backward, forward, gradients, loss
from .core import Grads, Trace
from .diagnosis import Diagnosis, diagnose
from .flow import Flow, flow
from .stack import Stack, load_model, random_stack
from .frameworks import compare
from .spectra import jacobian_spectrum, lyapunov
from .theory import Theory, cliff
from .model import (RNN, Model, identity, normal, orthogonal, random_gated, random_model, random_rnn,
                    seed_example, spectral_radius, uniform, with_spectral_radius)

__version__ = "0.1.0"
__all__ = ["cells", "Model", "RNN", "random_model", "random_rnn", "random_gated", "Trace", "Grads", "flow", "Flow",
           "forward", "backward", "gradients", "loss", "check", "CheckReport", "compare", "seed_example",
           "uniform", "normal", "orthogonal", "identity", "spectral_radius", "with_spectral_radius",
           "analyse_batch", "jacobian_spectrum", "lyapunov", "Theory", "cliff", "memory", "Stack", "random_stack",
           "load_model", "diagnose", "Diagnosis", "floss"]
LAZY = ("memory", "floss")  # submodules imported on first use


def __getattr__(name):
    """The model class of a registered cell by its class name (bptt.LSTM), made on first use; a
    submodule of LAZY, imported on first use."""
    if name in LAZY:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    from .model import model_class

    for cell in map(cells.get, cells.names()):
        if cell.model == name:
            return model_class(cell)
    raise AttributeError(f"module 'bptt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(LAZY) | {cells.get(n).model for n in cells.names()})
