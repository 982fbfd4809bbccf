"""Activations f and their derivatives f', the derivative taken from the output s = f(z).

Every derivative here is a function of the output alone (1 - s**2 for tanh, s(1 - s) for
sigmoid, [s > 0] for relu, 1 for identity), so the backward pass needs only the states the
forward pass kept; so is the second derivative f'' (-2 s (1 - s**2), s (1 - s)(1 - 2 s), and 0
for relu, identity and modrelu, whose f' is constant between kinks), which the derivative of
the step Jacobian diag(f'(z)) W needs (bptt.floss). gamma is max |f'|, the constant of Pascanu, Mikolov & Bengio (2013).

modReLU (Arjovsky, Shah & Bengio 2016) has a trainable bias b per unit: for real z,
    modrelu(z, b) = sign(z) relu(|z| + b),
its derivatives  ds/dz = [s != 0]  and  ds/db = sign(s),  functions of the output too. At the kinks
they are taken as 0: where |z| + b = 0 (relu's [x > 0]) and at z = 0, where s = 0 (for b > 0
modReLU jumps there from -b to b and has no derivative). It is not in ACTIVATIONS, the plain
f(z) that every Elman model, sweep and framework takes: the Elman cell takes activation "modrelu"
with its bias as the parameter bm (bptt.cells.elman); get("modrelu").f is modReLU at b = 0, the
identity.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .validate import show


class Activation(NamedTuple):
    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df_from_output: Callable[[np.ndarray], np.ndarray]  # f'(z) written in s = f(z)
    gamma: float  # max over z of |f'(z)|
    d2f_from_output: Callable[[np.ndarray], np.ndarray] | None = None  # f''(z) written in s = f(z)


def _sigmoid(z):
    # both branches finite for every z: exp of a non-positive number only
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


ACTIVATIONS = {
    "tanh": Activation("tanh", np.tanh, lambda s: 1.0 - s * s, 1.0, lambda s: -2.0 * s * (1.0 - s * s)),
    "sigmoid": Activation("sigmoid", _sigmoid, lambda s: s * (1.0 - s), 0.25,
                          lambda s: s * (1.0 - s) * (1.0 - 2.0 * s)),
    "relu": Activation("relu", lambda z: np.maximum(z, 0), lambda s: (s > 0).astype(s.dtype), 1.0, np.zeros_like),
    "identity": Activation("identity", lambda z: z.copy(), np.ones_like, 1.0, np.zeros_like),
}


def modrelu(z, b):
    """sign(z) relu(|z| + b): z (..., H), b (H,) -> (..., H)."""
    return np.sign(z) * np.maximum(np.abs(z) + b, 0)


WITH_BIAS = {"modrelu": Activation("modrelu", lambda z: z.copy(), lambda s: (s != 0).astype(s.dtype), 1.0,
                                   np.zeros_like)}


def names() -> tuple:
    """Every activation the Elman cell takes: ACTIVATIONS' and those with a bias (modrelu)."""
    return tuple(ACTIVATIONS) + tuple(WITH_BIAS)


def get(name: str) -> Activation:
    """The activation called `name`; a ValueError that lists the known ones otherwise."""
    try:
        return ACTIVATIONS[name] if name in ACTIVATIONS else WITH_BIAS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {show(name)}: expected one of {', '.join(sorted(names()))}"
        ) from None
