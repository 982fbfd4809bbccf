"""The training loop: determinism, metrics, snapshots, divergence, configs, and resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.train import Diverged, lag_fraction, read_toml, resolve, train


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
                                  ["--task", "adding", "--length", "20", "--optimizer", "adam", "--lr", "0.003"]])
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
    a = bptt.RNN.load(tmp_path / "whole" / "model.npz")
    b = bptt.RNN.load(tmp_path / "killed" / "model.npz")
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
