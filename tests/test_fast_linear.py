"""The fast backend gives the reference engine's numbers for the cells whose step is linear in
their state (the LRU, minGRU, minLSTM, the linear diagonal recurrence, and a cell defined here), in
every regime it has.

bptt.fast runs them by the cells' own compiled steps where a cell has them ("fused": mingru.py,
minlstm.py, lru.py), by one compiled recurrence around the cells' vectorised drive and step_back
("generic": linear.py, any such cell), or in NumPy throughout ("numpy"); a batch as two halves
on two threads ("split", driver.py), or the products over steps in two halves on two threads
("halves", runtime.py), here at every size; scan="parallel" by the
odd-even scan, compiled in place or NumPy's; truncate=K by the window in blocks. Every regime
must give the reference engine's (bptt.core) loss, gradients and trace: to 1e-11 relative in
float64, on hypothesis-drawn cases; and each cell must match PyTorch autograd, an independent
computation. No timings here: those are in benchmarks/modern.py.
"""
import numpy as np
import pytest
from conftest import need
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import bptt
from bptt import backend, cells, scan
from bptt.cells import Cell, Param, registry
from bptt.fast import driver, runtime

CELLS = [n for n in cells.names() if cells.get(n).linear() and cells.get(n).__module__.startswith("bptt.")]
REGIMES = ["fused", "generic", "numpy", "split", "halves"]


@pytest.fixture
def regime(monkeypatch):
    """regime(name): the cells' own compiled steps where they have them ("fused"), the compiled
    recurrence around the cells' vectorised functions for every cell ("generic"), NumPy's loops,
    or the fused steps with every batch split between two threads ("split") or every product over
    steps ("halves")."""
    def set_(name):
        if name != "numpy":
            need("numba")
        runtime.set_compiled(name != "numpy")
        driver.supports(bptt.random_model("linear", 2, 2, 2, seed=0))  # every adapter registered
        if name in ("split", "halves"):
            need("threadpoolctl")
            monkeypatch.setattr(runtime, "blas_threads", lambda: 2)
        if name == "split":
            monkeypatch.setattr(driver, "SPLIT_MIN_WORK", 0)
        if name == "halves":
            monkeypatch.setattr(runtime, "ONE_THREAD_MAX_PRODUCT", 0)
            monkeypatch.setattr(runtime, "HALVES_MIN_WORK", 0)
        if name == "generic":
            for n in [n for n in driver.CELLS if n in cells.names() and cells.get(n).linear()]:
                monkeypatch.delitem(driver.CELLS, n)
    previous = runtime.set_compiled(True)
    yield set_
    runtime.set_compiled(previous)


def make(cell, rng, *, H, D, O, dtype=np.float64, biases="all", head="softmax"):
    """A random model of the cell with its optional parameters (biases, the LRU's gamma) or none."""
    model = bptt.random_model(cell, H, D, O, seed=rng, head=head)
    if biases == "none":
        model = model.replace(c=None, **{k: None for k, p in model.cell.params.items() if p.optional})
    return model.astype(dtype)


def data(model, rng, *, N, T, dense, masked=True, h0=True):
    """(x, y, h0) for the model: N = 0 is one sequence; h0 None or random, as wide as the state."""
    lead = (N, T) if N else (T,)
    x = rng.normal(size=lead + (model.D,)) if dense else rng.integers(0, model.D, lead)
    if model.head == "mse":
        y = rng.normal(size=lead + (model.O,))
        if masked:
            y[..., 0, :] = np.nan  # step 0 unscored
    else:
        y = rng.integers(-1 if masked else 0, model.O, lead)
    s0 = rng.normal(0, 0.5, lead[:-1] + model.state_sizes).astype(model.dtype) if h0 else None
    return x, y, s0


def tolerances(dtype):
    return (1e-11, 1e-13) if dtype == np.float64 else (2e-4, 1e-5)


def assert_same(got, ref, dtype, what=""):
    """The fast backend's (loss, Grads) equal the reference's: loss, every parameter, h0."""
    rtol, atol = tolerances(dtype)
    assert got[0] == pytest.approx(ref[0], rel=rtol, abs=atol), what
    assert set(got[1].params) == set(ref[1].params)
    for k, a in list(ref[1].params.items()) + [("h0", ref[1].h0)]:
        b = got[1].params[k] if k in ref[1].params else got[1].h0
        assert b.dtype == dtype and b.shape == a.shape, (what, k)
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * max(1.0, np.abs(a).max()), err_msg=f"{what} {k}")


def assert_same_trace(got, ref, dtype):
    rtol, atol = tolerances(dtype)
    assert got.scan == ref.scan
    assert len(got.cell_states) == len(ref.cell_states) and len(got.cache) == len(ref.cache)
    for a, b in zip(got.cell_states + got.cache + (got.Q,), ref.cell_states + ref.cache + (ref.Q,)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got.final, ref.final, rtol=rtol, atol=atol)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from(CELLS), N=st.sampled_from([0, 1, 3]),
       T=st.integers(1, 14), H=st.integers(1, 6), D=st.integers(1, 5), O=st.integers(1, 5),
       biases=st.sampled_from(["all", "none"]), dense=st.booleans(), head=st.sampled_from(["softmax", "mse"]),
       masked=st.booleans(), h0=st.booleans(), reduction=st.sampled_from(["sum", "mean"]),
       dtype=st.sampled_from([np.float64, np.float32]), K=st.sampled_from([None, 0, 1, 3, "T-1", "T", "T+2"]),
       scan_=st.sampled_from(scan.METHODS), name=st.sampled_from(REGIMES))
def test_fast_backend_equals_the_reference(regime, seed, cell, N, T, H, D, O, biases, dense, head, masked, h0,
                                           reduction, dtype, K, scan_, name):
    assume(dense or not N or T != D)  # (N, D) integer ids could be read as one-hot rows: refused
    regime(name)
    rng = np.random.default_rng(seed)
    model = make(cell, rng, H=H, D=D, O=O, dtype=dtype, biases=biases, head=head)
    x, y, s0 = data(model, rng, N=N, T=T, dense=dense, masked=masked, h0=h0)
    K = {"T-1": max(T - 1, 0), "T": T, "T+2": T + 2}.get(K, K)
    kw = dict(h0=s0, truncate=K, reduction=reduction, scan=scan_)
    ref = bptt.gradients(model, x, y, backend="reference", **kw)
    assert_same(bptt.gradients(model, x, y, backend="fast", **kw), ref, dtype)
    tr, tf = (bptt.forward(model, x, s0, scan=scan_, backend=b) for b in ("reference", "fast"))
    assert_same_trace(tf, tr, dtype)
    assert bptt.loss(model, x, y, h0=s0, reduction=reduction, backend="fast") == pytest.approx(ref[0], rel=1e-4)
    # the fast backward pass on the reference's trace, and the reference's on the fast trace
    assert_same(bptt.backward(tr, y, truncate=K, reduction=reduction, backend="fast"), ref, dtype)
    assert_same(bptt.backward(tf, y, truncate=K, reduction=reduction, backend="reference"), ref, dtype)


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head,dense,biases,N", [("softmax", False, "all", 3), ("mse", True, "none", 4),
                                                 ("softmax", True, "all", 1), ("softmax", False, "none", 0)])
def test_every_regime_gives_the_references_numbers(regime, name, cell, head, dense, biases, N):
    rng = np.random.default_rng([REGIMES.index(name), CELLS.index(cell), N])
    model = make(cell, rng, H=9, D=6, O=5, biases=biases, head=head)
    x, y, s0 = data(model, rng, N=N, T=37, dense=dense)
    regime(name)
    for scan_ in scan.METHODS:
        for reduction in ("sum", "mean"):
            for K in (None, 0, 5, 36):
                kw = dict(h0=s0, reduction=reduction, truncate=K, scan=scan_)
                ref = bptt.gradients(model, x, y, backend="reference", **kw)
                assert_same(bptt.gradients(model, x, y, backend="fast", **kw), ref, np.float64,
                            f"{name} {scan_} {reduction} K={K}")
        trace = bptt.forward(model, x, s0, scan=scan_, backend="fast")
        assert_same_trace(trace, bptt.forward(model, x, s0, scan=scan_, backend="reference"), np.float64)


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("cell", CELLS)
def test_float32_stays_float32_and_matches_float64(regime, name, cell):
    rng = np.random.default_rng(11)
    model = make(cell, rng, H=16, D=7, O=6)
    x, y, s0 = data(model, rng, N=4, T=50, dense=False)
    regime(name)
    for scan_ in scan.METHODS:
        loss32, g32 = bptt.gradients(model.astype(np.float32), x, y, h0=s0.astype(np.float32), scan=scan_,
                                     backend="fast")
        loss64, g64 = bptt.gradients(model, x, y, h0=s0, backend="reference")
        assert loss32 == pytest.approx(loss64, rel=1e-5)
        for k, a in list(g32.params.items()) + [("h0", g32.h0)]:
            want = g64.params.get(k, g64.h0)
            assert a.dtype == np.float32, k
            np.testing.assert_allclose(a, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(), err_msg=f"{scan_} {k}")
        trace = bptt.forward(model.astype(np.float32), x, s0.astype(np.float32), scan=scan_, backend="fast")
        assert all(a.dtype == np.float32 for a in trace.cell_states + trace.cache + (trace.Q,))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [1, 2, 3, 100, 100_000])
def test_the_scan_equals_the_loop(cell, T):
    """States, loss and every gradient (h0 included) by scan="parallel" equal the compiled loop's
    to 1e-12 (relative to each array's largest entry), up to T = 100,000, on the fast backend."""
    N = 2 if T > 1000 else 3
    rng = np.random.default_rng(T)
    m = bptt.random_model(cell, 4, 3, 2, seed=T, head="mse")
    x, y = rng.normal(size=(N, T, 3)), rng.normal(size=(N, T, 2))
    h0 = rng.normal(size=(N,) + m.state_sizes)

    def close(got, want):
        assert np.max(np.abs(got - want)) <= 1e-12 * max(1e-300, np.max(np.abs(want)))

    close(bptt.forward(m, x, h0, scan="parallel", backend="fast").states, bptt.forward(m, x, h0, backend="fast").states)
    l1, g1 = bptt.gradients(m, x, y, h0=h0, backend="fast")
    l2, g2 = bptt.gradients(m, x, y, h0=h0, scan="parallel", backend="fast")
    assert abs(l2 - l1) <= 1e-12 * abs(l1)
    for k in g1.params:
        close(g2.params[k], g1.params[k])
    close(g2.h0, g1.h0)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 64, 1000, 1025])
def test_the_compiled_scan_is_bptt_scans_tree(T, complex_):
    # the compiled odd-even scan groups the products as bptt.scan.prefixes does: the same numbers
    # to the rounding of a fused multiply-add, and both the loop's
    need("numba")
    from bptt.fast import linear
    rng = np.random.default_rng(T)
    a, b = rng.uniform(0.3, 1.0, (T, 2, 3)), rng.normal(size=(T, 2, 3))
    if complex_:
        a, b = a * np.exp(1j * rng.uniform(0, 6, a.shape)), b + 1j * rng.normal(size=b.shape)
    want = scan.prefixes(a, b)
    got = (a.copy(), b.copy())
    linear.prefixes(got[0].reshape(T, -1), got[1].reshape(T, -1))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(got[0] * 0.5 + got[1], scan.linear(a, b, np.full((2, 3), 0.5)), rtol=1e-13, atol=1e-13)


def _torch_linear(torch, model, x, y, s0):
    """PyTorch autograd's loss and gradients (by our names, h0 too) for the model on ids x (N, T):
    the cell's equations written out in torch operations, the LRU's in complex numbers."""
    H, O, name = model.H, model.O, model.cell.name
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = torch.tensor(s0, requires_grad=True)
    X = torch.tensor(x.T)  # (T, N)
    if name == "lru":
        lam = torch.exp(-torch.exp(P["nu_log"]) + 1j * torch.exp(P["theta_log"]))
        B = P["B_re"].T[X] + 1j * P["B_im"].T[X]
        b = (torch.exp(P["gamma_log"]) if "gamma_log" in P else 1) * B
        a = lam.expand(b.shape)
        state = h[:, :H] + 1j * h[:, H:]
    elif name == "linear":
        b, a, state = P["B"].T[X], P["lam"].expand(X.shape + (H,)), h
    else:
        A = P["U"].T[X] + P["b"]
        if name == "mingru":
            z = torch.sigmoid(A[..., :H])
            a, b = 1 - z, z * A[..., H:]
        else:
            f, i = torch.sigmoid(A[..., :H]), torch.sigmoid(A[..., H:2 * H])
            a, b = f / (f + i), i * A[..., 2 * H:] / (f + i)
        state = h
    outs = []
    for t in range(X.shape[0]):
        state = a[t] * state + b[t]
        outs.append(torch.cat([state.real, state.imag], -1) if name == "lru" else state)
    q = torch.stack(outs) @ P["V"].T + P["c"]  # (T, N, O)
    loss = torch.nn.functional.cross_entropy(q.reshape(-1, O), torch.tensor(y.T).reshape(-1), reduction="sum")
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in P.items()}, h.grad.numpy()


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_matches_torch_autograd(regime, name, cell):
    torch = need("torch")
    rng = np.random.default_rng(3)
    model = make(cell, rng, H=10, D=6, O=5)
    x, _, s0 = data(model, rng, N=3, T=40, dense=False)
    y = rng.integers(0, model.O, (3, 40))
    regime(name)
    ref_loss, ref, ref_h0 = _torch_linear(torch, model, x, y, s0)
    for scan_ in scan.METHODS:
        loss, g = bptt.gradients(model, x, y, h0=s0, scan=scan_, backend="fast")
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for k, a in ref.items():
            np.testing.assert_allclose(g.params[k], a, rtol=1e-10, atol=1e-12, err_msg=f"{scan_} {k}")
        np.testing.assert_allclose(g.h0, ref_h0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_a_later_call_leaves_earlier_results_alone(cell):
    # gradients() keeps its working arrays for the next call of the same sizes: nothing it returned
    # may be one of them
    rng = np.random.default_rng(4)
    model = make(cell, rng, H=5, D=4, O=3)
    x, y, s0 = data(model, rng, N=2, T=9, dense=False)
    loss, g = bptt.gradients(model, x, y, h0=s0, backend="fast")
    kept = {k: np.copy(v) for k, v in list(g.params.items()) + [("h0", g.h0)]}
    trace = bptt.forward(model, x, s0, backend="fast")
    states = [np.copy(a) for a in trace.cell_states + trace.cache]
    x2, y2, s2 = data(model, rng, N=2, T=9, dense=False)
    bptt.gradients(model, x2, y2, h0=s2, backend="fast")
    bptt.gradients(model, x2, y2, h0=s2, scan="parallel", backend="fast")
    bptt.loss(model, x2, y2, h0=s2, backend="fast")
    bptt.backward(trace, y2, backend="fast")
    for k, a in kept.items():
        np.testing.assert_array_equal(g.params.get(k, g.h0), a, err_msg=k)
    for a, b in zip(trace.cell_states + trace.cache, states):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["fused", "split", "halves"])
@pytest.mark.parametrize("cell", CELLS)
def test_an_overflow_is_the_references_error(regime, name, cell):
    # float32 outputs that overflow, q = 1e38 |h_j| + 3.4e38 once |h_j| > 0.003 (one product a
    # term, so that every BLAS gives the same step): both backends raise the same error
    rng = np.random.default_rng(1)
    model = make(cell, rng, H=4, D=3, O=2)
    model = model.replace(**{k: 10 * model.params[k] for k, p in model.cell.params.items() if p.role})  # h_t large
    regime(name)
    x, y = rng.integers(0, 3, (2, 30)), np.zeros((2, 30), dtype=int)  # a batch: split in two halves
    last = bptt.forward(model, x, backend="reference").states[1, -1]  # the second half's sequence
    j = int(np.argmax(np.abs(last)))
    V = np.zeros(model.V.shape)
    V[:, j] = 1e38 * np.sign(last[j])
    model = model.replace(V=V, c=np.full(2, 3.4e38)).astype(np.float32)
    errors = []
    for which in ("reference", "fast"):
        with pytest.raises(FloatingPointError, match="the forward pass overflowed: the output q_t") as e:
            bptt.gradients(model, x, y, backend=which)
        errors.append(str(e.value))
    assert errors[0] == errors[1]


class Leaky(Cell):
    """A cell defined outside the package whose step is linear in its state: a leaky integrator
    with one rate per unit, h_t = r * h_{t-1} + (1 - r) * tanh(U x_t + b), r = sigma(w)."""

    name, label, model = "leaky_test", "leaky integrator (test)", "LeakyTest"
    params = {"U": Param(("H", "D"), role="input"), "w": Param(("H",)),
              "b": Param(("H",), optional=True, role="input bias")}

    def step(self, m, a, state):
        r, u = 1 / (1 + np.exp(-m.w)), np.tanh(a)
        return (r * state[0] + (1 - r) * u,), (u,)

    def step_back(self, m, prev, state, cache, d):
        r, (u,), (dh,) = 1 / (1 + np.exp(-m.w)), cache, d
        d_a = dh * (1 - r) * (1 - u * u)
        return d_a, dh, (dh * r,)

    def param_grads(self, m, prev, state, cache, d_a, d_r):
        r = 1 / (1 + np.exp(-m.w))
        return {"w": d_r * (prev[0] - cache[0]) * r * (1 - r)}

    def drive(self, m, A):
        u = np.tanh(A)
        return (1 - 1 / (1 + np.exp(-m.w))) * u, (u,)

    def decay(self, m, cache):
        return 1 / (1 + np.exp(-m.w))


@pytest.fixture
def leaky():
    registry.register(Leaky)
    yield "leaky_test"
    del registry._CELLS["leaky_test"]


@pytest.mark.parametrize("name", ["generic", "numpy"])
def test_a_linear_cell_defined_outside_runs_on_the_fast_backend(regime, leaky, name):
    regime(name)
    model = bptt.random_model(leaky, 5, 4, 3, seed=0)
    assert driver.supports(model) and backend.engine(model) is bptt.fast
    rng = np.random.default_rng(0)
    x, y, s0 = data(model, rng, N=3, T=25, dense=False)
    for scan_ in scan.METHODS:
        for K in (None, 4):
            kw = dict(h0=s0, truncate=K, scan=scan_)
            assert_same(bptt.gradients(model, x, y, backend="fast", **kw),
                        bptt.gradients(model, x, y, backend="reference", **kw), np.float64, f"{scan_} K={K}")
    report = bptt.check(model, x[0], y[0])
    assert report.backend == "fast" and report.passed, report


@pytest.mark.parametrize("cell", CELLS)
def test_check_runs_the_new_cells_on_the_fast_backend_and_catches_a_wrong_step(cell, monkeypatch):
    need("numba")
    from bptt.fast import linear
    model = bptt.random_model(cell, 4, 3, 3, seed=0)
    x, y = [0, 1, 2, 1, 0, 2], [2, 1, 0, 0, 1, 1]
    report = bptt.check(model, x, y)
    assert report.backend == "fast" and report.passed, report
    real = linear.Backward.steps  # the generic backward and, through it, every cell's own steps

    def wrong(self, t0, t1):  # what a broken kernel would leave: the input part's errors doubled
        real(self, t0, t1)
        self.dA = 2 * self.dA
    monkeypatch.setattr(linear.Backward, "steps", wrong)
    report = bptt.check(model, x, y)
    assert report.backend == "fast" and not report.passed
    assert bptt.check(model, x, y, backend="reference").passed
