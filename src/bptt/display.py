"""Rich displays for Jupyter: the HTML, with a small SVG heatmap, that bptt's objects show in a notebook.

Each class a user looks at (the models, core.Trace, Flow, CheckReport, frameworks.Comparison, the
training summary, sweep's SweepSummary) has a `_repr_html_` of a few lines that calls one function
here; its plain-text repr stays as it was. Everything is built from the object's own attributes.

Conventions of the HTML:
- every number shown sits in an element with `data-key` (what it is: "W[0, 1]", "loss",
  "ratio_mean[10]", "dE_ds[5, 3]") and `data-value` (the number in full, Python's repr of the
  float), and its text is the same number rounded for reading (`number`, 4 significant digits);
  text entries carry `data-key` alone. So what a cell shows can be read back and checked.
- all text is escaped with html.escape; nothing is fetched, no script runs.
- the heatmap of a Flow is SVG written here (no matplotlib): log10 ||dE_t/ds_k|| over outputs t
  (rows) and steps k (columns), viridis colours, at most BINS x BINS cells (a cell of a long
  sequence shows the largest entry of its block of (t, k)), each with a <title> giving its value.
"""
from __future__ import annotations

import html
import math

import numpy as np

DIGITS = 4           # significant digits shown
MAX_ENTRIES = 36     # a parameter with at most this many entries is shown whole
MAX_ROWS = 12        # steps of a trace shown (the first and the last half of them)
MAX_VECTOR = 8       # a state longer than this is shown by its norm
BINS = 32            # the heatmap's cells per side, at most
VIRIDIS = ((0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)),
           (1.0, (253, 231, 37)))
STYLE = "border-collapse:collapse;margin:2px 0"
NUM_STYLE = "text-align:right;font-family:monospace;padding:1px 6px"
PAIR_STYLE = "text-align:left;font-family:monospace;padding:1px 6px"  # a number beside its name


def esc(text) -> str:
    """text as HTML (html.escape of str(text), quotes included)."""
    return html.escape(str(text), quote=True)


def number(v, digits=DIGITS) -> str:
    """A number for reading: integers whole, floats to `digits` significant digits, nan/inf by name."""
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, f".{digits}g")


def _full(v) -> str:
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    return repr(float(v))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def value(v, key=None, tag="span", digits=DIGITS, style=NUM_STYLE) -> str:
    """One value as an element: a number gets data-value and the style; text is escaped."""
    attrs = f' data-key="{esc(key)}"' if key is not None else ""
    if _is_number(v):
        return f'<{tag}{attrs} data-value="{_full(v)}" style="{style}">{esc(number(v, digits))}</{tag}>'
    return f"<{tag}{attrs}>{esc(number(v) if isinstance(v, (bool, np.bool_)) or v is None else v)}</{tag}>"


class Raw(str):
    """HTML already built (a matrix, an SVG) to put in a table cell as it is."""


def table(header, rows, *, keys=None, caption=None, style=NUM_STYLE) -> str:
    """An HTML table. header: column titles (None: none); rows: lists of values (numbers, text or Raw HTML);
    keys: the same shape as rows, the data-key of each cell (None for a cell without one); style: of the
    numbers' cells."""
    out = [f'<table class="bptt" style="{STYLE}">']
    if caption:
        out.append(f'<caption style="caption-side:top;text-align:left">{esc(caption)}</caption>')
    if header is not None:
        out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            key = keys[i][j] if keys is not None else None
            cells.append(f"<td>{v}</td>" if isinstance(v, Raw) else value(v, key, tag="td", style=style))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def pairs(items, *, caption=None) -> str:
    """A two-column table of (name, value) pairs; each value's data-key is its name."""
    items = list(items)
    return table(None, [(Raw(f"<b>{esc(k)}</b>"), v) for k, v in items],
                 keys=[(None, k) for k, _ in items], caption=caption, style=PAIR_STYLE)


def matrix(a, name, digits=DIGITS) -> str:
    """A small array as a bracketed grid: (n,) one row, (m, n) m rows; entry keys name[i] / name[i, j]."""
    a = np.asarray(a)
    rows = a.reshape(1, -1) if a.ndim == 1 else a
    body = []
    for i, r in enumerate(rows):
        cells = "".join(value(v.item(), f"{name}[{j}]" if a.ndim == 1 else f"{name}[{i}, {j}]", "td", digits)
                        for j, v in enumerate(r))
        body.append(f"<tr>{cells}</tr>")
    style = "display:inline-table;border-collapse:collapse;border-left:1px solid;border-right:1px solid"
    return Raw(f'<table class="bptt-matrix" style="{style}">{"".join(body)}</table>')


def section(title, *parts) -> str:
    """The frame of every display: a bold title line, then the parts (HTML strings) one under another."""
    inner = "".join(f"<div>{p}</div>" for p in parts if p)
    return f'<div class="bptt-repr"><div><b>{esc(title)}</b></div>{inner}</div>'


# --- the heatmap ---------------------------------------------------------------------------------
def colour(f) -> str:
    """The viridis colour at f in [0, 1] (linear between five of its points), as #rrggbb."""
    f = min(max(float(f), 0.0), 1.0)
    for (f0, c0), (f1, c1) in zip(VIRIDIS, VIRIDIS[1:]):
        if f <= f1:
            w = 0.0 if f1 == f0 else (f - f0) / (f1 - f0)
            return "#" + "".join(f"{round(a + w * (b - a)):02x}" for a, b in zip(c0, c1))
    return "#%02x%02x%02x" % VIRIDIS[-1][1]


def block_max(a, bins=BINS):
    """(edges, M): edges (n + 1,) cut 0..T into n = min(T, bins) blocks, M (n, n) the largest entry of
    each block of the (T, T) table a (no (T, T) temporary)."""
    T = a.shape[0]
    edges = np.linspace(0, T, min(T, bins) + 1).round().astype(int)
    M = np.maximum.reduceat(np.maximum.reduceat(np.asarray(a, dtype=np.float64), edges[:-1], axis=0),
                            edges[:-1], axis=1)
    return edges, M


def heatmap_svg(a, *, name="dE_ds", label="log10 ||dE_t/ds_k||", bins=BINS, size=200) -> str:
    """log10 of a lower-triangular (T, T) table of norms as SVG: rows t, columns k, a colour bar.
    Zero entries (above the diagonal, or an output without a loss) are left blank."""
    T = a.shape[0]
    edges, M = block_max(a, bins)
    n = len(edges) - 1
    pos = M[np.isfinite(M) & (M > 0)]
    if pos.size == 0:
        return f"<span>{esc(label)}: every entry is 0</span>"
    lo, hi = float(np.log10(pos.min())), float(np.log10(pos.max()))
    span = hi - lo if hi > lo else 1.0
    cw, left, top = size / n, 34, 16
    parts = []
    for i in range(n):
        for j in range(n):
            v = float(M[i, j])
            if not (np.isfinite(v) and v > 0):
                continue
            t0, t1, k0, k1 = edges[i], edges[i + 1] - 1, edges[j], edges[j + 1] - 1
            where = f"t = {t0}, k = {k0}" if (t0, k0) == (t1, k1) else f"t = {t0}..{t1}, k = {k0}..{k1}, largest"
            key = f"{name}[{t0}, {k0}]" if (t0, k0) == (t1, k1) else f"{name}[{t0}:{t1 + 1}, {k0}:{k1 + 1}]"
            fill = colour((np.log10(v) - lo) / span)
            parts.append(f'<rect x="{left + j * cw:.2f}" y="{top + i * cw:.2f}" width="{cw:.2f}" '
                         f'height="{cw:.2f}" fill="{fill}" data-key="{esc(key)}" data-value="{_full(v)}">'
                         f"<title>{esc(where)}: {esc(number(v))}</title></rect>")
    bar_y = top + size + 22
    stops = "".join(f'<stop offset="{f}" stop-color="{colour(f)}"/>' for f, _ in VIRIDIS)
    W, H = left + size + 8, bar_y + 26
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="10">',
           f'<defs><linearGradient id="bptt-viridis">{stops}</linearGradient></defs>',
           f'<text x="{left}" y="11">step k: 0 .. {T - 1}</text>',
           f'<text x="10" y="{top + size / 2}" transform="rotate(-90 10 {top + size / 2})" '
           f'text-anchor="middle">output t: 0 .. {T - 1}</text>',
           f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
           *parts,
           f'<rect x="{left}" y="{bar_y - 10}" width="{size}" height="8" fill="url(#bptt-viridis)"/>',
           f'<text x="{left}" y="{bar_y + 10}" data-key="{name}.log10_min" data-value="{lo!r}">{number(lo)}</text>',
           f'<text x="{left + size}" y="{bar_y + 10}" text-anchor="end" data-key="{name}.log10_max" '
           f'data-value="{hi!r}">{number(hi)}</text>',
           f'<text x="{left + size / 2}" y="{bar_y + 22}" text-anchor="middle">{esc(label)}</text>',
           "</svg>"]
    return Raw("".join(svg))


# --- the objects ---------------------------------------------------------------------------------
def model_html(model) -> str:
    """A model: its repr, each parameter's shape, norm, min, max (and its entries when small); for an
    Elman cell rho(W) and lambda_1 = ||W||_2, the numbers of Pascanu's bound."""
    rows, keys = [], []
    for k, a in model.params.items():
        a64 = np.asarray(a, dtype=np.float64)
        entries = matrix(a, k) if a.size <= MAX_ENTRIES else Raw("")
        rows.append([Raw(f"<b>{esc(k)}</b>"), "x".join(map(str, a.shape)), float(np.linalg.norm(a64)),
                     float(a64.min()), float(a64.max()), entries])
        keys.append([None, f"shape({k})", f"norm({k})", f"min({k})", f"max({k})", None])
    parts = [table(("param", "shape", "||.||", "min", "max", "entries"), rows, keys=keys)]
    if model.cell.pascanu and model.H <= 512:
        W = np.asarray(model.W, dtype=np.float64)
        parts.append(pairs([("rho(W)", float(np.max(np.abs(np.linalg.eigvals(W))))),
                            ("lambda_1 = ||W||_2", float(np.linalg.norm(W, 2)))]))
    return section(repr(model), *parts)


def _vector(v, name):
    v = np.asarray(v)
    if v.size <= MAX_VECTOR:
        return matrix(v, name)
    return Raw(value(float(np.linalg.norm(v.astype(np.float64))), f"norm({name})") + " (norm)")


def _shown_steps(T):
    if T <= MAX_ROWS:
        return list(range(T))
    h = MAX_ROWS // 2
    return list(range(h)) + [None] + list(range(T - h, T))


def trace_html(trace) -> str:
    """A forward trace: per step t the input, the state s_t, q_t and o_t (sequence 0 of a batch; the
    first and last steps of a long one), and the initial state s_-1."""
    tr, model = trace, trace.model
    xin = tr.inputs
    S, Q = tr.S[:, 0], tr.Q[:, 0]  # (T+1, H), (T, O): sequence 0
    O = np.exp(tr.Q[:, 0] - np.logaddexp.reduce(tr.Q[:, 0], axis=-1, keepdims=True)) if model.head == "softmax" else None
    T = Q.shape[0]
    header = ["t", "x_t", "s_t", "q_t"] + (["o_t"] if O is not None else [])
    rows = [[-1, "", _vector(S[0], "s_-1"), "", ""][:len(header)]]
    keys = [[None] * len(header)]
    for t in _shown_steps(T):
        if t is None:
            rows.append(["..."] + [""] * (len(header) - 1))
            keys.append([None] * len(header))
            continue
        x = int(xin.ids[0, t]) if xin.ids is not None else _vector(xin.X[0, t], f"x_{t}")
        row = [t, x, _vector(S[t + 1], f"s_{t}"), _vector(Q[t], f"q_{t}")]
        if O is not None:
            row.append(_vector(O[t], f"o_{t}"))
        rows.append(row)
        keys.append([None, f"x_{t}" if xin.ids is not None else None] + [None] * (len(header) - 2))
    which = f"sequence 0 of N = {xin.N}, " if xin.batched else ""
    title = f"Trace: T = {T} steps, {which}H = {model.H}; {model!r}"
    state = "s_t is h_t; the cell state c_t is in .cell_states[1]" if len(tr.cell_states) > 1 else ""
    return section(title, table(header, rows, keys=keys), esc(state))


def _shown_lags(T):
    lags = [l for l in (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if l < T]
    return lags + ([T - 1] if T - 1 not in lags else [])


def flow_html(fl) -> str:
    """A Flow: loss, the error of the last output at its own step and at step 0, decay rate, Pascanu's
    lambda_1 gamma and verdict (Elman); the lag table of by_lag at a few lags; the dE_ds heatmap."""
    T = fl.T
    try:
        decay = fl.decay_rate()
    except ValueError:
        decay = None
    items = [("cell", fl.cell), ("T", T), ("loss", float(fl.loss)),
             (f"||dE_{T - 1}/ds_{T - 1}||", float(fl.dE_ds[T - 1, T - 1])),
             (f"||dE_{T - 1}/ds_0||", float(fl.dE_ds[T - 1, 0])),
             ("decay rate per step", decay)]
    if fl.trace.model.cell.pascanu:  # Pascanu's bound is for Elman cells only
        th = fl.theory()
        items += [("lambda_1 gamma", float(th.growth)), ("verdict", th.verdict)]
    prof = fl.by_lag()
    rows, keys = [], []
    for l in _shown_lags(T):
        vals = (int(prof.count[l]), float(prof.norm_mean[l]), float(prof.ratio_mean[l]), float(prof.beyond[l]))
        rows.append([l, *vals])
        keys.append([None, f"count[{l}]", f"norm_mean[{l}]", f"ratio_mean[{l}]", f"beyond[{l}]"])
    lag_table = table(("lag l", "outputs", "mean ||dE_t/ds_t-l||", "ratio to lag 0", "share beyond l"), rows,
                      keys=keys, caption="by lag (Flow.by_lag): 'share beyond l' is what truncate=l drops")
    title = f"Flow: the gradient of one sequence by output t and step k; {fl.trace.model!r}"
    return section(title, f'<div style="display:flex;gap:16px;align-items:flex-start"><div>{pairs(items)}'
                          f"{lag_table}</div><div>{heatmap_svg(fl.dE_ds)}</div></div>")


def check_html(report) -> str:
    """A CheckReport: loss, tol, and per parameter the entries checked, max errors, step and result."""
    rows = [[Raw(f"<b>{esc(r.name)}</b>"), r.checked, r.total, r.max_abs, r.max_rel, r.step,
             "pass" if r.passed else "FAIL", r.kinks] for r in report.rows]
    keys = [[None] + [f"{r.name}.{f}" for f in ("checked", "total", "max_abs", "max_rel", "step", "result",
                                                 "kinks")] for r in report.rows]
    verdict = "passed" if report.passed else "FAILED"
    head = pairs([("loss", float(report.loss)), ("tol", float(report.tol)), ("result", verdict)])
    body = table(("param", "checked", "of", "max abs err", "max rel err", "step", "result", "relu kinks"),
                 rows, keys=keys)
    return section("Gradient check: five-point finite differences, float64", head, body)


def comparison_html(cmp) -> str:
    """A frameworks.Comparison: per framework and quantity the max abs and rel errors and the result."""
    rows = [[r.framework, Raw(f"<b>{esc(r.quantity)}</b>"), r.max_abs_err, r.max_rel_err,
             "ok" if r.passed else "FAIL"] for r in cmp.rows]
    keys = [[None, None] + [f"{r.framework}.{r.quantity}.{f}" for f in ("max_abs_err", "max_rel_err", "result")]
            for r in cmp.rows]
    head = pairs([("result", "passed" if cmp.passed else f"FAILED ({len(cmp.failures())} of {len(cmp.rows)})"),
                  ("truncate", "full BPTT" if cmp.truncate is None else cmp.truncate),
                  ("reduction", cmp.reduction), ("rtol", float(cmp.rtol))])
    body = table(("framework", "quantity", "max abs err", "max rel err", ""), rows, keys=keys)
    return section("bptt against the frameworks' autodiff (float64)", head, body)


def summary_html(title, items) -> str:
    """A summary as (name, value) pairs under a title: the training summary, SweepSummary."""
    return section(title, pairs(items))


def train_summary_html(s) -> str:
    """The summary train() returns (summary.json): every key and its value."""
    verdict = "solved" if s.get("test_success") else "not solved"
    title = f"Training run: {s.get('task')}, {s.get('cell')} cell, {s.get('steps')} steps, {verdict}"
    return summary_html(title, [(k, v if _is_number(v) or v is None or isinstance(v, (bool, np.bool_)) else str(v))
                                for k, v in s.items()])


def sweep_summary_html(s) -> str:
    """A SweepSummary: the counts of points and where the results are."""
    names = ("total", "skipped", "ok", "failed", "lost", "pending", "failed_total", "seconds", "run_id")
    return summary_html(f"Sweep run {s.run_id}: {s.total} points in {s.out}",
                        [(k, getattr(s, k)) for k in names] + [("out", str(s.out))])
