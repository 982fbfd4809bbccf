"""bptt.approx against the exact gradient: the window's bias for every K and TBPTT's against the engine's
truncated gradients, RTRL against BPTT on drawn cases of every cell, SnAp against RTRL where it must be
exact and where it must not, UORO's mean against the exact gradient within its sample error."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import bptt
from bptt import approx, core
from bptt.approx import influence
from bptt.model import random_gated
from bptt.train import tbptt_gradients
from bptt.train.tbptt import blocks

CELLS = ("elman", "lstm", "gru", "gru-before")


def make(cell, H=4, D=3, O=3, *, seed=0, head="softmax", bias=True, std=0.7):
    if cell == "elman":
        m = bptt.random_rnn(H, D, O, seed=seed, bias=bias, std=std, head=head)
        return m.replace(b=np.random.default_rng(seed).normal(0, 0.3, H)) if bias else m
    return random_gated(cell.split("-")[0], H, D, O, seed=seed, reset_after=cell != "gru-before", head=head, bias=bias,
                        std=std)


def data(model, T, N=None, *, seed=0, dense=False):
    rng = np.random.default_rng(seed)
    lead = () if N is None else (N,)
    x = rng.normal(size=lead + (T, model.D)) if dense else rng.integers(0, model.D, lead + (T,))
    y = rng.normal(size=lead + (T, model.O)) if model.head == "mse" else rng.integers(-1, model.O, lead + (T,))
    return x, y


def flat(g: core.Grads, with_state=True):
    parts = [np.ravel(g.params[k]) for k in sorted(g.params)]
    return np.concatenate(parts + ([np.ravel(s) for s in g.state0] if with_state else []))


def assert_same(got: core.Grads, want: core.Grads, rtol=1e-10, atol=1e-13):
    assert set(got.params) == set(want.params)
    for k, v in want.params.items():
        assert got.params[k].shape == v.shape, k
        np.testing.assert_allclose(got.params[k], v, rtol=rtol, atol=atol, err_msg=k)
    assert len(got.state0) == len(want.state0)
    for name, a, b in zip(("h0", "c0"), got.state0, want.state0):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)


def diagonal_blocks(model):
    """W with each gate's (H, H) block made diagonal."""
    H = model.H
    return np.concatenate([np.diag(np.diag(model.W[g:g + H])) for g in range(0, model.W.shape[0], H)])


# --- truncation: the window for every K, TBPTT -------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N, dense", [(None, False), (2, True)])
def test_the_lag_table_gives_every_window_the_engine_gives(cell, N, dense):
    model = make(cell, seed=1)
    x, y = data(model, 9, N, seed=2, dense=dense)
    for budget in (approx.bias.CHUNK_BYTES, 2000):  # one chunk, and chunks of one or two outputs
        table = approx.lag_table(model, x, y, budget=budget)
        for K in [*range(11), None]:
            loss, want = core.gradients(model, x, y, truncate=K)
            assert_same(table.window(K), want)
            assert table.loss == pytest.approx(loss, rel=1e-14)
            if K is not None:
                keep, keep0 = approx.bias.window_keep(9, K)
                assert_same(approx.rule_gradient(model, x, y, keep, keep0, budget=budget)[1], want)


def test_the_lag_table_sums_to_the_full_gradient_and_its_head_is_exact():
    model = make("lstm", seed=3)
    x, y = data(model, 7, seed=4)
    table = approx.lag_table(model, x, y)
    _, full = core.gradients(model, x, y)
    for k in ("U", "W", "b", "bh"):
        np.testing.assert_allclose(table.by_lag[k].sum(axis=0), full.params[k], rtol=1e-12, atol=1e-14)
        assert not table.by_lag[k][-1].any()  # lag T does not exist for a parameter
    assert not table.by_lag["h0"][0].any() and not table.by_lag["c0"][0].any()  # the initial state: lags 1..T
    assert table.exact.keys() == {"V", "c"}
    np.testing.assert_array_equal(table.exact["V"], full.V)


def test_the_lag_table_of_a_scalar_linear_network_is_its_closed_form():
    """s_t = w s_{t-1} + u x_t, q_t = v s_t, E = sum_t (q_t - y_t)^2: the lag-l part of dE/dw is
    sum_t 2 e_t v w^l s_{t-l-1}, and of dE/ds_{-1} it is 2 e_{l-1} v w^l; the bias of window K is the
    sum of the lags above K, however small."""
    w, u, v, T = 0.3, 0.8, 1.1, 40
    model = bptt.RNN(U=[[u]], W=[[w]], V=[[v]], activation="identity", head="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(T, 1)), rng.normal(size=(T, 1))
    s = np.zeros(T + 1)  # s[t + 1] = s_t, s[0] = s_{-1} = 0 ... then a non-zero h0
    s[0] = 0.7
    for t in range(T):
        s[t + 1] = w * s[t] + u * x[t, 0]
    e = v * s[1:] - y[:, 0]
    lag_w = np.array([sum(2 * e[t] * v * w ** l * s[t - l] for t in range(l, T)) for l in range(T)])
    lag_h0 = np.array([2 * e[l - 1] * v * w ** l for l in range(1, T + 1)])
    table = approx.lag_table(model, x, y, h0=np.array([0.7]))
    np.testing.assert_allclose(table.by_lag["W"][:T, 0, 0], lag_w, rtol=1e-10)
    np.testing.assert_allclose(table.by_lag["h0"][1:, 0], lag_h0, rtol=1e-10)
    curve = approx.window_curve(model, x, y, h0=np.array([0.7]))
    full = lag_w.sum()
    for K in (0, 5, 20, 30, 38):
        assert curve.bias.rel["W"][K] == pytest.approx(abs(lag_w[K + 1:].sum()) / abs(full), rel=1e-9)
    assert curve.bias.rel["W"][38] < 1e-18  # far below float64's resolution of the gradient itself


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k1, k2", [(3, 5), (2, 2), (4, 9), (1, 3)])
def test_tbptt_gradient_is_the_sum_of_tbptt_updates(cell, k1, k2):
    model = make(cell, seed=5)
    x, y = data(model, 11, 2, seed=6)
    res = tbptt_gradients(model, x, y, k1, k2)
    params = {k: sum(g.params[k] for _, g in res) for k in model.params}
    starts = [max(0, tau - k2 + 1) for _, tau in blocks(11, k1)]  # the first step of each update's window
    state0 = tuple(sum(g.state0[i] for (_, g), ws in zip(res, starts) if ws == 0) for i in range(len(model.cell.state)))
    loss, got = approx.tbptt_gradient(model, x, y, k1, k2)
    assert_same(got, core.Grads(params, state0))
    assert loss == pytest.approx(sum(l for l, _ in res), rel=1e-12)


def test_the_curve_is_compare_at_every_window():
    model = make("gru", seed=7)
    x, y = data(model, 8, seed=8)
    curve = approx.window_curve(model, x, y)
    _, full = core.gradients(model, x, y)
    assert list(curve.K) == list(range(9))
    for K in curve.K:
        one = approx.compare(full, core.gradients(model, x, y, truncate=int(K))[1])
        for name in ("all", "U", "W", "b", "bh", "V", "c", "h0"):
            assert curve.bias.rel[name][K] == pytest.approx(one.rel[name], rel=1e-9, abs=1e-13), (name, K)
            assert curve.bias.cos[name][K] == pytest.approx(one.cos[name], rel=1e-12, nan_ok=True), (name, K)
    assert curve.bias.rel["V"].max() == 0 and curve.bias.rel["all"][-1] == 0 and curve.bias.rel["all"][0] > 0.01
    # by hand: the relative error and cosine of W at K = 0
    g0 = core.gradients(model, x, y, truncate=0)[1].W
    assert curve.bias.rel["W"][0] == pytest.approx(np.linalg.norm(g0 - full.W) / np.linalg.norm(full.W), rel=1e-12)
    assert curve.bias.cos["W"][0] == pytest.approx(np.sum(g0 * full.W) / np.linalg.norm(g0) / np.linalg.norm(full.W))


def test_smallest_window_meets_the_tolerance_from_there_on():
    model = bptt.random_rnn(6, 4, 4, seed=9, radius=1.2)
    x, y = data(model, 40, seed=10)
    curve = approx.window_curve(model, x, y)
    rel = curve.bias.rel["all"]
    last = -1
    for delta in (0.3, 0.1, 1e-2, 1e-4, 0.0):
        K = curve.smallest_window(delta)
        assert (rel[K:] <= delta).all() and (K == 0 or rel[K - 1] > delta)
        assert K >= last
        last = K
    assert approx.smallest_window(model, x, y, 1e-2) == curve.smallest_window(1e-2)
    assert 0 < curve.smallest_window(1e-2) < 40
    with pytest.raises(ValueError, match="delta"):
        curve.smallest_window(-1)


def test_compare_edge_cases():
    g = core.Grads({"W": np.array([[3.0, 4.0]]), "V": np.zeros((1, 2))}, (np.zeros(2),))
    a = g.replace(W=np.array([[3.0, 0.0]]))
    c = approx.compare(g, a)
    assert c.rel["W"] == pytest.approx(0.8) and c.cos["W"] == pytest.approx(0.6)
    assert c.rel["V"] == 0 and c.cos["V"] == 1 and c.rel["h0"] == 0
    assert c.rel["all"] == pytest.approx(0.8)
    c = approx.compare(g, g.replace(V=np.ones((1, 2))))
    assert c.rel["V"] == np.inf and np.isnan(c.cos["V"])


# --- RTRL ---------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(CELLS), H=st.integers(1, 4), D=st.integers(1, 3), O=st.integers(1, 3),
       T=st.integers(1, 6), N=st.sampled_from([None, 1, 2]), dense=st.booleans(),
       head=st.sampled_from(["softmax", "mse"]),
       bias=st.booleans(), with_h0=st.booleans(), reduction=st.sampled_from(["sum", "mean"]), seed=st.integers(0, 99))
def test_rtrl_is_bptt(cell, H, D, O, T, N, dense, head, bias, with_h0, reduction, seed):
    assume(dense or N is None or T != D)  # (N, D) integer ids could be read as one-hot rows: refused
    model = make(cell, H, D, O, seed=seed, head=head, bias=bias)
    x, y = data(model, T, N, seed=seed, dense=dense or D == 1)  # ids with D = 1 would read as one-hot rows
    h0 = None
    if with_h0:
        rng = np.random.default_rng(seed + 1)
        shape = (H,) if N is None else (N, H)
        h0 = rng.normal(size=shape) if cell != "lstm" else (rng.normal(size=shape), rng.normal(size=shape))
    loss, want = core.gradients(model, x, y, h0=h0, reduction=reduction)
    got_loss, got = approx.rtrl(model, x, y, h0=h0, reduction=reduction)
    assert got_loss == pytest.approx(loss, rel=1e-14, abs=1e-15)
    assert_same(got, want)


def test_rtrl_on_the_notebooks_example():
    model, x, y = bptt.seed_example()
    loss, want = bptt.gradients(model, x, y)
    got_loss, got = approx.rtrl(model, x, y)
    assert abs(got_loss - loss) <= 1e-12
    assert_same(got, want)


def test_rtrl_in_float32_is_bptt_to_float32_rounding():
    model = make("lstm", 5, seed=2).astype(np.float32)
    x, y = data(model, 12, 2, seed=3)
    _, want = core.gradients(model, x, y)
    _, got = approx.rtrl(model, x, y)
    assert got.W.dtype == np.float32 and got.h0.dtype == np.float32
    assert_same(got, want, rtol=2e-4, atol=2e-6)


def test_the_immediate_influence_is_the_gradient_of_one_step():
    """I_t from step_back on the identity basis, against the finite differences of one step."""
    for cell in CELLS:
        model = make(cell, 3, 2, 2, seed=4)
        lay = influence.layout(model)
        rng = np.random.default_rng(5)
        prev = tuple(rng.normal(size=(1, 3)) for _ in model.cell.state)
        x = rng.normal(size=(1, 2))
        theta = lay.flatten(model.params)

        def step(th):
            m = model.replace(**lay.split(th))
            a = x @ m.U.T + (0 if m.b is None else m.b)
            return np.concatenate(m.cell.step(m, a, prev)[0], axis=-1)[0]
        state, cache = model.cell.step(model, x @ model.U.T + model.b, prev)
        I = influence.Step(model, lay, prev, state, cache, x).I[0]
        eps = 1e-6
        fd = np.stack([(step(theta + eps * e) - step(theta - eps * e)) / (2 * eps) for e in np.eye(lay.P)], axis=1)
        np.testing.assert_allclose(I, fd, rtol=1e-6, atol=1e-8, err_msg=cell)


# --- SnAp ---------------------------------------------------------------------------------------
def relative(got, want):
    return np.linalg.norm(flat(got) - flat(want)) / np.linalg.norm(flat(want))


@pytest.mark.parametrize("cell", CELLS)
def test_snap1_is_rtrl_when_w_is_diagonal(cell):
    model = make(cell, 5, seed=11)
    model = model.replace(W=diagonal_blocks(model))
    x, y = data(model, 10, 2, seed=12)
    _, exact = approx.rtrl(model, x, y)
    assert_same(approx.snap(model, x, y, order=1)[1], exact)


@pytest.mark.parametrize("cell", CELLS)
def test_snap2_is_rtrl_on_a_dense_w_and_snap1_is_not(cell):
    model = make(cell, 5, seed=13)
    x, y = data(model, 10, seed=14)
    _, exact = approx.rtrl(model, x, y)
    assert_same(approx.snap(model, x, y, order=2)[1], exact)
    assert relative(approx.snap(model, x, y, order=1)[1], exact) > 1e-3


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_a_sparse_w_the_error_shrinks_from_snap1_to_snap2(cell, seed):
    model = make(cell, 6, seed=seed)
    keep = np.random.default_rng(seed + 100).random(model.W.shape) < 0.2
    model = model.replace(W=model.W * keep)
    x, y = data(model, 12, seed=seed)
    _, exact = approx.rtrl(model, x, y)
    e1, e2 = (relative(approx.snap(model, x, y, order=n)[1], exact) for n in (1, 2))
    assert e2 < e1
    assert e1 > 1e-4


def test_snap1_keeps_for_unit_i_the_parameters_that_feed_it():
    model = make("elman", 4, 3, seed=1)
    lay = influence.layout(model)
    mask, mask0 = influence.masks(model, lay, 1)
    want = lay.flatten({"U": np.broadcast_to(np.eye(4)[:, :, None], (4, 4, 3)),  # [unit i, row r, column]
                        "W": np.broadcast_to(np.eye(4)[:, :, None], (4, 4, 4)),
                        "b": np.eye(4)}) > 0
    np.testing.assert_array_equal(mask, want)
    assert mask0.all()  # a dense W: every unit feeds every unit in one step
    lstm = make("lstm", 3, 2, seed=1)
    mask, _ = influence.masks(lstm, influence.layout(lstm), 1)
    W = influence.layout(lstm).split(mask)["W"]  # (S, 4H, H): h_i and c_i keep the rows of unit i in every gate
    for e in range(6):
        rows = {r for r in range(12) if W[e, r].all()}
        assert rows == {e % 3 + 3 * g for g in range(4)} and not W[e][[r for r in range(12) if r not in rows]].any()
    with pytest.raises(ValueError, match="order"):
        approx.snap(model, *data(model, 3), order=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N, dense, head", [(None, False, "softmax"), (3, True, "mse")])
def test_snap1_on_its_pattern_equals_snap1_on_dense_arrays(cell, N, dense, head):
    model = make(cell, 5, seed=31, head=head)
    x, y = data(model, 9, N, seed=32, dense=dense)
    rng = np.random.default_rng(33)
    lead = () if N is None else (N,)
    h0 = tuple(rng.normal(size=lead + (5,)) for _ in model.cell.state)
    h0 = h0 if cell == "lstm" else h0[0]
    sparse, dense_run = (influence.run(model, x, y, m, h0=h0) for m in (influence.SnAp1(), influence.SnAp(1)))
    assert sparse.loss == pytest.approx(dense_run.loss, rel=1e-14)
    assert_same(influence.to_grads(sparse, x=x, h0=h0), influence.to_grads(dense_run, x=x, h0=h0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_snap1_on_its_pattern_carries_e_numbers_per_parameter(cell):
    model = make(cell, 6, seed=34)
    lay = influence.layout(model)
    method = influence.SnAp1(initial=False)
    m, M0 = method.start(model, lay, 2)
    E = len(model.cell.state)
    if cell == "gru-before":  # r_j reaches every unit through W_n: SnAp-1's pattern is not one unit each
        assert method.unit is None and m.shape == (2, E * 6, lay.P)
    else:
        assert m.shape == (2, E, lay.P) and M0 is None
        rows = lay.split(method.unit.astype(float))["W"]  # the unit of each of W's entries: its row's
        np.testing.assert_array_equal(rows, np.arange(model.W.shape[0])[:, None] % 6 * np.ones((1, 6)))


# --- UORO ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_uoro_mean_approaches_the_gradient_like_one_over_sqrt_n(cell):
    model = make(cell, 3, 2, 2, seed=21, std=0.8)
    x, y = data(model, 8, seed=22)
    _, exact = core.gradients(model, x, y)
    g = flat(exact)
    _, samples = approx.uoro_samples(model, x, y, 1600, seed=23)
    est = np.concatenate([samples.params[k].reshape(1600, -1) for k in sorted(samples.params)]
                         + [s.reshape(1600, -1) for s in samples.state0], axis=1)
    errors = []
    for n in (100, 400, 1600):
        e = est[:n]
        sd = np.sqrt(np.trace(np.cov(e, rowvar=False)) / n)  # the standard error of the mean, in norm
        err = np.linalg.norm(e.mean(axis=0) - g)
        assert err <= 4 * sd, (n, err, sd)
        errors.append(err)
    assert errors[-1] < errors[0]
    # the test can fail: at n = 1600 it resolves any bias larger than a quarter of the gradient's norm
    assert 4 * sd < 0.25 * np.linalg.norm(g)


def test_uoro_is_reproducible_and_its_samples_are_independent_draws():
    model = make("elman", 3, seed=1)
    x, y = data(model, 6, 2, seed=2)
    loss, a = approx.uoro(model, x, y, seed=5)
    _, b = approx.uoro(model, x, y, seed=5)
    _, c = approx.uoro(model, x, y, seed=6)
    assert loss == pytest.approx(core.loss(model, x, y))
    assert_same(a, b, rtol=0, atol=0)
    assert not np.allclose(flat(a), flat(c))
    assert a.h0.shape == (2, 3) and a.params.keys() == model.params.keys()
    _, many = approx.uoro_samples(model, x, y, 4, seed=7)
    _, mean = approx.uoro(model, x, y, seed=7, samples=4)
    assert many.W.shape == (4, 3, 3) and many.h0.shape == (4, 2, 3)
    np.testing.assert_allclose(mean.W, many.W.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(many.V[1], core.gradients(model, x, y)[1].V, rtol=1e-13)  # the head: exact
    with pytest.raises(ValueError, match="seed"):
        approx.uoro(model, x, y, seed=None)
    with pytest.raises(ValueError, match="samples"):
        approx.uoro(model, x, y, seed=0, samples=0)


@pytest.mark.parametrize("cell", [n for n in bptt.cells.names() if bptt.cells.get(n).linear()])
def test_on_a_diagonal_recurrence_snap1_is_exact_rtrl_and_bptt(cell):
    """A cell whose state Jacobian is diagonal unit by unit (the LRU's 2 x 2 rotation blocks on
    (Re h_i, Im h_i), minGRU's 1 - z, minLSTM's f', lambda) feeds each unit from its own parameters
    alone, so SnAp-1's pattern loses nothing: it is RTRL, kept on E numbers per parameter, and
    equals BPTT; the dense Elman W's SnAp-1 does not (test above)."""
    model = bptt.random_model(cell, 5, 3, 3, seed=41)
    x, y = data(model, 12, 2, seed=42)
    _, exact = bptt.gradients(model, x, y, backend="reference")
    lay = influence.layout(model)
    assert influence.unit_of(model, lay, influence.masks(model, lay, 1)[0]) is not None  # stored on its pattern
    assert_same(approx.snap(model, x, y, order=1)[1], exact)
    assert_same(approx.rtrl(model, x, y)[1], exact)
