"""The per-step decomposition of the gradient: the notebook's derivation in code, for every cell.

Conventions:
- Output t has error E_t. Step k (k <= t) is the k-th use of the shared weights on the way back
  from output t. "Term (t, k)" is step k's part of dE_t/dW:
      term_{t,k} = dE_t/dz_k s_{k-1}^T,   dE_t/dz_k = dE_t/do_t do_t/dq_t V ds_t/dz_t W ... W ds_k/dz_k
  which is the notebook's k-th summand (dE/do . do/dq . V . ds/dz . W . ... . s_{k-1}); for U the
  last factor is x_k, for b it is 1. Terms with k > t are zero. dE_t/dW = sum_k term_{t,k}.
  A gated cell's terms are the same products of its step's errors (cells.py): dU's term is
  d_a_k x_k^T, dW's is the cell's recurrent_grad of d_r_k (d_r_k h_{k-1}^T; the GRU's reset-before
  n rows take r_k * h_{k-1}), db's is d_a_k, dbh's is d_r_k; their rows come in gate blocks
  (cell.gates: LSTM i, f, g, o; GRU r, z, n). A cell's own parameters (no role) take their
  terms from its param_grads, step by step.
- The lag of term (t, k) is l = t - k.
- dE_ds[t, k] = ||dE_t/ds_k||_2, the size of the error of output t when it reaches state s_k (the
  hidden output h_k of a gated cell). dE_dz[t, k] = ||dE_t/da_k||, the error of step k's input
  part a_k = U x_k + b (Elman: delta_k = dE_t/dz_k; gated: the gates' pre-activations).
- LSTM. The state is the pair (h_k, c_k), and dE_t/dh_k, dE_t/dc_k are the partial derivatives with
  that pair as E_t's argument (the rows of dE_t/d state_k, the error the recurrence carries, which
  the state Jacobians of spectra.py act on). They split the error reaching step k by the path it
  arrived on:
      along the cell state   dE_t/dc_k = dE_t/dc~_{k+1} * f_{k+1}   (through the forget gate)
      through h              dE_t/dh_k = dE_t/da_{k+1} W            (step k+1's gates; at k = t,
                                                                     V^T dE_t/dq_t from the output)
  where dE_t/dc~_k = dE_t/dc_k + dE_t/dh_k * o_k * (1 - tanh^2 c_k) is the whole error at c_k, both
  paths together, that the gates of step k see. dE_t/dc_t = 0 (output t reads h_t). dE_dc[t, k] =
  ||dE_t/dc_k||. Step k's gate errors are linear in the pair, so every term splits exactly:
      term_{t,k} = its cell part (made by dE_t/dc_k alone) + its h part (made by dE_t/dh_k alone),
  terms(name, t, path="cell" | "h"). The cell path alone: the error output t puts into c_t,
  e_t = dE_t/dh_t * o_t * (1 - tanh^2 c_t), leaves it as e_t * f_t (this is dE_t/dc_{t-1}: nothing
  else arrives there) and, if it never leaves the cell state, reaches c_k as
      cell_path(t)[k] = e_t * f_t * f_{t-1} * ... * f_{k+1}      (k < t; 0 at k = t)
  the forget gates' product; the rest of dE_t/dc_k went through h at least once. With every f = 1
  and no h path (W = 0), dE_t/dc_k = cell_path(t)[k] = e_t for every k < t: the constant error
  carousel. With every f = 0 the cell path ends at c_t: dE_t/dc_k = 0 for every k.
- GRU. The state is h; its direct path is the update gate's copy h_k = z_k * h_{k-1} + ..., so the
  error that travels it alone reaches h_k as cell_path(t)[k] = dE_t/dh_t * z_t * ... * z_{k+1}
  (k <= t). With z = 1 the state is copied and the error arrives undiminished.

All outputs' errors travel back together: at step k the cell's step_back carries the (t >= k)
rows of G[t] = dE_t/d state_k through the step at once (the engine's recurrence with one row per
output instead of one per sequence), so the whole (T, T) table costs one backward pass's worth of
products with T rows instead of T backward passes, and only norms are kept: dE_ds and dE_dz, plus
dE_dc for an LSTM, or for a GRU dE_dW (its W terms' norms, which are not ||dE_t/da_k|| ||h_{k-1}||
as they are for the other cells): never more than three (T, T) tables. Terms, state errors and
paths are rebuilt on request for one output at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations, analysis, backend, cells, core, heads, validate
from .fast import one_blas_thread
from .validate import show

PATHS = ("cell", "h")  # the two parts of a term of a cell whose memory is a state entry of its own


@dataclass(frozen=True, eq=False)
class Flow:
    """The gradient of one sequence, decomposed by output t and step k (see the module's notes)."""

    trace: core.Trace
    dQ: np.ndarray     # (T, O): dE_t/dq_t
    dE_ds: np.ndarray  # (T, T): ||dE_t/ds_k|| (||dE_t/dh_k||), zero above the diagonal
    dE_dz: np.ndarray  # (T, T): ||dE_t/da_k||, zero above the diagonal
    loss: float
    dE_dc: np.ndarray | None = None  # a state's second entry (LSTM): (T, T) ||dE_t/dc_k||, the error along c
    dE_dW: np.ndarray | None = None  # a W not multiplying h_{k-1} alone (GRU): (T, T) ||term_{t,k} of W||_F

    @property
    def T(self) -> int:
        return self.dQ.shape[0]

    @property
    def cell(self) -> str:
        """The cell's registered name ("rnn", "lstm", "gru", ...)."""
        return self.trace.model.cell.name

    def _check_t(self, t):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or not 0 <= t < self.T:
            raise ValueError(f"output step t must be an integer in 0..{self.T - 1}, got {show(t)}")
        return int(t)

    def _gated(self, what):
        if not self.trace.model.cell.memory:
            raise ValueError(f"{what} belongs to gated cells ({', '.join(analysis.gated_cells())}), "
                             f"not to the {self.cell} cell")

    def _errors(self, t):
        """Output t's error at every step: (dA, dR) (T, G), rows k > t zero; one backward pass."""
        dH = np.zeros_like(self.trace.S[1:])  # (T, 1, H): output t's error alone
        dH[t] = self.dQ[t] @ self.trace.model.V
        dA, dR, _ = core.backprop(self.trace, dH, 0, t + 1)
        out = np.zeros((2, self.T, dA.shape[-1]), dtype=dA.dtype)
        out[0, :t + 1], out[1, :t + 1] = dA[:, 0], dR[:, 0]
        return out[0], out[1]

    def deltas(self, t) -> np.ndarray:
        """dE_t/da_k for k = 0..T-1: (T, G) (Elman: dE_t/dz_k, (T, H)), rows k > t zero. One
        backward pass from output t."""
        return self._errors(self._check_t(t))[0]

    def state_errors(self, t) -> tuple:
        """dE_t/d state_k for k = 0..T-1, a tuple like the cell's state of (T, H) arrays (Elman
        (dE_t/ds_k,), LSTM (dE_t/dh_k, dE_t/dc_k), GRU (dE_t/dh_k,)), rows k > t zero; their row
        norms are row t of dE_ds (and dE_dc)."""
        t = self._check_t(t)
        out = tuple(np.zeros((self.T, s.shape[-1]), dtype=s.dtype) for s in self.trace.cell_states)
        e = (self.dQ[t] @ self.trace.model.V)[None]  # (1, H)
        for k, _, g, _, _ in back_by_output(self.trace, e, np.array([t])):
            for o, a in zip(out, g):
                o[k] = a[0]
        return out

    def cell_path(self, t) -> np.ndarray:
        """The part of output t's error that travelled the cell's direct path alone: (T, H), rows
        k > t zero. LSTM: e_t * f_t * ... * f_{k+1} at c_k for k < t (0 at k = t), a part of
        dE_t/dc_k; GRU: dE_t/dh_t * z_t * ... * z_{k+1} at h_k for k <= t, a part of dE_t/dh_k."""
        self._gated("a cell path")
        t = self._check_t(t)
        tr, model = self.trace, self.trace.model
        entry, gate_name = model.cell.memory
        gate = analysis.gate_values(tr)[gate_name]  # (T, H): f_k or z_k
        e = self.dQ[t] @ model.V  # (H,): dE_t/dh_t
        out = np.zeros((self.T, e.shape[-1]), dtype=e.dtype)
        j = model.cell.state.index(entry)
        if j:  # a memory of its own (LSTM): e_t * f_t, what output t alone sends from c_t to c_{t-1}
            if t == 0:
                return out
            d = (e[None],) + tuple(np.zeros_like(e)[None] for _ in model.cell.state[1:])
            first, last = model.cell.step_back(model, *core.step(tr, t), d)[2][j][0], t - 1
        else:
            first, last = e, t
        # row j: the path's error at step last - j, each step one more gate factor
        out[last::-1] = np.cumprod(np.concatenate([first[None], gate[last:0:-1]]), axis=0)
        return out

    def terms(self, name, t, *, gate=None, path=None) -> np.ndarray:
        """Step k's term of dE_t/d(name) for every k: (T, *shape of name); slices k > t are zero.

        name: any of the cell's parameters: "W" (delta_k s_{k-1}^T), "U" (delta_k x_k^T), "b"
        (delta_k), a gated cell's "bh" (the recurrent bias, d_r_k), a cell's own ones from its
        param_grads; their sum over k is dE_t/d(name). V and c have a single term, at k = t.
        gate: one gate's block of rows (LSTM "i", "f", "g", "o"; GRU "r", "z", "n"): (T, H, ...).
        path: "cell" or "h" for a cell whose memory is a state entry of its own (LSTM): the part of
        each term made by the error that arrived along the memory or through h (module notes);
        the two add up to the term.
        """
        t = self._check_t(t)
        model = self.trace.model
        cell = model.cell
        if name not in cell.params:
            raise ValueError(f"terms are defined for {', '.join(cell.params)}, got {show(name)} "
                             "(V and c get only the step-t term dE_t/dq_t s_t^T and dE_t/dq_t)")
        if name not in model.params:
            raise ValueError(f"the model has no bias {name}")
        if gate is not None:
            self._gated("a gate")
            if gate not in cell.gates:
                raise ValueError(f"the {self.cell} cell's gates are {', '.join(cell.gates)}, got {show(gate)}")
        if path is not None and (not _own_memory(cell) or path not in PATHS):
            raise ValueError(f"path splits the terms of a cell with a memory of its own (a cell state) into "
                             f"{' and '.join(PATHS)}, got path={show(path)} for the {self.cell} cell")
        dA, dR = self._errors(t) if path is None else self._path_errors(t, path)
        out = self._term(name, dA, dR, t)
        if gate is not None:
            H = model.H
            j = cell.gates.index(gate)
            out = out[:, j * H:(j + 1) * H]
        return out

    def _path_errors(self, t, path):
        """(dA, dR) (T, G) of output t made by the error at c_k alone (path "cell") or at h_k alone
        ("h"): the step's gate errors are linear in the pair (dE_t/dh_k, dE_t/dc_k)."""
        h, c = self.state_errors(t)
        keep = (np.zeros_like(h), c) if path == "cell" else (h, np.zeros_like(c))
        tr, model = self.trace, self.trace.model
        steps = (tuple(s[:-1] for s in tr.cell_states), tuple(s[1:] for s in tr.cell_states), tr.cache)
        dA, dR, _ = model.cell.step_back(model, *steps, tuple(k[:, None] for k in keep))  # every step at once
        rows = (np.arange(self.T) <= t)[:, None]
        return np.where(rows, dA[:, 0], 0), np.where(rows, dR[:, 0], 0)

    def _term(self, name, dA, dR, t):
        tr, model = self.trace, self.trace.model
        role = model.cell.params[name].role
        if role == "input bias":
            return dA[:, model.cell.rows(model, name)]
        if role == "recurrent bias":
            return dR
        if role == "input":
            return dA[:, model.cell.rows(model, name), None] * _dense_inputs(tr)[:, None, :]
        if role == "recurrent" and type(model.cell).recurrent_grad is cells.Cell.recurrent_grad:
            return dR[:, :, None] * tr.S[:-1, 0][:, None, :]
        out = np.zeros((self.T,) + model.params[name].shape, dtype=dR.dtype)
        for k in range(t + 1):  # the cell's own product, one step at a time
            at = lambda a: a[k:k + 1]  # noqa: E731  (1, N, ...): step k alone
            prev, state = tuple(at(s) for s in tr.cell_states), tuple(s[k + 1:k + 2] for s in tr.cell_states)
            cache = tuple(at(c) for c in tr.cache)
            if role == "recurrent":
                out[k] = model.cell.recurrent_grad(model, dR[k][None, None], prev, cache)
            else:
                out[k] = model.cell.param_grads(model, prev, state, cache, dA[k][None, None],
                                                dR[k][None, None])[name][0, 0]
        return out

    def explain(self, name="W", t=None, precision=4) -> str:
        """dE_t/d(name) written as the notebook writes it: each term's chain of factors, with values
        (for an LSTM with the forget gates' product on the cell path, for a GRU the update gates'
        product on its copy)."""
        t = self.T - 1 if t is None else self._check_t(t)
        precision = validate.integer("precision", precision, 0, 17)  # float64 holds 17 significant digits
        if self.trace.model.cell.memory:
            return _explain_gated(self, name, t, precision)
        if self.trace.model.cell.pascanu:
            return _explain(self, name, t, precision)
        return _explain_terms(self, name, t, precision)

    # lag analysis (analysis.py, spectra.py, theory.py hold the details) -----------------------
    def by_lag(self):
        """Mean and spread over t of ||dE_t/ds_{t-l}||, of its ratio to ||dE_t/ds_t||, of the term
        norms ||term_{t,t-l}||_F, and the share of the gradient from lags beyond l: a LagProfile
        (for gated cells with the mean errors at c and along the direct path too)."""
        from .analysis import by_lag
        return by_lag(self)

    def decay_rate(self, *, min_lag=1, max_lag=None) -> float:
        """The per-step factor of the error's norm with the lag, fitted on a log scale through the
        origin over every (t, l) (see analysis.decay_rate for the estimator and its properties)."""
        from .analysis import decay_rate
        return decay_rate(self, min_lag=min_lag, max_lag=max_lag)

    def jacobian_spectrum(self, t, k) -> np.ndarray:
        """ln of the singular values of d state_t/d state_k, descending: (S,) (S = H, or 2H for the
        LSTM's joint state (h, c)), finite however long the product (-inf for exact zeros)."""
        from .spectra import jacobian_spectrum
        return jacobian_spectrum(self.trace, t, k)

    def lyapunov(self, *, burn_in=0):
        """The Lyapunov spectrum of the state's dynamics along this sequence (QR method; the joint
        state (h, c) for an LSTM)."""
        from .spectra import lyapunov
        return lyapunov(self.trace, burn_in=burn_in)

    def saturation(self):
        """Elman: the distribution of f'(z_t) over the sequence, a Saturation. Gated cells: the
        shares of gates shut and open, a GateSaturation."""
        from .analysis import saturation
        return saturation(self)

    def theory(self):
        """gamma, lambda_1, rho, the conditions and the verdict for this model: a Theory. For a
        gated cell, where Pascanu's bound does not apply, the verdict says so and the Theory
        carries this sequence's measured decay rate, Lyapunov exponent and gate saturation."""
        from .theory import theory
        return theory(self.trace.model, flow=self)

    def bound(self) -> np.ndarray:
        """||dE_t/ds_t|| (lambda_1 gamma)^(t-k) for every (t, k): (T, T), the bound on dE_ds
        (Elman cells only: a ValueError for gated cells, where it does not hold)."""
        from .theory import bound_table
        return bound_table(self)

    def _repr_html_(self):
        """The decomposition in a notebook: a summary, the lag table and a heatmap of dE_ds."""
        from .display import flow_html
        return flow_html(self)


def back_by_output(trace, E, ts):
    """The backward recurrence of sequence 0 of a trace for the outputs ts (ascending, distinct),
    one row each, all at once: yields (k, lo, g, da, dr) for k = ts[-1] down to 0.

    E (R, H): dE_t/dh_t from output t itself, row i for output ts[i]. Rows lo.. are the outputs
    t >= k; g (a tuple like the state of (R - lo, H) arrays) is dE_t/d state_k for them, da and dr
    (R - lo, G) the errors of step k's input and recurrent parts (cells.py). The arrays are
    overwritten by the next step: read them before asking for it.
    """
    model = trace.model
    R = len(ts)
    G = tuple(np.zeros((R, s.shape[-1]), dtype=s.dtype) for s in trace.cell_states)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(int(ts[-1]), -1, -1):
            lo = int(np.searchsorted(ts, k))  # the first row with t >= k
            if ts[lo] == k:
                G[0][lo] += E[lo]  # output k starts at its own state
            g = tuple(a[lo:] for a in G)
            da, dr, prev = model.cell.step_back(model, *core.step(trace, k), g)  # the state broadcasts (1, H)
            yield k, lo, g, da, dr
            for a, p in zip(G, prev):
                a[lo:] = p  # dE_t/d state_{k-1}


def recurrent_inputs(trace, k) -> np.ndarray:
    """The vector each row of W multiplies at step k of sequence 0: (G, H), from the cell's
    recurrent_grad of a unit error on each row (h_{k-1} in every row, but r_k * h_{k-1} in the
    n rows of a GRU with the reset gate before W_n)."""
    model = trace.model
    G = model.params[model.cell.role("recurrent")].shape[0]
    wide = lambda a: np.broadcast_to(a[k][None], (1, G, a.shape[-1]))  # noqa: E731  (1, G, ...)
    probe = np.eye(G, dtype=model.dtype)[None]  # (1, G, G): row g of the batch is a unit error on row g
    return model.cell.recurrent_grad(model, probe, tuple(wide(s) for s in trace.cell_states),
                                     tuple(wide(c) for c in trace.cache))


@core.reports_overflow
def flow(model, x, y, *, h0=None) -> Flow:
    """Decompose the gradient of one sequence x (T,) ids or (T, D) dense, targets y (T,) or (T, O).
    h0: (H,), or for an LSTM (h0, c0). A bptt.Stack gives a bptt.stackflow.StackFlow: each layer's
    (T, T) table and the error that crosses between layers."""
    if type(model).__name__ == "Stack":
        from . import stackflow
        return stackflow.flow(validate.a_network(model), x, y, h0=h0)
    validate.a_model(model).check_finite()
    xin = validate.inputs(model, x)
    if xin.batched:
        raise ValueError(f"flow takes one sequence, got a batch of {xin.N}: call it for each sequence")
    tg = validate.targets(model, y, xin)
    validate.too_big(f"the flow's (T, T) tables of T = {xin.T} steps", 4 * xin.T * xin.T)
    trace = backend.forward(model, x, h0)
    loss, dQ = heads.error(model.head, trace.Q, tg)
    dQ = dQ[:, 0]  # (T, O)
    T = xin.T
    dE_ds = np.zeros((T, T), dtype=model.dtype)
    dE_dz = np.zeros((T, T), dtype=model.dtype)
    dE_dc = np.zeros((T, T), dtype=model.dtype) if len(trace.cell_states) > 1 else None  # a cell state
    dE_dW = None
    e = dQ @ model.V  # (T, H): row t is dE_t/ds_t from output t itself
    with one_blas_thread():  # a product of at most T rows a step: BLAS's threads would only wait
        for k, _, g, da, dr in back_by_output(trace, e, np.arange(T)):  # rows k..T-1: the outputs t >= k
            np.einsum("th,th->t", g[0], g[0], out=dE_ds[k:, k])  # ||dE_t/ds_k||^2
            if dE_dc is not None:
                np.einsum("th,th->t", g[1], g[1], out=dE_dc[k:, k])  # ||dE_t/dc_k||^2
            np.einsum("tg,tg->t", da, da, out=dE_dz[k:, k])  # ||dE_t/da_k||^2
            if dr is not da and model.cell.role("recurrent"):  # W's term is not dE_t/da_k h_{k-1}^T (GRU)
                dE_dW = np.zeros((T, T), dtype=model.dtype) if dE_dW is None else dE_dW
                x2 = np.einsum("gh,gh->g", *(recurrent_inputs(trace, k),) * 2)  # (G,)
                np.matmul(dr * dr, x2, out=dE_dW[k:, k])  # ||term_{t,k}||_F^2
    for a in (dE_ds, dE_dz, dE_dc, dE_dW):
        if a is not None:
            np.sqrt(a, out=a)
    if not (np.isfinite(loss) and np.isfinite(dE_ds).all()):
        raise FloatingPointError(core.nonfinite_message(trace, dQ[:, None]))
    return Flow(trace, dQ, dE_ds, dE_dz, loss, dE_dc, dE_dW)


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


def _own_memory(cell) -> bool:
    """Whether the cell's memory path runs on a state entry of its own (an LSTM's c), not on h."""
    return bool(cell.memory) and cell.state.index(cell.memory[0]) > 0


def _explain_gated(fl: Flow, name, t, p) -> str:
    """explain() for a cell with gates and a memory path (LSTM, GRU): each term's errors and gates,
    with the memory path's gate product (the forget gates on the LSTM's cell state, the update
    gates on the GRU's copy)."""
    model, H = fl.trace.model, fl.trace.model.H
    cell = model.cell
    own = _own_memory(cell)
    gates, (entry, pg) = cell.gates, cell.memory
    gv = analysis.gate_values(fl.trace)  # name -> (T, H)
    dA, dR = fl._errors(t)
    terms = fl.terms(name, t)
    errs, path = fl.state_errors(t), fl.cell_path(t)
    cell_part = fl.terms(name, t, path="cell") if own else None
    S, X = fl.trace.S[:, 0], _dense_inputs(fl.trace)  # S[k] = h_{k-1}; x_k (T, D)
    rec = cell.params[name].role in ("recurrent", "recurrent bias")  # W, bh take d_r; U, b take d_a
    err = dR if rec else dA

    def err_name(k):  # k an int, or "k" for the general term
        before = k - 1 if isinstance(k, int) else "(k-1)"
        return f"dE_{t}/d(W h_{before} + bh)_{k}" if rec else f"dE_{t}/d[{', '.join(gates)}]_{k}"

    def blocks(v):
        return "; ".join(f"{g}: {_fmt(v[j * H:(j + 1) * H], p)}" for j, g in enumerate(gates))

    role = cell.params[name].role
    last = {"recurrent": lambda k: (f"h_{k - 1}", S[k]), "input": lambda k: (f"x_{k}", X[k])}.get(role)
    head = f"o_{t} - y_{t}" if model.head == "softmax" else f"2 (q_{t} - y_{t})"
    lines = [f"dE_{t}/d{name} = sum over k = {t}..0 of {t + 1} term(s) ({type(model).__name__}, gates "
             f"{', '.join(gates)})", "",
             f"  dE_{t}/dq_{t} = dE_{t}/do_{t} . do_{t}/dq_{t} = {head} = {_fmt(fl.dQ[t], p)}",
             f"  dE_{t}/dh_{t} = V^T dE_{t}/dq_{t} = {_fmt(errs[0][t], p)}   (the error output {t} puts on h_{t})", ""]
    lines += cell.path_lines(t)
    lines.append(f"Term k of dE_{t}/d{name} = {err_name('k')}"
                 + {"recurrent": " h_(k-1)^T", "input": " x_k^T"}.get(role, "") + ".")
    j = cell.state.index(entry)
    for k in range(t, -1, -1):
        factors = " * ".join(f"{pg}_{i}" for i in range(t, k, -1))
        lines += ["", f"term k = {k} (lag {t - k})",
                  "  gates: " + ", ".join(f"{g}_{k} = {_fmt(gv[g][k], p)}" for g in gates),
                  f"  dE_{t}/dh_{k} = {_fmt(errs[0][k], p)}" + ("   (arrived through h)" if own else "")]
        if own:
            lines.append(f"  dE_{t}/d{entry}_{k} = {_fmt(errs[j][k], p)}   (arrived along the cell state)")
        if factors:
            lines.append(f"  {factors} = {_fmt(np.prod(gv[pg][k + 1:t + 1], axis=0), p)}")
        if own and k < t:
            lines.append(f"  the cell path alone: e_{t} * {factors} = {_fmt(path[k], p)}   "
                         f"(part of dE_{t}/d{entry}_{k}; the rest went through h)")
        elif not own:
            lines.append(f"  the copy alone: dE_{t}/dh_{t}" + (f" * {factors}" if factors else "")
                         + f" = {_fmt(path[k], p)}   (part of dE_{t}/dh_{k})")
        lines.append(f"  {err_name(k)} = {blocks(err[k])}")
        if last is not None:
            lname, lval = last(k)
            lines.append(f"  {lname} = {_fmt(lval, p)}")
        split = ""
        if cell_part is not None:
            split = (f"; from the cell path {np.linalg.norm(cell_part[k]):.{p}g}, through h "
                     f"{np.linalg.norm(terms[k] - cell_part[k]):.{p}g}")
        lines.append(f"  term = {_fmt(terms[k], p)}   (norm {np.linalg.norm(terms[k]):.{p}g}{split})")
    lines += ["", f"sum = dE_{t}/d{name} = {_fmt(terms.sum(0), p)}"]
    return "\n".join(lines)


def _explain_terms(fl: Flow, name, t, p) -> str:
    """explain() for any other cell: each step's term of dE_t/d(name) and its norm."""
    terms = fl.terms(name, t)
    lines = [f"dE_{t}/d{name} = sum over k = {t}..0 of {t + 1} term(s) ({type(fl.trace.model).__name__})", "",
             f"  dE_{t}/dq_{t} = {_fmt(fl.dQ[t], p)}"]
    for k in range(t, -1, -1):
        lines += ["", f"term k = {k} (lag {t - k}) = {_fmt(terms[k], p)}   (norm {np.linalg.norm(terms[k]):.{p}g})"]
    lines += ["", f"sum = dE_{t}/d{name} = {_fmt(terms.sum(0), p)}"]
    return "\n".join(lines)
