"""A diagnosis as one self-contained HTML page: inline CSS and inline SVG charts (bptt.diagnosis.svg),
no script, nothing fetched, so it opens offline and in a notebook (Diagnosis._repr_html_).

Every number on the page is read from the Diagnosis or computed here from its arrays (the fitted
line's intercept, the halving time from the decay); none is typed in. Per layer and direction:
the lag curve with its fitted decay, the error at each step, the memory path (a cell that has one),
the per-step terms of the recurrent weights' gradient; then the table of numbers, the first
non-finite step, the gradients by the framework's names, and the advice.
"""
from __future__ import annotations

import math
from html import escape

import numpy as np

from ..files import as_path, printable, write_atomic
from . import svg
from .numbers import LAGS

CSS = """
.bptt-diagnosis { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; }
.bptt-diagnosis h1 { font-size: 1.6rem; margin-bottom: .2rem; }
.bptt-diagnosis h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; font-size: 1.25rem; }
.bptt-diagnosis .sub { color: #666; margin-top: 0; }
.bptt-diagnosis table { border-collapse: collapse; margin: .8rem 0; font-size: .88rem; }
.bptt-diagnosis th, .bptt-diagnosis td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: right; }
.bptt-diagnosis th { background: #f3f3f5; } .bptt-diagnosis .l { text-align: left; }
.bptt-diagnosis td { white-space: nowrap; }
.bptt-diagnosis .charts { display: flex; flex-wrap: wrap; gap: .6rem; }
.bptt-diagnosis svg.chart { border: 1px solid #eee; background: #fff; max-width: 100%; height: auto; }
.bptt-diagnosis .bad { color: #b00020; font-weight: 600; } .bptt-diagnosis .ok { color: #0a7d27; font-weight: 600; }
.bptt-diagnosis code { background: #f3f3f5; padding: 0 .2rem; }
"""
PAGE_CSS = "body { max-width: 62rem; margin: 2rem auto; padding: 0 1.2rem; }"


def num(v, digits=4) -> str:
    """A number as the page shows it: `digits` significant digits, "n/a" for None, never "-0"."""
    if v is None:
        return "n/a"
    v = float(v)
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    s = f"{v:.{digits}g}"
    return "0" if float(s) == 0 else s


def _halving(r):
    if r is None or r <= 0 or r == 1 or not math.isfinite(r):
        return None
    return math.log(2) / abs(math.log(r))


def _time_order(e, a):
    """A per-step array of an entry in time order (a reverse direction's arrays run backwards)."""
    a = np.asarray(a)
    return a[::-1] if e["reverse"] else a


def fit_line(curve, r):
    """(lags, values) of the fitted decay through lags 1..len-1: log curve[l] = b + (l - 1) log r,
    b the least-squares intercept for the slope log r over the finite, non-zero points."""
    c = np.asarray(curve[1:], dtype=np.float64)
    lags = np.arange(len(c))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(c) & (c > 0)
    if r is None or r <= 0 or ok.sum() < 2:
        return None
    b = float(np.mean(np.log(c[ok]) - math.log(r) * lags[ok]))
    ends = np.array([lags[ok][0], lags[ok][-1]])
    return ends + 1, np.exp(b + math.log(r) * ends)


def charts(e, T) -> str:
    """The SVG charts of one layer and direction."""
    curve = np.asarray(e["curve"], dtype=np.float64)
    series = [{"x": np.arange(len(curve)), "y": curve, "label": f"||dE/dh|| from step {e['source']}"}]
    fit = fit_line(curve, e["decay"])
    if fit is not None:
        series.append({"x": fit[0], "y": fit[1], "label": f"fit: {num(e['decay'])} per step", "dash": True})
    out = [svg.chart(series, title="How far back the error reaches", xlabel="lag l (steps back)",
                     ylabel="||dE/dh||", log=True)]
    out.append(svg.chart([{"x": np.arange(T), "y": e["error"], "label": "||dE/dh_t|| (all outputs)"}],
                         title="The error at each step", xlabel="step t", ylabel="||dE/dh_t||", log=True))
    if e["memory"] is not None:
        per_step, prod = e["memory"]
        gate = e["memory_gate"]
        out.append(svg.chart([{"x": np.arange(T), "y": _time_order(e, per_step), "label": f"mean {gate} gate"}],
                             title=f"The {gate} gate at each step", xlabel="step t", ylabel=f"mean {gate}",
                             ylim=(0.0, 1.0)))
        out.append(svg.chart([{"x": np.arange(len(prod)), "y": prod, "label": f"mean product of {gate}"}],
                             title="The memory path over lags", xlabel="lag l (from the last step)",
                             ylabel=f"product of {gate}", log=True))
    if len(e["terms"]):
        out.append(svg.chart([{"x": np.arange(T), "y": _time_order(e, e["terms"]), "label": "||dW_t||"}],
                             title="The recurrent weights' gradient, per step", xlabel="step t",
                             ylabel="||dW_t||", log=True))
    return '<div class="charts">' + "".join(out) + "</div>"


def _table(head, rows, left=(0,)):
    th = "".join(f'<th class="{"l" if i in left else ""}">{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i in left else ""}">{v}</td>' for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def numbers_table(d) -> str:
    """One row per layer and direction: every figure of its diagnosis."""
    rows = []
    for e in d.entries:
        r, half = e["decay"], _halving(e["decay"])
        kind = "halves" if r is not None and r < 1 else "doubles"
        radius = "<br>".join(f"{escape(g)} {num(v)}" for g, v in e["radius"].items()) or "n/a"
        sat = "<br>".join(f"{escape(g)} {num(100 * lo)}% / {num(100 * hi)}%" for g, (lo, hi)
                          in e["saturation"].items()) or "n/a"
        shares = [("not computed" if K not in e["shares"] else f"{num(100 * e['shares'][K])}%"
                   + (" (K &ge; T)" if K >= d.T else "")) for K in LAGS]
        lyap = e["lyapunov"]
        rows.append([escape(e["name"]), escape(e["label"]), str(e["H"]), str(e["source"]), num(r),
                     "n/a" if half is None else f"{kind} in {num(half)}", num(lyap),
                     "n/a" if lyap is None else num(math.exp(lyap)), radius, sat] + shares)
    head = ["layer", "cell", "H", "from step", "decay / step", "steps", "Lyapunov exp.", "e<sup>&lambda;</sup>",
            "spectral radius", "gates below 0.05 / above 0.95"] + [f"beyond lag {K}" for K in LAGS]
    return _table(head, rows, left=(0, 1, 8, 9))


def grads_table(d) -> str:
    rows = []
    for name, g in d.grads.items():
        g = np.asarray(g, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.sqrt(np.sum(g * g)))
            peak = float(np.max(np.abs(g))) if g.size else 0.0
        rows.append([f"<code>{escape(name)}</code>", escape(" x ".join(map(str, g.shape))), num(norm), num(peak)])
    return _table(["parameter", "shape", "norm", "max |entry|"], rows, left=(0, 1))


def body(d) -> str:
    """The page's content, one <div class="bptt-diagnosis">."""
    cells = " and ".join(escape(c) for c in dict.fromkeys(e["label"] for e in d.entries))
    parts = [f"<h1>Diagnosis: a {escape(d.framework)} {cells}, {len(d.entries)} "
             f"layer-direction{'s' if len(d.entries) != 1 else ''}</h1>",
             f'<p class="sub">T = {d.T} steps, batch N = {d.N}, {escape(d.dtype)}; loss {num(d.loss, 8)}; '
             + (f"bptt's run of the layers agrees with {escape(d.framework)}'s to {num(d.agreement, 2)}</p>"
                if d.agreement is not None else "the network rebuilt from the file; its loss and errors computed by "
                "bptt</p>")]
    parts.append("<h2>Verdict</h2><ul>" + "".join(f"<li>{escape(s)}</li>" for s in d.advice()) + "</ul>")
    if d.nonfinite:
        parts.append(f'<p class="bad" id="nonfinite">First non-finite value: {escape(d.nonfinite)}</p>')
    else:
        parts.append('<p class="ok" id="nonfinite">Every state and every error is finite.</p>')
    parts.append("<h2>The numbers</h2>" + numbers_table(d) +
                 "<p>From step: the step whose error the lag curve sends back (in time order). Decay: the factor "
                 "per step of a least-squares fit of the log of the lag curve (lags 1 on). Lyapunov exponent: the "
                 "growth rate per step of an error sent back through the steps' Jacobians. Gates: the share of "
                 "each sigmoid gate's values below 0.05 and above 0.95. Beyond lag K: the share of the layer's "
                 "weight gradient (norm of the difference over the norm) that truncating BPTT at K steps "
                 "would lose" + (f", of the first {d.lags_over} sequences' gradient (of {d.N})"
                                 if 0 < d.lags_over < d.N else "") + ".</p>")
    for e in d.entries:
        parts.append(f"<h2>{escape(e['name'].capitalize())}: {escape(e['label'])}, H = {e['H']}</h2>")
        parts.append(charts(e, d.T))
    parts.append("<h2>Gradients</h2><p>The recurrent module's weight gradients by "
                 f"{escape(d.framework)}'s names: what <code>loss.backward()</code> puts in <code>.grad</code>.</p>")
    parts.append(grads_table(d))
    return '<div class="bptt-diagnosis">' + "\n".join(parts) + "</div>"


def html(d, standalone=True) -> str:
    """The diagnosis as HTML: a whole page (standalone) or a fragment for a notebook's output."""
    style = f"<style>{CSS}</style>"
    if not standalone:
        return style + body(d)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>bptt diagnosis: {escape(d.framework)} "
            f"{' and '.join(escape(c) for c in dict.fromkeys(e['label'] for e in d.entries))}</title>"
            f"<style>{PAGE_CSS}{CSS}</style></head><body>{body(d)}</body></html>")


def write(d, path):
    """Write the page to path (an .html file) atomically, in path's own folder; returns the path."""
    p = as_path(path, "the page's path")
    if p.is_dir():
        raise ValueError(f"the page goes into a file, but {printable(p)} is a folder")
    if not p.parent.is_dir():
        raise ValueError(f"cannot write {printable(p)}: the folder {printable(p.parent)} does not exist")
    return write_atomic(p, html(d, standalone=True))
