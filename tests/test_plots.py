"""Figures draw the numbers of the analysis, and save as PNG and SVG."""
import numpy as np
import pytest
from conftest import need

import bptt
from bptt.theory import cliff


@pytest.fixture(scope="module")
def plots():
    need("matplotlib")
    from bptt import plots
    return plots


def _flow(rho, activation="tanh", T=25, seed=0):
    m = bptt.random_rnn(6, 4, 4, seed=seed, init="orthogonal", radius=rho, activation=activation)
    r = np.random.default_rng(seed)
    return bptt.flow(m, r.integers(0, 4, T), r.integers(0, 4, T))


def test_lag_curves_draw_each_model_and_its_bound(plots, tmp_path):
    a, b = _flow(0.5), [_flow(1.5, seed=s) for s in range(3)]
    fig = plots.lag_curves({"a": a, "b": b})
    lines = fig.axes[0].get_lines()
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--" and len(ln.get_ydata())]
    assert np.allclose(solid[0].get_ydata(), a.by_lag().ratio_mean)
    assert np.allclose(solid[1].get_ydata(), np.mean([f.by_lag().ratio_mean for f in b], 0))
    th = a.theory()
    assert np.allclose(dashed[0].get_ydata(), th.growth ** np.arange(a.T))
    assert fig.axes[0].get_yscale() == "log"
    files = plots.save(fig, tmp_path / "lag")
    assert [p.suffix for p in files] == [".png", ".svg"]
    img = need("matplotlib.image").imread(files[0])
    assert img.shape[0] > 300 and img.shape[1] > 500 and img[..., :3].std() > 0.05
    assert files[1].read_text().lstrip().startswith("<?xml") and "<svg" in files[1].read_text()


def test_heatmap_is_log10_of_the_error_table(plots):
    fl = _flow(1.1)
    fig = plots.heatmap(fl)
    data = fig.axes[0].get_images()[0].get_array()
    low = np.tril(np.ones((fl.T, fl.T), bool))
    assert np.allclose(np.asarray(data)[low], np.log10(fl.dE_ds[low]))
    assert np.asarray(data.mask)[~low].all()


def test_notebook_terms_are_the_term_norms(plots):
    m, x, y = bptt.seed_example()
    fl = bptt.flow(m, x, y)
    fig = plots.notebook_terms(fl)
    heights = [p.get_height() for p in fig.axes[0].patches]
    terms = np.linalg.norm(fl.terms("W", 2).reshape(3, -1), axis=1)[::-1]
    assert np.allclose(heights[3:], terms)
    assert heights[0] > heights[1] > heights[2]  # the error shrinks as it goes back


def test_singular_values_and_saturation_figures(plots, tmp_path):
    fl = _flow(1.3, T=20)
    fig = plots.singular_values(fl, lags=[0, 5, 10])
    top = fig.axes[0].get_lines()[0].get_ydata()
    assert np.allclose(top, [fl.jacobian_spectrum(19, 19 - l)[0] / np.log(10) for l in (0, 5, 10)])
    fig = plots.saturation(fl.saturation(), bins=10)
    assert np.isclose(sum(p.get_height() for p in fig.axes[0].patches), 1.0)
    assert all(p.exists() for p in plots.save(fig, tmp_path / "sat", formats=("png",)))
    with pytest.raises(ValueError, match="format must be"):
        plots.save(fig, tmp_path / "x", formats=("bmp",))


def test_cliff_figure_cut_is_the_loss_along_w(plots):
    c = cliff(np.linspace(3, 7, 201), np.linspace(-4, -1, 31))
    fig = plots.cliff(c, b_cut=-2.5)
    j = int(np.argmin(np.abs(c.b + 2.5)))
    assert np.allclose(fig.axes[1].get_lines()[0].get_ydata(), c.loss[j])
    assert np.asarray(fig.axes[0].get_images()[0].get_array()).shape == (31, 201)


def _gated_flows(T=20, seed=0):
    from bptt.model import random_gated

    r = np.random.default_rng(seed)
    x, y = r.integers(0, 4, T), r.integers(0, 4, T)
    elman = bptt.random_rnn(5, 4, 4, seed=seed)
    return {"Elman": bptt.flow(elman, x, y), "LSTM": bptt.flow(random_gated("lstm", 5, 4, 4, seed=seed), x, y),
            "GRU": bptt.flow(random_gated("gru", 5, 4, 4, seed=seed), x, y)}


def test_cell_lag_curves_draw_the_mean_error_and_the_lstms_cell_state(plots):
    fls = _gated_flows()
    two = [_gated_flows(seed=s)["GRU"] for s in (1, 2)]
    fig = plots.cell_lag_curves({**fls, "GRU x2": two})
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_ydata())]
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(solid) == 4 and len(dashed) == 1  # only the LSTM has a cell state
    for ln, fl in zip(solid, fls.values()):
        assert np.allclose(ln.get_ydata(), fl.by_lag().norm_mean)
    assert np.allclose(solid[3].get_ydata(), np.mean([f.by_lag().norm_mean for f in two], 0))
    assert np.allclose(dashed[0].get_ydata(), fls["LSTM"].by_lag().c_mean[1:])
    assert fig.axes[0].get_yscale() == "log"


def test_heatmaps_share_one_colour_scale(plots):
    fls = _gated_flows()
    fig = plots.heatmaps(fls)
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(images) == 3
    low = np.tril(np.ones((20, 20), bool))
    for im, fl in zip(images, fls.values()):
        assert np.allclose(np.asarray(im.get_array())[low], np.log10(fl.dE_ds[low]))
    assert len({im.get_clim() for im in images}) == 1


def test_gated_figures_leave_out_the_elman_bound(plots):
    fl = _gated_flows()["LSTM"]
    fig = plots.lag_curves({"LSTM": fl})
    assert [ln.get_linestyle() for ln in fig.axes[0].get_lines() if len(ln.get_ydata())] == ["-"]
    fig = plots.singular_values(fl, lags=[0, 4, 8])
    lines = fig.axes[0].get_lines()
    assert len(lines) == 10  # the 2H singular values of the joint state (h, c), no bound
    assert np.allclose(lines[0].get_ydata(), [fl.jacobian_spectrum(19, 19 - l)[0] / np.log(10) for l in (0, 4, 8)])
    sat = fl.saturation()
    fig = plots.saturation(sat, bins=10)
    for ln, g in zip(fig.axes[0].get_lines(), sat.gates):
        counts, _ = sat.histogram(g, 10)
        assert np.allclose(ln.get_ydata(), counts / counts.sum())
