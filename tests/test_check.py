"""The gradient checker itself: it passes correct gradients on every memory layout, fails wrong
ones, and refuses settings under which it could not fail."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import core
from bptt.check import check, numeric_gradient
from bptt.cli import main
from bptt.commands.check import verify
from bptt.frameworks import _common
from conftest import need


# --- layouts ---------------------------------------------------------------------------------
def fortran(a):
    return np.asfortranarray(a)


def transposed(a):  # what from_keras makes: kernel.T, a view with Fortran strides
    return np.ascontiguousarray(a.T).T if a.ndim == 2 else np.ascontiguousarray(a[::-1])[::-1]


def strided(a):  # every other entry of a twice-as-large array, along every axis
    big = np.full(tuple(2 * n for n in a.shape), 99.0)
    every_other = tuple(slice(None, None, 2) for _ in a.shape)
    big[every_other] = a
    return big[every_other]


def read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


LAYOUTS = {"fortran": fortran, "transposed": transposed, "strided": strided, "read_only": read_only}


def in_layout(arrays, layout):
    """The same values in the given layout; 'mixed' gives each array the next layout in turn."""
    names = list(LAYOUTS)
    out = {}
    for i, (k, v) in enumerate(arrays.items()):
        f = LAYOUTS[names[i % len(names)]] if layout == "mixed" else LAYOUTS[layout]
        out[k] = f(np.asarray(v, dtype=np.float64))
        np.testing.assert_array_equal(out[k], v)
    return out


def cases():
    """(name, model, x, y, h0): the notebook's model, and a batched model with biases."""
    m, x, y = bptt.seed_example()
    yield "seed_example", m, x, y, np.array([0.3, -0.2])
    m = bptt.random_rnn(5, 4, 3, seed=0, bias=True)
    rng = np.random.default_rng(1)
    m = m.replace(b=rng.normal(0, 0.3, 5), c=rng.normal(0, 0.3, 3))  # zero biases would hide an order error
    x, y = rng.integers(0, 4, (2, 6)), rng.integers(0, 3, (2, 6))
    yield "random_rnn", m, x, y, rng.normal(0, 0.5, (2, 5))


CASES = {name: (m, x, y, h0) for name, m, x, y, h0 in cases()}


@pytest.mark.parametrize("layout", list(LAYOUTS) + ["mixed"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_correct_model_passes_in_every_memory_layout(case, layout):
    m, x, y, h0 = CASES[case]
    arrays = in_layout({**m.params, "h0": h0}, layout)
    h0_laid = arrays.pop("h0")
    model = bptt.RNN(**arrays, activation=m.activation, head=m.head)
    if layout in ("fortran", "transposed"):  # the model really keeps the layout the old checker broke on
        assert not model.U.flags.c_contiguous and not model.W.flags.c_contiguous
    report = check(model, x, y, h0=h0_laid)
    assert report.passed, str(report)
    assert [r.name for r in report.rows] == list(m.params) + ["h0"]
    for r in report.rows:
        assert r.checked == r.total and r.max_rel < 1e-7, str(report)
    # the values are the same ones, so the loss is too
    assert report.loss == pytest.approx(check(m, x, y, h0=h0).loss, rel=1e-13)


def test_a_model_from_keras_passes():
    """The issue's case: from_keras copies kernel.T, so U, W and V are Fortran-ordered."""
    need("keras")
    from bptt.frameworks import from_keras, to_keras

    m, x, y, h0 = CASES["random_rnn"]
    rnn, dense = to_keras(m)
    back = from_keras(rnn, dense)
    assert back.U.flags.f_contiguous and not back.U.flags.c_contiguous
    report = check(back, x, y, h0=h0)
    assert report.passed and all(r.max_rel < 1e-7 for r in report.rows), str(report)


def test_numeric_gradient_perturbs_the_array_it_is_given_whatever_its_layout():
    theta = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    weights = np.arange(1.0, 7.0).reshape(2, 3)

    def fun():  # E = sum w * theta^2, dE/dtheta = 2 w theta
        return float(np.sum(weights * theta**2)), None

    values, kink = numeric_gradient(fun, theta, np.arange(6), 1e-4)
    np.testing.assert_allclose(values, (2 * weights * np.arange(6.0).reshape(2, 3)).ravel(), rtol=1e-9)
    assert not kink.any()
    np.testing.assert_array_equal(theta, np.arange(6.0).reshape(2, 3))  # restored
    with pytest.raises(ValueError, match="writeable"):
        numeric_gradient(fun, read_only(theta), [0], 1e-4)


# --- a wrong gradient fails ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["C", "transposed"])
@pytest.mark.parametrize("name", ["U", "W", "V", "b", "c", "h0"])
def test_one_wrong_entry_fails_its_row(name, layout):
    m, x, y, h0 = CASES["random_rnn"]
    if layout != "C":
        arrays = in_layout(m.params, layout)
        m = bptt.RNN(**arrays, activation=m.activation, head=m.head)
    _, g = bptt.gradients(m, x, y, h0=h0)
    right = check(m, x, y, grads=g, h0=h0)
    assert right.passed, str(right)

    a = np.array(g.h0 if name == "h0" else g.params[name])
    at = np.unravel_index(np.argmax(np.abs(a)), a.shape)
    a[at] *= 1 + 1e-3
    wrong = bptt.Grads(g.params, (a,)) if name == "h0" else bptt.Grads({**g.params, name: a}, g.state0)
    report = check(m, x, y, grads=wrong, h0=h0)
    assert not report.passed
    assert not report[name].passed and report[name].max_rel > 1e-4
    assert all(r.passed for r in report.rows if r.name != name), str(report)
    row = next(line for line in str(report).splitlines() if line.split()[0] == name)
    assert row.rstrip().endswith("FAIL")


# --- settings under which a check could not fail ---------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    ({"tol": -1}, "tol must be a finite number in (0, 1), got -1"),
    ({"tol": 0}, "tol must be a finite number in (0, 1), got 0"),
    ({"tol": 1.0}, "tol must be a finite number in (0, 1), got 1.0"),
    ({"tol": 5}, "tol must be a finite number in (0, 1), got 5"),
    ({"tol": math.nan}, "tol must be a finite number in (0, 1), got nan"),
    ({"tol": math.inf}, "tol must be a finite number in (0, 1), got inf"),
    ({"tol": True}, "tol must be a finite number in (0, 1), got True"),
    ({"tol": "1e-6"}, "tol must be a finite number in (0, 1), got '1e-6'"),
    ({"step": 0}, "step must be a finite number > 0, got 0"),
    ({"step": -1e-4}, "step must be a finite number > 0, got -0.0001"),
    ({"step": math.nan}, "step must be a finite number > 0, got nan"),
    ({"step": math.inf}, "step must be a finite number > 0, got inf"),
    ({"step": None}, "step must be a finite number > 0, got None"),
    ({"floor": -1e-6}, "floor must be a finite number in [0, 1]"),
    ({"floor": 2.0}, "floor must be a finite number in [0, 1]"),
    ({"floor": math.nan}, "floor must be a finite number in [0, 1], got nan"),
    ({"max_entries": 0}, "max_entries must be an integer >= 1, got 0"),
    ({"max_entries": -3}, "max_entries must be an integer >= 1, got -3"),
    ({"max_entries": 2.5}, "max_entries must be an integer >= 1, got 2.5"),
    ({"max_entries": 10.0}, "max_entries must be an integer >= 1, got 10.0"),
    ({"max_entries": True}, "max_entries must be an integer >= 1, got True"),
    ({"reduction": "avg"}, "reduction must be 'sum' or 'mean', got 'avg'"),
])
def test_impossible_settings_are_value_errors(kwargs, words):
    m, x, y = bptt.seed_example()
    with pytest.raises(ValueError) as e:
        check(m, x, y, **kwargs)
    assert words in str(e.value)


def test_settings_at_their_limits_still_check():
    m = bptt.random_rnn(3, 4, 2, seed=2)
    x, y = np.array([0, 1, 1, 0]), np.array([1, 0, 0, 1])  # words 2 and 3 never come: U[:, 2:] has zero gradient
    report = check(m, x, y, floor=0.0)
    # an entry the loss does not depend on: both gradients exactly 0, and 0 vs 0 is error 0 (not 0/0, not 1)
    assert report.passed and all(r.max_rel < 1e-7 for r in report.rows), str(report)
    m, x, y = bptt.seed_example()
    assert check(m, x, y, floor=1.0, tol=np.float32(1e-6), max_entries=np.int64(1)).passed
    report = check(m, x, y, max_entries=1)
    assert all(r.checked == 1 for r in report.rows)


# --- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["check", "--truncate", "-1"], "--truncate must be an integer K >= 0 (leave it out for full BPTT), got -1"),
    (["check", "--truncate", "2", "--frameworks", "none"], "nothing to check: truncate=2 < T=10"),
])
def test_check_command_refuses_a_check_of_nothing(argv, words, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "all checks passed" not in out
    assert err.count("\n") == 1 and words in err


def test_check_command_truncate_minus_one_as_a_user_runs_it():
    exe = Path(sys.executable).with_name("bptt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bptt.cli"]
    out = subprocess.run(cmd + ["check", "--truncate", "-1"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr.count("\n") == 1 and "--truncate" in out.stderr and "-1" in out.stderr


def test_verify_takes_the_truncation_through_the_engine_check():
    m, x, y = bptt.seed_example()
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError, match=r"truncate must be None \(full BPTT\) or an integer K >= 0"):
            verify(m, x, y, truncate=bad, frameworks="none")
    ok, _, data = verify(m, x, y, truncate=np.int64(3), frameworks="none")  # K >= T: full BPTT, checked
    assert ok and data["finite_differences"]["passed"]


# --- one truncation check for the engine and the frameworks ----------------------------------
@pytest.mark.parametrize("bad", [1.0, 2.5, -1, True, np.True_, "3"])
def test_frameworks_and_engine_refuse_the_same_truncations_with_the_same_words(bad):
    m, x, y = bptt.seed_example()
    with pytest.raises(ValueError) as ours:
        bptt.gradients(m, x, y, truncate=bad)
    with pytest.raises(ValueError) as theirs:
        _common.problem(m, x, y, truncate=bad)
    assert str(ours.value) == str(theirs.value) == f"truncate must be None (full BPTT) or an integer K >= 0, got {bad!r}"


def test_frameworks_problem_uses_the_engine_truncation_check(monkeypatch):
    seen = []
    real = core.truncation
    monkeypatch.setattr(core, "truncation", lambda t: seen.append(t) or real(t))
    m, x, y = bptt.seed_example()
    assert _common.problem(m, x, y, truncate=np.int64(2)).K == 2
    assert seen == [2]


# --- check checks what runs ------------------------------------------------------------------------
def test_check_reports_the_backend_it_checked_and_catches_a_wrong_fast_gradient(monkeypatch):
    from bptt import fast

    m = bptt.random_model("lstm", 4, 3, 3, seed=0)
    x, y = [0, 1, 2, 1], [2, 1, 0, 0]
    assert fast.supports(m)
    assert check(m, x, y).backend == "fast" and check(m, x, y).passed
    assert check(m, x, y, backend="reference").backend == "reference"
    real = fast.gradients

    def wrong(*args, **kwargs):  # what a broken kernel would return: W's gradient doubled
        loss, g = real(*args, **kwargs)
        return loss, g.replace(W=2 * g.W)

    monkeypatch.setattr(fast, "gradients", wrong)
    report = check(m, x, y)
    assert report.backend == "fast" and not report["W"].passed and report["U"].passed
    assert check(m, x, y, backend="reference").passed


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru-before", "rnn"])
def test_bptt_check_takes_every_cell(cell, capsys):
    assert main(["check", "--cell", cell, "--hidden", "4", "--length", "6", "--frameworks", "none"]) == 0
    out = capsys.readouterr().out
    assert "the fast backend's gradients against finite differences" in out and "all checks passed" in out


def test_bptt_check_reads_a_model_file_of_any_cell(tmp_path, capsys):
    path = tmp_path / "gru.npz"
    bptt.random_model("gru", 3, 4, 4, seed=1, reset_after=False).save(path)
    assert main(["check", "--model", str(path), "--length", "5", "--frameworks", "none"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("GRU(H=3, D=4, O=4, reset_after=False") and "all checks passed" in out
