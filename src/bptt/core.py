"""The reference engine: forward pass and backpropagation through time over any cell, plain NumPy.

This is the definition every other path (bptt.fast, the frameworks) is tested against.

Conventions (N batch, T time, D input, H hidden, O output; arrays time-major inside, (T, N, ...)):
- states hold s_{-1} = h0, s_0, ..., s_{T-1}; step t makes z_t, s_t, q_t = V s_t + c and E_t.
- dX means dE/dX. delta_t = dE/dz_t is the error at step t. Going back, the error at a state is
      dE/ds_{t-1} = dE_{t-1}/ds_{t-1} + delta_t W,    delta_t = dE/ds_t * f'(z_t)   (row vectors)
  so the error of output t reaches step k through t - k factors W^T diag f'(z) (the notebook's
  product, which vanishes or explodes), and dE/dW = sum_t delta_t s_{t-1}^T adds those terms up.
- truncate=K is the notebook's rule (bptt_truncate in its source): the error of output t flows
  back to steps t-K, ..., t only, K+1 terms, so K = 0 still keeps the step's own term. The
  gradient with respect to h0 = s_{-1} takes the error of outputs t whose window reaches it,
  t - K <= -1. truncate=None is full BPTT; any K >= T equals it exactly.
- the loss is summed over time and batch; reduction="mean" divides by the number of scored steps.
- scan="parallel", for a cell whose step is linear in its state (Cell.linear: h_t = a_t * h_{t-1} +
  b_t), runs the forward states and full BPTT's errors by an associative scan (bptt.scan) instead
  of the step loop; the truncation window always runs the loop. The loop is the definition.
The step itself, forward and back, is the cell's (cells.py); the loop, the window, the input
projection and the weight gradients are here.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from . import heads, validate
from .validate import show


@dataclass(frozen=True, eq=False)
class Trace:
    """What the forward pass keeps, time-major; properties give the public shapes.

    cell_states: the cell's state at every step, one (T+1, N, H) array per entry of the state
    (Elman: (S,), S = s_{-1}, s_0, ..., s_{T-1}); cache: what each step keeps for its backward,
    (T, N, ...) arrays (Elman: (Z,), the pre-activations z_t); Q (T, N, O): the outputs q_t.
    """

    model: object
    inputs: validate.Inputs
    cell_states: tuple
    cache: tuple
    Q: np.ndarray
    scan: str = "sequential"  # how the states were computed, and how backward computes the errors

    @property
    def S(self):  # (T+1, N, H): the hidden outputs h_{-1}, ..., h_{T-1}
        return self.cell_states[0]

    @property
    def Z(self):  # (T, N, H): the pre-activations z_t of an Elman cell
        return self.cache[0]

    def _public(self, a):  # (T', N, ...) -> (N, T', ...) for a batch, (T', ...) for one sequence
        a = np.swapaxes(a, 0, 1)
        return a if self.inputs.batched else a[0]

    states = property(lambda self: self._public(self.S), doc="s_{-1}, ..., s_{T-1}: (T+1, H) or (N, T+1, H).")
    z = property(lambda self: self._public(self.Z), doc="z_t: (T, H) or (N, T, H).")
    q = property(lambda self: self._public(self.Q), doc="q_t = V s_t + c: (T, O) or (N, T, O).")
    o = property(lambda self: np.exp(self._public(heads.log_softmax(self.Q))), doc="softmax(q_t).")

    @property
    def final(self):
        """The last state s_{T-1}, to carry into the next chunk as h0: (H,) or (N, H); for a cell
        with a memory the pair (h, c)."""
        last = tuple(s[-1] if self.inputs.batched else s[-1, 0] for s in self.cell_states)
        return last[0] if len(last) == 1 else last

    def _repr_html_(self):
        """The trace in a notebook: per step the input, s_t, q_t and o_t."""
        from .display import trace_html
        return trace_html(self)


@dataclass(frozen=True, eq=False)
class Grads:
    """dE/d(parameter) by the model's names (.params; also as attributes, None for a bias the model
    lacks), and dE/d(initial state): .h0 is dE/ds_{-1}, (H,) or (N, H) for a batch; .c0 is
    dE/dc_{-1} for a cell with a memory (None for the others)."""

    params: dict
    state0: tuple

    @property
    def h0(self):
        return self.state0[0]

    @property
    def c0(self):
        return self.state0[1] if len(self.state0) > 1 else None

    def replace(self, **changes) -> "Grads":
        """New Grads with some entries changed by name: g.replace(W=2 * g.W) (h0 too)."""
        state0 = tuple(changes.pop(k, v) for k, v in zip(("h0", "c0"), self.state0))
        unknown = set(changes) - set(self.params)
        if unknown:
            raise ValueError(f"these gradients have {', '.join(self.params)} and h0, not {', '.join(sorted(unknown))}")
        return Grads({**self.params, **changes}, state0)

    def __getattr__(self, name):
        if name in ("params", "state0") or name.startswith("_"):
            raise AttributeError(name)
        return self.params.get(name)


def truncation(truncate):
    """truncate as None (full BPTT) or an int K >= 0; a ValueError for anything else."""
    if truncate is None:
        return None
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, (int, np.integer)) or truncate < 0:
        raise ValueError(f"truncate must be None (full BPTT) or an integer K >= 0, got {show(truncate)}")
    return int(truncate)


# --- forward ---------------------------------------------------------------------------------
def forward(model, x, h0=None, *, scan="sequential") -> Trace:
    """Run the network over x: a Trace with .states (T+1, H) / (N, T+1, H), .z, .q, .o, .final.

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if None;
    for a cell with a memory (LSTM) h0 or the pair (h0, c0). scan: "sequential" (the step loop) or
    "parallel" (an associative scan, for a cell whose step is linear in its state).
    """
    scan_method(model, scan)
    model.check_finite()
    xin = validate.inputs(model, x)
    return run(model, xin, initial_state(model, h0, xin), scan)


def scan_method(model, scan) -> str:
    """scan checked for this model: "parallel" needs a cell whose step is linear in its state."""
    validate.a_model(model)
    if isinstance(scan, str) and scan == "sequential":  # the default, checked at every call
        return scan
    from .cells import names, get
    from .scan import method

    if method(scan) == "parallel" and not model.cell.linear():
        linear = [n for n in names() if get(n).linear()]
        raise ValueError(f"scan='parallel' runs a cell whose step is linear in its state ({', '.join(linear)}); "
                         f"the {model.cell.name} cell's is not: use scan='sequential'")
    return scan


def initial_state(model, h0, xin) -> tuple:
    """The cell's state before step 0, a tuple of (N, H) arrays (zeros where not given): h0 = s_{-1},
    and for a cell with a memory c0 = c_{-1}, given as h0=(h0, c0)."""
    names = model.cell.state
    parts = tuple(h0) if isinstance(h0, tuple) else (h0,) + (None,) * (len(names) - 1)
    if len(parts) != len(names):
        raise ValueError(f"the {model.cell.name} cell's state is ({', '.join(names)}): pass h0 as an array"
                         + (" or the pair (h0, c0)" if len(names) > 1 else "") + f", got a tuple of {len(parts)}")
    return tuple(validate.initial_state(model, p, xin, H) for p, H in zip(parts, model.state_sizes))


def run(model, xin, state0, scan="sequential") -> Trace:
    """The forward loop (or scan) from checked inputs and an initial state tuple."""
    cell, A = model.cell, model.cell.project(model, xin)
    if scan == "parallel":
        from . import scan as scans

        b, cache = cell.drive(model, A)
        with np.errstate(over="ignore", invalid="ignore"):
            h = scans.linear(cell.decay(model, cache), b, cell.to_scan(state0[0]), "parallel")
            S = np.concatenate([state0[0][None], cell.from_scan(h).astype(model.dtype, copy=False)])
            Q = outputs(model, S)
        return Trace(model, xin, (S,), cache, Q, scan)
    state, states, cache = state0, [state0], []
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is named by finite() below
        for t in range(xin.T):
            state, c = cell.step(model, A[t], state)
            states.append(state)
            cache.append(c)
        S = np.stack([s[0] for s in states])  # (T+1, N, H)
        Q = outputs(model, S)  # (T, N, O)
    stacked = (S,) + tuple(np.stack(k) for k in list(zip(*states))[1:])
    return Trace(model, xin, stacked, tuple(np.stack(k) for k in zip(*cache)), Q)


def outputs(model, S):
    """q_t = V s_t + c for t = 0..T-1 from S (T+1, N, H): (T, N, O); None for a layer (head=None)."""
    if model.head is None:
        return None
    return S[1:] @ model.V.T + (0 if model.c is None else model.c)


# --- backward --------------------------------------------------------------------------------
def reports_overflow(fn):
    """fn with NumPy's overflow warnings off: a loss or gradient that overflows is reported once,
    as the FloatingPointError of finite(), which says where."""
    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore"):
            return fn(*args, **kwargs)
    return quiet


def step(trace, t):
    """(state_{t-1}, state_t, cache_t) of step t, as the cell's step_back takes them."""
    return (tuple(s[t] for s in trace.cell_states), tuple(s[t + 1] for s in trace.cell_states),
            tuple(c[t] for c in trace.cache))


def backprop(trace, dH, t0=0, t1=None, d=None, seen=None):
    """The backward recurrence over steps t1-1 down to t0 (full BPTT between them).

    dH (T, N, H): dE_t/dh_t, the error each output puts on its own step's hidden output; or a tuple
    like the state of (T, N, .) arrays, an error put on every entry of state_t (bptt.floss's); only
    the rows t0..t1-1 are read. d: the error arriving at state_{t1-1} from beyond (zeros if None).
    Returns (dA, dR, d): dA, dR (t1-t0, N, G) the errors of each step's input and recurrent parts
    (Elman: delta_t, twice) and d, the error at state_{t0-1} (a tuple like the state). seen: a list
    to which the whole error dE/d state_t of every step is appended, from t1-1 down.
    """
    t1 = trace.inputs.T if t1 is None else t1
    cell, model = trace.model.cell, trace.model
    lead = (dH[0] if isinstance(dH, tuple) else dH).shape[1:-1]  # (N,), or (..., N) with extra leading axes
    d = tuple(np.zeros(lead + s.shape[-1:], dtype=s.dtype) for s in trace.cell_states) if d is None else d
    dA, dR = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t1 - 1, t0 - 1, -1):
            d = tuple(a + e[t] for a, e in zip(d, dH)) if isinstance(dH, tuple) else \
                (d[0] + dH[t],) + d[1:]  # dE/dh_t: from output t, and from step t + 1
            if seen is not None:
                seen.append(d)
            da, dr, d = cell.step_back(model, *step(trace, t), d)
            dA.append(da)
            dR.append(dr)
    return np.stack(dA[::-1]), np.stack(dR[::-1]), d


def backprop_scan(trace, dH):
    """Full BPTT's errors by an associative scan, for a cell whose step is linear in its state:
    the error at every state at once (bptt.scan.backward), then every step's step_back at once.
    Returns (dA, dR, d) as backprop does."""
    from . import scan as scans

    model, cell = trace.model, trace.model.cell
    with np.errstate(over="ignore", invalid="ignore"):
        g, g0 = scans.backward(cell.decay(model, trace.cache), cell.to_scan(dH), "parallel")
        d = (cell.from_scan(g).astype(model.dtype, copy=False),)  # dE/dh_t, t = 0..T-1
        prev, state = tuple(s[:-1] for s in trace.cell_states), tuple(s[1:] for s in trace.cell_states)
        dA, dR, _ = cell.step_back(model, prev, state, trace.cache, d)
    return dA, dR, (cell.from_scan(g0).astype(model.dtype, copy=False),)


def backprop_window(trace, dH, K):
    """The notebook's truncated recurrence: output t's error reaches steps t-K..t only.

    G[j] is dE_{t+j}/d state_t for j = 0..K, the errors of the K+1 outputs whose window holds step
    t; they go back through the step together (the cell broadcasts over the leading axis).
    Returns (dA, dR, d) as backprop does; d sums the outputs whose window reaches state_{-1}.
    """
    T, cell, model = trace.inputs.T, trace.model.cell, trace.model
    G = tuple(np.zeros((K + 1,) + s[0].shape, dtype=s.dtype) for s in trace.cell_states)
    dA, dR = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T - 1, -1, -1):
            G[0][0] += dH[t]  # output t enters at its own step (row 0 was cleared by the shift)
            da, dr, prev = cell.step_back(model, *step(trace, t), G)
            dA.append(da.sum(axis=0))
            dR.append(dr.sum(axis=0))
            # at step t-1, row j is output t-1+j: shift by one; output t+K's window ends here
            G = tuple(np.concatenate([np.zeros_like(p[:1]), p[:-1]]) for p in prev)
    return np.stack(dA[::-1]), np.stack(dR[::-1]), tuple(p[:-1].sum(axis=0) for p in prev)


def weight_grads(trace, dQ, dA, dR, t0=0, t1=None, q0=None) -> dict:
    """The parameter gradients of steps t0..t1-1 from their errors, one product per parameter:
    dU = sum_t dA_t^T x_t, dW = sum_t dR_t^T h_{t-1} (the cell's recurrent_grad), db = sum_t dA_t,
    dbh = sum_t dR_t, the cell's own parameters from its param_grads (all steps at once), and the
    head's dV = sum_t dQ_t^T h_t, dc = sum_t dQ_t over the outputs q0..t1-1 (q0 = t0 unless
    given; none when dQ is None). dA, dR: (t1-t0, N, G)."""
    model, xin = trace.model, trace.inputs
    cell = model.cell
    t1 = xin.T if t1 is None else t1
    q0 = t0 if q0 is None else q0
    g = cell_grads(trace, dA, dR, t0, t1)
    for name, p in cell.params.items():
        if name in model.params and p.role == "input":
            g[name] = input_grad(model, xin, dA[..., cell.rows(model, name)], t0, t1)
        elif name in model.params and p.role == "input bias":
            e = dA[..., cell.rows(model, name)]
            g[name] = e.reshape(-1, e.shape[-1]).sum(axis=0)
    if dQ is not None:  # the head's (a layer of a stack has none)
        Q2, H = dQ[q0:t1].reshape(-1, model.O), trace.S.shape[-1]
        g["V"] = Q2.T @ trace.S[q0 + 1:t1 + 1].reshape(-1, H)
        if model.c is not None:
            g["c"] = Q2.sum(axis=0)
    return {k: g[k].astype(model.dtype, copy=False) for k in model.params}


def cell_grads(trace, dA, dR, t0=0, t1=None) -> dict:
    """The gradients of steps t0..t1-1 of the parameters that are not the input's: dW by the
    cell's recurrent_grad, dbh = sum_t dR_t, and the cell's own parameters (no role) from its
    param_grads, all steps at once. dA, dR: (t1-t0, N, G)."""
    model, cell = trace.model, trace.model.cell
    t1 = trace.inputs.T if t1 is None else t1
    prev = tuple(s[t0:t1] for s in trace.cell_states)  # the states before steps t0..t1-1
    cache = tuple(c[t0:t1] for c in trace.cache)
    g = {}
    for name, p in cell.params.items():
        if name in model.params and p.role == "recurrent":
            g[name] = cell.recurrent_grad(model, dR, prev, cache)
        elif name in model.params and p.role == "recurrent bias":
            g[name] = dR.reshape(-1, dR.shape[-1]).sum(axis=0)
    own = [k for k, p in cell.params.items() if p.role is None and k in model.params]
    if own:
        state = tuple(s[t0 + 1:t1 + 1] for s in trace.cell_states)
        per_step = cell.param_grads(model, prev, state, cache, dA, dR)
        missing = sorted(set(own) - set(per_step))
        if missing:
            raise ValueError(f"the {cell.name} cell's param_grads gave no gradient for {', '.join(missing)}")
        for k in own:
            g[k] = per_step[k].reshape((-1,) + model.params[k].shape).sum(axis=0)
    return g


def input_grad(model, xin, dA, t0=0, t1=None):
    """dU = sum over steps t0..t1-1 and sequences of dA_t^T x_t: (G, D); dA (t1-t0, N, G). For ids,
    x_t one-hot: column d of dU sums dA_t over the steps with x_t = d."""
    t1 = xin.T if t1 is None else t1
    A2 = dA.reshape(-1, dA.shape[-1])  # a row per step and sequence
    if xin.ids is not None:
        dUT = np.zeros((model.D, A2.shape[-1]), dtype=dA.dtype)
        np.add.at(dUT, xin.ids.T[t0:t1].reshape(-1), A2)
        return dUT.T
    return A2.T @ np.swapaxes(xin.X, 0, 1)[t0:t1].reshape(-1, model.D)


@reports_overflow
def backward(trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads). See the module's notes for truncate=K."""
    model, xin = trace.model, trace.inputs
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    loss, dQ = heads.error(model.head, trace.Q, tg, reduction)
    dH = dQ @ model.V  # (T, N, H): dE_t/dh_t from output t itself
    if (K is None or K >= xin.T) and trace.scan == "parallel":
        dA, dR, d = backprop_scan(trace, dH)
    elif K is None or K >= xin.T:
        dA, dR, d = backprop(trace, dH)
    else:
        dA, dR, d = backprop_window(trace, dH, K)
    grads = Grads(weight_grads(trace, dQ, dA, dR), tuple(s if xin.batched else s[0] for s in d))
    return finite(trace, loss, grads, dQ)


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum", scan="sequential"):
    """Loss and gradients: (loss, grads) with grads.U, .W, .V, .b, .c (None without biases), .h0.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids (-1 = no loss) or one-hot rows, or
    real values for the mse head. truncate=K: the notebook's rule (output t reaches steps t-K..t).
    scan: "sequential" or "parallel" (forward's; full BPTT's errors by the same scan).
    """
    truncation(truncate)
    heads.check_reduction(reduction)  # both checked before the forward pass
    return backward(forward(model, x, h0, scan=scan), y, truncate=truncate, reduction=reduction)


@reports_overflow
def loss(model, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (a forward pass)."""
    return trace_loss(forward(model, x, h0), y, reduction)


def trace_loss(trace, y, reduction, message=None) -> float:
    """The loss E of a forward trace (of a model or a stack) against y; a FloatingPointError, in
    message(trace)'s words (nonfinite_message's by default), where it is not finite."""
    value, _ = heads.error(trace.model.head, trace.Q, validate.targets(trace.model, y, trace.inputs), reduction)
    if not np.isfinite(value):
        raise FloatingPointError((message or nonfinite_message)(trace))
    return value


# --- overflow --------------------------------------------------------------------------------
def finite(trace, loss, grads, dQ):
    """(loss, grads) when all are finite; else a FloatingPointError naming where it first broke.
    dQ (T, N, O): the output errors the gradients came from."""
    arrays = (*grads.params.values(), *grads.state0)
    if math.isfinite(loss) and (_finite_sum(arrays) or all(all_finite(a) for a in arrays)):
        return loss, grads
    raise FloatingPointError(nonfinite_message(trace, dQ))


def all_finite(a) -> bool:
    """Whether every entry of the array a is finite: its sum is, unless it overflowed (then entry
    by entry). One reduction, where np.isfinite(a).all() makes an array and reduces it."""
    return math.isfinite(float(np.add.reduce(a, axis=None))) or bool(np.isfinite(a).all())


def _finite_sum(arrays) -> bool:
    """Whether the sum of the arrays' sums is finite, which makes every entry finite (all_finite
    looks at each array where it is not: a sum may overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(sum(float(np.add.reduce(a, axis=None)) for a in arrays))


def _first_nonfinite(trace, arrays, what):
    """Where the first of these (T, N, ...) arrays first holds a non-finite entry, in words, or None."""
    for t in range(trace.inputs.T):
        for a in arrays:
            bad = ~np.isfinite(a[t])
            if bad.any():
                n = int(np.argwhere(bad)[0][0]) if a[t].ndim > 1 else 0
                seq = f" of sequence {n}" if trace.inputs.batched else ""
                return (f"the {what} first became non-finite at step t = {t}{seq} "
                        f"({trace.model.dtype} range: max {np.finfo(trace.model.dtype).max:.3g})")
    return None


def forward_nonfinite(trace):
    """The first step whose pre-activation (cache), state or output is not finite, in words, or None."""
    first = functools.partial(_first_nonfinite, trace)
    return (first(trace.cache, "pre-activation z_t") or first([s[1:] for s in trace.cell_states], "state s_t")
            or (first([trace.Q], "output q_t") if trace.Q is not None else None))


def nonfinite_message(trace, dQ=None) -> str:
    """Where a run with finite weights and inputs first left the floating-point range: the first
    step whose pre-activation (cache), state or output, or else whose backward error, is not
    finite, with the sequence it happened in."""
    first = functools.partial(_first_nonfinite, trace)
    forward_at = forward_nonfinite(trace)
    if forward_at:
        return "the forward pass overflowed: " + forward_at
    with np.errstate(over="ignore", invalid="ignore"):
        dH = None if dQ is None else dQ @ trace.model.V
    if dH is not None and not np.isfinite(dH).all():
        return "the output error overflowed: " + first([dH], "error dE_t/ds_t from output t")
    if dH is not None:
        dA, _, _ = backprop(trace, dH)
        bad = np.flatnonzero(~np.isfinite(dA).reshape(len(dA), -1).all(axis=1))
        if bad.size:  # the backward pass runs from t = T-1 down: the last bad step is where it broke
            return (f"the backward pass overflowed: the error dE/dz_t first became non-finite at step "
                    f"t = {bad[-1]}, {trace.inputs.T - 1 - bad[-1]} steps back from the last output")
    return "the loss or a gradient is not finite (an overflow in summing the weight gradients)"
