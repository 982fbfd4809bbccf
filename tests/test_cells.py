"""The cell interface: each cell's step_back is the vector-Jacobian product of its step, and its
jacobian is the step's state-to-state Jacobian, both against central differences in float64."""
import numpy as np
import pytest

import bptt
from bptt import cells

ACTS = ["tanh", "relu", "sigmoid", "identity"]


def _model(act, seed=0):
    return bptt.random_rnn(4, 3, 2, seed=seed, activation=act, bias=True)


def _inner(cell, model, a, state, d):
    """<d, step(a, state)> summed over the state's entries: the scalar whose gradient step_back gives."""
    new, _ = cell.step(model, a, state)
    return sum(float(np.sum(x * y)) for x, y in zip(d, new))


def _numeric(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


@pytest.mark.parametrize("act", ACTS)
def test_step_back_is_the_vector_jacobian_product_of_step(act):
    rng = np.random.default_rng(ACTS.index(act))
    model, N, H = _model(act), 3, 4
    cell = model.cell
    a = rng.normal(size=(N, H))
    state = (rng.normal(size=(N, H)),)
    d = (rng.normal(size=(N, H)),)
    if act == "relu":  # keep every pre-activation away from the kink
        a += np.sign(a + state[0] @ model.W.T) * 1.0
    new, cache = cell.step(model, a, state)
    d_a, d_r, d_prev = cell.step_back(model, state, new, cache, d)
    f = lambda: _inner(cell, model, a, state, d)  # noqa: E731
    np.testing.assert_allclose(d_a, _numeric(f, a), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d_prev[0], _numeric(f, state[0]), rtol=1e-7, atol=1e-9)
    W = np.array(model.W)  # dE/dW = d_r^T h_{t-1}: the recurrent product's error, outer the state before
    fW = lambda: _inner(cell, model.replace(W=W), a, state, d)  # noqa: E731
    np.testing.assert_allclose(d_r.T @ state[0], _numeric(fW, W), rtol=1e-7, atol=1e-9)


def test_step_back_broadcasts_over_leading_axes():
    # many outputs' errors through one step at once equal one at a time
    rng = np.random.default_rng(1)
    model = _model("tanh")
    a, state = rng.normal(size=(2, 4)), (rng.normal(size=(2, 4)),)
    new, cache = model.cell.step(model, a, state)
    D = rng.normal(size=(5, 2, 4))
    together = model.cell.step_back(model, state, new, cache, (D,))
    for j in range(5):
        alone = model.cell.step_back(model, state, new, cache, (D[j],))
        np.testing.assert_array_equal(together[0][j], alone[0])
        np.testing.assert_array_equal(together[2][0][j], alone[2][0])


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "identity"])
def test_jacobian_is_the_steps_derivative_in_the_state(act):
    rng = np.random.default_rng(2)
    model = _model(act)
    a, s = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    new, cache = model.cell.step(model, a, (s,))
    J = model.cell.jacobian(model, (s,), new, cache)[0]  # (H, H): ds_t/ds_{t-1}
    for i in range(4):
        e = np.zeros((1, 4))
        e[0, i] = 1.0
        row = _numeric(lambda: float(model.cell.step(model, a, (s,))[0][0][0] @ e[0]), s)[0]
        np.testing.assert_allclose(J[i], row, rtol=1e-7, atol=1e-9)


def test_the_elman_model_names_its_cell():
    m = bptt.random_rnn(3, 2, 2, seed=0, activation="relu")
    assert isinstance(m.cell, cells.get("rnn")) and m.cell.activation == "relu"
    assert {k: p.role for k, p in m.cell.params.items()} == {"U": "input", "W": "recurrent", "b": "input bias",
                                                             "bh": "recurrent bias", "bm": None}


# --- gated cells: the same checks for the LSTM and both forms of the GRU -----------------------------
GATED = [("lstm", True), ("gru", True), ("gru", False)]


def _gated(cell, reset_after, seed=0):
    from bptt.model import random_gated

    kw = {"reset_after": reset_after} if cell == "gru" else {}
    return random_gated(cell, 3, 2, 2, seed=seed, std=0.8, **kw)


def _gated_inputs(model, N, seed):
    rng = np.random.default_rng(seed)
    G, H = model.W.shape
    a = rng.normal(size=(N, G))
    state = tuple(rng.normal(size=(N, H)) for _ in model.cell.state)
    d = tuple(rng.normal(size=(N, H)) for _ in model.cell.state)
    return a, state, d


@pytest.mark.parametrize("cell, reset_after", GATED)
def test_gated_step_back_is_the_vector_jacobian_product_of_step(cell, reset_after):
    model = _gated(cell, reset_after)
    a, state, d = _gated_inputs(model, 2, 1)
    new, cache = model.cell.step(model, a, state)
    d_a, d_r, d_prev = model.cell.step_back(model, state, new, cache, d)
    f = lambda: _inner(model.cell, model, a, state, d)  # noqa: E731
    np.testing.assert_allclose(d_a, _numeric(f, a), rtol=1e-7, atol=1e-9)
    for part, got in zip(state, d_prev):  # every entry of the state: h, and c for the LSTM
        np.testing.assert_allclose(got, _numeric(f, part), rtol=1e-7, atol=1e-9)
    W, bh = np.array(model.W), np.array(model.bh)
    fW = lambda: _inner(model.cell, model.replace(W=W), a, state, d)  # noqa: E731
    fb = lambda: _inner(model.cell, model.replace(bh=bh), a, state, d)  # noqa: E731
    prev = tuple(s[None] for s in state)  # one step: (1, N, H)
    dW = model.cell.recurrent_grad(model, d_r[None], prev, tuple(c[None] for c in cache))
    np.testing.assert_allclose(dW, _numeric(fW, W), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d_r.sum(0), _numeric(fb, bh), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cell, reset_after", GATED)
def test_gated_jacobian_is_the_steps_derivative_in_the_whole_state(cell, reset_after):
    # the LSTM's Jacobian is that of the joint state (h, c): (2H, 2H), rows and columns h then c
    model = _gated(cell, reset_after, seed=2)
    a, state, _ = _gated_inputs(model, 1, 3)
    new, cache = model.cell.step(model, a, state)
    J = model.cell.jacobian(model, state, new, cache)[0]
    H, S = model.H, model.H * len(state)
    assert J.shape == (S, S)
    flat = lambda st: np.concatenate([p[0] for p in model.cell.step(model, a, st)[0]])  # noqa: E731
    for j in range(S):
        part, i = divmod(j, H)
        st = [p.copy() for p in state]
        col = np.zeros(S)
        for sign in (1, -1):
            st[part][0, i] = state[part][0, i] + sign * 1e-6
            col += sign * flat(tuple(st)) / 2e-6
        np.testing.assert_allclose(J[:, j], col, rtol=1e-7, atol=1e-9)
    if cell == "lstm":  # dc_t/dc_{t-1} = diag(f_t): the cell path
        np.testing.assert_array_equal(J[H:, H:], np.diag(cache[1][0]))


@pytest.mark.parametrize("cell, reset_after", GATED)
def test_gated_step_back_broadcasts_over_leading_axes(cell, reset_after):
    model = _gated(cell, reset_after)
    a, state, _ = _gated_inputs(model, 2, 4)
    new, cache = model.cell.step(model, a, state)
    D = tuple(np.random.default_rng(5).normal(size=(5, 2, model.H)) for _ in state)
    together = model.cell.step_back(model, state, new, cache, D)
    for j in range(5):
        alone = model.cell.step_back(model, state, new, cache, tuple(x[j] for x in D))
        np.testing.assert_allclose(together[0][j], alone[0], rtol=1e-15, atol=0)
        for p, q in zip(together[2], alone[2]):
            np.testing.assert_allclose(p[j], q, rtol=1e-14, atol=1e-17)
