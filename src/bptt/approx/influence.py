"""Forward mode: the influence matrix M_t = d state_t / d theta carried forward in time (RTRL) and
SnAp's sparse version of it, over any cell.

Conventions (N batch, T time, D input, H hidden, O output, G = gates * H; S the state's size: H for
Elman and GRU, 2H for an LSTM's (h, c); P the number of recurrent parameters):
- theta are the cell's parameters in the order cell.params declares them, those the model has
  (the Elman cell's U (H, D), W (H, H), b (H,); a gated cell's U (G, D), W (G, H), b, bh (G,));
  each flattened row-major, then concatenated: P = G D + G H + G (+ G).
- step t maps state_{t-1} to state_t. Its state Jacobian J_t = d state_t / d state_{t-1} (N, S, S)
  and its immediate influence I_t = d state_t / d theta with state_{t-1} held fixed (N, S, P) both
  come from the cell's step_back applied to the identity basis (row j: a unit error on entry j of
  state_t): its d_a gives U's rows (d_a x_t^T) and b, its d_r gives W's rows (d_r times the vector
  that W's row multiplies: h_{t-1}, or r * h_{t-1} for W_n of a reset-before GRU) and bh, exactly
  as core.weight_grads maps d_a and d_r to the parameters; a cell's own parameters (no role) from
  its param_grads, per sequence.
- RTRL:  M_t = J_t M_{t-1} + I_t, M_{-1} = 0; the initial state's influence M0_t = J_t M0_{t-1},
  M0_{-1} = identity. dE/dtheta = sum_t dE_t/dstate_t M_t and dE/dstate_{-1} = sum_t dE_t/dstate_t
  M0_t, with dE_t/dstate_t = (dQ_t V, and 0 for an LSTM's c). For fixed weights this is BPTT's
  gradient exactly (the same chain rule summed in the other order).
- The head (V, c) takes its gradient from its own outputs, exactly, in every method here.
- Cost per step and sequence: RTRL holds M, S x P numbers (Elman with D << H: H^3), and spends
  O(S^2 P) on J_t M_{t-1} (H^4); BPTT spends O(G H) per step and keeps the T states.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import cells, core, heads, validate
from ..validate import show, too_big


@dataclass(frozen=True, eq=False)
class Layout:
    """Where each recurrent parameter sits in the flat vector theta: names in the cell's order, their
    shapes, and the role of each (input/recurrent weight/bias). With a basis (P_full, k) the methods
    work in the k coordinates z of theta = theta_0 + basis z (tied parameters): P is then k, and
    from_errors gives errors in z (d theta . basis)."""

    names: tuple
    shapes: tuple
    roles: tuple
    basis: np.ndarray | None = None

    @property
    def sizes(self):
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def P(self) -> int:
        """The number of coordinates the methods carry: the parameters', or the basis' columns."""
        return sum(self.sizes) if self.basis is None else self.basis.shape[1]

    def tied(self, basis) -> "Layout":
        """This layout with a basis (P_full, k): the recurrent parameters move in its span only."""
        basis = np.asarray(basis, dtype=np.float64)
        if basis.ndim != 2 or basis.shape[0] != sum(self.sizes):
            raise ValueError(f"a basis must be (P, k) with P = {sum(self.sizes)} (the recurrent parameters "
                             f"{', '.join(self.names)}), got shape {basis.shape}")
        return Layout(self.names, self.shapes, self.roles, basis)

    def expand(self, z) -> np.ndarray:
        """A step in the methods' coordinates (..., P) -> in the parameters' (..., P_full)."""
        return z if self.basis is None else z @ self.basis.T

    def split(self, flat) -> dict:
        """flat (..., P_full) -> {name: (..., *shape)}."""
        parts = np.split(flat, np.cumsum(self.sizes)[:-1], axis=-1)
        return {k: p.reshape(flat.shape[:-1] + s) for k, p, s in zip(self.names, parts, self.shapes)}

    def flatten(self, params: dict) -> np.ndarray:
        """{name: (..., *shape)} -> (..., P_full), in this layout's order."""
        return np.concatenate([params[k].reshape(params[k].shape[:params[k].ndim - len(s)] + (-1,))
                               for k, s in zip(self.names, self.shapes)], axis=-1)

    def from_errors(self, d_a, d_r, x, R, own=None, rows=None) -> np.ndarray:
        """The parameter error of one step from its input-part and recurrent-part errors.

        d_a, d_r (..., N, G); x (N, D) the step's input; R (N, G, H) the vectors W's rows multiply;
        own: the cell's own parameters' errors {name: (..., N, *shape)} (cell.param_grads); rows:
        {name: slice} the rows of d_a of each input parameter where several share the role.
        Returns (..., N, P): dU = d_a x^T, dW = d_r * R, db = d_a, dbh = d_r, per sequence (times
        the basis when there is one).
        """
        out = []
        for name, role in zip(self.names, self.roles):
            if role == "input":
                e = d_a[..., rows[name]] if rows else d_a
                out.append((e[..., :, None] * x[:, None, :]).reshape(e.shape[:-1] + (-1,)))
            elif role == "recurrent":
                out.append((d_r[..., :, None] * R).reshape(d_r.shape[:-1] + (-1,)))
            elif role is None:
                g = own[name]
                out.append(g.reshape(g.shape[:g.ndim - len(self.shapes[self.names.index(name)])] + (-1,)))
            else:
                out.append((d_a[..., rows[name]] if rows else d_a) if role == "input bias" else d_r)
        flat = np.concatenate(out, axis=-1)
        return flat if self.basis is None else flat @ self.basis.astype(flat.dtype)


def layout(model) -> Layout:
    """The recurrent parameters of this model (those it has), in the cell's order."""
    names = tuple(k for k in model.cell.params if k in model.params)
    return Layout(names, tuple(model.params[k].shape for k in names),
                  tuple(model.cell.params[k].role for k in names))


def state_size(model) -> int:
    """S: the number of entries of the cell's state (H per named entry)."""
    return sum(model.state_sizes)


def units(model) -> tuple:
    """(E, H): the state's numbers as E blocks of H, unit i being index i of every block: an LSTM's
    (h, c) two blocks, an LRU's [Re h, Im h] two blocks too (a state whose width is not a multiple
    of H counts as one block of all its numbers)."""
    S, H = sum(model.state_sizes), model.H
    return (S // H, H) if S % H == 0 else (1, S)


def split_state(d, model) -> tuple:
    """(..., S) -> a tuple of (..., H), one per entry of the state."""
    return tuple(np.split(d, np.cumsum(model.state_sizes)[:-1], axis=-1))


def inputs_at(model, xin, t) -> np.ndarray:
    """x_t of every sequence as dense rows (N, D): one-hot rows for ids."""
    if xin.ids is not None:
        out = np.zeros((xin.N, model.D), dtype=model.dtype)
        out[np.arange(xin.N), xin.ids[:, t]] = 1
        return out
    return xin.X[:, t]


def recurrent_inputs(model, prev, cache) -> np.ndarray:
    """R (N, G, H): row g of R[n] is the vector W's row g multiplies at this step, read from the
    cell's recurrent_grad with one unit error per row (h_{t-1} for every row unless the cell says
    otherwise)."""
    cell, h = model.cell, prev[0]
    N, H = h.shape
    if cell.role("recurrent") is None:
        return None
    G = model.params[cell.role("recurrent")].shape[0]
    if type(cell).recurrent_grad is cells.Cell.recurrent_grad:
        return np.broadcast_to(h[:, None, :], (N, G, H))
    eye = np.eye(G, dtype=h.dtype)[:, None, :]  # (G, 1, G): G one-step "sequences", one unit error each
    out = np.empty((N, G, H), dtype=h.dtype)
    for n in range(N):
        p = tuple(np.broadcast_to(s[n], (G, 1) + s.shape[1:]) for s in prev)
        c = tuple(np.broadcast_to(a[n], (G, 1) + a.shape[1:]) for a in cache)
        out[n] = cell.recurrent_grad(model, eye, p, c)
    return out


class Step:
    """One step's linearisation, from state_{t-1} (prev), state_t and the step's cache and input
    x (N, D): .J (N, S, S), .vjp(d) = d^T I_t for errors d (..., N, S) -> (..., N, P), .I (N, S, P)."""

    def __init__(self, model, lay, prev, state, cache, x):
        self.model, self.lay, self.prev, self.state, self.cache, self.x = model, lay, prev, state, cache, x

    @functools.cached_property
    def J(self):
        return self.model.cell.jacobian(self.model, self.prev, self.state, self.cache)

    @functools.cached_property
    def R(self):
        return recurrent_inputs(self.model, self.prev, self.cache)

    def vjp(self, d):
        """d (..., N, S) -> d^T (d state_t / d theta) (..., N, P), state_{t-1} held."""
        cell = self.model.cell
        d_a, d_r, _ = cell.step_back(self.model, self.prev, self.state, self.cache, split_state(d, self.model))
        own = None
        if None in self.lay.roles:
            own = cell.param_grads(self.model, self.prev, self.state, self.cache, d_a, d_r)
        rows = {k: cell.rows(self.model, k) for k, r in zip(self.lay.names, self.lay.roles)
                if r in ("input", "input bias")}
        return self.lay.from_errors(d_a, d_r, self.x, self.R, own, rows)

    @functools.cached_property
    def I(self):  # noqa: E743 (the immediate influence's letter)
        S, N = self.J.shape[-1], self.x.shape[0]
        eye = np.broadcast_to(np.eye(S, dtype=self.x.dtype)[:, None, :], (S, N, S))
        return np.moveaxis(self.vjp(eye), 0, 1)  # (N, S, P)


# --- methods: start, step, read ---------------------------------------------------------------
def check_size(S, P, N) -> None:
    """RTRL's influence matrices (N, S, P) and (N, S, S) within the element limit, or a ValueError."""
    too_big(f"RTRL's influence matrix (N = {N}, S = {S}, P = {P})", N * S * (P + S))


class RTRL:
    """Exact real-time recurrent learning: carry M (N, S, P) and M0 (N, S, S)."""

    name = "rtrl"

    def start(self, model, lay, N):
        S = state_size(model)
        check_size(S, lay.P, N)
        return (np.zeros((N, S, lay.P), dtype=model.dtype),
                np.broadcast_to(np.eye(S, dtype=model.dtype), (N, S, S)).copy())

    def step(self, carry, st):
        M, M0 = carry
        return st.J @ M + st.I, st.J @ M0

    def read(self, carry, dS):
        """dS (N, S) = dE_t/dstate_t -> (dE_t/dtheta through M (P,), dE_t/dstate_{-1} (N, S))."""
        M, M0 = carry
        return np.einsum("ns,nsp->p", dS, M), np.einsum("ns,nsk->nk", dS, M0)


class SnAp(RTRL):
    """SnAp-n (Menick et al. 2021): RTRL with M kept on a fixed sparsity pattern, the entries (unit i,
    parameter p) where p reaches unit i within n steps of the recurrent core. A unit i is the state's
    entries of index i: s_i (Elman), h_i and c_i together (LSTM), h_i (GRU). With UI (H, P) the
    units each parameter feeds directly (pattern of I_t) and UJ (H, H) the units each unit feeds
    directly (pattern of J_t), both read per unit,

        kept_n = union over k = 0..n-1 of pattern(UJ^k UI)    (H, P), for every entry of unit i
        M_t = (J_t M_{t-1} + I_t) * kept_n

    SnAp-1 keeps, for unit i, the parameters that feed it directly: for an Elman cell row i of U, W
    and b; for a gated cell the rows of unit i in every gate (for the reset gate of a reset-before
    GRU, every unit its W_n reaches). The initial state enters the core at step 0 through J_0, so
    its influence keeps the entries union over k = 1..n of pattern(UJ^k). The patterns are
    structural: read at generic random points (inputs, states) with the model's weights, so a zero
    of W removes its paths. SnAp-1 equals RTRL when W is diagonal (each gate's block diagonal); on a
    dense W, SnAp-2 keeps every entry and equals RTRL.
    This implementation masks dense arrays: it measures the approximation, not its cost; SnAp1
    stores SnAp-1 on its pattern (approx.snap and the online learner use it).
    """

    name = "snap"

    def __init__(self, order=1):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an integer n >= 1 (SnAp-n), got {show(order)}")
        self.order = int(order)

    def start(self, model, lay, N):
        self.mask, self.mask0 = masks(model, lay, self.order)
        return super().start(model, lay, N)

    def step(self, carry, st):
        M, M0 = carry
        return (st.J @ M + st.I) * self.mask, (st.J @ M0) * self.mask0


class SnAp1(SnAp):
    """SnAp-1 stored on its pattern, at about the cost of the forward pass: for a cell whose every
    recurrent parameter feeds one unit only (Elman, LSTM, GRU reset after: the rows of unit i in
    each gate feed unit i), SnAp-1 keeps M[(e, unit(p)), p] for each entry e of the state and each
    parameter p, E numbers per parameter (E = 1, or 2 for an LSTM's (h, c)), and

        m_t[e, p] = sum_e' J_t[(e, u), (e', u)] m_{t-1}[e', p] + I_t[(e, u), p],    u = unit(p),

    the diagonal blocks of J_t and the pattern's entries of I_t (one step back per state entry with
    a unit error on every unit: unit u's gates feed unit u only, so each gate error is unit u's own).
    O(E^2 P) a step on top of the cell's step and Jacobian, against SnAp's O(S^2 P) on dense arrays;
    the same numbers as SnAp(1) to rounding. initial=True also carries the initial state's influence
    on SnAp's pattern for it (S x S, O(S^3) a step: snap's h0 gradient); the online learner, which
    never reads it, carries none. A cell or a tied basis whose pattern is not one unit per parameter
    (a reset-before GRU: r_j reaches every unit through W_n) runs SnAp(1)."""

    def __init__(self, initial=True):
        super().__init__(1)
        self.initial = initial

    def start(self, model, lay, N):
        self.mask, self.mask0 = masks(model, lay, 1)
        self.unit = unit_of(model, lay, self.mask)
        if self.unit is None:
            return RTRL.start(self, model, lay, N)
        self.E, self.H = units(model)
        S = self.E * self.H
        m = np.zeros((N, self.E, lay.P), dtype=model.dtype)
        return m, (np.broadcast_to(np.eye(S, dtype=model.dtype), (N, S, S)).copy() if self.initial else None)

    def step(self, carry, st):
        if self.unit is None:
            return super().step(carry, st)
        m, M0 = carry
        E, H, N = self.E, self.H, st.x.shape[0]
        J = st.J
        Jd = J.reshape(N, E, H, E, H).diagonal(axis1=2, axis2=4)  # (N, E, E, H): J[(e, i), (e', i)]
        units = np.zeros((E, N, E * H), dtype=J.dtype)
        for e in range(E):
            units[e, :, e * H:(e + 1) * H] = 1
        immediate = np.moveaxis(st.vjp(units), 0, 1)  # (N, E, P): I_t[(e, unit(p)), p]
        m = np.einsum("nefp,nfp->nep", Jd[..., self.unit], m) + immediate
        return m, (None if M0 is None else (J @ M0) * self.mask0)

    def read(self, carry, dS):
        if self.unit is None:
            return super().read(carry, dS)
        m, M0 = carry
        N = dS.shape[0]
        g = np.einsum("nep,nep->p", dS.reshape(N, self.E, self.H)[:, :, self.unit], m)
        return g, (np.zeros_like(dS) if M0 is None else np.einsum("ns,nsk->nk", dS, M0))


def unit_of(model, lay, mask):
    """(P,) the unit each recurrent parameter feeds (the unit of its row), or None where SnAp-1's
    pattern (mask, from masks(model, lay, 1)) is not one unit per parameter (a tied basis, or a cell
    such as the reset-before GRU)."""
    if lay.basis is not None:
        return None
    H = units(model)[1]
    unit = np.concatenate([np.repeat(np.arange(shape[0]) % H, int(np.prod(shape[1:])))
                           for shape in lay.shapes])
    kept = mask[:H]  # (H, P): the units each parameter feeds, unit by unit
    own = np.zeros_like(kept)
    own[unit, np.arange(lay.P)] = True
    return unit if not (kept & ~own).any() else None


def patterns(model, lay, points=16):
    """(pattern of I (S, P), pattern of J (S, S)), bool: the entries that are non-zero at generic
    points (random states, inputs and input parts, a fixed internal seed: the patterns depend on the
    model's weights only)."""
    rng = np.random.default_rng(0)
    G, dt = model.cell.width(model), model.dtype
    prev = tuple(rng.normal(size=(points, H)).astype(dt) for H in model.state_sizes)
    state, cache = model.cell.step(model, rng.normal(size=(points, G)).astype(dt), prev)
    st = Step(model, lay, prev, state, cache, rng.normal(size=(points, model.D)).astype(dt))
    return (st.I != 0).any(axis=0), (st.J != 0).any(axis=0)


def masks(model, lay, order):
    """SnAp-n's kept entries: (mask (S, P), mask0 (S, S)) booleans (see SnAp), by unit."""
    pI, pJ = patterns(model, lay)
    E, H = units(model)  # the state's entries: E blocks of H, unit i = index i of each
    UI = pI.reshape(E, H, -1).any(axis=0).astype(np.int64)  # (H, P)
    UJ = pJ.reshape(E, H, E, H).any(axis=(0, 2)).astype(np.int64)  # (H, H)
    kept, reach = UI > 0, UI
    kept0, reach0 = UJ > 0, UJ
    for _ in range(min(order, H + 1) - 1):  # after H steps of H units every reachable entry is reached
        reach, reach0 = np.minimum(UJ @ reach, 1), np.minimum(UJ @ reach0, 1)
        kept, kept0 = kept | (reach > 0), kept0 | (reach0 > 0)
    return np.tile(kept, (E, 1)), np.tile(kept0, (E, E))


# --- the loop over a sequence, forward, nothing kept per step ----------------------------------
def step_forward(model, xin, t, prev):
    """One step of the forward pass: (state_t, cache_t, x_t (N, D) dense) from state_{t-1}."""
    one = xin._replace(ids=None if xin.ids is None else xin.ids[:, t:t + 1],
                       X=None if xin.X is None else xin.X[:, t:t + 1], T=1)
    state, cache = model.cell.step(model, model.cell.project(model, one)[0], prev)
    return state, cache, inputs_at(model, xin, t)


def step_output(model, tg, t, h, scale):
    """Output t: (E_t summed over the batch and scaled, dE_t/dq_t (N, O), q_t (N, O)) from h_t (N, H)."""
    q = h @ model.V.T + (0 if model.c is None else model.c)  # (N, O)
    one = validate.Targets(*(None if a is None else a[:, t:t + 1] for a in tg))
    loss, dq = heads.error(model.head, q[None], one, "sum")
    return loss * scale, dq[0] * scale, q


@dataclass(frozen=True)
class Run:
    """What a forward-mode method produced over one sequence (or batch) with fixed weights: the loss,
    the head's gradients (exact), g (..., P) the recurrent parameters' gradient and g0 (..., N, S)
    the initial state's, in the layout lay."""

    model: object
    loss: float
    head: dict
    lay: Layout
    g: np.ndarray
    g0: np.ndarray
    batched: bool


def state_error(dh, model) -> np.ndarray:
    """dE_t/dstate_t (N, S) from dE_t/dh_t (N, H): zeros for the other entries of the state."""
    return np.concatenate([dh] + [np.zeros_like(dh)] * (len(model.cell.state) - 1), axis=-1)


def run(model, x, y, method, *, h0=None, reduction="sum") -> Run:
    """Run a method (start, step, read) forward over x with the weights held fixed. The forward pass
    goes step by step with the method: nothing is kept per step, so memory does not grow with T."""
    heads.check_reduction(reduction)
    validate.a_model(model).check_finite()
    xin = validate.inputs(model, x)
    tg = validate.targets(model, y, xin)
    scale = heads.scale(tg, reduction)
    state = core.initial_state(model, h0, xin)
    lay = layout(model)
    carry = method.start(model, lay, xin.N)
    loss, g, g0 = 0.0, 0, 0
    dV, dc = np.zeros_like(model.V), np.zeros(model.O, dtype=model.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(xin.T):
            prev = state
            state, cache, xt = step_forward(model, xin, t, prev)
            carry = method.step(carry, Step(model, lay, prev, state, cache, xt))
            e, dq, _ = step_output(model, tg, t, state[0], scale)
            dg, dg0 = method.read(carry, state_error(dq @ model.V, model))
            loss, g, g0 = loss + e, g + dg, g0 + dg0
            dV += dq.T @ state[0]
            dc += dq.sum(axis=0)
    head = {"V": dV} if model.c is None else {"V": dV, "c": dc}
    return Run(model, float(loss), head, lay, g, g0, xin.batched)


def refuse_stack(model, what) -> None:
    """A ValueError for a bptt.Stack given to a method that has no form for it (SnAp, UORO)."""
    from ..stack import Stack

    if isinstance(model, Stack):
        raise ValueError(f"{what} is defined here for one layer, not for a bptt.Stack: approx.rtrl takes a "
                         "unidirectional stack (exact), bptt.gradients any stack")


def to_grads(r: Run, g=None, g0=None, *, x=None, h0=None) -> core.Grads:
    """A Grads shaped like bptt.gradients' from a run (g (P,) and g0 (N, S) given or the run's): the
    head's gradients exact, the recurrent ones from g, h0 (and c0) from g0. Not finite: a
    FloatingPointError naming the step where the forward pass overflowed (it is re-run on x, h0)."""
    g = r.g if g is None else g
    g0 = r.g0 if g0 is None else g0
    model = r.model
    params = dict(r.head, **r.lay.split(np.asarray(g)))
    params = {k: params[k].astype(model.dtype, copy=False) for k in model.params}
    state0 = split_state(np.asarray(g0, dtype=model.dtype), model)
    grads = core.Grads(params, tuple(s if r.batched else s[..., 0, :] for s in state0))
    if not (np.isfinite(r.loss) and all(np.isfinite(v).all() for v in params.values())
            and all(np.isfinite(s).all() for s in grads.state0)):
        core.finite(core.forward(model, x, h0), r.loss, grads, None)
    return grads


@core.reports_overflow
def rtrl(model, x, y, *, h0=None, reduction="sum"):
    """Real-time recurrent learning (Williams & Zipser 1989): (loss, Grads) like bptt.gradients,
    computed forward in time by carrying the influence matrix. Equals BPTT for fixed weights.
    model: a one-layer model (bptt.approx.rtrl, approx.stacked's, takes a stack too).

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: targets as for bptt.gradients.
    Cost per step and sequence: O(S^2 P) time, O(S P) memory (see the module's notes).
    """
    r = run(model, x, y, RTRL(), h0=h0, reduction=reduction)
    return r.loss, to_grads(r, x=x, h0=h0)


@core.reports_overflow
def snap(model, x, y, order=1, *, h0=None, reduction="sum"):
    """SnAp-n (order=n): (loss, Grads) like bptt.gradients, from the influence matrix kept on the
    entries reachable within n steps (see SnAp). The head's gradients are exact."""
    refuse_stack(model, "SnAp (its sparsity pattern)")
    method = SnAp(order)  # checks the order
    r = run(model, x, y, SnAp1() if method.order == 1 else method, h0=h0, reduction=reduction)
    return r.loss, to_grads(r, x=x, h0=h0)
