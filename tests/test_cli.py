"""The command line, as a user runs it."""
import json
import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt.cli import COMMANDS, main


def test_demo_reproduces_the_notebook(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    # the states the notebook printed, to its 8 digits (it computed in float32: the first differs in the 8th)
    for row in ("[0.97233045, 0.99800043]", "[0.99943743, 0.99999977]"):
        assert out.count(row) == 2, row
    loss, g = bptt.gradients(*bptt.seed_example(), truncate=3)
    assert f"E = {loss:.10g}" in out
    assert np.array2string(g.W, precision=8, separator=", ", max_line_width=10_000).replace("\n", "") in out
    assert out.count("term k =") == 3
    assert "all checks passed" in out


def test_check_json_reports_every_parameter(capsys):
    code = main(["check", "--hidden", "4", "--inputs", "3", "--outputs", "3", "--length", "6", "--bias",
                 "--frameworks", "none", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["passed"]
    rows = data["finite_differences"]["params"]
    assert [r["name"] for r in rows] == ["U", "W", "V", "b", "c", "h0"]
    assert all(r["max_rel"] < 1e-6 for r in rows)


def test_check_a_model_file(tmp_path, capsys):
    m = bptt.random_rnn(3, 4, 2, seed=1, activation="sigmoid")
    m.save(tmp_path / "m.npz")
    assert main(["check", "--model", str(tmp_path / "m.npz"), "--frameworks", "none"]) == 0
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["check", "--length", "0", "--frameworks", "none"], "--length must be at least 1"),
    (["check", "--activation", "softplus"], "unknown activation 'softplus'"),
    (["check", "--frameworks", "mxnet"], "unknown framework 'mxnet'"),
    (["check", "--model", "/nonexistent/model.npz"], "cannot read a model"),
])
def test_bad_arguments_exit_non_zero_with_a_sentence(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0


def test_installed_entry_point():
    out = subprocess.run([sys.executable, "-m", "bptt.cli", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "check" in out.stdout


def test_train_help_shows_the_defaults_the_settings_resolve_to(capsys):
    """The defaults `bptt train --help` states are the ones resolve() gives, and its table of the tasks'
    paper settings is the tasks' own."""
    from bptt import tasks
    from bptt.train import resolve

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for cls in (tasks.Adding, tasks.Copy, tasks.TemporalOrder, tasks.Reber, tasks.CharLM):
        assert f"{cls.name} " + ", ".join(f"{k} {v}" for k, v in cls.defaults.items()) in text, cls.name
    cfg = resolve({})
    from bptt import cells

    assert f"(default {cfg.task})" in text and f"{' | '.join(cells.names())} (default {cfg.cell}," in text
    assert f"(default {resolve({'cell': 'lstm'}).forget_bias}" in text
    assert "(true, default" in text and resolve({"cell": "gru"}).reset_after is True
    assert "stop (default)" in text and cfg.fallback == "stop"
    assert f"{cfg.dtype} (default)" in text
    for flag, key in (("--eval-every", "eval_every"), ("--checkpoint-every", "checkpoint_every"),
                      ("--lag-threshold", "lag_threshold"), ("--chunk", "chunk"), ("--seed", "seed")):
        meta = flag.lstrip("-").upper().replace("-", "_")
        own = text.split("options:")[1].split(f"{flag} {meta}")[1].split(" --")[0]  # this flag's help
        assert f"(default {getattr(cfg, key)}" in own, (flag, own)
