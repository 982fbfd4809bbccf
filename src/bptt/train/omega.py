"""Pascanu, Mikolov & Bengio's (2013) regulariser Omega and its gradient, derived by hand.

Eq. 9 of the paper, in this library's names (row vectors, g_t = dE/ds_t the total error at s_t):

    Omega = mean over (t, n) of (r_t - 1)^2,    r_t = ||dE/ds_t . ds_t/ds_{t-1}|| / ||dE/ds_t||
          = ||a_t|| / ||g_t||,                  a_t = (f'(z_t) * g_t) W = delta_t W

for every transition s_{t-1} -> s_t inside the sequence (t = 1..T-1) and every sequence n of a batch,
leaving out the pairs with ||g_t||^2 <= bound (1e-20), where the ratio is undefined. The paper sums
over k; its released code divides the sum by the number of terms kept, which makes the strength
alpha independent of T and N. That mean is what is computed here. r_t does not depend on how the
loss is scaled, so Omega is the same for reduction "sum" and "mean".

omega(..., exact=True) gives the gradient of Omega itself with respect to every parameter and h0:
Omega depends on the weights directly, through the states s_t (f'(z_t) and the outputs q_t), and
through the backward pass (g_t depends on V, on the output errors dE/dq_t and on W). The adjoint of
the backward pass runs forward in time; then an ordinary BPTT pass carries the error on the states
back. It is checked against finite differences in the tests.

Omega is the Elman cell's (one activation f, ds_t/ds_{t-1} = diag f'(z_t) W); a gated model is a
ValueError.

exact=False gives the paper's eq. 10 instead: the "immediate" derivative with respect to W only,
holding g_t and s_t fixed (what the released code computes); it is not the gradient of Omega.
"""
from __future__ import annotations

import numpy as np

from .. import activations, backend, core, heads, validate

BOUND = 1e-20


def omega(trace: core.Trace, y, *, reduction="sum", exact=True, bound=BOUND):
    """(Omega, grads): grads is a dict name -> dOmega/d(name) for U, W, V, (b, c) and "h0" (N, H).

    trace: bptt.forward(model, x, h0); y: the targets the loss uses (the same forms as bptt.backward).
    exact=False: the paper's eq. 10 (dOmega/dW with g and s held fixed; other entries zero).
    """
    if not isinstance(trace, core.Trace):
        raise TypeError(f"omega takes the Trace that bptt.forward returns, got {type(trace).__name__}")
    heads.check_reduction(reduction)
    model, xin = trace.model, trace.inputs
    if not model.cell.pascanu:
        raise ValueError(f"Omega is derived here for the Elman cell (s_t = f(z_t)), not for a "
                         f"{model.cell.name} model: train gated cells without omega")
    tg = validate.targets(model, y, xin)
    act = activations.get(model.activation)
    S, T, W, V = trace.S, xin.T, model.W, model.V
    fp = act.df_from_output(S[1:])  # (T, N, H): f'(z_t)
    _, dQ = heads.error(model.head, trace.Q, tg, reduction)
    scale, mask = heads.scale(tg, reduction), tg.mask.T.astype(model.dtype)  # mask (T, N)
    P = np.exp(heads.log_softmax(trace.Q)) if model.head == "softmax" else None  # (T, N, O)
    e = dQ @ V  # (T, N, H): V^T dE/dq_t
    d, _, _ = core.backprop(trace, e)  # delta_t = dE/dz_t
    g = e.copy()  # g_t = dE/ds_t = e_t + delta_{t+1} W
    g[:-1] += d[1:] @ W
    a = d[1:] @ W  # (T-1, N, H): a_t for t = 1..T-1
    gn2 = np.einsum("tnh,tnh->tn", g[1:], g[1:])
    keep = gn2 > bound
    count = int(keep.sum())
    zeros = {k: np.zeros_like(v) for k, v in model.params.items()}
    zeros["h0"] = np.zeros((xin.N, model.H), dtype=model.dtype)
    if count == 0:
        return 0.0, zeros
    dt = model.dtype
    gn = np.sqrt(np.where(keep, gn2, 1.0)).astype(dt)
    an = np.sqrt(np.einsum("tnh,tnh->tn", a, a))
    r = an / gn
    value = float(np.sum(np.where(keep, (r - 1) ** 2, 0.0)) / count)
    rbar = np.where(keep, 2 * (r - 1) / count, 0.0).astype(dt)  # dOmega/dr_t (T-1, N)
    safe_an = np.where(an > 0, an, 1.0)
    abar = (rbar / (safe_an * gn))[..., None] * a  # dOmega/da_t
    gdir = -(rbar * r / gn ** 2)[..., None] * g[1:]  # dOmega/dg_t, direct
    H = model.H
    grads = zeros
    grads["W"] = _tdot(d[1:], abar)  # a_t = delta_t W
    if not exact:
        return value, grads
    # adjoint of the backward pass, forward in time
    gbar = np.zeros_like(g)
    fpbar = np.zeros_like(g)
    gbar[1:] = gdir
    WT = W.T
    for t in range(T):
        if t > 0:
            dbar = (abar[t - 1] + gbar[t - 1]) @ WT  # a_t = delta_t W and g_{t-1} = e_{t-1} + delta_t W
            gbar[t] += fp[t] * dbar
            fpbar[t] = g[t] * dbar
    grads["W"] += _tdot(d[1:], gbar[:-1])
    # e_t = dQ_t V
    dQbar = gbar @ V.T  # (T, N, O)
    grads["V"] += _tdot(dQ, gbar)
    if P is None:
        Qbar = 2 * scale * mask[..., None] * dQbar
    else:
        Qbar = scale * mask[..., None] * (P * dQbar - P * np.sum(P * dQbar, axis=-1, keepdims=True))
    # Q = S V^T + c
    grads["V"] += _tdot(Qbar, S[1:])
    if "c" in grads:
        grads["c"] += Qbar.sum(axis=(0, 1))
    sbar = Qbar @ V  # (T, N, H)
    if model.activation == "tanh":
        sbar += -2 * S[1:] * fpbar
    elif model.activation == "sigmoid":
        sbar += (1 - 2 * S[1:]) * fpbar
    # relu and identity: f' is piecewise constant in s, no term
    # ordinary BPTT of sbar through the forward recursion: the engine's
    dZ, _, (dh,) = core.backprop(trace, sbar)
    grads["h0"] = dh
    grads["W"] += _tdot(dZ, S[:-1])
    if "b" in grads:
        grads["b"] += dZ.sum(axis=(0, 1))
    if xin.ids is not None:
        grads["U"] += _tdot(dZ, np.eye(model.D, dtype=dt)[xin.ids.T])  # x_t one-hot
    else:
        grads["U"] += _tdot(dZ, np.swapaxes(xin.X, 0, 1))
    return value, grads


def _tdot(A, B):
    """sum over t and n of A[t, n]^T B[t, n]: (T, N, I), (T, N, J) -> (I, J)."""
    return A.reshape(-1, A.shape[-1]).T @ B.reshape(-1, B.shape[-1])


def omega_value(model, x, y, *, h0=None, reduction="sum") -> float:
    """Omega alone, for a model and a sequence or batch (one forward pass)."""
    return omega(backend.forward(model, x, h0), y, reduction=reduction, exact=False)[0]
