"""Figures of bptt.approx (matplotlib, imported inside the functions; no pyplot, no global state).

bias_curves: the window's cosine to the full gradient and its relative error against K, one line
per model (e.g. per spectral radius), from approx.window_curve's Curves.
"""
from __future__ import annotations

import numpy as np

from ..plots import require_matplotlib


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
    return fig
