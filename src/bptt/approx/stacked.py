"""Real-time recurrent learning through the depth of a unidirectional stack (bptt.Stack).

Conventions (N batch, L layers; for layer k: S_k its state's size, P_k its recurrent parameters in
influence.layout's order, D_k its input's width; influence.py's notes for one layer):
- at step t the layers run bottom to top: layer k's step reads its own state_{t-1} and its input
  x^k_t, which is x_t for layer 0 and the hidden output h^{k-1}_t of the layer below (the same t)
  for k > 0. So state^k_t depends on the parameters of layers 0..k, and on the initial states of
  layers 0..k.
- the influence of layer k, M^k_t = d state^k_t / d (theta_0, ..., theta_k), (N, S_k, P_0 + ... + P_k),
  carried forward in time and up through the layers:

      M^k_t = J^k_t M^k_{t-1} + [ K^k_t H^{k-1}_t ,  I^k_t ],      M^k_{-1} = 0

  J^k_t (N, S_k, S_k) and I^k_t (N, S_k, P_k) the layer's own step Jacobian and immediate influence
  (influence.Step), K^k_t = d state^k_t / d x^k_t (N, S_k, D_k) its input Jacobian (the step's
  error on its input part d_a times the input weights stacked, as stack.backprop sends errors
  down), and H^{k-1}_t the rows of M^{k-1}_t that belong to the layer below's output h (its first
  state entry). The same with the initial states: M0^k_t = J^k_t M0^k_{t-1} + [K^k_t H0^{k-1}_t, 0],
  M0^k_{-1} = [0, identity].
- only the top layer feeds the head: dE/dtheta = sum_t dE_t/dstate^{L-1}_t M^{L-1}_t, the initial
  states' gradient the same with M0. For fixed weights this is BPTT's gradient through depth and
  time exactly (the chain rule summed in the other order).
- a bidirectional layer has no such form: its reverse direction's state at step t has read
  x_{T-1}, ..., x_t, so no quantity carried forward in time gives it; rtrl refuses it.
- cost per step: O(S_k^2 (P_0 + ... + P_k)) for each layer, memory O(S_k (P_0 + ... + P_k)).
"""
from __future__ import annotations

import numpy as np

from .. import core, heads, stack as stacks, validate
from . import influence
from .influence import Step, check_size, inputs_at, layout, split_state, state_error, step_output


def online(model) -> None:
    """A ValueError when the stack has a bidirectional layer: no forward-in-time form."""
    two = [k for k, pair in enumerate(model.layers) if len(pair) == 2]
    if two:
        raise ValueError(f"RTRL runs forward in time, and a bidirectional layer (layer {two[0]}) has no online form: "
                         "its reverse direction's state at step t has read the inputs after t; use bptt.gradients")


def _input_jacobian(m, prev, state, cache, S):
    """K = d state_t / d x_t (N, S, D) of one layer's step: the identity's errors sent to the input."""
    N = state[0].shape[0]
    eye = np.broadcast_to(np.eye(S, dtype=state[0].dtype)[:, None, :], (S, N, S))
    d_a, _, _ = m.cell.step_back(m, prev, state, cache, split_state(eye, m))
    return np.moveaxis(d_a @ m.cell.stacked(m, "input"), 0, 1)  # (N, S, D)


def rtrl(model, x, y, *, h0=None, reduction="sum"):
    """Real-time recurrent learning (Williams & Zipser 1989): (loss, Grads) like bptt.gradients,
    computed forward in time by carrying the influence matrix; equals BPTT for fixed weights.

    model: a one-layer model (influence.rtrl) or a unidirectional bptt.Stack, whose influence is
    carried up through the layers too (the module's notes); a bidirectional stack is a ValueError
    (its reverse direction has no forward-in-time form).
    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: targets as for bptt.gradients.
    """
    if not isinstance(model, stacks.Stack):
        return influence.rtrl(model, x, y, h0=h0, reduction=reduction)
    return _stack_rtrl(model, x, y, h0=h0, reduction=reduction)


@core.reports_overflow
def _stack_rtrl(model, x, y, *, h0=None, reduction="sum"):
    heads.check_reduction(reduction)
    online(model)
    model.check_finite()
    xin = validate.inputs(model, x)
    tg = validate.targets(model, y, xin)
    scale = heads.scale(tg, reduction)
    layers = [pair[0] for pair in model.layers]
    lays = [layout(m) for m in layers]
    states = stacks.initial_states(model, h0, xin)
    sizes = [sum(m.state_sizes) for m in layers]
    P = np.cumsum([lay.P for lay in lays])  # columns of layers 0..k
    S0 = np.cumsum(sizes)
    for k, m in enumerate(layers):
        check_size(sizes[k], int(P[k]) + int(S0[k]), xin.N)
    N, dt = xin.N, model.dtype
    M = [np.zeros((N, sizes[k], P[k]), dtype=dt) for k in range(len(layers))]
    M0 = []
    for k in range(len(layers)):
        start = np.zeros((N, sizes[k], S0[k]), dtype=dt)
        start[:, :, S0[k] - sizes[k]:] = np.eye(sizes[k], dtype=dt)
        M0.append(start)
    loss, g, g0 = 0.0, 0, 0
    dV, dc = np.zeros_like(model.V), np.zeros(model.O, dtype=dt)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(xin.T):
            below = None
            for k, m in enumerate(layers):
                prev = states[k]
                if k == 0:
                    one = xin._replace(ids=None if xin.ids is None else xin.ids[:, t:t + 1],
                                       X=None if xin.X is None else xin.X[:, t:t + 1], T=1)
                    xt = inputs_at(m, xin, t)
                else:
                    xt = states[k - 1][0]  # h^{k-1}_t: the layer below has stepped already
                    one = validate.Inputs(None, xt[:, None, :], N, 1, True)
                state, cache = m.cell.step(m, m.cell.project(m, one)[0], prev)
                st = Step(m, lays[k], prev, state, cache, xt)
                M[k], M0[k] = st.J @ M[k], st.J @ M0[k]
                M[k][..., P[k] - lays[k].P:] += st.I  # the layer's own parameters' columns
                if below is not None:
                    K = _input_jacobian(m, prev, state, cache, sizes[k])
                    Hk, H0k = below
                    M[k][..., :P[k - 1]] += K @ Hk
                    M0[k][..., :S0[k - 1]] += K @ H0k
                out = m.cell.out(m.H)
                below = (M[k][:, :out], M0[k][:, :out])  # the rows of h^k_t, what layer k + 1 reads
                states[k] = state
            top = layers[-1]
            e, dq, _ = step_output(model, tg, t, states[-1][0], scale)
            dS = state_error(dq @ model.V, top)
            loss += e
            g = g + np.einsum("ns,nsp->p", dS, M[-1])
            g0 = g0 + np.einsum("ns,nsk->nk", dS, M0[-1])
            dV += dq.T @ states[-1][0]
            dc += dq.sum(axis=0)
    grads = _grads(model, xin, lays, P, sizes, g, g0, dV, dc, x, h0)
    if not np.isfinite(loss):
        raise FloatingPointError(stacks.nonfinite_message(stacks.forward(model, x, h0)))
    return float(loss), grads


def _grads(model, xin, lays, P, sizes, g, g0, dV, dc, x, h0) -> core.Grads:
    """Grads by the stack's flat names and its initial-state layout from the flat g (P,), g0 (N, S)."""
    params = {}
    starts = np.concatenate([[0], P])
    for k, lay in enumerate(lays):
        for name, a in lay.split(np.asarray(g)[starts[k]:starts[k + 1]]).items():
            params[f"{name}_l{k}"] = a
    params["V"] = dV
    if model.c is not None:
        params["c"] = dc
    params = {k: params[k].astype(model.dtype, copy=False) for k in model.params}
    parts = np.split(np.asarray(g0, dtype=model.dtype), np.cumsum(sizes)[:-1], axis=-1)
    per = [split_state(p, pair[0]) for p, pair in zip(parts, model.layers)]  # per layer: a tuple of (N, H)
    state0 = []
    for i in range(max(len(p) for p in per)):
        got = [(p[i] if xin.batched else p[i][0]) if i < len(p) else None for p in per]
        same = all(a is not None for a in got) and len({a.shape for a in got}) == 1
        state0.append(np.stack(got) if same else got)
    grads = core.Grads(params, tuple(state0))
    if not all(np.isfinite(v).all() for v in (*params.values(), *(a for a in state0 if not isinstance(a, list)))):
        raise FloatingPointError(stacks.nonfinite_message(stacks.forward(model, x, h0)))
    return grads
