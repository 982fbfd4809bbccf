"""The cell interface: what the engine, the checks, the analysis and training ask of a recurrent cell.

A cell is one class: its parameters declared with their shapes, its state's entries, its default
initialisation, and its step forward with the step's vector-Jacobian product beside it. Register
it (bptt.cells.register) and every verb takes it: gradients, flow, check, approx, training,
checkpoints, sweeps and --cell. The reference engine (bptt.core) runs any registered cell; the
fast backend (bptt.fast) runs the cells it has kernels for and leaves the others to the reference.

Conventions (N batch, T time, D input, H hidden, O output, G the width of the step's input part):

    a_t = project(m, x)_t   the input's part of step t, (T, N, G) for all steps at once; by
                            default U x_t + b, the parameters with the roles "input" and
                            "input bias"
    state_{t-1}             a tuple of (N, H) arrays named by `state`; its first entry is the
                            hidden output h_{t-1}, which the head reads: q_t = V h_t + c

and the cell gives back

    step(m, a, state)                   -> (state_t, cache_t)
    step_back(m, prev, state, cache, d) -> (d_a, d_r, d_prev)
        prev, state, cache   state_{t-1}, state_t and cache_t as the forward step made them
        d      dE/d state_t, a tuple like the state: the error arriving at step t's output
        d_a    dE/d a_t, (N, G)
        d_r    the error of the recurrent part: for a parameter with the role "recurrent",
               dE/d(W h_{t-1} + bh), so that dW = sum_t d_r_t h_{t-1}^T and dbh = sum_t d_r_t;
               a cell without such a parameter returns what its param_grads reads
        d_prev dE/d state_{t-1} through this step: the error the loop carries on

Every operation broadcasts over leading axes: `d` may carry extra leading axes (the truncation
window and bptt.flow send many outputs' errors back through one step at once; the engine sends all
steps at once to param_grads), and the state and cache broadcast against them.

Parameters. `params` maps each of the cell's parameter names to a Param: its shape in the letters
D and H ("4H" is four blocks of H), whether it may be left out (a bias), and its role, which tells
the engine how its gradient is made from the step errors:
    "input"            U (G, D): dU = sum_t d_a_t x_t^T
    "input bias"       b (G,):   db = sum_t d_a_t
                       (several parameters may share these two roles: they are stacked by rows,
                       in their declared order, into U and b, and each takes its rows of d_a:
                       an LRU's B_re and B_im)
    "recurrent"        W (G, H): dW = recurrent_grad(...) = sum_t d_r_t h_{t-1}^T
    "recurrent bias"   bh (G,):  dbh = sum_t d_r_t
    None               the cell's own: param_grads gives it, per step and sequence
The head V (O, out(H)) and c (O,) belong to every model, not to the cell.
"""
from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from .. import activations
from ..validate import show

ROLES = ("input", "recurrent", "input bias", "recurrent bias")


class Param(NamedTuple):
    """A parameter of a cell: shape, a tuple of "D", "H" or "kH" (k blocks of H), e.g. ("4H", "D");
    optional, whether a model may leave it out (None); role, one of ROLES or None (the module's
    notes)."""
    shape: tuple
    optional: bool = False
    role: str | None = None


def sizes(shape, D, H) -> tuple:
    """A Param's shape in numbers: ("4H", "D") with D = 3, H = 2 -> (8, 3)."""
    if not isinstance(shape, tuple) or not all(isinstance(s, str) and (s == "D" or s.endswith("H")) for s in shape):
        raise ValueError(f"shape must be a tuple of 'D', 'H' or 'kH', got {show(shape)}")
    return tuple((int(s[:-1] or 1) * H if s.endswith("H") else D) for s in shape)


def sigmoid(x):
    return activations.get("sigmoid").f(x)


class Cell:
    """The base of every cell. Class attributes (the declaration):

    name      the one spelling every verb prints ("rnn"); aliases: {other spelling: settings}
              accepted as input only (e.g. {"elman": {}})
    label     how pages and tables print it ("Elman")
    model     the name of its model class (bptt.RNN)
    params    {name: Param}, in the order a model's constructor takes them positionally
    settings  {name: default}: the cell's options that a model keeps and saves (e.g. activation)
    state     the names of the state's entries, the head's first: ("h",) or ("h", "c")
    gates     the names of the gate blocks its cache starts with, in the order of its rows
              (() for a cell without gates); sigmoid_gates: those of them through sigma
    memory    (state entry, gate): the direct path along which the error travels multiplied by one
              gate alone (an LSTM's ("c", "f")), or None; memory_text: (that path in words, the gate's
              name, what the gate near 1 does), for the theory's verdict
    pascanu   whether Pascanu et al.'s bound (lambda_1 gamma)^l holds for its backward step
    time_invariant  whether its step is linear in the state with a Jacobian A = d state_t /
              d state_{t-1} that depends on neither the state nor the input (a linear time-invariant
              recurrence: the LRU, the linear cell; not the minGRU, whose coefficient is the input's
              gate): the error then goes back multiplied by A^l at lag l, and the theory reads its
              verdict from A's eigenvalues
    torch     the torch.nn layer that computes the cell, by class name ("LSTM"), or None;
              torch_allows: {setting: the values that layer has} where it has fewer than the cell
              (an nn.RNN's nonlinearity is tanh or relu)
    keras     the Keras layer that computes the cell ("LSTM"), or None; keras_gates: where that layer
              keeps the gate blocks in bptt's order (a Keras GRU's z, r, h are bptt's blocks 1, 0, 2),
              None for the same order
    """

    name = None
    aliases: dict = {}
    label = None
    model = None
    params: dict = {}
    settings: dict = {}
    state = ("h",)
    gates: tuple = ()
    sigmoid_gates: tuple = ()
    memory = None
    memory_text = None
    pascanu = False
    time_invariant = False
    torch = None
    torch_allows: dict = {}
    keras = None
    keras_gates = None

    def __init__(self, **settings):
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            takes = f"its settings are {', '.join(self.settings)}" if self.settings else "it has no settings"
            raise ValueError(f"the {self.name} cell has no setting {', '.join(unknown)}: {takes}")
        self.values = {**self.settings, **settings}

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    @classmethod
    def options(cls) -> tuple:
        """What a random model of this cell takes besides its sizes: its settings and the keyword
        options of its init (e.g. activation, init, std, radius, bias; forget_bias)."""
        init = [k for k in inspect.signature(cls.init).parameters if k not in ("self", "rng", "D", "H", "O")]
        return tuple(cls.settings) + tuple(k for k in init if k not in cls.settings)

    def state_sizes(self, H) -> tuple:
        """The widths of the state's entries: H each by default (a cell whose state is wider than
        its units, e.g. the LRU's real and imaginary parts side by side, says so here)."""
        return (H,) * len(self.state)

    def out(self, H) -> int:
        """The number of hidden outputs the head reads (V's columns): the state's first entry."""
        return self.state_sizes(H)[0]

    def uses(self, name) -> bool:
        """Whether these settings use the optional parameter `name` (all by default; the Elman
        cell's bm belongs to activation "modrelu" alone): what a random draw with biases includes."""
        return True

    def check_params(self, arrays) -> None:
        """Refuse, with a ValueError, a set of parameters (name -> array, optional ones absent) that
        this cell's settings cannot use; the model calls it once its arrays are checked. None by
        default (the Elman cell's bm belongs to activation "modrelu" alone)."""

    # initialisation -----------------------------------------------------------------------
    def init(self, rng, D, H, O, *, bias=True, std=None):
        """Random parameters by name, the head's V, c included: every weight uniform on
        +-1/sqrt(H) (PyTorch's initialisation of its recurrent layers), or Gaussian with std;
        bias=False leaves the optional ones out. Override for another initialisation."""
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float, np.integer, np.floating))
                                or not np.isfinite(std) or std < 0):
            raise ValueError(f"std must be a finite number >= 0, got {show(std)}")
        k = 1 / np.sqrt(H)
        draw = (lambda shape: rng.normal(0.0, std, shape)) if std is not None else \
            (lambda shape: rng.uniform(-k, k, shape))
        params = {n: draw(sizes(p.shape, D, H)) for n, p in self.params.items() if not p.optional}
        params["V"] = draw((O, self.out(H)))
        if bias:
            params.update({n: draw(sizes(p.shape, D, H)) for n, p in self.params.items() if p.optional and self.uses(n)})
            params["c"] = draw((O,))
        return params

    # the step -----------------------------------------------------------------------------
    def role(self, role):
        """The name of the (first) parameter with this role, or None."""
        return next((n for n, p in self.params.items() if p.role == role), None)

    def rows(self, m, name) -> slice:
        """The rows of the input part a_t (and of d_a) that the parameter `name` with the role
        "input" or "input bias" makes: all G rows unless several parameters share the role."""
        role = self.params[name].role
        start = 0
        for k, p in self.params.items():
            if p.role == role and k in m.params:
                if k == name:
                    return slice(start, start + m.params[k].shape[0])
                start += m.params[k].shape[0]
        raise ValueError(f"{name} is not a parameter of this model with the role 'input' or 'input bias'")

    def stacked(self, m, role):
        """The parameters with this role stacked by rows (U, or b; None if the model has none)."""
        parts = [m.params[k] for k, p in self.params.items() if p.role == role and k in m.params]
        return None if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts)

    def width(self, m) -> int:
        """G, the width of the step's input part a_t and of its errors d_a, d_r: the input
        parameters' rows."""
        return self.stacked(m, "input").shape[0]

    def project(self, m, xin):
        """a_t = U x_t + b for every step: (T, N, G). For ids, U x_t is column x_t of U (a gather)."""
        U, b = self.stacked(m, "input"), self.stacked(m, "input bias")
        A = U.T[xin.ids.T] if xin.ids is not None else np.swapaxes(xin.X, 0, 1) @ U.T
        return A if b is None else A + b

    def step(self, m, a, state):
        raise NotImplementedError

    def step_back(self, m, prev, state, cache, d):
        raise NotImplementedError

    def jacobian(self, m, prev, state, cache):
        """d state_t / d state_{t-1}: (N, S, S), rows and columns in the state's order (h, then c).
        Row j is step_back of the unit error on entry j of state_t (one batched call)."""
        sizes_ = [p.shape[-1] for p in state]
        S = sum(sizes_)
        eye = np.eye(S, dtype=state[0].dtype)[:, None, :]  # (S, 1, S): one unit error per row
        d = tuple(np.broadcast_to(part, (S,) + p.shape) for part, p in
                  zip(np.split(eye, np.cumsum(sizes_)[:-1], axis=-1), state))
        _, _, prev_err = self.step_back(m, prev, state, cache, d)
        return np.moveaxis(np.concatenate(prev_err, axis=-1), 0, -2)  # (N, S, S)

    def jacobian_back(self, m, prev, state, cache, G):
        """The vector-Jacobian product of the step Jacobian A_t = d state_t / d state_{t-1} (jacobian's),
        for a loss L that depends on A_t: G = dL/dA_t (N, S, S) -> (d_a, d_r, d_prev, direct):
            d_a     dL/da_t through A_t, (N, G): the input part's error, as step_back's d_a
            d_r     the error of the recurrent part through A_t, (N, G), as step_back's d_r
                    (dW = sum_t d_r_t h_{t-1}^T, dbh = sum_t d_r_t)
            d_prev  dL/d state_{t-1} through A_t along every path (the recurrent part's included):
                    a tuple like the state, (N, H) each
            direct  {name: array of the parameter's shape}: dL through the parameters' own
                    appearance in A_t (an Elman cell's W in diag(f'(z_t)) W), summed over the batch
        It is the second derivative of the step, so it is the cell's own; bptt.floss (the gradient
        of Lyapunov exponents) takes the cells that have it and refuses the others."""
        raise NotImplementedError(f"the {self.name} cell has no derivative of its step Jacobian (jacobian_back)")

    def path_lines(self, t) -> list:
        """Lines of text for Flow.explain on how this cell's step sends the error back (a cell with
        a memory path); none by default."""
        return []

    # a step linear in the state: h_t = a_t * h_{t-1} + b_t, solved by a scan (bptt.scan) ---------
    def drive(self, m, A):
        """For a cell whose state is one entry and whose step is linear in it, elementwise: (b, cache),
        b (T, N, W) the part of every step that does not depend on the state and cache what the
        steps keep (stacked, (T, ...)), in the scan's form (to_scan). Other cells: None."""
        return None

    def decay(self, m, cache):
        """a_t, the state's coefficient at every step (broadcasting against (T, N, W)), from the
        cache drive made: the cell's step is state_t = a_t * state_{t-1} + b_t in the scan's form."""
        raise NotImplementedError

    def to_scan(self, s):
        """A state (or an error at one) in the scan's form: itself (an LRU's: complex)."""
        return s

    def from_scan(self, h):
        """The inverse of to_scan."""
        return h

    @classmethod
    def linear(cls) -> bool:
        """Whether the cell's step is linear in its state, so that a scan may run it (drive)."""
        return cls.drive is not Cell.drive

    # gradients ----------------------------------------------------------------------------
    def recurrent_grad(self, m, dR, prev, cache):
        """dW = sum over steps and sequences of dR_t^T h_{t-1}: dR (T, N, G), prev the states
        before each step (tuples of (T, N, H)) -> (G, H)."""
        H = prev[0].shape[-1]
        return dR.reshape(-1, dR.shape[-1]).T @ prev[0].reshape(-1, H)

    def param_grads(self, m, prev, state, cache, d_a, d_r) -> dict:
        """The gradients of the cell's own parameters (role None) per step and sequence: {name:
        (..., N, *shape)} from the step's errors d_a, d_r and its states and cache (all broadcasting
        over leading axes, as step_back's). The base cell has none."""
        return {}
