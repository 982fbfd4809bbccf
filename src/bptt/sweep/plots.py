"""Figures of a sweep folder (matplotlib, imported here only).

- flow points: phase diagrams over (spectral radius, sequence length), one column per activation
  (and one per gated cell, at its own initialisation):
  the decay rate of the error per step of lag (1 = neither vanishing nor exploding) and the share
  of the gradient that comes from lags beyond `long_lag`. Each cell is the mean over the points
  that share its (activation, radius, length): the seeds, and any other parameter that varies.
- train points: success rate vs sequence length, one line per method (and per gated cell: "lstm
  clip"), one panel per task, with error bars of one standard error over the seeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import MAX_NAME, file_name
from ..plots import finish
from ..validate import show
from .report import results

FLOW_AXES = ("activation", "radius", "length")


def plot(out, *, to=None, fmt="png") -> list[Path]:
    """Write every figure the sweep in `out` supports to `to` (default out/plots), each named after
    its spec (flow-phase.toml's: flow-phase.png; a spec of several kinds: NAME-KIND.png); returns
    the paths."""
    if not isinstance(fmt, str) or fmt not in ("png", "svg", "pdf"):  # before any figure is drawn
        raise ValueError(f"fmt must be png, svg or pdf, got {show(fmt)}")
    df = results(out, status="ok")
    to = Path(out) / "plots" if to is None else Path(to)
    written = []
    kinds = [k for k in ("flow", "train", "approx") if (df["kind"] == k).any()]
    names = {kind: figure_name(df, kind) for kind in kinds}  # every name checked before any figure is made
    for kind in kinds:
        sub = df[df["kind"] == kind]
        if kind == "flow":
            fig = phase_diagram(sub)
        elif kind == "train":
            fig = success_vs_length(with_cells(sub))
        else:
            from ..approx.figures import sweep_bias
            fig = sweep_bias(sub)
        written.append(_save(fig, to / f"{names[kind]}.{fmt}"))
    if not written:
        kinds = sorted(set(df["kind"])) or ["none"]
        raise ValueError(f"nothing to plot in {out}: figures exist for flow, train and approx points, and the "
                         f"finished points here are of kind(s) {', '.join(kinds)}")
    return written


DEFAULT_NAMES = {"flow": "flow-phase", "train": "success-vs-length", "approx": "approx-bias"}


def figure_name(df, kind) -> str:
    """The file name (no suffix) of a kind's figure: its spec's name, "-KIND" added when the specs of
    the folder hold points of several kinds; the kind's old name when no spec is recorded. A name
    that is not one safe file name (a store written by hand: "../x", "/tmp/x") is a ValueError."""
    names = sorted({str(v) for v in df.loc[df["kind"] == kind, "spec"].dropna()}) if "spec" in df else []
    if not names:
        return DEFAULT_NAMES[kind]
    names = [file_name(n, "the spec name recorded in the store") for n in names]
    name = "+".join(names) if len("+".join(names)) <= MAX_NAME else f"{names[0]}+{len(names) - 1}-more"
    several = "spec" in df and df[df["spec"].isin(names)]["kind"].nunique() > 1
    return f"{name}-{kind}" if several else name


def _save(fig, path: Path) -> Path:
    from ..plots import savefig

    savefig(fig, path, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def _others(df, axes) -> str:
    """The parameters that vary besides `axes` and the seed (averaged over in each cell)."""
    params = [c for c in df.attrs.get("params", []) if c not in axes]
    return ", ".join(c for c in params if df[c].nunique(dropna=False) > 1)


def phase_diagram(df, metrics=("decay_rate", "long_lag_fraction")):
    """A figure: rows = metrics, columns = activations; cells = (radius, length) means over the rest."""
    import matplotlib.pyplot as plt
    from matplotlib import colors

    from ..plots import cell_text_colour, diverging_ticks

    gated = set()
    if "cell" in df and (_cells(df) != "rnn").any():  # another cell's points: a column of its own
        df = df.copy()
        cells = _cells(df)
        gated = set(cells[cells != "rnn"])
        df["activation"] = df["activation"].where(cells == "rnn", cells)
    acts = sorted(df["activation"].unique())
    fig, axs = plt.subplots(len(metrics), len(acts), figsize=(5.4 * len(acts) + 0.8, 3.8 * len(metrics)),
                            squeeze=False, constrained_layout=True)
    others = _others(df, FLOW_AXES)
    seeds = df["seed"].nunique()
    lag = sorted(df["long_lag"].unique()) if "long_lag" in df else []
    for i, m in enumerate(metrics):
        g = df.groupby(["activation", "length", "radius"])[m]
        mean, count = g.mean(), g.count()  # NaN (overflow) values are left out of the mean
        vals = mean.to_numpy()
        if m == "decay_rate":
            finite = vals[np.isfinite(vals) & (vals > 0)]
            lo, hi = (min(finite.min(), 0.99), max(finite.max(), 1.01)) if finite.size else (0.5, 2)
            norm, cmap, label = colors.TwoSlopeNorm(vcenter=1.0, vmin=lo, vmax=hi), "RdBu_r", "decay rate r per step"
            ticks = diverging_ticks(lo, 1.0, hi)
        else:
            norm, cmap = colors.LogNorm(vmin=1e-6, vmax=1.0, clip=True), "viridis"
            label = f"share of gradient from lags > {', '.join(str(v) for v in lag)}"
            ticks = None
        cm = plt.get_cmap(cmap).with_extremes(bad="0.85")
        for j, act in enumerate(acts):
            ax = axs[i, j]
            sub = df[df["activation"] == act]
            radii, lengths = np.sort(sub["radius"].unique()), np.sort(sub["length"].unique())
            grid = np.full((len(lengths), len(radii)), np.nan)
            n = np.zeros_like(grid)
            for (a, T, r), v in mean.items():
                if a == act:
                    grid[np.searchsorted(lengths, T), np.searchsorted(radii, r)] = v
                    n[np.searchsorted(lengths, T), np.searchsorted(radii, r)] = count[(a, T, r)]
            if len(radii) <= 40 and len(lengths) <= 40:
                im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cm, norm=norm)
                ax.set_xticks(range(len(radii)), [f"{r:g}" for r in radii], rotation=45 if len(radii) > 8 else 0)
                ax.set_yticks(range(len(lengths)), [str(T) for T in lengths])
                rgba = im.to_rgba(np.ma.masked_invalid(grid))
                for (y, x), v in np.ndenumerate(grid):
                    txt = _cell_text(sub, lengths[y], radii[x], v, m)
                    ax.text(x, y, txt, ha="center", va="center", fontsize=8, color=cell_text_colour(rgba[y, x]))
            else:  # drawn radii / lengths: one dot per cell
                pts = mean[act].reset_index()
                im = ax.scatter(pts["radius"], pts["length"], c=pts[m], cmap=cm, norm=norm, s=18)
                ax.set_yscale("log")
            ax.set_xlabel("spectral radius rho(W)" if act not in gated else "PyTorch's init (no radius)")
            if act in gated and len(radii) == 1:
                ax.set_xticks([0], ["-"])
            ax.set_ylabel("sequence length T")
            ax.set_title(f"{act}: {m.replace('_', ' ')}")
        cbar = fig.colorbar(im, ax=axs[i, :].tolist(), label=label, shrink=0.9)
        if ticks is not None:  # both halves of the diverging scale labelled
            cbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    note = f"mean over {seeds} seed(s)" + (f" and over {others}" if others else "")
    fig.suptitle(f"gradient flow phase diagram ({note})\ngrey: every point overflowed in float32 or none ran; "
                 "*: some overflowed, mean of the others", fontsize=10)
    return finish(fig)


def _cell_text(sub, T, r, v, metric) -> str:
    """The value of a cell; "*" when some of its points overflowed (the mean is over the others)."""
    cell = sub[(sub["length"] == T) & (sub["radius"] == r)]
    some = "finite" in cell and not cell["finite"].astype(bool).all()
    if np.isfinite(v):
        text = f"{v:.2f}" if metric == "decay_rate" else ("0" if v == 0 else f"{v:.0e}")
        return text + ("*" if some else "")
    if cell.empty:
        return ""
    return "over-\nflow" if "finite" in cell and not cell["finite"].astype(bool).any() else "n/a"


def _cells(df):
    """The points' cells in their one spelling ("elman", in older stores, is "rnn"; none is "rnn")."""
    from ..cells import canonical
    return df["cell"].fillna("rnn").map(canonical)


def with_cells(df, line="method"):
    """The train points with each gated cell's points on lines of their own: method "clip" of cell
    "lstm" becomes "lstm clip" (the Elman cell's keep the method's name)."""
    if "cell" not in df or (_cells(df) == "rnn").all():
        return df
    df = df.copy()
    gated = _cells(df) != "rnn"
    df.loc[gated, line] = df.loc[gated, "cell"] + " " + df.loc[gated, line]
    return df


def success_vs_length(df, metric="success", x="length", line="method", panel="task"):
    """A figure: one panel per task, success rate vs length per method, error bars = standard error over seeds."""
    import matplotlib.pyplot as plt

    panels = sorted(df[panel].unique()) if panel in df else [None]
    fig, axs = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False, constrained_layout=True)
    others = _others(df, (x, line, panel))
    styles = list(zip("osD^vP*X", ("-", "--", "-.", ":") * 2))
    for ax, name in zip(axs[0], panels):
        sub = df if name is None else df[df[panel] == name]
        xs = np.sort(sub[x].unique())
        groups = list(sub.groupby(line))
        dodge = 0.012 * (xs[-1] - xs[0] if len(xs) > 1 else 1)  # side by side, so equal lines stay visible
        for i, (method, g) in enumerate(groups):
            stats = g.groupby(x)[metric].agg(lambda v: v.astype(float).mean()).to_frame("mean")
            stats["std"] = g.groupby(x)[metric].agg(lambda v: v.astype(float).std())
            stats["count"] = g.groupby(x)[metric].count()
            stats = stats.sort_index()
            err = (stats["std"].fillna(0) / np.sqrt(stats["count"])).to_numpy()
            marker, ls = styles[i % len(styles)]
            ax.errorbar(stats.index + (i - (len(groups) - 1) / 2) * dodge, stats["mean"], yerr=err, marker=marker,
                        linestyle=ls, capsize=3, label=str(method))
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{panel}: {name}" if name is not None else metric)
        ax.legend(fontsize=8)
    n = df.groupby([panel, line, x] if panel in df else [line, x])[metric].count()
    runs = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
    fig.suptitle(f"success rate vs length ({runs} seeds per point; bars: one standard error"
                 + (f"; averaged over {others}" if others else "") + ")", fontsize=10)
    return finish(fig)


__all__ = ["plot", "phase_diagram", "success_vs_length", "with_cells"]
