"""The engine against finite differences, closed forms and its own definitions (float64)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bptt
from bptt.check import check

pytestmark = pytest.mark.usefixtures("each_backend")  # every test on both backends

ACTS = ["tanh", "relu", "sigmoid", "identity"]


def case(seed, T=6, N=None, H=4, D=3, O=3, activation="tanh", bias=False, dense=False, head="softmax",
         mask=False, h0=False):
    rng = np.random.default_rng(seed)
    m = bptt.random_rnn(H, D, O, seed=rng, init="normal", std=0.6, activation=activation, head=head)
    if bias:
        m = m.replace(b=rng.normal(0, 0.3, H), c=rng.normal(0, 0.3, O))
    lead = (T,) if N is None else (N, T)
    x = rng.normal(size=lead + (D,)) if dense else rng.integers(0, D, lead)
    if head == "mse":
        y = rng.normal(size=lead + (O,))
        if mask:
            y[..., : T // 2, :] = np.nan
    else:
        y = rng.integers(0, O, lead)
        if mask:
            y[..., : T // 2] = -1
    hh = rng.normal(0, 0.5, (H,) if N is None else (N, H)) if h0 else None
    return m, x, y, hh


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 7), N=st.sampled_from([None, 1, 3]),
       H=st.integers(1, 5), act=st.sampled_from(ACTS), bias=st.booleans(), dense=st.booleans(),
       head=st.sampled_from(["softmax", "mse"]), mask=st.booleans(), h0=st.booleans(),
       reduction=st.sampled_from(["sum", "mean"]))
def test_full_bptt_matches_finite_differences(seed, T, N, H, act, bias, dense, head, mask, h0, reduction):
    m, x, y, hh = case(seed, T=T, N=N, H=H, activation=act, bias=bias, dense=dense, head=head, mask=mask, h0=h0)
    # integer rows that are all one-hot are refused as ambiguous (tests/test_notebook_bugs.py)
    one_hot_rows = x.ndim == 2 and x.shape[-1] == m.D and np.all(np.isin(x, (0, 1)) & (x.sum(-1, keepdims=True) == 1))
    assume(dense or not one_hot_rows)
    report = check(m, x, y, h0=hh, reduction=reduction)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == set(m.params) | {"h0"}


@pytest.mark.parametrize("T", [1, 2, 5, 17])
@pytest.mark.parametrize("w", [0.5, 0.97, 1.3])
def test_scalar_linear_rnn_closed_form(T, w):
    # s_{T-1} = w^T x0 from h0 = x0 with no input, so ds_{T-1}/dw = T w^(T-1) x0
    x0, target = 0.7, 0.2
    m = bptt.RNN(U=[[0.0]], W=[[w]], V=[[1.0]], activation="identity", head="mse")
    y = np.full((T, 1), np.nan)
    y[-1] = target
    loss, g = bptt.gradients(m, np.zeros((T, 1)), y, h0=[x0])
    sT = w**T * x0
    assert loss == pytest.approx((sT - target) ** 2, rel=1e-13)
    np.testing.assert_allclose(g.W, [[2 * (sT - target) * T * w ** (T - 1) * x0]], rtol=1e-12)
    np.testing.assert_allclose(g.h0, [2 * (sT - target) * w**T], rtol=1e-12)


def test_states_follow_the_recurrence():
    m, x, _, h0 = case(1, T=5, N=2, bias=True, h0=True)
    tr = bptt.forward(m, x, h0)
    s = tr.states
    assert s.shape == (2, 6, 4)
    for n in range(2):
        np.testing.assert_array_equal(s[n, 0], h0[n])
        for t in range(5):
            want = np.tanh(m.U[:, x[n, t]] + m.W @ s[n, t] + m.b)
            np.testing.assert_allclose(s[n, t + 1], want, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(tr.final, s[:, -1])
    np.testing.assert_allclose(tr.o.sum(-1), 1.0, rtol=1e-14)


def test_final_state_carries_across_chunks():
    m, x, _, _ = case(2, T=9, N=3)
    whole = bptt.forward(m, x).states
    first = bptt.forward(m, x[:, :4])
    second = bptt.forward(m, x[:, 4:], h0=first.final)
    np.testing.assert_allclose(np.concatenate([first.states, second.states[:, 1:]], axis=1), whole, rtol=1e-14)


def test_batch_equals_sum_of_sequences():
    m, x, y, h0 = case(3, T=5, N=4, bias=True, dense=True, h0=True)
    loss, g = bptt.gradients(m, x, y, h0=h0)
    parts = [bptt.gradients(m, x[n], y[n], h0=h0[n]) for n in range(4)]
    assert loss == pytest.approx(sum(p[0] for p in parts), rel=1e-13)
    for k in "UWVbc":
        np.testing.assert_allclose(getattr(g, k), sum(getattr(p[1], k) for p in parts), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.h0, np.stack([p[1].h0 for p in parts]), rtol=1e-13)


def test_mean_is_sum_over_scored_steps():
    m, x, y, _ = case(4, T=6, N=2, mask=True)
    ls, gs = bptt.gradients(m, x, y)
    lm, gm = bptt.gradients(m, x, y, reduction="mean")
    n = np.sum(y >= 0)
    assert lm == pytest.approx(ls / n, rel=1e-14)
    np.testing.assert_allclose(gm.W, gs.W / n, rtol=1e-13)


def test_masked_steps_contribute_nothing():
    m, x, y, _ = case(5, T=6)
    only_last = np.full(6, -1)
    only_last[-1] = y[-1]
    loss, g = bptt.gradients(m, x, only_last)
    lp = bptt.forward(m, x).q[-1]
    assert loss == pytest.approx(np.log(np.exp(lp).sum()) - lp[y[-1]], rel=1e-13)
    np.testing.assert_allclose(g.V, np.outer(np.exp(lp) / np.exp(lp).sum() - np.eye(3)[y[-1]],
                                             bptt.forward(m, x).states[-1]), rtol=1e-13)


@pytest.mark.parametrize("act", ACTS)
def test_truncation_at_or_beyond_T_is_full_bptt_exactly(act):
    m, x, y, h0 = case(6, T=7, N=2, activation=act, bias=True, h0=True)
    _, full = bptt.gradients(m, x, y, h0=h0)
    for K in (7, 8, 100):
        _, g = bptt.gradients(m, x, y, h0=h0, truncate=K)
        for k in ("U", "W", "V", "b", "c", "h0"):
            np.testing.assert_allclose(getattr(g, k), getattr(full, k), rtol=1e-13, atol=1e-15, err_msg=k)
    # K = T - 1 keeps every weight term, but output T-1's window ends at step 0, before h0
    _, g = bptt.gradients(m, x, y, h0=h0, truncate=6)
    np.testing.assert_allclose(g.W, full.W, rtol=1e-13, atol=1e-15)
    last_only = np.where(np.arange(7) == 6, y, -1)
    _, g_last = bptt.gradients(m, x, last_only, h0=h0)
    np.testing.assert_allclose(full.h0 - g.h0, g_last.h0, rtol=1e-9, atol=1e-15)
    assert np.all(g_last.h0 != 0)  # the difference is a real contribution, not two zeros


@pytest.mark.parametrize("K", [0, 1, 2, 4])
def test_truncation_keeps_exactly_the_terms_within_K(K):
    # the notebook's rule: dE/dW under truncate=K is the sum of the terms (t, k) with t - k <= K
    m, x, y, _ = case(7, T=8, bias=True)
    _, g = bptt.gradients(m, x, y, truncate=K)
    fl = bptt.flow(m, x, y)
    for name in ("W", "U", "b"):
        want = sum(fl.terms(name, t)[max(0, t - K): t + 1].sum(0) for t in range(8))
        np.testing.assert_allclose(getattr(g, name), want, rtol=1e-12, atol=1e-15, err_msg=name)


def test_truncation_zero_keeps_only_each_steps_own_term():
    m, x, y, _ = case(8, T=5)
    _, g = bptt.gradients(m, x, y, truncate=0)
    tr = bptt.forward(m, x)
    s, q = tr.states, tr.q
    want = np.zeros_like(m.W)
    for t in range(5):
        p = np.exp(q[t] - q[t].max())
        p /= p.sum()
        p[y[t]] -= 1
        want += np.outer((m.V.T @ p) * (1 - s[t + 1] ** 2), s[t])
    np.testing.assert_allclose(g.W, want, rtol=1e-12)


def test_float32_stays_float32():
    m, x, y, _ = case(9, T=5, N=2, bias=True)
    m32 = m.astype(np.float32)
    tr = bptt.forward(m32, x)
    loss, g = bptt.gradients(m32, x, y)
    assert tr.states.dtype == np.float32 and tr.q.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.params.values()) and g.h0.dtype == np.float32
    _, g64 = bptt.gradients(m, x, y)
    np.testing.assert_allclose(g.W, g64.W, rtol=2e-4, atol=1e-5)


def test_model_file_round_trip(tmp_path):
    m, *_ = case(10, bias=True, activation="relu")
    m.save(tmp_path / "m.npz")
    m2 = bptt.RNN.load(tmp_path / "m.npz")
    assert m2.activation == "relu"
    for k, v in m.params.items():
        np.testing.assert_array_equal(m2.params[k], v)


def test_model_file_with_pickles_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", meta=np.array("{}"), U=np.array([object()], dtype=object))
    with pytest.raises(ValueError):
        bptt.RNN.load(tmp_path / "evil.npz")


@pytest.mark.parametrize("init", ["uniform", "normal", "orthogonal", "identity"])
def test_initialisers_are_seeded_and_shaped(init):
    a = bptt.random_rnn(6, 4, 3, seed=5, init=init, std=0.1, radius=0.9)
    b = bptt.random_rnn(6, 4, 3, seed=np.random.default_rng(5), init=init, std=0.1, radius=0.9)
    assert (a.U.shape, a.W.shape, a.V.shape) == ((6, 4), (6, 6), (3, 6))
    np.testing.assert_array_equal(a.W, b.W)
    assert bptt.spectral_radius(a.W) == pytest.approx(0.9, rel=1e-12)


def test_orthogonal_and_uniform_initialisers():
    Q = bptt.orthogonal(7, seed=1)
    np.testing.assert_allclose(Q @ Q.T, np.eye(7), atol=1e-13)
    u = bptt.uniform((50, 400), seed=2)
    assert np.abs(u).max() <= 1 / np.sqrt(400) and np.abs(u).max() > 0.9 / np.sqrt(400)
    np.testing.assert_array_equal(bptt.identity(3), np.eye(3))
