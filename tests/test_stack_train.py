"""Training a bptt.Stack (bptt train --layers L --bidirectional; bptt.train.stacked).

The command line through its real entry point (python -m bptt.cli): a 2-layer LSTM and a 2-layer
bidirectional GRU train, and a run stopped at a checkpoint and resumed ends with the uninterrupted
run's metrics and weights bit for bit; a stream carries every layer's state; the first update
equals the one finite differences of the loss give; the refusals.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import stack as stacks
from bptt.cli import main
from bptt.stack import Stack, load_model, random_stack
from bptt.tasks import Vocab, sample
from bptt.train import Stream, resolve, train
from bptt.train.loop import build_task, initial_model

from conftest import sentence

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "bptt.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def _metrics(d):
    return [json.loads(line) for line in (Path(d) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("cell, extra, kind", [("lstm", [], "LSTM"), ("gru", ["--bidirectional"], "GRU")])
def test_the_cli_trains_a_stack_and_a_resumed_run_repeats_the_uninterrupted_one(tmp_path, cell, extra, kind):
    args = ["train", "--task", "temporal", "--length", "10", "--cell", cell, "--layers", "2", *extra, "--hidden", "5",
            "--batch", "4", "--eval-every", "3", "--checkpoint-every", "3", "--optimizer", "adam", "--lr", "0.01",
            "--clip-norm", "0.5", "--quiet"]
    whole = _cli(*args, "--steps", "6", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    half = _cli(*args, "--steps", "3", "--out", str(tmp_path / "half"))
    assert half.returncode == 0, half.stderr
    resumed = _cli(*args, "--steps", "6", "--out", str(tmp_path / "half"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _metrics(tmp_path / "whole"), _metrics(tmp_path / "half")
    assert a == b and [r["step"] for r in a] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in a)
    assert all(r["grad_norm_clipped"] <= 0.5 * (1 + 1e-6) for r in a)  # the global norm over every layer
    assert any(r["grad_norm"] > 0.5 for r in a)  # so the clipping acted
    m, n = load_model(tmp_path / "whole" / "model.npz"), load_model(tmp_path / "half" / "model.npz")
    assert isinstance(m, Stack) and m.depth == 2 and m.directions == ((2, 2) if extra else (1, 1))
    assert type(m.layers[0][0]).__name__ == kind and m.H == 5
    assert m.params.keys() == n.params.keys()
    for k in m.params:
        np.testing.assert_array_equal(m.params[k], n.params[k])
    meta = json.loads((tmp_path / "half" / "checkpoint.json").read_text())
    assert meta["model_kind"] == "Stack" and meta["stack"] == m.describe()
    ev = _cli("evaluate", str(tmp_path / "whole"), "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["loss"] == pytest.approx(a[-1]["test_loss"], rel=1e-12)
    # rho / lambda1: the largest over the layers' own; lag_fraction the top layer's (none both ways)
    lam = max(bptt.theory.recurrence_norms(layer)[1] for _, _, layer in m.entries)
    assert a[-1]["lambda1"] == pytest.approx(lam, rel=1e-12)
    assert (a[-1]["lag_fraction"] is None) == bool(extra)


def test_a_stream_carries_every_layers_state_and_resumes_bit_for_bit(tmp_path, capsys):
    base = dict(task="reber", cell="lstm", layers=2, hidden=5, batch=3, chunk=5, backprop=8, eval_every=2,
                checkpoint_every=2)
    train(resolve({**base, "steps": 8}), tmp_path / "whole", progress=False)
    train(resolve({**base, "steps": 4}), tmp_path / "half", progress=False)
    train(resolve({**base, "steps": 8}), tmp_path / "half", resume=True, progress=False)
    assert _metrics(tmp_path / "whole") == _metrics(tmp_path / "half")
    with np.load(tmp_path / "half" / "checkpoint.npz") as f:
        assert f["extra/h"].shape == f["extra/c"].shape == (2, 3, 5)  # (L, N, H): every layer's state
    a, b = load_model(tmp_path / "whole" / "model.npz"), load_model(tmp_path / "half" / "model.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert main(["sample", str(tmp_path / "whole"), "-n", "25", "--seed", "3"]) == 0
    text = capsys.readouterr().out.strip()
    assert len(text) == 25 and set(text) <= set("BTPSXVE")


def test_the_carried_state_is_the_forward_pass_over_the_stream_so_far():
    """With fixed weights, the state a stream carries into each window equals every layer's state
    after a forward pass over the whole stream up to the window's start."""
    stack = random_stack("gru", 4, 6, 6, layers=3, seed=2)
    data = np.random.default_rng(0).integers(0, 6, (2, 40))
    stream = Stream(data, 3, 7)
    for _ in range(8):
        x, y, h0 = stream.window((4,), stack.dtype, 3)
        assert h0.shape == (3, 2, 4)
        if stream.ws:
            np.testing.assert_allclose(h0, stacks.forward(stack, data[:, :stream.ws]).final, rtol=0, atol=1e-14)
        else:
            assert not h0.any()
        stream.advance(stacks.forward(stack, x, h0))


def test_the_first_update_is_the_one_finite_differences_give():
    cfg = resolve({"task": "temporal", "length": 10, "cell": "lstm", "layers": 2, "hidden": 3, "batch": 3,
                   "steps": 1, "optimizer": "sgd", "lr": 0.5, "clip_norm": 0, "dtype": "float64", "eval_every": 1})
    task = build_task(cfg)
    start = initial_model(cfg, task)
    x, y = task.batch(np.random.default_rng([cfg.seed, 1]), cfg.batch)  # the loop's first batch
    want = {}
    for k, p in start.params.items():
        g = np.zeros(p.size)
        for i in range(p.size):
            e = np.zeros(p.size)
            e[i] = 1e-6
            up, down = (stacks.loss(start.replace(**{k: p + s * e.reshape(p.shape)}), x, y, reduction="mean")
                        for s in (1, -1))
            g[i] = (up - down) / 2e-6
        want[k] = p - 0.5 * g.reshape(p.shape)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        train(cfg, d, progress=False)
        got = load_model(Path(d) / "model.npz")
    for k in want:
        np.testing.assert_allclose(got.params[k], want[k], rtol=0, atol=1e-8, err_msg=k)


def test_random_stack():
    one, model = random_stack("lstm", 4, 3, 5, layers=1, seed=7, forget_bias=1.0), \
        bptt.random_model("lstm", 4, 3, 5, seed=7, forget_bias=1.0)
    for k, a in model.params.items():  # one layer: the one-layer model's draw, by the flat names
        np.testing.assert_array_equal(one.params[k if k in ("V", "c") else f"{k}_l0"], a)
    s = random_stack("gru", 4, 3, 5, layers=3, bidirectional=True, seed=1, dtype=np.float32)
    assert s.directions == (2, 2, 2) and s.dtype == np.float32
    assert s.U_l0.shape == (12, 3) and s.U_l1.shape == s.U_l2_reverse.shape == (12, 8) and s.V.shape == (5, 8)
    assert not np.array_equal(s.W_l1, s.W_l1_reverse)
    sentence(ValueError, lambda: random_stack("gru", 4, 3, 5, layers=0, seed=1), "layers", "0")
    sentence(ValueError, lambda: random_stack("gru", 4, 3, 5, bidirectional="yes", seed=1), "bidirectional")


def test_load_model_reads_either_file(tmp_path):
    s, m = random_stack("rnn", 3, 2, 2, layers=2, seed=0), bptt.random_model("gru", 3, 2, 2, seed=0)
    s.save(tmp_path / "s.npz")
    m.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "s.npz").describe() == s.describe()
    assert type(load_model(tmp_path / "m.npz")) is type(m)


@pytest.mark.parametrize("args, words", [
    (["--task", "reber", "--layers", "2", "--bidirectional"], ["stream", "bidirectional", "adding, copy, temporal"]),
    (["--task", "temporal", "--layers", "2", "--omega", "1"], ["omega", "one Elman layer"]),
    (["--task", "temporal", "--layers", "2", "--param", "exp"], ["param", "a W per layer"]),
    (["--task", "temporal", "--layers", "2", "--truncate", "3"], ["truncate", "full BPTT"]),
    (["--task", "temporal", "--layers", "2", "--fallback", "shrink"], ["shrink", "stop or skip"]),
    (["--task", "temporal", "--bidirectional", "--snapshots", "0"], ["snapshots", "bidirectional"]),
    (["--task", "temporal", "--layers", "0"], ["layers must be an integer >= 1"]),
])
def test_what_a_stack_cannot_train_is_refused_in_one_line(tmp_path, capsys, args, words):
    assert main(["train", *args, "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "r").exists()


def test_toml_keys_and_a_checkpoint_of_another_shape(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\ntask = "temporal"\nlength = 10\ncell = "gru"\nlayers = 2\nbidirectional = true\n')
    from bptt.train import read_toml
    cfg = resolve({}, read_toml(f))
    assert cfg.layers == 2 and cfg.bidirectional is True and cfg.stacked()
    f.write_text('layers = 2\nbidirectional = "yes"\n')
    sentence(ValueError, lambda: resolve({}, read_toml(f)), "bidirectional must be true or false")
    base = {"task": "temporal", "length": 10, "cell": "gru", "hidden": 4, "batch": 2, "steps": 2, "eval_every": 2}
    train(resolve({**base, "layers": 2}), tmp_path / "r", progress=False)
    sentence(ValueError, lambda: train(resolve({**base, "layers": 3, "steps": 4}), tmp_path / "r", resume=True,
                                       progress=False), "holds the stack", "GRU(H=4), GRU(H=4), GRU(H=4)")
    sentence(ValueError, lambda: train(resolve({**base, "steps": 4}), tmp_path / "r", resume=True, progress=False),
             "Stack", "GRU")


def test_sampling_refuses_a_bidirectional_stack():
    vocab = Vocab(list("abc"))
    s = random_stack("lstm", 4, 3, 3, layers=2, seed=0)
    assert len(sample(s, vocab, 10, seed=0, start="ab")) == 10
    two = random_stack("lstm", 4, 3, 3, layers=2, bidirectional=True, seed=0)
    sentence(ValueError, lambda: sample(two, vocab, 10, seed=0), "bidirectional", "cannot sample")
