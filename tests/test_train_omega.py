"""Pascanu's Omega: its value from an independent route, its exact gradient against finite differences."""
import numpy as np
import pytest

import bptt
from bptt.train.omega import omega, omega_value


def _case(activation, head, batched, seed=0):
    rng = np.random.default_rng(seed)
    m = bptt.random_rnn(5, 4, 3, seed=seed + 1, bias=True, activation=activation, head=head, std=0.8)
    shape = (2, 7) if batched else (7,)
    if head == "softmax":
        x = rng.integers(0, 4, shape)
        y = rng.integers(-1, 3, shape)
    else:
        x = rng.normal(size=shape + (4,))
        y = rng.normal(size=shape + (3,))
        y[..., :3, :] = np.nan  # unscored rows
    h0 = rng.normal(size=(2, 5) if batched else (5,)) * 0.3
    return m, x, y, h0


@pytest.mark.parametrize("activation,head,batched", [("tanh", "softmax", True), ("sigmoid", "mse", True),
                                                     ("tanh", "mse", False), ("relu", "softmax", True)])
def test_exact_gradient_matches_finite_differences(activation, head, batched):
    m, x, y, h0 = _case(activation, head, batched)
    value, g = omega(bptt.forward(m, x, h0), y, reduction="mean")
    assert value > 0
    eps = 1e-6
    for name in list(m.params) + ["h0"]:
        base = h0 if name == "h0" else m.params[name]
        num = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            vals = []
            for e in (eps, -eps):
                a = base.copy()
                a[i] += e
                vals.append(omega_value(m, x, y, h0=a, reduction="mean") if name == "h0"
                            else omega_value(m.replace(**{name: a}), x, y, h0=h0, reduction="mean"))
            num[i] = (vals[0] - vals[1]) / (2 * eps)
        got = g[name] if batched or name != "h0" else g[name][0]
        err = np.abs(num - got).max() / max(np.abs(num).max(), 1e-8)
        assert err < 1e-5, (name, err)


def test_value_from_suffix_gradients():
    """g_t = dE/ds_t rebuilt with the engine: V^T dE_t/dq_t + dE(outputs after t)/dh0 of the suffix from s_t."""
    m, x, y, _ = _case("tanh", "softmax", False, seed=3)
    tr = bptt.forward(m, x)
    T = len(x)
    S = tr.states  # (T+1, H): s_{-1}..s_{T-1}
    o = tr.o
    terms = []
    for t in range(1, T):
        dq = o[t] - np.eye(3)[max(y[t], 0)] if y[t] >= 0 else np.zeros(3)
        g = m.V.T @ dq
        if t < T - 1:
            g = g + bptt.gradients(m, x[t + 1:], y[t + 1:], h0=S[t + 1])[1].h0
        J = (1 - S[t + 1] ** 2)[:, None] * m.W  # ds_t/ds_{t-1}
        terms.append((np.linalg.norm(g @ J) / np.linalg.norm(g) - 1) ** 2)
    np.testing.assert_allclose(omega_value(m, x, y), np.mean(terms), rtol=1e-12)


def test_papers_eq10_is_the_immediate_derivative_in_W():
    m, x, y, _ = _case("tanh", "softmax", True, seed=5)
    y = np.maximum(y, 0)  # every step scored: no g_t is zero
    tr = bptt.forward(m, x)
    _, g = omega(tr, y, exact=False)
    # hold g_t and f'(z_t) fixed: Omega(W') = mean (||(f' g) W'|| / ||g|| - 1)^2
    _, full = omega(tr, y)  # the exact one differs
    from bptt import heads, validate
    tg = validate.targets(m, y, tr.inputs)
    dQ = heads.error(m.head, tr.Q, tg, "sum")[1]
    S = tr.S
    fp = 1 - S[1:] ** 2
    e = dQ @ m.V
    G = np.empty_like(e)
    G[-1] = e[-1]
    for t in range(len(e) - 1, 0, -1):
        G[t - 1] = e[t - 1] + (fp[t] * G[t]) @ m.W

    def om(Wp):
        a = (fp[1:] * G[1:]) @ Wp
        return np.mean((np.linalg.norm(a, axis=-1) / np.linalg.norm(G[1:], axis=-1) - 1) ** 2)

    num = np.zeros_like(m.W)
    for i in np.ndindex(m.W.shape):
        Wp, Wm = m.W.copy(), m.W.copy()
        Wp[i] += 1e-6
        Wm[i] -= 1e-6
        num[i] = (om(Wp) - om(Wm)) / 2e-6
    np.testing.assert_allclose(g["W"], num, rtol=1e-5, atol=1e-9)
    assert not np.any(g["U"]) and np.abs(full["W"] - g["W"]).max() > 1e-6


def test_scale_free_and_bad_reduction():
    m, x, y, _ = _case("tanh", "softmax", True)
    assert omega_value(m, x, y, reduction="sum") == pytest.approx(omega_value(m, x, y, reduction="mean"), rel=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        omega(bptt.forward(m, x), y, reduction="max")


def test_omega_is_refused_for_a_gated_cell():
    from bptt.model import random_gated

    m = random_gated("gru", 3, 4, 2, seed=0)
    x = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match="Omega is derived here for the Elman cell.*not for a gru model"):
        omega(bptt.forward(m, x), x % 2)
