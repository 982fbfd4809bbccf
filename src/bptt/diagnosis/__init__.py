"""Diagnose your own network: the exact flow of the gradient inside the recurrent layers of a PyTorch
or Keras model, under the model's own head and loss.

    d = bptt.diagnose(model, rnn, inputs, loss_fn)

runs model(inputs) once, lets the framework's autograd find the error loss_fn(model(inputs)) puts on
each step's output of the recurrent module rnn (and on its final state, where the loss reads it),
and from there computes everything inside rnn with bptt's engine: the weight gradients (by the
framework's names: they equal what loss.backward() puts in rnn's .grad, to rounding), and per
layer and direction the lag curve and its decay, the memory path, gate saturation, spectral radii,
the largest Lyapunov exponent, the share of the gradient a truncation would lose, the per-step
weight-gradient terms, the first non-finite step, and advice tied to those numbers.
(bptt.diagnosis.numbers states what each number is.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stack import run
from .. import heads, validate

__all__ = ["diagnose", "Diagnosis"]


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """A diagnosis (bptt.diagnose): .grads the recurrent module's weight gradients by the
    framework's names; .entries, per layer and direction, its numbers (bptt.diagnosis.numbers);
    .loss, .T, .N, .nonfinite (where a state or error
    first became non-finite, or None), .agreement (the largest difference between bptt's outputs
    of the layers and the framework's, a check that both ran the same network; None for a network
    rebuilt from a file, which only bptt runs), .framework, .kind,
    .dtype, .lags_over (the sequences the shares beyond lags are of). str(d) is a text summary, d.advice() the verdict's lines, d.save(path) the page."""

    framework: str
    kind: str
    dtype: str
    loss: float
    grads: dict
    entries: list
    T: int
    N: int
    nonfinite: str | None
    agreement: float
    lags_over: int = 0
    stack: object = field(repr=False, default=None)

    def advice(self) -> list:
        """The verdict: one line per finding, each with the number it comes from."""
        from .text import advice
        return advice(self)

    def __str__(self):
        from .text import summary
        return summary(self)

    def _repr_html_(self):
        from .page import html
        return html(self, standalone=False)

    def save(self, path) -> None:
        """Write the diagnosis as one self-contained HTML page (no network, images inline)."""
        from .page import write
        write(self, path)


def diagnose(model, rnn, inputs, loss_fn, *, lags=True) -> Diagnosis:
    """The exact diagnosis of rnn inside model on this batch.

    model: a torch.nn.Module (or a Keras model) that calls rnn (an nn.RNN / nn.LSTM / nn.GRU with
    any num_layers, bidirectional, batch_first, bias; for Keras a SimpleRNN / LSTM / GRU layer or a
    Bidirectional wrapper of one); inputs: what model takes; loss_fn(output) -> the scalar loss.
    lags: the shares of the gradient beyond lags 10, 100, 1000: True (of the whole batch's
    gradient), an integer n (of the first n sequences' gradient: a window's backward pass per lag,
    K + 1 error rows a step, is the one costly part) or False (none). Float64 models give the framework's gradients to ~1e-12;
    float32 models to ~1e-5 (float32 rounding in both).
    """
    if not (isinstance(lags, bool) or isinstance(lags, int) and lags >= 1):
        raise ValueError(f"lags must be True, False or a number of sequences >= 1, got {lags!r}")
    if _is_torch(model):
        from .torch import capture
    elif _is_keras(model):
        from .keras import capture
    else:
        raise TypeError(f"model must be a torch.nn.Module or a Keras model, got {type(model).__name__}")
    from ..progress import Stages

    with Stages("bptt diagnose", delay=1.0) as stage:  # on stderr once the diagnosis lasts a second
        stage("the model's forward and backward pass")
        got = capture(model, rnn, inputs, loss_fn)
        stage.set("the gradient's flow")
        return diagnosed(got, lags)


def diagnosed(got, lags=True) -> Diagnosis:
    """The diagnosis of what a capture found (diagnosis.torch, diagnosis.keras: the recurrent
    module as a bptt.Stack, its input x (N, T, D), initial state h0, the framework's run of it
    (out) and the error its loss put on each step's output (dY) and final state), or of a network
    rebuilt from a file (statedict.network: the stack with the file's head, x and the targets y,
    whose loss bptt computes)."""
    stack, x = got["stack"], got["x"]
    if not np.all(np.isfinite(x)):
        raise ValueError("the recurrent module's input holds NaN or Inf: the diagnosis needs a finite batch")
    xin = validate.Inputs(None, np.ascontiguousarray(x, dtype=stack.dtype), x.shape[0], x.shape[1], True)
    # a state or error that overflows is reported as d.nonfinite; the steps' products are small, and
    # BLAS's threads would only wait for each other at every one of them (threadpoolctl directly: the
    # fast backend's control would load its compiled loops, which the reference engine does not use)
    with np.errstate(all="ignore"), _one_blas_thread():
        return _diagnosis(got, stack, xin, lags)


def _one_blas_thread():
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _diagnosis(got, stack, xin, lags):
    from .numbers import compute
    from ..stack import initial_states

    trace = run(stack, xin, initial_states(stack, got["h0"], xin))
    if "out" in got:  # the framework ran the module: its outputs and the errors its loss put on them
        agreement = _agreement(got, stack, trace)
        loss, dY, final = got["loss"], got["dY"].astype(stack.dtype, copy=False), got["final"]
    else:  # a network rebuilt from a file, under its own head: its loss and errors are bptt's
        agreement, final = None, None
        loss, dQ = heads.error(stack.head, trace.Q, validate.targets(stack, got["y"], xin))
        dY = dQ @ stack.V
    numbers = compute(trace, dY, final, lags=lags)
    ours = got["to_framework"](stack, numbers["grads"]) if "to_framework" in got else numbers["grads"]
    grads = {got["names"][k]: v for k, v in ours.items() if k in got["names"]}
    return Diagnosis(got["framework"], got["kind"], got["dtype"], loss, grads, numbers["entries"],
                     numbers["T"], numbers["N"], numbers["nonfinite"], agreement, numbers["lags_over"], stack)


def _agreement(got, stack, trace) -> float:
    """The largest difference between bptt's outputs of the top layer and the framework's; a
    ValueError when they are not the same network's."""
    ours = trace.outputs(stack.depth - 1)
    theirs = np.swapaxes(got["out"], 0, 1)
    seen = np.isfinite(theirs)  # the steps the framework's layer gave (a layer may give its last only)
    agreement = float(np.max(np.abs(ours - theirs), where=seen, initial=0.0))
    tol = 1e-8 if stack.dtype == np.float64 else 1e-3
    if not agreement <= tol * max(1.0, float(np.max(np.abs(theirs), where=seen, initial=0.0))):
        raise ValueError(f"bptt's run of the recurrent module differs from {got['framework']}'s by {agreement:.3g}: "
                         "the module's weights or input changed between the call and the diagnosis, or it was "
                         "called with an initial state bptt did not see")
    return agreement


def _is_torch(model) -> bool:
    import sys
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_keras(model) -> bool:
    import sys
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)
