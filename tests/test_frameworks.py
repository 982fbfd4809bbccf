"""bptt against PyTorch, JAX and TensorFlow autodiff (float64), and the compare() harness.

Every case runs through bptt.frameworks.compare: loss first, then each gradient by name, each
held to 1e-10 relative error (floored denominator). The frameworks differentiate the model
themselves; truncation is their own stop-gradient construction.

JAX runs eagerly and compiles each operation once per (N, D, H, O), so its random cases draw
those sizes from a small pool (T, K, activations, heads and everything else vary freely);
PyTorch and TensorFlow take fully random sizes.
"""
import dataclasses
import json
import re

import numpy as np
import pytest
from conftest import need
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bptt
from bptt import frameworks as fw
from bptt.frameworks.stress import ambiguous
from bptt.frameworks.stress import random_case as make_case

pytestmark = pytest.mark.frameworks

ACTS = ["tanh", "relu", "sigmoid", "identity"]
JAX_SIZES = [(1, 3, 4, 3), (2, 3, 4, 3), (3, 2, 2, 4)]  # (N, D, H, O); the fixed cases below reuse them


@st.composite
def cases(draw, sizes=None):
    if sizes is None:
        N, D, H, O = (draw(st.integers(1, n)) for n in (3, 4, 5, 4))
    else:
        N, D, H, O = draw(st.sampled_from(sizes))
    T = draw(st.integers(1, 6))
    batched = N > 1 or draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kw = dict(activation=draw(st.sampled_from(ACTS)), head=draw(st.sampled_from(["softmax", "mse"])),
              b=draw(st.booleans()), c=draw(st.booleans()), dense=draw(st.booleans()), h0=draw(st.booleans()),
              mask=draw(st.booleans()))
    m, x, y, h0 = make_case(rng, N, T, D, H, O, batched=batched, **kw)
    assume(not ambiguous(x, D))
    truncate = draw(st.sampled_from([None, 0, 1, 3, T, T + 2]))
    reduction = draw(st.sampled_from(["sum", "mean"]))
    return m, x, y, dict(truncate=truncate, h0=h0, reduction=reduction)


def assert_agrees(name, m, x, y, **kw):
    result = fw.compare(m, x, y, frameworks=[name], **kw)
    assert [r.quantity for r in result.rows] == ["loss", *m.params, "h0"]
    assert result.passed, f"\n{m!r}, {kw}\n{result}"
    return result


SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=40, **SETTINGS)
@given(case=cases())
def test_torch_agrees_on_random_cases(case):
    need("torch")
    m, x, y, kw = case
    assert_agrees("torch", m, x, y, **kw)


@settings(max_examples=25, **SETTINGS)
@given(case=cases())
def test_tensorflow_agrees_on_random_cases(case):
    need("tensorflow")
    m, x, y, kw = case
    assert_agrees("tensorflow", m, x, y, **kw)


@settings(max_examples=15, **SETTINGS)
@given(case=cases(sizes=JAX_SIZES))
def test_jax_agrees_on_random_cases(case):
    need("jax")
    m, x, y, kw = case
    assert_agrees("jax", m, x, y, **kw)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
@pytest.mark.parametrize("activation", ACTS)
def test_every_framework_and_activation_with_everything_on(name, activation):
    """Biases, a batch, h0, masked targets, both heads, dense and ids, mean, every window."""
    need(name)
    rng = np.random.default_rng(ACTS.index(activation))
    for head, dense, K in [("softmax", False, 2), ("mse", True, 1), ("softmax", True, None), ("mse", False, 0)]:
        m, x, y, h0 = make_case(rng, 2, 5, 3, 4, 3, batched=True, activation=activation, head=head,
                                b=True, c=True, dense=dense, h0=True, mask=True)
        assert_agrees(name, m, x, y, truncate=K, h0=h0, reduction="mean" if dense else "sum")


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_the_notebook_example(name):
    need(name)
    m, x, y = bptt.seed_example()
    for K in (None, 0, 1, 3):
        assert_agrees(name, m, x, y, truncate=K)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_truncation_is_really_applied_by_the_framework(name):
    """K = 0 changes W's gradient and leaves V's alone; every K >= T gives full BPTT."""
    need(name)
    ref = fw.reference(name)
    m, x, y, h0 = make_case(np.random.default_rng(7), 2, 5, 3, 4, 3, batched=True, activation="tanh",
                            head="softmax", b=True, c=True, dense=False, h0=True, mask=False)
    _, full = ref.gradients(m, x, y, h0=h0)
    _, k0 = ref.gradients(m, x, y, h0=h0, truncate=0)
    assert np.abs(full["W"] - k0["W"]).max() > 1e-3
    np.testing.assert_allclose(full["V"], k0["V"], rtol=1e-13)
    assert np.all(k0["h0"] == 0)  # K = 0: no output's window reaches s_{-1}
    _, k4 = ref.gradients(m, x, y, h0=h0, truncate=4)  # K = T - 1: output T-1 starts at h0, stopped
    assert np.abs(k4["h0"] - full["h0"]).max() > 1e-6
    for K in (5, 9):
        _, kT = ref.gradients(m, x, y, h0=h0, truncate=K)
        for k in full:
            np.testing.assert_allclose(kT[k], full[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_relu_derivative_at_exactly_zero_is_zero_everywhere(name):
    """z_0 = 0 exactly (h0 = 0 and U's column of token 0 is zero): every framework and bptt use
    relu'(0) = 0, so dE/dU for that column (it meets only z_0) is exactly zero, not W^T delta_1 + ..."""
    need(name)
    U = np.array([[0.0, 0.5, -0.3], [0.0, -0.4, 0.8]])
    m = bptt.RNN(U=U, W=np.array([[0.9, -0.2], [0.3, 0.7]]), V=np.array([[1.0, -1.0], [0.5, 0.2]]),
                 activation="relu")
    x, y = np.array([0, 1, 2]), np.array([1, 0, 1])
    assert np.all(bptt.forward(m, x).z[0] == 0)
    _, g = fw.reference(name).gradients(m, x, y)
    assert np.all(g["U"][:, 0] == 0)
    assert np.any(g["U"][:, 1:] != 0)
    assert_agrees(name, m, x, y)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
@pytest.mark.parametrize("param", ["W", "U", "b"])
def test_terms_from_untied_weights_match_flow(name, param):
    need(name)
    rng = np.random.default_rng(3)
    m, x, y, h0 = make_case(rng, 1, 5, 3, 4, 3, batched=False, activation="tanh", head="softmax",
                            b=True, c=True, dense=param == "U", h0=True, mask=False)
    fl = bptt.flow(m, x, y, h0=h0)
    for t in (0, 2, 4):
        theirs = fw.reference(name).terms(m, x, y, param, t, h0=h0)
        ours = fl.terms(param, t)
        assert theirs.shape == ours.shape == (5,) + m.params[param].shape
        assert np.all(theirs[t + 1:] == 0)
        abs_err, rel_err = fw.relative_error(ours, theirs)
        assert rel_err <= 1e-10, (t, abs_err, rel_err)
        assert np.abs(theirs[:t + 1]).max() > 0


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_terms_reject_bad_arguments(name):
    need(name)
    m, x, y = bptt.seed_example()
    ref = fw.reference(name)
    with pytest.raises(ValueError, match="W, U and b"):
        ref.terms(m, x, y, "V", 0)
    with pytest.raises(ValueError, match="no bias b"):
        ref.terms(m, x, y, "b", 0)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        ref.terms(m, x, y, "W", 3)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_framework_side_rejects_bad_input_like_the_engine(name):
    need(name)
    m, x, y = bptt.seed_example()
    ref = fw.reference(name)
    with pytest.raises(ValueError, match="token id 7"):
        ref.gradients(m, [1, 7, 0], y)
    with pytest.raises(ValueError, match="truncate"):
        ref.gradients(m, x, y, truncate=-1)
    with pytest.raises(ValueError, match="reduction"):
        ref.gradients(m, x, y, reduction="avg")


# --- the harness itself ---------------------------------------------------------------------------
def test_available_lists_what_imports():
    names = fw.available()
    assert set(names) <= set(fw.FRAMEWORKS)
    for name in ("torch", "jax", "tensorflow"):
        need(name)
        assert name in names


def test_relative_error_never_passes_nan_or_a_wrong_shape():
    assert fw.relative_error(np.zeros(3), np.zeros(3)) == (0.0, 0.0)  # exact zeros agree
    assert fw.relative_error(np.zeros(3), np.array([0, 1e-300, 0]))[1] == 1.0  # 0 vs tiny: floor is tiny
    assert np.isnan(fw.relative_error(np.zeros(2), np.array([np.nan, 0]))[1])
    assert np.isnan(fw.relative_error(np.array([np.inf]), np.array([np.inf]))[1])
    assert fw.relative_error(np.zeros(2), np.zeros(3))[1] == np.inf
    # an entry far below the largest one is held to the floor, 1e-6 of the largest
    a, b = np.array([1.0, 1e-9]), np.array([1.0, 2e-9])
    assert fw.relative_error(a, b)[1] == pytest.approx(1e-9 / 1e-6)


def test_compare_reports_a_wrong_gradient(monkeypatch):
    """The harness can fail: perturb the engine's W gradient by 1e-8 relative; only W fails."""
    need("torch")
    import bptt.backend

    real = bptt.backend.gradients

    def off(*a, **kw):
        loss, g = real(*a, **kw)
        return loss, g.replace(W=g.W * (1 + 1e-8))

    monkeypatch.setattr(bptt.backend, "gradients", off)
    m, x, y = bptt.seed_example()
    result = fw.compare(m, x, y, frameworks=["torch"])
    assert not result.passed
    assert [r.quantity for r in result.failures()] == ["W"]
    for backend in ("reference", "fast"):  # unperturbed, each backend passes
        monkeypatch.setattr(bptt.backend, "gradients", real)
        assert fw.compare(m, x, y, frameworks=["torch"], backend=backend).passed
    assert "FAIL" in str(result)


def test_compare_result_is_frozen_printable_and_json():
    need("torch")
    m, x, y = bptt.seed_example()
    result = fw.compare(m.astype(np.float32), x, y, frameworks="torch", truncate=1)
    assert result.passed and result.frameworks == ["torch"] and result.truncate == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rtol = 1.0
    text = str(result)
    for q in ("loss", "U", "W", "V", "h0"):
        assert re.search(rf"^torch +{q} +\d\.\d\de[-+]\d+ +\d\.\d\de[-+]\d+ +ok$", text, re.M), text
    assert text.splitlines()[-1].startswith("passed: float64, truncate=1")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is True and [r["quantity"] for r in data["rows"]] == ["loss", "U", "W", "V", "h0"]
    assert all(r["max_rel_err"] <= 1e-10 for r in data["rows"])


def test_compare_rejects_bad_arguments():
    m, x, y = bptt.seed_example()
    with pytest.raises(ValueError, match="unknown framework 'mxnet'"):
        fw.compare(m, x, y, frameworks=["mxnet"])
    with pytest.raises(ValueError, match="rtol"):
        fw.compare(m, x, y, frameworks=["torch"], rtol=-1)
    with pytest.raises(ValueError, match="no reference framework"):
        fw.compare(m, x, y, frameworks=[])


def test_compare_is_exported_and_import_bptt_stays_light():
    import subprocess
    import sys

    assert bptt.compare is fw.compare
    code = "import sys, bptt, bptt.frameworks; print(sorted({'torch', 'jax', 'tensorflow', 'keras', 'numba', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stress_command_runs_random_cross_checks(capsys):
    need("torch")
    from bptt.frameworks.stress import main, stress

    r = stress(4, seed=1, frameworks=["torch"])
    assert r["torch"]["cases"] == 4 and r["torch"]["passed"] == 4 and 0 <= r["torch"]["worst_rel_err"] <= 1e-10
    assert main(["--cases", "2", "--frameworks", "torch"]) == 0
    assert re.match(r"torch +2/2 passed, worst relative error \d\.\d\de-\d\d", capsys.readouterr().out)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_references_never_call_the_engine(name, monkeypatch):
    """The frameworks' numbers are their own: with bptt's forward, backward and flow disabled,
    gradients and terms still work."""
    need(name)
    import importlib

    core, fast, flow, backend, heads = (importlib.import_module(f"bptt.{m}")
                                        for m in ("core", "fast", "flow", "backend", "heads"))

    def refuse(*a, **kw):
        raise AssertionError("a reference framework called the engine")

    for mod, attr in [(core, "forward"), (core, "run"), (core, "backward"), (core, "backprop"),
                      (core, "backprop_window"), (core, "gradients"), (fast, "forward"), (fast, "backward"),
                      (fast, "gradients"), (heads, "error"), (flow, "flow"), (backend, "forward"),
                      (backend, "gradients"), (bptt, "forward"), (bptt, "gradients"), (bptt, "flow")]:
        monkeypatch.setattr(mod, attr, refuse)
    m, x, y = bptt.seed_example()
    ref = fw.reference(name)
    loss, g = ref.gradients(m, x, y, truncate=1)
    assert np.isfinite(loss) and set(g) == {"U", "W", "V", "h0"}
    assert ref.terms(m, x, y, "W", 2).shape == (3, 2, 2)
