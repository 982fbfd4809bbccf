"""The contract every registered cell keeps, checked on each of them (the built-in cells, their
variants such as the reset-before GRU, and a cell defined outside the package):

- step_back is the vector-Jacobian product of step: <d, step(a + e da, s + e ds)> by central
  differences equals <d_a, da> + <d_prev, ds> (and d_r is the error of the recurrent product);
- jacobian is d state_t / d state_{t-1}, against differences of step;
- the fast backend equals the reference engine where it has the cell;
- every installed framework that has the cell gives the same loss and gradients;
- flow's terms add up to the gradient of every parameter, and its table's diagonal is the error
  each output puts on its own state.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import cells, core, fast, frameworks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_cell.py"
if "diagonal" not in cells.names():
    spec = importlib.util.spec_from_file_location("custom_cell", EXAMPLE)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
VARIANTS = [v for v in cells.variants() if v in ("diagonal",) or cells.resolve(v)[0].__module__.startswith("bptt.")]


def _model(cell, seed=0, H=4, D=3, O=3):
    """A random model with every optional parameter (bias=True where the cell's init takes it)."""
    bias = {"bias": True} if "bias" in cells.resolve(cell)[0].options() else {}
    return bptt.random_model(cell, H, D, O, seed=seed, **bias)


def _point(model, rng, N=2):
    """A step's inputs at a random point: a (N, G), the state before it (tuple of (N, S), S each
    entry's width)."""
    a = rng.normal(size=(N, model.cell.width(model)))
    prev = tuple(rng.normal(scale=0.5, size=(N, S)) for S in model.state_sizes)
    return a, prev


@pytest.mark.parametrize("cell", VARIANTS)
def test_step_back_is_the_vector_jacobian_product_of_step(cell):
    rng = np.random.default_rng(1)
    m = _model(cell)
    a, prev = _point(m, rng)
    state, cache = m.cell.step(m, a, prev)
    d = tuple(rng.normal(size=s.shape) for s in state)
    d_a, _, d_prev = m.cell.step_back(m, prev, state, cache, d)
    da, ds = rng.normal(size=a.shape), tuple(rng.normal(size=p.shape) for p in prev)

    def f(e):
        out, _ = m.cell.step(m, a + e * da, tuple(p + e * q for p, q in zip(prev, ds)))
        return sum(float((g * o).sum()) for g, o in zip(d, out))

    h = 1e-5
    numeric = (f(h) - f(-h)) / (2 * h)
    analytic = float((d_a * da).sum()) + sum(float((g * q).sum()) for g, q in zip(d_prev, ds))
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic))


@pytest.mark.parametrize("cell", VARIANTS)
def test_jacobian_is_the_state_derivative_of_step(cell):
    rng = np.random.default_rng(2)
    m = _model(cell)
    a, prev = _point(m, rng, N=1)
    state, cache = m.cell.step(m, a, prev)
    J = m.cell.jacobian(m, prev, state, cache)[0]  # (S, S)
    flat = np.concatenate(prev, axis=-1)[0]
    h, ends = 1e-6, np.cumsum(m.state_sizes)[:-1]
    numeric = np.empty_like(J)
    for j in range(flat.size):
        cols = []
        for e in (h, -h):
            p = flat.copy()
            p[j] += e
            out, _ = m.cell.step(m, a, tuple(part[None] for part in np.split(p, ends)))
            cols.append(np.concatenate(out, axis=-1)[0])
        numeric[:, j] = (cols[0] - cols[1]) / (2 * h)
    np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fast_backend_equals_the_reference(cell, dtype):
    m = _model(cell, seed=3, H=6, D=4, O=5).astype(dtype)
    if not fast.supports(m):
        assert bptt.backend.engine(m) is core  # a cell without kernels runs on the reference
        return
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 4, (3, 9)), rng.integers(0, 5, (3, 9))
    tol = 1e-11 if dtype == np.float64 else 2e-4
    for truncate in (None, 3):
        lf, gf = bptt.gradients(m, x, y, truncate=truncate, backend="fast")
        lr, gr = bptt.gradients(m, x, y, truncate=truncate, backend="reference")
        assert abs(lf - lr) <= tol * abs(lr)
        for k in gr.params:
            np.testing.assert_allclose(gf.params[k], gr.params[k], rtol=tol, atol=tol * 1e-2, err_msg=k)
        for a, b in zip(gf.state0, gr.state0):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


@pytest.mark.frameworks
@pytest.mark.parametrize("cell", VARIANTS)
def test_every_framework_that_has_the_cell_agrees(cell):
    m = _model(cell, seed=5)
    has = [n for n in frameworks.available() if m.cell.name in frameworks.reference(n).CELLS]
    if not has:
        assert m.cell.name not in frameworks.reference("torch").CELLS  # no framework has it: nothing to compare
        with pytest.raises(ValueError, match=f"no installed framework has a reference for the {m.cell.name} cell"):
            frameworks.compare(m, [0, 1, 2], [1, 2, 0])
        return
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 3, (2, 6)), rng.integers(0, 3, (2, 6))
    result = frameworks.compare(m, x, y, frameworks=has)
    assert result.passed, str(result)


@pytest.mark.parametrize("cell", VARIANTS)
def test_flow_terms_add_up_to_the_gradient(cell):
    rng = np.random.default_rng(7)
    m = _model(cell, seed=8)
    T = 6
    x, y = rng.integers(0, 3, T), rng.integers(0, 3, T)
    fl = bptt.flow(m, x, y)
    _, g = bptt.gradients(m, x, y)
    for name in m.cell.params:
        if name not in m.params:
            continue
        total = sum(fl.terms(name, t).sum(axis=0) for t in range(T))
        np.testing.assert_allclose(total, g.params[name], rtol=1e-9, atol=1e-13, err_msg=name)
    own = np.linalg.norm(fl.dQ @ m.V, axis=1)  # what output t puts on its own state
    np.testing.assert_allclose(np.diagonal(fl.dE_ds), own, rtol=1e-12)


def test_the_registry_refuses_a_declaration_it_cannot_run():
    class NoStep(cells.Cell):
        name, model = "nostep", "NoStep"
        params = {"U": cells.Param(("H", "D"), role="input")}

    with pytest.raises(ValueError, match="must define step and step_back"):
        cells.register(NoStep)
    with pytest.raises(TypeError, match="subclass of bptt.cells.Cell"):
        cells.register(object)
    with pytest.raises(ValueError, match="registered already"):
        cells.register(type("Other", (cells.get("lstm"),), {}))  # the name lstm, another class
    assert "nostep" not in cells.names()


def test_names_and_aliases():
    assert {"rnn", "lstm", "gru"} <= set(cells.names())
    assert cells.resolve("elman") == (cells.get("rnn"), {})
    assert cells.resolve("gru-before") == (cells.get("gru"), {"reset_after": False})
    assert cells.canonical("elman") == "rnn" and cells.canonical("gru-before") == "gru-before"
    with pytest.raises(ValueError, match="unknown cell 'gru_before': expected one of rnn"):
        cells.resolve("gru_before")
