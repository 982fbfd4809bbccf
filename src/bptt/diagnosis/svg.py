"""Line charts as inline SVG text: no plotting library, nothing fetched, fast to write.

chart(series, ...) draws one or more curves on a linear or a log-10 y axis. A point that cannot be
drawn is shown, not dropped: on a log axis an exact zero (or a negative value) is a hollow circle
on the bottom edge, a non-finite value (NaN, Inf) on any axis a red cross on the top edge, and the
chart's key says what each mark means. Lines break at such points. Every axis has at least four
ticks, labelled without "-0".
"""
from __future__ import annotations

import math
from html import escape

import numpy as np

WIDTH, HEIGHT = 470, 286
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 30, 70  # margins: tick labels left and below, the key at the bottom
COLORS = ("#1f5fae", "#c2571a", "#2a8a3e", "#8a3ea8", "#6b6b6b")


def label(v) -> str:
    """A tick's label: 3 significant digits, exponents without padding (1e-5), never "-0"."""
    if v == 0 or abs(v) < 1e-300:
        return "0"
    s = f"{v:.3g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return "0" if s in ("-0", "0") else s


def linear_ticks(lo, hi, integer=False):
    """(ticks, lo, hi): at least 4 evenly spaced round ticks (1, 2, 5 times a power of 10), the
    range widened to the first and last of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo and integer:  # one step: the axis runs on from it
        hi = lo + 3
    elif hi <= lo:
        pad = 1.0 if lo == 0 else abs(lo) * 0.5
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    e = math.floor(math.log10(span))
    steps = sorted(m * 10.0 ** k for k in range(e - 3, e + 2) for m in (1, 2, 5))
    if integer:
        steps = [s for s in steps if s >= 1] or [1.0]
    best = steps[0]
    for s in steps:  # the largest step that still gives 5 or more ticks (4 where integer steps cannot)
        if math.floor(hi / s) - math.ceil(lo / s) + 1 >= (4 if integer else 5) or s == steps[0]:
            best = s
    a, b = math.floor(lo / best), math.ceil(hi / best)
    while b - a + 1 < 4:
        b += 1
    ticks = [k * best for k in range(a, b + 1)]
    return ticks, ticks[0], ticks[-1]


def log_ticks(lo, hi):
    """(ticks, lo, hi) for a log axis over positive values lo..hi: the range widened to whole
    decades; ticks at powers of 10 (every few decades over a wide range), or at 1, 2 and 5 times
    them over three decades or fewer; at least 4."""
    if not (lo > 0 and math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        lo, hi = 0.1, 10.0
    a, b = max(math.floor(math.log10(lo)), -323), min(math.ceil(math.log10(hi)), 308)  # 1e-323: the least
    if b - a < 1:                                                                         # double above 0
        b = a + 1
    if b - a <= 3:
        ticks = [m * 10.0 ** k for k in range(a, b) for m in (1, 2, 5)] + [10.0 ** b]
        return ticks, 10.0 ** a, 10.0 ** b
    every = max(1, math.ceil((b - a) / 6))
    a, b = every * math.floor(a / every), every * math.ceil(b / every)
    while 10.0 ** a == 0:  # below the least double: the axis starts at the next tick
        a += every
    while (b - a) // every + 1 < 4:
        every -= 1
    ticks = [10.0 ** k for k in range(a, b + 1, every)]
    return ticks, 10.0 ** a, 10.0 ** b


def _values(series):
    return [np.asarray(s["y"], dtype=np.float64) for s in series]


def chart(series, *, title, xlabel, ylabel, log=False, integer_x=True, ylim=None, note=None) -> str:
    """One SVG chart. series: [{"x": (n,), "y": (n,), "label": str, "dash": bool}]; log: a log-10
    y axis; ylim: (lo, hi) a fixed linear y range; note: a line of text under the key."""
    ys = _values(series)
    xs = [np.asarray(s["x"], dtype=np.float64) for s in series]
    allx = np.concatenate(xs) if xs else np.zeros(0)
    xt, x0, x1 = linear_ticks(float(allx.min()) if allx.size else 0.0, float(allx.max()) if allx.size else 1.0,
                              integer_x)
    ally = np.concatenate(ys) if ys else np.zeros(0)
    fin = ally[np.isfinite(ally)]
    if log:
        pos = fin[fin > 0]
        yt, y0, y1 = log_ticks(float(pos.min()) if pos.size else 0.1, float(pos.max()) if pos.size else 10.0)
        ty = lambda v: math.log10(v)  # noqa: E731
    else:
        lo, hi = ylim if ylim else ((float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0))
        yt, y0, y1 = linear_ticks(lo, hi)
        ty = lambda v: v  # noqa: E731
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    X = lambda v: LEFT + (v - x0) / (x1 - x0) * pw  # noqa: E731
    Y = lambda v: TOP + ph - (ty(v) - ty(y0)) / (ty(y1) - ty(y0)) * ph  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" '
           'font-size="11">',
           f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v in xt:
        px = X(v)
        out.append(f'<line x1="{px:.1f}" y1="{TOP + ph}" x2="{px:.1f}" y2="{TOP + ph + 4}" stroke="#999"/>'
                   f'<text x="{px:.1f}" y="{TOP + ph + 15}" text-anchor="middle" class="xt">{label(v)}</text>')
    for v in yt:
        py = Y(v)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + pw}" y2="{py:.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 5}" y="{py + 4:.1f}" text-anchor="end" class="yt">{label(v)}</text>')
    out.append(f'<text x="{LEFT + pw / 2:.0f}" y="{TOP + ph + 29}" text-anchor="middle">{escape(xlabel)}</text>'
               f'<text transform="translate(13 {TOP + ph / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text>')
    zeros = bad = False
    key = []
    for i, (s, x, y) in enumerate(zip(series, xs, ys)):
        color = s.get("color", COLORS[i % len(COLORS)])
        dash = ' stroke-dasharray="5 3"' if s.get("dash") else ""
        finite = np.isfinite(y)
        shown = finite & (y > 0) if log else finite
        with np.errstate(divide="ignore", invalid="ignore"):
            clipped = np.clip(np.where(shown, y, y0), y0, y1)
        run = []
        for k in range(len(y) + 1):
            if k < len(y) and shown[k]:
                run.append(f"{X(x[k]):.1f},{Y(clipped[k]):.1f}")
                continue
            if len(run) > 1:
                out.append(f'<polyline class="curve" points="{" ".join(run)}" fill="none" stroke="{color}" '
                           f'stroke-width="1.6"{dash}/>')
            elif run:
                cx, cy = run[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            run = []
        for k in np.flatnonzero(finite & ~shown):  # exact zeros (or negatives) on a log axis
            zeros = True
            out.append(f'<circle class="zero" cx="{X(x[k]):.1f}" cy="{TOP + ph - 3}" r="3" fill="white" '
                       f'stroke="{color}"/>')
        for k in np.flatnonzero(~finite):
            bad = True
            px = X(x[k])
            out.append(f'<path class="nonfinite" d="M{px - 3:.1f},{TOP + 1} l6,6 m0,-6 l-6,6" stroke="#b00020" '
                       'stroke-width="1.5"/>')
        key.append((s["label"], color, dash))
    ky = HEIGHT - 22
    kx = LEFT
    for text, color, dash in key:
        out.append(f'<line x1="{kx}" y1="{ky - 4}" x2="{kx + 18}" y2="{ky - 4}" stroke="{color}" stroke-width="1.6"'
                   f'{dash}/><text x="{kx + 22}" y="{ky}">{escape(text)}</text>')
        kx += 30 + 6 * len(text)
    marks = []
    if zeros:
        marks.append("\u25cb exactly 0 (off the log scale)")
    if bad:
        marks.append("\u00d7 not finite (NaN or Inf)")
    if note:
        marks.append(note)
    if marks:
        out.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" fill="#555">{escape("; ".join(marks))}</text>')
    out.append("</svg>")
    return "".join(out)
