"""Bad input is a ValueError in words, never a wrong number."""
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
