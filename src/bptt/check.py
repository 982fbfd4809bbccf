"""Gradient checking by central finite differences, in float64, with a floored relative error.

For every parameter (and h0) the analytic gradient of bptt.gradients is compared with the
five-point central difference

    dE/dθ ≈ (-E(θ + 2h) + 8 E(θ + h) - 8 E(θ - h) + E(θ - 2h)) / 12h,   h = step·max(1, |θ|)

(differences taken first, so a loss the entry does not move gives exactly 0, which compares with
an analytic 0 as error 0), whose truncation error is O(h^4): h = 1e-4 keeps it below the
rounding error, about |E|·1e-12, even for the steep losses of exploding linear RNNs. The relative error of an entry is |a - n| / max(|a|, |n|, floor):
the floor (a small fraction of the largest gradient entry of that parameter) means two tiny
numbers can never look equal by 0/0 the way NaN passed in the notebook's source. An entry passes
when its relative error is at most tol, or when its absolute error is below the rounding noise
of the difference quotient itself, 100·max(1, |E|)·eps/h. With relu, a perturbation that moves a
pre-activation across 0 (a kink) makes the quotient meaningless (with modReLU, one that moves z
across 0 or |z| + bm across 0): such an entry is retried with a
ten times smaller step, twice, and is otherwise counted as skipped, never as passed. Small parameters
are checked on every entry; large ones on a stratified sample: the largest analytic entries
(so the non-zero ones are always in) plus a uniform random draw of the rest.

The difference quotient moves one entry of one parameter at a time, in place, and reads the loss
of the moved model. So it works on private copies: every parameter (and h0) is copied once into a
writeable, C-ordered float64 array, whatever the caller's layout (Fortran order, a transposed or
strided view, a read-only array: the models from_keras returns are Fortran-ordered), and entry i
is the i-th entry in C order, in the analytic gradient and in the perturbed array alike. A
perturbation that lands in a temporary copy instead (reshape(-1) of a Fortran array is one) would
leave the loss unchanged and fail every correct gradient with a relative error of 1.

Impossible settings are refused, never run: tol must lie in (0, 1) (a gradient of zeros has
relative error 1 against any non-zero one, so tol >= 1 would pass it), step > 0, floor in [0, 1],
max_entries an integer >= 1, all finite.

This is the same checker the tests use; call it on your own model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import backend as backends
from . import core, heads, validate
from . import stack as stacks
from .progress import Stages
from .validate import show


@dataclass(frozen=True)
class ParamCheck:
    name: str
    checked: int      # entries compared
    total: int        # entries in the parameter
    max_abs: float    # max |analytic - numeric|
    max_rel: float    # max floored relative error
    step: float       # h used (relative to max(1, |θ|))
    passed: bool
    kinks: int = 0    # entries skipped because every step crossed a relu kink


@dataclass(frozen=True)
class CheckReport:
    loss: float
    tol: float
    rows: tuple
    backend: str = "reference"  # the backend whose gradients were checked ("fast" or "reference")

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def __getitem__(self, name) -> ParamCheck:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self):
        return {"loss": self.loss, "tol": self.tol, "passed": self.passed, "backend": self.backend,
                "params": [asdict(r) for r in self.rows]}

    def __str__(self):
        w = max([6] + [len(r.name) for r in self.rows])  # the names' column: the longest name (gamma_log)
        head = f"{'param':<{w}} {'checked':>11} {'max abs err':>12} {'max rel err':>12} {'step':>7}  result"
        lines = [f"the {self.backend} backend's gradients against finite differences (five-point, float64), "
                 f"loss = {self.loss:.10g}, tol = {self.tol:g}", head]
        for r in self.rows:
            lines.append(f"{r.name:<{w}} {f'{r.checked}/{r.total}':>11} {r.max_abs:>12.2e} {r.max_rel:>12.2e} "
                         f"{r.step:>7.0e}  {'pass' if r.passed else 'FAIL'}"
                         + (f"  ({r.kinks} at a relu kink, skipped)" if r.kinks else "")
                         + (f"  (a sample of {r.checked + r.kinks} of {r.total} entries: the largest and a random "
                            "draw of the rest)" if r.checked + r.kinks < r.total else ""))
        return "\n".join(lines)

    def _repr_html_(self):
        """The report in a notebook: the same table as str(), as HTML."""
        from .display import check_html
        return check_html(self)


def rel_error(a, b, floor):
    """|a - b| / max(|a|, |b|, floor), element-wise; never 0/0 (two zeros, with floor = 0, give 0).
    NaN or Inf in a or b gives NaN or Inf, which never pass a tolerance."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, inf / inf: NaN, reported as such
        num = np.abs(a - b)
        return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)[()]


def _sample(g, max_entries, rng):
    flat = np.abs(g).ravel()
    if flat.size <= max_entries:
        return np.arange(flat.size)
    top = np.argsort(-flat, kind="stable")[: max_entries // 2]
    rest = np.setdiff1d(np.arange(flat.size), top)
    return np.concatenate([top, rng.choice(rest, max_entries - top.size, replace=False)])


def numeric_gradient(fun, theta, index, step, retries=2):
    """Five-point central differences of fun at theta (float64 array) along the flat entries index.

    theta is perturbed in place, one entry at a time, and restored: fun must read it (theta is the
    parameter's own array, not a copy of it). The flat index i is the i-th entry in C order, as in
    a.ravel() of the analytic gradient, whatever theta's memory layout; theta must be writeable.
    fun() -> (loss, pattern): pattern is None, or the relu on/off pattern, which must not change
    across the four evaluations. Returns (values, kink mask); kink entries hold NaN.
    """
    if not isinstance(theta, np.ndarray) or theta.dtype != np.float64:
        raise ValueError(f"theta must be a float64 array, got {getattr(theta, 'dtype', type(theta).__name__)}")
    if not theta.flags.writeable:
        raise ValueError("theta must be writeable: the difference quotient perturbs it in place")
    step = _positive("step", step)
    out = np.full(len(index), np.nan)
    kink = np.zeros(len(index), dtype=bool)
    base = fun()[1]
    for n, i in enumerate(index):
        at = np.unravel_index(int(i), theta.shape)  # C order, on theta itself: no reshaped copy
        old = float(theta[at])
        for attempt in range(retries + 1):
            h = step * 10.0 ** -attempt * max(1.0, abs(old))
            vals, same = [], True
            for d in (2, 1, -1, -2):
                theta[at] = old + d * h
                v, pattern = fun()
                vals.append(v)
                same &= base is None or np.array_equal(pattern, base)
            theta[at] = old
            if same:
                # differences first: a loss that does not move gives exactly 0, not rounding noise
                out[n] = ((vals[3] - vals[0]) + 8 * (vals[1] - vals[2])) / (12 * h)
                break
        else:
            kink[n] = True
    return out, kink


def _number(name, value, expected):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {expected}, got {show(value)}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be {expected}, got {show(value)}")
    return v


def _positive(name, value):
    v = _number(name, value, "a finite number > 0")
    if v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {show(value)}")
    return v


def check_arguments(*, step, tol, floor, max_entries):
    """The settings of check as (step, tol, floor, max_entries), or a ValueError naming the first
    impossible one, what it must be and what came."""
    step = _positive("step", step)
    tol = _number("tol", tol, "a finite number in (0, 1)")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be a finite number in (0, 1), got {show(tol)} (a relative error is at most 2, "
                         "and a gradient of zeros has relative error 1: tol >= 1 could not fail it)")
    floor = _number("floor", floor, "a finite number in [0, 1]")
    if not 0 <= floor <= 1:
        raise ValueError(f"floor must be a finite number in [0, 1] (a fraction of the largest gradient entry), "
                         f"got {show(floor)}")
    if isinstance(max_entries, (bool, np.bool_)) or not isinstance(max_entries, (int, np.integer)) \
            or max_entries < 1:
        raise ValueError(f"max_entries must be an integer >= 1, got {show(max_entries)}")
    return step, tol, floor, int(max_entries)


def _sides(m, Z):
    """The side of every kink each pre-activation z (T, N, H) is on: relu's z > 0; modReLU's z > 0
    and |z| + bm > 0 (bptt.activations' notes)."""
    if m.activation == "relu":
        return Z > 0
    return np.stack([Z > 0, np.abs(Z) + (0.0 if m.bm is None else m.bm) > 0])


def _own(a) -> np.ndarray:
    """A private, writeable, C-ordered float64 copy of a (whatever a's layout or flags)."""
    return np.array(a, dtype=np.float64, order="C", copy=True)


def check(model, x, y, *, grads=None, h0=None, reduction="sum", step=1e-4, tol=1e-6, floor=1e-6,
          max_entries=60, seed=0, backend=None) -> CheckReport:
    """Compare a gradient with finite differences of the loss, in float64.

    grads: the gradient to check (anything with the model's parameters by name and .h0, and .c0 for
    an LSTM); by default the full-BPTT gradient of bptt.gradients, computed by the backend that
    bptt.gradients takes for this model (backend=None: the fast backend where it has the cell, as
    bptt.gradients does) or by the one named ("fast" or "reference"); the report says which.
    A truncated gradient is not the gradient of any loss, so it is checked against the frameworks
    instead (bptt.frameworks.compare). The loss the differences are taken of is always the
    reference engine's forward pass.
    floor: relative to the largest |entry| of each gradient (so 1e-6 means entries smaller than a
    millionth of the largest one are compared in absolute terms), in [0, 1].
    step: h relative to max(1, |θ|), > 0; tol: the largest relative error that passes, in (0, 1);
    max_entries: entries compared per parameter, an integer >= 1. Anything else is a ValueError.
    The model's arrays may have any layout (Fortran order, views, read-only): they are copied.
    Returns a CheckReport: per-parameter max abs error, max rel error, pass/fail, the step used.
    """
    step, tol, floor, max_entries = check_arguments(step=step, tol=tol, floor=floor, max_entries=max_entries)
    heads.check_reduction(reduction)
    m = validate.a_network(model).astype(np.float64)
    m.check_finite()
    rng = validate.rng(seed)
    xin = validate.inputs(m, x)
    tg = validate.targets(m, y, xin)
    layered = isinstance(m, stacks.Stack)
    if layered:  # one (N, H) array per layer and direction for each state entry, stacked when they can be
        per = stacks.initial_states(m, h0, xin)
        sizes = [tuple(p.shape for p in s) for s in per]
        state0 = tuple(np.stack([s[i] for s in per]) for i in range(len(per[0]))) if len(set(sizes)) == 1 else ()
        state0 = tuple(s if xin.batched else s[:, 0] for s in state0)
    else:
        state0 = core.initial_state(m, h0, xin)  # (N, H) arrays: h0, and c0 for a cell with a memory
        state0 = tuple(s if xin.batched else s[0] for s in state0)
    if layered and not state0 and h0 is not None:
        raise ValueError("check takes h0 for a stack whose layers' states have one shape; this one's differ")
    engine = backends.engine(m, backend)
    loss, g = engine.gradients(m, x, y, h0=(state0 if len(state0) > 1 else state0[0]) if state0 else None,
                               reduction=reduction)
    g = g if grads is None else grads
    which = "given" if grads is not None else backends.name(engine)
    # the arrays the difference quotient perturbs in place, and the only ones fun() reads
    params = {k: _own(v) for k, v in m.params.items()}
    starts = ("h0", "c0")[:len(state0)]
    params.update({k: _own(s) for k, s in zip(starts, state0)})
    layers = [e[2] for e in m.entries] if layered else [m]
    kinked = [getattr(layer, "activation", None) in ("relu", "modrelu") for layer in layers]

    def fun():
        mm = m.replace(**{k: v for k, v in params.items() if k not in starts})
        if layered:
            given = [tuple(params[k][i].reshape(xin.N, -1) for k in starts) for i in range(len(layers))] \
                if starts else stacks.initial_states(mm, None, xin)
            trace = stacks.run(mm, xin, given)
            traces = [tr for pair in trace.layers for tr in pair]
        else:
            trace = core.run(mm, xin, tuple(params[k].reshape(xin.N, H) for k, H in zip(starts, m.state_sizes)))
            traces = [trace]
        sides = [_sides(tr.model, tr.Z).ravel() for tr, k in zip(traces, kinked) if k]
        return heads.error(mm.head, trace.Q, tg, reduction)[0], np.concatenate(sides) if sides else None

    noise = 100 * max(1.0, abs(loss)) * np.finfo(np.float64).eps / step
    rows = []
    with Stages("bptt check", delay=1.0) as stage:  # said on stderr once the differences last a second
        stage("finite differences")
        for done, (name, theta) in enumerate(params.items()):
            stage.set(f"finite differences of {name} ({done + 1}/{len(params)} parameters)")
            rows.append(_one(name, theta, g, fun, step, max_entries, rng, noise, floor, tol))
    return CheckReport(float(loss), tol, tuple(rows), which)


def _one(name, theta, g, fun, step, max_entries, rng, noise, floor, tol) -> ParamCheck:
    """The check of one parameter (or initial state) theta against the gradient g's entry name."""
    a = getattr(g, name, None)
    if a is None:
        raise ValueError(f"the gradient to check has no {name}, but the model has that parameter")
    a = np.asarray(a, dtype=np.float64)
    if a.shape != theta.shape:
        raise ValueError(f"the gradient of {name} has shape {a.shape}, expected {theta.shape}")
    idx = _sample(a, max_entries, rng)
    n, kink = numeric_gradient(fun, theta, idx, step)
    av = a.ravel()[idx][~kink]
    n = n[~kink]
    if av.size == 0:
        return ParamCheck(name, 0, a.size, np.nan, np.nan, step, False, int(kink.sum()))
    with np.errstate(invalid="ignore", over="ignore"):
        scale = max(np.max(np.abs(a)), np.max(np.abs(n)), np.finfo(np.float64).tiny)
        abs_err = np.abs(av - n)
        err = rel_error(av, n, floor * scale)
    ok = bool(np.all(np.isfinite(n)) and np.all(np.isfinite(av)) and np.all((err <= tol) | (abs_err <= noise)))
    return ParamCheck(name, len(av), a.size, float(np.max(abs_err)), float(np.max(err)), step, ok, int(kink.sum()))
