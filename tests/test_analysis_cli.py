"""`bptt flow` and `bptt report` from the command line."""
import json

import numpy as np
import pytest
from conftest import need

import bptt
from bptt.cli import main


def test_flow_table_shows_theory_measurement_and_lags(capsys):
    assert main(["flow", "--activation", "identity", "--radius", "0.8", "--length", "30", "--rows", "5"]) == 0
    out = capsys.readouterr().out
    assert "verdict   vanishing" in out and "holds for every (t, k)" in out
    rows = [ln.split() for ln in out.splitlines() if ln.strip() and ln.split()[0].isdigit()]
    lags = [int(r[0]) for r in rows]
    assert lags[0] == 0 and lags[-1] == 29 and len(lags) == 5
    for r in rows:  # identity with W = 0.8 * orthogonal: ratio and bound are both 0.8^l
        assert float(r[2]) == pytest.approx(0.8 ** int(r[0]), rel=2e-3)
        assert float(r[4]) == pytest.approx(0.8 ** int(r[0]), rel=2e-3)


def test_flow_json_on_a_batch_from_files(tmp_path, capsys):
    import bptt

    m = bptt.random_rnn(5, 3, 3, seed=1, activation="tanh", radius=0.7)
    m.save(tmp_path / "m.npz")
    x = np.random.default_rng(0).integers(0, 3, (3, 12))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x[:, ::-1].copy())
    assert main(["flow", "--model", str(tmp_path / "m.npz"), "--x", str(tmp_path / "x.npy"),
                 "--y", str(tmp_path / "y.npy"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["N"] == 3 and res["T"] == 12 and res["bound_violations"] == 0
    rates = [bptt.flow(m, x[i], x[i, ::-1]).decay_rate() for i in range(3)]
    assert res["decay_rate"]["mean"] == pytest.approx(np.mean(rates), rel=1e-12)
    assert res["decay_rate"]["max"] <= res["theory"]["lambda1_gamma"]
    assert len(res["by_lag"]) == 12 and res["by_lag"][0]["ratio_mean"] == 1.0


def test_flow_plot_writes_png_and_svg(tmp_path, capsys):
    need("matplotlib")
    assert main(["flow", "--length", "12", "--hidden", "4", "--plot", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted(f"{n}.{e}" for n in ("heatmap", "lags", "singular_values", "saturation")
                           for e in ("png", "svg"))
    assert "figures:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["flow", "--activation", "bogus"], "unknown activation 'bogus'"),
    (["flow", "--y", "y.npy"], "--y needs --x"),
    (["flow", "--length", "0"], "--length and --batch must be at least 1"),
    (["flow", "--x", "missing.npy"], "cannot read inputs from missing.npy"),
    (["report", "--out", "."], "is a directory"),
])
def test_bad_arguments_are_sentences(argv, message, capsys):
    if argv[0] == "report":
        need("matplotlib")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_report_command_writes_the_file(tmp_path, capsys):
    need("matplotlib")
    out = tmp_path / "r.html"
    assert main(["report", "--quick", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_flow_of_a_gated_cell_says_the_bound_does_not_apply(cell, capsys):
    assert main(["flow", "--cell", cell, "--length", "20", "--hidden", "4", "--rows", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(cell.upper() + "(H=4")
    assert f"it does not apply to the {cell.upper()}" in out and "not bounded by the weights" in out
    assert "bound (l1 g)^l" not in out and "gates     " in out
    assert ("mean ||dE_t/dc_t-l||" in out) == (cell == "lstm")


def test_flow_json_of_an_lstm_from_a_file_matches_the_library(tmp_path, capsys):
    from bptt.model import random_gated

    m = random_gated("lstm", 4, 3, 3, seed=2, forget_bias=2.0)
    m.save(tmp_path / "m.npz")
    x = np.random.default_rng(3).integers(0, 3, (2, 15))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x[:, ::-1].copy())
    assert main(["flow", "--model", str(tmp_path / "m.npz"), "--x", str(tmp_path / "x.npy"),
                 "--y", str(tmp_path / "y.npy"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    fls = [bptt.flow(m, x[i], x[i, ::-1]) for i in range(2)]
    assert res["cell"] == "lstm" and res["bound_violations"] is None and not res["theory"]["bound_applies"]
    assert res["decay_rate"]["mean"] == pytest.approx(np.mean([f.decay_rate() for f in fls]), rel=1e-12)
    sats = [f.saturation() for f in fls]
    assert res["gates"]["f"]["near_1"]["mean"] == pytest.approx(np.mean([s.near_one("f") for s in sats]))
    assert res["path_gate"] == "f"
    c1 = np.mean([f.by_lag().c_mean[1] for f in fls])
    assert res["by_lag"][1]["c_mean"] == pytest.approx(c1, rel=1e-12)


def test_flow_forget_bias_opens_the_forget_gates(capsys):
    means = []
    for bias in ("0", "3"):
        assert main(["flow", "--cell", "lstm", "--forget-bias", bias, "--length", "10", "--hidden", "4", "--json"]) == 0
        means.append(json.loads(capsys.readouterr().out)["gates"]["f"]["mean"]["mean"])
    assert means[0] < 0.6 < 0.9 < means[1]  # sigma(3 + small) > 0.9


@pytest.mark.parametrize("argv, message", [
    (["flow", "--cell", "bogus"], "unknown cell 'bogus': expected one of rnn"),
    (["flow", "--cell", "lstm", "--radius", "1.1"], "--radius is an option of the rnn cell, not of lstm"),
    (["flow", "--forget-bias", "1"], "--forget-bias is an option of the lstm cell, not of rnn"),
])
def test_bad_cell_arguments_are_sentences(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_flow_plot_of_a_gru(tmp_path):
    need("matplotlib")
    assert main(["flow", "--cell", "gru", "--length", "12", "--hidden", "4", "--plot", str(tmp_path / "figs")]) == 0
    assert len(list((tmp_path / "figs").glob("*.png"))) == 4
