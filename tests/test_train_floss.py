"""bptt train --floss k: gradient flossing before training brings the k leading Lyapunov exponents to
within 0.01 of 0 on the batch it used; during training it adds the regulariser's gradient; a resumed
run repeats the numbers; the settings are checked."""
import json
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.model import Model
from bptt.train import resolve, train
from bptt.train import flossing
from bptt.train.loop import build_task, initial_model


def _metrics(d):
    return [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]


def _leading(model, x, h0, k):
    """The k leading exponents of every sequence of the batch, by bptt.lyapunov: (N, k)."""
    trace = bptt.forward(model, x, h0)
    return np.array([bptt.lyapunov(trace, seq=n).exponents[:k] for n in range(trace.S.shape[1])])


FLOSS = ["--task", "adding", "--length", "50", "--hidden", "12", "--batch", "6", "--dtype", "float64",
         "--floss", "2", "--floss-steps", "120", "--seed", "1"]


def test_floss_through_the_cli_brings_the_leading_exponents_to_zero(tmp_path, capsys):
    assert main(["train", *FLOSS, "--steps", "0", "--quiet", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "flossing before training: 120 updates of the 2 leading Lyapunov exponents" in printed
    cfg = resolve({"task": "adding", "length": 50, "hidden": 12, "batch": 6, "dtype": "float64", "floss": 2,
                   "floss_steps": 120, "seed": 1, "steps": 0})
    task = build_task(cfg)
    start = initial_model(cfg, task)
    x, h0 = flossing.batch(cfg, task, start)
    assert np.all(_leading(start, x, h0, 2) < -0.5)  # the random network contracts clearly
    flossed = Model.load(tmp_path / "run" / "model.npz")
    after = _leading(flossed, x, h0, 2)
    assert np.all(np.abs(after) <= 0.01), after
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["floss"]["after"]["furthest"] == pytest.approx(after.flat[np.argmax(np.abs(after))], abs=1e-12)
    assert summary["floss"]["before"]["mean"] == pytest.approx(list(_leading(start, x, h0, 2).mean(axis=0)),
                                                               abs=1e-12)


def test_floss_of_an_lstm_through_the_library(tmp_path):
    cfg = resolve({"task": "temporal", "length": 30, "cell": "lstm", "hidden": 6, "batch": 4, "steps": 0,
                   "dtype": "float64", "floss": 1, "floss_steps": 150, "floss_lr": 0.01})
    summary = train(cfg, tmp_path, progress=False)
    task = build_task(cfg)
    x, h0 = flossing.batch(cfg, task, initial_model(cfg, task))
    before = _leading(initial_model(cfg, task), x, h0, 1)
    after = _leading(Model.load(tmp_path / "model.npz"), x, h0, 1)
    assert np.all(before < -0.1) and np.all(np.abs(after) <= 0.01), (before, after)
    assert summary["floss"]["k"] == 1


def test_floss_during_training_adds_the_regulariser_and_a_resumed_run_repeats_it(tmp_path):
    def args(steps):
        return [*FLOSS[:-4], "--floss-steps", "5", "--floss-every", "3", "--floss-weight", "0.5", "--steps",
                str(steps), "--eval-every", "4", "--checkpoint-every", "4", "--quiet"]

    assert main(["train", *args(12), "--out", str(tmp_path / "whole")]) == 0
    recs = _metrics(tmp_path / "whole")
    assert [r["step"] for r in recs if "floss" in r] == [3, 6, 9, 12]
    assert all(r["floss"] > 0 for r in recs if "floss" in r)
    assert main(["train", *args(8), "--out", str(tmp_path / "part")]) == 0
    assert main(["train", *args(12), "--out", str(tmp_path / "part"), "--resume"]) == 0
    assert _metrics(tmp_path / "part") == recs
    a, b = (Model.load(tmp_path / d / "model.npz") for d in ("whole", "part"))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("whole", "part"))
    assert sa["floss"] == sb["floss"]


def test_the_update_with_floss_is_the_training_gradient_plus_the_weighted_regulariser(tmp_path):
    base = {"task": "temporal", "length": 10, "hidden": 5, "batch": 3, "steps": 1, "dtype": "float64",
            "optimizer": "sgd", "lr": 0.1, "clip_norm": 0, "seed": 2}
    train(resolve({**base, "floss": 2, "floss_steps": 0, "floss_every": 1, "floss_weight": 0.25}), tmp_path / "f",
          progress=False)
    train(resolve(base), tmp_path / "p", progress=False)
    cfg = resolve({**base, "floss": 2, "floss_steps": 0})
    task = build_task(cfg)
    start = initial_model(cfg, task)
    x, _ = task.batch(np.random.default_rng([cfg.seed, 1]), cfg.batch)  # the first update's batch
    _, g, _ = bptt.floss.flossing(start, x, 2)
    f, p = (Model.load(tmp_path / d / "model.npz") for d in ("f", "p"))
    for k in start.params:  # SGD: the two runs differ by -lr * weight * the regulariser's gradient
        np.testing.assert_allclose(f.params[k] - p.params[k], -0.1 * 0.25 * g[k], rtol=1e-9, atol=1e-14)


def test_floss_settings_are_checked(capsys):
    with pytest.raises(ValueError, match="floss applies to the rnn, lstm cells .* not to cell 'gru'"):
        resolve({"task": "adding", "cell": "gru", "floss": 1})
    with pytest.raises(ValueError, match="floss_every belongs to gradient flossing: give floss"):
        resolve({"task": "adding", "floss_every": 3})
    with pytest.raises(ValueError, match="floss .k = 9. can be at most the 8 exponents"):
        resolve({"task": "adding", "hidden": 8, "floss": 9})
    with pytest.raises(ValueError, match="floss must be an integer >= 1"):
        resolve({"task": "adding", "floss": 0})
    with pytest.raises(ValueError, match="param keeps it orthogonal"):
        resolve({"task": "adding", "floss": 1, "param": "exp"})
    with pytest.raises(ValueError, match="floss_lr must be a positive number"):
        resolve({"task": "adding", "floss": 1, "floss_lr": -1.0})
    cfg = resolve({"task": "adding", "floss": 2})
    assert (cfg.floss_steps, cfg.floss_every, cfg.floss_weight, cfg.floss_lr) == (100, 0, 1.0, 0.003)
    assert main(["train", "--task", "adding", "--cell", "gru", "--floss", "1", "--out", "nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "floss applies to the rnn, lstm cells" in err[0]


def test_toml_takes_floss(tmp_path):
    from bptt.train import read_toml

    (tmp_path / "c.toml").write_text("[train]\ntask = 'adding'\nfloss = 2\nfloss_every = 10\nfloss_weight = 2\n")
    cfg = resolve({}, read_toml(tmp_path / "c.toml"))
    assert (cfg.floss, cfg.floss_every, cfg.floss_weight) == (2, 10, 2.0)


def test_a_checkpoint_without_its_flossing_record_is_refused(tmp_path):
    cfg = resolve({"task": "temporal", "length": 10, "hidden": 4, "batch": 2, "steps": 4, "checkpoint_every": 2,
                   "floss": 1, "floss_steps": 2})
    train(cfg, tmp_path, progress=False)
    ck = tmp_path / "checkpoint.npz"
    with np.load(ck) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["floss"] = {"k": 1}
    np.savez(ck, meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match="needs its record of flossing before training"):
        train(resolve({**cfg.to_dict(), "steps": 6}), tmp_path, resume=True, progress=False)
