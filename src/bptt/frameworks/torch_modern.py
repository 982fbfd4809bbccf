"""The LRU, minGRU, minLSTM, the linear diagonal cell and the coRNN in PyTorch: a loop over time, autograd.

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
    cornn    the paper's IMEX step, state (y, z): z_t = (z_{t-1} + dt (tanh(W y_{t-1} + Wz z_{t-1} +
             U x_t + b) - gamma y_{t-1})) / (1 + dt eps) (implicit=False: z_{t-1} + dt (tanh(.) -
             gamma y_{t-1} - eps z_{t-1})), y_t = y_{t-1} + dt z_t; q_t = V y_t + c

torch.autograd differentiates the loss with respect to the real parameters and the real initial
state (both entries of the coRNN's). Truncation (truncate=K, the notebook's rule) is built as bptt.frameworks.torch builds it:
output t's state is recomputed from the state before step t-K of the forward pass, detached (the
initial state itself, kept, when t - K <= -1), so autograd stops the error after K+1 steps.
"""
from __future__ import annotations

from ._common import problem, windows

CELLS = ("lru", "mingru", "minlstm", "linear", "cornn")


def _cell(torch, p, P, state0):
    """(step(k, state) -> state, readout(state) -> q (N, O), the initial state) for the cell of p; a
    state is a tuple of tensors, (h,) or the coRNN's (y, z)."""
    step, readout, start = _one(torch, p, P, state0)
    if p.cell == "cornn":
        return step, readout, start
    return (lambda k, s: (step(k, s[0]),)), (lambda s: readout(s[0])), (start,)


def _one(torch, p, P, state0):
    """_cell's parts for a cell of one state entry (h), and the coRNN's."""
    h0 = state0[0]
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
    if p.cell == "cornn":
        dt, gamma, eps, implicit = (p.settings[k] for k in ("dt", "gamma", "eps", "implicit"))

        def cornn(k, state):
            y, z = state
            pre = project(P["U"], k) + y @ P["W"].T + z @ P["Wz"].T
            force = torch.tanh(pre + b if b is not None else pre) - gamma * y
            z = (z + dt * force) / (1 + dt * eps) if implicit else z + dt * (force - eps * z)
            return y + dt * z, z

        return cornn, lambda s: s[0] @ V.T + bias, tuple(state0)

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

    model: bptt.LRU, MinGRU, MinLSTM, Linear or CoRNN. Same arguments and meaning as bptt.gradients
    (for a coRNN h0 may be the pair (y0, z0)); dE/dh0 is (S,) or (N, S) for a batch (S = 2H for the
    LRU, H otherwise), and a coRNN's dE/dz0 is "c0".
    """
    import torch

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    if p.cell not in CELLS:
        raise ValueError(f"the PyTorch loops here know the cells {', '.join(CELLS)}, got a {p.cell} model")
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.params.items()}
    state0 = tuple(torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in p.state0)  # (N, S) each
    step, readout, start = _cell(torch, p, P, state0)

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
            states = [tuple(s.detach() for s in start)]  # states[j]: the state before step j
            for k in range(p.T):
                states.append(step(k, states[-1]))
        total = 0
        for w in windows(p.T, p.K):
            h = run(w.start, w.t + 1, start if w.from_h0 else states[w.start])
            total = total + _step_loss(torch, p, readout(h), w.t)
        total.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy().copy() for k, v in P.items()}
    grads.update(p.state_grads([(s.grad if s.grad is not None else torch.zeros_like(s)).numpy().copy()
                                for s in state0]))
    return float(E.detach()), grads
