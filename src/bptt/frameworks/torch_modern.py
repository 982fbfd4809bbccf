"""The LRU, minGRU, minLSTM and the linear diagonal cell in PyTorch: a loop over time, autograd.

PyTorch has no layer for these cells, so each is written as a PyTorch user writes it, from the
papers' equations (not from bptt's cells), one step at a time in float64:

    linear   h_t = lam * h_{t-1} + B x_t
    lru      h_t = lam * h_{t-1} + gamma * (B x_t) in complex128 tensors: lam = exp(-exp(nu_log) +
             i exp(theta_log)), B = B_re + i B_im, gamma = exp(gamma_log) (1 without gamma_log);
             h0 = Re h0 + i Im h0 from the real (N, 2H) [Re h0, Im h0]; q_t = Re(C h_t) + c with
             C = V[:, :H] - i V[:, H:], which is V [Re h_t, Im h_t] + c
    mingru   z = sigma(U_z x_t + b_z), h~ = U_h x_t + b_h, h_t = (1 - z) * h_{t-1} + z * h~
    minlstm  f, i = sigma(U_f x_t + b_f), sigma(U_i x_t + b_i), h~ = U_h x_t + b_h,
             h_t = (f * h_{t-1} + i * h~) / (f + i)

torch.autograd differentiates the loss with respect to the real parameters and the real initial
state. Truncation (truncate=K, the notebook's rule) is built as bptt.frameworks.torch builds it:
output t's state is recomputed from the state before step t-K of the forward pass, detached (the
initial state itself, kept, when t - K <= -1), so autograd stops the error after K+1 steps.
"""
from __future__ import annotations

from ._common import problem, windows

CELLS = ("lru", "mingru", "minlstm", "linear")


def _cell(torch, p, P, h0):
    """(step(k, h) -> h, readout(h) -> q (N, O), the initial state (N, H)) for the cell of p."""
    if p.ids is not None:
        ids = torch.tensor(p.ids)  # (N, T)
        project = lambda M, k: M.T[ids[:, k]]  # noqa: E731  U x_t for ids: column x_t of M
    else:
        X = torch.tensor(p.X)  # (N, T, D)
        project = lambda M, k: X[:, k].to(M.dtype) @ M.T  # noqa: E731
    V, c = P["V"], P.get("c")
    bias = c if c is not None else 0

    if p.cell == "lru":
        lam = torch.exp(torch.complex(-torch.exp(P["nu_log"]), torch.exp(P["theta_log"])))  # (H,)
        B = torch.complex(P["B_re"], P["B_im"])  # (H, D)
        if "gamma_log" in P:
            B = B * torch.exp(P["gamma_log"])[:, None]
        H = lam.shape[0]
        C = torch.complex(V[:, :H], -V[:, H:])  # (O, H)
        return (lambda k, h: lam * h + project(B, k), lambda h: (h @ C.T).real + bias,
                torch.complex(h0[:, :H], h0[:, H:]))
    if p.cell == "linear":
        return lambda k, h: P["lam"] * h + project(P["B"], k), lambda h: h @ V.T + bias, h0

    H = h0.shape[-1]
    b = P.get("b")

    def gates(k):
        g = project(P["U"], k)
        return g + b if b is not None else g

    def mingru(k, h):
        g = gates(k)
        z = torch.sigmoid(g[:, :H])
        return (1 - z) * h + z * g[:, H:]

    def minlstm(k, h):
        g = gates(k)
        f, i = torch.sigmoid(g[:, :H]), torch.sigmoid(g[:, H:2 * H])
        return (f * h + i * g[:, 2 * H:]) / (f + i)

    return {"mingru": mingru, "minlstm": minlstm}[p.cell], lambda h: h @ V.T + bias, h0


def _step_loss(torch, p, q, t):
    """E_t summed over the batch, times the reduction's scale: q (N, O) at step t."""
    if p.head == "mse":
        err = ((q - torch.tensor(p.y_values[:, t])) ** 2).sum(-1)
        return (err * torch.tensor(p.mask[:, t])).sum() * p.scale
    return torch.nn.functional.cross_entropy(q, torch.tensor(p.y_ids[:, t]), ignore_index=-1,
                                             reduction="sum") * p.scale


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {params by the model's names, "h0"}) computed by torch.autograd in float64.

    model: bptt.LRU, MinGRU, MinLSTM or Linear. Same arguments and meaning as bptt.gradients; dE/dh0
    is (S,) or (N, S) for a batch (S = 2H for the LRU, H otherwise).
    """
    import torch

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    if p.cell not in CELLS:
        raise ValueError(f"the PyTorch loops here know the cells {', '.join(CELLS)}, got a {p.cell} model")
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.params.items()}
    h0t = torch.tensor(p.h0, dtype=torch.float64, requires_grad=True)  # (N, S)
    step, readout, start = _cell(torch, p, P, h0t)

    def run(k0, k1, h):
        for k in range(k0, k1):
            h = step(k, h)
        return h

    h, E = start, 0
    for t in range(p.T):
        h = step(t, h)
        E = E + _step_loss(torch, p, readout(h), t)
    if p.K is None:
        E.backward()
    else:
        with torch.no_grad():  # the states the windows restart from, detached
            states = [start.detach()]  # states[j]: the state before step j
            for k in range(p.T):
                states.append(step(k, states[-1]))
        total = 0
        for w in windows(p.T, p.K):
            h = run(w.start, w.t + 1, start if w.from_h0 else states[w.start])
            total = total + _step_loss(torch, p, readout(h), w.t)
        total.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy().copy() for k, v in P.items()}
    g0 = h0t.grad if h0t.grad is not None else torch.zeros_like(h0t)
    grads.update(p.state_grads([g0.numpy().copy()]))
    return float(E.detach()), grads
