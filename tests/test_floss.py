"""bptt.floss: Lyapunov exponents as a function of the parameters, their exact gradient (backpropagation
through the QR method) against central differences of the exponents, and the flossing regulariser."""
import numpy as np
import pytest

import bptt
from bptt import floss


def _fd(model, x, cot, name, h=1e-5):
    """d sum(cot * exponents) / d(parameter name) by central differences, Richardson-extrapolated
    (h and h/2: the h^2 term cancels), from bptt.floss.exponents alone."""
    P = model.params[name]
    out = np.zeros_like(P)
    for idx in np.ndindex(P.shape):
        def f(d):
            Q = P.copy()
            Q[idx] += d
            return float(np.sum(cot * floss.exponents(model.replace(**{name: Q}), x)))
        d1, d2 = ((f(e) - f(-e)) / (2 * e) for e in (h, h / 2))
        out[idx] = (4 * d2 - d1) / 3
    return out


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _case(cell, seed, N=2, T=12, H=4, D=3, **options):
    model = bptt.random_model(cell, H, D, 2, seed=seed, **options)
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(N, T, D))
    lam = floss.exponents(model, x)
    assert np.all(np.diff(lam, axis=1) < -1e-3), "distinct exponents (central differences would straddle a crossing)"
    return model, x, rng.normal(size=lam.shape)


def test_exponents_are_bptt_lyapunovs_for_every_sequence():
    for cell in ("rnn", "lstm", "gru"):
        model = bptt.random_model(cell, 5, 3, 2, seed=4)
        x = np.random.default_rng(0).normal(size=(3, 30, 3))
        trace = bptt.forward(model, x)
        for burn_in in (0, 7):
            lam = floss.exponents(model, x, burn_in=burn_in)
            for n in range(3):
                ref = bptt.lyapunov(trace, seq=n, burn_in=burn_in).exponents
                np.testing.assert_allclose(lam[n], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell, seed, options", [
    ("rnn", 1, {}), ("rnn", 2, {"bias": True}), ("rnn", 3, {"activation": "sigmoid", "bias": True}),
    ("rnn", 5, {"init": "orthogonal"}), ("rnn", 6, {"activation": "modrelu"}),
    ("lstm", 1, {}), ("lstm", 7, {"forget_bias": 1.0})])
def test_the_exponents_gradient_equals_central_differences(cell, seed, options):
    model, x, cot = _case(cell, seed, **options)
    lam, grads = floss.exponent_grads(model, x, cot)
    np.testing.assert_array_equal(lam, floss.exponents(model, x))
    for name in model.params:
        fd = _fd(model, x, cot, name)
        if name in ("V", "c", "bm"):  # the head is not in the dynamics; modReLU's f' is flat in its bias
            assert np.all(fd == 0) and np.all(grads[name] == 0), name
            continue
        assert _rel(grads[name], fd) <= 1e-7, (name, _rel(grads[name], fd))


def test_the_gradient_with_burn_in_and_h0():
    model, x, cot = _case("rnn", 8, N=3, T=15, bias=True)
    h0 = np.random.default_rng(3).normal(size=(3, 4))
    lam, grads = floss.exponent_grads(model, x, cot, h0, burn_in=4)
    np.testing.assert_array_equal(lam, floss.exponents(model, x, h0, burn_in=4))
    for name in ("U", "W", "b"):
        P = model.params[name]
        fd = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            def f(d):
                Q = P.copy()
                Q[idx] += d
                return float(np.sum(cot * floss.exponents(model.replace(**{name: Q}), x, h0, burn_in=4)))
            fd[idx] = (4 * (f(5e-6) - f(-5e-6)) / 1e-5 - (f(1e-5) - f(-1e-5)) / 2e-5) / 3
        assert _rel(grads[name], fd) <= 1e-7, name


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_flossing_loss_and_its_gradient(cell):
    model, x, _ = _case(cell, 9)
    k = 2
    loss, grads, lam = floss.flossing(model, x, k)
    assert loss == pytest.approx(np.sum(lam[:, :k] ** 2) / len(lam), rel=1e-15)
    for name in ("U", "W"):
        P = model.params[name]
        fd = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            def f(d):
                Q = P.copy()
                Q[idx] += d
                return floss.flossing(model.replace(**{name: Q}), x, k)[0]
            fd[idx] = (4 * (f(5e-6) - f(-5e-6)) / 1e-5 - (f(1e-5) - f(-1e-5)) / 2e-5) / 3
        assert _rel(grads[name], fd) <= 1e-7, name


def test_flossing_moves_the_leading_exponents_to_zero():
    from bptt.train import optim

    model = bptt.random_model("rnn", 12, 2, 1, seed=0, init="normal", std=0.1, bias=True)
    x = np.random.default_rng(1).uniform(size=(4, 40, 2))
    k = 2
    before = floss.exponents(model, x)[:, :k]
    assert np.all(before < -0.5)  # a contracting network
    opt = optim.adam(0.01)
    state = opt.init(model.params)
    for _ in range(150):
        _, g, _ = floss.flossing(model, x, k)
        params, state = opt.update(g, state, model.params)
        model = model.replace(**params)
    trace = bptt.forward(model, x)
    for n in range(len(x)):
        assert np.all(np.abs(bptt.lyapunov(trace, seq=n).exponents[:k]) <= 0.01)


def test_refusals():
    assert floss.supported() == ("rnn", "lstm")
    gru = bptt.random_model("gru", 3, 2, 2, seed=0)
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"which the rnn, lstm cells have; the gru cell has none"):
        floss.exponent_grads(gru, x, np.zeros((1, 3)))
    rnn = bptt.random_model("rnn", 3, 2, 2, seed=0)
    with pytest.raises(ValueError, match=r"cotangent must have the exponents' shape \(1, 3\)"):
        floss.exponent_grads(rnn, x, np.zeros(3))
    with pytest.raises(ValueError, match="k .* must be"):
        floss.flossing(rnn, x, 4)
    with pytest.raises(TypeError, match="bptt model"):
        floss.flossing("rnn", x, 1)
    dead = bptt.random_model("rnn", 3, 2, 2, seed=0, activation="relu")
    with pytest.raises(ValueError, match="exactly zero"):
        floss.exponent_grads(dead.replace(W=np.zeros((3, 3))), x, np.zeros((1, 3)))
