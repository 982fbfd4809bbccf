"""Figures of bptt.approx (matplotlib, imported inside the functions; no pyplot, no global state).

bias_curves: the window's cosine to the full gradient and its relative error against K, one line
per model (e.g. per spectral radius), from approx.window_curve's Curves.
uoro_error: the error of the mean of n UORO estimates against n, beside what their variance predicts.
sweep_bias: a sweep of kind "approx": each method's bias against the spectral radius, per cell.
"""
from __future__ import annotations

import numpy as np

from ..plots import finish, require_matplotlib
from ..validate import show


def bias_curves(curves: dict, name="W", title=None):
    """A Figure of two panels against the window K: the cosine of g_K to the full gradient g, and the
    relative error ||g_K - g|| / ||g|| (log scale; a line ends where the error is exactly 0).
    curves: {label: Curve}; name: the parameter ("W" by default, "all", "U", ...)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 3.8), layout="constrained")
    cos_ax, rel_ax = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(len(curves))]
    for (lab, c), col in zip(curves.items(), colors):
        rel = c.bias.rel[name]
        cos_ax.plot(c.K, c.bias.cos[name], color=col, label=lab)
        rel_ax.plot(c.K, np.where(rel > 0, rel, np.nan), color=col, label=lab)
    cos_ax.set(xlabel="window K (output t reaches steps t-K..t)", ylabel="cosine(g_K, g)",
               title=f"direction ({name})")
    rel_ax.set(xlabel="window K", ylabel="||g_K - g|| / ||g||", yscale="log", title=f"relative bias ({name})")
    for ax in (cos_ax, rel_ax):
        ax.grid(alpha=0.3)
    rel_ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return finish(fig)


def uoro_error(model, x, y, *, ns=(1, 3, 10, 30, 100, 300, 1000), seed=0, name="all"):
    """(Figure, data): the relative error of the mean of n UORO estimates against n (log-log), beside
    sqrt(v / n) ||g||^-1, the error the estimates' own sample variance predicts for an unbiased mean
    (v = the summed variance over the entries). The exact gradient g is BPTT's (core.gradients).
    name: the parameter ("all" by default, "W", "U", ...). data: {"n", "rel", "predicted"} lists."""
    require_matplotlib()
    from matplotlib.figure import Figure
    from .. import core
    from .uoro import uoro_samples

    ns = sorted({int(n) for n in ns})
    if not ns or ns[0] < 1:
        raise ValueError(f"ns must be positive integers, got {show(ns)}")
    _, exact = core.gradients(model, x, y)
    _, many = uoro_samples(model, x, y, ns[-1], seed=seed)
    g, est = _flat(exact, name), _flat(many, name, lead=1)  # (P,), (n, P)
    norm = np.linalg.norm(g)
    means = np.cumsum(est, axis=0) / np.arange(1, len(est) + 1)[:, None]
    rel = [float(np.linalg.norm(means[n - 1] - g) / norm) for n in ns]
    var = float(est.var(axis=0, ddof=1).sum()) if len(est) > 1 else float("nan")
    predicted = [float(np.sqrt(var / n) / norm) for n in ns]
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.loglog(ns, rel, "o-", color="C0", label="mean of n UORO estimates")
    ax.loglog(ns, predicted, "--", color="0.3", label=r"$\sqrt{v/n}\,/\,\|g\|$ (sample variance)")
    ax.set(xlabel="n, estimates averaged", ylabel=r"$\|\bar g_n - g\| / \|g\|$",
           title=f"UORO: error of the mean against n ({name})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return finish(fig), {"n": ns, "rel": rel, "predicted": predicted}


def _flat(grads, name, lead=0):
    """One parameter's gradient (or the initial state's, "h0", "c0"), or "all" of the parameters
    together, flattened after `lead` leading axes: (..., P), float64."""
    vecs = {k: np.asarray(v, dtype=np.float64) for k, v in grads.params.items()}
    vecs.update({k: np.asarray(v, dtype=np.float64) for k, v in zip(("h0", "c0"), grads.state0)})
    flat = {k: v.reshape(v.shape[:lead] + (-1,)) for k, v in vecs.items()}
    if name == "all":
        return np.concatenate([flat[k] for k in grads.params], axis=-1)
    if name not in flat:
        raise ValueError(f"name must be 'all' or one of {', '.join(flat)}, got {show(name)}")
    return flat[name]


SWEEP_METHODS = (("window", "window K"), ("tbptt", "TBPTT(k1, k2)"), ("uoro", "UORO (mean of n)"),
                 ("snap1", "SnAp-1"), ("snap2", "SnAp-2"), ("rtrl", "RTRL"))


def sweep_bias(df, metric="rel"):
    """A Figure of a sweep of kind "approx" (a results frame): each method's relative error (metric
    "rel") or cosine ("cos") to the exact gradient, all parameters, against the spectral radius; one
    panel per cell, the mean over the points that share (cell, radius) with one standard error."""
    require_matplotlib()
    from matplotlib.figure import Figure

    from ..cells import canonical, variants
    df = df.assign(cell=df["cell"].map(canonical))  # "elman", in older stores, is "rnn"
    cells = [c for c in variants() if (df["cell"] == c).any()]
    fig = Figure(figsize=(3.6 * len(cells) + 1.2, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(cells), sharey=True))
    for ax, cell in zip(axes, cells):
        sub = df[df["cell"] == cell]
        for i, (key, label) in enumerate(SWEEP_METHODS):
            col = f"{key}_{metric}"
            if col not in sub:
                continue
            g = sub.groupby("radius")[col]
            mean, err = g.mean(), g.std(ddof=1).fillna(0) / np.sqrt(g.count())
            ax.errorbar(mean.index, mean.values, yerr=err.values, marker="o", ms=4, capsize=2, color=f"C{i}",
                        label=label)
        ax.set(title=cell, xlabel="spectral radius of W (each H x H block)")
        if metric == "rel":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative error to the exact gradient" if metric == "rel" else "cosine to the exact gradient")
    axes[-1].legend(fontsize=8, loc="best")
    fig.suptitle("RTRL is exact (its error is rounding); SnAp-2 equals it where W is dense (its pattern is full)",
                 fontsize=9)
    return finish(fig)


def bias_by_cell(curves: dict, name="all"):
    """A Figure of one panel per cell: the window's relative bias ||g_K - g|| / ||g|| against K (log
    scale), one line per model (e.g. per spectral radius). curves: {cell: {label: Curve}}."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * len(curves) + 0.8, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(curves), sharey=True))
    for ax, (cell, by_label) in zip(axes, curves.items()):
        for i, (lab, c) in enumerate(by_label.items()):
            rel = c.bias.rel[name]
            ax.plot(c.K, np.where(rel > 0, rel, np.nan), color=f"C{i}", label=lab)
        ax.set(title=cell, xlabel="window K", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"relative bias of the window ({name})")
    axes[-1].legend(fontsize=8)
    return finish(fig)
