"""The fast backend gives the reference engine's numbers, in every regime it has.

bptt.fast runs its time loops in NumPy or compiled (Numba, fast/elman.py), in one thread or in a
two-thread pipeline. Every regime must give the reference engine's (bptt.core) loss and gradients:
to 1e-11 relative in float64 (they differ only in the order of additions inside the products), on
hypothesis-drawn cases; and each must match PyTorch autograd, an independent computation.
No timings here: those are in benchmarks/.
"""
import os
import sys
import tracemalloc

import numpy as np
import pytest
from conftest import need

import bptt
from bptt.fast import driver, elman, runtime, shared

ACTS = ["tanh", "relu", "sigmoid", "identity"]


@pytest.fixture
def compiled(monkeypatch):
    """Run with the compiled loops forced on at every size, or off: compiled(True/False)."""
    need("numba")
    monkeypatch.setattr(elman, "COMPILED_MAX_WORK", 1 << 62)  # the axpy loops at every size
    previous = runtime.set_compiled(True)
    yield runtime.set_compiled
    runtime.set_compiled(previous)


def case(rng, *, N, T, H, D, O, act, dense, bias, dtype=np.float64):
    model = bptt.random_rnn(H, D, O, seed=rng, activation=act, bias=bias, dtype=dtype)
    if bias:
        model = model.replace(b=rng.normal(0, 0.3, H), c=rng.normal(0, 0.3, O)).astype(dtype)
    lead = (N, T) if N else (T,)
    x = rng.normal(size=lead + (D,)) if dense else rng.integers(0, D, lead)
    y = rng.integers(-1, O, lead)
    h0 = rng.normal(0, 0.5, lead[:-1] + (H,))
    return model, x, y, h0


def both(compiled, fn):
    compiled(True)
    a = fn()
    compiled(False)
    b = fn()
    return a, b


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("N,dense,bias", [(0, False, False), (3, False, True), (2, True, False), (4, True, True)])
def test_compiled_equals_numpy_float64(compiled, act, N, dense, bias):
    rng = np.random.default_rng([N, dense, bias, ACTS.index(act)])
    model, x, y, h0 = case(rng, N=N, T=23, H=9, D=6, O=5, act=act, dense=dense, bias=bias)
    (la, ga), (lb, gb) = both(compiled, lambda: bptt.gradients(model, x, y, h0=h0))
    assert la == pytest.approx(lb, rel=1e-13)
    for k in ("U", "W", "V", "b", "c", "h0"):
        a, b = getattr(ga, k), getattr(gb, k)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * np.abs(b).max(), err_msg=k)
    ta, tb = both(compiled, lambda: bptt.forward(model, x, h0))
    np.testing.assert_allclose(ta.states, tb.states, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ta.z, tb.z, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("act", ACTS)
def test_compiled_keeps_float32(compiled, act):
    rng = np.random.default_rng(7)
    model, x, y, h0 = case(rng, N=3, T=30, H=12, D=7, O=6, act=act, dense=False, bias=True, dtype=np.float32)
    (la, ga), (lb, gb) = both(compiled, lambda: bptt.gradients(model, x, y, h0=h0.astype(np.float32)))
    assert la == pytest.approx(lb, rel=1e-5)
    for k, a in ga.params.items():
        assert a.dtype == np.float32, k
        b = gb.params[k]
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=k)


def test_compiled_nonfinite_like_numpy(compiled):
    # a NaN in the inputs travels the same way through both loops (no silent cleaning)
    model = bptt.random_rnn(4, 3, 2, seed=0, activation="relu").replace(W=np.full((4, 4), 3.0))
    x = np.ones((6, 3))
    x[2] = 1e308  # finite inputs whose states overflow to inf two steps later
    with np.errstate(all="ignore"):
        a, b = both(compiled, lambda: bptt.forward(model, x).states)
    assert np.isinf(a).sum() >= 8
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-12)


@pytest.mark.parametrize("use_compiled", [True, False])
def test_both_paths_match_torch_autograd(compiled, use_compiled):
    torch = need("torch")
    rng = np.random.default_rng(3)
    N, T, H, D, O = 3, 40, 10, 6, 5
    model, x, y, h0 = case(rng, N=N, T=T, H=H, D=D, O=O, act="tanh", dense=False, bias=False)
    y = rng.integers(0, O, (N, T))
    compiled(use_compiled)
    loss, g = bptt.gradients(model, x, y, h0=h0)
    rnn = torch.nn.RNN(D, H, bias=False, batch_first=True).double()
    lin = torch.nn.Linear(H, O, bias=False).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(model.U))
        rnn.weight_hh_l0.copy_(torch.tensor(model.W))
        lin.weight.copy_(torch.tensor(model.V))
    h = torch.tensor(h0[None], requires_grad=True)
    xs = torch.nn.functional.one_hot(torch.tensor(x), D).double()
    out, _ = rnn(xs, h)
    ref = torch.nn.functional.cross_entropy(lin(out).reshape(-1, O), torch.tensor(y).reshape(-1), reduction="sum")
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    for mine, theirs in ((g.U, rnn.weight_ih_l0.grad), (g.W, rnn.weight_hh_l0.grad), (g.V, lin.weight.grad),
                         (g.h0, h.grad[0])):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_scatter_rows_equals_add_at(compiled):
    from bptt.fast import numerics
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 11, 300)
    rows = rng.normal(size=(300, 4))
    want = np.zeros((11, 4))
    np.add.at(want, ids, rows)
    got = np.zeros((11, 4))
    numerics.scatter_rows(ids, rows, got)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(shared.scatter_rows(ids, rows, 11), want, rtol=1e-13)


def test_flow_memory_stays_quadratic_in_T():
    # the decomposition keeps two (T, T) tables of norms and (T, H) working arrays; a (T, T, H)
    # array (every dE_t/ds_k kept) would be 128 times larger than the budget asserted here
    T, H = 512, 64
    model = bptt.random_rnn(H, 8, 8, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 8, T), rng.integers(0, 8, T)
    bptt.flow(model, x[:3], y[:3])  # imports (Numba's among them) happen outside the measurement
    tracemalloc.start()
    try:
        fl = bptt.flow(model, x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tables = 2 * T * T * 8  # dE_ds and dE_dz, float64
    assert fl.dE_ds.shape == (T, T)
    assert peak < tables + 40 * T * H * 8, (peak, tables)
    assert peak < T * T * H * 8 / 16


REGIMES = ["numpy", "axpy", "blas", "pipeline", "pipeline-numpy"]


@pytest.fixture
def regime(monkeypatch):
    """regime(name): NumPy's loop, the compiled loops (axpy kernels or a BLAS call per step), or
    the two-thread pipeline (16 blocks of steps, errors and weight gradients on a helper thread)."""
    def set_(name):
        if name != "numpy":
            need("numba")
        if name.startswith("pipeline"):
            need("threadpoolctl")
        runtime.set_compiled(name not in ("numpy", "pipeline-numpy"))
        monkeypatch.setattr(elman, "COMPILED_MAX_WORK", 1 << 62 if name == "axpy" else 0)  # N = 1: BLAS
        threaded = name.startswith("pipeline")
        monkeypatch.setattr(runtime, "PIPELINE_MIN_BLOCK_WORK", 0 if threaded else 1 << 62)
        monkeypatch.setattr(runtime, "blas_threads", lambda: 2)
    previous = runtime.set_compiled(True)
    yield set_
    runtime.set_compiled(previous)


@pytest.mark.parametrize("name", REGIMES[1:])
@pytest.mark.parametrize("act,head,dense,bias,N", [
    ("tanh", "softmax", False, False, 3), ("relu", "softmax", True, True, 2), ("sigmoid", "mse", True, False, 4),
    ("identity", "softmax", False, True, 0), ("tanh", "mse", False, True, 5)])
def test_every_regime_gives_numpys_numbers(regime, name, act, head, dense, bias, N):
    rng = np.random.default_rng([REGIMES.index(name), N])
    T, H, D, O = 37, 9, 6, 5
    model, x, _, h0 = case(rng, N=N, T=T, H=H, D=D, O=O, act=act, dense=dense, bias=bias)
    model = model.replace(head=head)
    lead = (N, T) if N else (T,)
    y = rng.normal(size=lead + (O,)) if head == "mse" else rng.integers(-1, O, lead)  # -1: unscored steps
    runs = {}
    for r in ("numpy", name):
        regime(r)
        runs[r] = [bptt.gradients(model, x, y, h0=h0, reduction=red) for red in ("sum", "mean")]
        trace = bptt.forward(model, x, h0)
        runs[r].append(bptt.backward(trace, y))
        runs[r].append((float(trace.q.sum()), trace))
    for (la, ga), (lb, gb) in zip(runs["numpy"][:3], runs[name][:3]):
        assert lb == pytest.approx(la, rel=1e-12)
        for k in ("U", "W", "V", "b", "c", "h0"):
            a, b = getattr(ga, k), getattr(gb, k)
            assert (a is None) == (b is None), k
            if a is not None:
                np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13 * np.abs(a).max(), err_msg=k)
    ta, tb = runs["numpy"][3][1], runs[name][3][1]
    np.testing.assert_allclose(tb.states, ta.states, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tb.q, ta.q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,N", [("axpy", 4), ("blas", 0), ("pipeline", 4)])
def test_float32_stays_float32_and_matches_float64(regime, name, N):
    rng = np.random.default_rng(11)
    model, x, y, h0 = case(rng, N=N, T=50, H=16, D=7, O=6, act="tanh", dense=False, bias=True)
    regime(name)
    if name == "pipeline":
        assert len(runtime.plan(50, N, N * 16 * 16).blocks) == runtime.PIPELINE_BLOCKS
    loss32, g32 = bptt.gradients(model.astype(np.float32), x, y, h0=h0.astype(np.float32))
    regime("numpy")
    loss64, g64 = bptt.gradients(model, x, y, h0=h0)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for k, a in g32.params.items():
        assert a.dtype == np.float32, k
        np.testing.assert_allclose(a, g64.params[k], rtol=1e-3, atol=1e-4 * np.abs(g64.params[k]).max(), err_msg=k)


def test_pipeline_error_in_a_block_raises_after_every_block_stopped(regime, monkeypatch):
    regime("pipeline")
    rng = np.random.default_rng(2)
    model, x, y, h0 = case(rng, N=2, T=40, H=8, D=5, O=4, act="tanh", dense=False, bias=False)
    calls = []

    def failing(*args):
        calls.append(args[-2:])
        if len(calls) == 3:
            raise RuntimeError("block failed")
        return original(*args)
    original = driver._weight_terms
    monkeypatch.setattr(driver, "_weight_terms", failing)
    with pytest.raises(RuntimeError, match="block failed"):
        bptt.gradients(model, x, y, h0=h0)
    assert len(calls) == runtime.PIPELINE_BLOCKS  # the other blocks still ran to the end


def test_pipeline_without_a_running_helper_claims_every_block(regime, monkeypatch):
    # a helper that never starts anything (its thread gone, say after a fork): the loop's thread
    # claims every block itself and the numbers are the same
    from concurrent.futures import Future

    class Pending(Future):  # never started; cancel() succeeds, waiting on it fails at once
        def result(self, timeout=None):
            if not self.cancelled():
                raise AssertionError("waited for a block the helper never started")
            return super().result(timeout)

        def exception(self, timeout=None):
            return self.result(timeout)

    class Stalled:
        def submit(self, fn, *args):
            return Pending()

    rng = np.random.default_rng(9)
    model, x, y, h0 = case(rng, N=3, T=40, H=8, D=5, O=4, act="tanh", dense=False, bias=True)
    regime("numpy")
    want = bptt.gradients(model, x, y, h0=h0)
    regime("pipeline")
    plan = runtime.plan
    monkeypatch.setattr(runtime, "plan", lambda *a: runtime.Plan(plan(*a).blocks, Stalled()))
    assert len(runtime.plan(40, 3, 3 * 8 * 8).blocks) == runtime.PIPELINE_BLOCKS
    for got in (bptt.gradients(model, x, y, h0=h0), bptt.backward(bptt.forward(model, x, h0), y)):
        assert got[0] == pytest.approx(want[0], rel=1e-12)
        for k, a in want[1].params.items():
            np.testing.assert_allclose(got[1].params[k], a, rtol=1e-11, atol=1e-13 * np.abs(a).max(), err_msg=k)


def test_blas_buffer_paged_in_once_on_one_thread_and_the_thread_counts_restored(monkeypatch):
    need("numba")
    threadpoolctl = need("threadpoolctl")

    def blas_threads():
        return sorted(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")

    seen = []
    page_in = runtime.page_in_blas
    monkeypatch.setattr(runtime, "page_in_blas", lambda: (seen.append(blas_threads()), page_in()))
    previous = runtime.set_compiled(True)
    try:
        runtime.kernels()  # SciPy's BLAS loaded
        before = blas_threads()
        runtime.set_compiled(True)  # as in a fresh process: the BLAS libraries found again
        runtime.blas_threads()
        runtime.blas_threads()
        assert len(seen) == 1 and set(seen[0]) == {1}  # once, with every BLAS library on one thread
        assert set(blas_threads()) == set(before)
    finally:
        runtime.set_compiled(previous)


# --- the fast backend against the reference engine, on drawn cases ---------------------------
from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402


def _drawn_case(seed, N, T, H, D, O, act, bias, dense, head, masked, with_h0, dtype):
    rng = np.random.default_rng(seed)
    model, x, _, h0 = case(rng, N=N, T=T, H=H, D=D, O=O, act=act, dense=dense, bias=bias, dtype=dtype)
    model = model.replace(head=head)
    lead = (N, T) if N else (T,)
    if head == "mse":
        y = rng.normal(size=lead + (O,))
        if masked:
            y[..., 0, :] = np.nan  # step 0 unscored
    else:
        y = rng.integers(-1 if masked else 0, O, lead)
    return model, x, y, (h0.astype(dtype) if with_h0 else None)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), N=st.sampled_from([0, 1, 3]), T=st.integers(1, 14),
       H=st.integers(1, 7), D=st.integers(1, 5), O=st.integers(1, 5), act=st.sampled_from(ACTS),
       bias=st.booleans(), dense=st.booleans(), head=st.sampled_from(["softmax", "mse"]),
       masked=st.booleans(), with_h0=st.booleans(), reduction=st.sampled_from(["sum", "mean"]),
       dtype=st.sampled_from([np.float64, np.float32]), K=st.sampled_from([None, 0, 1, 3, "T", "T+2"]),
       name=st.sampled_from(REGIMES))
def test_fast_backend_equals_the_reference(regime, seed, N, T, H, D, O, act, bias, dense, head, masked,
                                           with_h0, reduction, dtype, K, name):
    assume(dense or not N or T != D)  # (N, D) integer ids could be read as one-hot rows: refused
    regime(name)
    model, x, y, h0 = _drawn_case(seed, N, T, H, D, O, act, bias, dense, head, masked, with_h0, dtype)
    K = {"T": T, "T+2": T + 2}.get(K, K)
    ref = bptt.gradients(model, x, y, h0=h0, truncate=K, reduction=reduction, backend="reference")
    got = bptt.gradients(model, x, y, h0=h0, truncate=K, reduction=reduction, backend="fast")
    rtol, atol = (1e-11, 1e-13) if dtype == np.float64 else (2e-4, 1e-5)
    assert got[0] == pytest.approx(ref[0], rel=rtol, abs=atol)
    assert set(got[1].params) == set(ref[1].params) == set(model.params)
    for k, a in list(ref[1].params.items()) + [("h0", ref[1].h0)]:
        b = got[1].params.get(k) if k != "h0" else got[1].h0
        assert b.dtype == dtype and b.shape == a.shape, k
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * max(1.0, np.abs(a).max()), err_msg=k)
    tr, tf = bptt.forward(model, x, h0, backend="reference"), bptt.forward(model, x, h0, backend="fast")
    np.testing.assert_allclose(tf.states, tr.states, rtol=rtol, atol=atol)
    np.testing.assert_allclose(tf.q, tr.q, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("K", [None, 3])
@pytest.mark.parametrize("N", [0, 1, 4])
def test_modrelu_on_the_fast_backend_equals_the_reference(regime, name, K, N):
    # modReLU's bias bm drawn wide (some units cut to 0 at most steps, others not): every gradient,
    # bm's included, the reference engine's, in every regime
    regime(name)
    rng = np.random.default_rng([REGIMES.index(name), N, K or 0])
    T, H, D, O = 23, 6, 4, 5
    model = bptt.random_rnn(H, D, O, seed=rng, activation="modrelu", bias=True)
    model = model.replace(bm=rng.normal(-0.2, 0.5, H), b=rng.normal(0, 0.3, H))
    lead = (N, T) if N else (T,)
    x, y = rng.integers(0, D, lead), rng.integers(-1, O, lead)
    assert bptt.fast.supports(model)
    ref = bptt.gradients(model, x, y, truncate=K, backend="reference")
    got = bptt.gradients(model, x, y, truncate=K, backend="fast")
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    assert set(got[1].params) == set(ref[1].params) == {"U", "W", "V", "b", "c", "bm"}
    for k, a in ref[1].params.items():
        np.testing.assert_allclose(got[1].params[k], a, rtol=1e-11, atol=1e-13 * np.abs(a).max(), err_msg=k)
    assert np.abs(ref[1].params["bm"]).max() > 0
    S = bptt.forward(model, x, backend="fast").S
    assert 0 < np.mean(S == 0) < 1  # the cut is reached and not everywhere


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_output_mean_of_an_exploding_identity_rnn_has_gradient_zero(regime, name, dtype):
    # O = 1: softmax of one output is 1, so the loss is 0 and so is every gradient, exactly; a
    # softmax error written p / total * scale - scale leaves a rounding residue that the exploding
    # backward pass amplifies
    regime(name)
    model = bptt.random_rnn(8, 3, 1, seed=0, init="identity", activation="identity", dtype=dtype)
    model = model.replace(W=1.5 * np.eye(8)).astype(dtype)
    x = np.random.default_rng(0).integers(0, 3, (4, 40))
    y = np.zeros((4, 40), dtype=int)
    for backend in ("reference", "fast"):
        loss, g = bptt.gradients(model, x, y, reduction="mean", backend=backend)
        assert loss == 0.0
        for k, a in g.params.items():
            assert np.abs(a).max() == 0.0, (backend, k, np.abs(a).max())


OVERFLOWS = {  # finite weights and inputs whose forward pass overflows, and the first step that does
    "identity x 1e300": (lambda: bptt.RNN(U=np.full((2, 3), 1e300), W=np.full((2, 2), 1e300),
                                          V=np.ones((3, 2)), activation="identity"), np.float64),
    "relu W = 10 I, T = 400": (lambda: bptt.RNN(U=np.ones((2, 3)), W=10 * np.eye(2), V=np.ones((3, 2)),
                                                activation="relu"), np.float64),
    "float32 x 1e30": (lambda: bptt.RNN(U=np.full((2, 3), 1e30), W=np.full((2, 2), 1e30),
                                        V=np.ones((3, 2)), activation="identity").astype(np.float32), np.float32),
}


@pytest.mark.parametrize("which", list(OVERFLOWS))
@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_an_overflow_is_an_error_naming_its_first_step(which, backend):
    make, dtype = OVERFLOWS[which]
    model = make()
    T = 400
    x = np.ones(T, dtype=int)
    y = np.zeros(T, dtype=int)
    with np.errstate(all="ignore"):
        S = bptt.forward(model, x, backend="reference").S[:, 0]
        Z = bptt.forward(model, x, backend="reference").Z[:, 0]
    first = int(np.flatnonzero(~np.isfinite(Z).all(axis=1))[0])  # found independently of the message
    for run in (lambda: bptt.gradients(model, x, y, backend=backend),
                lambda: bptt.loss(model, x, y, backend=backend)):
        with pytest.raises(FloatingPointError, match=rf"pre-activation z_t first became non-finite at step t = {first}\b"):
            run()
    assert np.isfinite(S[first]).all()  # the state before that step was still finite
    with pytest.raises(FloatingPointError):
        bptt.flow(model, x, y)


def test_an_overflow_of_the_backward_pass_alone_names_its_step():
    # a forward pass that stays bounded (tanh) while the error grows by 1e3 a step going back
    H = 2
    model = bptt.RNN(U=np.zeros((H, 1)), W=1e3 * np.eye(H), V=np.ones((1, H)), activation="tanh", head="mse")
    T = 200
    x = np.zeros((T, 1))
    y = np.full((T, 1), 5.0)
    for backend in ("reference", "fast"):
        with pytest.raises(FloatingPointError, match="backward pass overflowed"):
            bptt.gradients(model, x, y, backend=backend)


def test_the_first_call_of_a_process_gives_the_same_bits_as_every_later_one():
    # which loops a call runs depends on its sizes and dtype only: the first call of a process
    # waits for the kernels it needs, so it rounds as the later ones do, and so does every run
    need("numba")
    import subprocess
    import sys
    code = """
import hashlib, numpy as np, bptt
rng = np.random.default_rng(0)
m = bptt.random_rnn(64, 16, 16, seed=0, dtype=np.float32)
x, y = rng.integers(0, 16, (1, 200)), rng.integers(0, 16, (1, 200))
digest = lambda g: hashlib.sha256(b"".join(a.tobytes() for a in g.params.values())).hexdigest()
print(*(digest(bptt.gradients(m, x, y)[1]) for _ in range(3)))
"""
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 1, runs[0]


@pytest.mark.parametrize("T,K,H,N,rho,act", [(50, 9, 2, 3, 1.2, "tanh"), (60, 20, 4, 0, 0.9, "identity"),
                                             (33, 32, 1, 2, 1.5, "tanh"), (200, 150, 3, 1, 1.1, "relu"),
                                             (40, 5, 2, 2, 1.0, "sigmoid"), (7, 3, 1, 0, 1.0, "tanh"),
                                             (300, 40, 4, 2, 1.4, "identity")])
def test_long_windows_by_blocks_equal_the_reference(T, K, H, N, rho, act):
    # 2K >= 3H: the fast backend carries Jacobian products across blocks of K + 1 steps instead of
    # sending every output's error back K steps, lag by lag; exploding cases (rho > 1) included
    assert 2 * K >= 3 * H
    m = bptt.random_rnn(H, 3, 3, seed=T, radius=rho, activation=act, bias=True).replace(b=np.full(H, 0.1))
    rng = np.random.default_rng(K)
    lead = (N, T) if N else (T,)
    x, y, h0 = rng.integers(0, 3, lead), rng.integers(-1, 3, lead), rng.normal(size=lead[:-1] + (H,))
    want = bptt.gradients(m, x, y, truncate=K, h0=h0, backend="reference")
    got = bptt.gradients(m, x, y, truncate=K, h0=h0, backend="fast")
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    for k, a in list(want[1].params.items()) + [("h0", want[1].h0)]:
        b = got[1].h0 if k == "h0" else got[1].params[k]
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max(), err_msg=k)


@pytest.mark.parametrize("T,K,H,N,tile", [(50, 3, 4, 0, 5), (61, 7, 6, 2, 7), (40, 1, 3, 3, 1), (29, 11, 8, 1, 12),
                                          (100, 9, 7, 0, 4)])
def test_short_windows_by_tiles_equal_the_reference(monkeypatch, T, K, H, N, tile):
    # 2K < 3H: lag by lag, tile by tile of positions (each tile carries its K lags past its end);
    # tiles of a few positions force many tiles, tails shorter than K, and both threads' halves
    from bptt.fast import window
    assert 2 * K < 3 * H
    monkeypatch.setattr(window, "LAG_TILE_BYTES", tile * max(N, 1) * H * 8)
    m = bptt.random_rnn(H, 3, 3, seed=T, radius=1.3, bias=True).replace(b=np.full(H, 0.1))
    rng = np.random.default_rng(K)
    lead = (N, T) if N else (T,)
    x, y, h0 = rng.integers(0, 3, lead), rng.integers(-1, 3, lead), rng.normal(size=lead[:-1] + (H,))
    want = bptt.gradients(m, x, y, truncate=K, h0=h0, backend="reference")
    for policy in ("always", "never"):
        with bptt.fast.runtime.helper_policy(policy):
            got = bptt.gradients(m, x, y, truncate=K, h0=h0, backend="fast")
        assert got[0] == pytest.approx(want[0], rel=1e-12)
        for k, a in list(want[1].params.items()) + [("h0", want[1].h0)]:
            b = got[1].h0 if k == "h0" else got[1].params[k]
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max(), err_msg=k)


@pytest.mark.parametrize("act", ["tanh", "relu", "modrelu"])
@pytest.mark.parametrize("biases", ["both", "bh"])
@pytest.mark.parametrize("N,K", [(0, None), (3, None), (3, 2), (1, 30)])
def test_an_elman_cell_with_pytorch_s_second_bias_on_the_fast_backend(act, biases, N, K):
    # nn.RNN's bias_hh (bh) adds to z_t as b does: the kernels add b + bh to the inputs' part and give
    # bh the sum of the steps' errors; every gradient the reference engine's (itself checked against
    # PyTorch in test_frameworks.py)
    rng = np.random.default_rng([N, K or 0, len(act)])
    T, H, D, O = 25, 5, 3, 4
    m = bptt.random_rnn(H, D, O, seed=rng, activation=act, bias=True)
    m = m.replace(bh=rng.normal(0, 0.3, H), **({"b": None} if biases == "bh" else {}))
    assert bptt.fast.supports(m)
    lead = (N, T) if N else (T,)
    x, y = rng.integers(0, D, lead), rng.integers(-1, O, lead)
    ref = bptt.gradients(m, x, y, truncate=K, backend="reference")
    got = bptt.gradients(m, x, y, truncate=K, backend="fast")
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    assert set(got[1].params) == set(ref[1].params) and "bh" in got[1].params
    for k, a in ref[1].params.items():
        np.testing.assert_allclose(got[1].params[k], a, rtol=1e-11, atol=1e-13 * np.abs(a).max(), err_msg=k)
    assert bptt.check(m, x, y).backend == "fast"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load is read from Linux's /proc/stat")
def test_a_machine_whose_cores_are_busy_has_no_free_core_for_the_helper():
    """With one spinning process per core beside it, the fast backend's helper thread is not used
    (runtime.free_core is False): the calling thread does the work, at the same bits."""
    import subprocess
    import time

    from bptt.fast import runtime

    cores = len(os.sched_getaffinity(0))
    if cores > 16:
        pytest.skip("one spinning process per core on a large machine would cost more than it shows")
    spin = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        time.sleep(0.5)
        runtime.free_core()
        time.sleep(2 * runtime.LOAD_WINDOW)
        assert not runtime.free_core()
        assert isinstance(runtime.helper(), runtime.Inline)
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux's")
def test_each_holds_its_two_threads_on_two_cpus_and_gives_the_cpus_back():
    """runtime.each with the helper: while the items run, the calling thread is held on one CPU and
    the helper on another (Linux may otherwise run both on one core for tens of milliseconds); after,
    both may use every CPU they could before. With one CPU allowed, or no helper, nothing changes."""
    import threading

    from bptt.fast import runtime

    allowed = os.sched_getaffinity(0)
    seen = {}

    def worker():
        def run(i):
            seen.setdefault(threading.get_ident(), set()).add(frozenset(os.sched_getaffinity(0)))
            threading.Event().wait(0.02)  # long enough for both threads to take items
        return run

    with runtime.helper_policy("always"):
        runtime.each(6, worker)
        helper_thread = runtime.helper().submit(threading.get_ident).result()
        assert runtime.helper().submit(os.sched_getaffinity, 0).result() == allowed
    assert os.sched_getaffinity(0) == allowed
    main = threading.get_ident()
    assert set(seen) == {main, helper_thread}
    if len(allowed) >= 2:
        (mine,), (theirs,) = seen[main], seen[helper_thread]
        assert len(mine) == len(theirs) == 1 and mine != theirs and mine | theirs <= allowed
    else:
        assert seen[main] == seen[helper_thread] == {frozenset(allowed)}
    seen.clear()
    with runtime.helper_policy("never"):
        runtime.each(3, worker)
    assert seen == {main: {frozenset(allowed)}}


def test_each_gives_the_cpus_back_when_an_item_raises():
    from bptt.fast import runtime

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def worker():
        def run(i):
            if i == 2:
                raise ValueError("item 2")
        return run

    with runtime.helper_policy("always"):
        with pytest.raises(ValueError, match="item 2"):
            runtime.each(5, worker)
        if allowed is not None:
            assert os.sched_getaffinity(0) == allowed
            assert runtime.helper().submit(os.sched_getaffinity, 0).result() == allowed


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux's")
def test_a_pipeline_s_section_holds_its_two_threads_apart_once_even_nested():
    from bptt.fast import runtime

    allowed = os.sched_getaffinity(0)
    with runtime.helper_policy("always"):
        plan = runtime.Plan([(0, 5), (5, 10)], runtime.helper())
        with plan.section():
            mine = os.sched_getaffinity(0)
            with plan.section():  # nested: still held, and not given back at its end
                pass
            theirs = plan.helper.submit(os.sched_getaffinity, 0).result()
            assert os.sched_getaffinity(0) == mine
        after = plan.helper.submit(os.sched_getaffinity, 0).result()
    assert os.sched_getaffinity(0) == after == allowed
    if len(allowed) >= 2:
        assert len(mine) == len(theirs) == 1 and not mine & theirs and mine | theirs <= allowed
    else:
        assert mine == theirs == allowed
