"""approx.rtrl through the depth of a stack (bptt.approx.stacked): forward-mode influence matrices
carried in time and up through the layers give BPTT's gradient exactly; what has no such form is
refused."""
import numpy as np
import pytest

import bptt
from bptt import approx
from bptt.stack import random_stack

from conftest import sentence


def _close(a, b):
    """The largest difference relative to the largest entry of the BPTT array."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lru", "mingru"])
def test_rtrl_through_the_layers_equals_bptt(cell, layers):
    stack = random_stack(cell, 3, 4, 5, layers=layers, seed=layers)
    rng = np.random.default_rng(layers)
    x, y = rng.normal(size=(2, 6, 4)), rng.integers(-1, 5, (2, 6))  # -1: unscored steps
    loss, g = bptt.gradients(stack, x, y)  # the reference engine's BPTT through depth and time
    rloss, r = approx.rtrl(stack, x, y)
    assert rloss == pytest.approx(loss, rel=1e-12)
    assert r.params.keys() == g.params.keys()
    for k in g.params:
        assert _close(r.params[k], g.params[k]) < 1e-10, k
    assert len(r.state0) == len(g.state0)
    for a, b, width in zip(r.state0, g.state0, stack.layers[0][0].state_sizes):
        assert np.shape(a) == np.shape(b) == (layers, 2, width)  # PyTorch's h_0 layout (the LRU's [Re, Im])
        assert _close(a, b) < 1e-10


def test_rtrl_of_a_stack_of_one_sequence_of_ids_from_a_given_state_with_the_mean():
    stack = random_stack("lstm", 3, 5, 5, layers=2, seed=0, forget_bias=1.0)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, 7), rng.integers(0, 5, 7)
    h0 = (rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))
    loss, g = bptt.gradients(stack, x, y, h0=h0, reduction="mean")
    rloss, r = approx.rtrl(stack, x, y, h0=h0, reduction="mean")
    assert rloss == pytest.approx(loss, rel=1e-12)
    for k in g.params:
        assert _close(r.params[k], g.params[k]) < 1e-10, k
    for a, b in zip(r.state0, g.state0):
        assert np.shape(a) == (2, 3) and _close(a, b) < 1e-10


def test_rtrl_of_a_one_layer_stack_is_the_one_layer_models():
    stack, model = random_stack("gru", 3, 4, 4, layers=1, seed=5), bptt.random_model("gru", 3, 4, 4, seed=5)
    x, y = np.arange(6) % 4, (np.arange(6) + 1) % 4
    _, a = approx.rtrl(stack, x, y)
    _, b = approx.rtrl(model, x, y)
    for k, v in b.params.items():
        np.testing.assert_allclose(a.params[k if k in ("V", "c") else f"{k}_l0"], v, rtol=1e-12, atol=1e-15)


def test_what_has_no_online_form_on_a_stack_is_refused():
    x, y = np.arange(5) % 3, np.arange(5) % 3
    two = random_stack("gru", 3, 3, 3, layers=2, bidirectional=True, seed=0)
    sentence(ValueError, lambda: approx.rtrl(two, x, y), "bidirectional", "no online form", "bptt.gradients")
    one = random_stack("gru", 3, 3, 3, layers=2, seed=0)
    sentence(ValueError, lambda: approx.snap(one, x, y), "SnAp", "bptt.Stack", "approx.rtrl")
    sentence(ValueError, lambda: approx.uoro(one, x, y, seed=0), "UORO", "bptt.Stack", "approx.rtrl")
