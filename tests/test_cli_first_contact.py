"""What a first run of the command line shows: a line before every long silence (the frameworks'
imports, a long cross-check), every default in --help, --quiet that keeps the result, the copy
task's loss and smoothed loss in one unit, check saying why it compared a sample, and sample
echoing its priming text."""
import argparse
import json
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from bptt.cli import HelpFormatter, build_parser, main


def _fake_compare(calls):
    """A stand-in for bptt.frameworks.compare that records its call and passes (no framework import)."""
    def compare(model, x, y, frameworks=(), **kw):
        calls.append(("compare", tuple(frameworks)))
        row = SimpleNamespace(max_rel_err=1e-13)
        return SimpleNamespace(passed=True, rows=[row], to_dict=lambda: {"passed": True},
                               __str__=lambda self=None: "frameworks: pass")
    return compare


@pytest.fixture
def not_imported(monkeypatch):
    """The frameworks as if not imported yet (sys.modules restored afterwards; nothing imports them here)."""
    for name in ("torch", "jax", "tensorflow"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_announce_names_each_framework_still_to_import_and_the_wait(not_imported):
    from bptt.frameworks.stress import announce

    said = []
    line = announce(["torch", "jax", "tensorflow"], said.append)
    assert said == [line] and line.startswith("importing PyTorch, JAX and TensorFlow (about ")
    assert int(line.split("about ")[1].split(" s")[0]) >= 10
    assert announce(["jax"], said.append) == "importing JAX (about 3 s)..."


def test_announce_is_silent_for_frameworks_already_imported(monkeypatch):
    from bptt.frameworks.stress import announce

    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace())
    said = []
    assert announce(["torch"], said.append) is None and said == []


@pytest.mark.parametrize("argv", [["check", "--frameworks", "torch,jax"], ["demo"]])
def test_check_and_demo_say_so_on_stderr_before_importing_the_frameworks(argv, monkeypatch, not_imported, capsys):
    from bptt import frameworks

    calls = []
    monkeypatch.setattr(frameworks, "available", lambda: ["torch", "jax"])
    monkeypatch.setattr(frameworks, "compare", _fake_compare(calls))
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "importing PyTorch and JAX (about" in err
    assert calls == [("compare", ("torch", "jax"))]


def test_the_stress_run_reports_progress_as_it_goes(monkeypatch, not_imported):
    from bptt import frameworks
    from bptt.frameworks.stress import stress

    calls, lines = [], []
    monkeypatch.setattr(frameworks, "compare", _fake_compare(calls))
    out = stress(40, frameworks=["torch"], cells=("elman",), progress=lines.append)
    assert out["torch"]["cases"] == 40 and len(calls) == 40
    assert lines[0].startswith("importing PyTorch")
    counts = [int(ln.split(": ")[1].split("/")[0]) for ln in lines[1:]]
    assert counts[-1] == 40 and set(range(2, 41, 2)) <= set(counts)  # at least every twentieth of the cases
    assert all(ln.startswith("torch: ") and "/40 cases, " in ln for ln in lines[1:])


def test_python_m_bptt_frameworks_prints_progress_on_stderr(monkeypatch, not_imported, capsys):
    from bptt import frameworks
    from bptt.frameworks.stress import main as stress_main

    monkeypatch.setattr(frameworks, "compare", _fake_compare([]))
    assert stress_main(["--cases", "20", "--frameworks", "jax", "--cells", "elman"]) == 0
    cap = capsys.readouterr()
    assert "importing JAX" in cap.err and "jax: 20/20 cases, 20 passed" in cap.err
    assert cap.out.startswith("jax") and "20/20 passed" in cap.out


def _options():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for verb, p in sub.choices.items():
        for a in p._actions:
            if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._StoreTrueAction,
                                                       argparse._StoreFalseAction)):
                yield verb, p, a


def test_every_option_of_every_verb_states_its_default_in_help():
    missing = []
    for verb, p, a in _options():
        text = p.formatter_class(verb)._get_help_string(a) % {"default": a.default}
        if "default" not in text.lower() and "required" not in text.lower() and not a.required:
            missing.append(f"{verb} {a.option_strings[0]}")
    assert missing == []
    assert all(p.formatter_class is HelpFormatter for _, p, _ in _options())


@pytest.mark.parametrize("verb, shown", [("sample", ["--seed SEED", "(default: 0)", "(default: none)"]),
                                         ("train", ["(default 0)", "defaults: a flag > --config"])])
def test_help_shows_defaults(verb, shown, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for s in shown:
        assert " ".join(s.split()) in out


def test_quiet_training_hides_the_bar_but_prints_the_result(tmp_path, capsys):
    assert main(["train", "--task", "copy", "--steps", "2", "--hidden", "6", "--length", "8", "--batch", "2",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "train copy" not in cap.err and "%|" not in cap.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert cap.out.startswith(f"test loss {summary['test_loss']:.5g} (memoryless baseline")
    assert f"success: {'yes' if summary['test_success'] else 'no'} (criterion: {summary['criterion']})" in cap.out


def test_the_copy_tasks_smoothed_loss_is_in_the_unit_of_its_loss(tmp_path, capsys):
    assert main(["train", "--task", "copy", "--steps", "3", "--hidden", "6", "--length", "8", "--batch", "2",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "loss (per step)=" in err and "smoothed=" in err
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    from bptt.model import Model
    O = Model.load(tmp_path / "run" / "model.npz").O
    # started at chance per scored step, ln O, then 0.999 s + 0.001 loss: both per step
    assert recs[0]["smooth_loss"] == pytest.approx(0.999 * math.log(O) + 0.001 * recs[0]["loss"], rel=1e-12)
    assert all(0.2 < r["smooth_loss"] / r["loss"] < 5 for r in recs)


def test_check_says_why_it_compared_a_sample_of_W(capsys):
    assert main(["check", "--frameworks", "none", "--activation", "relu"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("W "))
    checked, total = map(int, line.split()[1].split("/"))
    assert checked < total == 64
    assert "a sample of" in line and f"of {total} entries" in line


def test_check_says_nothing_extra_when_every_entry_is_compared(capsys):
    assert main(["check", "--frameworks", "none", "--hidden", "4"]) == 0
    out = capsys.readouterr().out
    assert "a sample of" not in out and "16/16" in out


def test_sample_echoes_its_start_before_the_drawn_text(tmp_path, capsys):
    assert main(["train", "--task", "reber", "--steps", "2", "--hidden", "8", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "run"), "-n", "6", "--start", "BT", "--seed", "3"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    from bptt.model import Model
    from bptt.tasks import Vocab, sample
    vocab = Vocab(json.loads((tmp_path / "run" / "vocab.json").read_text())["chars"])
    drawn = sample(Model.load(tmp_path / "run" / "model.npz"), vocab, 6, seed=3, start="BT")
    assert len(drawn) == 6 and out == "BT" + drawn
    assert np.all([c in vocab.chars for c in out])


@pytest.mark.frameworks
def test_tensorflows_start_up_lines_do_not_reach_the_user():
    import subprocess

    from conftest import need

    need("tensorflow")
    run = subprocess.run([sys.executable, "-m", "bptt.cli", "check", "--cell", "gru", "--hidden", "3", "--length", "4",
                          "--frameworks", "tensorflow"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "all checks passed" in run.stdout, run.stderr
    assert "tensorflow  U" in run.stdout  # TensorFlow did run
    for noise in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard"):
        assert noise not in run.stderr, run.stderr


def test_sweep_help_names_every_public_kind(capsys):
    from bptt.sweep.points import KINDS

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    public = [k for k, kind in KINDS.items() if kind.public]
    assert f"names a kind of run ({', '.join(public[:-1])} or {public[-1]})" in text


def test_a_closed_pipe_ends_the_command_quietly():
    import subprocess

    reader = "import sys; sys.stdin.buffer.read(100)"  # reads a little, then closes the pipe
    cmd = (f"{sys.executable} -m bptt.cli flow --json --length 400 --hidden 64 | {sys.executable} -c '{reader}'; "
           "echo rc=${PIPESTATUS[0]} >&2")
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert run.stderr.strip() == "rc=141", run.stderr  # 128 + SIGPIPE, and not a word more


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_flow_of_one_step_prints_no_warning(cell):
    import subprocess

    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "bptt.cli", "flow", "--cell", cell,
                          "--length", "1", "--batch", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "decay rate - +- - per step" in run.stdout  # no lag to fit a rate on: said as "-"


def test_a_sweep_without_dask_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as in the core install: no Dask
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\nkind = "flow"\n[fixed]\nlength = 60\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["bptt sweep: error: sweeps need Dask and pandas (distributed cannot be "
                                        "imported): pip install 'bptt[sweep]'"]


def test_sample_and_evaluate_say_that_a_run_folder_does_not_exist(tmp_path, capsys):
    for verb in ("sample", "evaluate"):
        assert main([verb, str(tmp_path / "nope")]) == 2
        assert capsys.readouterr().err.strip() == (f"bptt {verb}: error: {tmp_path / 'nope'} does not exist: give a "
                                                   "folder written by `bptt train --out`")


def test_evaluate_prints_each_number_once_and_rounded(tmp_path, capsys):
    assert main(["train", "--task", "temporal", "--length", "10", "--steps", "4", "--hidden", "4", "--out",
                 str(tmp_path), "--quiet"]) == 0
    assert "success: no (criterion: no misclassified" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("baseline" in line for line in lines) == 1 and not any("mse" in line for line in lines)
    loss = next(line for line in lines if line.strip().startswith("loss:"))
    assert len(loss.split(":")[1].strip().replace(".", "")) <= 7  # six significant digits, not a raw float
    assert lines[-1].strip() in ("success: yes", "success: no")


def test_a_divergence_prints_its_numbers_alike():
    from bptt.train.loop import _diverged

    class State:
        step, last_norm, last_norm_step = 9, 12.5, 8

    from pathlib import Path
    text = _diverged(State(), 7864180.123456, 3.037470984263343e+27, Path("/nonexistent/checkpoint.npz"))
    assert "the loss is 3.03747e+27 and the gradient norm is 7.86418e+06" in text


def test_every_verb_starts_a_random_lstm_with_the_same_forget_bias(tmp_path, capsys):
    from bptt.commands._model import FORGET_BIAS
    from bptt.sweep.points import TRAIN_PARAMS
    from bptt.train import resolve

    assert resolve({"cell": "lstm"}).forget_bias == TRAIN_PARAMS["forget_bias"].default == FORGET_BIAS
    assert main(["flow", "--cell", "lstm", "--length", "6", "--hidden", "4", "--json"]) == 0
    mean_f = json.loads(capsys.readouterr().out)["gates"]["f"]["mean"]["mean"]
    assert mean_f > 0.65  # sigma(1 + small): the forget gates start open, as in training


def test_the_stress_run_says_why_a_framework_is_slow(monkeypatch):
    import time

    from bptt import frameworks
    from bptt.frameworks.stress import stress

    fake = _fake_compare([])

    def slow(*args, **kwargs):  # a case that takes as long as JAX's compilation of its shapes
        time.sleep(1.05)
        return fake(*args, **kwargs)

    monkeypatch.setattr(frameworks, "compare", slow)
    monkeypatch.setitem(sys.modules, "jax", sys)  # as if imported: no announcement
    lines = []
    stress(2, frameworks=["jax"], cells=("rnn",), progress=lines.append)
    assert lines[-1].startswith("jax: 2/2 cases, 2 passed, 2 s (1.") and \
        lines[-1].endswith(" s a case: JAX compiles each case's shapes anew)"), lines
