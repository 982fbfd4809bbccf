"""The decomposition for gated cells (LSTM, GRU): terms against the engine's gradient and finite
differences, the state errors against the engine's h0/c0 gradients, and closed forms: the forget
gate held at 1 (the constant error carousel) and at 0, the update gate held at 1 (a copied state)
and at 0 (an Elman cell)."""
import ast

import numpy as np
import pytest

import bptt
from bptt import fast
from bptt import GRU
from bptt.model import random_gated

HOLD = 1e3  # a bias that holds a sigmoid gate at exactly 1.0 (or 0 with -HOLD) in float64
CASES = [("lstm", True), ("gru", True), ("gru", False)]


@pytest.fixture(params=["reference", "fast"], autouse=True)
def backend(request, monkeypatch):
    """Every test on both backends' forward passes, where the fast one computes gated cells."""
    if request.param == "fast" and not fast.supports(random_gated("lstm", 1, 1, 1, seed=0)):
        pytest.skip("the fast backend does not compute gated cells")
    monkeypatch.setenv("BPTT_BACKEND", request.param)
    return request.param


def _model(cell, reset_after=True, H=4, D=3, O=3, seed=0, **kw):
    extra = {"reset_after": reset_after} if cell == "gru" else {}
    return random_gated(cell, H, D, O, seed=seed, **extra, **kw)


def _data(T, D=3, O=3, seed=0, dense=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, D)) if dense else rng.integers(0, D, T)
    return x, rng.integers(0, O, T)


def only(y, t):
    return np.where(np.arange(len(y)) == t, y, -1)


def hold(model, gate, value):
    """The model with one gate held at 1 (value=1) or 0 (value=0): its rows of b shifted by +-HOLD."""
    j = {"lstm": "ifgo", "gru": "rzn"}[model.cell.name].index(gate)
    H = model.H
    b = np.array(model.b)
    b[j * H:(j + 1) * H] += HOLD if value == 1 else -HOLD
    return model.replace(b=b)


def softmax_error(trace, y):
    """dE_t/dq_t = softmax(q_t) - onehot(y_t): (T, O), written out here."""
    q = trace.q
    p = np.exp(q - q.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p


# --- terms --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, reset_after", CASES)
@pytest.mark.parametrize("dense", [False, True])
def test_terms_of_output_t_sum_to_its_gradient(cell, reset_after, dense):
    m = _model(cell, reset_after, seed=1)
    x, y = _data(7, seed=2, dense=dense)
    fl = bptt.flow(m, x, y)
    gates = {"lstm": "ifgo", "gru": "rzn"}[cell]
    for t in (0, 3, 6):
        _, g = bptt.gradients(m, x, only(y, t))  # dE_t alone, by the engine's backward pass
        for name in ("W", "U", "b", "bh"):
            terms = fl.terms(name, t)
            assert terms.shape == (7,) + getattr(m, name).shape
            np.testing.assert_array_equal(terms[t + 1:], 0)
            np.testing.assert_allclose(terms.sum(0), getattr(g, name), rtol=1e-12, atol=1e-15, err_msg=name)
            blocks = np.concatenate([fl.terms(name, t, gate=q) for q in gates], axis=1)
            np.testing.assert_array_equal(blocks, terms)


@pytest.mark.parametrize("cell, reset_after", CASES)
def test_summing_over_outputs_gives_the_full_gradient(cell, reset_after):
    m = _model(cell, reset_after, seed=3)
    x, y = _data(6, seed=4)
    fl = bptt.flow(m, x, y)
    loss, g = bptt.gradients(m, x, y)
    assert fl.loss == pytest.approx(loss, rel=1e-13)
    for name in ("W", "U", "b", "bh"):
        total = sum(fl.terms(name, t).sum(0) for t in range(6))
        np.testing.assert_allclose(total, getattr(g, name), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell, reset_after", CASES)
def test_terms_against_finite_differences(cell, reset_after):
    m = _model(cell, reset_after, H=2, D=2, O=2, seed=5)
    x, y = _data(4, D=2, O=2, seed=6)
    t = 3
    fl = bptt.flow(m, x, y)
    for name in ("W", "bh"):
        got = fl.terms(name, t).sum(0)
        a = np.array(getattr(m, name))
        num = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            vals = []
            for h in (1e-6, -1e-6):
                a[i] = old + h
                vals.append(bptt.loss(m.replace(**{name: a}), x, only(y, t), backend="reference"))
            a[i] = old
            num[i] = (vals[0] - vals[1]) / 2e-6
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-9, err_msg=name)


# --- the state errors: the engine's h0 (and c0) gradient of the rest of the sequence -------------
@pytest.mark.parametrize("cell, reset_after", CASES)
def test_state_errors_are_the_initial_state_gradients_of_the_rest_of_the_sequence(cell, reset_after):
    # dE_t/dh_k, dE_t/dc_k: restart after step k from the state (h_k, c_k), score only output t,
    # and take the engine's dE/dh0 and dE/dc0
    m = _model(cell, reset_after, seed=7)
    x, y = _data(6, seed=8)
    fl = bptt.flow(m, x, y)
    tr = bptt.forward(m, x)
    T = 6
    for t in range(T):
        errs = fl.state_errors(t)
        for k in range(t):
            state = tuple(s[k + 1, 0] for s in tr.cell_states)
            _, g = bptt.gradients(m, x[k + 1:t + 1], only(y[k + 1:t + 1], t - k - 1),
                                  h0=state if cell == "lstm" else state[0])
            np.testing.assert_allclose(errs[0][k], g.h0, rtol=1e-12, atol=1e-16)
            assert fl.dE_ds[t, k] == pytest.approx(np.linalg.norm(g.h0), rel=1e-12, abs=1e-16)
            if cell == "lstm":
                np.testing.assert_allclose(errs[1][k], g.c0, rtol=1e-12, atol=1e-16)
                assert fl.dE_dc[t, k] == pytest.approx(np.linalg.norm(g.c0), rel=1e-12, abs=1e-16)
        np.testing.assert_allclose(errs[0][t], fl.dQ[t] @ m.V, rtol=1e-15)  # output t's own error
        assert np.all(errs[0][t + 1:] == 0)
    if cell == "lstm":
        assert np.all(np.diagonal(fl.dE_dc) == 0)  # output t reads h_t, not c_t
        assert np.all(np.triu(fl.dE_dc, 1) == 0)
    else:
        assert fl.dE_dc is None


def test_lstm_term_split_adds_up_and_follows_the_lstm_equations():
    m = _model("lstm", seed=9)
    x, y = _data(6, seed=10)
    fl = bptt.flow(m, x, y)
    tr = bptt.forward(m, x)
    i, f, g, o, _ = (c[:, 0] for c in tr.cache)
    C = tr.cell_states[1][:, 0]  # c_{-1}, ..., c_{T-1}
    X = np.eye(3)[x]
    t = 5
    _, dc = fl.state_errors(t)
    cell_part = fl.terms("U", t, path="cell")
    for name in ("W", "U", "b", "bh"):
        whole = fl.terms(name, t)
        np.testing.assert_allclose(fl.terms(name, t, path="cell") + fl.terms(name, t, path="h"), whole,
                                   rtol=1e-12, atol=1e-17)
    # the cell part of term k: the gate errors of the error at c_k alone, [i, f, g, o] blocks
    for k in range(t + 1):
        d_pre = np.concatenate([dc[k] * g[k] * i[k] * (1 - i[k]), dc[k] * C[k] * f[k] * (1 - f[k]),
                                dc[k] * i[k] * (1 - g[k] ** 2), np.zeros(4)])
        np.testing.assert_allclose(cell_part[k], np.outer(d_pre, X[k]), rtol=1e-12, atol=1e-17)
    np.testing.assert_array_equal(cell_part[t], 0)  # nothing arrives at c_t along the cell


# --- closed forms ----------------------------------------------------------------------------------
def _entry_errors(tr, y):
    """e_t = dE_t/dh_t * o_t * (1 - tanh^2 c_t), the error output t puts into its cell: (T, H),
    from the trace's forward values (o_t and tanh c_t as the forward pass computed them)."""
    o, tc = tr.cache[3][:, 0], tr.cache[4][:, 0]
    return (softmax_error(tr, y) @ tr.model.V) * o * (1 - tc * tc)


def test_forget_gate_at_one_without_an_h_path_is_the_constant_error_carousel():
    T = 80
    m = hold(_model("lstm", H=3, seed=11), "f", 1)
    m = m.replace(W=np.zeros_like(m.W))  # h_{k-1} reaches step k through W only: no h path
    x, y = _data(T, seed=12)
    fl = bptt.flow(m, x, y)
    assert np.all(fl.trace.cache[1] == 1.0)
    e = _entry_errors(fl.trace, y)
    size = np.linalg.norm(e, axis=1)
    for t in range(T):
        # ||dE_t/dc_k|| is the same at every lag 1..t: the error neither shrinks nor grows
        np.testing.assert_allclose(fl.dE_dc[t, :t], size[t], rtol=1e-12, atol=0)
        np.testing.assert_allclose(fl.cell_path(t)[:t], np.broadcast_to(e[t], (t, 3)), rtol=1e-12, atol=0)
        assert np.all(fl.dE_ds[t, :t] == 0)  # nothing travels through h
    # the engine agrees: dE_t/dc0 (lag t + 1) is e_t itself
    for t in (0, 40, T - 1):
        _, g = bptt.gradients(m, x, only(y, t))  # (the fast backend's own rounding: floored at the norm)
        np.testing.assert_allclose(g.c0, e[t], rtol=1e-12, atol=1e-12 * size[t])
        np.testing.assert_array_equal(g.h0, 0)
    prof = fl.by_lag()
    np.testing.assert_allclose(prof.c_mean[1:], prof.path_mean[1:], rtol=1e-12)


def test_forget_gate_at_one_keeps_the_cell_path_whatever_else_happens():
    T = 40
    m = hold(_model("lstm", H=3, seed=13), "f", 1)
    x, y = _data(T, seed=14)
    fl = bptt.flow(m, x, y)
    e = _entry_errors(fl.trace, y)
    for t in (10, T - 1):
        path = fl.cell_path(t)
        np.testing.assert_allclose(path[:t], np.broadcast_to(e[t], (t, 3)), rtol=1e-12, atol=0)
        _, dc = fl.state_errors(t)
        assert np.linalg.norm(dc[:t] - path[:t]) > 1e-3  # errors from h joined the cell on the way


def test_forget_gate_at_zero_ends_the_cell_path_at_its_first_step():
    T = 12
    m = hold(_model("lstm", H=3, seed=15), "f", 0)
    x, y = _data(T, seed=16)
    fl = bptt.flow(m, x, y)
    assert np.all(fl.trace.cache[1] <= 1e-300)
    assert np.all(fl.dE_dc <= 1e-290)  # the error entering c_t does not get past f_t
    for t in range(T):
        assert np.all(np.abs(fl.cell_path(t)) <= 1e-290)
        for name in ("W", "U"):
            assert np.all(np.abs(fl.terms(name, t, path="cell")) <= 1e-290)
    _, g = bptt.gradients(m, x, only(y, T - 1))
    assert np.all(np.abs(g.c0) <= 1e-290)
    # what still reaches h_{t-1}: output t's gate errors through W, written out
    tr = fl.trace
    e = _entry_errors(tr, y)
    i, f, gg, o, tc = (c[:, 0] for c in tr.cache)
    dh = softmax_error(tr, y) @ m.V
    for t in range(1, T):
        d_pre = np.concatenate([e[t] * gg[t] * i[t] * (1 - i[t]), np.zeros(3), e[t] * i[t] * (1 - gg[t] ** 2),
                                dh[t] * tc[t] * o[t] * (1 - o[t])])
        assert fl.dE_ds[t, t - 1] == pytest.approx(np.linalg.norm(d_pre @ m.W), rel=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_update_gate_at_one_copies_the_state_and_the_error(reset_after):
    T = 50
    m = hold(_model("gru", reset_after, H=3, seed=17), "z", 1)
    x, y = _data(T, seed=18)
    h0 = np.array([0.3, -0.2, 0.5])
    fl = bptt.flow(m, x, y, h0=h0)
    np.testing.assert_array_equal(fl.trace.S[:, 0], np.broadcast_to(h0, (T + 1, 3)))  # h_t = h_{t-1}
    e = softmax_error(fl.trace, y) @ m.V  # dE_t/dh_t
    for t in range(T):
        np.testing.assert_allclose(fl.dE_ds[t, :t + 1], np.linalg.norm(e[t]), rtol=1e-12, atol=0)
        np.testing.assert_allclose(fl.cell_path(t)[:t + 1], np.broadcast_to(e[t], (t + 1, 3)), rtol=1e-12)
    _, g = bptt.gradients(m, x, only(y, T - 1), h0=h0)
    np.testing.assert_allclose(g.h0, e[T - 1], rtol=1e-12)
    assert fl.decay_rate() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fl.lyapunov().exponents, 0, atol=1e-12)  # every step's Jacobian is I


@pytest.mark.parametrize("reset_after", [True, False])
def test_update_gate_at_zero_and_reset_at_one_is_an_elman_cell_of_w_n(reset_after):
    # h_t = n_t = tanh(U_n x_t + b_n + W_n h_{t-1} + bh_n): an Elman cell with U_n, W_n, b_n + bh_n
    m = hold(hold(_model("gru", reset_after, H=3, seed=19), "z", 0), "r", 1)
    x, y = _data(15, seed=20)
    H = 3
    elman = bptt.RNN(U=m.U[2 * H:], W=m.W[2 * H:], V=m.V, b=m.b[2 * H:] + m.bh[2 * H:], c=m.c, activation="tanh")
    fg, fe = bptt.flow(m, x, y), bptt.flow(elman, x, y)
    assert fg.loss == pytest.approx(fe.loss, rel=1e-13)
    np.testing.assert_allclose(fg.dE_ds, fe.dE_ds, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(fg.dE_dz, fe.dE_dz, rtol=1e-10, atol=1e-300)  # the r, z errors are 0
    for t in (4, 14):
        np.testing.assert_allclose(fg.terms("W", t, gate="n"), fe.terms("W", t), rtol=1e-10, atol=1e-300)
        assert np.all(np.abs(fg.terms("W", t, gate="z")) <= 1e-290)
    _, gg = bptt.gradients(m, x, y)
    _, ge = bptt.gradients(elman, x, y)
    np.testing.assert_allclose(gg.W[2 * H:], ge.W, rtol=1e-10)
    np.testing.assert_allclose(gg.U[2 * H:], ge.U, rtol=1e-10)


# --- explain ---------------------------------------------------------------------------------------
def _printed(line):
    return np.array(ast.literal_eval(line.split("=")[-1].split("(")[0].strip()))


@pytest.mark.parametrize("cell, reset_after", CASES)
def test_explain_writes_each_term_with_the_direct_paths_gate_product(cell, reset_after):
    m = _model(cell, reset_after, H=2, seed=21)
    x, y = _data(5, seed=22)
    fl = bptt.flow(m, x, y)
    t, gate = 4, {"lstm": "f", "gru": "z"}[cell]
    text = fl.explain("W", t)
    assert text.count("term k =") == t + 1
    lines = text.splitlines()
    product = f"  {gate}_4 * {gate}_3 * {gate}_2 = "
    line = next(ln for ln in lines if ln.startswith(product))
    gates = fl.trace.cache[1][:, 0]  # f (LSTM) or z (GRU)
    np.testing.assert_allclose(_printed(line), gates[2:5].prod(0), rtol=1e-3, atol=1e-4)
    _, g = bptt.gradients(m, x, only(y, t))
    np.testing.assert_allclose(_printed(lines[-1]), g.W, rtol=1e-3, atol=1e-4)
    if cell == "lstm":
        assert "the cell path alone: e_4 * f_4 * f_3 =" in text and "from the cell path" in text


def test_gated_errors_are_sentences():
    m = _model("gru", seed=23)
    x, y = _data(5, seed=24)
    fl = bptt.flow(m, x, y)
    with pytest.raises(ValueError, match="V and c"):
        fl.terms("V", 2)
    with pytest.raises(ValueError, match="gates are r, z, n, got 'f'"):
        fl.terms("W", 2, gate="f")
    with pytest.raises(ValueError, match="path splits the terms of a cell with a memory of its own"):
        fl.terms("W", 2, path="cell")
    with pytest.raises(ValueError, match="Elman cells"):
        fl.bound()
    nob = GRU(U=m.U, W=m.W, V=m.V)
    with pytest.raises(ValueError, match="no bias bh"):
        bptt.flow(nob, x, y).terms("bh", 1)
    elman = bptt.flow(bptt.random_rnn(3, 3, 3, seed=0), x, y)
    with pytest.raises(ValueError, match="gated cells"):
        elman.cell_path(2)
    with pytest.raises(ValueError, match="gated cells"):
        elman.terms("W", 2, gate="f")
