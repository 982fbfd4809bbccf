"""The per-step decomposition of the gradient: the notebook's derivation in code.

Conventions:
- Output t has error E_t. Step k (k <= t) is the k-th use of the shared weights on the way back
  from output t. "Term (t, k)" is step k's part of dE_t/dW:
      term_{t,k} = dE_t/dz_k s_{k-1}^T,   dE_t/dz_k = dE_t/do_t do_t/dq_t V ds_t/dz_t W ... W ds_k/dz_k
  which is the notebook's k-th summand (dE/do . do/dq . V . ds/dz . W . ... . s_{k-1}); for U the
  last factor is x_k, for b it is 1. Terms with k > t are zero. dE_t/dW = sum_k term_{t,k}.
- The lag of term (t, k) is l = t - k.
- dE_ds[t, k] = ||dE_t/ds_k||_2, the size of the error of output t when it reaches state s_k.

All outputs' errors travel back together: at step k the cell's step_back carries the (t >= k)
rows of G[t] = dE_t/ds_k through the step at once (the engine's recurrence with one row per
output instead of one per sequence), so the whole (T, T) table costs one backward pass's worth of
products with T rows instead of T backward passes, and only norms are kept. Terms are rebuilt on
request for one output at a time by the engine's backprop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations, backend, core, heads, validate

TERM_PARAMS = ("W", "U", "b")


@dataclass(frozen=True, eq=False)
class Flow:
    """The gradient of one sequence, decomposed by output t and step k (see the module's notes)."""

    trace: core.Trace
    dQ: np.ndarray     # (T, O): dE_t/dq_t
    dE_ds: np.ndarray  # (T, T): ||dE_t/ds_k||, zero above the diagonal
    dE_dz: np.ndarray  # (T, T): ||dE_t/dz_k||, zero above the diagonal
    loss: float

    @property
    def T(self) -> int:
        return self.dQ.shape[0]

    def _check_t(self, t):
        if isinstance(t, bool) or int(t) != t or not 0 <= t < self.T:
            raise ValueError(f"output step t must be an integer in 0..{self.T - 1}, got {t!r}")
        return int(t)

    def deltas(self, t) -> np.ndarray:
        """dE_t/dz_k for k = 0..T-1: (T, H), rows k > t zero. One backward pass from output t."""
        t = self._check_t(t)
        dH = np.zeros_like(self.trace.S[1:])  # (T, 1, H): output t's error alone
        dH[t] = self.dQ[t] @ self.trace.model.V
        dA, _, _ = core.backprop(self.trace, dH, 0, t + 1)
        out = np.zeros_like(dH[:, 0])
        out[:t + 1] = dA[:, 0]
        return out

    def terms(self, name, t) -> np.ndarray:
        """Step k's term of dE_t/d(name) for every k: (T, *shape of name); slices k > t are zero.

        name: "W" (delta_k s_{k-1}^T), "U" (delta_k x_k^T) or "b" (delta_k); their sum over k is
        dE_t/d(name). V and c have a single term, at k = t.
        """
        if name not in TERM_PARAMS:
            raise ValueError(f"terms are defined for {', '.join(TERM_PARAMS)}, got {name!r} "
                             "(V and c get only the step-t term dE_t/dq_t s_t^T and dE_t/dq_t)")
        model = self.trace.model
        if name == "b" and model.b is None:
            raise ValueError("the model has no bias b")
        dz = self.deltas(t)  # (T, H)
        if name == "W":
            return dz[:, :, None] * self.trace.S[:-1, 0][:, None, :]
        if name == "b":
            return dz
        return dz[:, :, None] * _dense_inputs(self.trace)[:, None, :]

    def explain(self, name="W", t=None, precision=4) -> str:
        """dE_t/d(name) written as the notebook writes it: each term's chain of factors, with values."""
        t = self.T - 1 if t is None else self._check_t(t)
        return _explain(self, name, t, precision)

    # lag analysis (analysis.py, spectra.py, theory.py hold the details) -----------------------
    def by_lag(self):
        """Mean and spread over t of ||dE_t/ds_{t-l}||, of its ratio to ||dE_t/ds_t||, of the term
        norms ||term_{t,t-l}||_F, and the share of the gradient from lags beyond l: a LagProfile."""
        from .analysis import by_lag
        return by_lag(self)

    def decay_rate(self, *, min_lag=1, max_lag=None) -> float:
        """The per-step factor of the error's norm with the lag, fitted on a log scale through the
        origin over every (t, l) (see analysis.decay_rate for the estimator and its properties)."""
        from .analysis import decay_rate
        return decay_rate(self, min_lag=min_lag, max_lag=max_lag)

    def jacobian_spectrum(self, t, k) -> np.ndarray:
        """ln of the singular values of ds_t/ds_k, descending: (H,), finite however long the product."""
        from .spectra import jacobian_spectrum
        return jacobian_spectrum(self.trace, t, k)

    def lyapunov(self, *, burn_in=0):
        """The Lyapunov spectrum of the hidden dynamics along this sequence (QR method)."""
        from .spectra import lyapunov
        return lyapunov(self.trace, burn_in=burn_in)

    def saturation(self):
        """The distribution of f'(z_t) over the sequence: a Saturation."""
        from .analysis import saturation
        return saturation(self)

    def theory(self):
        """gamma, lambda_1, rho, the conditions and the verdict for this model: a Theory."""
        from .theory import theory
        return theory(self.trace.model)

    def bound(self) -> np.ndarray:
        """||dE_t/ds_t|| (lambda_1 gamma)^(t-k) for every (t, k): (T, T), the bound on dE_ds."""
        from .theory import bound_table
        return bound_table(self)


@core.reports_overflow
def flow(model, x, y, *, h0=None) -> Flow:
    """Decompose the gradient of one sequence x (T,) ids or (T, D) dense, targets y (T,) or (T, O)."""
    model.check_finite()
    xin = validate.inputs(model, x)
    if xin.batched:
        raise ValueError(f"flow takes one sequence, got a batch of {xin.N}: call it for each sequence")
    tg = validate.targets(model, y, xin)
    trace = backend.forward(model, x, h0)
    loss, dQ = heads.error(model.head, trace.Q, tg)
    dQ = dQ[:, 0]  # (T, O)
    T, cell = xin.T, model.cell
    dE_ds = np.zeros((T, T), dtype=model.dtype)
    dE_dz = np.zeros((T, T), dtype=model.dtype)
    e = dQ @ model.V  # (T, H): row t is dE_t/ds_t from output t itself
    G = tuple(np.zeros((T, s.shape[-1]), dtype=model.dtype) for s in trace.cell_states)  # row t: dE_t/d state_k
    for k in range(T - 1, -1, -1):
        G[0][k] = e[k]  # output k starts at its own state
        g = tuple(a[k:] for a in G)  # (T-k, H): outputs t >= k
        np.einsum("th,th->t", g[0], g[0], out=dE_ds[k:, k])  # ||dE_t/ds_k||^2
        da, _, prev = cell.step_back(model, *core.step(trace, k), g)  # the state broadcasts (1, H)
        np.einsum("th,th->t", da, da, out=dE_dz[k:, k])  # ||dE_t/dz_k||^2
        for a, p in zip(G, prev):
            a[k:] = p  # dE_t/d state_{k-1}
    np.sqrt(dE_ds, out=dE_ds)
    np.sqrt(dE_dz, out=dE_dz)
    if not (np.isfinite(loss) and np.isfinite(dE_ds).all()):
        raise FloatingPointError(core.nonfinite_message(trace, dQ[:, None]))
    return Flow(trace, dQ, dE_ds, dE_dz, loss)


def _dense_inputs(trace):
    """x_k as vectors (T, D): one-hot rows for ids."""
    xin, model = trace.inputs, trace.model
    return np.eye(model.D, dtype=model.dtype)[xin.ids[0]] if xin.ids is not None else xin.X[0]


def _fmt(a, p):
    return np.array2string(np.asarray(a), precision=p, suppress_small=False, separator=", ",
                           max_line_width=10_000).replace("\n", "")


def _explain(fl: Flow, name, t, p) -> str:
    model, S = fl.trace.model, fl.trace.S[:, 0]
    dz = fl.deltas(t)
    terms = fl.terms(name, t)
    df = activations.get(model.activation).df_from_output(S[1:])
    f = model.activation
    X = _dense_inputs(fl.trace)  # (T, D)
    last = {"W": lambda k: (f"s_{k - 1}", S[k]), "U": lambda k: (f"x_{k}", X[k]), "b": lambda k: ("1", None)}[name]
    head = "o_{t} - y_{t}".format(t=t) if model.head == "softmax" else "2 (q_{t} - y_{t})".format(t=t)
    lines = [f"dE_{t}/d{name} = sum over k = {t}..0 of {t + 1} term(s)", "",
             f"  dE_{t}/dq_{t} = dE_{t}/do_{t} . do_{t}/dq_{t} = {head} = {_fmt(fl.dQ[t], p)}",
             f"  V = {_fmt(model.V, p)}", f"  W = {_fmt(model.W, p)}"]
    for k in range(t, -1, -1):
        chain = [f"dE_{t}/dq_{t}", "V", f"ds_{t}/dz_{t}"]
        for j in range(t - 1, k - 1, -1):
            chain += ["W", f"ds_{j}/dz_{j}"]
        lname, lval = last(k)
        chain.append(lname + ("^T" if name != "b" else ""))
        lines += ["", f"term k = {k} (lag {t - k}): " + " . ".join(chain)]
        for j in range(t, k - 1, -1):
            lines.append(f"  ds_{j}/dz_{j} = diag({f}'(z_{j})) = diag({_fmt(df[j], p)})")
        lines.append(f"  dE_{t}/dz_{k} = {_fmt(dz[k], p)}")
        if lval is not None:
            lines.append(f"  {lname} = {_fmt(lval, p)}")
        lines.append(f"  term = {_fmt(terms[k], p)}   (norm {np.linalg.norm(terms[k]):.{p}g})")
    lines += ["", f"sum = dE_{t}/d{name} = {_fmt(terms.sum(0), p)}"]
    return "\n".join(lines)
