"""Training a bptt.Stack (settings layers > 1 or bidirectional): what the loop does differently.

The model is bptt.stack.random_stack of the run's cell: `layers` layers of H = hidden units per
direction, each layer and direction from the cell's own initialisation with the run's options
(layer k > 0 reads the layer below's outputs); its gradients come from the reference engine
through depth and time (bptt.stack). Everything else in the loop takes the stack's parameter
table as it takes one layer's: the optimisers, clipping (the global norm over every layer's
parameters and the head's), the fallback "skip", checkpoints (the stack's structure in the meta,
its arrays by their flat names U_l0, W_l1_reverse, ...).

A stream (TBPTT over the reber and char tasks) carries every layer's state: (L, N, H) per entry
of the state, PyTorch's h_n layout, taken at the next window's start from StackTrace.cell_states.
A bidirectional stack cannot be streamed: its reverse direction at step t needs the inputs after t.

Metrics: rho and lambda1 are the largest over the layers and directions of each one's own
(bptt.theory.recurrence_norms); lag_fraction and snapshots are the top layer's bptt.flow, the top
layer run as a one-layer model with the stack's head over the outputs of the layer below (exactly
its part of the stack's gradient); a bidirectional stack has no such table (lag_fraction null,
snapshots refused by the settings).

Refused by the settings (one-line errors): omega (Pascanu's Omega is one Elman layer's), param (one
W through A), truncate (one layer's window), the fallback "shrink" (one W to scale).
"""
from __future__ import annotations

import numpy as np

from .. import stack as stacks
from ..model import model_class
from ..theory import recurrence_norms


def is_stack(model) -> bool:
    return isinstance(model, stacks.Stack)


def initial(cfg, task, rng):
    """The run's random stack, drawn from rng."""
    return stacks.random_stack(cfg.cell, cfg.hidden, task.D, task.O, layers=cfg.layers,
                               bidirectional=cfg.bidirectional, seed=rng, head=task.head,
                               dtype=np.dtype(cfg.dtype), **cfg.model_options())


def state_sizes(model) -> tuple:
    """The widths of one layer's state entries (every layer of a run's stack has the same)."""
    return model.layers[0][0].state_sizes if is_stack(model) else model.state_sizes


def entries(model):
    """The number of layers and directions whose states a stream carries (None for one layer)."""
    return len(model.entries) if is_stack(model) else None


def norms(model) -> tuple:
    """(rho, lambda1): a layer's own, or the largest over a stack's layers and directions (None
    where no layer has one)."""
    if not is_stack(model):
        return recurrence_norms(model)
    got = [recurrence_norms(m) for _, _, m in model.entries]
    pick = lambda vals: max(vals) if vals else None  # noqa: E731
    return pick([r for r, _ in got if r is not None]), pick([n for _, n in got if n is not None])


def flow_model(model, x):
    """(one-layer model, its inputs) whose bptt.flow is the flow to analyse: the model itself and x,
    or a unidirectional stack's top layer with the stack's head over the layer below's outputs
    (float64; None for a bidirectional stack)."""
    if not is_stack(model):
        return model.astype(np.float64), x
    if any(len(pair) > 1 for pair in model.layers):
        return None, None
    model = model.astype(np.float64)
    top = model.layers[-1][0]
    one = model_class(type(top.cell))(**top.params, **top.cell.values, V=model.V, c=model.c, head=model.head)
    if model.depth == 1:
        return one, x
    below = stacks.forward(stacks.Stack(list(model.layers[:-1]), np.zeros((1, top.D)), None, model.head), x)
    X = below.outputs(model.depth - 2)  # (T, N, D) of the top layer's inputs
    return one, (X[:, 0] if not below.inputs.batched else np.swapaxes(X, 0, 1))
