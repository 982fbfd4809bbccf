"""Online learning over one stream: the weights change while the state runs on.

Conventions (as in influence.py; N parallel streams, T steps):
- a forward-mode method (RTRL, SnAp-n, UORO) updates the weights after every step t with its
  estimate of dE_t/dtheta, theta <- theta - lr * g_t, and carries its influence (M, or UORO's s~,
  theta~) on unchanged: the influence mixes the weights of past steps, as online RTRL does
  (Williams & Zipser 1989). The state is never reset.
- TBPTT(k1, k2) updates after every k1 steps: the forward pass over the update's window (its last
  k2 steps) is re-run from the state carried at the window's start with the current weights, and the
  window's last k1 outputs are backpropagated through the whole window (bptt.train.tbptt's rule;
  min-char-rnn is TBPTT(25, 25)).
- basis (P, k): the recurrent parameters move only in its span, theta = theta_0 + basis z, and the
  methods carry their influence in the k coordinates z (a tied parameter: the influence-balancing
  task's theta). head=False keeps V and c fixed.
- the loss of step t is E_t as the learner meets it, with the weights of that moment; a run that
  leaves the floating-point range, or whose loss passes `limit`, stops there (History.diverged).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import core, heads, validate
from ..train import tbptt
from . import influence
from .uoro import UORO
from ..validate import show


@dataclass
class History:
    """What an online run met: loss[t] = E_t; z[t] the tied coordinates after step t's update (with
    a basis); updates; diverged (the step where it stopped, or None)."""

    loss: list = field(default_factory=list)
    z: list = field(default_factory=list)
    updates: int = 0
    diverged: int | None = None

    def as_dict(self) -> dict:
        return {"loss": [float(v) for v in self.loss], "z": [np.asarray(v).tolist() for v in self.z],
                "updates": self.updates, "diverged": self.diverged}


def method_named(name, *, seed=None):
    """"rtrl", "uoro", "snap-1", "snap-2", ... -> the method object (influence.py, uoro.py)."""
    if name == "rtrl":
        return influence.RTRL()
    if name == "uoro":
        return UORO(seed)
    if isinstance(name, str) and name.startswith("snap-") and name[5:].isdigit():
        n = int(name[5:])
        return influence.SnAp1(initial=False) if n == 1 else influence.SnAp(n)
    raise ValueError(f"unknown online method {show(name)}: expected rtrl, uoro or snap-n (n = 1, 2, ...)")


def _setup(model, x, y, h0, reduction, basis):
    heads.check_reduction(reduction)
    validate.a_model(model).check_finite()
    xin = validate.inputs(model, x)
    tg = validate.targets(model, y, xin)
    lay = influence.layout(model)
    lay = lay if basis is None else lay.tied(basis)
    return xin, tg, heads.scale(tg, reduction), core.initial_state(model, h0, xin), lay


def _update(model, lay, g, head_grads, lr, head):
    """The model after one step theta <- theta - lr g (g in the layout's coordinates)."""
    flat = lay.flatten(model.params) - lr * lay.expand(np.asarray(g, dtype=np.float64))
    changes = lay.split(flat.astype(model.dtype))
    if head:
        changes.update({k: model.params[k] - lr * v for k, v in head_grads.items() if k in model.params})
    return model.replace(**changes)


def _bad(model, loss, limit):
    return not np.isfinite(loss) or loss > limit or not all(np.isfinite(v).all() for v in model.params.values())


def train(model, x, y, method, *, lr, h0=None, basis=None, head=True, reduction="sum", limit=1e12, seed=None):
    """Online learning with a forward-mode method: (the final model, History).

    method: "rtrl", "uoro", "snap-n" or a method object; seed: UORO's (an int or a Generator).
    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D), one long stream; y: its targets.
    """
    method = method_named(method, seed=seed) if isinstance(method, str) else method
    if not all(callable(getattr(method, a, None)) for a in ("start", "step", "read")):
        raise TypeError(f"method must be a name (rtrl, uoro, snap-n) or a method object with start, step and read, "
                        f"got {type(method).__name__} {show(method)}")
    lr, limit = validate.positive("lr", lr), validate.positive("limit", limit)
    xin, tg, scale, state, lay = _setup(model, x, y, h0, reduction, basis)
    z = np.zeros(lay.P) if basis is not None else None
    carry = method.start(model, lay, xin.N)
    hist = History()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(xin.T):
            prev = state
            state, cache, xt = influence.step_forward(model, xin, t, prev)
            carry = method.step(carry, influence.Step(model, lay, prev, state, cache, xt))
            e, dq, _ = influence.step_output(model, tg, t, state[0], scale)
            g, _ = method.read(carry, influence.state_error(dq @ model.V, model))
            g = g.mean(axis=0) if g.ndim > 1 else g  # UORO's samples: their mean
            hist.loss.append(e)
            head_grads = {"V": dq.T @ state[0], "c": dq.sum(axis=0)}
            model = _update(model, lay, g, head_grads, lr, head)
            hist.updates += 1
            if z is not None:
                z = z - lr * g
                hist.z.append(z.copy())
            if _bad(model, e, limit):
                hist.diverged = t
                break
    return model, hist


def train_tbptt(model, x, y, k1, k2=None, *, lr, h0=None, basis=None, head=True, reduction="sum", limit=1e12):
    """Online TBPTT(k1, k2) over one stream: (the final model, History), see the module's notes."""
    k2 = k1 if k2 is None else k2
    lr, limit = validate.positive("lr", lr), validate.positive("limit", limit)
    xin, tg, scale, state, lay = _setup(model, x, y, h0, reduction, basis)
    tbptt.kept_terms(1, k1=k1, k2=k2)  # checks k1, k2
    k1, k2 = int(k1), int(k2)  # Python ints: a NumPy unsigned k would wrap around in tau - k2 below
    z = np.zeros(lay.P) if basis is not None else None
    hist = History()
    start_state, ws = state, 0  # the state before step ws, the first step of the next window
    with np.errstate(over="ignore", invalid="ignore"):
        for first, tau in tbptt.blocks(xin.T, k1):
            ws = max(0, tau - k2 + 1)
            one = xin._replace(ids=None if xin.ids is None else xin.ids[:, ws:tau + 1],
                               X=None if xin.X is None else xin.X[:, ws:tau + 1], T=tau + 1 - ws)
            trace = core.run(model, one, start_state)
            mask = tg.mask[:, ws:tau + 1].copy()
            mask[:, :first - ws] = False  # only the block's own outputs are scored
            win = validate.Targets(None if tg.ids is None else np.where(mask, tg.ids[:, ws:tau + 1], -1),
                                   None if tg.values is None else tg.values[:, ws:tau + 1], mask)
            _, dQ = heads.error(model.head, trace.Q, win, "sum")
            dQ = dQ * scale
            hist.loss += list(heads.step_losses(model.head, trace.Q, win).sum(axis=1)[first - ws:] * scale)
            dA, dR, _ = core.backprop(trace, dQ @ model.V)
            g = core.weight_grads(trace, dQ, dA, dR)
            # the state before the next window's first step, max(0, tau + k1 - k2 + 1), from this run
            nws = max(0, tau + k1 - k2 + 1)
            start_state = tuple(s[nws - ws] for s in trace.cell_states)
            flat = lay.flatten(g)
            step = flat if lay.basis is None else flat @ lay.basis
            model = _update(model, lay, step, {k: g[k] for k in ("V", "c") if k in g}, lr, head)
            hist.updates += 1
            if z is not None:
                z = z - lr * step
                hist.z.append(z.copy())
            if _bad(model, max(hist.loss[-(tau + 1 - first):]), limit):
                hist.diverged = tau
                break
    return model, hist
