"""The LRU, minGRU, minLSTM and linear diagonal cells against PyTorch and JAX autodiff (float64).

Each case compares bptt.gradients with three independent computations of the same model: the
PyTorch loop (bptt.frameworks.torch_modern, through compare()), and JAX's lax.associative_scan
(through compare()) and lax.scan (jax_modern.gradients(form="scan")): the loss first, then every
parameter and h0 (for the LRU h0 is (N, 2H), [Re h0, Im h0]), each to 1e-10 relative error with
the floored denominator of bptt.frameworks.relative_error. Also: check passes on each cell and
fails on a mutant with one sign flipped in step_back; RTRL equals BPTT (these two need no
framework and carry no frameworks mark).

JAX compiles one program per shape, so its random cases draw sizes from a small pool.
"""
import numpy as np
import pytest
from conftest import need
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bptt
from bptt import approx, cells
from bptt import frameworks as fw
from bptt.cells import registry
from bptt.frameworks import jax_modern, torch_modern
from bptt.frameworks.stress import ambiguous
from bptt.frameworks.stress import random_case as make_case

MODERN = list(jax_modern.CELLS)
JAX_SIZES = [(2, 3, 2, 3, 5), (1, 2, 3, 2, 4)]  # (N, D, H, O, T)
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def modern_cases(draw, sizes=None):
    """(model, x, y, kwargs): a cell of MODERN with or without its optional parameters (b, or the
    LRU's gamma_log) and c, h0 or none, masked targets or not, ids or dense inputs, both heads,
    every truncation and both reductions."""
    cell = draw(st.sampled_from(MODERN))
    if sizes is None:
        N, D, H, O, T = (draw(st.integers(1, n)) for n in (3, 4, 4, 4, 7))
    else:
        N, D, H, O, T = draw(st.sampled_from(sizes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kw = dict(head=draw(st.sampled_from(["softmax", "mse"])), b=draw(st.booleans()), c=draw(st.booleans()),
              dense=draw(st.booleans()), h0=draw(st.booleans()), mask=draw(st.booleans()))
    m, x, y, h0 = make_case(rng, N, T, D, H, O, batched=N > 1 or draw(st.booleans()), activation="tanh",
                            cell=cell, **kw)
    assume(not ambiguous(x, D))
    truncate = draw(st.sampled_from([None, 0, 1, 3, T - 1, T, T + 2]))
    return m, x, y, dict(truncate=truncate, h0=h0, reduction=draw(st.sampled_from(["sum", "mean"])))


def assert_agrees(m, x, y, frameworks=("torch", "jax"), scan=True, **kw):
    """compare() for torch and JAX (associative scan), then (scan=True) JAX's lax.scan form,
    quantity by quantity."""
    for name in frameworks:
        need(name)
    result = fw.compare(m, x, y, frameworks=list(frameworks), **kw)
    quantities = ["loss", *m.params, "h0"]
    assert [r.quantity for r in result.rows] == quantities * len(frameworks)
    assert result.passed, f"\n{m!r}, {kw}\n{result}"
    if "jax" in frameworks and scan:
        loss, g = bptt.gradients(m, x, y, **kw)
        ours = {"loss": loss, **g.params, "h0": g.h0}
        their_loss, theirs = jax_modern.gradients(m, x, y, form="scan", **kw)
        theirs["loss"] = their_loss
        assert sorted(theirs) == sorted(ours)
        for q in quantities:
            abs_err, rel_err = fw.relative_error(ours[q], theirs[q])
            assert rel_err <= 1e-10, (q, abs_err, rel_err, m, kw)
    return result


@pytest.mark.frameworks
@settings(max_examples=40, **SETTINGS)
@given(case=modern_cases())
def test_torch_agrees_on_random_modern_cases(case):
    m, x, y, kw = case
    assert_agrees(m, x, y, frameworks=("torch",), **kw)


@pytest.mark.frameworks
@settings(max_examples=8, **SETTINGS)
@given(case=modern_cases(sizes=JAX_SIZES))
def test_torch_and_both_jax_forms_agree_on_random_modern_cases(case):
    m, x, y, kw = case
    assert_agrees(m, x, y, **kw)


@pytest.mark.frameworks
@pytest.mark.parametrize("cell", MODERN)
def test_every_modern_cell_with_everything_on(cell):
    """The cell's own initialisation (the LRU's ring near the unit circle), every optional
    parameter, a batch, h0, masked targets, both heads, ids and dense inputs, both reductions,
    windows inside the sequence; then one sequence with h0 of shape (S,). (JAX's lax.scan form on
    two of them: each new shape or option compiles a program.)"""
    rng = np.random.default_rng(MODERN.index(cell))
    N, D, H, O, T = JAX_SIZES[0]
    options = {"lru": dict(r_min=0.9, r_max=0.999)}.get(cell, {})
    for head, dense, K, reduction, scan in [("softmax", False, None, "sum", True), ("mse", True, 0, "mean", False),
                                            ("softmax", True, T - 1, "mean", True)]:
        m = bptt.random_model(cell, H, D, O, seed=rng, head=head, **options)
        x = rng.normal(size=(N, T, D)) if dense else rng.integers(0, D, (N, T))
        y = rng.normal(size=(N, T, O)) if head == "mse" else rng.integers(0, O, (N, T))
        y[rng.random((N, T)) < 0.3] = np.nan if head == "mse" else -1
        h0 = rng.normal(size=(N, m.state_sizes[0]))
        assert_agrees(m, x, y, truncate=K, h0=h0, reduction=reduction, scan=scan)
    assert_agrees(m, x[0], y[0], h0=h0[0], truncate=1, scan=False)


@pytest.mark.frameworks
@pytest.mark.parametrize("cell", MODERN)
def test_truncation_is_really_applied_by_each_framework_and_form(cell):
    """K = 0 changes the recurrent parameters' gradient, leaves V's alone and h0's at zero; K = T-1
    (the last output restarts from h0, stopped) changes h0's; every K >= T is full BPTT."""
    need("torch")
    need("jax")
    m, x, y, h0 = make_case(np.random.default_rng(7), 2, 5, 3, 2, 3, batched=True, activation="tanh",
                            head="softmax", b=True, c=True, dense=False, h0=True, mask=False, cell=cell)
    recurrent = {"lru": "nu_log", "mingru": "U", "minlstm": "U", "linear": "lam"}[cell]
    for label, grad in [("torch", torch_modern.gradients),
                        ("jax scan", lambda *a, **kw: jax_modern.gradients(*a, form="scan", **kw)),
                        ("jax associative", lambda *a, **kw: jax_modern.gradients(*a, form="associative", **kw))]:
        _, full = grad(m, x, y, h0=h0)
        assert sorted(full) == sorted([*m.params, "h0"]) and full["h0"].shape == (2, m.state_sizes[0]), label
        _, k0 = grad(m, x, y, h0=h0, truncate=0)
        assert np.abs(full[recurrent] - k0[recurrent]).max() > 1e-4, label
        np.testing.assert_allclose(full["V"], k0["V"], rtol=1e-13, err_msg=label)
        assert np.all(k0["h0"] == 0) and np.abs(full["h0"]).max() > 1e-3, label
        _, k4 = grad(m, x, y, h0=h0, truncate=4)
        assert np.abs(k4["h0"] - full["h0"]).max() > 1e-8, label
        for K in (5, 9):
            _, kT = grad(m, x, y, h0=h0, truncate=K)
            for k in full:
                np.testing.assert_allclose(kT[k], full[k], rtol=1e-12, atol=1e-15, err_msg=f"{label} {k}")


@pytest.mark.frameworks
def test_the_lru_state_is_complex_and_gamma_is_optional():
    """Im h0 moves the loss (the state really is complex in the frameworks); without gamma_log
    (gamma = 1) there is no gamma_log gradient, and the model differs from the normalised one."""
    need("torch")
    need("jax")
    rng = np.random.default_rng(3)
    m = bptt.random_model("lru", 2, 3, 3, seed=rng, normalise=False)
    assert "gamma_log" not in m.params
    x, y = rng.integers(0, 3, (2, 5)), rng.integers(0, 3, (2, 5))
    h0 = np.zeros((2, 4))
    h0[:, 2:] = rng.normal(size=(2, 2))  # imaginary parts only
    base, _ = fw.reference("torch").gradients(m, x, y)
    for name in ("torch", "jax"):
        loss, g = fw.reference(name).gradients(m, x, y, h0=h0)
        assert abs(loss - base) > 1e-6 and "gamma_log" not in g and np.abs(g["h0"][:, 2:]).max() > 1e-4
    assert_agrees(m, x, y, h0=h0, truncate=2)
    normalised = m.replace(gamma_log=np.log(0.5) * np.ones(2))
    assert abs(fw.reference("torch").gradients(normalised, x, y)[0] - base) > 1e-6
    assert_agrees(normalised, x, y, h0=h0)


@pytest.mark.frameworks
def test_the_references_never_call_bptt(monkeypatch):
    """The PyTorch loop and both JAX forms give their numbers with bptt's engine and every cell's
    step, step_back and param_grads disabled."""
    need("torch")
    need("jax")
    import importlib

    def refuse(*a, **kw):
        raise AssertionError("a reference framework called bptt's engine or cell")

    core, backend = (importlib.import_module(f"bptt.{n}") for n in ("core", "backend"))
    for mod, attr in [(core, "forward"), (core, "run"), (core, "backward"), (core, "gradients"),
                      (backend, "gradients"), (bptt, "gradients")]:
        monkeypatch.setattr(mod, attr, refuse)
    for cell in MODERN:
        for attr in ("step", "step_back", "param_grads", "project"):
            monkeypatch.setattr(cells.get(cell), attr, refuse)
    for cell in MODERN:
        m, x, y, h0 = make_case(np.random.default_rng(1), 2, 5, 3, 2, 3, batched=True, activation="tanh",
                                head="mse", b=True, c=True, dense=True, h0=True, mask=False, cell=cell)
        for grad in (torch_modern.gradients, jax_modern.gradients):  # the forms differ in the scan alone
            loss, g = grad(m, x, y, truncate=1, h0=h0)
            assert np.isfinite(loss) and set(g) == {*m.params, "h0"}
            assert all(np.isfinite(v).all() and np.abs(v).max() > 0 for v in g.values())


@pytest.mark.frameworks
def test_the_benchmark_callable_keeps_the_models_dtype():
    """value_and_grad(model, x, y, form=...) runs in float32 for a float32 model, close to the
    float64 gradient (each cell in one form); bad forms and cells are refused."""
    need("jax")
    rng = np.random.default_rng(0)
    for cell, form in zip(MODERN, jax_modern.FORMS * 2):
        m = bptt.random_model(cell, 4, 5, 5, seed=rng)
        x, y = rng.integers(0, 5, (3, 8)), rng.integers(0, 5, (3, 8))
        loss, g = bptt.gradients(m, x, y)
        E, grads, gh = jax_modern.value_and_grad(m.astype(np.float32), x, y, form=form)()
        assert abs(E - loss) <= 1e-5 * abs(loss) and gh.dtype == np.float32
        for k, v in grads.items():
            assert v.dtype == np.float32
            assert fw.relative_error(g.params[k], v)[1] <= 1e-3, (cell, form, k)
    m, x, y = bptt.seed_example()
    with pytest.raises(ValueError, match="form must be one of scan, associative, got 'parallel'"):
        jax_modern.gradients(bptt.random_model("lru", 2, 3, 3, seed=0), x, y, form="parallel")
    with pytest.raises(ValueError, match="know the cells lru, mingru, minlstm, linear, got a rnn model"):
        jax_modern.value_and_grad(m, x, y)
    with pytest.raises(ValueError, match="rnn cell has one form, got form='scan'"):
        fw.reference("jax").gradients(m, x, y, form="scan")
    with pytest.raises(ValueError, match="know the cells lru, mingru, minlstm, linear, cornn, got a rnn model"):
        torch_modern.gradients(m, x, y)


@pytest.mark.frameworks
def test_stress_draws_the_modern_cells():
    need("torch")
    from bptt.frameworks.stress import main, stress

    r = stress(16, seed=2, frameworks=["torch"], cells=MODERN)["torch"]
    assert r["passed"] == r["cases"] == 16 and list(r["cells"]) == MODERN
    assert all(c["cases"] > 0 for c in r["cells"].values()) and 0 < r["worst_rel_err"] <= 1e-10
    assert main(["--cases", "4", "--frameworks", "torch", "--cells", "lru,linear"]) == 0


# --- check and RTRL ---------------------------------------------------------------------------------
class FlippedLRU(cells.get("lru")):
    """The LRU sending the error back through lambda instead of conj(lambda): one sign flipped."""

    name, model = "lru_flipped", "LRUFlipped"

    def step_back(self, m, prev, state, cache, d):
        (dh,) = d
        H = dh.shape[-1] // 2
        gr, gi = dh[..., :H], dh[..., H:]
        lr, li = self.eigenvalues(m)
        g = self.gamma(m)
        return (np.concatenate([g * gr, g * gi], axis=-1), dh,
                (np.concatenate([lr * gr - li * gi, lr * gi - li * gr], axis=-1),))  # the first - was +


class FlippedMinGRU(cells.get("mingru")):
    name, model = "mingru_flipped", "MinGRUFlipped"

    def step_back(self, m, prev, state, cache, d):
        ((h_prev,), (dh,), (z, cand)) = prev, d, cache
        d_a = np.concatenate([dh * (h_prev - cand) * z * (1 - z), dh * z], axis=-1)  # (cand - h_prev)
        return d_a, d_a, (dh * (1 - z),)


class FlippedMinLSTM(cells.get("minlstm")):
    name, model = "minlstm_flipped", "MinLSTMFlipped"

    def step_back(self, m, prev, state, cache, d):
        ((h_prev,), (dh,), (f, i, cand)) = prev, d, cache
        s = f + i
        diff = dh * (h_prev - cand) / (s * s)
        d_a = np.concatenate([diff * i * f * (1 - f), diff * f * i * (1 - i),  # the i block had -diff
                              dh * i / s], axis=-1)
        return d_a, d_a, (dh * f / s,)


class FlippedLinear(cells.get("linear")):
    name, model = "linear_flipped", "LinearFlipped"

    def step_back(self, m, prev, state, cache, d):
        (dh,) = d
        return dh, dh, (-m.lam * dh,)  # m.lam * dh


MUTANTS = {"lru": (FlippedLRU, "h0"), "mingru": (FlippedMinGRU, "U"), "minlstm": (FlippedMinLSTM, "U"),
           "linear": (FlippedLinear, "h0")}


@pytest.mark.parametrize("cell", MODERN)
def test_check_passes_each_cell_and_fails_its_mutant(cell, monkeypatch):
    monkeypatch.setattr(registry, "_CELLS", dict(registry._CELLS))  # the mutant leaves with the test
    rng = np.random.default_rng(MODERN.index(cell) + 10)
    m = bptt.random_model(cell, 3, 2, 3, seed=0)
    x, y, h0 = rng.normal(size=(2, 6, 2)), rng.integers(0, 3, (2, 6)), rng.normal(size=(2, m.state_sizes[0]))
    report = bptt.check(m, x, y, h0=h0)
    assert report.passed, report
    mutant, wrong = MUTANTS[cell]
    cells.register(mutant)
    bad = bptt.Model(mutant.name, **m.params)
    # the reference runs the mutant's step_back step by step; the fast backend's path for a cell whose
    # step is linear in its state carries the error back by the cell's decay, so a mutant wrong only
    # in d_prev is the reference's to show (a wrong d_a reaches both)
    ref = dict(backend="reference")
    loss, _ = bptt.gradients(bad, x, y, h0=h0, **ref)
    assert loss == bptt.gradients(m, x, y, h0=h0, **ref)[0]  # the same forward pass: only the backward differs
    report = bptt.check(bad, x, y, h0=h0, **ref)
    assert not report.passed and not report[wrong].passed, report


@pytest.mark.frameworks
@pytest.mark.parametrize("cell", MODERN)
def test_the_frameworks_catch_each_mutant(cell, monkeypatch):
    """The cross-check has teeth: the mutant's gradients (same forward pass) disagree with PyTorch's
    and JAX's gradients of the true cell, where check says they are wrong."""
    need("torch")
    need("jax")
    monkeypatch.setattr(registry, "_CELLS", dict(registry._CELLS))
    mutant, wrong = MUTANTS[cell]
    cells.register(mutant)
    rng = np.random.default_rng(MODERN.index(cell) + 20)
    N, D, H, O, T = JAX_SIZES[0]
    m = bptt.random_model(cell, H, D, O, seed=rng)
    x, y, h0 = rng.integers(0, D, (N, T)), rng.integers(0, O, (N, T)), rng.normal(size=(N, m.state_sizes[0]))
    _, g = bptt.gradients(bptt.Model(mutant.name, **m.params), x, y, h0=h0, backend="reference")  # as above
    ours = g.h0 if wrong == "h0" else g.params[wrong]
    for name in ("torch", "jax"):
        _, theirs = fw.reference(name).gradients(m, x, y, h0=h0)
        assert fw.relative_error(ours, theirs[wrong])[1] > 1e-3, name
    assert fw.compare(m, x, y, h0=h0, frameworks=["torch", "jax"]).passed  # the true cell passes


@pytest.mark.parametrize("cell", MODERN)
@pytest.mark.parametrize("head", ["softmax", "mse"])
def test_rtrl_equals_bptt(cell, head):
    rng = np.random.default_rng(MODERN.index(cell))
    m = bptt.random_model(cell, 3, 2, 3, seed=rng, head=head)
    x = rng.normal(size=(2, 7, 2))
    y = rng.normal(size=(2, 7, 3)) if head == "mse" else rng.integers(-1, 3, (2, 7))
    h0 = rng.normal(size=(2, m.state_sizes[0]))
    for reduction in ("sum", "mean"):
        loss, g = bptt.gradients(m, x, y, h0=h0, reduction=reduction)
        loss_r, g_r = approx.rtrl(m, x, y, h0=h0, reduction=reduction)
        assert abs(loss_r - loss) <= 1e-12 * abs(loss)
        for k in [*g.params, "h0"]:
            ours, theirs = (g.h0, g_r.h0) if k == "h0" else (g.params[k], g_r.params[k])
            assert fw.relative_error(ours, theirs)[1] <= 1e-10, (k, fw.relative_error(ours, theirs))
