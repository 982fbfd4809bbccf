"""Bad input is a ValueError in words, never a wrong number."""
import re
import warnings

import numpy as np
import pytest

import bptt

pytestmark = pytest.mark.usefixtures("each_backend")  # every test on both backends


@pytest.fixture
def seed():
    return bptt.seed_example()


@pytest.mark.parametrize("x, words", [
    ([1, 0, 7], r"token id 7 at position 2 is out of range: the model has D = 3 inputs"),
    ([1, -1, 2], r"token id -1 at position 1"),
    ([[0, 1, 0], [1, 0]], r"ragged"),
    ([1.5, 0.0, 2.0], r"non-integer value 1.5 at position 0"),
    ([1.0, 0.0, 2.0], r"token ids must be integers"),
    (np.zeros((3, 4)), r"dense inputs must have shape \(T, D\) or \(N, T, D\) with D = 3"),
    ([], r"empty"),
    ([[0.0, np.nan, 1.0], [0, 0, 1], [1, 0, 0]], r"finite"),
    (["a", "b", "c"], r"numbers"),
    ([True, False, True], r"boolean"),
])
def test_bad_inputs(seed, x, words):
    m, _, y = seed
    with pytest.raises(ValueError, match=words):
        bptt.gradients(m, x, y)


@pytest.mark.parametrize("y, words", [
    ([0, 2], r"different lengths: x has 3 steps"),
    ([0, 3, 1], r"target id 3 .* O = 3 outputs"),
    ([0.5, 1, 2], r"target ids must be integers"),
    ([[1, 0, 0], [0, 1, 1], [0, 0, 1]], r"one-hot"),
])
def test_bad_targets(seed, y, words):
    m, x, _ = seed
    with pytest.raises(ValueError, match=words):
        bptt.gradients(m, x, y)


def test_bad_models():
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        bptt.RNN(U=np.ones((2, 3)), W=np.ones((2, 2)), V=np.ones((3, 2)), activation="softplus")
    with pytest.raises(ValueError, match=r"U must have shape \(3, 3\) \(H = 3 from W\), got \(2, 3\)"):
        bptt.RNN(U=np.ones((2, 3)), W=np.ones((3, 3)), V=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"W must be \(H, H\)"):
        bptt.RNN(U=np.ones((2, 3)), W=np.ones((3, 2)), V=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"V must have shape \(3, 2\) \(H = 2 from W\), got \(3, 4\)"):
        bptt.RNN(U=np.ones((2, 3)), W=np.ones((2, 2)), V=np.ones((3, 4)))
    m = bptt.RNN(U=np.ones((2, 3)), W=[[np.inf, 0], [0, 0]], V=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"W must be finite, but it holds inf at index \(0, 0\)"):
        bptt.forward(m, [0, 1])


def test_bad_options(seed):
    m, x, y = seed
    with pytest.raises(ValueError, match="truncate must be None"):
        bptt.gradients(m, x, y, truncate=-1)
    with pytest.raises(ValueError, match="reduction must be"):
        bptt.gradients(m, x, y, reduction="avg")
    with pytest.raises(ValueError, match=r"h0 must have shape \(2,\)"):
        bptt.gradients(m, x, y, h0=np.zeros(3))


def test_mse_targets_need_the_output_size():
    m = bptt.random_rnn(3, 2, 1, seed=0, head="mse")
    with pytest.raises(ValueError, match=r"shape \(4, 1\)"):
        bptt.gradients(m, np.zeros((4, 2)), np.zeros(4))
    y = np.full((4, 2, 1), np.nan)
    m2 = bptt.random_rnn(3, 2, 2, seed=0, head="mse")
    y = np.zeros((4, 2))
    y[1, 0] = np.nan
    with pytest.raises(ValueError, match="partly NaN"):
        bptt.gradients(m2, np.zeros((4, 2)), y)


def _made_alike(a, b):
    """Two models the same: class, settings, dimensions, arrays (bits, dtype, layout, read-only)."""
    assert type(a) is type(b) and a.settings == b.settings and (a.H, a.D, a.O, a.dtype) == (b.H, b.D, b.O, b.dtype)
    assert list(a.params) == list(b.params) and a.cell is not b.cell
    for k in a.params:
        x, y = a.params[k], b.params[k]
        assert x.dtype == y.dtype and x.strides == y.strides and not x.flags.writeable and not y.flags.writeable
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_replace_makes_what_the_constructor_makes(cell):
    m = bptt.random_model(cell, 4, 3, 5, seed=0, bias=True)
    rng = np.random.default_rng(1)
    W = np.asfortranarray(rng.normal(size=m.W.shape))  # the layout is kept, as the constructor keeps it
    b = rng.normal(size=m.b.shape)
    new = m.replace(W=W, b=b)
    _made_alike(new, type(m)(**{**m.params, **m.settings, "W": W, "b": b}))
    W[0, 0] = 7.0  # copied: the new model does not see later changes
    assert new.W[0, 0] != 7.0 and new.V is m.V
    # changes of another kind take the constructor's path, with its checks and messages
    _made_alike(m.replace(W=W.astype(np.float32)), type(m)(**{**m.params, **m.settings, "W": W.astype(np.float32)}))
    for wrong in (np.ones((2, 2)), np.ma.masked_array(W), np.array([["a"] * 4] * 4)):
        with pytest.raises((TypeError, ValueError)) as made:
            type(m)(**{**m.params, **m.settings, "W": wrong})
        with pytest.raises(made.type, match=re.escape(str(made.value))):
            m.replace(W=wrong)
    bad = W.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"W must be finite, but it holds nan at index \(1, 2\)"):
        m.replace(W=bad).check_finite()
    big = np.full(m.W.shape, 1e308)  # finite entries whose sum overflows: no error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.replace(W=big).check_finite()
        type(m)(**{**m.params, **m.settings, "W": -big}).check_finite()


def test_replace_runs_the_cells_own_check():
    m = bptt.random_model("rnn", 4, 3, 5, seed=0, activation="modrelu", bias=True)
    plain = bptt.random_model("rnn", 4, 3, 5, seed=0)
    with pytest.raises(ValueError, match="bm is the bias of activation 'modrelu'"):
        plain.replace(bm=m.bm)
    assert m.replace(bm=2 * m.bm).bm[0] == 2 * m.bm[0]
