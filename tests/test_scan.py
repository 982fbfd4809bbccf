"""The associative scan (bptt.scan) against the step loop: forward states and gradients to 1e-12."""
import numpy as np
import pytest

import bptt
from bptt import cells, scan

LINEAR = [n for n in cells.names() if cells.get(n).linear()]


def test_the_linear_cells_are_the_new_ones():
    assert {"lru", "mingru", "minlstm", "linear"} <= set(LINEAR)
    assert not {"rnn", "lstm", "gru"} & set(LINEAR)


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 64, 1000])
@pytest.mark.parametrize("complex_", [False, True])
def test_prefixes_equal_the_loop(T, complex_):
    """h_t = a_t h_{t-1} + b_t by the odd-even scan equals the loop written out here, and the
    backward errors g_t = e_t + conj(a_{t+1}) g_{t+1} equal their loop."""
    rng = np.random.default_rng(T)
    a = rng.uniform(0.3, 1.0, (T, 2, 3))
    b = rng.normal(size=(T, 2, 3))
    if complex_:
        a = a * np.exp(1j * rng.uniform(0, 6, a.shape))
        b = b + 1j * rng.normal(size=b.shape)
    h0 = rng.normal(size=(2, 3))
    want, h = [], h0
    for t in range(T):
        h = a[t] * h + b[t]
        want.append(h)
    got = scan.linear(a, b, h0, "parallel")
    np.testing.assert_allclose(got, np.array(want), rtol=1e-13, atol=1e-13)
    g_want, g = [None] * T, np.zeros_like(b[0])
    for t in range(T - 1, -1, -1):
        g = b[t] + (np.conj(a[t + 1]) * g if t + 1 < T else 0)
        g_want[t] = g
    g_got, g0 = scan.backward(a, b, "parallel")
    np.testing.assert_allclose(g_got, np.array(g_want), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g0, np.conj(a[0]) * g_want[0], rtol=1e-13, atol=1e-13)


def _close(got, want, tol=1e-12):
    assert np.max(np.abs(got - want)) <= tol * max(1e-300, np.max(np.abs(want)))


@pytest.mark.parametrize("cell", LINEAR)
@pytest.mark.parametrize("T", [1, 7, 100, 100_000])
def test_the_scan_equals_the_loop(cell, T):
    """States, loss and every gradient (h0 included) by scan="parallel" equal the step loop's to
    1e-12 (relative to each array's largest entry), up to T = 100,000, on the reference backend."""
    rng = np.random.default_rng(T)
    N = 2 if T > 1000 else 3
    m = bptt.random_model(cell, 4, 3, 2, seed=T, head="mse")
    x, y = rng.normal(size=(N, T, 3)), rng.normal(size=(N, T, 2))
    h0 = rng.normal(size=(N,) + m.state_sizes)
    ref = dict(backend="reference")
    _close(bptt.forward(m, x, h0, scan="parallel", **ref).states, bptt.forward(m, x, h0, **ref).states)
    l1, g1 = bptt.gradients(m, x, y, h0=h0, **ref)
    l2, g2 = bptt.gradients(m, x, y, h0=h0, scan="parallel", **ref)
    assert abs(l2 - l1) <= 1e-12 * abs(l1)
    for k in g1.params:
        _close(g2.params[k], g1.params[k])
    _close(g2.h0, g1.h0)


@pytest.mark.parametrize("cell", LINEAR)
def test_the_scan_takes_ids_masks_and_a_window(cell):
    """Token ids, targets masked with -1, reduction="mean" and a truncation window (which the step
    loop computes after a scanned forward pass) give the loop's numbers."""
    rng = np.random.default_rng(5)
    m = bptt.random_model(cell, 3, 4, 4, seed=2)
    x, y = rng.integers(0, 4, (2, 30)), rng.integers(-1, 4, (2, 30))
    for kw in ({}, {"truncate": 4}, {"reduction": "mean"}):
        l1, g1 = bptt.gradients(m, x, y, backend="reference", **kw)
        l2, g2 = bptt.gradients(m, x, y, backend="reference", scan="parallel", **kw)
        assert abs(l2 - l1) <= 1e-12 * abs(l1)
        for k in g1.params:
            _close(g2.params[k], g1.params[k])


def test_scan_is_refused_where_the_step_is_not_linear_and_misspelt():
    m = bptt.random_model("rnn", 2, 2, 2, seed=0)
    with pytest.raises(ValueError, match="linear in its state .*lru.*rnn cell's is not"):
        bptt.gradients(m, [0, 1], [1, 0], scan="parallel")
    with pytest.raises(ValueError, match="scan must be one of sequential, parallel, got 'fast'"):
        bptt.gradients(bptt.random_model("lru", 2, 2, 2, seed=0), [0, 1], [1, 0], scan="fast")
    with pytest.raises(ValueError, match="scan must be one of"):
        bptt.forward(m, [0, 1], scan=None)
