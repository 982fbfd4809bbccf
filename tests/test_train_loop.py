"""The training loop: determinism, metrics, snapshots, divergence, configs, and resume after SIGKILL."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt import GRU, LSTM
from bptt.model import Model, random_gated
from bptt.train import Diverged, checkpoint, lag_fraction, read_toml, resolve, train
from bptt.train.loop import build_task, initial_model
from conftest import need


def _metrics(d):
    return [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]


def _cfg(**kw):
    base = {"task": "temporal", "length": 12, "hidden": 8, "batch": 5, "steps": 12, "eval_every": 4,
            "checkpoint_every": 4}
    return resolve({**base, **kw})


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    train(_cfg(), tmp_path / "a", progress=False)
    train(_cfg(), tmp_path / "b", progress=False)
    train(_cfg(seed=1), tmp_path / "c", progress=False)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert _metrics(tmp_path / "a")[0]["loss"] != _metrics(tmp_path / "c")[0]["loss"]


def test_metrics_snapshots_and_files(tmp_path):
    s = train(_cfg(snapshots=[0, 8], clip_norm=0.05), tmp_path, progress=False)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 13))
    for r in rows:
        assert r["grad_norm_clipped"] <= min(r["grad_norm"], 0.05) * (1 + 1e-6)
    r4 = rows[3]
    m = bptt.RNN.load(tmp_path / "model.npz")
    assert {"rho", "lambda1", "lag_fraction", "test_loss", "test_error", "test_success"} <= set(r4)
    assert rows[-1]["rho"] == pytest.approx(bptt.spectral_radius(m.W), rel=1e-6)
    assert rows[-1]["lambda1"] == pytest.approx(np.linalg.svd(m.W.astype(float))[1][0], rel=1e-6)
    # min-char-rnn's smoothing, from ln(O) per scored step
    sm = np.log(4)
    for r in rows:
        sm = 0.999 * sm + 0.001 * r["loss"]
        assert r["smooth_loss"] == pytest.approx(sm, rel=1e-12)
    for step in (0, 8):
        assert np.load(tmp_path / "snapshots" / f"dE_ds_step{step}.npy").shape == (12, 12)
    assert s["baseline"] == pytest.approx(np.log(4)) and m.dtype == np.float32
    assert train(_cfg(dtype="float64", steps=2), tmp_path / "f64", progress=False)
    assert bptt.RNN.load(tmp_path / "f64" / "model.npz").dtype == np.float64


def test_lag_fraction_counts_term_norms():
    m, x, y = bptt.seed_example()
    fl = bptt.flow(m, x, y)
    # by hand: ||term_{t,k}|| = ||dE_t/dz_k|| ||s_{k-1}|| (Frobenius norm of an outer product)
    norms = np.array([[np.linalg.norm(fl.terms("W", t)[k]) for k in range(3)] for t in range(3)])
    lag = np.subtract.outer(np.arange(3), np.arange(3))
    assert lag_fraction(fl, 1) == pytest.approx(norms[lag >= 1].sum() / norms.sum(), rel=1e-12)
    assert lag_fraction(fl, 0) == pytest.approx(1.0)


def test_divergence_stops_with_step_norm_and_checkpoint(tmp_path):
    cfg = resolve({"task": "adding", "variant": "le", "length": 30, "activation": "identity", "init": "orthogonal",
                   "lr": 2.0, "clip_norm": 0, "steps": 50, "checkpoint_every": 1, "batch": 4})
    with pytest.raises(Diverged) as e:
        train(cfg, tmp_path, progress=False)
    rows = _metrics(tmp_path)
    msg = str(e.value)
    assert f"diverged at step {len(rows) + 1}" in msg
    assert f"last finite gradient norm was {rows[-1]['grad_norm']:.6g} at step {rows[-1]['step']}" in msg
    assert str(tmp_path / "checkpoint.npz") in msg
    # Pascanu's guard instead: never a NaN weight, the guard reported in the metrics
    cfg = resolve({**cfg.to_dict(), "fallback": "shrink", "steps": 6})
    train(cfg, tmp_path / "shrink", progress=False)
    rows = _metrics(tmp_path / "shrink")
    assert any(r.get("fallback") for r in rows)
    bptt.RNN.load(tmp_path / "shrink" / "model.npz").check_finite()


def test_omega_and_truncation_in_the_step(tmp_path):
    train(_cfg(omega=2.0, truncate=3, steps=4), tmp_path, progress=False)
    rows = _metrics(tmp_path)
    assert all(r["omega"] >= 0 for r in rows)


def test_toml_config_is_validated(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\ntask = "copy"\nlength = 5\nlr = 1\nsteps = 3\nbatch = 2\nhidden = 6\n')
    cfg = resolve({"steps": 2}, read_toml(f))
    assert (cfg.task, cfg.length, cfg.lr, cfg.steps, cfg.optimizer) == ("copy", 5, 1.0, 2, "rmsprop")
    f.write_text('task = "copy"\nlearning_rate = 0.1\n')
    with pytest.raises(ValueError, match="unknown setting.*learning_rate"):
        read_toml(f)
    f.write_text('task = "copy"\nsteps = "ten"\n')
    with pytest.raises(ValueError, match="steps must be an integer"):
        resolve({}, read_toml(f))
    f.write_text('task = "copy\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        read_toml(f)
    with pytest.raises(ValueError, match="backprop"):
        resolve({"task": "reber", "chunk": 10, "backprop": 5})


def test_cli_train_evaluate_sample(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--task", "reber", "--steps", "5", "--hidden", "6", "--batch", "2", "--out", str(out),
                 "--quiet"]) == 0
    assert main(["evaluate", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["baseline"] > 0 and "strings_correct" in res
    assert main(["sample", str(out), "-n", "30", "--seed", "1"]) == 0
    text = capsys.readouterr().out.strip()
    assert len(text) == 30 and set(text) <= set("BTPSXVE")
    assert main(["train", "--task", "nope", "--out", str(out)]) == 2
    assert "task must be one of" in capsys.readouterr().err
    assert main(["sample", str(tmp_path)]) == 2


def _run_cli(args, **kw):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bptt.cli", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("task", [["--task", "reber", "--chunk", "10", "--backprop", "15", "--batch", "3"],
                                  ["--task", "adding", "--length", "20", "--optimizer", "adam", "--lr", "0.003"],
                                  # a gated cell: the stream carries (h, c), Adam's moments cover b and bh
                                  ["--task", "reber", "--cell", "lstm", "--chunk", "10", "--backprop", "15",
                                   "--batch", "3", "--optimizer", "adam", "--lr", "0.003"],
                                  ["--task", "adding", "--length", "20", "--cell", "gru", "--optimizer", "adam",
                                   "--lr", "0.003"]],
                         ids=["elman-reber", "elman-adding", "lstm-reber", "gru-adding"])
def test_resume_after_sigkill_gives_the_uninterrupted_numbers(tmp_path, task):
    steps = 400
    args = [*task, "--hidden", "12", "--steps", str(steps), "--eval-every", "20", "--checkpoint-every", "7",
            "--quiet", "--seed", "3"]
    whole = _run_cli([*args, "--out", str(tmp_path / "whole")])
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    killed = _run_cli([*args, "--out", str(tmp_path / "killed")])
    ck = tmp_path / "killed" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ck.exists() and json.loads(ck.read_text())["step"] >= 50:
            break
        time.sleep(0.005)
    assert killed.poll() is None, "the run ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at = json.loads(ck.read_text())["step"]
    assert 50 <= at < steps
    resumed = _run_cli([*args, "--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert _metrics(tmp_path / "killed") == _metrics(tmp_path / "whole")
    a = Model.load(tmp_path / "whole" / "model.npz")
    b = Model.load(tmp_path / "killed" / "model.npz")
    assert type(a).__name__ == {"lstm": "LSTM", "gru": "GRU"}.get(dict(zip(task, task[1:])).get("--cell"), "RNN")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_resume_refuses_other_settings(tmp_path):
    train(_cfg(steps=4), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings.*lr"):
        train(_cfg(steps=4, lr=0.5), tmp_path, resume=True, progress=False)


def test_settings_that_do_not_apply_are_refused():
    with pytest.raises(ValueError, match="length applies to adding"):
        resolve({"task": "reber", "length": 50})
    with pytest.raises(ValueError, match="text applies to task 'char'"):
        resolve({"task": "copy", "text": "x.txt"})
    with pytest.raises(ValueError, match="init 'normal' needs std"):
        resolve({"task": "copy", "init": "normal"})


# --- gated cells ------------------------------------------------------------------------------
def _torch_step(cell, model, x, y, lr, O):
    """One SGD step of PyTorch's nn.LSTM / nn.GRU + nn.Linear from the model's weights on the batch
    (ids x (N, T), the last step scored, mean cross-entropy): (loss, {name: new weights})."""
    torch = need("torch")
    H, D = model.H, model.D
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](D, H, batch_first=True).double()
    head = torch.nn.Linear(H, O).double()
    pairs = {"U": rnn.weight_ih_l0, "W": rnn.weight_hh_l0, "b": rnn.bias_ih_l0, "bh": rnn.bias_hh_l0,
             "V": head.weight, "c": head.bias}
    with torch.no_grad():
        for k, t in pairs.items():
            t.copy_(torch.from_numpy(np.array(model.params[k])))
    out, _ = rnn(torch.nn.functional.one_hot(torch.from_numpy(x), D).double())
    loss = torch.nn.functional.cross_entropy(head(out[:, -1]), torch.from_numpy(y[:, -1]))
    loss.backward()
    return loss.item(), {k: (t - lr * t.grad).detach().numpy() for k, t in pairs.items()}


@pytest.mark.frameworks
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_gated_training_step_is_pytorchs_sgd_step(tmp_path, cell):
    """The loop's first step (batch from the run's generator, bptt's gradient, SGD) against PyTorch's."""
    cfg = resolve({"task": "temporal", "length": 12, "cell": cell, "hidden": 5, "batch": 4, "steps": 1,
                   "optimizer": "sgd", "lr": 0.5, "clip_norm": 0, "dtype": "float64"})
    task = build_task(cfg)
    m0 = initial_model(cfg, task)
    x, y = task.batch(np.random.default_rng([cfg.seed, 1]), cfg.batch)  # the loop's batch generator
    want_loss, want = _torch_step(cell, m0, x, y, cfg.lr, task.O)
    train(cfg, tmp_path, progress=False)
    m1 = Model.load(tmp_path / "model.npz")
    assert type(m1) is {"lstm": LSTM, "gru": GRU}[cell]
    assert _metrics(tmp_path)[0]["loss"] == pytest.approx(want_loss, rel=1e-12)
    for k, v in want.items():
        assert not np.allclose(v, m0.params[k])  # the step moved every weight
        np.testing.assert_allclose(m1.params[k], v, rtol=1e-10, atol=1e-13, err_msg=k)


def test_the_lstm_starts_with_the_forget_bias_added_to_pytorchs_init():
    task = build_task(resolve({"task": "temporal", "length": 10}))
    cfg = resolve({"task": "temporal", "length": 10, "cell": "lstm", "hidden": 6})
    assert cfg.forget_bias == 1.0 and cfg.init == "uniform" and cfg.std is None and cfg.activation is None
    m1 = initial_model(cfg, task)
    m0 = initial_model(resolve({**cfg.to_dict(), "forget_bias": 0.0}), task)
    H, k = 6, 1 / np.sqrt(6)
    np.testing.assert_array_equal(m1.b[H:2 * H], (m0.b[H:2 * H].astype(np.float64) + 1.0).astype(np.float32))
    np.testing.assert_array_equal(np.delete(m1.b, np.s_[H:2 * H]), np.delete(m0.b, np.s_[H:2 * H]))
    for name, a in m0.params.items():  # PyTorch's init: every weight on +-1/sqrt(H)
        assert np.abs(a).max() <= k and np.abs(a).max() > 0.6 * k, name
    g = initial_model(resolve({"task": "temporal", "length": 10, "cell": "gru", "hidden": 6, "init": "normal",
                               "std": 0.3, "bias": False, "reset_after": False}), task)
    assert type(g) is GRU and not g.reset_after and g.b is None and g.bh is None
    assert np.std(g.W) == pytest.approx(0.3, rel=0.2)


@pytest.mark.parametrize("settings, words", [
    ({"cell": "lstm", "activation": "relu"}, "activation applies to the rnn cell only, not to cell 'lstm'"),
    ({"cell": "gru", "omega": 2.0}, "omega applies to the rnn cell only, not to cell 'gru'"),
    ({"cell": "lstm", "init": "identity"}, "init for cell 'lstm' must be one of uniform, normal"),
    ({"cell": "gru", "radius": 1.1}, "radius applies to the rnn cell only"),
    ({"cell": "gru", "forget_bias": 1.0}, "forget_bias applies to the lstm cell only, not to cell 'gru'"),
    ({"forget_bias": 0.0}, "forget_bias applies to the lstm cell only, not to cell 'rnn'"),
    ({"cell": "lstm", "reset_after": False}, "reset_after applies to the gru cell only"),
    ({"cell": "lstm", "std": 0.1}, "std applies to init 'normal' for cell 'lstm'"),
    ({"cell": "lstm", "forget_bias": float("nan")}, "forget_bias must be a finite number"),
    ({"cell": "vanilla"}, "unknown cell 'vanilla': expected one of rnn"),
])
def test_settings_of_another_cell_are_refused(settings, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        resolve({"task": "adding", **settings})


def test_the_command_line_refuses_elman_methods_for_gated_cells(tmp_path, capsys):
    for extra in (["--omega", "1"], ["--init", "identity"], ["--activation", "relu"]):
        assert main(["train", "--task", "temporal", "--cell", "gru", *extra, "--out", str(tmp_path)]) == 2
        assert "bptt train: error:" in capsys.readouterr().err
    assert main(["train", "--task", "temporal", "--forget-bias", "1", "--out", str(tmp_path)]) == 2
    assert "forget_bias applies to the lstm cell only" in capsys.readouterr().err
    assert not (tmp_path / "metrics.jsonl").exists()
    with pytest.raises(SystemExit) as e:
        main(["train", "--cell", "gru", "--reset-after", "maybe", "--out", str(tmp_path)])
    assert e.value.code == 2 and "expected true or false, got 'maybe'" in capsys.readouterr().err
    assert main(["train", "--task", "temporal", "--length", "10", "--cell", "gru", "--reset-after", "false",
                 "--steps", "1", "--hidden", "3", "--batch", "2", "--out", str(tmp_path / "g"), "--quiet"]) == 0
    assert Model.load(tmp_path / "g" / "model.npz").reset_after is False


def test_cli_train_evaluate_sample_with_an_lstm(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--task", "reber", "--cell", "lstm", "--forget-bias", "1.0", "--steps", "4",
                 "--hidden", "6", "--batch", "2", "--checkpoint-every", "3", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["cell"], cfg["forget_bias"], cfg["activation"]) == ("lstm", 1.0, None)
    assert json.loads((out / "summary.json").read_text())["cell"] == "lstm"
    model = Model.load(out / "model.npz")
    assert type(model) is LSTM and model.H == 6
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["loss"] == pytest.approx(build_task(resolve(cfg)).evaluate(model)["loss"], rel=1e-12)
    assert main(["evaluate", str(out), "--checkpoint", "--json"]) == 0  # the checkpoint holds the final model
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == res
    assert main(["sample", str(out), "-n", "25", "--seed", "2"]) == 0
    text = capsys.readouterr().out.strip()
    assert len(text) == 25 and set(text) <= set("BTPSXVE")
    rows = _metrics(out)
    assert rows[-1]["rho"] is None  # W (4H, H) has no eigenvalues
    assert rows[-1]["lambda1"] == pytest.approx(np.linalg.norm(model.W.astype(float), 2), rel=1e-6)


def test_checkpoints_keep_the_model_kind_and_its_settings(tmp_path):
    gru = random_gated("gru", 3, 4, 2, seed=1, reset_after=False, head="mse")
    lstm = random_gated("lstm", 3, 4, 2, seed=2, bias=False, forget_bias=1.0)
    rnn = bptt.random_rnn(3, 4, 2, seed=3, activation="relu", bias=True)
    state = {"m": {"W": np.ones(2)}}
    for m in (gru, lstm, rnn):
        checkpoint.save(tmp_path / "c.npz", m, state, {"step": 7}, {"h": np.zeros((1, 3)), "c": np.ones((1, 3))})
        back, opt, meta, extra = checkpoint.load(tmp_path / "c.npz")
        assert type(back) is type(m) and repr(back) == repr(m) and meta["step"] == 7
        assert back.params.keys() == m.params.keys()
        for k in m.params:
            np.testing.assert_array_equal(back.params[k], m.params[k])
        np.testing.assert_array_equal(extra["c"], np.ones((1, 3)))
    # a checkpoint written before the gated cells (no model_kind) is an RNN's
    with np.load(tmp_path / "c.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    del meta["model_kind"]
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
    old = checkpoint.load(tmp_path / "old.npz")[0]
    assert type(old) is bptt.RNN and old.activation == "relu"


def test_a_run_checkpointed_before_the_gated_cells_resumes(tmp_path):
    train(_cfg(steps=8), tmp_path / "whole", progress=False)
    train(_cfg(steps=4), tmp_path / "old", progress=False)
    ck = tmp_path / "old" / "checkpoint.npz"
    with np.load(ck) as f:  # rewrite the checkpoint as one written before: no cell settings, no model kind
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    del meta["model_kind"]
    meta["config"] = {k: v for k, v in meta["config"].items()
                      if k not in ("cell", "forget_bias", "reset_after", "r_min", "r_max", "max_phase", "normalise")}
    meta["config"]["steps"] = 8  # as if an 8-step run had stopped at its checkpoint at step 4
    np.savez(ck, meta=np.array(json.dumps(meta)), **arrays)
    train(_cfg(steps=8), tmp_path / "old", resume=True, progress=False)
    assert _metrics(tmp_path / "old") == _metrics(tmp_path / "whole")


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_resume_with_more_steps_extends_the_run_to_an_uninterrupted_runs_numbers(tmp_path, cell):
    train(_cfg(steps=12, cell=cell), tmp_path / "whole", progress=False)
    train(_cfg(steps=6, cell=cell), tmp_path / "short", progress=False)
    train(_cfg(steps=12, cell=cell), tmp_path / "short", resume=True, progress=False)
    a, b = Model.load(tmp_path / "whole" / "model.npz"), Model.load(tmp_path / "short" / "model.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    steps = lambda run: [(r["step"], r["loss"], r["grad_norm"]) for r in _metrics(run)]  # noqa: E731
    assert steps(tmp_path / "whole") == steps(tmp_path / "short")
    with pytest.raises(ValueError, match="step must be an integer in 0..4"):  # fewer steps than it has run
        train(_cfg(steps=4, cell=cell), tmp_path / "short", resume=True, progress=False)


def test_a_folder_with_a_run_is_not_overwritten_without_force(tmp_path, capsys):
    args = ["train", "--task", "temporal", "--length", "10", "--hidden", "4", "--steps", "3", "--quiet",
            "--out", str(tmp_path)]
    assert main(args) == 0
    before = (tmp_path / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and "--force" in err
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    assert main([*args, "--force", "--seed", "1"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "snapshots").exists()
    assert (tmp_path / "metrics.jsonl").read_bytes() != before


def test_the_char_task_needs_a_text(tmp_path, capsys):
    assert main(["train", "--task", "char", "--out", str(tmp_path / "run")]) == 2
    assert "task 'char' models a text: give one (--text FILE" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.slow
def test_kills_during_a_resumes_start_up_lose_nothing(tmp_path):
    """SIGKILL lands at 20 random instants of `bptt train --resume`'s start-up (loading and checking
    the checkpoint, rewriting metrics.jsonl and config.json, the first steps): every time the folder
    stays resumable, and the run ends with the uninterrupted run's parameters and metrics, bit for bit."""
    args = ["--task", "temporal", "--length", "12", "--hidden", "6", "--batch", "4", "--eval-every", "10",
            "--checkpoint-every", "5", "--quiet", "--seed", "2"]
    whole = _run_cli([*args, "--steps", "60", "--out", str(tmp_path / "whole")])
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    run = tmp_path / "killed"
    first = _run_cli([*args, "--steps", "30", "--out", str(run)])
    assert first.wait(timeout=300) == 0, first.stderr.read()
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.05, 2.5, 20):
        p = _run_cli([*args, "--steps", "60", "--out", str(run), "--resume"])
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    last = _run_cli([*args, "--steps", "60", "--out", str(run), "--resume"])
    assert last.wait(timeout=300) == 0, last.stderr.read()
    a, b = Model.load(tmp_path / "whole" / "model.npz"), Model.load(run / "model.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    steps = lambda d: [(r["step"], r["loss"], r["grad_norm"]) for r in _metrics(d)]  # noqa: E731
    assert steps(tmp_path / "whole") == steps(run)


def test_a_spent_budget_ends_the_run_at_its_step_with_an_evaluation(tmp_path):
    # a budget of 1e-9 minutes is spent by the first update: that step is the last, evaluated,
    # checkpointed, and the numbers up to it are those of a run without the budget
    s = train(_cfg(minutes=1e-9), tmp_path / "a", progress=False)
    rows = _metrics(tmp_path / "a")
    assert [r["step"] for r in rows] == [1] and s["steps"] == 1 and s["out_of_minutes"] is True
    assert rows[0]["wall_s"] > 0 and {"test_loss", "lag_fraction"} <= set(rows[0])
    assert s["test_loss"] == pytest.approx(rows[0]["test_loss"], rel=1e-12)
    free = train(_cfg(steps=4), tmp_path / "b", progress=False)
    first = _metrics(tmp_path / "b")[0]
    assert "wall_s" not in first and free["out_of_minutes"] is False and free["steps"] == 4
    assert rows[0]["loss"] == first["loss"] and rows[0]["grad_norm"] == first["grad_norm"]
    # resumed with a budget that is not spent, the run goes on to its steps
    s = train(_cfg(minutes=60.0), tmp_path / "a", resume=True, progress=False)
    assert s["steps"] == 12 and s["out_of_minutes"] is False
    assert [r["step"] for r in _metrics(tmp_path / "a")] == list(range(1, 13))
    with pytest.raises(ValueError, match="minutes must be a positive number"):
        _cfg(minutes=0)
