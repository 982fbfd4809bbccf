"""Activations f and their derivatives f', the derivative taken from the output s = f(z).

Every derivative here is a function of the output alone (1 - s**2 for tanh, s(1 - s) for
sigmoid, [s > 0] for relu, 1 for identity), so the backward pass needs only the states the
forward pass kept. gamma is max |f'|, the constant of Pascanu, Mikolov & Bengio (2013).
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


def _sigmoid(z):
    # both branches finite for every z: exp of a non-positive number only
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


ACTIVATIONS = {
    "tanh": Activation("tanh", np.tanh, lambda s: 1.0 - s * s, 1.0),
    "sigmoid": Activation("sigmoid", _sigmoid, lambda s: s * (1.0 - s), 0.25),
    "relu": Activation("relu", lambda z: np.maximum(z, 0), lambda s: (s > 0).astype(s.dtype), 1.0),
    "identity": Activation("identity", lambda z: z.copy(), np.ones_like, 1.0),
}


def get(name: str) -> Activation:
    """The activation called `name`; a ValueError that lists the known ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {show(name)}: expected one of {', '.join(sorted(ACTIVATIONS))}"
        ) from None
