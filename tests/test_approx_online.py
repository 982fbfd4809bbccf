"""Online learning (bptt.approx.online): with a vanishing learning rate the summed updates are each
method's gradient over the stream; a tied parameter moves along its basis; the influence-balancing task
separates truncated BPTT from the unbiased methods as Tallec & Ollivier report."""
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import approx, core
from bptt.approx import influence, online
from bptt.model import random_gated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

LR = 1e-8  # small enough that the weights hardly move: the sum of the updates is the fixed-weight gradient


def _case(cell, seed=0):
    model = (bptt.random_rnn(4, 3, 3, seed=seed, bias=True, std=0.6) if cell == "elman"
             else random_gated(cell, 3, 3, 3, seed=seed))
    rng = np.random.default_rng(seed)
    return model, rng.integers(0, 3, (2, 12)), rng.integers(0, 3, (2, 12))


def _moved(before, after):
    return {k: (before.params[k] - after.params[k]) / LR for k in before.params}


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("method", ["rtrl", "snap-1", "uoro"])
def test_with_a_vanishing_rate_the_updates_sum_to_the_methods_gradient(cell, method):
    model, x, y = _case(cell)
    final, hist = online.train(model, x, y, method, lr=LR, seed=4)
    want = {"rtrl": lambda: approx.rtrl(model, x, y), "snap-1": lambda: approx.snap(model, x, y, order=1),
            "uoro": lambda: approx.uoro(model, x, y, seed=4)}[method]()[1]
    for k, v in _moved(model, final).items():
        np.testing.assert_allclose(v, want.params[k], rtol=1e-4, atol=2e-6, err_msg=k)
    assert hist.updates == 12 and hist.diverged is None
    assert sum(hist.loss) == pytest.approx(core.loss(model, x, y), rel=1e-5)


@pytest.mark.parametrize("k1, k2", [(1, 1), (3, 5), (4, 4), (2, 7)])
def test_online_tbptt_with_a_vanishing_rate_is_the_tbptt_gradient(k1, k2):
    model, x, y = _case("lstm", 1)
    final, hist = online.train_tbptt(model, x, y, k1, k2, lr=LR)
    _, want = approx.tbptt_gradient(model, x, y, k1, k2)
    for k, v in _moved(model, final).items():
        np.testing.assert_allclose(v, want.params[k], rtol=1e-4, atol=2e-6, err_msg=k)
    assert len(hist.loss) == 12 and hist.updates == -(-12 // k1)
    assert sum(hist.loss) == pytest.approx(core.loss(model, x, y), rel=1e-5)


def test_a_tied_parameter_moves_along_its_basis():
    model, x, y = _case("elman", 2)
    lay = influence.layout(model)
    basis = np.random.default_rng(0).normal(size=(lay.P, 2))
    final, hist = online.train(model, x, y, "rtrl", lr=LR, basis=basis, head=False)
    _, g = core.gradients(model, x, y)
    want = lay.flatten(g.params) @ basis  # d E / d z
    np.testing.assert_allclose(hist.z[-1] / -LR, want, rtol=1e-4)
    moved = lay.flatten(model.params) - lay.flatten(final.params)
    np.testing.assert_allclose(moved, basis @ (-hist.z[-1]), rtol=1e-6, atol=1e-15)  # to the rounding of the weights
    np.testing.assert_array_equal(final.V, model.V)  # head=False
    with pytest.raises(ValueError, match="basis must be"):
        online.train(model, x, y, "rtrl", lr=LR, basis=np.ones((3, 1)))


def test_a_run_that_blows_up_stops_and_says_where():
    model = bptt.random_rnn(4, 3, 3, seed=3, activation="identity", head="mse")
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 3, 50), rng.normal(size=(50, 3))
    _, hist = online.train(model, x, y, "rtrl", lr=3.0)
    assert hist.diverged is not None and len(hist.loss) == hist.diverged + 1
    assert not np.isfinite(hist.loss[-1]) or hist.loss[-1] > 1e12
    _, hist = online.train_tbptt(model, x, y, 2, 4, lr=3.0)
    assert hist.diverged is not None
    with pytest.raises(ValueError, match="unknown online method"):
        online.train(model, x, y, "rflo", lr=1e-3)


def test_influence_balancing_truncation_diverges_and_rtrl_learns():
    """A short run of experiments/influence_balancing.py's task: TBPTT(1, 10) pushes theta the wrong way
    (its truncated gradient has the wrong sign), RTRL reaches theta* = -1/6."""
    import influence_balancing as ib

    per_K = ib.window_gradients(T=100)
    assert per_K[10] < 0 < per_K[-1] and per_K[60] > 0  # the window's gradient flips sign between
    model, x, y, h0, basis = ib.task(steps=3000)
    final, hist = online.train(model, x, y, "rtrl", lr=2e-5, h0=h0, basis=basis, head=False)
    assert ib.theta_of(final) == pytest.approx(ib.THETA_STAR, abs=0.02)
    assert ib.theta_of(final) == pytest.approx(ib.THETA0 + hist.z[-1][0], rel=1e-12)
    final, hist = online.train_tbptt(model, x[:1000], y[:1000], 1, 10, lr=2e-5, h0=h0, basis=basis, head=False)
    assert ib.theta_of(final) > 1.0  # away from theta* = -1/6, the wrong way
