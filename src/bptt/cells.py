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

A cell names its state's entries in `state` (Elman ("s",), LSTM ("h", "c")), and the weights it
reads from the model in `weights`: (input weight, recurrent weight,
input bias, recurrent bias); a bias is None when the cell has none of that kind.

The cells, in PyTorch's equations and gate order (sigma the logistic function, * element-wise):

    Elman   z_t = U x_t + b + W s_{t-1};  s_t = f(z_t)
    LSTM    [i, f, g, o] = U x_t + b + W h_{t-1} + bh   (four blocks of H rows: i, f, o through
            sigma, g through tanh);  c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    GRU     [r, z, n] blocks;  r, z = sigma(U_{r,z} x_t + b_{r,z} + W_{r,z} h_{t-1} + bh_{r,z})
            reset after (PyTorch):  n = tanh(U_n x_t + b_n + r * (W_n h_{t-1} + bh_n))
            reset before (Keras's reset_after=False):  n = tanh(U_n x_t + b_n + W_n (r * h_{t-1}) + bh_n)
            h_t = (1 - z) * n + z * h_{t-1}
"""
from __future__ import annotations

import numpy as np

from . import activations


def _sigmoid(x):
    return activations.get("sigmoid").f(x)


class Cell:
    """What every cell shares: the state Jacobian from step_back, and dW from the recurrent errors."""

    def jacobian(self, m, prev, state, cache):
        """d state_t / d state_{t-1}: (N, S, S), rows and columns in the state's order (h, then c).
        Row j is step_back of the unit error on entry j of state_t (one batched call)."""
        sizes = [p.shape[-1] for p in state]
        S = sum(sizes)
        eye = np.eye(S, dtype=state[0].dtype)[:, None, :]  # (S, 1, S): one unit error per row
        d = tuple(np.broadcast_to(part, (S,) + p.shape) for part, p in
                  zip(np.split(eye, np.cumsum(sizes)[:-1], axis=-1), state))
        _, _, prev_err = self.step_back(m, prev, state, cache, d)
        return np.moveaxis(np.concatenate(prev_err, axis=-1), 0, -2)  # (N, S, S)

    def recurrent_grad(self, m, dR, prev, cache):
        """dW = sum over steps and sequences of dR_t^T h_{t-1}: dR (T, N, G), prev the states
        before each step (tuples of (T, N, H)) -> (G, H)."""
        H = prev[0].shape[-1]
        return dR.reshape(-1, dR.shape[-1]).T @ prev[0].reshape(-1, H)


class Elman(Cell):
    """The notebook's cell:  z_t = U x_t + W s_{t-1} + b,  s_t = f(z_t).

    state (s,): s (N, H);  cache (z_t,): (N, H);  G = H.
    """

    name = "elman"
    state = ("s",)
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


class LSTM(Cell):
    """Long short-term memory, PyTorch's nn.LSTM: state (h, c); cache (i, f, g, o, tanh c_t); G = 4H."""

    name = "lstm"
    state = ("h", "c")
    weights = ("U", "W", "b", "bh")

    def step(self, m, a, state):
        h_prev, c_prev = state
        H = h_prev.shape[-1]
        pre = a + h_prev @ m.W.T + (0 if m.bh is None else m.bh)  # (N, 4H): [i, f, g, o]
        i, f, o = (_sigmoid(pre[..., k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(pre[..., 2 * H:3 * H])
        c = f * c_prev + i * g  # the cell state: the path along which the error can travel unchanged
        tc = np.tanh(c)
        return (o * tc, c), (i, f, g, o, tc)

    def step_back(self, m, prev, state, cache, d):
        """dE/dc_{t-1} = dE/dc_t * f_t along the cell path; everything else through the gates."""
        (_, c_prev), (dh, dc), (i, f, g, o, tc) = prev, d, cache
        dc = dc + dh * o * (1 - tc * tc)  # dE/dc_t: from h_t too
        d_pre = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                                dh * tc * o * (1 - o)], axis=-1)  # (..., N, 4H): dE/d[i, f, g, o] pre-activations
        return d_pre, d_pre, (d_pre @ m.W, dc * f)


class GRU(Cell):
    """Gated recurrent unit, PyTorch's nn.GRU (reset_after=True) or Keras's reset_after=False form:
    state (h,); cache (r, z, n, the reset-gated recurrent part); G = 3H."""

    name = "gru"
    state = ("h",)
    weights = ("U", "W", "b", "bh")

    def __init__(self, reset_after=True):
        self.reset_after = bool(reset_after)

    def step(self, m, a, state):
        (h_prev,) = state
        H = h_prev.shape[-1]
        bh = np.zeros(3 * H, dtype=h_prev.dtype) if m.bh is None else m.bh
        rz = _sigmoid(a[..., :2 * H] + h_prev @ m.W[:2 * H].T + bh[:2 * H])  # (N, 2H)
        r, z = rz[..., :H], rz[..., H:]
        if self.reset_after:
            rec = h_prev @ m.W[2 * H:].T + bh[2 * H:]  # W_n h_{t-1} + bh_n, before the reset gate
            n = np.tanh(a[..., 2 * H:] + r * rec)
        else:
            rec = r * h_prev  # the reset gate applied to the state, before W_n
            n = np.tanh(a[..., 2 * H:] + rec @ m.W[2 * H:].T + bh[2 * H:])
        return ((1 - z) * n + z * h_prev,), (r, z, n, rec)

    def step_back(self, m, prev, state, cache, d):
        ((h_prev,), (dh,), (r, z, n, rec)) = prev, d, cache
        H = h_prev.shape[-1]
        dn = dh * (1 - z) * (1 - n * n)  # dE/d(n's pre-activation)
        dz = dh * (h_prev - n) * z * (1 - z)
        if self.reset_after:
            dr = dn * rec * r * (1 - r)
            d_r = np.concatenate([dr, dz, dn * r], axis=-1)  # the error of W h_{t-1} + bh, block by block
            dh_prev = dh * z + d_r @ m.W
        else:
            drec = dn @ m.W[2 * H:]  # dE/d(r * h_{t-1})
            dr = drec * h_prev * r * (1 - r)
            d_r = np.concatenate([dr, dz, dn], axis=-1)
            dh_prev = dh * z + drec * r + d_r[..., :2 * H] @ m.W[:2 * H]
        return np.concatenate([dr, dz, dn], axis=-1), d_r, (dh_prev,)

    def recurrent_grad(self, m, dR, prev, cache):
        if self.reset_after:
            return super().recurrent_grad(m, dR, prev, cache)
        H = prev[0].shape[-1]
        rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        return np.concatenate([rows(dR[..., :2 * H]).T @ rows(prev[0]),  # W_r, W_z multiply h_{t-1}
                               rows(dR[..., 2 * H:]).T @ rows(cache[3])])  # W_n multiplies r * h_{t-1}
