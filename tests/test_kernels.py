"""The compiled tanh and exp (fast/numerics.py) against NumPy, value by value, in units in the last place.

np.tanh and np.exp are the C library's, correct to within an ulp; the compiled ones are their own
arithmetic (exp by a polynomial after a reduction by powers of 2), so they are checked here over a
million values at each of five scales, across the switches of the reduction, and at the edges.
"""
import numpy as np
import pytest
from conftest import need


@pytest.fixture(scope="module")
def kernels():
    need("numba")
    from bptt.fast import numerics
    return numerics


def ulps(a, ref):
    return np.abs(a - ref) / np.spacing(np.abs(ref).astype(ref.dtype))


@pytest.mark.parametrize("scale", [1e-8, 0.1, 0.6, 2.0, 15.0])
def test_tanh_within_three_ulps_of_numpy(kernels, scale):
    z = np.random.default_rng(int(scale * 1e8) % 2**32).standard_normal((1000, 1000)) * scale
    out = np.empty_like(z)
    kernels.tanh_values(z.ravel(), out.ravel())
    assert ulps(out, np.tanh(z)).max() <= 3


def test_tanh_at_the_edges(kernels):
    # both sides of each switch of m = round(2|x| / ln 2), and the edges of the range
    switch = (np.arange(1, 60) - 0.5)[:, None] * np.log(2) / 2 + np.arange(-50, 50) * 2.0 ** -45
    edges = [0.0, 5e-324, 1e-300, 2.0 ** -26, 18.0, 18.7, 19.1, 20.0, 40.0, 1e300, np.inf]
    z = np.concatenate([switch.ravel(), -switch.ravel(), edges, np.negative(edges)])[None, :]
    out = np.empty_like(z)
    kernels.tanh_values(z.ravel(), out.ravel())
    ref = np.tanh(z)
    assert ulps(out, ref).max() <= 3
    assert np.all(np.abs(out) <= 1)


def test_tanh_nan_stays_nan_and_in_place_works(kernels):
    z = np.array([[np.nan, -np.nan, 0.3, -3.0]])
    kernels.tanh_values(z.ravel(), z.ravel())
    assert np.isnan(z[0, :2]).all()
    np.testing.assert_array_max_ulp(z[0, 2:], np.tanh([0.3, -3.0]), maxulp=3)


def test_softmax_error_equals_numpy(kernels):
    # the compiled softmax error against NumPy's, row by row, a row far below its maximum included
    rng = np.random.default_rng(5)
    Q = rng.standard_normal((2000, 50)) * 30
    Q[0, 1] = -1e300  # far below the row's maximum: probability 0, as np.exp gives
    ids = rng.integers(0, 50, 2000)
    P = np.empty_like(Q)
    loss = kernels.softmax_error(Q, ids, 1.0, P)
    e = np.exp(Q - Q.max(axis=1, keepdims=True))
    o = e / e.sum(axis=1, keepdims=True)
    ref = o.copy()
    ref[np.arange(2000), ids] -= 1
    np.testing.assert_allclose(P, ref, rtol=1e-14, atol=1e-15)  # o - 1 for o near 1: absolute
    assert P[0, 1] == 0.0
    assert loss == pytest.approx(-np.log(o[np.arange(2000), ids]).sum(), rel=1e-13)


@pytest.mark.parametrize("scale", [1e-4, 0.3, 1.0, 4.0, 30.0])
def test_tanh32_within_two_float32_units(kernels, scale):
    z = (np.random.default_rng(int(scale * 1e4)).standard_normal((500, 1000)) * scale).astype(np.float32)
    out = np.empty_like(z)
    kernels.tanh_values(z.ravel(), out.ravel())
    exact = np.tanh(z.astype(np.float64))
    assert out.dtype == np.float32
    assert np.all(np.abs(out - exact) <= 2 * np.spacing(np.abs(exact).astype(np.float32)))


def test_tanh32_edges(kernels):
    z = np.array([[0.0, 1e-40, 0.625, -0.625, 9.0, 20.0, 1e30, np.inf, -np.inf, np.nan]], dtype=np.float32)
    out = np.empty_like(z)
    kernels.tanh_values(z.ravel(), out.ravel())
    exact = np.tanh(z.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(exact))
    ok = ~np.isnan(exact)
    assert np.all(np.abs(out[ok] - exact[ok]) <= 2 * np.spacing(np.abs(exact[ok]).astype(np.float32)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 7, 1), (5, 7, 1), (1, 7, 6), (5, 7, 6), (33, 128, 512)])
def test_dot_is_numpys_product_in_every_shape(kernels, dtype, m, k, n):
    # the kernels' BLAS product: a dot product, a matrix-vector product either way, a matrix product
    import numba
    rng = np.random.default_rng([m, k, n])
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    b.flags.writeable = False  # the kernels pass the weights read-only
    out = np.full((m, n), np.nan, dtype=dtype)
    numba.njit(lambda a, b, out: kernels.dot(a, b, out))(a, b, out)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, want, rtol=1e-5 if dtype == np.float32 else 1e-13,
                               atol=(1e-5 if dtype == np.float32 else 1e-13) * np.sqrt(k))
