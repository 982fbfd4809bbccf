"""The fast backend gives the reference engine's numbers for the LSTM and the GRU (both forms), in
every regime it has.

bptt.fast (lstm.py, gru.py) runs their time loops compiled whole (Numba), as a Python loop of NumPy's
products and compiled steps, or in NumPy throughout, in one thread or in runtime.py's two-thread
pipeline.
Every regime must give the reference engine's (bptt.core) loss, gradients and trace: to 1e-11
relative in float64, on hypothesis-drawn cases; and each cell must match PyTorch autograd, an
independent computation. No timings here: those are in benchmarks/gated.py.
"""
import numpy as np
import pytest
from conftest import need
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import bptt
from bptt import activations, backend
from bptt.fast import driver, runtime
from bptt.model import random_gated

CELLS = ["lstm", "gru", "gru-before"]  # the GRU in PyTorch's form (reset after) and Keras's other form
REGIMES = ["numpy", "loop", "steps", "pipeline", "pipeline-numpy", "split", "parts"]


@pytest.fixture
def regime(monkeypatch):
    """regime(name): NumPy's loops; the compiled time loop ("loop") at every size; a Python loop of
    NumPy's products and compiled steps ("steps", for N > 1); the two-thread pipeline (blocks
    of steps, with the helper thread), compiled or in NumPy; or every batch as two halves, taken
    by this thread and the helper ("split", for N > 1), or as one part a sequence ("parts")."""
    def set_(name):
        if "numpy" not in name:
            need("numba")
        if name.startswith("pipeline"):
            need("threadpoolctl")
        runtime.set_compiled("numpy" not in name)
        monkeypatch.setattr(runtime, "COMPILED_LOOP_MAX_WORK", 1 << 62 if name == "loop" else 0)
        monkeypatch.setattr(runtime, "PIPELINE_MIN_STEP_WORK", 0 if name.startswith("pipeline") else 1 << 62)
        monkeypatch.setattr(runtime, "PIPELINE_MIN_BLOCK_WORK", 0 if name.startswith("pipeline") else 1 << 62)
        monkeypatch.setattr(runtime, "blas_threads", lambda: 2)
        monkeypatch.setattr(driver, "SPLIT_MIN_WORK", 0 if name in ("split", "parts") else 1 << 62)
        monkeypatch.setattr(driver, "SPLIT_STEP_WORK", 1 if name == "parts" else 1 << 62)
    previous = runtime.set_compiled(True)
    yield set_
    runtime.set_compiled(previous)


def make(cell, rng, *, H, D, O, dtype=np.float64, biases="all", head="softmax"):
    """A random model of the cell ("gru-before": reset_after=False) with the biases named in
    biases ("all", "none", or one of b, bh, c)."""
    model = random_gated(cell.split("-")[0], H, D, O, seed=rng, reset_after=cell != "gru-before", head=head)
    if biases != "all":
        model = model.replace(**{k: None for k in ("b", "bh", "c") if k != biases})
    return model.astype(dtype)


def data(model, rng, *, N, T, dense, masked=True, h0="h0"):
    """(x, y, h0) for the model: N = 0 is one sequence; h0 None, "h0" or, for an LSTM, "h0c0"."""
    lead = (N, T) if N else (T,)
    x = rng.normal(size=lead + (model.D,)) if dense else rng.integers(0, model.D, lead)
    if model.head == "mse":
        y = rng.normal(size=lead + (model.O,))
        if masked:
            y[..., 0, :] = np.nan  # step 0 unscored
    else:
        y = rng.integers(-1 if masked else 0, model.O, lead)
    s = lambda: rng.normal(0, 0.5, lead[:-1] + (model.H,)).astype(model.dtype)  # noqa: E731
    return x, y, {None: None, "h0": s(), "h0c0": (s(), s())}[h0]


def assert_same(got, ref, dtype, what=""):
    """The fast backend's (loss, Grads) equal the reference's: loss, every parameter, h0, c0."""
    rtol, atol = (1e-11, 1e-13) if dtype == np.float64 else (2e-4, 1e-5)
    assert got[0] == pytest.approx(ref[0], rel=rtol, abs=atol), what
    assert set(got[1].params) == set(ref[1].params)
    pairs = list(ref[1].params.items()) + [("h0", ref[1].h0), ("c0", ref[1].c0)]
    for k, a in pairs:
        b = got[1].params.get(k) if k in ref[1].params else getattr(got[1], k)
        assert (a is None) == (b is None), (what, k)
        if a is not None:
            assert b.dtype == dtype and b.shape == a.shape, (what, k)
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * max(1.0, np.abs(a).max()), err_msg=f"{what} {k}")


def assert_same_trace(got, ref, dtype):
    """The traces hold the same states, caches and outputs."""
    rtol, atol = (1e-11, 1e-13) if dtype == np.float64 else (2e-4, 1e-5)
    assert len(got.cell_states) == len(ref.cell_states) and len(got.cache) == len(ref.cache)
    for a, b in zip(got.cell_states + got.cache + (got.Q,), ref.cell_states + ref.cache + (ref.Q,)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got.states, ref.states, rtol=rtol, atol=atol)
    parts = lambda final: final if isinstance(final, tuple) else (final,)  # noqa: E731
    for a, b in zip(parts(got.final), parts(ref.final)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from(CELLS), N=st.sampled_from([0, 1, 3]),
       T=st.integers(1, 14), H=st.integers(1, 7), D=st.integers(1, 5), O=st.integers(1, 5),
       biases=st.sampled_from(["all", "none", "b", "bh", "c"]), dense=st.booleans(),
       head=st.sampled_from(["softmax", "mse"]), masked=st.booleans(), h0=st.sampled_from([None, "h0", "h0c0"]),
       reduction=st.sampled_from(["sum", "mean"]), dtype=st.sampled_from([np.float64, np.float32]),
       K=st.sampled_from([None, 0, 1, 3, "T", "T+2"]), name=st.sampled_from(REGIMES[:3]))
def test_fast_backend_equals_the_reference(regime, seed, cell, N, T, H, D, O, biases, dense, head, masked, h0,
                                           reduction, dtype, K, name):
    assume(dense or not N or T != D)  # (N, D) integer ids could be read as one-hot rows: refused
    assume(h0 != "h0c0" or cell == "lstm")
    regime(name)
    rng = np.random.default_rng(seed)
    model = make(cell, rng, H=H, D=D, O=O, dtype=dtype, biases=biases, head=head)
    x, y, s0 = data(model, rng, N=N, T=T, dense=dense, masked=masked, h0=h0)
    K = {"T": T, "T+2": T + 2}.get(K, K)
    ref = bptt.gradients(model, x, y, h0=s0, truncate=K, reduction=reduction, backend="reference")
    got = bptt.gradients(model, x, y, h0=s0, truncate=K, reduction=reduction, backend="fast")
    assert_same(got, ref, dtype)
    tr, tf = bptt.forward(model, x, s0, backend="reference"), bptt.forward(model, x, s0, backend="fast")
    assert_same_trace(tf, tr, dtype)
    assert bptt.loss(model, x, y, h0=s0, reduction=reduction, backend="fast") == pytest.approx(ref[0], rel=1e-4)
    # the fast backward pass on the reference's trace, and the reference's on the fast trace
    assert_same(bptt.backward(tr, y, truncate=K, reduction=reduction, backend="fast"), ref, dtype)
    assert_same(bptt.backward(tf, y, truncate=K, reduction=reduction, backend="reference"), ref, dtype)


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("head,dense,biases,N", [("softmax", False, "all", 3), ("mse", True, "none", 4),
                                                 ("softmax", True, "bh", 2), ("softmax", False, "c", 0)])
def test_every_regime_gives_the_references_numbers(regime, name, cell, head, dense, biases, N):
    # T = 37 > 2 * PIPELINE_BLOCKS: the pipeline regimes run 16 blocks with the helper thread
    rng = np.random.default_rng([REGIMES.index(name), CELLS.index(cell), N])
    model = make(cell, rng, H=9, D=6, O=5, biases=biases, head=head)
    x, y, s0 = data(model, rng, N=N, T=37, dense=dense, h0="h0c0" if cell == "lstm" else "h0")
    regime(name)
    if name.startswith("pipeline") and N > 1:
        work = N * 9 * model.W.shape[0]
        assert len(runtime.plan(37, N, work, runtime.gated_pipelines(work)).blocks) == runtime.PIPELINE_BLOCKS
    if name == "parts" and N > 1:  # one part a sequence: several parts a thread, summed in order
        xin = bptt.validate.inputs(model, x)
        assert driver._parts(driver.adapter(model), model, xin) == [(n, n + 1) for n in range(N)]
    for reduction in ("sum", "mean"):
        ref = bptt.gradients(model, x, y, h0=s0, reduction=reduction, backend="reference")
        assert_same(bptt.gradients(model, x, y, h0=s0, reduction=reduction, backend="fast"), ref, np.float64,
                    f"{name} {reduction}")
        trace = bptt.forward(model, x, s0, backend="fast")
        assert_same(bptt.backward(trace, y, reduction=reduction, backend="fast"), ref, np.float64, f"{name} backward")
        ref = bptt.gradients(model, x, y, h0=s0, truncate=5, reduction=reduction, backend="reference")
        assert_same(bptt.gradients(model, x, y, h0=s0, truncate=5, reduction=reduction, backend="fast"), ref,
                    np.float64, f"{name} {reduction} truncate=5")
    assert_same_trace(trace, bptt.forward(model, x, s0, backend="reference"), np.float64)


@pytest.mark.parametrize("name", ["loop", "steps", "pipeline"])
@pytest.mark.parametrize("cell", CELLS)
def test_float32_stays_float32_and_matches_float64(regime, name, cell):
    rng = np.random.default_rng(11)
    model = make(cell, rng, H=16, D=7, O=6)
    x, y, s0 = data(model, rng, N=4, T=50, dense=False)
    regime(name)
    loss32, g32 = bptt.gradients(model.astype(np.float32), x, y, h0=s0.astype(np.float32), backend="fast")
    loss64, g64 = bptt.gradients(model, x, y, h0=s0, backend="reference")
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for k, a in g32.params.items():
        assert a.dtype == np.float32, k
        np.testing.assert_allclose(a, g64.params[k], rtol=1e-3, atol=1e-4 * np.abs(g64.params[k]).max(), err_msg=k)


def _torch_gated(torch, model, x, y, s0):
    """PyTorch autograd's loss, gradients by our names and initial-state gradients for the model:
    nn.LSTM / nn.GRU + nn.Linear + cross_entropy(reduction="sum"); Keras's reset-before GRU, which
    PyTorch has not, written out in torch operations."""
    D, H, O = model.D, model.H, model.O
    X = torch.nn.functional.one_hot(torch.tensor(x), D).double()  # (N, T, D)
    states = tuple(torch.tensor(s[None], requires_grad=True) for s in (s0 if isinstance(s0, tuple) else (s0,)))
    lin = torch.nn.Linear(H, O).double()
    if model.cell.name == "gru" and not model.cell.reset_after:
        P = {k: torch.tensor(model.params[k], requires_grad=True) for k in ("U", "W", "b", "bh")}
        h, outs = states[0][0], []
        for t in range(X.shape[1]):
            a = X[:, t] @ P["U"].T + P["b"]
            rz = torch.sigmoid(a[:, :2 * H] + h @ P["W"][:2 * H].T + P["bh"][:2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(a[:, 2 * H:] + (r * h) @ P["W"][2 * H:].T + P["bh"][2 * H:])
            h = (1 - z) * n + z * h
            outs.append(h)
        out = torch.stack(outs, 1)
    else:
        rnn = (torch.nn.LSTM if model.cell.name == "lstm" else torch.nn.GRU)(D, H, batch_first=True).double()
        P = {"U": rnn.weight_ih_l0, "W": rnn.weight_hh_l0, "b": rnn.bias_ih_l0, "bh": rnn.bias_hh_l0}
        with torch.no_grad():
            for k, p in P.items():
                p.copy_(torch.tensor(model.params[k]))
        out, _ = rnn(X, states if len(states) > 1 else states[0])
    P.update(V=lin.weight, c=lin.bias)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(model.V))
        lin.bias.copy_(torch.tensor(model.c))
    loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, O), torch.tensor(y).reshape(-1), reduction="sum")
    loss.backward()
    return loss.item(), {k: p.grad.numpy() for k, p in P.items()}, [s.grad[0].numpy() for s in states]


@pytest.mark.parametrize("name", ["numpy", "loop", "steps"])
@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_matches_torch_autograd(regime, name, cell):
    torch = need("torch")
    rng = np.random.default_rng(3)
    model = make(cell, rng, H=10, D=6, O=5)
    x, _, s0 = data(model, rng, N=3, T=40, dense=False, h0="h0c0" if cell == "lstm" else "h0")
    y = rng.integers(0, model.O, (3, 40))
    regime(name)
    loss, g = bptt.gradients(model, x, y, h0=s0, backend="fast")
    ref_loss, ref, ref_state = _torch_gated(torch, model, x, y, s0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k, a in ref.items():
        np.testing.assert_allclose(g.params[k], a, rtol=1e-10, atol=1e-12, err_msg=k)
    for mine, theirs in zip((g.h0, g.c0), ref_state):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_compiled_sigmoid_and_tanh_equal_numpys(name, dtype):
    # within 3 units in the last place, over 6 scales and the edges; below e^-708 (float32 e^-87)
    # the kernels' sigma stays at that value, where NumPy's goes on down to 0
    need("numba")
    from bptt.fast import numerics
    kernel, numpys = {"sigmoid": (numerics.sigmoid_values, activations.get("sigmoid").f),
                      "tanh": (numerics.tanh_values, np.tanh)}[name]
    rng = np.random.default_rng(0)
    z = np.concatenate([np.linspace(-800, 800, 200001), [0.0, -0.0, np.inf, -np.inf, 1e-30, -1e-30, 0.625]]
                       + [rng.normal(0, scale, 100000) for scale in (1e-3, 0.1, 1, 5, 30, 300)]).astype(dtype)
    with np.errstate(over="ignore"):
        want = numpys(z).astype(np.float64)
    got = np.empty_like(z)
    kernel(z, got)
    floor = np.exp(-87.0 if dtype == np.float32 else -708.0) if name == "sigmoid" else 0.0
    ulp = np.spacing(np.maximum(np.abs(want), np.finfo(dtype).tiny).astype(dtype)).astype(np.float64)
    ulps = np.maximum(np.abs(got - want) - floor, 0) / ulp
    assert ulps.max() <= 3, (z[np.argmax(ulps)], got[np.argmax(ulps)], want[np.argmax(ulps)])
    assert np.array_equal(np.sign(got)[want != 0], np.sign(want)[want != 0])
    nan = np.array([np.nan], dtype=dtype)
    kernel(nan, nan)
    assert np.isnan(nan[0])


@pytest.mark.parametrize("name", ["numpy", "loop", "steps"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_output_mean_has_loss_and_gradient_exactly_zero(regime, name, cell, dtype):
    # O = 1: softmax of one output is 1, so the loss is 0 and so is every gradient, exactly
    regime(name)
    model = make(cell, np.random.default_rng(0), H=8, D=3, O=1, dtype=dtype)
    x = np.random.default_rng(0).integers(0, 3, (4, 40))
    loss, g = bptt.gradients(model, x, np.zeros((4, 40), dtype=int), reduction="mean", backend="fast")
    assert loss == 0.0
    for k, a in list(g.params.items()) + [("h0", g.h0)]:
        assert np.abs(a).max() == 0.0, (k, np.abs(a).max())


@pytest.mark.parametrize("name", ["numpy", "loop"])
@pytest.mark.parametrize("cell", CELLS)
def test_an_overflow_is_the_references_error(regime, name, cell):
    # float32 outputs that overflow (V h with V = 1e38) and, with the mse head, an output error that
    # does (dE/dq V); both backends raise the same FloatingPointError, which names the step
    regime(name)
    rng = np.random.default_rng(1)
    base = make(cell, rng, H=8, D=3, O=2)
    b = np.full(base.W.shape[0], 5.0)  # gates open: h_t near 1 from step 0 on (the GRU's z gate shut)
    if cell != "lstm":
        b[8:16] = -5.0
    base = base.replace(U=0 * base.U, W=0 * base.W, b=b, bh=0 * base.bh)
    x = rng.integers(0, 3, 30)
    cases = [(base.replace(V=np.full((2, 8), 1e38)).astype(np.float32), np.zeros(30, dtype=int),
              "the forward pass overflowed: the output q_t first became non-finite at step t = 0"),
             (base.replace(V=np.full((2, 8), 1e30), head="mse").astype(np.float32), np.full((30, 2), 1e37),
              "the output error overflowed")]
    for model, y, message in cases:
        errors = []
        for which in ("reference", "fast"):
            with pytest.raises(FloatingPointError, match=message) as e:
                bptt.gradients(model, x, y, backend=which)
            errors.append(str(e.value))
        assert errors[0] == errors[1]


@pytest.mark.parametrize("cell", CELLS)
def test_a_later_call_leaves_earlier_results_alone(cell):
    # gradients() keeps its working arrays for the next call of the same sizes: nothing it returned
    # may be one of them
    rng = np.random.default_rng(4)
    model = make(cell, rng, H=5, D=4, O=3)
    x, y, s0 = data(model, rng, N=2, T=9, dense=False, h0="h0c0" if cell == "lstm" else "h0")
    loss, g = bptt.gradients(model, x, y, h0=s0, backend="fast")
    kept = {k: np.copy(getattr(g, k)) for k in list(g.params) + ["h0", "c0"] if getattr(g, k) is not None}
    trace = bptt.forward(model, x, s0, backend="fast")
    states = [np.copy(a) for a in trace.cell_states + trace.cache]
    x2, y2, s2 = data(model, rng, N=2, T=9, dense=False, h0="h0c0" if cell == "lstm" else "h0")
    bptt.gradients(model, x2, y2, h0=s2, backend="fast")
    bptt.loss(model, x2, y2, h0=s2, backend="fast")
    bptt.backward(trace, y2, backend="fast")
    for k, a in kept.items():
        np.testing.assert_array_equal(getattr(g, k), a, err_msg=k)
    for a, b in zip(trace.cell_states + trace.cache, states):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["loop", "steps"])
def test_weights_in_any_order_run_the_kernels_already_compiled(regime, name):
    # a model's arrays keep the order they came in (Keras's import gives Fortran-ordered ones):
    # the kernels get C-contiguous copies, the argument types a C-ordered model's call compiled,
    # so no call compiles anew
    need("numba")
    from numba.core.registry import CPUDispatcher
    from bptt.fast import gru, lstm
    regime(name)
    kernels = [f for m in (lstm, gru) for f in vars(m).values() if isinstance(f, CPUDispatcher)]
    rng = np.random.default_rng(8)
    for cell in CELLS:
        for dtype in (np.float32, np.float64):
            model = make(cell, rng, H=6, D=4, O=3, dtype=dtype)
            x, y, s0 = data(model, rng, N=3, T=7, dense=False)
            bptt.gradients(model, x, y, h0=s0, backend="fast")  # compiles what this cell and dtype need
            model = model.replace(**{k: np.asfortranarray(v) if v.ndim == 2 else v[::-1].copy()[::-1]
                                     for k, v in model.params.items()})
            assert not model.W.flags.c_contiguous
            before = {f: len(f.signatures) for f in kernels}
            assert_same(bptt.gradients(model, x, y, h0=s0, backend="fast"),
                        bptt.gradients(model, x, y, h0=s0, backend="reference"), dtype, cell)
            assert {f: len(f.signatures) for f in kernels} == before, cell


def test_the_fast_backend_computes_lstm_and_gru():
    for cell in CELLS:
        model = make(cell, np.random.default_rng(0), H=3, D=2, O=2)
        assert bptt.fast.supports(model)
        assert backend.engine(model) is bptt.fast
        assert backend.engine(model, "reference") is bptt.core
    assert bptt.fast.supports(bptt.random_rnn(3, 2, 2, seed=0))


def test_the_first_call_of_a_process_gives_the_same_bits_as_every_later_one():
    # as for the Elman cell: the first call waits for the kernels it needs (lstm.py's among them),
    # so every call of a process, and every run of a script, gives the same bits
    need("numba")
    import subprocess
    import sys
    code = """
import hashlib, numpy as np, bptt
from bptt.model import random_gated
rng = np.random.default_rng(0)
m = random_gated("lstm", 32, 16, 16, seed=0, dtype=np.float32)
x, y = rng.integers(0, 16, (1, 200)), rng.integers(0, 16, (1, 200))
digest = lambda g: hashlib.sha256(b"".join(a.tobytes() for a in g.params.values())).hexdigest()
print(*(digest(bptt.gradients(m, x, y)[1]) for _ in range(3)))
"""
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 1, runs[0]
