"""The lag analysis against the theory it measures: bounds, exact decay, Jacobian spectra, Lyapunov."""
import functools
import gc
import tracemalloc

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt import analysis, batch, fast, spectra
from bptt.theory import bound_table, cliff, cliff_model, theory


def _tanh_model(H, norm, seed, D=4, O=4):
    m = bptt.random_rnn(H, D, O, seed=seed, activation="tanh")
    return m.replace(W=m.W * (norm / np.linalg.norm(m.W, 2)))


def _linear_model(H, rho, seed, D=4, O=4):
    # the mse head: a softmax saturated by exploding states would give some outputs no error at all
    m = bptt.random_rnn(H, D, O, seed=seed, init="orthogonal", activation="identity", head="mse")
    return m.replace(W=rho * bptt.orthogonal(H, seed=seed + 100))


def _ids(T, D, seed):
    return np.random.default_rng(seed).integers(0, D, T)


@pytest.mark.parametrize("seed", range(4))
def test_tanh_with_norm_08_stays_within_the_bound(seed):
    m = _tanh_model(12, 0.8, seed)
    fl = bptt.flow(m, _ids(80, 4, seed), _ids(80, 4, seed + 7))
    th = fl.theory()
    assert th.lambda1 == pytest.approx(0.8, rel=1e-12) and th.gamma == 1.0
    assert th.vanishing_sufficient and th.verdict == "vanishing"
    T = fl.T
    lag = np.arange(T)[:, None] - np.arange(T)[None, :]
    start = np.diagonal(fl.dE_ds)[:, None]
    bound = start * 0.8 ** np.maximum(lag, 0)  # computed here, not by the library
    low = lag >= 0
    assert np.all(fl.dE_ds[low] <= bound[low] * (1 + 1e-12))
    assert np.allclose(fl.bound()[low], bound[low], rtol=1e-13)
    assert (fl.dE_ds[low] > 0).all()
    rate = fl.decay_rate()
    assert 0 < rate <= 0.8
    # tanh shrinks the error further than the bound: f' < 1 wherever z != 0
    assert fl.by_lag().ratio_mean[20] < 0.8 ** 20


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.1, 1.5])
def test_linear_orthogonal_curve_is_exactly_rho_to_the_lag(rho):
    m = _linear_model(10, rho, seed=3)
    T = 60
    fl = bptt.flow(m, _ids(T, 4, 1), np.random.default_rng(2).normal(size=(T, 4)))
    norm, ratio, _ = analysis.by_lag_tables(fl)
    l = np.broadcast_to(np.arange(T), ratio.shape)
    ok = ~np.isnan(ratio)
    assert np.allclose(ratio[ok], rho ** l[ok], rtol=1e-11, atol=0)
    prof = fl.by_lag()
    assert np.allclose(prof.ratio_mean, rho ** np.arange(T), rtol=1e-11)
    assert np.allclose(prof.ratio_geomean, rho ** np.arange(T), rtol=1e-11)
    assert fl.decay_rate() == pytest.approx(rho, abs=1e-6)
    # the largest Lyapunov exponent of x -> rho Q x is log rho, and so is log(decay rate)
    assert fl.lyapunov().max == pytest.approx(np.log(rho), abs=1e-9)
    assert np.log(fl.decay_rate()) == pytest.approx(fl.lyapunov().max, abs=1e-6)


def test_by_lag_statistics_match_the_terms_rebuilt_one_output_at_a_time():
    m = bptt.random_rnn(5, 3, 3, seed=4, activation="tanh", radius=1.2)
    x, y = _ids(9, 3, 5), _ids(9, 3, 6)
    y[3] = -1  # an unscored output starts no error and is left out
    fl = bptt.flow(m, x, y)
    T = fl.T
    terms = {t: np.linalg.norm(fl.terms("W", t), axis=(1, 2)) for t in range(T) if t != 3}
    prof = fl.by_lag()
    for l in range(T):
        ts = [t for t in terms if t >= l]
        assert prof.count[l] == len(ts)
        assert prof.term_mean[l] == pytest.approx(np.mean([terms[t][t - l] for t in ts]), rel=1e-12)
        norms = [fl.dE_ds[t, t - l] for t in ts]
        assert prof.norm_mean[l] == pytest.approx(np.mean(norms), rel=1e-12)
        assert prof.norm_max[l] == pytest.approx(max(norms), rel=1e-12)
    total = sum(v.sum() for v in terms.values())
    beyond2 = sum(terms[t][k] for t in terms for k in range(t + 1) if t - k > 2) / total
    assert prof.beyond[2] == pytest.approx(beyond2, rel=1e-12)
    assert prof.beyond[-1] == 0 and np.all(np.diff(prof.beyond) <= 0)
    assert prof.ratio_mean[0] == 1.0


def test_decay_rate_rejects_what_it_cannot_fit():
    m = bptt.random_rnn(3, 3, 3, seed=0)
    with pytest.raises(ValueError, match="at least 2 steps"):
        bptt.flow(m, [1], [2]).decay_rate()
    with pytest.raises(ValueError, match="min_lag"):
        bptt.flow(m, [1, 2, 0], [2, 1, 0]).decay_rate(min_lag=3)


def _mp_log_singular_values(A, k, t, dps=60):
    mpmath.mp.dps = dps
    M = mpmath.eye(A.shape[1])
    for j in range(k + 1, t + 1):
        M = mpmath.matrix(A[j].tolist()) * M
    return np.array(sorted((float(mpmath.log(v)) for v in mpmath.svd_r(M, compute_uv=False)), reverse=True))


def test_jacobian_singular_values_agree_with_mpmath():
    m = bptt.random_rnn(6, 4, 4, seed=3, activation="tanh", radius=1.3)
    tr = bptt.forward(m, _ids(40, 4, 1))
    A = spectra.step_jacobians(tr)
    for t, k in [(5, 4), (10, 2), (30, 20), (39, 0)]:
        ours = spectra.jacobian_spectrum(tr, t, k)
        ref = _mp_log_singular_values(A, k, t)
        assert np.allclose(ours, ref, rtol=1e-9, atol=1e-9), (t, k)
    assert np.all(spectra.jacobian_spectrum(tr, 7, 7) == 0)  # ds_t/ds_t = I
    for t, k in [(3, 5), (40, 0), (2, -1), (2.5, 1)]:
        with pytest.raises(ValueError, match="ds_t/ds_k|integer"):
            spectra.jacobian_spectrum(tr, t, k)
    with pytest.raises(ValueError, match="burn_in"):
        bptt.lyapunov(tr, burn_in=40)
    # near-orthogonal W: singular values in tight groups, finished group by group
    m = bptt.random_rnn(8, 8, 8, seed=1, init="orthogonal", radius=1.1, activation="tanh")
    tr = bptt.forward(m, _ids(80, 8, 0))
    ours = spectra.jacobian_spectrum(tr, 79, 0)
    ref = _mp_log_singular_values(spectra.step_jacobians(tr), 0, 79, dps=int((ours[0] - ours[-1]) / 2.3) + 40)
    assert np.allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_jacobian_singular_values_of_a_1000_step_product_are_finite_and_right():
    m = _tanh_model(8, 3.0, seed=2)  # saturates: the product spans hundreds of orders of magnitude
    T = 1000
    fl = bptt.flow(m, _ids(T, 4, 3), _ids(T, 4, 4))
    ls = fl.jacobian_spectrum(T - 1, 0)
    assert np.all(np.isfinite(ls)) and np.all(np.diff(ls) <= 0)
    assert ls[-1] < np.log(np.finfo(float).tiny)  # far below what a float64 product could hold
    A = spectra.step_jacobians(fl.trace)[1:]
    # the sum of log singular values is log |det| of the product = sum of log |det A_j|
    assert ls.sum() == pytest.approx(sum(np.linalg.slogdet(a)[1] for a in A), rel=1e-10)
    # a product of 300 factors whose singular values span hundreds of orders of magnitude, in
    # mpmath with enough digits to hold the smallest beside the largest
    ours = fl.jacobian_spectrum(699, 399)
    dps = int((ours[0] - ours[-1]) / np.log(10)) + 40
    assert dps > 300
    ref = _mp_log_singular_values(spectra.step_jacobians(fl.trace), 399, 699, dps=dps)
    assert np.allclose(ours, ref, rtol=1e-10)
    # the raw product keeps the largest singular value, but every other one drowns in its rounding
    raw = functools.reduce(lambda P, a: a @ P, A)
    sv = np.log(np.linalg.svd(raw, compute_uv=False))
    assert sv[0] == pytest.approx(ls[0], rel=1e-6)
    assert sv[-1] > ls[-1] + 1000


def test_lyapunov_exponents_of_a_linear_rnn_are_log_abs_eigenvalues():
    rng = np.random.default_rng(0)
    H = 5
    W = rng.normal(size=(H, H)) / np.sqrt(H)  # complex pairs included
    m = bptt.RNN(U=rng.normal(size=(H, 3)), W=W, V=rng.normal(size=(2, H)), activation="identity")
    ly = spectra.lyapunov(bptt.forward(m, rng.normal(size=(4000, 3))), burn_in=400)
    ev = np.sort(np.log(np.abs(np.linalg.eigvals(W))))[::-1]
    assert np.allclose(ly.exponents, ev, atol=1e-3)
    assert ly.steps == 3600


def test_lyapunov_max_bounds_the_singular_values_of_long_products():
    m = _tanh_model(6, 2.0, seed=5)
    fl = bptt.flow(m, _ids(600, 4, 8), _ids(600, 4, 9))
    ly = fl.lyapunov(burn_in=100)
    ls = fl.jacobian_spectrum(599, 99) / 500
    assert np.allclose(ls, ly.exponents, atol=0.02)


def test_saturation_of_tanh_grows_with_the_weights():
    x, y = _ids(50, 4, 1), _ids(50, 4, 2)
    small = bptt.flow(_tanh_model(8, 0.5, 1), x, y).saturation()
    big = _tanh_model(8, 0.5, 1)
    big = bptt.flow(big.replace(W=big.W * 20, U=big.U * 20), x, y).saturation()
    assert small.values.shape == (50, 8) and small.gamma == 1
    assert small.fraction_saturated() < 0.05 < 0.5 < big.fraction_saturated()
    assert np.all((big.values >= 0) & (big.values <= 1))
    counts, edges = big.histogram(10)
    assert counts.sum() == 400 and edges[-1] == 1.0
    lin = bptt.flow(_linear_model(4, 0.9, 0), x, np.zeros((50, 4))).saturation()
    assert np.all(lin.values == 1) and lin.fraction_saturated() == 0


def test_batch_analysis_equals_the_sequences_one_at_a_time():
    m = _tanh_model(6, 1.5, seed=1)
    X = np.random.default_rng(0).integers(0, 4, (5, 30))
    Y = np.random.default_rng(1).integers(0, 4, (5, 30))
    ba = batch.analyse_batch(m, X, Y, progress=False)
    assert bptt.analyse_batch is batch.analyse_batch
    one = [bptt.flow(m, X[i], Y[i]) for i in range(5)]
    assert np.allclose(ba.decay, [f.decay_rate() for f in one], rtol=1e-12)
    assert np.allclose(ba.ratio_mean, [f.by_lag().ratio_mean for f in one], rtol=1e-12)
    mean, std = ba.curve("ratio_mean")
    assert np.allclose(mean, np.mean(ba.ratio_mean, 0)) and np.allclose(std, np.std(ba.ratio_mean, 0))
    s = ba.summary()
    assert s["N"] == 5 and s["decay"]["mean"] == pytest.approx(np.mean(ba.decay))
    given = batch.analyse_flows(one)  # the flows a caller already has: the same numbers
    for k in ("ratio_mean", "norm_mean", "beyond", "decay", "lyapunov_max", "saturated", "loss"):
        assert np.array_equal(getattr(given, k), getattr(ba, k), equal_nan=True), k
    with pytest.raises(ValueError, match="x holds 5 sequences but y holds 4"):
        batch.flows(m, X, Y[:4])
    with pytest.raises(ValueError, match=r"\(N, T\) ids"):
        batch.flows(m, X[0], Y[0])


def test_theory_verdicts_and_reasons():
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    Q = bptt.orthogonal(4, seed=1)
    sig = theory(bptt.RNN(U=U, W=3.0 * Q, V=V, activation="sigmoid"))
    assert sig.gamma == 0.25 and sig.verdict == "vanishing" and "0.75 < 1" in sig.reason
    up = theory(bptt.RNN(U=U, W=1.5 * Q, V=V, activation="identity"))
    assert up.verdict == "exploding" and up.rho == pytest.approx(1.5) and "rho(W) = 1.5 > 1" in up.reason
    tanh = theory(bptt.RNN(U=U, W=2.0 * Q, V=V, activation="tanh"))
    assert tanh.verdict == "neither is guaranteed" and tanh.exploding_necessary
    assert not tanh.vanishing_sufficient and "saturat" not in tanh.reason or "f'(z)" in tanh.reason
    # a non-normal W: rho < 1 < lambda_1, so the linear error vanishes only in the long run
    nn = theory(bptt.RNN(U=U[:2], W=np.array([[0.5, 3.0], [0.0, 0.5]]), V=V[:, :2], activation="identity"))
    assert nn.verdict == "vanishing" and nn.lambda1 > 1 > nn.rho and "first" in nn.reason


def test_cliff_gradient_matches_bptt_on_the_same_network():
    w, b = np.array([1.0, 4.0, 4.8193, 6.0]), np.array([-2.5, -1.0])
    c = cliff(w, b)
    for i, bi in enumerate(b):
        for j, wj in enumerate(w):
            model, x, y, h0 = cliff_model(wj, bi)
            loss, g = bptt.gradients(model, x, y, h0=h0)
            assert c.loss[i, j] == pytest.approx(loss, rel=1e-10)
            assert c.dw[i, j] == pytest.approx(g.W[0, 0], rel=1e-7, abs=1e-14)
            assert c.db[i, j] == pytest.approx(g.b[0], rel=1e-7, abs=1e-14)


def test_cliff_has_a_wall_along_w():
    w = np.linspace(3.0, 7.0, 4001)
    c = cliff(w, [-2.5])
    loss, gn = c.loss[0], c.grad_norm[0]
    i = int(np.argmax(gn))
    assert 4.5 < w[i] < 5.2
    away = np.abs(w - w[i]) > 0.1
    assert gn[i] > 1e3 * np.median(gn[away])  # the gradient jumps by orders of magnitude
    near = np.abs(w - w[i]) <= 0.02
    left, right = loss[near & (w < w[i])], loss[near & (w > w[i])]
    assert left.mean() - right.mean() > 0.2  # the loss falls off a wall 0.04 wide
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        cliff([1.0], [0.0], steps=0)


@settings(max_examples=25, deadline=None)
@given(H=st.integers(1, 6), T=st.integers(2, 25), act=st.sampled_from(["tanh", "sigmoid", "relu", "identity"]),
       scale=st.floats(0.1, 3.0), seed=st.integers(0, 10_000))
def test_bound_and_decay_rate_hold_for_any_model(H, T, act, scale, seed):
    m = bptt.random_rnn(H, 3, 3, seed=seed, activation=act, bias=True)
    m = m.replace(W=m.W * scale, b=np.random.default_rng(seed).normal(size=H))
    r = np.random.default_rng(seed + 1)
    fl = bptt.flow(m, r.integers(0, 3, T), r.integers(0, 3, T))
    g = fl.theory().growth
    assert g == pytest.approx(np.linalg.norm(m.W, 2) * {"sigmoid": 0.25}.get(act, 1.0), rel=1e-12)
    low = np.tril(np.ones((T, T), bool))
    lag = (np.arange(T)[:, None] - np.arange(T)[None, :])[low]
    assert np.all(fl.dE_ds[low] <= np.diagonal(fl.dE_ds)[:, None].repeat(T, 1)[low] * g ** lag * (1 + 1e-9) + 1e-300)
    prof = fl.by_lag()
    assert np.all(np.diff(prof.beyond[~np.isnan(prof.beyond)]) <= 1e-15)
    try:
        rate = fl.decay_rate()
    except ValueError:  # every error died at once (relu units all off)
        return
    assert 0 < rate <= g * (1 + 1e-9)


# --- the block-wise analyses against the whole-table formulas they replaced ----------------------
# The reference: the straightforward formulas, kept here as they were, each building whole (T, T)
# lag tables (about nine (T, T) arrays alive at once). analysis.py and theory.py must give the same
# numbers to rounding while holding no (T, T) array beside the Flow's own two tables.

def _ref_tables(fl):
    T = fl.T
    t = np.arange(T)[:, None]
    l = np.arange(T)[None, :]
    k = t - l
    start = np.diagonal(fl.dE_ds)
    valid = (k >= 0) & (start[:, None] > 0)
    kk = np.clip(k, 0, None)
    norm = np.where(valid, fl.dE_ds[t, kk], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = norm / start[:, None]
    s_prev = np.linalg.norm(fl.trace.S[:-1, 0], axis=1)
    term = np.where(valid, fl.dE_dz[t, kk] * s_prev[kk], np.nan)
    return norm, ratio, term


def _ref_stats(a):
    ok = ~np.isnan(a)
    n = ok.sum(0)
    z = np.where(ok, a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = z.sum(0) / n
        var = np.where(ok, (a - mean) ** 2, 0.0).sum(0) / n
        lo = np.where(ok, a, np.inf).min(0)
        hi = np.where(ok, a, -np.inf).max(0)
    nan = n == 0
    return n, mean, np.sqrt(var), np.where(nan, np.nan, lo), np.where(nan, np.nan, hi)


def _ref_by_lag(fl):
    norm, ratio, term = _ref_tables(fl)
    n, nm, ns, nlo, nhi = _ref_stats(norm)
    _, rm, rs, _, _ = _ref_stats(ratio)
    with np.errstate(divide="ignore"):
        _, lg, _, _, _ = _ref_stats(np.log(ratio))
    _, tm, ts, _, _ = _ref_stats(term)
    mass = np.nansum(term, axis=0)
    total = mass.sum()
    tail = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])
    beyond = tail / total if total > 0 else np.full_like(mass, np.nan)
    return {"lags": np.arange(fl.T), "count": n, "norm_mean": nm, "norm_std": ns, "norm_min": nlo,
            "norm_max": nhi, "ratio_mean": rm, "ratio_std": rs, "ratio_geomean": np.exp(lg),
            "term_mean": tm, "term_std": ts, "beyond": beyond}


def _ref_decay_rate(fl, min_lag=1, max_lag=None):
    T = fl.T
    max_lag = T - 1 if max_lag is None else int(max_lag)
    _, ratio, _ = _ref_tables(fl)
    lag = np.broadcast_to(np.arange(T)[None, :], ratio.shape)
    sel = (lag >= min_lag) & (lag <= max_lag) & (ratio > 0) & np.isfinite(ratio)
    l, lr = lag[sel].astype(float), np.log(ratio[sel])
    return float(np.exp((l * lr).sum() / (l * l).sum()))


def _ref_bound_table(fl):
    th = theory(fl.trace.model)
    T = fl.T
    lag = np.arange(T)[:, None] - np.arange(T)[None, :]
    out = np.diagonal(fl.dE_ds)[:, None] * th.bound(np.maximum(lag, 0))
    return np.where(lag >= 0, out, 0.0)


def _assert_same(ours, ref, scale=None, rtol=1e-12, what=""):
    """ours equals ref to rounding: NaN and infinities in the same places, elsewhere
    |ours - ref| <= rtol max(|ref|, |scale|) (scale: the size a spread is measured against)."""
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    assert ours.shape == ref.shape, what
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), what
    inf = np.isinf(ref)
    assert np.array_equal(ours[inf], ref[inf]) and not np.isinf(ours[~inf]).any(), what
    fin = np.isfinite(ref)
    size = np.abs(ref) if scale is None else np.maximum(np.abs(ref), np.abs(scale))
    err = np.abs(ours - ref)[fin]
    assert np.all(err <= rtol * size[fin]), (what, float(np.max(err / np.where(size[fin] > 0, size[fin], 1))))


def _flow_for(T, radius, seed, activation="tanh", H=16):
    m = bptt.random_rnn(H, 5, 5, seed=seed, radius=radius, activation=activation)
    y = _ids(T, 5, seed + 2)
    y[np.random.default_rng(seed).random(T) < 0.1] = -1  # some outputs unscored
    return bptt.flow(m, _ids(T, 5, seed + 1), y)


SPREADS = {"norm_std": "norm_mean", "ratio_std": "ratio_mean", "term_std": "term_mean"}


@pytest.mark.parametrize("T", [60, 150])
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_block_wise_analyses_equal_the_whole_table_formulas(T, radius, seed):
    fl = _flow_for(T, radius, seed)
    ref = _ref_by_lag(fl)
    assert (np.diagonal(fl.dE_ds) == 0).any()  # the unscored outputs are there to be left out
    for rows in (None, 1, 7, T):  # the default block, one output at a time, ragged blocks, one block
        prof = analysis.by_lag(fl, rows=rows)
        for name, want in ref.items():
            scale = ref[SPREADS[name]] if name in SPREADS else None
            _assert_same(getattr(prof, name), want, scale=scale, what=(rows, name))
        assert np.array_equal(prof.count, ref["count"])
        assert analysis.decay_rate(fl, rows=rows) == pytest.approx(_ref_decay_rate(fl), rel=1e-12, abs=0)
        for lo, hi in [(1, 1), (3, T // 2), (T - 5, None)]:
            assert analysis.decay_rate(fl, min_lag=lo, max_lag=hi, rows=rows) == pytest.approx(
                _ref_decay_rate(fl, lo, hi), rel=1e-12, abs=0)
    # the Flow's methods use the same functions
    assert fl.decay_rate() == pytest.approx(_ref_decay_rate(fl), rel=1e-12, abs=0)
    assert np.array_equal(fl.by_lag().count, ref["count"])
    _assert_same(fl.bound(), _ref_bound_table(fl), what="bound")
    for ours, want in zip(analysis.by_lag_tables(fl), _ref_tables(fl)):
        assert np.array_equal(ours, want, equal_nan=True)
    sat = fl.saturation()
    assert sat.values.shape == (T, 16)
    assert np.array_equal(sat.values, 1 - fl.trace.S[1:, 0] ** 2)  # tanh' from the output


@pytest.mark.parametrize("activation, radius", [("relu", 1.3), ("identity", 1.3), ("identity", 0.5)])
def test_block_wise_analyses_equal_the_whole_table_formulas_at_the_edges(activation, radius):
    # relu kills errors outright (ratio 0: log -inf, a geometric mean of 0, points the fit leaves
    # out); the identity at radius 1.3 grows errors by orders of magnitude over 150 steps
    fl = _flow_for(150, radius, 3, activation=activation, H=3 if activation == "relu" else 8)
    ref = _ref_by_lag(fl)
    if activation == "relu":
        assert (ref["ratio_geomean"] == 0).any()
    prof = analysis.by_lag(fl, rows=11)
    for name, want in ref.items():
        _assert_same(getattr(prof, name), want, scale=ref[SPREADS[name]] if name in SPREADS else None,
                     what=name)
    assert analysis.decay_rate(fl, rows=11) == pytest.approx(_ref_decay_rate(fl), rel=1e-12, abs=0)
    _assert_same(fl.bound(), _ref_bound_table(fl), what="bound")


def test_row_blocks_cover_every_output_once():
    for T, rows in [(1, None), (10, 3), (10, 10), (10, 99), (5000, None)]:
        blocks = analysis.row_blocks(T, rows)
        assert blocks[0][0] == 0 and blocks[-1][1] == T
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(blocks, blocks[1:] + [(T, T + 1)]))
    assert analysis.row_blocks(5000)[0] == (0, analysis.BLOCK // 5000)
    with pytest.raises(ValueError, match="rows .* must be an integer >= 1, got 0"):
        analysis.row_blocks(10, 0)


def _traced_peak(fn):
    """(fn(), the peak bytes traced by tracemalloc while fn ran): NumPy reports its arrays to it.

    The fast backend loads its compiled kernels on a background thread, whose allocations
    tracemalloc would count too: wait for them first (set_compiled(True) waits), then restore."""
    fast.set_compiled(fast.set_compiled(True))
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_flow_and_its_analyses_hold_no_more_than_their_tables():
    T, H = 1024, 16
    table = T * T * 8  # one (T, T) float64 table: 8 MiB
    m = bptt.random_rnn(H, 8, 8, seed=0, radius=1.0)
    x, y = _ids(T, 8, 1), _ids(T, 8, 2)
    bptt.flow(m, x[:8], y[:8])  # whatever compiles on a first call does so outside the count
    fl, peak = _traced_peak(lambda: bptt.flow(m, x, y))
    assert fl.dE_ds.dtype == fl.dE_dz.dtype == np.float64
    assert peak <= 1.25 * 2 * table, f"flow peaked at {peak / table:.2f} tables"
    _, peak = _traced_peak(lambda: (fl.decay_rate(), fl.by_lag()))
    assert peak <= 1.25 * table, f"decay_rate + by_lag peaked at {peak / table:.2f} tables"
    bound, peak = _traced_peak(fl.bound)
    assert bound.shape == (T, T) and peak <= 1.25 * table, f"bound peaked at {peak / table:.2f} tables"
    _, peak = _traced_peak(fl.saturation)
    assert peak <= 0.25 * table
    # the measurement sees (T, T) temporaries: the whole-table formulas hold several at once
    _, peak = _traced_peak(lambda: (_ref_decay_rate(fl), _ref_by_lag(fl)))
    assert peak > 3 * table


# --- gated cells (LSTM, GRU) -----------------------------------------------------------------------
def _gated(cell, H=4, seed=0, reset_after=True, **kw):
    from bptt.model import random_gated

    return random_gated(cell, H, 4, 4, seed=seed, **({"reset_after": reset_after} if cell == "gru" else {}), **kw)


def _held(model, gate, value):
    """One gate held at exactly 1 (value 1) or 0 by a bias of +-1e3 on its rows of b."""
    j = {"lstm": "ifgo", "gru": "rzn"}[model.cell.name].index(gate)
    b = np.array(model.b)
    b[j * model.H:(j + 1) * model.H] += 1e3 if value == 1 else -1e3
    return model.replace(b=b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_flows_and_their_analyses_hold_no_more_than_three_tables(cell):
    # a gated Flow keeps three (T, T) tables (dE_ds, dE_dz, and dE_dc or dE_dW); nothing else adds one
    T, H = 1024, 8
    table = T * T * 8
    m = _gated(cell, H, seed=0)
    x, y = _ids(T, 4, 1), _ids(T, 4, 2)
    bptt.flow(m, x[:8], y[:8])
    fl, peak = _traced_peak(lambda: bptt.flow(m, x, y))
    assert (fl.dE_dc if cell == "lstm" else fl.dE_dW).shape == (T, T)
    assert (fl.dE_dW if cell == "lstm" else fl.dE_dc) is None
    assert peak <= 1.25 * 3 * table, f"flow peaked at {peak / table:.2f} tables"
    prof, peak = _traced_peak(lambda: (fl.decay_rate(), fl.by_lag()))
    assert peak <= 1.25 * table, f"decay_rate + by_lag peaked at {peak / table:.2f} tables"
    _, peak = _traced_peak(lambda: (fl.saturation(), fl.lyapunov(), fl.theory()))
    assert peak <= 0.5 * table, f"saturation + lyapunov + theory peaked at {peak / table:.2f} tables"


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("cell, reset_after", [("lstm", True), ("gru", True), ("gru", False)])
def test_gate_saturation_reads_the_gates_the_weights_make(cell, reset_after):
    m = _gated(cell, 5, seed=3, reset_after=reset_after, std=1.5)
    x, y = _ids(40, 4, 4), _ids(40, 4, 5)
    fl = bptt.flow(m, x, y)
    sat = fl.saturation()
    assert isinstance(sat, analysis.GateSaturation)
    h = fl.trace.S[:-1, 0]  # h_{t-1}
    pre = m.U[:, x].T + m.b + h @ m.W.T + m.bh  # (T, G): every gate's pre-activation, written out
    H = 5
    names = {"lstm": {"i": 0, "f": 1, "o": 3}, "gru": {"r": 0, "z": 1}}[cell]
    assert list(sat.gates) == list(names)
    for g, j in names.items():
        want = _sigmoid(pre[:, j * H:(j + 1) * H])
        np.testing.assert_allclose(sat.gates[g], want, rtol=1e-12)
        assert sat.near_one(g) == np.mean(want > 0.9) and sat.near_zero(g) == np.mean(want < 0.1)
        assert sat.mean(g) == pytest.approx(want.mean(), rel=1e-12)
    gate = sat.gates[sat.path_gate]
    assert sat.path_gate == {"lstm": "f", "gru": "z"}[cell]
    assert sat.path_rate == pytest.approx(np.exp(np.log(gate).mean()), rel=1e-12)
    every = np.concatenate([v.ravel() for v in sat.gates.values()])
    assert sat.fraction_saturated() == np.mean((every < 0.1) | (every > 0.9))
    assert 0 < sat.fraction_saturated() < 1  # std 1.5 drives some gates to their ends
    s = sat.summary()
    assert s["gates"][sat.path_gate]["near_1"] == sat.near_one(sat.path_gate)
    counts, edges = sat.histogram(sat.path_gate, 10)
    assert counts.sum() == gate.size and edges[-1] == 1.0
    held = bptt.flow(_held(m, sat.path_gate, 1), x, y).saturation()
    assert held.near_one(sat.path_gate) == 1.0 and held.path_rate == 1.0
    with pytest.raises(ValueError, match="sigmoid gates are"):
        sat.mean("g")


def test_lstm_forget_gate_at_one_without_h_path_has_lyapunov_exponents_zero_and_minus_infinity():
    # the joint Jacobian d(h_t, c_t)/d(h_{t-1}, c_{t-1}) = [[0, diag(o_t tanh'(c_t))], [0, I]] when
    # W = 0 and f = 1: H exponents 0 (the cell path keeps every direction of c) and H of -inf
    H, T = 3, 60
    m = _held(_gated("lstm", H, seed=4), "f", 1)
    m = m.replace(W=np.zeros_like(m.W))
    fl = bptt.flow(m, _ids(T, 4, 5), _ids(T, 4, 6))
    ly = fl.lyapunov()
    assert ly.exponents.shape == (2 * H,)
    np.testing.assert_allclose(ly.exponents[:H], 0, atol=1e-12)
    assert np.all(ly.exponents[H:] == -np.inf)
    # the product over any steps is [[0, D_t], [0, I]], D_t = diag(o_t (1 - tanh^2 c_t)): its singular
    # values are sqrt(1 + d_i^2) and H zeros
    o, tc = fl.trace.cache[3][:, 0], fl.trace.cache[4][:, 0]
    for t, k in [(10, 2), (59, 0), (30, 29)]:
        d = o[t] * (1 - tc[t] ** 2)
        ls = fl.jacobian_spectrum(t, k)
        np.testing.assert_allclose(ls[:H], np.sort(0.5 * np.log1p(d * d))[::-1], rtol=1e-10, atol=1e-14)
        assert np.all(ls[H:] == -np.inf)
    with pytest.raises(ValueError, match="no output error reaches"):
        fl.decay_rate()  # nothing reaches h at any lag >= 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_jacobian_spectrum_equals_the_svd_of_the_product(cell):
    m = _gated(cell, 4, seed=6, std=0.8)
    fl = bptt.flow(m, _ids(30, 4, 7), _ids(30, 4, 8))
    A = spectra.step_jacobians(fl.trace)
    S = 8 if cell == "lstm" else 4
    assert A.shape == (30, S, S)
    for t, k in [(5, 4), (12, 3), (29, 20)]:  # against the product in mpmath, 60 digits
        np.testing.assert_allclose(fl.jacobian_spectrum(t, k), _mp_log_singular_values(A, k, t), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(spectra.step_jacobians(fl.trace, 0, 7, 19), A[7:19])  # chunked
    ly = fl.lyapunov(burn_in=5)
    assert ly.exponents.shape == (S,) and np.all(np.diff(ly.exponents) <= 0)
    # the sum of the exponents is the mean log |det A_j| over the averaged steps
    assert ly.exponents.sum() == pytest.approx(np.mean([np.linalg.slogdet(a)[1] for a in A[5:]]), rel=1e-9)


def _entry_errors(fl, y):
    """e_t = V^T (softmax(q_t) - onehot(y_t)) * o_t * (1 - tanh^2 c_t): (T, H), written out."""
    tr = fl.trace
    q = tr.q
    p = np.exp(q - q.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return (p @ tr.model.V) * tr.cache[3][:, 0] * (1 - tr.cache[4][:, 0] ** 2)


@pytest.mark.parametrize("cell, reset_after", [("lstm", True), ("gru", True), ("gru", False)])
def test_gated_by_lag_matches_the_terms_and_paths_rebuilt_one_output_at_a_time(cell, reset_after):
    m = _gated(cell, 4, seed=9, reset_after=reset_after)
    x, y = _ids(12, 4, 10), _ids(12, 4, 11)
    y[4] = -1  # an unscored output starts no error and is left out
    fl = bptt.flow(m, x, y)
    T = fl.T
    scored = [t for t in range(T) if t != 4]
    terms = {t: np.linalg.norm(fl.terms("W", t).reshape(T, -1), axis=1) for t in scored}
    gate = fl.trace.cache[1][:, 0]  # f (LSTM) or z (GRU)
    if cell == "lstm":
        e = _entry_errors(fl, np.where(y < 0, 0, y))
        path = {t: [np.linalg.norm(e[t] * gate[k + 1:t + 1].prod(0)) if k < t else 0.0 for k in range(t + 1)]
                for t in scored}
    else:
        e = fl.dQ @ m.V
        path = {t: [np.linalg.norm(e[t] * gate[k + 1:t + 1].prod(0)) for k in range(t + 1)] for t in scored}
    prof = fl.by_lag()
    for l in range(T):
        ts = [t for t in scored if t >= l]
        assert prof.count[l] == len(ts)
        assert prof.term_mean[l] == pytest.approx(np.mean([terms[t][t - l] for t in ts]), rel=1e-12)
        assert prof.path_mean[l] == pytest.approx(np.mean([path[t][t - l] for t in ts]), rel=1e-10, abs=1e-300)
        if cell == "lstm":
            assert prof.c_mean[l] == pytest.approx(np.mean([fl.dE_dc[t, t - l] for t in ts]), rel=1e-12, abs=1e-300)
        else:
            assert prof.c_mean is None
    rows = prof.rows([0, 3])
    assert ("c_mean" in rows[0]) == (cell == "lstm") and "path_mean" in rows[1]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_theory_says_pascanus_bound_is_for_elman_cells_and_names_what_decides(cell):
    import json

    from bptt.theory import GATED_VERDICT

    m = _gated(cell, 6, seed=12, **({"forget_bias": 2.0} if cell == "lstm" else {}))
    fl = bptt.flow(m, _ids(50, 4, 13), _ids(50, 4, 14))
    weights_only = theory(m)
    assert weights_only.verdict == GATED_VERDICT and not weights_only.applies and weights_only.measured is None
    assert np.isnan(weights_only.lambda1) and not weights_only.vanishing_sufficient
    th = fl.theory()
    gate = {"lstm": "forget", "gru": "update"}[cell]
    for words in ("Elman cells", "decay rate", "Lyapunov spectrum", f"{gate} gates"):
        assert words in th.reason
    meas = th.measured
    assert meas["decay_rate"] == fl.decay_rate() and meas["lyapunov_max"] == fl.lyapunov().max
    sat = fl.saturation()
    assert meas["path_gate_near_1"] == sat.near_one(sat.path_gate) and meas["path_rate"] == sat.path_rate
    assert f"decay rate {fl.decay_rate():.4g} per step" in th.reason
    assert json.loads(json.dumps(th.as_dict(), allow_nan=False))["bound_applies"] is False
    with pytest.raises(ValueError, match="Elman cells"):
        th.bound([1, 2])
    with pytest.raises(ValueError, match="Elman cells"):
        bound_table(fl)
    elman = theory(bptt.random_rnn(4, 3, 3, seed=0))  # unchanged: the weights decide
    assert elman.applies and elman.as_dict()["bound_applies"] is True and elman.verdict in (
        "vanishing", "exploding", "neither is guaranteed")


def test_batch_analysis_of_an_lstm_with_its_initial_pair():
    m = _gated("lstm", 4, seed=15, forget_bias=1.0)
    rng = np.random.default_rng(16)
    X, Y = rng.integers(0, 4, (3, 20)), rng.integers(0, 4, (3, 20))
    h0, c0 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    ba = batch.analyse_batch(m, X, Y, h0=(h0, c0), progress=False)
    one = [bptt.flow(m, X[i], Y[i], h0=(h0[i], c0[i])) for i in range(3)]
    assert np.allclose(ba.decay, [f.decay_rate() for f in one], rtol=1e-12)
    assert np.allclose(ba.c_mean, [f.by_lag().c_mean for f in one], rtol=1e-12, equal_nan=True)
    assert np.allclose(ba.saturated, [f.saturation().fraction_saturated() for f in one])
    assert np.allclose(ba.lyapunov_max, [f.lyapunov().max for f in one], rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(N, H\) = \(3, 4\)"):
        batch.flows(m, X, Y, h0=(h0, c0[:2]))
