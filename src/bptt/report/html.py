"""Lay out a report's Content as one self-contained HTML page: inline CSS, figures as base64 PNG.

The page loads nothing from anywhere (no scripts, fonts or stylesheets from a network), so it
reads the same offline, attached to an e-mail or opened from a file.
"""
from __future__ import annotations

import base64
import math
from html import escape

CSS = """
body { font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 60rem; margin: 2rem auto; padding: 0 1.2rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; }
th { background: #f3f3f5; } td.l, th.l { text-align: left; }
td:not(.l) { white-space: nowrap; }  /* a number never breaks inside its cell ("0.4727 ± 0.00026") */
pre { background: #f7f7f9; padding: .8rem; overflow-x: auto; font-size: .8rem; line-height: 1.35; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .88rem; }
.ok { color: #0a7d27; font-weight: 600; } .bad { color: #b00020; font-weight: 600; }
code { background: #f3f3f5; padding: 0 .2rem; }
"""


def _img(c, name, alt, caption):
    raw = c.figures[name]
    mime = "image/png" if raw[:8] == b"\x89PNG\r\n\x1a\n" else "image/svg+xml"
    data = base64.b64encode(raw).decode("ascii")
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(head, rows, left=(0,)):
    th = "".join(f'<th class="{"l" if i in left else ""}">{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i in left else ""}">{v}</td>' for i, v in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _mat(a):
    return escape("[" + ", ".join("[" + ", ".join(f"{v:g}" for v in row) + "]" for row in a) + "]")


def render(c) -> str:
    st, ex = c.settings, c.example
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>Vanishing and exploding gradients, measured</title><style>{CSS}</style></head><body>",
             "<h1>Vanishing and exploding gradients, measured</h1>",
             f"<p class=\"sub\">bptt {escape(c.version)} &middot; sweep: H = {st.H}, T = {st.T}, "
             f"{st.N} sequences per model, seed {st.seed}</p>",
             "<p>To move the controls yourself (cell, H, T, &rho;, activation, initialisation, output t, "
             "truncation K) and watch every view below recomputed live, write the interactive explorer beside "
             "this report: <code>bptt explore --out explorer.html</code>, one offline page.</p>"]

    parts.append("<h2>1. The model</h2><p>The notebook's Elman RNN: z<sub>t</sub> = U x<sub>t</sub> + "
                 "W s<sub>t-1</sub>, s<sub>t</sub> = tanh(z<sub>t</sub>), q<sub>t</sub> = V s<sub>t</sub>, "
                 "o<sub>t</sub> = softmax(q<sub>t</sub>), E = &sum;<sub>t</sub> E<sub>t</sub>.</p>")
    parts.append(_table(["", "value"], [["U", _mat(ex["U"])], ["W", _mat(ex["W"])], ["V", _mat(ex["V"])],
                                         ["x (ids)", escape(str(ex["x"]))], ["y (ids)", escape(str(ex["y"]))],
                                         ["loss E", f"{ex['loss']:.10g}"]], left=(0, 1)))

    T = len(ex["terms"])
    parts.append(f"<h2>2. The derivation, term by term</h2><p>dE<sub>{T - 1}</sub>/dW is a sum of {T} terms; "
                 "term k is the error dE/dq carried back through V, then through W and ds/dz once per step "
                 "between k and the output, times s<sub>k-1</sub>. Each factor below is the real value.</p>")
    parts.append(f"<pre>{escape(ex['explain'])}</pre>")
    parts.append(_img(c, "terms", "bar chart of the terms", "The error reaching step k and the size of step k's "
                      "term. The oldest term is 0 here only because s_-1 = h0 = 0; the error reaching it is not."))

    parts.append("<h2>3. Verification</h2><p>Every gradient against central finite differences "
                 "(<code>bptt.check</code>, float64):</p>")
    parts.append(_table(["parameter", "entries", "max |error|", "max relative error", "result"],
                        [[escape(r["name"]), f"{r['checked']}/{r['total']}", f"{r['max_abs']:.2e}",
                          f"{r['max_rel']:.2e}",
                          '<span class="ok">pass</span>' if r["passed"] else '<span class="bad">FAIL</span>']
                         for r in c.check]))

    parts.append("<h2>4. How far back does the error reach?</h2><p>For each model, W = &rho; &times; a random "
                 "orthogonal matrix. The curves are the mean over outputs t (and sequences) of "
                 "||dE<sub>t</sub>/ds<sub>t-l</sub>|| / ||dE<sub>t</sub>/ds<sub>t</sub>||; dashed lines are the "
                 "bound (&lambda;<sub>1</sub>&gamma;)<sup>l</sup>. The decay rate is the per-step factor fitted "
                 "through the origin on a log scale.</p>")
    for act in st.activations:
        parts.append(_img(c, f"lags_{act}", f"lag curves for {act}", f"{act}: gradient norm against lag."))
    parts.append(_table(
        ["activation", "&rho;", "&lambda;<sub>1</sub>&gamma;", "decay rate (mean &plusmn; sd)",
         "exp(largest Lyapunov exp.)", "saturated", "share beyond lag 10", "bound holds", "theory"],
        [[escape(r["activation"]), f"{r['rho']:g}", f"{r['lambda1_gamma']:.3g}",
          f"{r['decay_mean']:.4g} &plusmn; {r['decay_std']:.2g}", f"{_exp(r['lyap_max_mean'])}",
          f"{100 * r['saturated']:.0f}%", f"{100 * r['beyond10']:.2g}%",
          '<span class="ok">yes</span>' if r["bound_holds"] else '<span class="bad">NO</span>',
          escape(r["verdict"])] for r in c.sweep], left=(0, 8)))

    parts.append("<h2>5. Theory's verdicts</h2><p>From the weights alone (Bengio, Simard &amp; Frasconi 1994; "
                 "Pascanu, Mikolov &amp; Bengio 2013): &lambda;<sub>1</sub> &lt; 1/&gamma; is sufficient for "
                 "vanishing, &lambda;<sub>1</sub> &gt; 1/&gamma; is necessary for exploding. Each cell: the "
                 "verdict and &lambda;<sub>1</sub>&gamma;.</p>")
    parts.append(_verdicts(c.sweep))

    sp = c.spectrum
    parts.append(f"<h2>6. One model in detail ({escape(sp['activation'])}, &rho; = {sp['rho']:g})</h2>")
    parts.append(_img(c, "heatmap", "heatmap of the error table", "log10 ||dE_t/ds_k|| for every output t and step k."))
    parts.append(_img(c, "singular", "singular values against lag", "Singular values of ds_t/ds_(t-l), computed "
                      "with QR re-orthonormalisation (no raw product is formed)."))
    parts.append(f"<p>Across all {sp['T'] - 1} steps, ds<sub>T-1</sub>/ds<sub>0</sub> has singular values from "
                 f"10<sup>{sp['log10_sv_max']:.1f}</sup> down to 10<sup>{sp['log10_sv_min']:.1f}</sup>. "
                 f"The largest Lyapunov exponents are {', '.join(f'{v:.4f}' for v in sp['lyap'])} per step "
                 f"(exp of the first: {_exp(sp['lyap'][0])}); the measured decay rate of this sequence is "
                 f"{sp['decay']:.4f}.</p>")
    parts.append(_img(c, "saturation", "histogram of f'(z)", "Saturated units (f'(z) near 0) pass almost no error "
                      "back, however large W is."))

    cl = c.cliff
    parts.append("<h2>7. The cliff</h2><p>The one-unit network of Pascanu et al. (2013, figure 6): "
                 "x<sub>t</sub> = w &sigma;(x<sub>t-1</sub>) + b, x<sub>0</sub> = 0.5, 50 steps, "
                 "E = (&sigma;(x<sub>50</sub>) - 0.7)<sup>2</sup>.</p>")
    parts.append(_img(c, "cliff", "the cliff", "Left: the loss over (w, b). Right: the cut at b = -2.5, with the "
                      "gradient norm on a log scale."))
    parts.append(f"<p>At b = -2.5 the loss drops from {cl['loss_left']:.3f} to {cl['loss_right']:.3f} across "
                 f"w = {cl['w_wall']:.4f}, where the gradient norm reaches {cl['grad_max']:.3g} "
                 f"(median {cl['grad_median_away']:.2g} further than 0.1 away).</p>")

    if c.cells:
        parts.append(_cells(c))
    if c.approx:
        from . import approx
        parts.append("<h2>9. Approximate gradients against the exact one</h2>")
        parts.append(approx.render(c.approx, lambda name, alt, caption: _img(c, name, alt, caption), _table))
    if c.cures:
        from . import cures
        parts.append(f"<h2>10. {escape(cures.TITLE)}</h2>")
        parts.append(cures.render(c.cures, lambda name, alt, caption: _img(c, name, alt, caption), _table))
    parts.append(f"<h2>{11 if c.cures else 10}. What to conclude</h2><ul>"
                 + "".join(f"<li>{escape(s)}</li>" for s in c.conclusions) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _verdicts(rows) -> str:
    """Section 5 as one table (activations x radii: verdict and lambda_1 gamma), then each distinct
    reason once, quoted from the first model it was given for."""
    acts = list(dict.fromkeys(r["activation"] for r in rows))
    radii = list(dict.fromkeys(r["rho"] for r in rows))
    at = {(r["activation"], r["rho"]): r for r in rows}
    table = _table(["activation"] + [f"&rho; = {rho:g}" for rho in radii],
                   [[escape(a)] + [f"{escape(at[a, rho]['verdict'])} ({at[a, rho]['lambda1_gamma']:.3g})"
                                   if (a, rho) in at else "-" for rho in radii] for a in acts])
    first = {}
    for r in rows:  # one reason per verdict and kind of activation (linear or not)
        first.setdefault((r["verdict"], r["activation"] == "identity"), r)
    why = "".join(f"<li><b>{escape(r['verdict'])}</b> (e.g. {escape(r['activation'])}, &rho; = {r['rho']:g}): "
                  f"{escape(r['reason'])}.</li>" for r in first.values())
    return table + f"<p>Why, in the theory's words:</p><ul>{why}</ul>"


def _cells(c) -> str:
    """Section 8: every registered cell, of the same size, on the same sequences."""
    st, rows = c.settings, c.cells
    lag = rows[0]["lag"]
    labels = _and([escape(r["label"]) for r in rows])
    paths = "; ".join(f"the {escape(r['label'])}'s travels {escape(r['route'])}" for r in rows if "route" in r)
    own = [escape(r["label"]) for r in rows if r.get("own_init")]
    own = f" ({_and(own)}: {'its' if len(own) == 1 else 'their'} own initialisation)" if own else ""
    out = [f"<h2>8. {labels} side by side</h2><p>{len(rows)} networks with H = {st.H} hidden units "
           f"and biases, every weight uniform on &plusmn;1/&radic;H (PyTorch's initialisation){own}, on the same "
           f"{st.N} random sequences of {st.T} steps. For the gated cells s is the hidden output h; the error "
           f"of a cell with a memory path also travels along it at every step back ({paths}).</p>"]
    out.append(_img(c, "cells_lags", "lag curves of the cells",
                    "Mean ||dE_t/ds_(t-l)|| against the lag, log scale (band: +- one standard deviation over "
                    "sequences); dashed: ||dE_t/dc_(t-l)|| of a cell with a cell state c."))
    out.append(_img(c, "cells_heatmaps", "heatmaps of the cells",
                    "log10 ||dE_t/ds_k|| for every output t and step k, one colour scale."))
    out.append(_table(
        ["cell", "parameters", "decay rate (mean &plusmn; sd)", "exp(largest Lyapunov exp.)",
         f"ratio at lag {lag}", f"share beyond lag {lag}", "gates near 0 or 1", "direct path's gate",
         "Pascanu's bound"],
        [[escape(r["label"]), str(r["params"]), f"{r['decay_mean']:.4g} &plusmn; {r['decay_std']:.2g}",
          _exp(r["lyap_max_mean"]), f"{r['ratio_lag']:.3g}", f"{100 * r['beyond']:.2g}%",
          "-" if r["bound_applies"] or not math.isfinite(r["saturated"]) else f"{100 * r['saturated']:.0f}%",
          "-" if "path_gate" not in r else (f"{r['path_gate']}: mean {r['path_gate_mean']:.3g}, "
                                            f"{100 * r['path_near_1']:.0f}% &gt; 0.9"),
          f"applies ({escape(r['verdict'])})" if r["bound_applies"] else
          f"||A||<sub>2</sub><sup>l</sup> with A its transition, rho(A) = {r['rho']:.3g} ({escape(r['verdict'])})"
          if r.get("linear") else
          "does not apply"] for r in rows],
        left=(0, 7, 8)))
    out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in c.cells_text) + "</ul>")
    return "\n".join(out)


def _exp(v):
    return f"{math.exp(v):.4g}" if v < 700 else f"e^{v:.1f}"


def _and(items) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
