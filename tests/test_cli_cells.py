"""The command line with the cells that have no recurrent W or a state wider than H (the LRU, the
minGRU, the minLSTM, the linear cell): every verb takes them, and an option that does not fit a cell
is refused with one sentence naming the cells it belongs to."""
import json
import re

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.model import Model
from bptt.train import resolve
from bptt.train.loop import build_task, initial_model
from conftest import need

NEW = ["lru", "mingru", "minlstm", "linear"]
TRAIN = ["train", "--task", "temporal", "--length", "10", "--hidden", "4", "--batch", "3", "--eval-every", "3",
         "--checkpoint-every", "2", "--seed", "5", "--quiet"]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _modulus(model):
    """|lambda| of each unit, from the parameters as the papers write them (not through the engine)."""
    if model.cell.name == "lru":
        return np.exp(-np.exp(model.nu_log.astype(np.float64)))
    return np.abs(model.lam.astype(np.float64))


@pytest.mark.parametrize("cell", NEW)
def test_each_new_cell_trains_checkpoints_and_resumes_to_the_same_bits(tmp_path, cell, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*TRAIN, "--cell", cell, "--steps", "9", "--out", str(whole)]) == 0
    assert main([*TRAIN, "--cell", cell, "--steps", "6", "--out", str(cut)]) == 0  # ends at an evaluation
    assert json.loads((cut / "checkpoint.json").read_text())["step"] == 6
    assert main([*TRAIN, "--cell", cell, "--steps", "9", "--out", str(cut), "--resume"]) == 0
    assert _metrics(cut) == _metrics(whole) and len(_metrics(whole)) == 9
    a, b = Model.load(whole / "model.npz"), Model.load(cut / "model.npz")
    assert type(a).__name__ == bptt.cells.get(cell).model and a.params.keys() == b.params.keys()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert json.loads((whole / "summary.json").read_text())["cell"] == cell
    evals = [r for r in _metrics(whole) if "test_loss" in r]
    assert len(evals) == 3
    if bptt.cells.get(cell).time_invariant:  # rho and lambda_1 of the transition: max |lambda| of the model's units
        want = _modulus(a).max()
        assert evals[-1]["rho"] == pytest.approx(want, rel=1e-6)
        assert evals[-1]["lambda1"] == pytest.approx(want, rel=1e-6)
    else:  # no recurrent matrix: nothing to quote
        assert evals[-1]["rho"] is None and evals[-1]["lambda1"] is None
    capsys.readouterr()
    assert main(["evaluate", str(whole), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cfg = resolve(json.loads((whole / "config.json").read_text()))
    assert res["loss"] == pytest.approx(build_task(cfg).evaluate(a)["loss"], rel=1e-12)


def builtin_then_others(words):
    """A pattern for a message that lists the built-in cells an option fits: cells that another test
    registers (tests/test_cell_contract.py's "diagonal") may follow them in the list."""
    listed = "rnn, gru, lstm, mingru, minlstm"
    return re.escape(words).replace(re.escape(listed), re.escape(listed) + r"(, \w+)*")


@pytest.mark.parametrize("argv, words", [
    (["train", "--cell", "lru", "--std", "0.1"], "std applies to the rnn, gru, lstm, mingru, minlstm cells only, "
                                                "not to cell 'lru'"),
    (["train", "--cell", "lru", "--init", "normal", "--std", "0.1"], "std applies to the"),
    (["train", "--cell", "linear", "--init", "orthogonal"], "init for cell 'linear' must be uniform (its own "
                                                           "initialisation)"),
    (["train", "--cell", "lru", "--radius", "0.9"], "radius applies to the rnn cell only, not to cell 'lru'"),
    (["train", "--cell", "lru", "--activation", "relu"], "activation applies to the rnn cell only"),
    (["train", "--cell", "mingru", "--omega", "1"], "omega applies to the rnn cell only, not to cell 'mingru'"),
    (["train", "--cell", "minlstm", "--forget-bias", "1"], "forget_bias applies to the lstm cell only"),
    (["train", "--cell", "mingru", "--r-min", "0.5"], "r_min applies to the linear, lru cells only, not to cell "
                                                      "'mingru'"),
    (["train", "--cell", "linear", "--max-phase", "1"], "max_phase applies to the lru cell only"),
    (["train", "--cell", "linear", "--normalise", "false"], "normalise applies to the lru cell only"),
    (["train", "--cell", "lru", "--r-min", "0.9", "--r-max", "0.5"], "the ring needs 0 <= r_min < r_max <= 1"),
    (["train", "--cell", "lru", "--max-phase", "-1"], "max_phase must be > 0"),
    (["check", "--cell", "lru", "--bias"], "--bias is an option of the rnn, gru, lstm, mingru, minlstm cells, "
                                           "not of lru"),
    (["check", "--cell", "lru", "--radius", "0.9"], "--radius is an option of the rnn cell, not of lru"),
    (["flow", "--cell", "mingru", "--r-max", "0.9"], "--r-max is an option of the linear, lru cells, not of mingru"),
    (["flow", "--cell", "linear", "--normalise", "false"], "--normalise is an option of the lru cell, not of linear"),
    (["approx", "--cell", "lru", "--radius", "0.9"], "--radius rescales a recurrent weight W, and the lru cell "
                                                     "has none"),
    (["approx", "--cell", "mingru", "--radii", "0.5,1"], "--radii rescales a recurrent weight W, and the mingru"),
    (["approx", "--cell", "lru", "--param", "W"], "--param must be one of all, nu_log, theta_log, B_re, B_im, "
                                                  "gamma_log, V, c, h0 (the lru model's), got 'W'"),
])
def test_an_option_that_does_not_fit_the_cell_is_one_sentence(argv, words, tmp_path, capsys):
    extra = ["--out", str(tmp_path / "run")] if argv[0] == "train" else []
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert re.search(builtin_then_others(words), err) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_ring_options_reach_the_model_in_every_verb(tmp_path, capsys):
    cfg = resolve({"task": "temporal", "length": 10, "cell": "lru", "hidden": 30, "r_min": 0.9, "r_max": 0.95,
                   "max_phase": 0.5, "normalise": False})
    m = initial_model(cfg, build_task(cfg))
    assert np.all((_modulus(m) >= 0.9 - 1e-6) & (_modulus(m) <= 0.95 + 1e-6)) and m.gamma_log is None
    assert np.all(np.exp(m.theta_log.astype(np.float64)) <= 0.5 + 1e-6)
    lin = resolve({"task": "temporal", "length": 10, "cell": "linear", "r_min": 0, "r_max": 2})  # integers: numbers
    assert (lin.r_min, lin.r_max, lin.max_phase, lin.normalise) == (0.0, 2.0, None, None)
    assert type(lin.r_min) is float and type(lin.r_max) is float
    capsys.readouterr()
    assert main(["flow", "--cell", "lru", "--r-min", "0.9", "--r-max", "0.95", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0.9 <= res["theory"]["rho"] <= 0.95 and res["theory"]["verdict"] == "vanishing"
    assert main(["flow", "--cell", "linear", "--r-min", "1.05", "--r-max", "1.1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 1.05 <= res["theory"]["rho"] <= 1.1 and res["theory"]["verdict"] == "exploding"
    assert main(["check", "--cell", "lru", "--r-min", "0.5", "--r-max", "0.99", "--normalise", "false",
                 "--frameworks", "none", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["finite_differences"]["params"]
    assert "gamma_log" not in [r["name"] for r in rows] and all(r["passed"] for r in rows)


def test_a_config_without_the_new_settings_holds_none_for_them(tmp_path):
    cfg = resolve({"task": "temporal", "length": 10, "cell": "lru"})
    assert (cfg.r_min, cfg.r_max, cfg.max_phase, cfg.normalise) == (0.0, 1.0, 2 * np.pi, True)  # the ring's own
    assert (cfg.std, cfg.bias, cfg.forget_bias, cfg.activation) == (None, True, None, None)
    rnn = resolve({"task": "temporal", "length": 10})
    assert (rnn.r_min, rnn.r_max, rnn.max_phase, rnn.normalise) == (None,) * 4
    with pytest.raises(ValueError, match=builtin_then_others("bias applies to the rnn, gru, lstm, mingru, minlstm cells "
                                                             "only, not to cell 'linear' (got False)")):
        resolve({"task": "temporal", "length": 10, "cell": "linear", "bias": False})


@pytest.mark.parametrize("cell", NEW)
def test_flow_on_each_new_cell(cell, capsys):
    assert main(["flow", "--cell", cell, "--hidden", "5", "--length", "30", "--rows", "4"]) == 0
    out = capsys.readouterr().out
    m = bptt.random_model(cell, 5, 8, 8, seed=np.random.default_rng(0))  # the command's draw
    label = bptt.cells.get(cell).label
    if bptt.cells.get(cell).time_invariant:
        rho = _modulus(m).max()
        assert f"rho(A) = {rho:.4g}" in out and "verdict   vanishing" in out and "gates" not in out
    else:
        assert f"does not apply to the {label}" in out and "gates     " in out
    assert "mean cell path" not in out  # none of them declares a direct path of one gate
    assert "nan" not in out.lower()


def test_the_transition_of_a_linear_recurrence_has_the_cells_eigenvalues():
    from bptt.theory import recurrence_norms, theory, transition

    m = bptt.random_model("lru", 6, 3, 2, seed=1, r_min=0.3, r_max=0.9)
    lam = np.exp(-np.exp(m.nu_log) + 1j * np.exp(m.theta_log))  # the paper's lambda, in complex numbers
    got = np.linalg.eigvals(transition(m))
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(np.concatenate([lam, lam.conj()])),
                               rtol=1e-12, atol=1e-15)
    assert recurrence_norms(m) == pytest.approx((np.abs(lam).max(), np.abs(lam).max()), rel=1e-12)
    lin = bptt.random_model("linear", 4, 3, 2, seed=2).replace(lam=np.array([0.5, -1.0, 0.2, 0.9]))
    assert theory(lin).verdict == "neither is guaranteed" and theory(lin).rho == 1.0
    assert theory(lin.replace(lam=np.array([0.5, -1.2, 0.2, 0.9]))).verdict == "exploding"
    assert theory(lin.replace(lam=np.array([0.5, -0.7, 0.2, 0.9]))).verdict == "vanishing"
    with pytest.raises(ValueError, match="mingru cell's step Jacobian depends on its state"):
        transition(bptt.random_model("mingru", 3, 2, 2, seed=0))
    assert recurrence_norms(bptt.random_model("minlstm", 3, 2, 2, seed=0)) == (None, None)


def test_the_flow_figures_of_a_linear_recurrence_leave_out_saturation(tmp_path, capsys):
    need("matplotlib")
    assert main(["flow", "--cell", "linear", "--hidden", "4", "--length", "12", "--plot", str(tmp_path)]) == 0
    names = {p.stem for p in tmp_path.iterdir()}
    assert names == {"heatmap", "lags", "singular_values"}


@pytest.mark.parametrize("cell", NEW)
def test_approx_on_each_new_cell_singles_out_its_recurrence(cell, capsys):
    from bptt.approx.measure import focus

    assert main(["approx", "--cell", cell, "--hidden", "3", "--length", "8", "--samples", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rtrl = next(r for r in res["methods"] if r["method"] == "RTRL")
    assert rtrl["all"]["rel"] < 1e-12  # forward mode against BPTT
    assert main(["approx", "--cell", cell, "--hidden", "3", "--length", "8", "--samples", "2"]) == 0
    head = capsys.readouterr().out.splitlines()[3]
    want = {"lru": "nu_log", "linear": "lam", "mingru": "U", "minlstm": "U"}[cell]
    assert focus(cell) == want and f"rel. error {want}" in head and "rel. error W" not in head


def test_sweeps_take_the_new_cells():
    from bptt.sweep import parse_spec
    from bptt.sweep.points import run_point

    need("threadpoolctl")
    flow = parse_spec('kind = "flow"\n[fixed]\nlength = 12\nlong_lag = 3\nhidden = 4\n[grid]\n'
                      'cell = ["lru", "mingru"]\nradius = [0.5, 2.0]\nbias = [false, true]', default_name="f").points()
    assert sorted(p.params["cell"] for p in flow) == ["lru", "mingru", "mingru"]  # the LRU takes neither option
    for p in flow:
        res = run_point(p.config)
        assert res["status"] == "ok", res["traceback"]
        if p.params["cell"] == "lru":
            rng = np.random.default_rng(p.seed)
            m = bptt.random_model("lru", 4, 8, 8, seed=rng, dtype=np.float32)
            assert res["metrics"]["rho"] == pytest.approx(_modulus(m).max(), rel=1e-6)
        else:
            assert res["metrics"]["rho"] is None and np.isfinite(res["metrics"]["decay_rate"])
    approx = parse_spec('kind = "approx"\n[fixed]\nlength = 6\nhidden = 3\nsamples = 2\nwindow = 2\nk1 = 2\nk2 = 3\n'
                        '[grid]\ncell = ["minlstm", "gru"]\nradius = [0.5, 1.5]', default_name="a").points()
    assert sorted((p.params["cell"], p.params["radius"]) for p in approx) == [
        ("gru", 0.5), ("gru", 1.5), ("minlstm", 1.0)]
    res = run_point(next(p for p in approx if p.params["cell"] == "minlstm").config)
    assert res["status"] == "ok", res["traceback"]
    assert res["metrics"]["rtrl_rel"] < 1e-12 and res["metrics"]["rtrl_rel_W"] is None
    train = parse_spec('kind = "train"\n[fixed]\ntask = "temporal"\nlength = 10\nhidden = 4\nsteps = 3\n'
                       'eval_every = 3\nbatch = 2\n[grid]\ncell = ["lru", "linear"]', default_name="t").points()
    for p in train:
        res = run_point(p.config)
        assert res["status"] == "ok", res["traceback"]
        assert res["metrics"]["steps_done"] == 3 and 0 < res["metrics"]["rho"] < 1


def test_a_stream_carries_the_lrus_state_of_width_2h_across_a_resume(tmp_path):
    args = ["train", "--task", "reber", "--cell", "lru", "--hidden", "5", "--batch", "3", "--eval-every", "5",
            "--checkpoint-every", "3", "--quiet"]
    assert main([*args, "--steps", "10", "--out", str(tmp_path / "whole")]) == 0
    assert main([*args, "--steps", "5", "--out", str(tmp_path / "cut")]) == 0
    with np.load(tmp_path / "cut" / "checkpoint.npz") as f:
        assert f["extra/h"].shape == (3, 10)  # [Re h, Im h] of each stream
    assert main([*args, "--steps", "10", "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "whole")
