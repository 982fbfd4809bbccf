"""What theory promises about vanishing and exploding gradients, from the weights alone.

Every backward step multiplies the error by ds_j/ds_{j-1} = diag(f'(z_j)) W, so with
gamma = max |f'| (1 for tanh, relu and identity, 1/4 for sigmoid) and lambda_1 = ||W||_2, the
largest singular value of W,

    ||dE_t/ds_k|| <= ||dE_t/ds_t|| (lambda_1 gamma)^(t-k)                       (the bound)

(Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013, section 3.1). Hence:
- lambda_1 < 1/gamma is sufficient for vanishing: every error shrinks geometrically with the lag;
- lambda_1 > 1/gamma is necessary for exploding, but not sufficient: saturated units
  (f' near 0) can still kill the error.
For the identity activation the product is W^(t-k) itself, so the spectral radius rho(W) decides:
rho > 1 makes almost every error explode like rho^(t-k), rho < 1 makes it vanish (after a
transient when lambda_1 > 1 > rho).

The bound is for Elman cells. A gated cell's backward step also carries the error along a direct
path multiplied by one gate alone (an LSTM's cell state c_k -> c_{k-1} by the forget gate f_k, a
GRU's copy h_k -> h_{k-1} by the update gate z_k), a factor up to 1 that no norm of W bounds. For
those cells the Theory's verdict says so, gamma, lambda_1 and rho are NaN, and what decides is
measured on a sequence (`measure`): the decay rate, the Lyapunov spectrum of the state (the joint
(h, c) of an LSTM) and the saturation of the path's gate.

A linear recurrence (cell.time_invariant: the LRU, the linear cell) has no activation and no gate: its
step's Jacobian A = d h_t / d h_{t-1} is the same at every step, whatever the inputs (the LRU's
diag(lambda) in real form, the linear cell's diag(lambda)), so the error at lag l is multiplied by
A^l exactly, and rho(A) = max |lambda| decides: every error vanishes like rho^l when rho < 1, some
explode when rho > 1. Its Theory has gamma = 1, lambda_1 = ||A||_2 and rho = rho(A) (`transition`).

`cliff` is the one-unit network of Pascanu et al. (2013, figure 6), x_t = w sigma(x_{t-1}) + b,
whose loss surface over (w, b) has a wall where the gradient jumps by orders of magnitude.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import activations, cells
from .validate import integer, too_big

EQUAL_TOL = 1e-9  # |x - 1| below this counts as x = 1 in the verdicts
GATED_VERDICT = "not bounded by the weights"


@dataclass(frozen=True)
class Theory:
    """The theory's numbers for one model; see the module's notes."""

    activation: str
    gamma: float    # max |f'| (NaN for a gated cell)
    lambda1: float  # ||W||_2, the largest singular value of W (NaN for a gated cell)
    rho: float      # spectral radius of W (NaN for a gated cell)
    verdict: str    # "vanishing", "exploding", "neither is guaranteed", or for a gated cell GATED_VERDICT
    reason: str     # the verdict's reason, in words
    cell: str = "rnn"
    measured: dict | None = field(default=None, compare=False)  # gated cells: measure(flow), when given one

    @property
    def applies(self) -> bool:
        """Whether Pascanu's bound holds for this cell (Elman cells only)."""
        return bool(cells.get(self.cell).pascanu) if self.cell in cells.names() else False

    def _require(self):
        if not self.applies:
            raise ValueError(f"Pascanu's bound (lambda_1 gamma)^l is for Elman cells, not for the {self.cell} cell: "
                             "its error also travels a direct path that no norm of W bounds (see the verdict)")

    @property
    def growth(self) -> float:
        """lambda_1 gamma: the most one backward step can multiply an error's norm by."""
        return self.lambda1 * self.gamma

    @property
    def vanishing_sufficient(self) -> bool:
        """lambda_1 < 1/gamma: the sufficient condition for vanishing holds."""
        return self.lambda1 * self.gamma < 1 - EQUAL_TOL

    @property
    def exploding_necessary(self) -> bool:
        """lambda_1 > 1/gamma: the necessary condition for exploding holds."""
        return self.lambda1 * self.gamma > 1 + EQUAL_TOL

    def bound(self, lags) -> np.ndarray:
        """(lambda_1 gamma)^l for each lag l: the bound on ||dE_t/ds_{t-l}|| / ||dE_t/ds_t||
        (Elman cells; a ValueError for gated cells)."""
        self._require()
        with np.errstate(over="ignore"):
            return self.growth ** np.asarray(lags, dtype=float)

    def log10_bound(self, lags) -> np.ndarray:
        """log10 of bound(lags), finite for any lag (for plots of long sequences)."""
        self._require()
        with np.errstate(divide="ignore"):
            return np.asarray(lags, dtype=float) * np.log10(self.growth)

    def as_dict(self) -> dict:
        """Plain data (NaN as None, for JSON)."""
        num = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        out = {"activation": self.activation, "gamma": num(self.gamma), "lambda1": num(self.lambda1),
               "rho": num(self.rho), "lambda1_gamma": num(self.growth),
               "vanishing_sufficient": self.vanishing_sufficient,
               "exploding_necessary": self.exploding_necessary,
               "verdict": self.verdict, "reason": self.reason, "cell": self.cell, "bound_applies": self.applies}
        if self.measured is not None:
            out["measured"] = dict(self.measured)
        return out


def theory(model, flow=None) -> Theory:
    """gamma, lambda_1, rho, the two conditions and a verdict with its reason, for a model's W and f.

    For a gated cell (LSTM, GRU) the verdict says that the bound does not apply and what decides
    instead; given a Flow of that model, the Theory carries its measured numbers (`measure`) and
    the reason quotes them. flow is not read for an Elman cell, whose verdict is the weights'.
    """
    if not model.cell.pascanu:
        return _gated(model, flow)
    act = activations.get(model.activation)
    W = np.asarray(model.W, dtype=np.float64)
    lam = float(np.linalg.norm(W, 2))
    rho = float(np.max(np.abs(np.linalg.eigvals(W))))
    g = act.gamma
    c = lam * g
    head = f"lambda_1 gamma = {lam:.4g} x {g:g} = {c:.4g}"
    one = abs(c - 1) <= EQUAL_TOL  # rounding of W = 1.0 * orthogonal must not decide the verdict
    if c < 1 and not one:
        verdict = "vanishing"
        reason = (f"{head} < 1: the sufficient condition for vanishing holds, so every error shrinks "
                  f"at least as fast as {c:.4g}^(t-k) on its way back, whatever the inputs")
    elif act.name == "identity" and abs(rho - 1) <= EQUAL_TOL:
        verdict = "neither is guaranteed"
        reason = (f"the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = 1: "
                  "the error along W's leading eigenvectors keeps its size, neither vanishing nor exploding")
    elif act.name == "identity" and rho > 1:
        verdict = "exploding"
        reason = (f"the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = {rho:.4g} > 1: "
                  f"every error with a component along W's leading eigenvector grows like {rho:.4g}^(t-k)")
    elif act.name == "identity":
        verdict = "vanishing"
        reason = (f"the activation is the identity, so ds_t/ds_k = W^(t-k), and rho(W) = {rho:.4g} < 1: "
                  f"every error shrinks like {rho:.4g}^(t-k) in the long run (it may grow for a few steps "
                  f"first, since {head} >= 1)")
    else:
        verdict = "neither is guaranteed"
        cond = "holds" if c > 1 and not one else "is on its edge"
        reason = (f"{head} >= 1: the sufficient condition for vanishing fails and the necessary condition "
                  f"for exploding {cond}, but {act.name} units with f'(z) "
                  "near 0 can still shrink the error; whether it vanishes or explodes depends on the "
                  "states the inputs drive the network to, so measure it (decay rate, saturation)")
    return Theory(act.name, g, lam, rho, verdict, reason)


def _article(name) -> str:
    """"an" before a vowel or a spelt-out acronym ("an LSTM", "an LRU"), else "a" ("a GRU", "a MinGRU")."""
    return "an" if name[0] in "AEIOU" or (name[:2].isupper() and name[0] in "AEFHILMNORSX") else "a"


def transition(model) -> np.ndarray:
    """A = d state_t / d state_{t-1} of a linear time-invariant recurrence (cell.time_invariant), (S, S) float64: the same at
    every step, read from the cell's Jacobian at a zero state and input."""
    m = model.astype(np.float64)
    cell = m.cell
    if not cell.time_invariant:
        raise ValueError(f"the {cell.name} cell's step Jacobian depends on its state and inputs: it has no single "
                         "transition matrix (a linear recurrence has one: "
                         f"{', '.join(n for n in cells.names() if cells.get(n).time_invariant)})")
    state = tuple(np.zeros((1, w)) for w in m.state_sizes)
    new, cache = cell.step(m, np.zeros((1, cell.width(m))), state)
    return cell.jacobian(m, state, new, cache)[0]


def recurrence_norms(model) -> tuple:
    """(rho, lambda_1) of the matrix a backward step multiplies the error by, where the weights alone
    give one: the Elman cell's W (rho its spectral radius, lambda_1 = ||W||_2), a linear recurrence's
    transition A; a gated cell's W (G H, H) has lambda_1 only (rho None: not square), and so has a
    square W that is not the whole step (the coRNN's, beside Wz, gamma and eps); a cell with neither
    (the minGRU, the minLSTM) (None, None)."""
    W = model.params.get(model.cell.role("recurrent")) if model.cell.role("recurrent") else None
    if W is None and model.cell.time_invariant:
        W = transition(model)
    if W is None:
        return None, None
    W = np.asarray(W, dtype=np.float64)
    whole = model.cell.pascanu or model.cell.time_invariant  # W (or A) is the matrix of the backward step
    rho = float(np.max(np.abs(np.linalg.eigvals(W)))) if W.shape[0] == W.shape[1] and whole else None
    return rho, float(np.linalg.norm(W, 2))


def _linear(model, flow) -> Theory:
    """The verdict of a linear recurrence: rho(A) of its transition A (module's notes)."""
    A = transition(model)
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    lam = float(np.linalg.norm(A, 2))
    name = type(model).__name__
    head = (f"{_article(name)} {name}'s step is linear, so dh_t/dh_k = A^(t-k) with the "
            f"same A at every step, whatever the inputs; rho(A) = max |lambda| = {rho:.4g}")
    after = "" if lam <= rho * (1 + EQUAL_TOL) else f" (after a transient: ||A||_2 = {lam:.4g} > rho)"
    if abs(rho - 1) <= EQUAL_TOL:
        verdict = "neither is guaranteed"
        reason = f"{head}: the error along an eigenvalue of modulus 1 keeps its size, neither vanishing nor exploding"
    elif rho < 1:
        verdict = "vanishing"
        reason = (f"{head} < 1: every error shrinks like {rho:.4g}^(t-k){after}, the slowest unit's rate; "
                  "none can explode")
    else:
        verdict = "exploding"
        reason = (f"{head} > 1: every error with a component along an eigenvector of modulus {rho:.4g} grows "
                  f"like {rho:.4g}^(t-k)")
    measured = None
    if flow is not None:
        from .analysis import decay_rate
        from .spectra import lyapunov

        try:
            d = decay_rate(flow)
        except ValueError:
            d = None
        measured = {"decay_rate": d, "lyapunov_max": lyapunov(flow.trace).max}
        reason += "; measured on this sequence: decay rate " + ("undefined" if d is None else f"{d:.4g} per step")
    return Theory("linear", 1.0, lam, rho, verdict, reason, model.cell.name, measured)


def _gated(model, flow) -> Theory:
    cell = model.cell
    if cell.time_invariant:
        return _linear(model, flow)
    name = type(model).__name__
    article = _article(name)
    state = f"the joint state ({', '.join(cell.state)})" if len(cell.state) > 1 else f"the state {cell.state[0]}"
    nan = float("nan")
    if not cell.memory:  # no gated path to point at: the measurements alone decide
        reason = (f"Pascanu's bounds (gamma = max |f'|, lambda_1 = ||W||_2) are for Elman cells, whose every "
                  f"backward step multiplies the error by diag(f'(z)) W; {article} {name}'s step is another, so "
                  f"neither condition decides. What decides is measured along the sequence: the decay rate of "
                  f"||dE_t/dh_(t-l)|| and the Lyapunov spectrum of {state}")
        return Theory("cell", nan, nan, nan, GATED_VERDICT, reason, cell.name)
    route, gname, does = cell.memory_text
    g = cell.memory[1]
    reason = (f"Pascanu's bounds (gamma = max |f'|, lambda_1 = ||W||_2) are for Elman cells, whose every backward "
              f"step multiplies the error by diag(f'(z)) W; {article} {name}'s error also travels {route}, a factor "
              "up to 1 that no norm of W bounds, so neither condition decides. What decides is measured along the "
              f"sequence: the decay rate of ||dE_t/dh_(t-l)||, the Lyapunov spectrum of {state}, and the {gname} "
              f"gates' saturation ({g} near 1 {does})")
    measured = None
    if flow is not None:
        measured = measure(flow)
        d, ly = measured["decay_rate"], measured["lyapunov_max"]
        trend = "" if d is None else (" (the error shrinks with the lag here)" if d < 1 else
                                      " (the error grows with the lag here)" if d > 1 else "")
        reason += ("; measured on this sequence: decay rate " + ("undefined" if d is None else f"{d:.4g} per step")
                   + f"{trend}, largest Lyapunov exponent {ly:.4g} (exp {np.exp(ly):.4g}), "
                   f"{100 * measured['path_gate_near_1']:.1f}% of the {gname} gates above 0.9, their geometric "
                   f"mean {measured['path_rate']:.4g}")
    return Theory("sigmoid+tanh", nan, nan, nan, GATED_VERDICT, reason, cell.name, measured)


def measure(flow) -> dict:
    """What decides a gated cell's gradient flow, measured on one Flow: decay_rate (None when no
    error reaches lag 1), lyapunov_max (of the whole state), and of the direct path's gate (LSTM
    f, GRU z): its name, mean, share above 0.9 and below 0.1, and geometric mean path_rate."""
    from .analysis import decay_rate, gate_saturation
    from .spectra import lyapunov

    try:
        d = decay_rate(flow)
    except ValueError:
        d = None
    sat = gate_saturation(flow.trace)
    g = sat.path_gate
    return {"decay_rate": d, "lyapunov_max": lyapunov(flow.trace).max, "path_gate": g,
            "path_gate_mean": sat.mean(g), "path_gate_near_1": sat.near_one(g), "path_gate_near_0": sat.near_zero(g),
            "path_rate": sat.path_rate}


def bound_table(flow) -> np.ndarray:
    """The bound ||dE_t/ds_t|| (lambda_1 gamma)^(t-k) for every (t, k): (T, T) float64, zero above
    the diagonal. Filled a row at a time, row t = ||dE_t/ds_t|| times the powers (lambda_1 gamma)^l
    for l = t..0, so the only (T, T) array made is the one returned. Elman cells only (a ValueError
    for gated cells, where the bound does not hold)."""
    theory(flow.trace.model)._require()
    T = flow.T
    power = theory(flow.trace.model).bound(np.arange(T))  # (T,): (lambda_1 gamma)^l
    start = np.diagonal(flow.dE_ds)  # (T,): ||dE_t/ds_t||
    out = np.zeros((T, T))
    for t in range(T):
        np.multiply(start[t], power[t::-1], out=out[t, :t + 1])
    return out


# --- the cliff -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Cliff:
    """Loss and gradient of the one-unit network on a grid: w (NW,), b (NB,), loss, dw, db (NB, NW)."""

    w: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    dw: np.ndarray
    db: np.ndarray
    steps: int
    x0: float
    target: float

    @property
    def grad_norm(self) -> np.ndarray:
        """||(dE/dw, dE/db)||: (NB, NW)."""
        return np.hypot(self.dw, self.db)


def _sigmoid(x):
    return activations.get("sigmoid").f(np.asarray(x, dtype=np.float64))


def cliff(w, b, *, steps=50, x0=0.5, target=0.7) -> Cliff:
    """The loss E = (sigma(x_steps) - target)^2 of x_t = w sigma(x_{t-1}) + b, x_0 = x0, over a grid.

    w: (NW,) and b: (NB,) values; the derivatives dE/dw and dE/db are carried forward exactly
    alongside x_t (dx_t/dw = sigma(x_{t-1}) + w sigma'(x_{t-1}) dx_{t-1}/dw), for every grid point at once.
    """
    w = np.atleast_1d(np.asarray(w, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    if w.ndim != 1 or b.ndim != 1 or not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise ValueError(f"w and b must be finite 1-D grids, got shapes {w.shape} and {b.shape}")
    steps = integer("steps", steps, 1)
    too_big(f"cliff: {steps} steps over a grid of {w.size} x {b.size}", steps * w.size * b.size)
    W, B = np.meshgrid(w, b)  # (NB, NW)
    x = np.full_like(W, float(x0))
    dxw = np.zeros_like(W)
    dxb = np.zeros_like(W)
    for _ in range(int(steps)):
        s = _sigmoid(x)
        ds = s * (1 - s)
        dxw, dxb = s + W * ds * dxw, 1 + W * ds * dxb
        x = W * s + B
    s = _sigmoid(x)
    e = s - target
    g = 2 * e * s * (1 - s)  # dE/dx_steps
    return Cliff(w, b, e * e, g * dxw, g * dxb, int(steps), float(x0), float(target))


def cliff_model(w, b, *, steps=50, x0=0.5, target=0.7):
    """The same one-unit network as a bptt RNN: (model, x, y, h0) for bptt.gradients.

    z_t = W s_{t-1} + b with W = [[w]], s = sigmoid(z), no input (U = 0, x = zeros), h0 = sigma(x0),
    head "mse" with V = [[1]] and a target only at the last step: z_t is x_t, q = sigma(x_steps).
    """
    from .model import RNN

    model = RNN(U=np.zeros((1, 1)), W=np.array([[float(w)]]), V=np.ones((1, 1)), b=np.array([float(b)]),
                activation="sigmoid", head="mse")
    steps = integer("steps", steps, 1)
    too_big(f"cliff_model: {steps} steps", steps)
    x = np.zeros((steps, 1))
    y = np.full((steps, 1), np.nan)
    y[-1] = target
    return model, x, y, _sigmoid(np.array([float(x0)]))
