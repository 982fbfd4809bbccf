"""The fast engine for the Elman cell: the reference engine's functions (core.py) and results,
computed with buffers written in place, compiled loops (kernels.py), BLAS thread control and a
helper thread. Every result equals core.py's to rounding (tests/test_fast.py).

The conventions are core.py's (time-major arrays, truncate=K the notebook's window, the loss
summed over time and batch). docs/performance.md says why each piece is there and what it gains.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import numpy as np

from .. import activations, heads, validate
from ..core import Grads, Trace, finite, nonfinite_message, reports_overflow, truncation


def _project(model, xin, Z, t0, t1):
    """Z[t] = U x_t + b for t0 <= t < t1: a gather of U's columns for ids, else one product."""
    if xin.ids is not None:
        # mode="clip" writes straight into out (the ids are checked already: nothing is clipped)
        np.take(model.U.T, xin.ids.T[t0:t1], axis=0, out=Z[t0:t1], mode="clip")
    else:
        X = np.swapaxes(xin.X[:, t0:t1], 0, 1).reshape(-1, model.D)  # time-major rows (a copy)
        Z[t0:t1] = (X @ model.U.T).reshape(t1 - t0, xin.N, model.H)
    if model.b is not None:
        Z[t0:t1] += model.b


def forward(model, x, h0=None) -> Trace:
    """Run the RNN over x; returns a Trace with .states (T+1, H) / (N, T+1, H), .z, .q, .o, .final.

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if None.
    """
    model.check_finite()
    xin = validate.inputs(model, x)
    h = validate.initial_state(model, h0, xin)
    with _call():
        return _forward(model, xin, h)


ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "identity": 3}  # kernels.py's activation codes
COMPILED_MAX_WORK = 1 << 17  # N * H * H multiply-adds a step up to which a compiled loop does the product
_compiled = {"enabled": os.environ.get("BPTT_COMPILED", "1") != "0",
             "kernels": None,  # kernels.py once calls use it; False where Numba cannot be imported
             "loaded": None,   # what the loading thread found, until a call takes it up
             "loader": None, "blas": None}
_loading = threading.Lock()


def set_compiled(enabled: bool) -> bool:
    """Use the compiled inner loops (Numba) where they are faster; returns the previous setting.

    Off, or without Numba, everything runs in NumPy's loops; the two agree to rounding. On, the
    kernels are loaded now (this call waits for them). The environment variable BPTT_COMPILED=0
    turns them off at start-up.
    """
    previous = _compiled["enabled"]
    _compiled["enabled"] = bool(enabled)
    _compiled["blas"] = None  # the BLAS libraries to control may change with it
    if enabled:
        wait_for_kernels()
    return previous


def _kernels():
    """kernels.py when the calls use it, else None (NumPy's loops); see _call."""
    return (_compiled["enabled"] and _compiled["kernels"]) or None


@contextlib.contextmanager
def _call():
    """Around each public call. The first call of a process runs on NumPy's loops and, when it
    is done, starts loading the compiled kernels (Numba's import and the cached machine code) on a
    background thread; every later call waits for them and uses them. So the first gradient does
    not wait for Numba, and which loops a call runs depends only on whether it is the process's
    first, never on timing: a script gives the same numbers on every run."""
    first = _compiled["enabled"] and _compiled["kernels"] is None and _compiled["loader"] is None
    if not first and _compiled["enabled"] and _compiled["kernels"] is None:
        wait_for_kernels()
    try:
        yield
    finally:
        if first:
            _start_loading()


def _start_loading():
    with _loading:
        if _compiled["loader"] is None:
            _compiled["loader"] = threading.Thread(target=_load, name="bptt-kernels", daemon=True)
            _compiled["loader"].start()


def _load():
    try:
        from . import gated_kernels, kernels
        kernels.warm()
        gated_kernels.warm()
    except ImportError:  # no Numba on this platform: NumPy's loops throughout
        kernels = False
    _compiled["loaded"] = kernels


def wait_for_kernels():
    """Load the compiled kernels (if enabled and not yet loaded), wait for them, and use them
    from now on; returns the kernels module, or None without them."""
    if _compiled["enabled"] and _compiled["kernels"] is None:
        _start_loading()
        _compiled["loader"].join()
        _compiled["kernels"] = _compiled["loaded"]
        _compiled["blas"] = None  # SciPy's BLAS, which the kernels call, is controlled from now on too
    return _kernels()


def _step_kernel(kind, N, H, threaded=False):
    """The compiled time loop ("forward" or "backward") for this size, or None (NumPy's loop):
    loops of axpys up to COMPILED_MAX_WORK multiply-adds per step; a BLAS call per step for one
    sequence (a matrix-vector product, which BLAS does well at every size; its matrix products of
    a few rows are slow) and above COMPILED_MAX_WORK. Outside a pipeline (threaded), NumPy's loop
    from ONE_THREAD_MAX_PRODUCT, where BLAS gets both threads for each step's product."""
    kernels = _kernels()
    if kernels is None:
        return None
    w = N * H * H
    if not threaded and w >= ONE_THREAD_MAX_PRODUCT:
        return None
    return getattr(kernels, f"{kind}_steps_blas" if N == 1 or w > COMPILED_MAX_WORK else f"{kind}_steps")


COMPILED_MAX_SOFTMAX = 1 << 14  # T*N*O up to which the compiled softmax error wins (NumPy's exp is SIMD)
ONE_THREAD_MAX_PRODUCT = 1 << 22  # multiply-adds per product below which BLAS gets one thread


def _blas():
    """threadpoolctl's controller of the BLAS libraries, or None without it."""
    if _compiled["blas"] is None:
        _kernels()  # first SciPy's BLAS, which the compiled loops call, so that it is controlled too
        try:
            from threadpoolctl import ThreadpoolController
            blas = ThreadpoolController().select(user_api="blas")
            _compiled["blas"] = blas if blas.lib_controllers else False
        except ImportError:
            _compiled["blas"] = False
        if _compiled["blas"]:
            with _compiled["blas"].limit(limits=1):
                _page_in_blas()
    return _compiled["blas"] or None


def _page_in_blas(n=256):
    """One n x n product in float32 and float64 through NumPy's BLAS and, where the compiled
    loops call it, SciPy's: a few milliseconds, once per process.

    Why: OpenBLAS maps its packing buffer untouched, and a product of a few rows writes only its
    first pages, yet runs slower on one thread until a larger product has written more of them
    (docs/performance.md). The per-step products are such products, thousands of them.
    """
    libraries = [np.matmul]
    if _kernels() is not None:
        from scipy.linalg import blas
        libraries.append(lambda a, b: blas.get_blas_funcs("gemm", (a,))(1.0, a, b))
    for dtype in (np.float32, np.float64):
        a = np.zeros((n, n), dtype=dtype)
        for product in libraries:
            product(a, a)


def _one_blas_thread(work):
    """A context in which BLAS runs on one thread when a product has fewer than
    ONE_THREAD_MAX_PRODUCT multiply-adds (threadpoolctl), else a no-op.

    Small products are not worth splitting, yet OpenBLAS splits them over its threads and waits
    for all of them at every call, at every time step in the loops; on a busy machine the wait
    can cost many times the product (docs/performance.md).
    """
    if work < 1 << 18 or work >= ONE_THREAD_MAX_PRODUCT:  # below 2^18 OpenBLAS uses one thread itself
        return contextlib.nullcontext()
    blas = _blas()
    return blas.limit(limits=1) if blas else contextlib.nullcontext()


def one_blas_thread():
    """A context in which every BLAS library runs on one thread (threadpoolctl), for a loop of small
    products that BLAS's threads would only slow; a no-op without threadpoolctl."""
    blas = _blas()
    return blas.limit(limits=1) if blas else contextlib.nullcontext()


def _matmul(A, B, tn=False, threaded=False, out=None):
    """A @ B, or A^T @ B when tn, for the products over many steps (into out if given): small ones
    on one BLAS thread, large ones on all (see _one_blas_thread); inside a pipeline (threaded), as
    they come, on the one BLAS thread the pipeline has set."""
    context = contextlib.nullcontext() if threaded else _one_blas_thread(A.shape[0] * A.shape[1] * B.shape[1])
    with context:
        return np.matmul(A.T if tn else A, B, out=out)


# On two or more cores: the time loop is a chain, one step after another, but much of the
# rest is not. The outputs and errors of steps t0..t1 need only their states, and the weight
# gradients of those steps only their deltas. So for large problems the loops run over blocks
# of steps, and a second thread follows: in the forward pass it computes the outputs of each
# block the loop has finished (and, within gradients, its errors dE/dq_t and dE_t/ds_t); for
# backward(trace, y) it computes the errors block by block from the end, where the loop starts;
# then each finished block's share of dW, dV, dU, db, dc. The loop's thread has little besides its
# chain, and takes over any block the helper has not started when it needs it (_claim), so a
# helper slowed by other work on the machine costs no more than doing without it. NumPy and the
# compiled loops release the GIL while they compute, so both threads run at once.
# BLAS runs on one thread throughout: its own threads would wait for each other at every small
# per-step product, and after each call they spin a while (OpenBLAS), taking the core the
# second thread needs. Without threadpoolctl, with BLAS set to one thread, or
# where _plan finds it does not pay, everything runs in one thread, as one block.
PIPELINE_BLOCKS = 16  # blocks of steps in a pipeline
PIPELINE_MIN_BLOCK_WORK = 1 << 23  # N * H * H multiply-adds times the steps of a block, at least
_helper = {"executor": None}


class _Inline:
    """Runs what is submitted at once, in the caller's thread: the pipeline's one-thread stand-in.
    Like an executor's future, what it returns raises the call's exception at result()."""

    class _Done:
        def __init__(self, fn, args):
            self.value, self.error = None, None
            try:
                self.value = fn(*args)
            except Exception as e:  # noqa: BLE001 - raised again by result()
                self.error = e

        def result(self):
            if self.error is not None:
                raise self.error
            return self.value

        def cancel(self):
            return False  # done already

    def submit(self, fn, *args):
        return self._Done(fn, args)


@dataclass(frozen=True)
class _Plan:
    blocks: list  # [(t0, t1)]: the blocks of steps, in time order
    helper: object  # where the off-chain work goes: a one-thread executor, or _Inline()

    @property
    def threaded(self):
        return not isinstance(self.helper, _Inline)

    def section(self):
        """The context the pipeline runs in: BLAS on one thread when threaded."""
        return _blas().limit(limits=1) if self.threaded else contextlib.nullcontext()


def _blas_threads():
    """How many threads BLAS may use (threadpoolctl), 1 without threadpoolctl."""
    blas = _blas()
    return 1 if blas is None else min(lib.get_num_threads() for lib in blas.lib_controllers)


def _plan(T, N, H):
    """One block in this thread, or PIPELINE_BLOCKS blocks with a helper thread where it pays:
    with a batch (for one sequence the work off the chain is small), and blocks of at least
    PIPELINE_MIN_BLOCK_WORK multiply-adds in the loop (handing a block over costs tens of
    microseconds; docs/performance.md)."""
    if N < 2 or T < 2 * PIPELINE_BLOCKS \
            or T * N * H * H < PIPELINE_BLOCKS * PIPELINE_MIN_BLOCK_WORK or _blas_threads() < 2:
        return _Plan([(0, T)], _Inline())
    if _helper["executor"] is None:
        from concurrent.futures import ThreadPoolExecutor
        _helper["executor"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bptt")
    edges = [T * i // PIPELINE_BLOCKS for i in range(PIPELINE_BLOCKS + 1)]
    return _Plan(list(zip(edges, edges[1:])), _helper["executor"])


def _results(futures):
    """The futures' results in order; if one raised, raises after all have finished."""
    done = []
    error = None
    for f in futures:
        try:
            done.append(f.result())
        except BaseException as e:  # noqa: BLE001 - re-raised below, once every block has stopped
            error = error or e
    if error is not None:
        raise error
    return done


# f(z, out) for the activations that have such a form, so the NumPy loop allocates nothing
_F_INTO = {
    "tanh": np.tanh,
    "relu": lambda z, out: np.maximum(z, 0, out=out),
    "identity": lambda z, out: np.copyto(out, z),
}


def _forward(model, xin, h0):
    """The forward pass: a Trace."""
    return _forward_blocks(model, xin, h0, _plan(xin.T, xin.N, model.H))[0]


def _forward_blocks(model, xin, h0, plan, then=None):
    """The forward pass a block of steps at a time (see _plan): (trace, futures, after). After each
    block the helper computes after(t0, t1): its outputs q_t and then, if given, then(trace, t0, t1),
    whose results the futures hold, in time order (outputs only: all done on return)."""
    T, N, H = xin.T, xin.N, model.H
    f = activations.get(model.activation).f
    f_into = _F_INTO.get(model.activation)
    Z = np.empty((T, N, H), dtype=model.dtype)  # U x_t + b, then z_t in place
    S = np.empty((T + 1, N, H), dtype=model.dtype)
    S[0] = h0
    Q = np.empty((T, N, model.O), dtype=model.dtype)
    trace = Trace(model, xin, (S,), (Z,), Q)  # filled in below
    WT = model.W.T
    compiled = _step_kernel("forward", N, H, plan.threaded)
    if compiled is not None:
        WT = np.ascontiguousarray(WT)  # row j is column j of W, as the compiled loops read it
    act = ACT_CODES[model.activation]
    if act == 0 and model.dtype == np.float32:
        act = 4  # tanh in float32 arithmetic: twice as many values to a vector instruction

    def steps(t0, t1):  # z_t and s_t for t0 <= t < t1
        if compiled is not None:  # the loop below, compiled
            compiled(Z, S, WT, act, t0, t1)
            return
        for t in range(t0, t1):
            s_prev, s, z = S[t], S[t + 1], Z[t]  # (N, H) views
            np.matmul(s_prev, WT, out=s)  # W s_{t-1}, parked in s_t's row until f(z_t) overwrites it
            z += s  # z_t = U x_t + b + W s_{t-1}
            if f_into is not None:
                f_into(z, s)  # s_t = f(z_t)
            else:
                s[...] = f(z)

    def outputs(t0, t1):  # q_t = V s_t + c for t0 <= t < t1, one product for all of them
        _matmul(S[t0 + 1:t1 + 1].reshape(-1, H), model.V.T, threaded=plan.threaded,
                out=Q[t0:t1].reshape(-1, model.O))  # a view: Q is contiguous
        if model.c is not None:
            Q[t0:t1] += model.c

    def after(t0, t1):  # what follows a block's steps, one task so that it is claimed whole
        outputs(t0, t1)
        return None if then is None else then(trace, t0, t1)

    blocks = plan.blocks
    done = []
    with plan.section():
        _project(model, xin, Z, *blocks[0])
        ins = [plan.helper.submit(_project, model, xin, Z, t0, t1) for t0, t1 in blocks[1:]]
        try:
            for i, (t0, t1) in enumerate(blocks):
                if i > 0:
                    _claim(ins, i - 1, _project, model, xin, Z, t0, t1)
                with _one_blas_thread(0 if plan.threaded else N * H * H):
                    steps(t0, t1)
                done.append(plan.helper.submit(after, t0, t1))
            if then is None:  # the blocks the helper has not started, this thread does, from the end
                for i in reversed(range(len(blocks))):
                    _claim(done, i, after, *blocks[i])
        finally:
            _results(ins + ([] if then is not None else done))
    return trace, done, after


def _claim(futures, i, fn, *args):
    """The result of futures[i], a task on the helper; if the helper has not started it yet, this
    thread runs fn(*args) instead (the helper may be slow to come: another process, or another
    library's threads, can have its core)."""
    if futures[i].cancel():
        futures[i] = _Inline().submit(fn, *args)
    return futures[i].result()


def output_error(trace: Trace, tg: validate.Targets, reduction="sum"):
    """The loss E and dE/dq_t for every step: (loss, dQ (T, N, O)). Unscored steps get zero."""
    dQ = np.empty_like(trace.Q)
    return _errors(trace, tg, heads.scale(tg, reduction), dQ, 0, trace.inputs.T), dQ


def _errors(trace, tg, scale, dQ, t0, t1) -> float:
    """Writes dE/dq_t into dQ[t0:t1] and returns the loss of the steps t0 <= t < t1."""
    Q = trace.Q[t0:t1]
    if trace.model.head == "mse":
        err = (Q - np.swapaxes(tg.values, 0, 1)[t0:t1]) * tg.mask.T[t0:t1, :, None]  # (t1-t0, N, O)
        np.multiply(err, 2 * scale, out=dQ[t0:t1])
        return float((err * err).sum() * scale)
    O = trace.model.O
    rows = Q.reshape(-1, O)  # ((t1-t0)*N, O)
    ids = np.ascontiguousarray(tg.ids.T[t0:t1]).reshape(-1)  # -1 where unscored
    P = dQ[t0:t1].reshape(-1, O)  # a view: dQ is contiguous
    kernels = _kernels() if rows.size <= COMPILED_MAX_SOFTMAX else None
    if kernels is not None:  # _softmax_error, compiled: a dozen NumPy calls become one
        return float(kernels.softmax_error(rows, ids, scale, P))
    return _softmax_error(rows, ids, scale, P)


def _softmax_error(Q, ids, scale, P):
    """Writes P = scale (o_r - onehot(y_r)) for the rows r of Q (zero where ids[r] = -1) and
    returns the loss -scale sum_r log o_r[y_r], with o_r = exp(q_r - m_r) / sum exp(q_r - m_r),
    m_r = max q_r (stable). The targets are picked by flat index: take_along_axis and
    put_along_axis cost tens of microseconds of Python each, the whole budget at small sizes."""
    m = Q.max(axis=1, keepdims=True)  # (R, 1)
    np.subtract(Q, m, out=P)
    np.exp(P, out=P)
    total = P.sum(axis=1, keepdims=True)  # (R, 1)
    scored = ids >= 0
    every = bool(scored.all())
    r = np.arange(Q.shape[0]) if every else np.flatnonzero(scored)  # rows with a loss
    y = ids[r]
    loss = -float((Q[r, y] - m[r, 0] - np.log(total[r, 0])).sum() * scale)  # -log o_t[y_t]
    P /= total  # o_t
    P[r, y] -= 1  # o_t - onehot(y_t)
    if not every:
        P[~scored] = 0
    if scale != 1.0:
        P *= scale
    return loss


@reports_overflow
def backward(trace: Trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads). See the module's notes for truncate=K."""
    model, xin = trace.model, trace.inputs
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    with _call():
        if K is not None and K < xin.T:
            loss, dQ = output_error(trace, tg, reduction)
            return finite(trace, loss, _backward_truncated(trace, dQ, K), dQ)
        plan = _plan(xin.T, xin.N, model.H)
        errors = _Errors(model, xin, tg, scale, plan)
        with plan.section():
            losses = [None] * len(plan.blocks)
            for i in reversed(range(len(plan.blocks))):  # from the end: the loop starts there
                losses[i] = plan.helper.submit(errors.block, trace, *plan.blocks[i])
            return _backward_full(trace, plan, errors, losses, lambda t0, t1: errors.block(trace, t0, t1))


def _df(model, s, out):
    """f'(z_t) from s_t (any block of steps), into out."""
    if model.activation == "tanh":  # 1 - s^2 in two passes, no allocation
        np.multiply(s, s, out=out)
        np.subtract(1.0, out, out=out)
    else:
        out[...] = activations.get(model.activation).df_from_output(s)


class _Errors:
    """What the backward loop starts from, a block of steps at a time: dE/dq_t (dQ), dE_t/ds_t
    from output t itself (dS) and f'(z_t) (dZ, which the loop turns into delta_t = dE/dz_t)."""

    def __init__(self, model, xin, tg, scale, plan):
        self.tg, self.scale, self.threaded = tg, scale, plan.threaded
        # the compiled loop computes f'(z_t) itself; NumPy's loop finds it in dZ
        self.compiled = _step_kernel("backward", xin.N, model.H, plan.threaded)
        shape = (xin.T, xin.N)
        self.dQ = np.empty(shape + (model.O,), dtype=model.dtype)
        self.dS = np.empty(shape + (model.H,), dtype=model.dtype)
        self.dZ = np.empty(shape + (model.H,), dtype=model.dtype)

    def block(self, trace, t0, t1) -> float:
        """Fills steps t0 <= t < t1 and returns their loss."""
        model = trace.model
        loss = _errors(trace, self.tg, self.scale, self.dQ, t0, t1)
        _matmul(self.dQ[t0:t1].reshape(-1, model.O), model.V, threaded=self.threaded,
                out=self.dS[t0:t1].reshape(-1, model.H))  # a view: dS is contiguous
        if self.compiled is None:
            _df(model, trace.S[t0 + 1:t1 + 1], self.dZ[t0:t1])
        return loss


def _backward_full(trace: Trace, plan, errors: _Errors, losses, block):
    """Full BPTT, the loop from t = T-1 down to 0 a block at a time, once the block's errors are
    there (losses: the futures of block(t0, t1), which fills them and returns the block's loss, in
    time order); the helper sums each finished block's share of the weight gradients, and at the
    end the loop's thread takes the shares not yet started."""
    model, xin = trace.model, trace.inputs
    N, H = xin.N, model.H
    dS, dZ, W = errors.dS, errors.dZ, model.W
    dh = np.zeros((N, H), dtype=model.dtype)  # dE/ds_t from the steps after t; at the end, t = -1
    compiled = errors.compiled

    def steps(t0, t1):  # t = t1-1 down to t0
        if compiled is not None:  # the loop below, compiled, with f'(z_t) from s_t on the way
            compiled(dS, dZ, trace.S, W, dh, ACT_CODES[model.activation], t0, t1)
            return
        for t in range(t1 - 1, t0 - 1, -1):
            ds, dz = dS[t], dZ[t]  # (N, H) views
            ds += dh  # dE/ds_t: from output t, and from step t + 1 through W
            dz *= ds  # delta_t = dE/ds_t * f'(z_t)
            np.matmul(dz, W, out=dh)  # dE/ds_{t-1} from step t

    terms = [None] * len(plan.blocks)
    try:
        for i in reversed(range(len(plan.blocks))):
            t0, t1 = plan.blocks[i]
            _claim(losses, i, block, t0, t1)
            with _one_blas_thread(0 if plan.threaded else N * H * H):
                steps(t0, t1)
            terms[i] = plan.helper.submit(_weight_terms, trace, errors.dQ, dZ, t0, t1, plan.threaded)
        for i in range(len(terms)):  # the helper works from the end; this thread from the start
            _claim(terms, i, _weight_terms, trace, errors.dQ, dZ, *plan.blocks[i], plan.threaded)
    finally:
        loss = sum(_results(losses))
        terms = _results([f for f in terms if f is not None])
    U, W_, V, b, c = terms[0] if len(terms) == 1 else \
        (None if terms[0][i] is None else sum(t[i] for t in terms) for i in range(5))
    return finite(trace, loss, _grads(model, U, W_, V, b, c, dh if xin.batched else dh[0]), errors.dQ)


def _backward_truncated(trace: Trace, dQ, K):
    """The notebook's truncated BPTT, K < T: each output's error flows back K steps only."""
    model, xin = trace.model, trace.inputs
    S, T, N, H = trace.S, xin.T, xin.N, model.H
    dS = _matmul(dQ.reshape(T * N, -1), model.V).reshape(T, N, H)  # dE_t/ds_t from output t itself
    df = np.empty((T, N, H), dtype=model.dtype)
    _df(model, S[1:], df)
    g, dh0 = _window(dS, df, model.W, K)
    dZ = np.multiply(g, df, out=g)  # delta_t
    U, W_, V, b, c = _weight_terms(trace, dQ, dZ, 0, T)
    return _grads(model, U, W_, V, b, c, dh0 if xin.batched else dh0[0])


def _window(dS, df, W, K):
    """(g, dh0): g[k] = sum over t = k..min(k+K, T-1) of dE_t/ds_k, (T, N, H), and the same sum at
    s_{-1} (the outputs t <= K-1), (N, H). Two exact ways, each the cheaper where it is chosen:
    by lag, O(T N K H^2), for short windows; by blocks, O(T N H^3) whatever K, for long ones."""
    T, N, H = dS.shape
    if 2 * K < 3 * H:
        with _one_blas_thread(T * N * H * H):  # the policy of _matmul, set once for the loop
            return _window_by_lag(dS, df, W, K)
    with _one_blas_thread((T + 1) // (K + 1) * N * H ** 3):
        return _window_by_blocks(dS, df, W, K)


def _window_by_lag(dS, df, W, K):
    """The window lag by lag, every step at once: B_l[p] = dE_{p-1+l}/ds_{p-1} at the positions
    p = 0..T-l (p = 0 is s_{-1}), B_l[p] = (B_{l-1}[p+1] f'(z_p)) W, one (T N, H) x (H, H) product
    per lag; g sums l = 0..K."""
    T, N, H = dS.shape
    g = np.zeros((T + 1, N, H), dtype=dS.dtype)  # g[p]: at s_{p-1}
    g[1:] = dS
    B = g
    for lag in range(1, min(K, T) + 1):
        B = B[1:] * df[:T - lag + 1]  # (T-lag+1, N, H): dE/dz at steps 0..T-lag
        B = (B.reshape(-1, H) @ W).reshape(-1, N, H)  # at s_{-1}..s_{T-1-lag}
        g[:T - lag + 1] += B
    return g[1:], g[0]


def _window_by_blocks(dS, df, W, K):
    """The window by blocks of L = K+1 positions (p = 0 is s_{-1}, p = k+1 is s_k), all blocks at once.

    Write J_p = diag(f'(z_{p-1})) W, the step from s_{p-1} back to s_{p-2} (a row vector e at p
    reaches p-1 as e J_p). The window of position p = cL+i (block c) ends in block c+1, which starts
    at s = (c+1)L: its own block's outputs reach p by a backward recurrence that restarts at every
    block's end; block c+1's outputs q = s+j, j < i, reach it as u_i Suf_i, where
    u_i = sum_{j<i} e_{s+j} Pre_j (carried to s), Pre_j = J_{s+j} ... J_{s+1} and
    Suf_i = J_s ... J_{p+1}. Pre and Suf are (H, H) per block and sequence, updated by one
    (blocks N H, H) x (H, H) product a step. Nothing is subtracted: every term is the window's own."""
    T, N, H = dS.shape
    L = K + 1
    nb = -(-(T + 1) // L)  # blocks of positions 0..T
    e = np.zeros((nb * L, N, H), dtype=dS.dtype)
    F = np.zeros_like(e)
    e[1:T + 1], F[1:T + 1] = dS, df  # e_p = dE_{p-1}/ds_{p-1} from output p-1; F_p: J_p's diagonal
    e, F = e.reshape(nb, L, N, H), F.reshape(nb, L, N, H)
    g = np.empty_like(e)
    g[:, L - 1] = e[:, L - 1]
    for i in range(L - 2, -1, -1):  # within each block, from its end
        g[:, i] = e[:, i] + ((g[:, i + 1] * F[:, i + 1]).reshape(-1, H) @ W).reshape(nb, N, H)
    m = nb - 1  # block pairs (c, c+1)
    if m:
        eye = np.broadcast_to(np.eye(H, dtype=dS.dtype), (m, N, H, H))
        u = np.zeros((m, L, N, H), dtype=dS.dtype)  # u[c, i]: block c+1's outputs j < i, at its start
        PreT, WT = eye.copy(), np.ascontiguousarray(W.T)
        for j in range(L - 1):
            if j:
                PreT = (PreT.reshape(-1, H) @ WT).reshape(m, N, H, H)  # Pre_j^T = Pre_{j-1}^T W^T diag(F)
                PreT *= F[1:, j][:, :, None, :]
            u[:, j + 1] = u[:, j] + (PreT @ e[1:, j][..., None])[..., 0]
        Suf = eye.copy()
        for i in range(L - 1, -1, -1):
            Suf *= (F[1:, 0] if i == L - 1 else F[:-1, i + 1])[:, :, None, :]  # Suf_i = Suf_{i+1} J_{p+1}
            Suf = (Suf.reshape(-1, H) @ W).reshape(m, N, H, H)
            g[:-1, i] += (u[:, i][:, :, None, :] @ Suf)[:, :, 0]
    g = g.reshape(-1, N, H)
    return g[1:T + 1], g[0]


def _grads(model, U, W, V, b, c, h0):
    return Grads({k: v for k, v in zip("UWVbc", (U, W, V, b, c)) if v is not None}, (h0,))


def _scatter_rows(ids, rows, D):
    """sum of rows[i] over the i with ids[i] = d, for d = 0..D-1: (D, H).

    np.add.at does this one element at a time; sorting the ids once and summing each run of equal
    ids with np.add.reduceat is several times faster and independent of D.
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((D, rows.shape[1]), dtype=rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def _weight_terms(trace, dQ, dZ, t0, t1, threaded=False):
    """The steps t0 <= t < t1's share of (dU, dW, dV, db, dc), one matrix product per parameter
    for all of them instead of one per step; db and dc are None where the model has no bias."""
    model, xin = trace.model, trace.inputs
    H, O = model.H, model.O
    dZ2 = dZ[t0:t1].reshape(-1, H)  # delta_t, a row per step and sequence
    dQ2 = dQ[t0:t1].reshape(-1, O)
    dW = _matmul(dZ2, trace.S[t0:t1].reshape(-1, H), tn=True, threaded=threaded)  # sum_t delta_t s_{t-1}^T
    dV = _matmul(dQ2, trace.S[t0 + 1:t1 + 1].reshape(-1, H), tn=True, threaded=threaded)  # sum_t dq_t s_t^T
    if xin.ids is not None:
        kernels = _kernels()
        ids = xin.ids.T[t0:t1].reshape(-1)  # x_t for each row of dZ2
        if kernels is not None:
            dUT = np.zeros((model.D, H), dtype=model.dtype)
            kernels.scatter_rows(ids, dZ2, dUT)  # np.add.at, compiled
        else:
            dUT = _scatter_rows(ids, dZ2, model.D)
        dU = dUT.T  # column d sums delta_t over the steps with x_t = d
    else:
        X2 = np.swapaxes(xin.X, 0, 1)[t0:t1].reshape(-1, model.D)
        dU = _matmul(dZ2, X2, tn=True, threaded=threaded)
    db = dZ2.sum(axis=0) if model.b is not None else None
    dc = dQ2.sum(axis=0) if model.c is not None else None
    return dU, dW, dV, db, dc


@reports_overflow
def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """Loss and gradients: (loss, grads) with grads.U, .W, .V, .b, .c (None without biases), .h0.

    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids (-1 = no loss) or one-hot rows, or
    real values for the mse head. truncate=K: the notebook's rule (output t reaches steps t-K..t).
    """
    model.check_finite()
    xin = validate.inputs(model, x)
    h = validate.initial_state(model, h0, xin)
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    with _call():
        if K is not None and K < xin.T:
            trace = _forward(model, xin, h)
            loss, dQ = output_error(trace, tg, reduction)
            return finite(trace, loss, _backward_truncated(trace, dQ, K), dQ)
        plan = _plan(xin.T, xin.N, model.H)
        errors = _Errors(model, xin, tg, scale, plan)
        with plan.section():  # the errors of each block are computed while the forward loop goes on
            trace, losses, block = _forward_blocks(model, xin, h, plan, then=errors.block)
            return _backward_full(trace, plan, errors, losses, block)


@reports_overflow
def loss(model, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (a forward pass)."""
    trace = forward(model, x, h0)
    value = output_error(trace, validate.targets(model, y, trace.inputs), reduction)[0]
    if not np.isfinite(value):
        raise FloatingPointError(nonfinite_message(trace))
    return value
