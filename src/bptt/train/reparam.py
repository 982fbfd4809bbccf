"""Training through a parametrisation of the recurrent matrix (cfg.param; bptt.param).

The optimiser updates A (H, H), float64 whatever the run's dtype, in place of W: the trainable
parameters are the model's with W replaced by A. One update:

    g           dE/dtheta from the engine (W's included), after Omega's term
    g_A         param.vjp(A, g["W"]): the gradient of A, skew-symmetric; g without W, with A
    clipping    on g_A's table (grad_norm is its global norm)
    A, theta    the optimiser's update; A's by the same optimiser at param_lr
    W           param.forward(A), cast to the run's dtype: orthogonal to rounding after every update

A checkpoint keeps A as extra/A and the optimiser's state of A under the slots "param_<slot>"
(A's moments), so that a resumed run goes on bit for bit.
"""
from __future__ import annotations

import numpy as np

from .. import param as param_mod
from . import optim

SLOT = "param_"  # the prefix of A's slots in the optimiser's state


def initial_A(cfg, H) -> np.ndarray:
    """A's start: Henaff's initialisation (drawn from the seed's own stream [seed, 2]), or 0 for
    init "identity" (W = I): (H, H) float64."""
    if cfg.init == "identity":
        return np.zeros((H, H))
    return param_mod.henaff(H, seed=np.random.default_rng([cfg.seed, 2]))


def start(cfg, model, A):
    """The model with W = param(A), in its dtype."""
    return model.replace(W=param_mod.get(cfg.param).forward(A).astype(model.dtype))


def trainable(params, A) -> dict:
    """The optimiser's table: params without W, with A."""
    return {**{k: v for k, v in params.items() if k != "W"}, "A": A}


def gradients(cfg, A, g) -> dict:
    """g (W's gradient included) -> the trainable table's gradients: W's sent back to A by the vjp."""
    gA = param_mod.get(cfg.param).vjp(A, np.asarray(g["W"], dtype=np.float64))
    return trainable(g, gA)


def finish(cfg, model, new):
    """(A, model) from the optimiser's new table: W = param(A) again."""
    A = np.asarray(new["A"], dtype=np.float64)
    W = param_mod.get(cfg.param).forward(A)
    rest = {k: v.astype(model.dtype, copy=False) for k, v in new.items() if k != "A"}
    return A, model.replace(W=W.astype(model.dtype), **rest)


def optimizer(cfg) -> optim.Optimizer:
    """cfg.optimizer at lr for the model's parameters and at param_lr (default lr) for A."""
    main = optim.get(cfg.optimizer, cfg.lr)
    own = optim.get(cfg.optimizer, cfg.param_lr if cfg.param_lr is not None else cfg.lr)

    def init(params):
        rest = {k: v for k, v in params.items() if k != "A"}
        return {**main.init(rest), **{SLOT + s: d for s, d in own.init({"A": params["A"]}).items()}}

    def update(grads, state, params):
        ours = {s: d for s, d in state.items() if not s.startswith(SLOT)}
        theirs = {s[len(SLOT):]: d for s, d in state.items() if s.startswith(SLOT)}
        new, ours = main.update({k: v for k, v in grads.items() if k != "A"}, ours,
                                {k: v for k, v in params.items() if k != "A"})
        newA, theirs = own.update({"A": grads["A"]}, theirs, {"A": params["A"]})
        return {**new, **newA}, {**ours, **{SLOT + s: d for s, d in theirs.items()}}

    return optim.Optimizer(main.name, {**main.hyper, "param_lr": own.hyper["lr"]}, init, update)


def orthogonality(W) -> float:
    """max |W^T W - I| of the model's W, for the metrics."""
    W = np.asarray(W, dtype=np.float64)
    return float(np.max(np.abs(W.T @ W - np.eye(len(W)))))
