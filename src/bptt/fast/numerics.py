"""The Numba math every cell's kernels share, and the compiled kernels the runtime calls for every
cell (the softmax error, the gather of dU for token ids).

Conventions: `kernel` compiles a function that Python calls (nogil, so the runtime's two threads
run at once), `inline` one that Numba inlines into the kernels that call it; both with
error_model="numpy" (divisions are IEEE divisions, no zero check, no branch) and
fastmath={"contract"} (fused multiply-adds only: as accurate or more, and no sum is reordered).
The machine code is cached on disk (Numba's cache, NUMBA_CACHE_DIR); where no cache directory is
writable the kernels still compile, in each process, and this is said once (`uncached`).
Without the JIT (NUMBA_DISABLE_JIT=1) or without Numba every function here is plain Python with
the same arithmetic: the bit casts below have Python forms for that.

exp, tanh and the logistic function sigma: np.exp and math.tanh call the C library one value at a
time, which at H = 128 can cost more than a step's matrix product (docs/performance.md). Here
they are arithmetic the compiler turns into vector instructions (no calls, no branches: both
sides of a choice are computed and one selected):
  exp(y), y <= 0  2^k (1 + q), k = round(y / ln 2), q = exp(r) - 1 for r = y - k ln 2,
                  |r| <= ln(2)/2, by its Taylor polynomial to r^13 (the rest is below 1e-17); 2^k
                  from its bits ((k + 1023) << 52, a shift). float32: Cephes' expf polynomial.
  sigma(x)        1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|) (activations.py's form);
                  below x = -708 (float32: -87), where e leaves the normal numbers, e stays there.
  tanh(x)         -E / (2 + E), E = exp(-2|x|) - 1 = 2^k q + (2^k - 1) (no cancellation: q alone
                  for small |x|), and the sign of x; float32: Cephes' tanhf polynomial below 0.625.
`sig` and `th` compute in the arithmetic of their argument's type (a call: Numba does not inline
an inlined function's inlined callees cleanly); the inlined `tanh` and `tanh32` vectorise in a
loop, float32 values eight to an instruction. tests/test_kernels.py and tests/test_fast_gated.py
check them against NumPy in units in the last place.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

try:
    import numba
    # Numba's np.dot calls SciPy's BLAS: loaded now, so that threadpoolctl sees and controls it
    import scipy.linalg.cython_blas  # noqa: F401
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload
except ImportError:  # no Numba: the functions below run as Python, and the runtime uses NumPy's loops
    numba = None

JIT = numba is not None and not numba.config.DISABLE_JIT  # whether `kernel` gives machine code
if JIT:  # a first call that compiles says so while it waits (compiling.py), and compiles on two cores (ahead.py)
    from . import ahead
    from .compiling import install
    install()
    ahead.install()
OPTIONS = dict(error_model="numpy", fastmath={"contract"})
uncached = []  # the kernels compiled without a cache: the warning is given at the first


def _njit(fn, **extra):
    """numba.njit(fn) with OPTIONS, cached on disk where Numba finds a writable cache directory."""
    if numba is None:
        return fn
    try:
        return numba.njit(cache=True, **{**OPTIONS, **extra})(fn)
    except RuntimeError:  # Numba: "cannot cache function ...: no locator available"
        if not uncached:
            warnings.warn_explicit("bptt: no writable cache directory for the compiled kernels (set "
                                   "NUMBA_CACHE_DIR to one): each process compiles those it uses",
                                   RuntimeWarning, "bptt.fast", 0)
        uncached.append(fn.__name__)
        if JIT:
            ahead.uncached()
        return numba.njit(cache=False, **{**OPTIONS, **extra})(fn)


def kernel(fn):
    """A kernel Python calls: compiled, the GIL released while it runs (and, cold, perhaps compiled
    by another process: ahead.py)."""
    compiled = _njit(fn, nogil=True)
    return ahead.wrap(compiled) if JIT else compiled


def inline(fn):
    """A function inlined into the kernels that call it (by Numba, before typing)."""
    return _njit(fn, inline="always")


class PerCode:
    """A kernel for each value of a small integer code (an activation's, say), each compiled the
    first time a call needs it: kernels[code] is kernel(make(code)), make's function reading code
    as a constant of its closure. Numba then compiles only that code's branch, not every code's
    (a third of the time for the Elman cell's loops), and caches each by the code's value."""

    def __init__(self, make):
        self.make, self.made = make, {}

    def __getitem__(self, code):
        found = self.made.get(code)
        if found is None:
            found = self.made[code] = kernel(self.make(code))
        return found


if JIT:
    @intrinsic
    def bits(typingctx, x):
        """The bits of a float64 as an int64, or of a float32 as the low 32 bits of an int64."""
        width = 64 if x == types.float64 else 32

        def codegen(context, builder, signature, args):
            return builder.zext(builder.bitcast(args[0], ir.IntType(width)), ir.IntType(64)) if width == 32 \
                else builder.bitcast(args[0], ir.IntType(64))
        return types.int64(x), codegen

    @intrinsic
    def float64_from_bits(typingctx, b):
        """The float64 whose bits are the int64 b."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(types.int64), codegen

    @intrinsic
    def float32_from_bits(typingctx, b):
        """The float32 whose bits are the low 32 bits of the int64 b."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())
        return types.float32(types.int64), codegen
else:
    def bits(x):
        """The bits of a float64, or of a float32 (as the low 32 bits), as an int."""
        x = np.asarray(x)
        return int(x.view(np.int64) if x.dtype == np.float64 else x.view(np.uint32))

    def float64_from_bits(b):
        """The float64 whose bits are the low 64 bits of the int b."""
        return np.asarray(b & (1 << 64) - 1, dtype=np.uint64).view(np.float64)[()]

    def float32_from_bits(b):
        """The float32 whose bits are the low 32 bits of the int b."""
        return np.asarray(b & (1 << 32) - 1, dtype=np.uint32).view(np.float32)[()]


LOG2E = 1.4426950408889634
LN2_HI, LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6  # ln 2 = HI + LO, k * HI exact
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = (1.0 / math.factorial(i) for i in range(2, 14))
MAGIC = 2.0 ** 52 + 1023  # k + MAGIC holds k + 1023 in its low bits

# float32: every constant a float32, or NumPy's rules would carry the arithmetic to float64
F = np.float32
E0, E1, E2, E3, E4, E5 = (F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                         4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
T0, T1, T2, T3, T4 = (F(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                     1.33314422036e-1, -3.33332819422e-1))
LOG2E_F, LN2_HI_F, LN2_LO_F = F(1.44269504088896341), F(0.693359375), F(-2.12194440e-4)
ZERO, HALF, ONE, TWO, SWITCH = F(0.0), F(0.5), F(1.0), F(2.0), F(0.625)
MAGIC_F = F(2.0 ** 23 + 127)


@inline
def exp_parts(y):
    """(c, q) with exp(y) = c (1 + q), for float64 -708 <= y <= 0 (NaN gives NaN): c = 2^k,
    k = round(y / ln 2), and q = exp(r) - 1 for r = y - k ln 2."""
    k = np.floor(y * LOG2E + 0.5)
    r = (y - k * LN2_HI) - k * LN2_LO
    r2 = r * r
    r4 = r2 * r2
    p = ((C2 + C3 * r) + (C4 + C5 * r) * r2) + ((C6 + C7 * r) + (C8 + C9 * r) * r2) * r4 \
        + ((C10 + C11 * r) + (C12 + C13 * r) * r2) * (r4 * r4)
    return float64_from_bits(bits(k + MAGIC) << 52), r + r2 * p


@inline
def exp32(y):
    """exp(y) for float32 -87 <= y <= 0 in float32 arithmetic (NaN gives NaN)."""
    k = np.floor(y * LOG2E_F + HALF)
    r = (y - k * LN2_HI_F) - k * LN2_LO_F
    e = (((((E0 * r + E1) * r + E2) * r + E3) * r + E4) * r + E5) * (r * r) + r + ONE
    return e * float32_from_bits(bits(k + MAGIC_F) << 23)


@inline
def sigmoid(x):
    """sigma(x) in float64 arithmetic."""
    y = -abs(x)
    c, q = exp_parts(y if not y < -708.0 else -708.0)  # NaN stays NaN
    e = c * q + c  # exp(-|x|)
    return (1.0 if x >= 0 else e) / (1.0 + e)


@inline
def sigmoid32(x):
    """sigma(x) for a float32 x in float32 arithmetic."""
    y = -abs(x)
    e = exp32(y if not y < F(-87.0) else F(-87.0))
    return (ONE if x >= ZERO else e) / (ONE + e)


@inline
def tanh(x):
    """tanh(x) in float64 arithmetic."""
    y = -2.0 * abs(x)
    c, q = exp_parts(y if not y < -40.0 else -40.0)  # tanh(20) is 1 to the last bit
    E = c * q + (c - 1.0)  # exp(y) - 1, without cancellation: q alone when c = 1
    t = -E / (2.0 + E)
    return t if x >= 0 else -t  # NaN stays NaN


@inline
def tanh32(x):
    """tanh(x) for a float32 x in float32 arithmetic."""
    a = abs(x)
    w = x * x
    small = ((((T0 * w + T1) * w + T2) * w + T3) * w + T4) * w * x + x
    y = -TWO * a
    e = exp32(y if not y < F(-20.0) else F(-20.0))  # exp(-20) < 2^-28: tanh is 1 in float32
    big = (ONE - e) / (ONE + e)
    big = big if x >= ZERO else -big
    return big if a >= SWITCH else small


def sig(x):
    """sigma(x) in the arithmetic of x's type."""
    return sigmoid32(x) if isinstance(x, np.float32) else sigmoid(x)


def th(x):
    """tanh(x) in the arithmetic of x's type."""
    return tanh32(x) if isinstance(x, np.float32) else tanh(x)


if JIT:
    @overload(sig)
    def _sig_typed(x):
        if x == types.float32:
            def impl(x):
                return sigmoid32(x)
        else:
            def impl(x):
                return sigmoid(x)
        return impl

    @overload(th)
    def _th_typed(x):
        if x == types.float32:
            def impl(x):
                return tanh32(x)
        else:
            def impl(x):
                return tanh(x)
        return impl


try:  # Numba's own BLAS calls, which its np.dot makes (not a public interface: np.dot without them)
    from numba.np.linalg import call_xxdot, call_xxgemm, call_xxgemv, ensure_blas
except ImportError:
    ensure_blas = None

if JIT and ensure_blas is not None:
    @intrinsic
    def dot(typingctx, a, b, out):
        """out = a @ b for C-contiguous 2-D arrays of one float dtype, (N, K) @ (K, M) -> (N, M), by
        the BLAS calls np.dot(a, b, out) makes (SciPy's BLAS: a dot product, a matrix-vector
        product where N or M is 1, else gemm), without np.dot's argument checks: Numba compiles
        those as a function of their own for every signature, about 0.1 s each of a cold call's
        compile, and a kernel's arrays have the right shapes by construction."""
        if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" for t in (a, b, out)) \
                or not a.dtype == b.dtype == out.dtype or a.dtype not in (types.float32, types.float64):
            return None
        ensure_blas()

        def codegen(context, builder, signature, args):
            at, bt, ot = signature.args
            x, y, o = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args, args))
            xs, ys, os_ = (cgutils.unpack_tuple(builder, v.shape) for v in (x, y, o))
            m, k = xs
            n = ys[1]
            one = context.get_constant(types.intp, 1)
            with builder.if_else(builder.icmp_signed("==", n, one)) as (right_vector, right_matrix):
                with right_vector:
                    with builder.if_else(builder.icmp_signed("==", m, one)) as (vv, mv):
                        with vv:
                            call_xxdot(context, builder, False, at.dtype, k, x.data, y.data, o.data)
                        with mv:
                            call_xxgemv(context, builder, True, at, xs, x.data, y.data, o.data)
                with right_matrix:
                    with builder.if_else(builder.icmp_signed("==", m, one)) as (vm, mm):
                        with vm:
                            call_xxgemv(context, builder, False, bt, ys, y.data, x.data, o.data)
                        with mm:
                            call_xxgemm(context, builder, at, xs, x.data, bt, ys, y.data, ot, os_, o.data)
            return context.get_dummy_value()
        return types.void(a, b, out), codegen
else:
    @inline
    def dot(a, b, out):
        """out = a @ b: (N, K) @ (K, M) -> (N, M), by np.dot (through SciPy's BLAS where compiled)."""
        np.dot(a, b, out)


@kernel
def sigmoid_values(z, out):
    """out = sigma(z) for 1-D arrays of the same length, in the arithmetic of their type."""
    for i in range(z.shape[0]):
        out[i] = sig(z[i])


@kernel
def tanh_values(z, out):
    """out = tanh(z) for 1-D arrays of the same length, in the arithmetic of their type."""
    for i in range(z.shape[0]):
        out[i] = th(z[i])


@kernel
def scatter_rows(ids, rows, out):
    """out[ids[i]] += rows[i] for every i, in order. ids (M,), rows (M, G), out (D, G)."""
    for m in range(ids.shape[0]):
        o = out[ids[m]]
        r = rows[m]
        for i in range(r.shape[0]):
            o[i] += r[i]


@kernel
def softmax_error(Q, ids, scale, P):
    """The softmax cross-entropy of heads.error, row by row. Q (R, O) outputs, ids (R,)
    targets (-1 = unscored). Writes P = scale (o_r - onehot(y_r)), zero on unscored rows, and
    returns the loss -scale sum_r log o_r[y_r], with o_r = exp(q_r - m_r) / sum exp(q_r - m_r).
    The row's sum in four running sums, added pairwise at the end: a fixed order (the same bits
    every call) whose additions do not all wait on each other. Eight, with the maximum likewise,
    took 1.6 times as long to compile (0.47 s against 0.29 s, on a cold call's path) for 10% less
    time a call (at (R, O) = (3200, 64), 370 against 410 us)."""
    R, O = Q.shape
    loss = 0.0
    for r in range(R):
        p = P[r]
        if ids[r] < 0:
            p[:] = 0
            continue
        q = Q[r]
        m = q[0]
        for i in range(1, O):
            m = max(m, q[i])
        for i in range(O):  # exp(q_i - m) as sigmoid's, a loop that vectorises (0 below -708), then the sum
            d = q[i] - m
            c, e = exp_parts(d if not d < -708.0 else -708.0)
            p[i] = c * e + c if not d < -708.0 else 0.0
        s0 = s1 = s2 = s3 = 0.0
        n4 = O - O % 4
        for i in range(0, n4, 4):
            s0 += p[i]
            s1 += p[i + 1]
            s2 += p[i + 2]
            s3 += p[i + 3]
        for i in range(n4, O):
            s0 += p[i]
        total = (s0 + s1) + (s2 + s3)
        y = ids[r]
        loss += q[y] - m - math.log(total)
        for i in range(O):  # (o_i - [i = y]) scale: o_y - 1 is exactly 0 when o_y = 1 (O = 1)
            o = p[i] / total
            p[i] = ((o - 1.0) if i == y else o) * scale
    return -loss * scale


def _adagrad_step(p, g, mem, lr, eps, new_p, new_mem) -> bool:
    """new_mem = mem + g g, new_p = p - lr g / sqrt(new_mem + eps), element by element, in NumPy's
    order of operations and without fused multiply-adds (the bits of the NumPy expression); all
    (M,) float64. Returns whether every result is finite."""
    finite = True
    for i in range(p.shape[0]):
        gi = g[i]
        m = mem[i] + gi * gi
        q = p[i] - lr * gi / math.sqrt(m + eps)
        new_mem[i] = m
        new_p[i] = q
        finite &= math.isfinite(m) & math.isfinite(q)
    return finite


adagrad_step = _njit(_adagrad_step, nogil=True, fastmath=False)  # no "contract": NumPy's roundings
