"""`bptt approx`: the table and the JSON hold the library's numbers, the figure is written, bad
arguments are sentences."""
import json

import numpy as np
import pytest

from bptt import approx, core
from bptt.cli import main
from bptt.commands import approx as command
from conftest import need

SMALL = ["approx", "--hidden", "4", "--inputs", "3", "--outputs", "3", "--length", "12", "--samples", "20",
         "--windows", "0,3,11", "--tbptt", "2:4"]


def test_the_table_lists_every_method(capsys):
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    for method in ("window K=0", "window K=3", "window K=11", "TBPTT(2, 4)", "RTRL", "UORO, mean of 20", "SnAp-1",
                   "SnAp-2"):
        assert method in out, method
    rtrl = next(line for line in out.splitlines() if line.startswith("RTRL"))
    assert float(rtrl.split()[1]) < 1e-12 and float(rtrl.split()[2]) == pytest.approx(1.0)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru-before"])
def test_the_json_holds_the_librarys_numbers(cell, capsys):
    assert main(SMALL + ["--cell", cell, "--json", "--seed", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in res["methods"]}
    # the same model and data, drawn as the command draws them
    args = type("A", (), {"cell": cell, "hidden": 4, "inputs": 3, "outputs": 3})()
    rng = np.random.default_rng(3)
    model = command.random_model(args, 1.0, rng)
    x, y = command.data(model, 12, 1, rng)
    loss, exact = core.gradients(model, x, y)
    assert res["loss"] == pytest.approx(loss, rel=1e-12)
    for K in (0, 3):
        want = approx.compare(exact, core.gradients(model, x, y, truncate=K)[1])
        assert rows[f"window K={K}"]["all"]["rel"] == pytest.approx(want.rel["all"], rel=1e-9)
        assert rows[f"window K={K}"]["W"]["cos"] == pytest.approx(want.cos["W"], rel=1e-12)
    want = approx.compare(exact, approx.tbptt_gradient(model, x, y, 2, 4)[1])
    assert rows["TBPTT(2, 4)"]["all"]["rel"] == pytest.approx(want.rel["all"], rel=1e-12)
    assert rows["RTRL"]["all"]["rel"] < 1e-12
    want = approx.compare(exact, approx.uoro(model, x, y, seed=3, samples=20)[1])
    assert rows["UORO, mean of 20"]["W"]["rel"] == pytest.approx(want.rel["W"], rel=1e-12)
    assert res["smallest_window"] == approx.window_curve(model, x, y).smallest_window(0.01)


def test_a_model_file(tmp_path, capsys):
    from bptt.model import random_gated
    path = tmp_path / "gru.npz"
    random_gated("gru", 3, 4, 2, seed=0).save(path)
    assert main(["approx", "--model", str(path), "--length", "6", "--samples", "5", "--windows", "1",
                 "--tbptt", "1:2"]) == 0
    assert "GRU(H=3, D=4, O=2" in capsys.readouterr().out


def test_the_figures_are_pngs_at_150_dpi_in_the_folder_plot_names(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from PIL import Image
    folder = tmp_path / "figs"  # made when missing, as bptt flow --plot does
    assert main(SMALL + ["--plot", str(folder), "--radii", "0.5,1.5", "--samples", "10"]) == 0
    assert f"figures: {folder / 'window-bias.png'}, {folder / 'uoro.png'}" in capsys.readouterr().out
    with Image.open(folder / "window-bias.png") as im:
        assert im.info["dpi"][0] == pytest.approx(150, abs=1) and im.size[0] >= 1200
    with Image.open(folder / "uoro.png") as im:
        assert im.info["dpi"][0] == pytest.approx(150, abs=1)


@pytest.mark.parametrize("argv, words", [
    (["--cell", "vanilla"], "unknown cell 'vanilla'"),
    (["--tbptt", "5"], "--tbptt takes rules k1:k2"),
    (["--windows", "0,50"], "a window K must lie in 0..T = 12"),
    (["--windows", "a"], "--windows must be comma-separated integers"),
    (["--radius", "0"], "a spectral radius must be a positive number"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--tbptt", "4:2"], "k2 >= k1"),
])
def test_bad_arguments_are_sentences(argv, words, capsys):
    assert main(SMALL + argv) == 2
    assert words in capsys.readouterr().err


def test_plot_draws_the_error_of_the_mean_of_n_uoro_estimates_against_n(tmp_path, capsys):
    need("matplotlib")
    assert main(SMALL + ["--samples", "300", "--plot", str(tmp_path), "--radii", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (tmp_path / "uoro.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    u = res["uoro_error"]
    assert u["n"] == [1, 3, 10, 30, 100, 300]
    # the mean of all n estimates is the table's "UORO, mean of 300": the same signs, summed two ways
    row = next(r for r in res["methods"] if r["method"] == "UORO, mean of 300")
    assert u["rel"][-1] == pytest.approx(row["all"]["rel"], rel=1e-9)
    # an unbiased mean: its error falls like 1/sqrt(n), within a factor 3 of what the variance predicts
    assert u["rel"][-1] < u["rel"][0] / 4
    for rel, pred in zip(u["rel"], u["predicted"]):
        assert pred / 3 < rel < 3 * pred


def test_sweep_bias_draws_each_methods_mean_over_seeds_per_cell_and_radius():
    need("matplotlib")
    pd = need("pandas")
    from bptt.approx.figures import sweep_bias

    rows = []
    for cell in ("elman", "gru"):
        for radius in (0.5, 1.5):
            for seed in range(3):
                rows.append({"cell": cell, "radius": radius, "seed": seed,
                             **{f"{m}_rel": (seed + 1) * radius * (i + 1) for i, m in
                                enumerate(("window", "tbptt", "uoro", "snap1", "snap2", "rtrl"))}})
    df = pd.DataFrame(rows)
    fig = sweep_bias(df)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["rnn", "gru"]  # "elman" (an older store's spelling) drawn as rnn
    line = axes[0].containers[0].lines[0]  # window K: mean over seeds of (seed + 1) * radius = 2 * radius
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), [0.5, 1.5])
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), [1.0, 3.0])


def test_the_reports_approx_section_quotes_what_the_engine_gives():
    need("matplotlib")
    from bptt.approx.measure import random_data, random_model
    from bptt.report import approx as section
    from bptt.report.content import Settings

    st = Settings.quick()
    a = section.gather(st, lambda fig: b"figure")
    assert set(a["figures"]) == {"approx_bias", "approx_uoro"}
    from bptt.approx.measure import rescalable

    names = {label: name for name, label in section.cells()}
    assert len(a["smallest"]) == sum(len(st.radii) if rescalable(n) else 1 for n in names.values())
    assert [s["radius"] for s in a["smallest"] if not rescalable(names[s["cell"]])] == [None] * sum(
        not rescalable(n) for n in names.values())  # a cell without W once, from its own initialisation
    for s in a["smallest"][::2]:
        cell = names[s["cell"]]
        rng = np.random.default_rng(st.seed + 900)  # the section's draw, made again
        model = random_model(cell, st.H, st.D, st.D, 1.0 if s["radius"] is None else s["radius"], rng)
        x, y = random_data(model, st.T, st.N, rng)
        _, exact = core.gradients(model, x, y)
        rel = lambda K: approx.compare(exact, core.gradients(model, x, y, truncate=K)[1]).rel["all"]  # noqa: E731
        K = s["K"]
        assert rel(K) <= section.DELTA and (K == 0 or rel(K - 1) > section.DELTA), s
        assert s["rel5"] == pytest.approx(rel(5), rel=1e-8)
    assert a["uoro"]["slope"] < 0
    html = section.render(a, lambda name, alt, caption: f"<img {name}>", lambda head, rows, left: str(rows))
    for s in a["smallest"]:
        assert f"'{s['K']}'" in html
    assert all(t in html for t in (a["text"][0].split(":")[0],))
