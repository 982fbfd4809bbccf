"""Figures of the lag analysis (matplotlib, the `plot` extra, imported inside each function).

Every function returns a matplotlib Figure built without pyplot, so nothing depends on a GUI or
on global pyplot state: it renders with the Agg backend (PNG) or the SVG backend through
`save(fig, path)`, and a notebook shows it when it is the last expression of a cell.
Lags and steps follow flow.py: output t, step k <= t, lag l = t - k; logarithms are base 10.
Every figure takes Flows of any cell (Elman, LSTM, GRU); Pascanu's bound (lambda_1 gamma)^l is
drawn for Elman cells only, the cells it holds for.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .validate import show

FORMATS = ("png", "svg")


def require_matplotlib():
    """Raise a ValueError that says how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("figures need matplotlib, which is not installed: pip install 'bptt[plot]'") from None


def _figure(w=6.4, h=4.0, ncols=1):
    require_matplotlib()
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


DPI = 150  # every PNG the project writes: at least this many dots per inch
MIN_FONT = 8.0  # points: no text smaller than this at the saved size


def save(fig, path, formats=FORMATS, dpi=DPI) -> list[Path]:
    """Write fig as path.png and path.svg (or the given formats); returns the files written.
    The figure is finished first (`finish`), and a PNG gets at least DPI dots per inch."""
    path = Path(path)
    for fmt in formats:
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"format must be png, svg or pdf, got {show(fmt)}")
    return [savefig(fig, path.with_suffix("." + fmt), dpi=dpi) for fmt in formats]


def savefig(fig, path, *, dpi=DPI, **kw) -> Path:
    """Write fig to path (its suffix picks the format: png, svg or pdf) after `finish(fig)`, with at
    least DPI dots per inch; the folder is made when missing. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    finish(fig)
    fig.savefig(path, dpi=max(float(dpi), DPI), **kw)
    return path


def figure_bytes(fig, fmt="svg", dpi=DPI) -> bytes:
    """fig as the bytes of an SVG (or PNG, at least DPI dots per inch) file, after `finish(fig)`."""
    import io

    buf = io.BytesIO()
    finish(fig)
    fig.savefig(buf, format=fmt, dpi=max(float(dpi), DPI))
    return buf.getvalue()


def renderer(fig):
    """An Agg renderer of fig, with fig drawn once (layout done), to measure text in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def finish(fig, min_font=MIN_FONT):
    """Make fig readable on a slide, in place, and return it: no text below min_font points, and on
    every axis (colour bars too) no two tick labels that overlap (log axes lose their minor labels
    first, then every axis keeps fewer ticks)."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        if t.get_fontsize() < min_font:
            t.set_fontsize(min_font)
    for _ in range(4):
        r = renderer(fig)
        crowded = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) if overlapping_ticks(axis, r)]
        if not crowded:
            break
        for axis in crowded:
            _thin(axis)
    return fig


def tick_labels(axis):
    """The visible, non-empty tick labels of an axis (major and minor) within its view (after a draw)."""
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * abs(hi - lo)
    out = []
    for locs, ticks in ((axis.get_majorticklocs(), axis.get_major_ticks),
                        (axis.get_minorticklocs(), axis.get_minor_ticks)):
        for loc, t in zip(locs, ticks(len(locs))):
            if lo - eps <= loc <= hi + eps:
                out += [lab for lab in (t.label1, t.label2) if lab.get_visible() and lab.get_text()]
    return out


def overlapping_ticks(axis, renderer) -> list:
    """The pairs of an axis's tick labels whose boxes (in pixels) overlap."""
    boxes = [lab.get_window_extent(renderer) for lab in tick_labels(axis)]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b) and a.width and b.width]


def _thin(axis):
    """Fewer tick labels on a crowded axis: a log axis drops its minor labels first; a fixed list of
    ticks keeps every other label; any other axis asks its locator for fewer ticks."""
    from matplotlib import ticker

    minor = axis.get_minor_formatter()
    if not isinstance(minor, ticker.NullFormatter) and any(t.label1.get_text() for t in axis.get_minor_ticks()):
        axis.set_minor_formatter(ticker.NullFormatter())
        return
    loc = axis.get_major_locator()
    if isinstance(loc, ticker.FixedLocator):  # keep the ticks (categories), label every other one
        fmt = axis.get_major_formatter()
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, pos, fmt=fmt: fmt(v, pos) if pos % 2 == 0 else ""))
    elif isinstance(loc, ticker.LogLocator):
        axis.set_major_locator(ticker.LogLocator(numticks=max(2, len(axis.get_majorticklocs()) // 2)))
    else:
        axis.set_major_locator(ticker.MaxNLocator(nbins=max(2, len(axis.get_majorticklocs()) // 2)))


def luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (r, g, b[, a]) in 0..1."""
    c = np.asarray(rgb, float)[:3]
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def contrast(a, b) -> float:
    """WCAG contrast ratio of two colours: 1 (none) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def cell_text_colour(rgb) -> str:
    """"black" or "white", whichever contrasts more with a cell of colour rgb (at least 4.58:1)."""
    return "black" if contrast(rgb, (0, 0, 0)) >= contrast(rgb, (1, 1, 1)) else "white"


def diverging_ticks(lo, centre, hi, n=3) -> np.ndarray:
    """Ticks for a colour bar centred at `centre` (a TwoSlopeNorm): n on each side, the centre
    included, each rounded to two significant digits of its half's tick spacing, inwards where
    rounding would leave [lo, hi], so both halves are labelled."""
    out = [centre]
    for a, b in ((lo, centre), (centre, hi)):
        step = abs(b - a) / max(n - 1, 1)
        if step == 0:
            continue
        d = max(0, 1 - int(np.floor(np.log10(step))))
        for t in np.linspace(a, b, n):
            r = round(float(t), d)
            if r < lo:
                r = np.ceil(t * 10**d) / 10**d
            elif r > hi:
                r = np.floor(t * 10**d) / 10**d
            out.append(float(r))
    return np.unique(out)


def label(model) -> str:
    """A short name for a model's cell: its activation for an Elman cell ("tanh"), else "LSTM", "GRU"."""
    return model.activation if model.cell.pascanu else type(model).__name__


def _log_table(flow):
    """log10 dE_ds, NaN above the diagonal and where 0: (T, T)."""
    a = flow.dE_ds.astype(float)
    low = np.tril(np.ones_like(a, dtype=bool))
    with np.errstate(divide="ignore"):
        return np.where(low & (a > 0), np.log10(np.where(a > 0, a, 1)), np.nan)


def heatmap(flow, title=None):
    """log10 ||dE_t/ds_k|| over outputs t (rows) and steps k (columns); blank above the diagonal."""
    fig, ax = _figure(5.6, 4.6)
    im = ax.imshow(_log_table(flow), origin="upper", cmap="viridis", interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax, label=r"$\log_{10}\,\|\partial E_t/\partial s_k\|$")
    ax.set_xlabel("step k (where the error arrives)")
    ax.set_ylabel("output t (where the error starts)")
    ax.set_title(title or f"Error of output t at state s_k ({label(flow.trace.model)}, T = {flow.T})")
    return finish(fig)


def heatmaps(flows: dict, title=None):
    """log10 ||dE_t/ds_k|| (h_k for gated cells) of several Flows side by side, one colour scale:
    flows is label -> Flow, one panel each."""
    tables = {k: _log_table(f) for k, f in flows.items()}
    vals = np.concatenate([z[np.isfinite(z)] for z in tables.values()] + [np.zeros(0)])
    lo, hi = (vals.min(), vals.max()) if vals.size else (0.0, 1.0)
    fig, axes = _figure(4.0 * len(tables) + 1.0, 4.0, ncols=len(tables))
    axes = np.atleast_1d(axes)
    for ax, (name, z) in zip(axes, tables.items()):
        im = ax.imshow(z, origin="upper", cmap="viridis", interpolation="nearest", aspect="auto", vmin=lo, vmax=hi)
        ax.set_title(name)
        ax.set_xlabel("step k")
    axes[0].set_ylabel("output t")
    fig.colorbar(im, ax=list(axes), label=r"$\log_{10}\,\|\partial E_t/\partial s_k\|$")
    if title:
        fig.suptitle(title)
    return finish(fig)


def _curve(value, key="ratio_mean"):
    """(mean, low, high, theory) of a LagProfile curve of a Flow, or of a list of Flows (mean +- std).
    The theory is the weights' (theory.theory), measured numbers left out."""
    from .theory import theory

    fls = list(value) if isinstance(value, (list, tuple)) else [value]
    curves = np.stack([getattr(f.by_lag(), key) for f in fls])
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(curves, 0) if len(fls) > 1 else curves[0]
        std = np.nanstd(curves, 0) if len(fls) > 1 else None
    lo = hi = None
    if std is not None:
        lo, hi = np.maximum(mean - std, mean * 1e-3), mean + std
    return mean, lo, hi, theory(fls[0].trace.model)


def lag_curves(models: dict, title="Gradient norm against lag", max_lag=None):
    """||dE_t/ds_{t-l}|| / ||dE_t/ds_t|| (mean over t) against the lag l, one line per model.

    models: label -> Flow, or label -> list of Flows (a batch: its mean, and a band of +- one
    standard deviation over sequences). Each Elman model's bound (lambda_1 gamma)^l is drawn dashed
    in the same colour.
    """
    fig, ax = _figure(6.4, 4.2)
    bounds = False
    for i, (name, value) in enumerate(models.items()):
        mean, lo, hi, th = _curve(value)
        L = len(mean) if max_lag is None else min(len(mean), max_lag + 1)
        l = np.arange(L)
        color = f"C{i}"
        ax.plot(l, mean[:L], color=color, lw=1.8, label=f"{name}  (decay {_decay(value):.3g}/step)")
        if lo is not None:
            ax.fill_between(l, lo[:L], hi[:L], color=color, alpha=0.18, lw=0)
        if th.applies:
            ax.plot(l, th.bound(l), color=color, lw=1.0, ls="--")
            bounds = True
    ax.set_yscale("log")
    ax.set_xlabel("lag l = t - k (steps back in time)")
    ax.set_ylabel(r"$\|\partial E_t/\partial s_{t-l}\|\,/\,\|\partial E_t/\partial s_t\|$")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if bounds:
        ax.plot([], [], color="0.3", ls="--", lw=1.0, label=r"bound $(\lambda_1\gamma)^l$")
    ax.legend(fontsize=8, loc="best")
    _clip_log_axis(ax)
    return finish(fig)


def cell_lag_curves(models: dict, title="Error size against lag", max_lag=None):
    """Mean ||dE_t/ds_{t-l}|| (the hidden output h for gated cells) against the lag l, on a log
    scale, one solid line per model: models is label -> Flow or list of Flows (the mean over
    sequences of each sequence's mean over t). For an LSTM a dashed line in the same colour is the
    mean ||dE_t/dc_{t-l}||, the error on the cell state (from lag 1: it is 0 at lag 0)."""
    fig, ax = _figure(6.4, 4.2)
    for i, (name, value) in enumerate(models.items()):
        mean, lo, hi, _ = _curve(value, "norm_mean")
        L = len(mean) if max_lag is None else min(len(mean), max_lag + 1)
        l = np.arange(L)
        color = f"C{i}"
        ax.plot(l, mean[:L], color=color, lw=1.8, label=f"{name}  (decay {_decay(value):.3g}/step)")
        if lo is not None:
            ax.fill_between(l, lo[:L], hi[:L], color=color, alpha=0.18, lw=0)
        first = value[0] if isinstance(value, (list, tuple)) else value
        if first.dE_dc is not None and first.trace.model.cell.memory:  # a cell state of its own (LSTM)
            c, _, _, _ = _curve(value, "c_mean")
            ax.plot(l[1:], c[1:L], color=color, lw=1.2, ls="--", label=f"{name}: cell state c")
    ax.set_yscale("log")
    ax.set_xlabel("lag l = t - k (steps back in time)")
    ax.set_ylabel(r"mean $\|\partial E_t/\partial s_{t-l}\|$")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _clip_log_axis(ax)
    return finish(fig)


def _decay(value):
    fls = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        return float(np.mean([f.decay_rate() for f in fls]))
    except ValueError:
        return float("nan")


def _clip_log_axis(ax, decades=30):
    """Keep a log axis within `decades` of its top, so an exploding bound does not flatten the data."""
    lo, hi = ax.get_ylim()
    data = [ln.get_ydata() for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_ydata())]
    if data:
        vals = np.concatenate([np.asarray(d, float) for d in data])
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size:
            top = min(hi, vals.max() * 10)
            ax.set_ylim(max(lo, vals.min() / 10, top / 10 ** decades), top)


def singular_values(flow, t=None, lags=None, title=None):
    """log10 singular values of ds_t/ds_{t-l} against the lag l (the whole state: (h, c) for an
    LSTM), with the bound (lambda_1 gamma)^l for an Elman cell. Exact zeros (-inf) are not drawn."""
    from .spectra import lag_spectrum
    from .theory import theory

    t = flow.T - 1 if t is None else int(t)
    lags = np.unique(np.linspace(0, t, min(t + 1, 30)).astype(int)) if lags is None else np.asarray(lags)
    ls = lag_spectrum(flow.trace, t, lags) / np.log(10)  # (L, S), log10
    th = theory(flow.trace.model)
    fig, ax = _figure(6.4, 4.2)
    S = ls.shape[1]
    cmap = _cmap("viridis")
    for i in range(S):
        ax.plot(lags, ls[:, i], color=cmap(i / max(S - 1, 1)), lw=1.2,
                label=r"$\sigma_1$ (largest)" if i == 0 else (r"$\sigma_S$ (smallest)" if i == S - 1 else None))
    if th.applies:
        ax.plot(lags, th.log10_bound(lags), color="k", ls="--", lw=1.0, label=r"$(\lambda_1\gamma)^l$")
    ax.set_xlabel("lag l = t - k")
    ax.set_ylabel(r"$\log_{10}\,\sigma_i(\partial s_t/\partial s_{t-l})$")
    ax.set_title(title or f"Singular values of the Jacobian ds_t/ds_(t-l), t = {t}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return finish(fig)


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def notebook_terms(flow, name="W", t=None, title=None):
    """The terms of dE_t/d(name) as bars, k = t, t-1, ..., 0 (older to the right): the error
    ||dE_t/dz_k|| that reaches step k, and the size ||term_{t,k}||_F of that step's summand."""
    t = flow.T - 1 if t is None else int(t)
    terms = flow.terms(name, t)[: t + 1]
    norms = np.linalg.norm(terms.reshape(t + 1, -1), axis=1)[::-1]  # k = t .. 0
    errs = np.linalg.norm(flow.deltas(t)[: t + 1], axis=1)[::-1]
    fig, ax = _figure(6.0, 3.8)
    x = np.arange(t + 1)
    for off, vals, lab, col in ((-0.2, errs, rf"$\|\partial E_{{{t}}}/\partial z_k\|$ (error at step k)", "C0"),
                                (0.2, norms, rf"$\|\mathrm{{term}}_{{{t},k}}\|_F$ (summand of dE/d{name})", "C1")):
        bars = ax.bar(x + off, vals, width=0.38, color=col, label=lab)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.3g}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"k = {t - l}\nlag {l}" for l in range(t + 1)], fontsize=8)
    ax.set_title(title or f"The {t + 1} terms of dE_{t}/d{name}: the error shrinks at every step back")
    ax.legend(fontsize=8)
    ax.margins(y=0.2)
    return finish(fig)


def cliff(c, b_cut=None, title=None):
    """The loss surface of the one-unit network (theory.cliff) and a cut along w with its gradient norm."""
    fig, (a1, a2) = _figure(10.5, 4.0, ncols=2)
    fig.get_layout_engine().set(wspace=0.12)
    im = a1.imshow(c.loss, origin="lower", aspect="auto", cmap="magma",
                   extent=(c.w[0], c.w[-1], c.b[0], c.b[-1]))
    fig.colorbar(im, ax=a1, label="E")
    a1.set_xlabel("w")
    a1.set_ylabel("b")
    a1.set_title(rf"$E = (\sigma(x_{{{c.steps}}}) - {c.target:g})^2$, $x_t = w\,\sigma(x_{{t-1}}) + b$")
    j = int(np.argmin(np.abs(c.b - (b_cut if b_cut is not None else c.b[len(c.b) // 2]))))
    a1.axhline(c.b[j], color="w", ls=":", lw=1)
    a2.plot(c.w, c.loss[j], color="C0", lw=1.6)
    a2.set_xlabel("w")
    a2.set_ylabel("loss E", color="C0")
    a3 = a2.twinx()
    a3.semilogy(c.w, c.grad_norm[j], color="C3", lw=1.0)
    a3.set_ylabel(r"$\|\nabla_{w,b} E\|$ (log scale)", color="C3")
    a2.set_title(f"Cut at b = {c.b[j]:.3g}: a wall where the gradient jumps")
    return finish(fig)


def saturation(sat, bins=20, title=None):
    """Histogram of f'(z_t) over every step and unit, with the share of saturated pairs; for a
    GateSaturation (gated cells) one histogram per sigmoid gate (gate_saturation)."""
    if hasattr(sat, "gates"):
        return gate_saturation(sat, bins=bins, title=title)
    counts, edges = sat.histogram(bins)
    fig, ax = _figure(5.6, 3.6)
    ax.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge", color="C2", edgecolor="w")
    ax.axvline(0.1 * sat.gamma, color="k", ls=":", lw=1)
    ax.set_xlabel(f"f'(z)   ({sat.activation}; gamma = max f' = {sat.gamma:g})")
    ax.set_ylabel("share of (t, unit) pairs")
    ax.set_title(title or f"Saturation: {100 * sat.fraction_saturated():.1f}% of f'(z) below 0.1 gamma")
    return finish(fig)


def gate_saturation(sat, bins=20, title=None):
    """Histograms of a gated cell's sigmoid gates over every step and unit (analysis.GateSaturation):
    one line per gate, the share of (t, unit) pairs in each bin of [0, 1]."""
    fig, ax = _figure(5.6, 3.6)
    for i, g in enumerate(sat.gates):
        counts, edges = sat.histogram(g, bins)
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot(centres, counts / counts.sum(), color=f"C{i}", marker="o", ms=3, lw=1.4,
                label=f"{g}: {100 * sat.near_zero(g):.0f}% < {sat.threshold:g}, {100 * sat.near_one(g):.0f}% > "
                      f"{1 - sat.threshold:g}")
    ax.set_xlabel(f"gate value ({sat.cell.upper()})")
    ax.set_ylabel("share of (t, unit) pairs")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title or (f"Gates: the {sat.path_gate} gates' geometric mean is {sat.path_rate:.3g}"
                           if sat.path_gate else f"Gates: {100 * sat.fraction_saturated():.1f}% within "
                           f"{sat.threshold:g} of 0 or 1"))
    return finish(fig)
