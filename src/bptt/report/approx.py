"""The report's section on approximate gradients: how wrong the notebook's window, TBPTT, UORO and
SnAp are against the exact gradient, per cell and spectral radius (bptt.approx). Every number comes
from running bptt here; html.py lays the section out with render()."""
from __future__ import annotations

from html import escape

import numpy as np

DELTA = 0.01  # the tolerance of the smallest window quoted


def cells() -> list:
    """(name, label) of each of the package's cells: the Elman cell labelled with its activation."""
    from .. import cells as registry

    return [(n, registry.get(n).label + (" (tanh)" if "activation" in registry.get(n).settings else ""))
            for n in registry.names() if registry.get(n).__module__.startswith("bptt.cells.")]  # the package's


def gather(st, figure) -> dict:
    """The section's numbers and figures for settings st (H, T, N, D, radii, seed); figure(fig) -> what
    the report stores for a figure. Returns {"smallest", "methods", "uoro", "figures", "text"}."""
    from .. import approx
    from ..approx import figures
    from ..approx.measure import measure, random_data, random_model, rescalable

    curves, smallest, methods = {}, [], []
    for cell, label in cells():
        curves[label] = {}
        for r in st.radii if rescalable(cell) else (None,):  # None: a cell without W, its own initialisation
            rng = np.random.default_rng(st.seed + 900)  # one draw per cell: only W's scale changes with r
            model = random_model(cell, st.H, st.D, st.D, 1.0 if r is None else r, rng)
            x, y = random_data(model, st.T, st.N, rng)
            c = approx.window_curve(model, x, y)
            curves[label][f"radius {r:g}" if r is not None else "its own initialisation"] = c
            smallest.append({"cell": label, "radius": r, "K": c.smallest_window(DELTA),
                             "rel5": float(c.bias.rel["all"][min(5, st.T)])})
            if r is None or r == 1.0 or (1.0 not in st.radii and r == st.radii[len(st.radii) // 2]):
                one = (x, y) if st.N == 1 else (x[0], y[0])  # forward mode costs S^2 P a step: one sequence
                res = measure(model, *one, windows=(5,), rules=((5, 10),), samples=100, seed=st.seed, delta=DELTA)
                methods.append({"cell": label, "radius": r, "rows": res["methods"]})
    rng = np.random.default_rng(st.seed + 901)
    model = random_model("rnn", st.H, st.D, st.D, 1.0, rng)
    x, y = random_data(model, st.T, 1, rng)
    ns = [n for n in (1, 3, 10, 30, 100, 300, 1000) if n <= 1000]
    fig, uoro = figures.uoro_error(model, x, y, ns=ns, seed=st.seed)
    slope = float(np.polyfit(np.log(uoro["n"]), np.log(uoro["rel"]), 1)[0])
    out = {"smallest": smallest, "methods": methods, "uoro": {**uoro, "slope": slope},
           "figures": {"approx_bias": figure(figures.bias_by_cell(curves)), "approx_uoro": figure(fig)}}
    out["text"] = _sentences(st, out)
    return out


def _sentences(st, a) -> list[str]:
    by = {(s["cell"], s["radius"]): s for s in a["smallest"]}
    lo, hi = min(st.radii), max(st.radii)
    out = []
    for _, label in cells():
        if (label, None) in by:  # a cell without W: one model
            one = by[(label, None)]
            out.append(f"{label} (no W to rescale; its own initialisation): a window within {100 * DELTA:g}% of the "
                       f"exact gradient needs K = {one['K']} (of T = {st.T}); the window K = 5 is off by "
                       f"{one['rel5']:.2g}.")
            continue
        out.append(f"{label}: a window within {100 * DELTA:g}% of the exact gradient needs K = "
                   f"{by[(label, lo)]['K']} at radius {lo:g} and K = {by[(label, hi)]['K']} at radius {hi:g} "
                   f"(of T = {st.T}); the window K = 5 is off by {by[(label, lo)]['rel5']:.2g} and "
                   f"{by[(label, hi)]['rel5']:.2g}.")
    u = a["uoro"]
    out.append(f"UORO is unbiased but noisy: the mean of n estimates is off by {u['rel'][0]:.3g} at n = 1 and "
               f"{u['rel'][-1]:.3g} at n = {u['n'][-1]}; log error against log n has slope {u['slope']:.2f} "
               "(an unbiased mean's is -0.5).")
    for m in a["methods"]:
        rows = {r["method"]: r for r in m["rows"]}
        s1, rt = rows["SnAp-1"]["all"]["rel"], rows["RTRL"]["all"]["rel"]
        at = "its own initialisation" if m["radius"] is None else f"radius {m['radius']:g}"
        out.append(f"{m['cell']}, {at}: SnAp-1 (the influence of each parameter on its own "
                   f"unit only) is off by {s1:.3g}; RTRL, exact, by {rt:.1g} (rounding).")
    return out


def render(a, img, table) -> str:
    """The section's HTML; img(name, alt, caption) and table(head, rows, left) are html.py's."""
    parts = ["<p>The notebook's <code>bptt_truncate</code> is one way of approximating the gradient; "
             "truncated BPTT, real-time recurrent learning (RTRL) and its cheap estimators (UORO, SnAp) are "
             "others. Each is measured here against the exact gradient: the relative error "
             "||g<sub>R</sub> &minus; g|| / ||g|| of all parameters together, the same random draw per cell with "
             "each H &times; H block of W rescaled to the spectral radius (a cell without W: its own "
             "initialisation, radius -).</p>",
             img("approx_bias", "the window's relative bias against K, per cell and radius",
                 "The notebook's window K: relative bias of the gradient against K, one line per spectral "
                 "radius (a line ends where the bias is exactly 0, at K = T)."),
             table(["cell", "radius", f"smallest K within {100 * DELTA:g}%", "bias at K = 5"],
                   [[escape(s["cell"]), "-" if s["radius"] is None else f"{s['radius']:g}", str(s["K"]),
                     f"{s['rel5']:.2e}"] for s in a["smallest"]],
                   left=(0,))]
    for m in a["methods"]:
        at = "from its own initialisation" if m["radius"] is None else f"at radius {m['radius']:g}"
        parts.append(f"<p>Every method on the {escape(m['cell'])} {at} (its first sequence):</p>")
        parts.append(table(["method", "relative error", "cosine"],
                           [[escape(r["method"]), _num(r["all"]["rel"], ".2e"), _num(r["all"]["cos"], ".4f")]
                            for r in m["rows"]], left=(0,)))
    parts.append(img("approx_uoro", "UORO's error against the number of estimates averaged",
                     "UORO: the relative error of the mean of n estimates against n, beside sqrt(v/n)/||g|| "
                     "from the estimates' own variance."))
    parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in a["text"]) + "</ul>")
    return "\n".join(parts)


def _num(v, fmt):
    return "-" if v is None else format(v, fmt)
