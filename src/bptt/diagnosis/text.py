"""A diagnosis in words: the summary (str(d)) and the advice, every number from the diagnosis."""
from __future__ import annotations

import math

import numpy as np


def _num(v, digits=3) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    s = f"{v:.{digits}g}"
    return "0" if s in ("-0", "0") else s


def _halving(r):
    if r is None or r <= 0 or r == 1 or not math.isfinite(r):
        return None
    return math.log(2) / abs(math.log(r))


def advice(d) -> list:
    """One line per finding, each tied to the number it comes from."""
    lines = []
    if d.nonfinite:
        lines.append(f"Non-finite: {d.nonfinite}. Lower the learning rate or clip the gradient norm; the page's "
                     "per-step terms show where the error grew before it overflowed.")
    total = math.sqrt(sum(float(np.sum(np.asarray(g, dtype=np.float64) ** 2)) for g in d.grads.values()))
    for e in d.entries:
        r, name = e["decay"], e["name"]
        half = _halving(r)
        if r is not None and r < 1 and half is not None and half < d.T / 2:
            lines.append(f"{name}: the error arriving at step {e['source']} shrinks by {_num(r)} per step (halves every "
                         f"{_num(half, 2)} steps): what lies more than ~{int(round(10 * half))} steps back gets "
                         f"{_num(2.0 ** -10)} of it or less.")
        elif r is not None and r > 1 and half is not None and half < d.T:
            lines.append(f"{name}: the error grows by {_num(r)} per step going back (doubles every {_num(half, 2)} "
                         f"steps): clip the gradient norm, e.g. at {_num(total)}, this batch's norm of the recurrent "
                         "module's gradient (torch.nn.utils.clip_grad_norm_ / Keras clipnorm).")
        if e["memory"] is not None:
            per_step, prod = e["memory"]
            f = float(np.mean(per_step))
            gate = e["memory_gate"]
            if 0 < f < 1:
                target = 0.5 ** (1.0 / d.T)  # the gate at which the memory path keeps half over T steps
                bias = math.log(target / (1 - target))
                lines.append(f"{name}: the {gate} gate averages {_num(f)}, so the memory path keeps {_num(prod[-1])} "
                             f"of an error after {d.T} steps; to keep half over {d.T} steps the gate needs "
                             f"{_num(target, 4)}, i.e. a pre-activation of {_num(bias)} (raise the {gate} gate's bias "
                             f"by about {_num(bias - math.log(f / (1 - f)))}).")
        for K, share in sorted(e["shares"].items()):
            if 0 < K < d.T and share > 0:
                over = "" if d.lags_over >= d.N else f" on its first {d.lags_over} sequences"
                lines.append(f"{name}: truncating BPTT at K = {K} steps loses {_num(100 * share)}% of this layer's "
                             f"weight gradient{over} (norm of the difference over the norm).")
                break
        sat = [f"{g} {_num(100 * (lo + hi))}%" for g, (lo, hi) in e["saturation"].items() if lo + hi > 0.5]
        if sat:
            lines.append(f"{name}: saturated gates (below 0.05 or above 0.95): {', '.join(sat)}; their derivative "
                         "is near 0, so the error through them vanishes.")
    if not lines:
        lines.append("No finding: the error reaches back through every layer without vanishing or exploding "
                     "on this batch.")
    return lines


def summary(d) -> str:
    """The diagnosis as text: the run, a table per layer and direction, the advice."""
    out = [f"bptt diagnosis of a {d.framework} {d.kind.upper()} ({len(d.entries)} layer-direction(s)), "
           f"T = {d.T}, batch {d.N}, {d.dtype}",
           f"loss {_num(d.loss, 6)}; " + (f"bptt's layer outputs agree with {d.framework}'s to {_num(d.agreement, 2)}"
                                          if d.agreement is not None else
                                          "the network rebuilt from the file, its loss and errors computed by bptt")]
    head = f"{'':18} {'from t':>6} {'decay/step':>10} {'halves in':>10} {'Lyapunov':>9} {'radius':>8} {'>10':>7} {'>100':>7}"
    out.append(head)
    for e in d.entries:
        radius = max(e["radius"].values()) if e["radius"] else None
        half = _halving(e["decay"])
        shares = e["shares"]
        out.append(f"{e['name']:18} {e['source']:>6} {_num(e['decay']):>10} {_num(half, 3):>10} {_num(e['lyapunov']):>9} "
                   f"{_num(radius):>8} {_pct(shares.get(10)):>7} {_pct(shares.get(100)):>7}")
    if 0 < d.lags_over < d.N:
        out.append(f"(>10, >100: the shares of the first {d.lags_over} sequences' gradient from lags beyond 10, 100)")
    out.append("advice:")
    out.extend(f"  - {line}" for line in advice(d))
    return "\n".join(out)


def _pct(v):
    return "n/a" if v is None else f"{_num(100 * v, 2)}%"
