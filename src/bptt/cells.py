"""Recurrent cells: one step forward and its backward side by side, and the step's state Jacobian.

A cell is what the engine (core.py) needs to know of a recurrent network's step; everything else
(inputs, outputs, losses, the loop over time, truncation, weight gradients) is the engine's. The
engine hands every cell the same two things:

    a_t = U x_t + b_in      the input's part of step t, (N, G), computed for all steps at once
                            (G = H for Elman; a gated cell stacks its gates' rows: 4H, 3H)
    state_{t-1}             a tuple of (N, H) arrays; its first entry is the hidden output h_{t-1},
                            the one the head reads (Elman: (s,); a cell with a memory: (h, c))

and a cell gives back:

    step(m, a, state)                   -> (state_t, cache_t)    m: the model, for its weights
    step_back(m, prev, state, cache, d) -> (d_a, d_r, d_prev)
        prev, state, cache   state_{t-1}, state_t and cache_t as the forward step had them
        d      dE/d state_t (a tuple like the state), the error arriving at step t's output
        d_a    dE/d a_t: the error of the input's part, (N, G); dU = sum_t d_a_t x_t^T
        d_r    dE/d (W h_{t-1} + b_rec): the error of the recurrent product, (N, G);
               dW = sum_t d_r_t h_{t-1}^T. For Elman d_r = d_a = delta_t (the notebook's dE/dz_t)
        d_prev dE/d state_{t-1} through this step: the error the loop carries on
    jacobian(m, prev, state, cache)     -> d state_t / d state_{t-1}: (N, S, S), S = the state's size
                                           (the state's entries stacked: Elman H, a cell with (h, c) 2H)

Every operation broadcasts over leading axes: `d` may carry extra leading axes (the engine's
truncation window and bptt.flow send many outputs' errors back through one step at once), the
state and cache broadcast against them.

The weights a cell reads from the model are named in `weights`: (input weight, recurrent weight,
input bias, recurrent bias); a bias is None when the cell has none of that kind.
"""
from __future__ import annotations

import numpy as np

from . import activations


class Elman:
    """The notebook's cell:  z_t = U x_t + W s_{t-1} + b,  s_t = f(z_t).

    state (s,): s (N, H);  cache (z_t,): (N, H);  G = H.
    """

    name = "elman"
    weights = ("U", "W", "b", None)  # input weight, recurrent weight, input bias, recurrent bias

    def __init__(self, activation="tanh"):
        self.activation = activations.get(activation)

    def step(self, m, a, state):
        """z_t = a_t + W s_{t-1} (a_t = U x_t + b),  s_t = f(z_t)."""
        (s_prev,) = state
        z = a + s_prev @ m.W.T          # (N, H)
        return (self.activation.f(z),), (z,)

    def step_back(self, m, prev, state, cache, d):
        """delta_t = dE/ds_t * f'(z_t);  dE/ds_{t-1} = W^T delta_t (row vectors: delta_t W)."""
        (s,), (ds,) = state, d
        delta = ds * self.activation.df_from_output(s)  # (..., N, H): dE/dz_t
        return delta, delta, (delta @ m.W,)

    def jacobian(self, m, prev, state, cache):
        """ds_t/ds_{t-1} = diag(f'(z_t)) W: (N, H, H)."""
        (s,) = state
        return self.activation.df_from_output(s)[..., :, None] * m.W
