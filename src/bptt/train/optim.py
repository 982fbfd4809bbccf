"""Optimisers as small (init, update) pairs over parameter dicts, in the style of JAX's optimizers.py.

Parameters and gradients are plain dicts name -> array ({"U": ..., "W": ..., "V": ..., "b": ..., "c": ...},
as RNN.params and Grads.params give them). An optimiser's state is a dict of dicts of arrays
(plus a step counter), so a checkpoint can store it without pickles:

    opt = adam(1e-3)
    state = opt.init(params)
    params, state = opt.update(grads, state, params)

Every update returns new arrays; nothing is changed in place.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .. import fast
from ..validate import show

Params = dict  # name -> np.ndarray
State = dict   # slot name -> {param name -> np.ndarray}; "t" -> {"t": array(step)}


class Optimizer(NamedTuple):
    name: str
    hyper: dict
    init: Callable[[Params], State]
    update: Callable[[Params, State, Params], tuple]


def _zeros(params):
    return {k: np.zeros_like(v) for k, v in params.items()}


def _check(grads, params):
    if set(grads) != set(params):
        raise ValueError(f"gradients and parameters must have the same names: got gradients for "
                         f"{sorted(grads)} and parameters {sorted(params)}")


def _positive(name, v):
    if not (isinstance(v, (int, float, np.floating)) and np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {show(v)}")
    return float(v)


def _unit(name, v):
    if not (isinstance(v, (int, float, np.floating)) and 0 <= v < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {show(v)}")
    return float(v)


def sgd(lr) -> Optimizer:
    """theta <- theta - lr * g (the WildML tutorial's step)."""
    lr = _positive("lr", lr)

    def init(params):
        return {}

    def update(grads, state, params):
        _check(grads, params)
        return {k: params[k] - lr * grads[k] for k in params}, state

    return Optimizer("sgd", {"lr": lr}, init, update)


def momentum(lr, mass=0.9, nesterov=False) -> Optimizer:
    """Heavy-ball momentum: v <- mass v + g; theta <- theta - lr v.
    Nesterov (Sutskever et al. 2013, as PyTorch writes it): theta <- theta - lr (g + mass v)."""
    lr, mass = _positive("lr", lr), _unit("mass", mass)

    def init(params):
        return {"v": _zeros(params)}

    def update(grads, state, params):
        _check(grads, params)
        v = {k: mass * state["v"][k] + grads[k] for k in params}
        step = {k: grads[k] + mass * v[k] for k in params} if nesterov else v
        return {k: params[k] - lr * step[k] for k in params}, {"v": v}

    return Optimizer("nesterov" if nesterov else "momentum", {"lr": lr, "mass": mass}, init, update)


def adagrad(lr, eps=1e-8) -> Optimizer:
    """min-char-rnn's Adagrad: mem <- mem + g^2; theta <- theta - lr g / sqrt(mem + eps)."""
    lr, eps = _positive("lr", lr), _positive("eps", eps)

    def init(params):
        return {"mem": _zeros(params)}

    def update(grads, state, params):
        _check(grads, params)
        mems = state["mem"]
        done = fast.adagrad_update(params, grads, mems, lr, eps)  # one compiled pass, the same bits
        new = {k: done[k] if k in done else _adagrad_step(params[k], grads[k], mems[k], lr, eps) for k in params}
        return {k: p for k, (p, _) in new.items()}, {"mem": {k: m for k, (_, m) in new.items()}}

    return Optimizer("adagrad", {"lr": lr, "eps": eps}, init, update)


def _spare(t, other):
    """t, a temporary of an update, as the out= of an element-wise operation on t and other where
    a new result would be laid out as t is (other an array of t's shape, strides and dtype); else
    None (a new array). Same numbers, one allocation fewer; the arrays an update returns keep the
    layout the plain expression gives them."""
    if type(t) is np.ndarray and type(other) is np.ndarray and t.shape == other.shape \
            and t.strides == other.strides and t.dtype == other.dtype:
        return t
    return None


def _adagrad_step(p, g, mem, lr, eps):
    """(p - lr g / sqrt(mem + g^2 + eps), mem + g^2), new arrays: the plain expressions, with their
    temporaries written over where _spare allows."""
    square = g * g
    mem = np.add(mem, square, out=_spare(square, mem))
    den = mem + eps
    den = np.sqrt(den, out=_spare(den, den))
    step = lr * g
    step = np.divide(step, den, out=_spare(step, den))
    return np.subtract(p, step, out=_spare(step, p)), mem


def rmsprop(lr, decay=0.9, eps=1e-8) -> Optimizer:
    """Tieleman & Hinton: ms <- decay ms + (1 - decay) g^2; theta <- theta - lr g / (sqrt(ms) + eps)."""
    lr, decay, eps = _positive("lr", lr), _unit("decay", decay), _positive("eps", eps)

    def init(params):
        return {"ms": _zeros(params)}

    def update(grads, state, params):
        _check(grads, params)
        ms = {k: decay * state["ms"][k] + (1 - decay) * grads[k] * grads[k] for k in params}
        return {k: params[k] - lr * grads[k] / (np.sqrt(ms[k]) + eps) for k in params}, {"ms": ms}

    return Optimizer("rmsprop", {"lr": lr, "decay": decay, "eps": eps}, init, update)


def adam(lr, b1=0.9, b2=0.999, eps=1e-8) -> Optimizer:
    """Kingma & Ba (2015), algorithm 1, with bias correction."""
    lr, b1, b2, eps = _positive("lr", lr), _unit("b1", b1), _unit("b2", b2), _positive("eps", eps)

    def init(params):
        return {"m": _zeros(params), "v": _zeros(params), "t": {"t": np.array(0, dtype=np.int64)}}

    def update(grads, state, params):
        _check(grads, params)
        t = int(state["t"]["t"]) + 1
        m = {k: b1 * state["m"][k] + (1 - b1) * grads[k] for k in params}
        v = {k: b2 * state["v"][k] + (1 - b2) * grads[k] * grads[k] for k in params}
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        new = {k: params[k] - lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + eps) for k in params}
        return new, {"m": m, "v": v, "t": {"t": np.array(t, dtype=np.int64)}}

    return Optimizer("adam", {"lr": lr, "b1": b1, "b2": b2, "eps": eps}, init, update)


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "nesterov": lambda lr, **kw: momentum(lr, nesterov=True, **kw),
              "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}


def get(name, lr, **hyper) -> Optimizer:
    """The optimiser called `name` (sgd, momentum, nesterov, adagrad, rmsprop, adam) at learning rate lr."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {show(name)}: expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](lr, **hyper)


def flatten_state(state: State) -> dict[str, np.ndarray]:
    """{"m": {"W": a}} -> {"m/W": a}, for an .npz file."""
    if not isinstance(state, dict) or not all(isinstance(d, dict) for d in state.values()):
        raise TypeError(f"an optimiser state must be a dict of dicts (slot -> name -> array), got {show(state)}")
    return {f"{slot}/{k}": np.asarray(v) for slot, d in state.items() for k, v in d.items()}


def unflatten_state(flat: dict[str, np.ndarray]) -> State:
    state: State = {}
    for key, v in flat.items():
        slot, k = key.split("/", 1)
        state.setdefault(slot, {})[k] = np.array(v)
    return state
