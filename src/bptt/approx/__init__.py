"""bptt.approx: how wrong a truncated or online gradient is, measured against the exact one.

Every function here takes a model, inputs x and targets y as bptt.gradients does (one sequence or
a batch; weights held fixed over the sequence) and returns what bptt.gradients returns, (loss,
Grads) with .params by the model's names, .h0 (and .c0 for an LSTM), or a measurement of it:

    truncation (bias.py)      window_curve: the exact bias of the notebook's window K for every K
                              from one pass over the terms; lag_table: the gradient split by lag;
                              tbptt_gradient: TBPTT(k1, k2)'s gradient with fixed weights;
                              compare: relative error and cosine per parameter; smallest_window
    forward mode              rtrl: real-time recurrent learning, exact (influence.py; through
                              the layers of a unidirectional bptt.Stack: stacked.py);
                              snap(order=n): SnAp-n, the influence matrix on a sparse pattern
    unbiased estimate         uoro(seed=...): UORO's rank-one estimate; uoro_samples: many at once
    online learning           online.train: weights updated every step, the state carried

The head (V, c) gets its gradient exactly in every method; the methods differ in how they reach
the recurrent parameters and the initial state. Each module states its conventions.
"""
from .bias import (Agreement, Curve, LagTable, compare, lag_table, rule_gradient, smallest_window, tbptt_gradient,
                   window_curve)
from .influence import snap
from .stacked import rtrl
from .uoro import uoro, uoro_samples
from . import online  # noqa: E402 (after uoro: online takes the UORO class from its module)

__all__ = ["rtrl", "snap", "uoro", "uoro_samples", "window_curve", "lag_table", "tbptt_gradient", "rule_gradient",
           "compare", "smallest_window", "Agreement", "Curve", "LagTable", "online"]
