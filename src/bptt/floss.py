"""Gradient flossing (Engelken, NeurIPS 2023): Lyapunov exponents of the forward dynamics as a
differentiable function of the parameters, and the regulariser that pushes the k leading ones to 0.

Conventions (N batch, T time, D input, H hidden, S the width of the cell's whole state: H for an
Elman cell, 2H for an LSTM's (h, c)). The exponents are bptt.lyapunov's, for every sequence of the
batch at once: Q_{-1} = I (S, S), and for t = 0..T-1

    P_t = A_t Q_{t-1},   Q_t R_t = P_t  (QR, numpy's signs),   A_t = d state_t / d state_{t-1}

(the cell's jacobian), lambda_i = sum over t >= burn_in of log |R_t,ii| / (T - burn_in), column i
of the basis; sorted descending they are bptt.lyapunov(trace, seq=n, burn_in=...).exponents.

The gradient of L(lambda) is exact, the whole chain backwards:
- the QR decomposition's vector-Jacobian product (from dP = dQ R + Q dR with Q^T dQ skew and dR R^-1
  upper triangular): with C = Q^T dL/dQ - dL/dR R^T,
      dL/dP = Q (dL/dR R^T + tril(C - C^T, -1)) R^-T;
  dL/dR is diagonal here, dL/dR_ii = dL/dlambda_i / (R_ii (T - burn_in)) at the steps counted;
- P_t = A_t Q_{t-1}: dL/dA_t = dL/dP_t Q_{t-1}^T and dL/dQ_{t-1} = A_t^T dL/dP_t;
- A_t depends on the parameters and on state_{t-1}, a_t (the cell's jacobian_back, the step's
  second derivative): an error on a_t and on the recurrent part, gradients of W's own appearance,
  and an error on state_{t-1};
- the states depend on the parameters through the forward recurrence: the errors on the states
  go back through it by the engine's BPTT (bptt.core.backprop), and every step's errors become
  parameter gradients by the engine's rules (dU = sum_t d_a_t x_t^T, dW = sum_t d_r_t h_{t-1}^T, ...).
Sorting is a permutation: at distinct exponents its gradient is the selected columns'.
The head (V, c) does not enter the dynamics: its gradients are zero.

The forward keeps every Q_t and R_t: 2 T N S^2 numbers. The cells with jacobian_back: `supported()`.
"""
from __future__ import annotations

import numpy as np

from . import core, validate
from .validate import integer


def supported() -> tuple:
    """The registered cells whose step Jacobian has its derivative (Cell.jacobian_back)."""
    from .cells import get, names
    from .cells.base import Cell

    return tuple(n for n in names() if get(n).jacobian_back is not Cell.jacobian_back)


def _trace(model, x, h0):
    from .cells.base import Cell

    validate.a_model(model)
    if type(model.cell).jacobian_back is Cell.jacobian_back:
        raise ValueError(f"the gradient of Lyapunov exponents needs the derivative of the cell's step Jacobian, "
                         f"which the {', '.join(supported())} cells have; the {model.cell.name} cell has none")
    return core.forward(model, x, h0)


def _chain(trace):
    """The QR method over every sequence at once: (Qs, Rs) lists, Qs[t + 1] = Q_t (N, S, S) with
    Qs[0] = I, Rs[t] = R_t (N, S, S)."""
    N = trace.cell_states[0].shape[1]
    S = sum(s.shape[-1] for s in trace.cell_states)
    Qs, Rs = [np.broadcast_to(np.eye(S), (N, S, S))], []
    for t in range(trace.inputs.T):
        A = trace.model.cell.jacobian(trace.model, *core.step(trace, t))  # (N, S, S)
        Q, R = np.linalg.qr(A @ Qs[-1])
        Qs.append(Q)
        Rs.append(R)
    return Qs, Rs


def _columns(Rs, burn_in):
    """Each column's exponent: (N, S), sum of log |R_t,ii| over t >= burn_in, per step."""
    with np.errstate(divide="ignore"):
        return sum(np.log(np.abs(np.diagonal(R, axis1=1, axis2=2))) for R in Rs[burn_in:]) / (len(Rs) - burn_in)


def _burn_in(trace, burn_in):
    return integer("burn_in", burn_in, 0, trace.inputs.T - 1)


def exponents(model, x, h0=None, *, burn_in=0) -> np.ndarray:
    """The Lyapunov exponents of every sequence of the batch x: (N, S), each row descending (x as
    bptt.forward takes it; one sequence gives (1, S)). Row n is bptt.lyapunov(trace, seq=n).exponents."""
    trace = core.forward(model, x, h0)
    _, Rs = _chain(trace)
    return -np.sort(-_columns(Rs, _burn_in(trace, burn_in)), axis=1)


def exponent_grads(model, x, cotangent, h0=None, *, burn_in=0):
    """(exponents, grads): the exponents (N, S) descending, as `exponents` gives them, and the gradient
    of sum(cotangent * exponents) with respect to every parameter, {name: array} (the head's zero).

    cotangent: (N, S), dL/d(exponents) in the same sorted order, or a function of the exponents
    that returns it. x: (T, D) / (N, T, D) or ids; h0 as bptt.forward takes it. Exact (the module's
    notes); a ValueError for a cell without jacobian_back (supported() lists those with it) or a
    step Jacobian with an exact zero direction (log 0).
    """
    trace = _trace(model, x, h0)
    burn_in = _burn_in(trace, burn_in)
    Qs, Rs = _chain(trace)
    cols = _columns(Rs, burn_in)
    order = np.argsort(-cols, axis=1, kind="stable")  # (N, S): sorted position -> column
    lam = np.take_along_axis(cols, order, axis=1)
    cot = np.asarray(cotangent(lam) if callable(cotangent) else cotangent, dtype=np.float64)
    if cot.shape != lam.shape:
        raise ValueError(f"cotangent must have the exponents' shape {lam.shape} (N, S), got {cot.shape}")
    if not np.all(np.isfinite(lam)):
        raise ValueError("a step Jacobian maps a direction to exactly zero (an exponent of -inf): its exponents "
                         "have no gradient")
    w = np.zeros_like(cot)
    np.put_along_axis(w, order, cot, axis=1)
    w /= trace.inputs.T - burn_in  # dL/d log|R_t,ii| at each counted step: (N, S)
    return lam, _backward(trace, Qs, Rs, w, burn_in)


def _backward(trace, Qs, Rs, w, burn_in):
    """The gradients from dL/d log|R_t,ii| = w (N, S) at steps t >= burn_in (the module's notes)."""
    model, cell = trace.model, trace.model.cell
    T = trace.inputs.T
    Qbar = np.zeros_like(Rs[0])
    d_a, d_r, inject, direct = [None] * T, [None] * T, [None] * T, {}
    for t in range(T - 1, -1, -1):
        Q, R, Qp = Qs[t + 1], Rs[t], Qs[t]
        Rbar = np.zeros_like(R)
        if t >= burn_in:
            diag = np.diagonal(R, axis1=1, axis2=2)
            idx = np.arange(R.shape[-1])
            Rbar[:, idx, idx] = w / diag
        C = np.swapaxes(Q, 1, 2) @ Qbar - Rbar @ np.swapaxes(R, 1, 2)
        Xbar = Rbar @ np.swapaxes(R, 1, 2) + np.tril(C - np.swapaxes(C, 1, 2), -1)
        Pbar = np.swapaxes(np.linalg.solve(R, np.swapaxes(Q @ Xbar, 1, 2)), 1, 2)  # Q Xbar R^-T
        prev, state, cache = core.step(trace, t)
        A = cell.jacobian(model, prev, state, cache)
        Qbar = np.swapaxes(A, 1, 2) @ Pbar  # dL/dQ_{t-1}
        d_a[t], d_r[t], inject[t], own = cell.jacobian_back(model, prev, state, cache, Pbar @ np.swapaxes(Qp, 1, 2))
        for k, v in own.items():
            direct[k] = direct.get(k, 0) + v
    # the error on state_t that step t + 1's Jacobian puts there, then back through the recurrence
    on_states = tuple(np.concatenate([np.stack([e[j] for e in inject[1:]]), np.zeros_like(inject[0][j][None])])
                      for j in range(len(inject[0])))  # (T, N, .) each: rows t = 0..T-1
    dA, dR, _ = core.backprop(trace, on_states)
    T_, N = trace.inputs.T, trace.cell_states[0].shape[1]
    dQ = None if model.head is None else np.zeros((T_, N, model.O))
    grads = core.weight_grads(trace, dQ, dA, dR)
    extra = _role_grads(trace, np.stack(d_a), np.stack(d_r))
    for k in grads:
        grads[k] = grads[k] + extra.get(k, 0) + direct.get(k, 0)
    return grads


def _role_grads(trace, dA, dR) -> dict:
    """The gradients of the parameters with a role (input, recurrent and their biases) from errors on
    every step's input part dA and recurrent part dR, (T, N, G), by the engine's rules."""
    model, cell = trace.model, trace.model.cell
    prev = tuple(s[:-1] for s in trace.cell_states)
    g = {}
    for name, p in cell.params.items():
        if name not in model.params or p.role is None:
            continue
        e = dA[..., cell.rows(model, name)] if p.role in ("input", "input bias") else dR
        if p.role == "input":
            g[name] = core.input_grad(model, trace.inputs, e)
        elif p.role == "recurrent":
            g[name] = cell.recurrent_grad(model, e, prev, trace.cache)
        else:
            g[name] = e.reshape(-1, e.shape[-1]).sum(axis=0)
    return g


def flossing(model, x, k, h0=None, *, burn_in=0):
    """Engelken's regulariser on a batch: (loss, grads, exponents), loss = mean over the N sequences of
    the sum of squares of each one's k leading exponents, grads its exact gradient {name: array},
    exponents (N, S) descending. k: 1..S."""
    validate.a_model(model)
    k = integer("k (the leading exponents flossed)", k, 1, sum(model.state_sizes))

    def cotangent(lam):  # dL/dlambda: 2 lambda_i / N for the k leading, 0 for the others
        cot = np.zeros_like(lam)
        cot[:, :k] = 2 * lam[:, :k] / lam.shape[0]
        return cot

    lam, grads = exponent_grads(model, x, cotangent, h0, burn_in=burn_in)
    return float(np.sum(lam[:, :k] ** 2) / lam.shape[0]), grads, lam


__all__ = ["exponents", "exponent_grads", "flossing", "supported"]
