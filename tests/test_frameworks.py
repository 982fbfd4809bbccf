"""bptt against PyTorch, JAX and TensorFlow autodiff (float64), and the compare() harness.

Every case runs through bptt.frameworks.compare: loss first, then each gradient by name (the
model's params, h0, and c0 for an LSTM), each held to 1e-10 relative error (floored
denominator). The frameworks differentiate the model themselves; truncation is their own
stop-gradient construction. The cells: Elman (bptt.RNN), LSTM, GRU in PyTorch's reset-after form
and in Keras's reset-before form.

JAX runs the Elman cell eagerly, compiling each operation once per (N, D, H, O), and the gated
cells as one jitted program per shape, so its random cases draw sizes (and, for the gated
cells, T) from a small pool (K, heads and everything else vary freely); PyTorch and TensorFlow
take fully random sizes.
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
from bptt import GRU, LSTM

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


GATED = ["lstm", "gru", "gru-before"]  # the variants stress draws from, without the Elman cell
JAX_GATED_SIZES = [(1, 3, 4, 3, 4), (2, 3, 2, 4, 5)]  # (N, D, H, O, T)


@st.composite
def gated_cases(draw, sizes=None):
    """(model, x, y, kwargs) for an LSTM or GRU (either form): biases b, bh, c each on or off, h0
    absent, an array, or for an LSTM the pair (h0, c0); every truncation, head and reduction."""
    cell = draw(st.sampled_from(GATED))
    if sizes is None:
        N, D, H, O = (draw(st.integers(1, n)) for n in (3, 4, 4, 4))
        T = draw(st.integers(1, 6))
    else:
        N, D, H, O, T = draw(st.sampled_from(sizes))
    batched = N > 1 or draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h0 = draw(st.sampled_from(["none", "h0", "pair"] if cell == "lstm" else ["none", "h0"]))
    kw = dict(head=draw(st.sampled_from(["softmax", "mse"])), b=draw(st.booleans()), bh=draw(st.booleans()),
              c=draw(st.booleans()), dense=draw(st.booleans()), h0=h0 != "none", mask=draw(st.booleans()))
    m, x, y, state0 = make_case(rng, N, T, D, H, O, batched=batched, activation="tanh", cell=cell, **kw)
    assume(not ambiguous(x, D))
    if h0 == "h0" and cell == "lstm":
        state0 = state0[0]  # h0 alone: c0 starts at zero
    truncate = draw(st.sampled_from([None, 0, 1, 3, T, T + 2]))
    reduction = draw(st.sampled_from(["sum", "mean"]))
    return m, x, y, dict(truncate=truncate, h0=state0, reduction=reduction)


def quantities(m):
    """The rows compare() gives for a model: loss, its params, h0, and c0 for an LSTM."""
    return ["loss", *m.params, "h0"] + (["c0"] if isinstance(m, LSTM) else [])


def assert_agrees(name, m, x, y, **kw):
    result = fw.compare(m, x, y, frameworks=[name], **kw)
    assert [r.quantity for r in result.rows] == quantities(m)
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


@settings(max_examples=30, **SETTINGS)
@given(case=gated_cases())
def test_torch_agrees_on_random_gated_cases(case):
    need("torch")
    m, x, y, kw = case
    assert_agrees("torch", m, x, y, **kw)


@settings(max_examples=20, **SETTINGS)
@given(case=gated_cases())
def test_tensorflow_agrees_on_random_gated_cases(case):
    need("tensorflow")
    m, x, y, kw = case
    assert_agrees("tensorflow", m, x, y, **kw)


@settings(max_examples=8, **SETTINGS)
@given(case=gated_cases(sizes=JAX_GATED_SIZES))
def test_jax_agrees_on_random_gated_cases(case):
    need("jax")
    m, x, y, kw = case
    assert_agrees("jax", m, x, y, **kw)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
@pytest.mark.parametrize("cell", GATED)
def test_every_framework_and_gated_cell_with_everything_on(name, cell):
    """Every bias, a batch, the initial state ((h0, c0) for an LSTM), masked targets, both heads,
    dense and ids, both reductions, every window; bptt's side on both backends."""
    need(name)
    rng = np.random.default_rng(GATED.index(cell))
    T = 5
    for head, dense, K, reduction in [("softmax", False, None, "sum"), ("mse", True, 0, "mean"),
                                      ("softmax", True, 1, "mean"), ("mse", False, 3, "sum"),
                                      ("softmax", False, T, "sum"), ("mse", True, T + 2, "mean")]:
        m, x, y, h0 = make_case(rng, 2, T, 3, 4, 3, batched=True, activation="tanh", head=head, b=True,
                                bh=True, c=True, dense=dense, h0=True, mask=True, cell=cell)
        for backend in ("reference", "fast"):
            assert_agrees(name, m, x, y, truncate=K, h0=h0, reduction=reduction, backend=backend)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
@pytest.mark.parametrize("cell", GATED)
def test_truncation_of_a_gated_cell_is_really_applied_by_the_framework(name, cell):
    """K = 0 changes W's gradient and leaves V's alone and the initial state's at zero; K = T-1
    (output T-1 restarts from the initial state, stopped) changes h0's (and c0's); K >= T is full."""
    need(name)
    ref = fw.reference(name)
    m, x, y, h0 = make_case(np.random.default_rng(7), 2, 5, 3, 4, 3, batched=True, activation="tanh",
                            head="softmax", b=True, bh=True, c=True, dense=False, h0=True, mask=False, cell=cell)
    state = ["h0", "c0"] if cell == "lstm" else ["h0"]
    _, full = ref.gradients(m, x, y, h0=h0)
    assert sorted(full) == sorted([*m.params, *state])
    _, k0 = ref.gradients(m, x, y, h0=h0, truncate=0)
    assert np.abs(full["W"] - k0["W"]).max() > 1e-3
    np.testing.assert_allclose(full["V"], k0["V"], rtol=1e-13)
    for k in state:
        assert np.all(k0[k] == 0) and np.abs(full[k]).max() > 1e-3
    _, k4 = ref.gradients(m, x, y, h0=h0, truncate=4)
    for k in state:
        assert np.abs(k4[k] - full[k]).max() > 1e-6
    for K in (5, 9):
        _, kT = ref.gradients(m, x, y, h0=h0, truncate=K)
        for k in full:
            np.testing.assert_allclose(kT[k], full[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_the_gru_forms_are_different_networks_in_every_framework(name):
    """The same arrays as reset-after and reset-before GRUs: each framework's loss and gradients
    differ between the forms, and each form agrees with bptt's (so the flag is not ignored)."""
    need(name)
    m, x, y, h0 = make_case(np.random.default_rng(11), 2, 4, 3, 4, 3, batched=True, activation="tanh",
                            head="softmax", b=True, bh=True, c=True, dense=True, h0=True, mask=False, cell="gru")
    before = m.replace(reset_after=False)
    ref = fw.reference(name)
    (la, ga), (lb, gb) = ref.gradients(m, x, y, h0=h0), ref.gradients(before, x, y, h0=h0)
    assert abs(la - lb) > 1e-6 and np.abs(ga["W"] - gb["W"]).max() > 1e-4
    assert_agrees(name, m, x, y, h0=h0)
    assert_agrees(name, before, x, y, h0=h0)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_an_lstm_takes_h0_alone_or_the_pair(name):
    """h0 alone starts c at zero: the same as the pair (h0, 0); dE/dc0 is reported either way."""
    need(name)
    m, x, y, (h0, c0) = make_case(np.random.default_rng(5), 3, 4, 2, 3, 2, batched=True, activation="tanh",
                                  head="mse", b=True, bh=False, c=False, dense=True, h0=True, mask=True,
                                  cell="lstm")
    ref = fw.reference(name)
    la, ga = ref.gradients(m, x, y, h0=h0, truncate=2)
    lb, gb = ref.gradients(m, x, y, h0=(h0, np.zeros_like(c0)), truncate=2)
    assert la == lb and sorted(ga) == sorted(gb) == sorted([*m.params, "h0", "c0"])
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])
    assert ga["c0"].shape == (3, 3) and np.abs(ga["c0"]).max() > 0
    assert_agrees(name, m, x, y, h0=h0, truncate=2)
    assert_agrees(name, m, x[0], y[0], h0=(h0[0], c0[0]))  # one sequence: h0, c0 (H,)


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
@pytest.mark.parametrize("biases", [(), ("b",), ("bh",), ("c",), ("b", "bh", "c")])
def test_gated_gradients_have_exactly_the_models_names(name, biases):
    """The keys are the model's params (whichever biases it has) plus h0 (and c0): no more, no less."""
    need(name)
    rng = np.random.default_rng(len(biases))
    for cell, extra in (("lstm", ["h0", "c0"]), ("gru", ["h0"])):
        m, x, y, h0 = make_case(rng, 2, 3, 3, 2, 3, batched=True, activation="tanh", head="softmax",
                                b="b" in biases, bh="bh" in biases, c="c" in biases, dense=False, h0=False,
                                mask=False, cell=cell)
        _, g = fw.reference(name).gradients(m, x, y, truncate=1)
        assert list(m.params) == ["U", "W", "V", *[k for k in ("b", "bh", "c") if k in biases]]
        assert sorted(g) == sorted([*m.params, *extra])
        assert_agrees(name, m, x, y, truncate=1)


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
def test_terms_are_the_elman_cells_only(name):
    need(name)
    m, x, y, _ = make_case(np.random.default_rng(0), 1, 3, 2, 2, 2, batched=False, activation="tanh",
                           head="softmax", b=True, c=False, dense=False, h0=False, mask=False, cell="lstm")
    with pytest.raises(ValueError, match="Elman cell .bptt.RNN. only, got a lstm model"):
        fw.reference(name).terms(m, x, y, "W", 0)


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
    with pytest.raises(ValueError, match="bptt model \\(bptt.Model\\), got str"):
        ref.gradients("model.npz", x, y)
    lstm, x, y, _ = make_case(np.random.default_rng(0), 2, 3, 2, 2, 2, batched=True, activation="tanh",
                              head="softmax", b=True, c=False, dense=False, h0=False, mask=False, cell="lstm")
    for bad, words in [((np.zeros((2, 2)),) * 3, "pair .h0, c0.*got a tuple of 3"), ((np.zeros((2, 2)), np.zeros(3)), "h0 must have shape")]:
        with pytest.raises(ValueError, match=words):
            bptt.gradients(lstm, x, y, h0=bad)
        with pytest.raises(ValueError, match=words):
            ref.gradients(lstm, x, y, h0=bad)


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


def test_compare_reports_a_wrong_c0_gradient(monkeypatch):
    """An LSTM's c0 row is a real check: perturb the engine's dE/dc0 by 1e-8 relative; only c0 fails."""
    need("torch")
    import bptt.backend

    real = bptt.backend.gradients

    def off(*a, **kw):
        loss, g = real(*a, **kw)
        return loss, g.replace(c0=g.c0 * (1 + 1e-8))

    m, x, y, h0 = make_case(np.random.default_rng(1), 2, 4, 3, 3, 2, batched=True, activation="tanh",
                            head="softmax", b=True, bh=True, c=True, dense=False, h0=True, mask=False, cell="lstm")
    assert fw.compare(m, x, y, frameworks=["torch"], h0=h0).passed
    monkeypatch.setattr(bptt.backend, "gradients", off)
    result = fw.compare(m, x, y, frameworks=["torch"], h0=h0)
    assert [r.quantity for r in result.failures()] == ["c0"]


def test_compare_fails_a_name_bptt_does_not_give(monkeypatch):
    """A framework that returns a gradient bptt has no row for is a failure, not ignored."""
    need("torch")
    ref = fw.reference("torch")
    real = ref.gradients
    monkeypatch.setattr(ref, "gradients", lambda *a, **kw: (lambda r: (r[0], {**r[1], "bh": r[1]["U"]}))(real(*a, **kw)))
    m, x, y = bptt.seed_example()
    result = fw.compare(m, x, y, frameworks=["torch"])
    assert [r.quantity for r in result.failures()] == ["bh"] and not result.passed


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
    from bptt.cells import variants as cell_variants
    from bptt.frameworks.stress import main, stress

    r = stress(16, seed=3, frameworks=["torch"])["torch"]
    assert r["cases"] == 16 and r["passed"] == 16 and 0 <= r["worst_rel_err"] <= 1e-10
    has = [c for c in cell_variants() if bptt.cells.resolve(c)[0].name in fw.reference("torch").CELLS]
    assert list(r["cells"]) == has and sum(c["cases"] for c in r["cells"].values()) == 16
    assert all(c["cases"] > 0 and c["passed"] == c["cases"] for c in r["cells"].values())  # every cell drawn
    assert main(["--cases", "2", "--frameworks", "torch", "--cells", "lstm,gru-before"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"torch +2/2 passed, worst relative error \d\.\d\de-\d\d \(lstm \d/\d, "
                    r"gru-before \d/\d\)$", out.strip()), out
    with pytest.raises(SystemExit):
        main(["--cells", "vanilla"])
    assert "unknown cell 'vanilla'" in capsys.readouterr().err


def test_stress_cases_are_the_cells_they_say():
    from bptt.frameworks.stress import random_model

    rng = np.random.default_rng(0)
    lstm = random_model(rng, 3, 4, 2, cell="lstm", b=True, bh=True)
    gru = random_model(rng, 3, 4, 2, cell="gru-before", c=True)
    assert isinstance(lstm, LSTM) and lstm.U.shape == (16, 3) and lstm.bh is not None
    assert isinstance(gru, GRU) and not gru.reset_after and gru.W.shape == (12, 4) and gru.b is None
    with pytest.raises(ValueError, match="unknown cell 'vanilla'"):
        random_model(rng, 3, 4, 2, cell="vanilla")


@pytest.mark.parametrize("name", fw.FRAMEWORKS)
def test_references_never_call_the_engine(name, monkeypatch):
    """The frameworks' numbers are their own: with bptt's forward, backward and flow disabled,
    gradients and terms still work, for every cell."""
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
    for cell in GATED:
        m, x, y, h0 = make_case(np.random.default_rng(0), 2, 4, 3, 2, 3, batched=True, activation="tanh",
                                head="softmax", b=True, bh=True, c=True, dense=False, h0=True, mask=True, cell=cell)
        loss, g = ref.gradients(m, x, y, truncate=1, h0=h0)
        assert np.isfinite(loss) and set(g) == set(m.params) | ({"h0", "c0"} if cell == "lstm" else {"h0"})
        assert all(np.isfinite(v).all() and np.abs(v).max() > 0 for v in g.values())
