"""Every figure the project saves, drawn on small data and measured with matplotlib's own renderer:
PNGs at 150 dpi or more, no text under 8 pt, no two tick labels of an axis overlapping, text on a
heatmap cell at a WCAG contrast ratio of 4.5 or more against that cell, and a diverging colour bar
labelled on both sides of its centre. The measurements are checked to catch the faults they are
for (a raw figure with each fault fails them), so none of them passes by construction."""
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need

ROOT = Path(__file__).resolve().parents[1]
MIN_PT, MIN_DPI, MIN_CONTRAST = 8.0, 150, 4.5


# ---- the measurements ---------------------------------------------------------------------------

def small_texts(fig):
    """(text, size in points) of every visible, non-empty text below MIN_PT."""
    from matplotlib.text import Text
    from bptt import plots

    plots.renderer(fig)
    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_PT]


def colliding_ticks(fig):
    """(axes title, axis name, label a, label b) for every two overlapping tick labels of an axis,
    measured in pixels by the Agg renderer after a full draw (layout included)."""
    from bptt import plots

    r = plots.renderer(fig)
    out = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = plots.tick_labels(axis)
            boxes = [lab.get_window_extent(r) for lab in labels]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if boxes[i].width and boxes[j].width and boxes[i].overlaps(boxes[j]):
                        out.append((ax.get_title(), name, labels[i].get_text(), labels[j].get_text()))
    return out


def wcag_contrast(a, b):
    """The WCAG 2 contrast ratio, computed here from the formula (not with bptt.plots.contrast)."""
    def lum(c):
        c = np.asarray(c, float)[:3]
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def poor_cell_text(fig):
    """(text, contrast) of every text drawn on an image cell whose contrast with the cell is < 4.5."""
    from matplotlib.colors import to_rgb

    bad = []
    for ax in fig.axes:
        for im in ax.get_images():
            rgba = im.to_rgba(im.get_array())
            rows, cols = rgba.shape[:2]
            x0, x1, y0, y1 = im.get_extent()
            for t in ax.texts:
                if not (t.get_visible() and t.get_text().strip()):
                    continue
                x, y = t.get_position()
                col = int(np.floor((x - min(x0, x1)) / abs(x1 - x0) * cols))
                row = int(np.floor((y - min(y0, y1)) / abs(y1 - y0) * rows))
                if not (0 <= row < rows and 0 <= col < cols):
                    continue
                if im.origin == "upper":  # row 0 is drawn at the top: y grows downwards
                    row = row if y1 < y0 else rows - 1 - row
                else:
                    row = row if y1 > y0 else rows - 1 - row
                c = wcag_contrast(to_rgb(t.get_color()), rgba[row, col])
                if c < MIN_CONTRAST:
                    bad.append((t.get_text(), round(c, 2)))
    return bad


def one_sided_colourbars(fig):
    """The labels of diverging colour bars (TwoSlopeNorm) with no tick strictly below or above the centre."""
    from matplotlib.colors import TwoSlopeNorm

    bad = []
    for ax in fig.axes:
        for m in list(ax.get_images()) + list(ax.collections):
            cb = getattr(m, "colorbar", None)
            if cb is None or not isinstance(m.norm, TwoSlopeNorm):
                continue
            n = m.norm
            ticks = np.asarray(cb.get_ticks(), float)
            ticks = ticks[(ticks >= n.vmin) & (ticks <= n.vmax)]
            if not ((ticks < n.vcenter).any() and (ticks > n.vcenter).any()):
                bad.append((cb.ax.get_ylabel(), ticks.tolist()))
    return bad


def png_dpi(path):
    from PIL import Image

    with Image.open(path) as im:
        return min(im.info.get("dpi", (0, 0)))


def assert_readable(fig):
    assert small_texts(fig) == []
    assert colliding_ticks(fig) == []
    assert poor_cell_text(fig) == []
    assert one_sided_colourbars(fig) == []


# ---- the measurements catch the faults they are for --------------------------------------------

@pytest.fixture(scope="module")
def mpl():
    need("matplotlib")
    need("PIL")
    from matplotlib.figure import Figure
    return Figure


def test_the_measurements_fail_on_a_figure_with_each_fault(mpl, tmp_path):
    from matplotlib.colors import TwoSlopeNorm

    fig = mpl(figsize=(4, 3), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.loglog([30, 62], [30, 62])  # less than a decade: minor labels 3x10^1 4x10^1 6x10^1 crowd
    im = a2.imshow([[0.3, 1.0], [1.0, 1.05]], cmap="RdBu_r", norm=TwoSlopeNorm(1.0, 0.3, 1.05))
    a2.text(0, 0, "0.30", ha="center", va="center", fontsize=6, color="black")  # 6 pt, black on navy
    cb = fig.colorbar(im, ax=a2)
    cb.set_ticks([1.0, 1.05])  # nothing below the centre
    fig.savefig(tmp_path / "raw.png", dpi=80)
    assert png_dpi(tmp_path / "raw.png") < MIN_DPI
    assert ("0.30", 6.0) in small_texts(fig)
    assert colliding_ticks(fig)
    assert poor_cell_text(fig) and poor_cell_text(fig)[0][0] == "0.30"
    assert one_sided_colourbars(fig)


def test_the_style_helpers_fix_those_faults(mpl, tmp_path):
    from matplotlib.colors import TwoSlopeNorm
    from bptt import plots

    fig = mpl(figsize=(4, 3), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.loglog([30, 62], [30, 62])
    norm = TwoSlopeNorm(1.0, 0.3, 1.05)
    im = a2.imshow([[0.3, 1.0], [1.0, 1.05]], cmap="RdBu_r", norm=norm)
    a2.text(0, 0, "0.30", ha="center", va="center", fontsize=6, color=plots.cell_text_colour(im.to_rgba(0.3)))
    fig.colorbar(im, ax=a2).set_ticks(plots.diverging_ticks(0.3, 1.0, 1.05))
    path = plots.savefig(fig, tmp_path / "fixed.png", dpi=80)  # a lower dpi asked for is raised
    assert png_dpi(path) >= MIN_DPI
    assert_readable(fig)


@pytest.mark.parametrize("rgb", [(0.02, 0.19, 0.38), (0.4, 0.0, 0.12), (0.5, 0.5, 0.5), (0.7, 0.7, 0.2),
                                 (0.27, 0.0, 0.33), (0.99, 0.91, 0.14), (1, 1, 1), (0, 0, 0), (0.46, 0.46, 0.46)])
def test_cell_text_colour_reads_on_any_cell(rgb):
    from matplotlib.colors import to_rgb
    from bptt import plots

    assert wcag_contrast(to_rgb(plots.cell_text_colour(rgb)), rgb) >= MIN_CONTRAST


def test_diverging_ticks_label_both_halves_inside_the_range():
    from bptt import plots

    for lo, hi in ((0.32, 1.27), (0.99, 1.01), (0.5, 2.0), (0.47, 1.104)):
        t = plots.diverging_ticks(lo, 1.0, hi)
        assert (t < 1).any() and (t > 1).any() and 1.0 in t
        assert t.min() >= lo and t.max() <= hi


# ---- every figure of the project --------------------------------------------------------------

@pytest.fixture(scope="module")
def flows(mpl):
    import bptt
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (3, 24)), rng.integers(0, 5, (3, 24))
    out = {f"rho = {r}": [bptt.flow(bptt.random_rnn(6, 5, 5, seed=1, radius=r), x[i], y[i]) for i in range(3)]
           for r in (0.5, 1.0, 1.5)}
    lstm = bptt.random_gated("lstm", 6, 5, 5, seed=2)
    gru = bptt.random_gated("gru", 6, 5, 5, seed=3)
    out["LSTM"] = [bptt.flow(lstm, x[i], y[i]) for i in range(3)]
    out["GRU"] = [bptt.flow(gru, x[i], y[i]) for i in range(3)]
    return out


def _plots_figures(flows):
    import bptt
    from bptt import plots

    elman = flows["rho = 1.0"][0]
    yield "heatmap", plots.heatmap(elman)
    yield "heatmaps", plots.heatmaps({k: v[0] for k, v in flows.items()}, title="three cells")
    yield "lag_curves", plots.lag_curves({k: flows[k] for k in ("rho = 0.5", "rho = 1.0", "rho = 1.5")})
    yield "cell_lag_curves", plots.cell_lag_curves({k: flows[k] for k in ("rho = 1.0", "LSTM", "GRU")})
    yield "singular_values", plots.singular_values(elman)
    yield "notebook_terms", plots.notebook_terms(bptt.flow(*bptt.seed_example()))
    yield "cliff", plots.cliff(bptt.cliff(np.linspace(2, 8, 41), np.linspace(-5, 0, 41)), b_cut=-2.5)
    yield "saturation", plots.saturation(elman.saturation())
    yield "gate_saturation", plots.saturation(flows["LSTM"][0].saturation())
    from bptt.report.cures import spectrum_figure
    lam = -np.sort(np.random.default_rng(0).exponential(size=(2, 3, 16)), axis=-1)  # (models, N, S) descending
    yield "cures_spectrum", spectrum_figure({"before flossing": lam[0] - 0.5, "after flossing": lam[1]}, k=2)


def _phase_frame(seeds=2):
    pd = need("pandas")
    rows = []
    rng = np.random.default_rng(0)
    for act in ("tanh", "relu"):
        for r in (0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0):
            for T in (100, 200, 500, 1000):
                for s in range(seeds):
                    finite = not (r == 2.0 and T >= 500)
                    rows.append({"key": f"{act}{r}{T}{s}", "spec": "flow-phase", "kind": "flow", "status": "ok",
                                 "seed": s, "activation": act, "radius": r, "length": T, "long_lag": 50,
                                 "finite": finite, "decay_rate": (0.35 + 0.45 * r) if finite else np.nan,
                                 "long_lag_fraction": min(1.0, 10 ** (-18 + 12 * r) * rng.uniform(0.5, 2))
                                 if finite else np.nan})
    df = pd.DataFrame(rows)
    df.attrs["params"] = ["activation", "radius", "length"]
    return df


def _train_frame():
    pd = need("pandas")
    rows = [{"key": f"{m}{T}{s}", "spec": "success-vs-length", "kind": "train", "status": "ok", "seed": s,
             "task": "temporal", "method": m, "length": T, "success": float((s + T // 10 + i) % 2)}
            for i, m in enumerate(("vanilla", "clip", "clip+omega", "irnn")) for T in (10, 20, 30) for s in range(3)]
    df = pd.DataFrame(rows)
    df.attrs["params"] = ["task", "method", "length"]
    return df


def _approx_frame():
    pd = need("pandas")
    rng = np.random.default_rng(1)
    rows = [{"spec": "approx-bias", "kind": "approx", "cell": c, "radius": r, "seed": s,
             **{f"{k}_rel": 10 ** rng.uniform(-16, 0) for k in ("window", "tbptt", "uoro", "snap1", "snap2", "rtrl")}}
            for c in ("elman", "lstm", "gru") for r in (0.5, 1.0, 1.5) for s in range(2)]
    return pd.DataFrame(rows)


def _sweep_figures():
    from bptt.sweep import plots as sweep_plots
    from bptt.approx.figures import sweep_bias

    yield "phase_diagram", sweep_plots.phase_diagram(_phase_frame())
    yield "success_vs_length", sweep_plots.success_vs_length(_train_frame())
    yield "sweep_bias", sweep_bias(_approx_frame())


def _approx_figures():
    import bptt
    from bptt import approx
    from bptt.approx import figures
    from bptt.approx.measure import random_data, random_model

    curves = {}
    for cell in ("elman", "lstm"):
        curves[cell] = {}
        for r in (0.5, 1.5):
            rng = np.random.default_rng(5)
            m = random_model(cell, 4, 3, 3, r, rng)
            x, y = random_data(m, 12, 1, rng)
            curves[cell][f"radius {r:g}"] = approx.window_curve(m, x, y)
    yield "bias_curves", figures.bias_curves(curves["elman"], name="all", title="window bias")
    if hasattr(figures, "bias_by_cell"):
        yield "bias_by_cell", figures.bias_by_cell(curves)
    m = bptt.random_rnn(4, 3, 3, seed=0)
    rng = np.random.default_rng(0)
    yield "uoro_error", figures.uoro_error(m, rng.integers(0, 3, 8), rng.integers(0, 3, 8), ns=(1, 3, 10, 30))[0]


def _scaling_results():
    """Timings shaped like the benchmark's (seconds, bytes); the peak memory spans less than a decade
    on one axis, where log minor labels crowd."""
    out = {}
    for axis, pts in (("T", [(32, T, 128) for T in (25, 50, 100, 200, 400, 800)]),
                      ("H", [(32, 100, H) for H in (32, 64, 128, 256, 512)]),
                      ("N", [(N, 100, 128) for N in (1, 4, 16, 64, 256)])):
        out[axis] = [(p, {"bptt": 1e-3 * (i + 1) ** 2, "floor": 8e-4 * (i + 1) ** 2, "sequential": 5e-4 * (i + 1),
                          "large": 3e-4 * (i + 1) ** 2, "peak_bytes": (30 + 6 * i) * 2**20}) for i, p in enumerate(pts)]
    return out


def _scaling_figure():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import scaling
    finally:
        sys.path.remove(str(ROOT))
    return scaling


def _load(name, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _memory_results():
    """Results shaped like experiments/curse_of_memory.py's: the closed part's rows with Monte Carlo
    estimates near the closed forms, and teacher runs over seven nu0 (one diverged)."""
    from bptt import memory

    rows = []
    for lam in (0.5, 0.9, 0.99, 0.999):
        for rho in (0.0, 0.9):
            cf = memory.closed_forms(lam, rho)
            rows.append({"lam": lam, "rho": rho, "closed": {k: float(v) for k, v in cf.items()},
                         "monte_carlo": {k: {"mean": 1.01 * float(v), "se": 0.01 * float(v)} for k, v in cf.items()}})
    nu0 = [0.36, 0.6, 0.8, 0.9, 0.95, 0.97, 0.99]
    runs = [{"student": k, "nu0": n, "final_loss": None if (k, n) == ("rnn", 0.99) else 10 ** (-5 + 4 * n * (k == "rnn")),
             "curve": [[s, 1.0 / (1 + s)] for s in range(0, 200, 4)]} for k in ("rnn", "lru", "cdiag") for n in nu0]
    return {"closed": {"rows": rows}, "teacher": {"nu0": nu0, "steps": 200, "runs": runs}}


def _memory_figures():
    experiment = _load("curse_of_memory", ROOT / "experiments" / "curse_of_memory.py")
    yield from experiment.figures(_memory_results()).items()


def _success_rows():
    """Rows shaped like experiments/success_vs_length.py's: every method solves T = 10 (equal rates),
    and the rates differ at T = 40."""
    rows = []
    for i, method in enumerate(("vanilla", "clip", "clip+Omega", "IRNN", "LSTM", "GRU", "LRU", "minGRU")):
        for T in (10, 20, 40, 80):
            for seed in range(5):
                ok = T == 10 or (T == 20 and seed < 3) or (T == 40 and seed < i % 5) or (T == 80 and i == 4)
                rows += [{"task": task, "method": method, "T": T, "seed": seed, "success": bool(ok)}
                         for task in ("adding", "temporal")]
    return rows


def _success_figures():
    experiment = _load("success_vs_length", ROOT / "experiments" / "success_vs_length.py")
    yield from experiment.figures(_success_rows()).items()


def test_success_vs_length_shows_every_method_at_its_exact_rate_and_a_legend_off_the_data():
    need("matplotlib")
    from bptt import plots

    rows = _success_rows()
    (fig,) = _load("success_vs_length", ROOT / "experiments" / "success_vs_length.py").figures(rows).values()
    r = plots.renderer(fig)
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    legend = legends[0].get_window_extent(r)
    whole = fig.bbox
    for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text().strip()):
        box = t.get_window_extent(r)
        assert box.x0 >= whole.x0 - 1 and box.x1 <= whole.x1 + 1 and box.y0 >= whole.y0 - 1, t.get_text()
    for ax, task in zip(fig.axes, ("adding", "temporal")):
        assert not legend.overlaps(ax.get_window_extent(r)), "the legend lies on a panel"
        seen = {}
        for line in ax.get_lines():
            method = line.get_label().split(" (")[0]
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                T = min((10, 20, 40, 80), key=lambda t: abs(np.log2(x / t)))
                mine = [row["success"] for row in rows if (row["task"], row["method"], row["T"]) == (task, method, T)]
                assert y == sum(mine) / len(mine), (task, method, T, y)  # the rate itself, not moved
                seen.setdefault(T, []).append(ax.transData.transform((x, y)))
        for T, points in seen.items():  # at T = 10 every rate is 1: each point still its own place on screen
            pts = np.array(points)
            gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 1e9
            assert len(pts) == 8 and gaps.min() >= 3.0, (task, T, gaps.min())


FIGURES = ["plots", "sweep", "approx", "scaling", "memory", "success"]


@pytest.mark.parametrize("group", FIGURES)
def test_every_figure_is_readable_on_a_slide(group, flows, tmp_path):
    from bptt import plots

    if group == "plots":
        figs = list(_plots_figures(flows))
    elif group == "sweep":
        figs = list(_sweep_figures())
    elif group == "approx":
        figs = list(_approx_figures())
    elif group == "memory":
        figs = [(Path(k).stem, v) for k, v in _memory_figures()]
    elif group == "success":
        figs = [(Path(k).stem, v) for k, v in _success_figures()]
    else:
        figs = [("scaling", _scaling_figure().figure(_scaling_results(), "float64"))]
    assert figs
    for name, fig in figs:
        assert small_texts(fig) == [], name
        assert colliding_ticks(fig) == [], name
        assert poor_cell_text(fig) == [], name
        assert one_sided_colourbars(fig) == [], name
        (png,) = plots.save(fig, tmp_path / name, formats=("png",))
        assert png_dpi(png) >= MIN_DPI, name


def test_the_phase_diagram_has_text_on_every_cell_and_a_two_sided_decay_bar(mpl):
    from matplotlib.colors import TwoSlopeNorm
    from bptt.sweep import plots as sweep_plots

    fig = sweep_plots.phase_diagram(_phase_frame())
    cell_texts = [t for ax in fig.axes for t in ax.texts if t.get_text()]
    assert len(cell_texts) == 2 * 2 * 9 * 4  # two metrics, two activations, 9 radii x 4 lengths
    assert {t.get_color() for t in cell_texts} == {"black", "white"}  # chosen per cell
    bars = [m.colorbar for ax in fig.axes for m in ax.get_images() if m.colorbar is not None]
    assert any(isinstance(cb.mappable.norm, TwoSlopeNorm) for cb in bars)


def test_the_scaling_figure_is_saved_at_150_dpi_and_redrawn_from_records(tmp_path):
    need("matplotlib")
    need("PIL")
    scaling = _scaling_figure()
    res = _scaling_results()
    records = [{"part": "scaling", "axis": a, "N": p[0], "T": p[1], "H": p[2], "dtype": "float64", **m}
               for a, rows in res.items() for p, m in rows]
    assert scaling.from_records(records, "float64") == res
    scaling.plot(res, tmp_path / "scaling-float64.png", "float64")
    assert png_dpi(tmp_path / "scaling-float64.png") >= MIN_DPI


def test_a_sweeps_figure_is_named_after_its_spec():
    from bptt.sweep.plots import figure_name

    pd = need("pandas")
    df = pd.DataFrame({"kind": ["flow", "flow"], "spec": ["flow-cells", "flow-cells"]})
    assert figure_name(df, "flow") == "flow-cells"
    both = pd.DataFrame({"kind": ["flow", "train"], "spec": ["mixed", "mixed"]})
    assert figure_name(both, "flow") == "mixed-flow" and figure_name(both, "train") == "mixed-train"


def test_the_figures_written_into_the_repository_are_at_150_dpi():
    need("PIL")
    files = [ROOT / "docs" / "analysis-lags.png", ROOT / "docs" / "analysis-cliff.png",
             ROOT / "docs" / "memory-closed.png", ROOT / "docs" / "memory-teacher.png",
             *sorted((ROOT / "benchmarks" / "results").glob("scaling-*.png")),
             *sorted((ROOT / "sweeps" / "figures").glob("*.png"))]
    low = {str(f.relative_to(ROOT)): png_dpi(f) for f in files if f.exists() and png_dpi(f) < MIN_DPI - 0.5}
    assert files and low == {}


def test_the_docs_figures_are_drawn_again_to_the_same_bytes_without_a_date_or_a_version():
    """docs/generate.py --write draws docs/memory-*.png from the results file: twice the same bytes,
    at 150 dpi, and no text chunk that names a time or matplotlib's version."""
    need("matplotlib")
    generate = _load("docs_generate", ROOT / "docs" / "generate.py")
    first, second = generate.drawn(), generate.drawn()
    assert first and first == second
    for path, data in first.items():
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path
        for word in (b"Software", b"Creation", b"Date", b"matplotlib"):
            assert word not in data, (path, word)


# ---- the report -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(mpl):
    """The quick report's Content (titles of the saturation figure recorded) and its HTML."""
    from bptt import plots
    from bptt.report.content import Settings, gather
    from bptt.report.html import render

    titles = []
    original = plots.saturation

    def recording(sat, bins=20, title=None):
        titles.append(title)
        return original(sat, bins=bins, title=title)

    plots.saturation = recording
    try:
        c = gather(Settings.quick(), progress=False)
    finally:
        plots.saturation = original
    return c, titles, render(c)


def test_the_reports_detail_section_and_its_histogram_show_the_same_rho(report):
    import re

    c, titles, html = report
    heading = re.search(r"<h2>6\. One model in detail \((\w+), &rho; = ([0-9.]+)\)</h2>", html)
    assert heading and titles
    assert heading.group(1) == c.spectrum["activation"]
    assert float(heading.group(2)) == c.spectrum["rho"]
    assert f"rho = {c.spectrum['rho']:g}" in titles[-1]


def test_the_reports_figures_are_svg_and_its_verdicts_a_table(report):
    import base64
    import re

    c, _, html = report
    assert all(v.lstrip().startswith(b"<?xml") and b"<svg" in v[:2000] for v in c.figures.values())
    imgs = re.findall(r'<img src="data:([a-z+/]+);base64,([A-Za-z0-9+/=]+)"', html)
    assert imgs and {m for m, _ in imgs} == {"image/svg+xml"}
    assert all(b"<svg" in base64.b64decode(d)[:2000] for _, d in imgs)
    s5 = html[html.index("<h2>5."):html.index("<h2>6.")]
    assert s5.count("<table>") == 1 and s5.count("<tr>") == 1 + len(c.settings.activations)
    assert s5.count("<li>") < len(c.sweep)  # each distinct reason once, not one bullet per model
    assert "white-space: nowrap" in html


def test_the_reports_lag_panels_are_scaled_to_the_data_not_the_bounds(flows):
    from bptt import plots

    fig = plots.lag_curves({k: flows[k] for k in ("rho = 0.5", "rho = 1.5")})
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    solid = np.concatenate([ln.get_ydata() for ln in ax.get_lines() if ln.get_linestyle() == "-"])
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_ydata())]
    assert dashed and all(ln.get_clip_on() for ln in dashed)
    assert max(ln.get_ydata().max() for ln in dashed) > hi  # a bound leaves the panel, and is clipped there
    solid = solid[np.isfinite(solid) & (solid > 0)]
    assert hi <= 10 * solid.max() * (1 + 1e-9) and lo >= solid.min() / 10 * (1 - 1e-9)
