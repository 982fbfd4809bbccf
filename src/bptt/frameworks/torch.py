"""The same Elman RNN in PyTorch (float64, autograd), and import/export of torch.nn.RNN + nn.Linear.

`gradients` and `terms` rebuild the model from its arrays and let torch.autograd differentiate it;
nothing of bptt's backward pass is used. Truncation (truncate=K, the notebook's rule) is built
honestly: output t's chain is recomputed from the state s_{t-K-1} of the forward pass, detached,
so autograd itself stops the error after K+1 steps. Outputs with t - K <= -1 start from h0 with
its gradient kept; that is where dE/dh0 comes from.

Weight layout (PyTorch's nn.RNN computes h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)):

    bptt     torch
    U        rnn.weight_ih_l0          (H, D), same layout
    W        rnn.weight_hh_l0          (H, H), same layout
    b        rnn.bias_ih_l0 + rnn.bias_hh_l0   (exported as bias_ih = b, bias_hh = 0)
    V        linear.weight             (O, H), same layout
    c        linear.bias               (O,)
    f        nonlinearity "tanh" or "relu" (nn.RNN has no sigmoid or identity)

to_torch builds nn.RNN(batch_first=True) in the model's dtype; its output sequence is s_0..s_{T-1}
(bptt's trace.states[1:]) and linear(output) is q.
"""
from __future__ import annotations

import numpy as np

from ..model import RNN
from ._common import check_terms_args, problem, windows


def _act(torch, name):
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "identity": lambda z: z}[name]


def _setup(p, requires_grad=True):
    import torch

    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=requires_grad) for k, v in p.params.items()}
    h0 = torch.tensor(p.h0, dtype=torch.float64, requires_grad=requires_grad)  # (N, H)
    return torch, P, h0


def _inputs(torch, p, U, b=None):
    """U x_t (+ b) for every step: (T, N, H). Ids index U's columns; autograd scatters back."""
    if p.ids is not None:
        UX = U.T[torch.tensor(p.ids.T)]  # (T, N, H)
    else:
        UX = torch.tensor(np.swapaxes(p.X, 0, 1)) @ U.T  # (T, N, H)
    return UX + b if b is not None else UX


def _step_loss(torch, p, q, t):
    """E_t summed over the batch (times the reduction's scale): q (N, O) at step t."""
    F = torch.nn.functional
    if p.head == "mse":
        y = torch.tensor(p.y_values[:, t])
        m = torch.tensor(p.mask[:, t])
        return (((q - y) ** 2).sum(-1) * m).sum() * p.scale
    return F.cross_entropy(q, torch.tensor(p.y_ids[:, t]), ignore_index=-1, reduction="sum") * p.scale


def _loss(torch, p, Q):
    """E over all steps: Q (T, N, O)."""
    F = torch.nn.functional
    if p.head == "mse":
        y = torch.tensor(np.swapaxes(p.y_values, 0, 1))
        m = torch.tensor(p.mask.T)
        return (((Q - y) ** 2).sum(-1) * m).sum() * p.scale
    O = Q.shape[-1]
    return F.cross_entropy(Q.reshape(-1, O), torch.tensor(p.y_ids.T.reshape(-1)), ignore_index=-1,
                           reduction="sum") * p.scale


def gradients(model: RNN, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {"U", "W", "V", ["b", "c",] "h0"}) computed by torch.autograd in float64.

    Same arguments and meaning as bptt.gradients; dE/dh0 is (H,) or (N, H) for a batch.
    """
    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    torch, P, h0t = _setup(p)
    f = _act(torch, p.activation)
    UX = _inputs(torch, p, P["U"], P.get("b"))  # (T, N, H)
    c = P.get("c")

    def out(s):
        return s @ P["V"].T + c if c is not None else s @ P["V"].T

    s, states = h0t, [h0t]
    for k in range(p.T):
        s = f(UX[k] + s @ P["W"].T)
        states.append(s)
    E = _loss(torch, p, out(torch.stack(states[1:])))
    if p.K is None:
        E.backward()
    else:
        total = 0
        for w in windows(p.T, p.K):
            s = h0t if w.from_h0 else states[w.start].detach()  # states[j] = s_{j-1}
            for k in range(w.start, w.t + 1):
                s = f(UX[k] + s @ P["W"].T)
            total = total + _step_loss(torch, p, out(s), w.t)
        total.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy().copy() for k, v in P.items()}
    g0 = h0t.grad if h0t.grad is not None else torch.zeros_like(h0t)
    grads["h0"] = p.h0_out(g0.numpy().copy())
    return float(E.detach()), grads


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t.

    The parameter is untied into T copies, copy k used at step k only; torch.autograd's gradient
    of copy k is step k's term. E_t is summed over the batch.
    """
    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    torch, P, h0t = _setup(p, requires_grad=False)
    f = _act(torch, p.activation)
    copies = [P[name].clone().requires_grad_(True) for _ in range(p.T)]
    s = h0t
    for k in range(t + 1):
        U = copies[k] if name == "U" else P["U"]
        b = copies[k] if name == "b" else P.get("b")
        W = copies[k] if name == "W" else P["W"]
        ux = _inputs(torch, p, U, b)[k]  # (N, H)
        s = f(ux + s @ W.T)
    q = s @ P["V"].T + (P["c"] if "c" in P else 0)
    _step_loss(torch, p, q, t).backward()
    zero = np.zeros(p.params[name].shape)
    return np.stack([c.grad.numpy().copy() if c.grad is not None else zero for c in copies])


# --- import / export ---------------------------------------------------------------------------
def to_torch(model: RNN):
    """(torch.nn.RNN, torch.nn.Linear) holding the model's weights, in the model's dtype.

    The RNN is single-layer, batch_first=True; bias_ih = b and bias_hh = 0 when the model has b.
    Only tanh and relu exist in nn.RNN: other activations raise a ValueError.
    """
    if not isinstance(model, RNN):
        raise ValueError(f"to_torch expects a bptt.RNN, got {type(model).__name__}")
    if model.activation not in ("tanh", "relu"):
        raise ValueError(f"torch.nn.RNN supports the nonlinearities 'tanh' and 'relu' only; this model "
                         f"uses {model.activation!r}, which it cannot express")
    import torch

    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}.get(model.dtype)
    if dtype is None:
        raise ValueError(f"to_torch needs a float32 or float64 model, got {model.dtype}")
    rnn = torch.nn.RNN(model.D, model.H, num_layers=1, nonlinearity=model.activation,
                       bias=model.b is not None, batch_first=True, dtype=dtype)
    linear = torch.nn.Linear(model.H, model.O, bias=model.c is not None, dtype=dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(model.U))
        rnn.weight_hh_l0.copy_(torch.tensor(model.W))
        if model.b is not None:
            rnn.bias_ih_l0.copy_(torch.tensor(model.b))
            rnn.bias_hh_l0.zero_()
        linear.weight.copy_(torch.tensor(model.V))
        if model.c is not None:
            linear.bias.copy_(torch.tensor(model.c))
    return rnn, linear


def from_torch(rnn, linear, *, head="softmax") -> RNN:
    """A bptt.RNN from a trained torch.nn.RNN and its torch.nn.Linear head (copies the weights).

    b = bias_ih_l0 + bias_hh_l0. The dtype follows the weights (float32 stays float32).
    head: "softmax" (cross-entropy on the Linear's outputs) or "mse".
    """
    import torch

    if not isinstance(rnn, torch.nn.RNN):
        raise ValueError(f"from_torch expects a torch.nn.RNN (an Elman RNN), got {type(rnn).__name__}")
    if not isinstance(linear, torch.nn.Linear):
        raise ValueError(f"from_torch expects a torch.nn.Linear head, got {type(linear).__name__}")
    if rnn.num_layers != 1:
        raise ValueError(f"bptt models one recurrent layer; this nn.RNN has num_layers={rnn.num_layers}")
    if rnn.bidirectional:
        raise ValueError("bptt models a one-directional RNN; this nn.RNN is bidirectional")
    if linear.in_features != rnn.hidden_size:
        raise ValueError(f"the Linear head takes {linear.in_features} inputs but the RNN has "
                         f"hidden_size {rnn.hidden_size}")

    def arr(t):
        return t.detach().cpu().numpy().copy()

    b = arr(rnn.bias_ih_l0) + arr(rnn.bias_hh_l0) if rnn.bias else None
    c = arr(linear.bias) if linear.bias is not None else None
    return RNN(U=arr(rnn.weight_ih_l0), W=arr(rnn.weight_hh_l0), V=arr(linear.weight), b=b, c=c,
               activation=rnn.nonlinearity, head=head)
