"""Gradient flossing in training (Engelken, NeurIPS 2023; the regulariser and its exact gradient are
bptt.floss's): `floss = k` pushes the k leading Lyapunov exponents of the forward dynamics towards 0.

The paper's two schemes, both here (bptt.train.config has the settings):
- before training: floss_steps Adam updates (floss_lr) of the regulariser alone, on one batch of the
  task drawn for it from the run's seed (a generator of its own, [seed, 2], so the training's batches
  are the same as without flossing); the optimiser's state is dropped afterwards, training starts
  its own. The exponents on that batch before and after are the run's `floss` record (printed,
  kept in the checkpoint and in summary.json);
- during training: every floss_every-th update adds floss_weight times the regulariser's gradient,
  on the update's own batch, to the update's gradient (before clipping); its value is the
  metrics' `floss`.
The exponents and gradients are computed in float64 whatever the run's dtype.
"""
from __future__ import annotations

import numpy as np

from .. import floss
from . import optim


def _float64(h0):
    if h0 is None:
        return None
    return tuple(np.asarray(a, np.float64) for a in h0) if isinstance(h0, tuple) else np.asarray(h0, np.float64)


def batch(cfg, task, model):
    """The batch flossing before training uses: (x, h0), from a generator of its own ([seed, 2]); a
    stream's first window (h0 zeros)."""
    if task.kind == "stream":
        from .tbptt import Stream

        x, _, h0 = Stream(task.stream(cfg.batch), cfg.chunk, cfg.backprop or cfg.chunk).window(model.state_sizes,
                                                                                              np.float64)
        return x, h0
    x, _ = task.batch(np.random.default_rng([cfg.seed, 2]), cfg.batch)
    return x, None


def _summary(lam, k) -> dict:
    """The k leading exponents of a batch (N, S): their means over the sequences, the one furthest
    from 0 over the batch."""
    lead = lam[:, :k]
    return {"mean": [float(v) for v in lead.mean(axis=0)], "furthest": float(lead.flat[np.argmax(np.abs(lead))])}


def before(cfg, task, model, log=None):
    """Flossing before training: (the flossed model in the run's dtype, the record {"k", "updates",
    "before", "after"}, each of the last two {"mean": [k numbers], "furthest": number})."""
    k = cfg.floss
    x, h0 = batch(cfg, task, model)
    m = model.astype(np.float64)
    opt = optim.adam(cfg.floss_lr)
    state = opt.init(m.params)
    first = None
    for _ in range(cfg.floss_steps):
        _, g, lam = floss.flossing(m, x, k, h0)
        first = lam if first is None else first
        params, state = opt.update(g, state, m.params)
        m = m.replace(**params)
    out = m.astype(model.dtype)
    last = floss.exponents(out.astype(np.float64), x, h0)
    first = last if first is None else first
    rec = {"k": k, "updates": cfg.floss_steps, "sequences": int(last.shape[0]), "before": _summary(first, k),
           "after": _summary(last, k)}
    if log is not None:
        log(describe(rec))
    return out, rec


def describe(rec) -> str:
    """The record of flossing before training in two lines."""
    def line(part):
        return (" ".join(f"{v:.4f}" for v in part["mean"]) + f" (the furthest from 0 over the batch: "
                f"{part['furthest']:.4f})")
    return (f"flossing before training: {rec['updates']} updates of the {rec['k']} leading Lyapunov exponents "
            f"(mean over {rec['sequences']} sequences)\n  before: {line(rec['before'])}\n  after:  {line(rec['after'])}")


def record(rec, cfg, where):
    """A checkpoint's record of flossing before training, checked: None without floss, else a record
    as `before` makes it (k the run's floss); a ValueError naming the file otherwise."""
    if not cfg.floss:
        if rec is not None:
            raise ValueError(f"{where} holds a record of flossing, but the run has no floss")
        return None

    def part(p):
        return (isinstance(p, dict) and set(p) == {"mean", "furthest"} and isinstance(p["mean"], list)
                and len(p["mean"]) == cfg.floss and all(_number(v) for v in p["mean"]) and _number(p["furthest"]))

    ok = (isinstance(rec, dict) and set(rec) == {"k", "updates", "sequences", "before", "after"}
          and rec["k"] == cfg.floss and rec["updates"] == cfg.floss_steps and isinstance(rec["sequences"], int)
          and not isinstance(rec["sequences"], bool) and part(rec["before"]) and part(rec["after"]))
    if not ok:
        raise ValueError(f"{where}: a run with floss {cfg.floss} needs its record of flossing before training "
                         f"(k, updates, sequences, before, after, as bptt.train.flossing writes it)")
    return rec


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def during(cfg, model, x, h0):
    """The regulariser and its gradient on an update's batch: (value, {name: array in the model's
    dtype})."""
    value, g, _ = floss.flossing(model.astype(np.float64), x, cfg.floss, _float64(h0))
    return value, {k: v.astype(model.dtype) for k, v in g.items()}


def due(cfg, step) -> bool:
    """Whether update number step (1, 2, ...) adds the regulariser's gradient."""
    return bool(cfg.floss and cfg.floss_every and step % cfg.floss_every == 0)
