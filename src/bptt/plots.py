"""Figures of the lag analysis (matplotlib, the `plot` extra, imported inside each function).

Every function returns a matplotlib Figure built without pyplot, so nothing depends on a GUI or
on global pyplot state: it renders with the Agg backend (PNG) or the SVG backend through
`save(fig, path)`, and a notebook shows it when it is the last expression of a cell.
Lags and steps follow flow.py: output t, step k <= t, lag l = t - k; logarithms are base 10.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

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


def save(fig, path, formats=FORMATS, dpi=110) -> list[Path]:
    """Write fig as path.png and path.svg (or the given formats); returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"format must be png, svg or pdf, got {fmt!r}")
        p = path.with_suffix("." + fmt)
        fig.savefig(p, format=fmt, dpi=dpi)
        out.append(p)
    return out


def heatmap(flow, title=None):
    """log10 ||dE_t/ds_k|| over outputs t (rows) and steps k (columns); blank above the diagonal."""
    fig, ax = _figure(5.6, 4.6)
    a = flow.dE_ds.astype(float)
    low = np.tril(np.ones_like(a, dtype=bool))
    with np.errstate(divide="ignore"):
        z = np.where(low & (a > 0), np.log10(np.where(a > 0, a, 1)), np.nan)
    im = ax.imshow(z, origin="upper", cmap="viridis", interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax, label=r"$\log_{10}\,\|\partial E_t/\partial s_k\|$")
    ax.set_xlabel("step k (where the error arrives)")
    ax.set_ylabel("output t (where the error starts)")
    ax.set_title(title or f"Error of output t at state s_k ({flow.trace.model.activation}, T = {flow.T})")
    return fig


def _curve(value):
    """(mean, low, high, theory) of the ratio curve of a Flow, or of a list of Flows (mean +- std)."""
    fls = list(value) if isinstance(value, (list, tuple)) else [value]
    curves = np.stack([f.by_lag().ratio_mean for f in fls])
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(curves, 0) if len(fls) > 1 else curves[0]
        std = np.nanstd(curves, 0) if len(fls) > 1 else None
    lo = hi = None
    if std is not None:
        lo, hi = np.maximum(mean - std, mean * 1e-3), mean + std
    return mean, lo, hi, fls[0].theory()


def lag_curves(models: dict, title="Gradient norm against lag", max_lag=None):
    """||dE_t/ds_{t-l}|| / ||dE_t/ds_t|| (mean over t) against the lag l, one line per model.

    models: label -> Flow, or label -> list of Flows (a batch: its mean, and a band of +- one
    standard deviation over sequences). Each model's bound (lambda_1 gamma)^l is drawn dashed in
    the same colour.
    """
    fig, ax = _figure(6.4, 4.2)
    for i, (label, value) in enumerate(models.items()):
        mean, lo, hi, th = _curve(value)
        L = len(mean) if max_lag is None else min(len(mean), max_lag + 1)
        l = np.arange(L)
        color = f"C{i}"
        ax.plot(l, mean[:L], color=color, lw=1.8, label=f"{label}  (decay {_decay(value):.3g}/step)")
        if lo is not None:
            ax.fill_between(l, lo[:L], hi[:L], color=color, alpha=0.18, lw=0)
        ax.plot(l, th.bound(l), color=color, lw=1.0, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("lag l = t - k (steps back in time)")
    ax.set_ylabel(r"$\|\partial E_t/\partial s_{t-l}\|\,/\,\|\partial E_t/\partial s_t\|$")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.plot([], [], color="0.3", ls="--", lw=1.0, label=r"bound $(\lambda_1\gamma)^l$")
    ax.legend(fontsize=8, loc="best")
    _clip_log_axis(ax)
    return fig


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
    """log10 singular values of ds_t/ds_{t-l} against the lag l, with the bound (lambda_1 gamma)^l."""
    from .spectra import lag_spectrum

    t = flow.T - 1 if t is None else int(t)
    lags = np.unique(np.linspace(0, t, min(t + 1, 30)).astype(int)) if lags is None else np.asarray(lags)
    ls = lag_spectrum(flow.trace, t, lags) / np.log(10)  # (L, H), log10
    th = flow.theory()
    fig, ax = _figure(6.4, 4.2)
    H = ls.shape[1]
    cmap = _cmap("viridis")
    for i in range(H):
        ax.plot(lags, ls[:, i], color=cmap(i / max(H - 1, 1)), lw=1.2,
                label=r"$\sigma_1$ (largest)" if i == 0 else (r"$\sigma_H$ (smallest)" if i == H - 1 else None))
    ax.plot(lags, th.log10_bound(lags), color="k", ls="--", lw=1.0, label=r"$(\lambda_1\gamma)^l$")
    ax.set_xlabel("lag l = t - k")
    ax.set_ylabel(r"$\log_{10}\,\sigma_i(\partial s_t/\partial s_{t-l})$")
    ax.set_title(title or f"Singular values of the Jacobian ds_t/ds_(t-l), t = {t}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


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
    return fig


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
    return fig


def saturation(sat, bins=20, title=None):
    """Histogram of f'(z_t) over every step and unit, with the share of saturated pairs."""
    counts, edges = sat.histogram(bins)
    fig, ax = _figure(5.6, 3.6)
    ax.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge", color="C2", edgecolor="w")
    ax.axvline(0.1 * sat.gamma, color="k", ls=":", lw=1)
    ax.set_xlabel(f"f'(z)   ({sat.activation}; gamma = max f' = {sat.gamma:g})")
    ax.set_ylabel("share of (t, unit) pairs")
    ax.set_title(title or f"Saturation: {100 * sat.fraction_saturated():.1f}% of f'(z) below 0.1 gamma")
    return fig
