"""Each bug of the notebook's code, and the library doing that thing right."""

import numpy as np
import pytest

import bptt
from bptt.check import check, rel_error

pytestmark = pytest.mark.usefixtures("each_backend")  # every test on both backends


def test_no_hidden_state_between_models():
    # the notebook's bptt() read self.W inside a plain function: here the model is always an argument
    m, x, y = bptt.seed_example()
    m2 = m.replace(W=m.W * 2)
    _, g1 = bptt.gradients(m, x, y)
    _, g2 = bptt.gradients(m2, x, y)
    _, g1_again = bptt.gradients(m, x, y)
    np.testing.assert_array_equal(g1.W, g1_again.W)
    assert not np.allclose(g1.W, g2.W)


def test_backward_does_not_mutate_the_forward_trace():
    # the notebook wrote delta_o = o and then subtracted 1 in place, corrupting the probabilities
    m, x, y = bptt.seed_example()
    tr = bptt.forward(m, x)
    before = {k: getattr(tr, k).copy() for k in ("states", "z", "q", "o")}
    bptt.backward(tr, y)
    bptt.backward(tr, y)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(tr, k), v, err_msg=k)
    with pytest.raises(ValueError):
        m.W[0, 0] = 1.0  # model arrays are read-only


def test_one_hot_lists_of_the_notebook_say_what_is_wrong():
    # the notebook called bptt(x, y) with one-hot integer lists and got a broadcasting ValueError
    m, _, _ = bptt.seed_example()
    x = [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    y = [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match=r"one-hot.*token ids \(x.argmax\(-1\) = \[1, 0, 2\]\)"):
        bptt.gradients(m, x, y)
    # the two ways it offers both work and give exactly the ids result
    l_ids, g_ids = bptt.gradients(m, [1, 0, 2], y)
    l_hot, g_hot = bptt.gradients(m, np.asarray(x, float), y)
    assert l_ids == l_hot
    for k in "UWV":
        np.testing.assert_array_equal(getattr(g_ids, k), getattr(g_hot, k))


def test_index_out_of_bounds_names_the_target():
    # the notebook's IndexError: index 4 is out of bounds for axis 1 with size 3
    m, x, _ = bptt.seed_example()
    with pytest.raises(ValueError, match=r"target id 4 at position \(0, 1\) is out of range: .* O = 3"):
        bptt.gradients(m, x, [0, 4, 1])


def test_softmax_does_not_overflow():
    # exp(1000) overflows without subtracting the max; log-sum-exp keeps the loss exact
    m = bptt.RNN(U=[[1.0]], W=[[0.0]], V=[[1000.0], [0.0], [-1000.0]], activation="identity")
    with np.errstate(over="raise", invalid="raise"):
        loss, g = bptt.gradients(m, np.ones((1, 1)), [1])
    assert loss == pytest.approx(1000.0, rel=1e-15)  # -log softmax(q)[1] with q = (1000, 0, -1000)
    np.testing.assert_allclose(g.V[:, 0], [1.0, -1.0, 0.0], atol=1e-300)


def test_gradient_check_cannot_pass_on_zero_over_zero_or_nan():
    # the notebook's source computed |a-b|/(|a|+|b|), which is NaN for two zeros, and NaN > tol is False
    assert rel_error(0.0, 0.0, 1e-12) == 0.0
    assert rel_error(1e-3, 0.0, 1e-12) == 1.0
    m, x, y = bptt.seed_example()
    _, g = bptt.gradients(m, x, y)
    W = g.W.copy()
    W[0, 0] = np.nan
    assert not check(m, x, y, grads=g.replace(W=W)).passed


def test_clipping_inside_the_loss_breaks_the_gradient_check():
    # min-char-rnn clips the gradient to [-5, 5] inside lossFun, so it is no longer the loss's gradient
    m = bptt.random_rnn(5, 4, 4, seed=3, init="normal", std=2.0)
    x, y = np.arange(8) % 4, (np.arange(8) + 1) % 4
    report = check(m, x, y)
    assert report.passed, str(report)
    _, g = bptt.gradients(m, x, y)
    assert max(np.abs(v).max() for v in g.params.values()) > 5  # the engine never clips
    clipped = g.replace(**{k: np.clip(v, -5, 5) for k, v in g.params.items()})
    assert not check(m, x, y, grads=clipped).passed
