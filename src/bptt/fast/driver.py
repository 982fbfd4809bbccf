"""The fast backend's entry points, one set for every cell: the reference engine's functions
(core.py: forward, backward, gradients, loss) with its arguments and its results to rounding.

Conventions are core.py's (time-major arrays, truncate=K the notebook's window, the loss summed
over time and batch); N batch, T time, H hidden, O output, G the columns of a step's input part.
The driver runs the blocks of steps (runtime.plan), the inputs' part, the outputs, the errors and
the weight gradients; a cell's module (elman.py, lstm.py, gru.py) registers an adapter under the
cell's name (register), and linear.py one for every cell whose step is linear in its state
(register_family), that gives its arrays, its steps and the gradients of the parameters that are
not the input's or the head's (W, bh, the cell's own):

    forward(model, xin, state0, mem, threaded, scan) -> an object with .trace (core.Trace, read
        once the steps of the block that needs it are done), .A (T, N, G) the inputs' part, which
        the steps turn into what they keep, .UT (D, G) and .bias (G,) or None for shared.project,
        and .steps(t0, t1), the forward steps t0 <= t < t1; scan: "sequential" or "parallel"
        (core.scan_method: the latter for a cell whose step is linear in its state only)
    backward(trace, dS, mem, threaded, forward) -> an object with .dA, .dR (T, N, G) the errors of
        the input parts and of the recurrent products, .steps(t0, t1), the backward steps t1-1
        down to t0, and .state0(), dE/d(initial state) once the steps reached t = 0
    truncated(trace, dS, K) -> (dA, dR, state0): the notebook's window
    weight_terms(trace, dA, dR, t0, t1, threaded) -> {"W": ..., and "bh" where the cell has it}
    step_work(model, N) -> the multiply-adds of a step's products (0 for a step without any)
    pipelines(step_work) -> whether a step of step_work multiply-adds may run in the pipeline
    splits (optional, False if absent) -> whether gradients() may run a large batch as parts of
        its sequences on two threads (SPLIT_MIN_WORK)
    backward's object may have .arrive(d), which sets the error arriving at the last state from
        beyond (a tuple like the state) before the steps; without it the state has one entry,
        whose error backprop_layer adds to dS[T-1] (the same sum the first step back makes)

The headless pair, one layer of a stack (fast/stacked.py) or any model without its head:
run_layer(model, xin, state0, scan) -> core.Trace, and backprop_layer(trace, dS, final) ->
LayerGrads (the weight gradients by the layer's names, dE/dx_t for the layer below, dE/d state0).

A state may be wider than H (an LRU's, 2H): the outputs read the state's first entry, out(H) wide.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import heads, validate
from ..core import Grads, finite, initial_state, nonfinite_message, reports_overflow, scan_method, truncation
from . import collector, runtime, shared

CELLS = {}  # cell name -> its adapter, filled by the cells' modules (register)
FAMILIES = []  # (test, adapter): the adapter of every other cell for which test(cell) holds
_found = []  # whether every module of this package has been imported


def register(name, adapter):
    """Make the fast backend compute the cell called name with adapter (see the module's notes)."""
    CELLS[name] = adapter


def register_family(test, adapter):
    """Make the fast backend compute with adapter every cell without one of its own for which
    test(cell) holds (a cell whose step is linear in its state, whatever its name)."""
    FAMILIES.append((test, adapter))


def _registered() -> dict:
    """CELLS, once every module of this package has been imported (each cell's registers it)."""
    if not _found:
        with collector.held():  # Numba's import among them
            for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
                importlib.import_module(f"{__package__}.{module.name}")
        _found.append(True)
    return CELLS


def adapter(model):
    """The adapter that computes for the model's cell, or None."""
    cell = getattr(model, "cell", None)
    found = _registered().get(getattr(cell, "name", None))
    if found is None and cell is not None:
        found = next((a for test, a in FAMILIES if test(cell)), None)
    if found is not None and not getattr(found, "accepts", lambda m: True)(model):
        return None  # a form of the cell its kernels do not compute (an Elman cell's second bias)
    return found


def supports(model) -> bool:
    """Whether this backend computes for the model's cell: a cell with kernels here, or one whose
    step is linear in its state (Cell.linear)."""
    return adapter(model) is not None


def wait_for_kernels():
    """Import Numba and every cell's module now; returns the numerics module where calls run
    compiled kernels, else None. Never needed for the numbers: a call compiles (or loads from
    Numba's cache) the kernels it needs when it first needs them, and waits for them."""
    _registered()
    return runtime.kernels()


def _setup(model, xin):
    """(adapter, plan) for a call on these inputs."""
    cell = adapter(model)
    T, N, work = xin.T, xin.N, cell.step_work(model, xin.N)
    # the products over all steps: the outputs', the errors' and dV (T N H' O), dU for dense
    # inputs (T N G D) and the recurrent weights' (T step_work)
    over_steps = max(T * N * model.params["V"].size, 0 if xin.ids is not None else T * N * runtime.width(model) * model.D,
                     T * work)
    return cell, runtime.plan(T, N, work, cell.pipelines(work), over_steps)


def forward(model, x, h0=None, *, scan="sequential"):
    """Run the network over x: a Trace (core.forward's).

    x: token ids (T,) / (N, T), or dense vectors (T, D) / (N, T, D). h0: (H,) / (N, H), zeros if
    None; for the LSTM h0 or the pair (h0, c0). scan: "sequential", or "parallel" for a cell whose
    step is linear in its state.
    """
    scan_method(model, scan)
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    cell, plan = _setup(model, xin)
    return _forward_blocks(cell, model, xin, state0, plan, runtime.Memory(model.dtype), scan=scan)[0]


def _forward_blocks(cell, model, xin, state0, plan, mem, then=None, scan="sequential"):
    """The forward pass a block of steps at a time (runtime.plan): (trace, futures, after,
    forward). After each block the helper computes after(t0, t1): its outputs q_t and then, if
    given, then(trace, t0, t1), whose results the futures hold, in time order (outputs only: all
    done on return); forward: the cell's forward object."""
    O, VT, c = model.O, runtime.prepared(model, runtime.head_transposed), model.params.get("c")
    F = cell.forward(model, xin, state0, mem, plan.threaded, scan)
    work = 0 if plan.threaded else cell.step_work(model, xin.N)

    def after(t0, t1):  # q_t = V s_t + c for t0 <= t < t1, then `then`: one task, claimed whole
        trace = F.trace
        runtime.matmul(trace.S[t0 + 1:t1 + 1].reshape(-1, trace.S.shape[-1]), VT, threaded=plan.pinned,
                       out=trace.Q[t0:t1].reshape(-1, O))  # a view: Q is contiguous
        if c is not None:
            trace.Q[t0:t1] += c
        return None if then is None else then(trace, t0, t1)

    blocks = plan.blocks
    if not plan.threaded:  # one block, in this thread: the same steps without the hand-overs
        with plan.section(), np.errstate(over="ignore", invalid="ignore"):
            shared.project(xin, F.UT, F.bias, F.A, 0, xin.T)
            with runtime.blas_for(work):
                F.steps(0, xin.T)
            return F.trace, [runtime.Inline().submit(after, 0, xin.T)], after, F
    done = []
    with plan.section(), np.errstate(over="ignore", invalid="ignore"):  # finite() names an overflow
        shared.project(xin, F.UT, F.bias, F.A, *blocks[0])
        ins = [plan.helper.submit(shared.project, xin, F.UT, F.bias, F.A, t0, t1) for t0, t1 in blocks[1:]]
        try:
            for i, (t0, t1) in enumerate(blocks):
                if i > 0:
                    runtime.claim(ins, i - 1, shared.project, xin, F.UT, F.bias, F.A, t0, t1)
                with runtime.blas_for(work):
                    F.steps(t0, t1)
                done.append(plan.helper.submit(after, t0, t1))
            if then is None:  # the blocks the helper has not started, this thread does, from the end
                for i in reversed(range(len(blocks))):
                    runtime.claim(done, i, after, *blocks[i])
        finally:
            runtime.results(ins + ([] if then is not None else done))
    return F.trace, done, after, F


def _weight_terms(cell, trace, dQ, dA, dR, t0, t1, threaded=False) -> dict:
    """The steps t0 <= t < t1's share of every weight gradient, by name (model.params)."""
    g = shared.weight_terms(trace, dQ, dA, t0, t1, threaded)
    g.update(cell.weight_terms(trace, dA, dR, t0, t1, threaded))
    return {k: g[k] for k in trace.model.params if k in g}  # a layer (dQ None): no V, c


def _backward_full(cell, trace, plan, errors, losses, block, mem, forward=None):
    """Full BPTT, the loop from t = T-1 down to 0 a block at a time, each block once its errors
    are there (losses: the futures of block(t0, t1), which fills them and returns the block's
    loss, in time order); the helper sums each finished block's share of the weight gradients,
    and at the end the loop's thread takes the shares not yet started."""
    model, xin = trace.model, trace.inputs
    B = cell.backward(trace, errors.dS, mem, plan.threaded, forward)
    work = 0 if plan.threaded else cell.step_work(model, xin.N)
    if not plan.threaded:  # one block, in this thread
        loss = losses[0].result()
        with runtime.blas_for(work):
            B.steps(0, xin.T)
        grads = _weight_terms(cell, trace, errors.dQ, B.dA, B.dR, 0, xin.T, plan.pinned)
        state0 = tuple(np.array(s if xin.batched else s[0]) for s in B.state0())
        return finite(trace, loss, Grads(grads, state0), errors.dQ)
    terms = [None] * len(plan.blocks)
    try:
        for i in reversed(range(len(plan.blocks))):
            t0, t1 = plan.blocks[i]
            runtime.claim(losses, i, block, t0, t1)
            with runtime.blas_for(work):
                B.steps(t0, t1)
            terms[i] = plan.helper.submit(_weight_terms, cell, trace, errors.dQ, B.dA, B.dR, t0, t1, plan.pinned)
        for i in range(len(terms)):  # the helper works from the end; this thread from the start
            runtime.claim(terms, i, _weight_terms, cell, trace, errors.dQ, B.dA, B.dR, *plan.blocks[i], plan.pinned)
    finally:
        loss = sum(runtime.results(losses))
        terms = runtime.results([f for f in terms if f is not None])
    grads = terms[0] if len(terms) == 1 else {k: sum(t[k] for t in terms) for k in terms[0]}
    state0 = tuple(np.array(s if xin.batched else s[0]) for s in B.state0())  # copies: B's arrays may be kept
    return finite(trace, loss, Grads(grads, state0), errors.dQ)


def _backward_truncated(cell, trace, tg, K, reduction):
    """The notebook's truncated BPTT, K < T: each output's error flows back K steps only."""
    model, xin = trace.model, trace.inputs
    loss, dQ = shared.output_error(trace, tg, reduction)
    dS = runtime.matmul(dQ.reshape(-1, model.O), model.V).reshape(xin.T, xin.N, model.V.shape[1])
    dA, dR, d = cell.truncated(trace, dS, K)
    grads = Grads(_weight_terms(cell, trace, dQ, dA, dR, 0, xin.T), tuple(s if xin.batched else s[0] for s in d))
    return finite(trace, loss, grads, dQ)


@reports_overflow
def backward(trace, y, *, truncate=None, reduction="sum"):
    """BPTT from a forward trace: (loss, Grads). See core.py's notes for truncate=K."""
    model, xin = trace.model, trace.inputs
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    cell, plan = _setup(model, xin)
    if K is not None and K < xin.T:
        return _backward_truncated(cell, trace, tg, K, reduction)
    mem = runtime.Memory.reused(model, xin)  # the errors and the loop's arrays: none is returned
    errors = shared.Errors(model, xin, tg, scale, plan.pinned, mem)
    with plan.section():
        losses = [None] * len(plan.blocks)
        for i in reversed(range(len(plan.blocks))):  # from the end: the loop starts there
            losses[i] = plan.helper.submit(errors.block, trace, *plan.blocks[i])
        return _backward_full(cell, trace, plan, errors, losses, lambda t0, t1: errors.block(trace, t0, t1), mem)


@reports_overflow
def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum", scan="sequential"):
    """Loss and gradients: (loss, grads) with grads.params by name (U, W, V, b, bh, c), .h0 and,
    for a cell with a memory, .c0. x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); y: ids
    (-1 = no loss) or one-hot rows, or real values for the mse head. truncate=K: the notebook's
    rule (output t reaches steps t-K..t). scan: "sequential", or "parallel" for a cell whose step is
    linear in its state (full BPTT's errors by the same scan)."""
    scan_method(model, scan)
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    tg = validate.targets(model, y, xin)
    K = truncation(truncate)
    scale = heads.scale(tg, reduction)
    cell, plan = _setup(model, xin)
    mem = runtime.Memory.reused(model, xin)  # the trace and the errors: gradients() returns none of them
    if K is None or K >= xin.T:
        _expect(cell, model, xin, plan)
        if _split(cell, model, xin, plan):
            return _gradients_split(cell, model, xin, state0, tg, scale, scan)
    with _halves_where_due(cell, model, xin, plan) as plan:
        if K is not None and K < xin.T:
            trace = _forward_blocks(cell, model, xin, state0, plan, mem, scan=scan)[0]
            return _backward_truncated(cell, trace, tg, K, reduction)
        return _gradients_full(cell, model, xin, state0, tg, scale, plan, mem, scan)


@contextlib.contextmanager
def _halves_where_due(cell, model, xin, plan):
    """The plan of a call, within runtime.halves() and BLAS on one thread where _halved finds it
    due (too few sequences to split: the large products in halves), else as it is."""
    if not _halved(cell, model, xin, plan):
        yield plan
        return
    with runtime.one_blas_thread(), runtime.halves():
        yield runtime.Plan(plan.blocks, plan.helper, set_by_caller=True)


_expected = set()  # the kinds of call named to ahead.py already


def _expect(cell, model, xin, plan):
    """Name the kernels a full gradients() call runs, in order, to ahead.py (which compiles them on
    two cores when they are not in Numba's cache): the cell's forward loops (its adapter's kernels,
    where it has that), the softmax errors, its backward loops, and dU's gather for ids."""
    kernels = getattr(cell, "kernels", None)
    if kernels is None:
        return
    key = (cell, model.dtype, getattr(model, "activation", None), model.head, xin.ids is None, xin.N, model.H,
           plan.threaded)
    if key in _expected:  # named once: a microsecond a later call
        return
    _expected.add(key)
    numerics = runtime.kernels()
    if numerics is None:
        return
    from . import ahead
    forward, backward = kernels(model, xin.N, plan.threaded)
    rows, ids = ahead.array(model.dtype, 2), ahead.array(np.int64, 1)
    errors = [] if model.head == "mse" else [(numerics.softmax_error, (rows, ids, ahead.FLOAT, rows))]
    gather = [] if xin.ids is None else [(numerics.scatter_rows, (ids, rows, rows))]
    ahead.expect(forward + errors + backward + gather)


def _gradients_full(cell, model, xin, state0, tg, scale, plan, mem, scan):
    """Full BPTT's loss and gradients, the forward pass and the backward one a block at a time."""
    errors = shared.Errors(model, xin, tg, scale, plan.pinned, mem)
    with plan.section():  # the errors of each block are computed while the forward loop goes on
        trace, losses, block, F = _forward_blocks(cell, model, xin, state0, plan, mem, then=errors.block, scan=scan)
        return _backward_full(cell, trace, plan, errors, losses, block, mem, F)


# A batch with at least this much work, T N (G + O), runs as parts of its sequences on this thread
# and the helper, for an adapter that asks for it (splits): each part is the whole computation on
# one BLAS thread, and the loss and gradients are the parts' sums (their h0's side by side).
SPLIT_MIN_WORK = 1 << 17


def _split(cell, model, xin, plan) -> bool:
    """Whether a call of gradients() runs as parts of its batch on two threads (_gradients_split)."""
    return getattr(cell, "splits", False) and xin.N >= 2 and not plan.threaded \
        and xin.T * xin.N * (runtime.width(model) + model.O) >= SPLIT_MIN_WORK and runtime.blas_threads() >= 2


def _halved(cell, model, xin, plan) -> bool:
    """Whether a call of gradients() that is not split runs its products over steps in halves on two
    threads (runtime.halves), each on one BLAS thread: where one of them (the outputs' or the
    recurrent weight's gradient) is one that BLAS would run on all its threads. BLAS's own threads
    wait for each other at every product, and on a machine whose cores are busy each wait can take
    milliseconds; the halves' second thread is used only where a core is free (runtime.helper), and
    the arithmetic is the same either way."""
    widest = max(model.params["V"].size, runtime.width(model) * model.H)
    return not plan.threaded and not plan.one_blas and runtime.blas_threads() >= 2 \
        and xin.T * xin.N * widest >= runtime.ONE_THREAD_MAX_PRODUCT


def _part(xin, state0, tg, n0, n1):
    """The inputs, initial state and targets of sequences n0 <= n < n1."""
    part = validate.Inputs(None if xin.ids is None else xin.ids[n0:n1], None if xin.X is None else xin.X[n0:n1],
                           n1 - n0, xin.T, True)
    targets = validate.Targets(None if tg.ids is None else tg.ids[n0:n1],
                               None if tg.values is None else tg.values[n0:n1], tg.mask[n0:n1])
    return part, tuple(s[n0:n1] for s in state0), targets


def _gradients_split(cell, model, xin, state0, tg, scale, scan):
    """gradients() as parts of the batch (_parts), taken one at a time by this thread and the
    helper (runtime.each: a helper slow to start takes fewer, another process can have its core).
    The loss and gradients are the parts' sums in the parts' order, whichever thread computed each.
    A part whose numbers are not finite sends the call the whole way, for the error's message to
    name the step and the sequence."""
    parts = _parts(cell, model, xin)
    done = [None] * len(parts)

    @reports_overflow  # NumPy's error settings are per thread: the helper's as this one's
    def part(i):
        sub, s0, targets = _part(xin, state0, tg, *parts[i])
        plan = runtime.Plan([(0, xin.T)], runtime.Inline(), set_by_caller=True)
        done[i] = _gradients_full(cell, model, sub, s0, targets, scale, plan, runtime.Memory.reused(model, sub), scan)

    try:
        runtime.each(len(parts), lambda: part)
    except FloatingPointError:
        plan = runtime.Plan([(0, xin.T)], runtime.Inline())
        return _gradients_full(cell, model, xin, state0, tg, scale, plan, runtime.Memory.reused(model, xin), scan)
    loss, grads = done[0][0], dict(done[0][1].params)
    for d in done[1:]:
        loss += d[0]
        grads = {k: grads[k] + d[1].params[k] for k in grads}
    state0 = tuple(np.concatenate(parts_of) for parts_of in zip(*(d[1].state0 for d in done)))
    return loss, Grads(grads, state0)


# A step's product of at most this many multiply-adds (N H G) runs in OpenBLAS's kernels for
# small matrices, which skip the packing of the operands: measured here, an LSTM's gradient at
# (T, H) = (100, 128), float32, one thread, costs 0.55-0.63 ms a sequence for 4 to 15 sequences
# and 0.72-0.86 ms from 16 on, where a step's product passes 10^6 multiply-adds
SPLIT_STEP_WORK = 10 ** 6


def _parts(cell, model, xin):
    """The parts of a split batch, [(n0, n1)]: an even number of about equal parts (two threads),
    as few as keep each part's step products within SPLIT_STEP_WORK multiply-adds."""
    per = cell.step_work(model, 1)
    most = max(1, SPLIT_STEP_WORK // per) if per else xin.N
    k = min(xin.N, 2 * -(-xin.N // (2 * most)))
    edges = [xin.N * i // k for i in range(k + 1)]
    return list(zip(edges, edges[1:]))


@reports_overflow
def loss(model, x, y, *, h0=None, reduction="sum") -> float:
    """The loss E alone (a forward pass)."""
    model.check_finite()
    xin = validate.inputs(model, x)
    state0 = initial_state(model, h0, xin)
    tg = validate.targets(model, y, xin)
    heads.check_reduction(reduction)
    cell, plan = _setup(model, xin)
    trace = _forward_blocks(cell, model, xin, state0, plan, runtime.Memory.reused(model, xin))[0]  # not returned
    value = shared.output_error(trace, tg, reduction)[0]
    if not np.isfinite(value):
        raise FloatingPointError(nonfinite_message(trace))
    return value


# --- one layer, no head (a stack's) ------------------------------------------------------------
class LayerGrads(NamedTuple):
    """What backprop_layer returns: params, the weight gradients by the layer's names (U, W, b, ...,
    no V or c); dX (T, N, D) dE/dx_t, the error the layer below receives at its outputs (None for
    ids, or where not asked for); state0, dE/d(initial state), (N, H') arrays like the state; dA
    (T, N, G), the errors of the steps' input parts."""
    params: dict
    dX: np.ndarray | None
    state0: tuple
    dA: np.ndarray


def _layer(model, T, N, D, pinned=False):
    """(adapter, plan) for one layer's loop in this thread: one block, BLAS on one thread for the
    call where every product over the steps is small (runtime.plan); pinned: BLAS's threads as the
    caller set them, unchanged."""
    cell = adapter(model)
    if cell is None:
        raise ValueError(f"the fast backend has no kernels for this {model.cell.name} layer: run it on the "
                         "reference engine (core.run, core.backprop)")
    if pinned:
        return cell, runtime.Plan([(0, T)], runtime.Inline(), set_by_caller=True)
    work = cell.step_work(model, N)
    return cell, runtime.plan(T, N, work, False, T * (N * runtime.width(model) * D + work))


def _blas_for(cell, model, N, plan):
    """blas_for the steps' products, or nothing where the caller set BLAS's threads."""
    return contextlib.nullcontext() if plan.set_by_caller else runtime.blas_for(cell.step_work(model, N))


def run_layer(model, xin, state0, scan="sequential", *, pinned=False):
    """One layer's forward pass without its head, as core.run's: a core.Trace with Q None.

    xin: validate.Inputs, ids (N, T) or dense X (N, T, D) (a view of a time-major (T, N, D) array,
    np.swapaxes(Y, 0, 1), spares the copies of the input products); state0: the state before step
    0, a tuple like the cell's of (N, H') arrays (copied). scan as forward()'s. pinned: the caller
    has set BLAS to one thread (runtime.one_blas_thread) and the call changes no BLAS setting, so
    that two layers may run at once on two threads."""
    cell, plan = _layer(model, xin.T, xin.N, model.D, pinned)
    F = cell.forward(model, xin, state0, runtime.Memory(model.dtype), False, scan)  # new arrays: the trace keeps them
    with plan.section(), np.errstate(over="ignore", invalid="ignore"):
        shared.project(xin, F.UT, F.bias, F.A, 0, xin.T)
        with _blas_for(cell, model, xin.N, plan):
            F.steps(0, xin.T)
    return dataclasses.replace(F.trace, Q=None)


def backprop_layer(trace, dS, final=None, *, inputs=True, pinned=False) -> LayerGrads:
    """One layer's full BPTT from the errors on its outputs: LayerGrads.

    trace: run_layer's (or core.run's) trace of the layer; dS (T, N, H'): dE/dh_t put on each
    step's output from outside the layer (the layer above and the head), read only; final: the
    error at the last state from beyond (a tuple like the state), or None. inputs: whether to
    compute dX = dA U (U the input parameters stacked, (G, D)) for dense inputs. The weight
    gradients are the driver's (shared.weight_terms and the cell's weight_terms). pinned as
    run_layer's."""
    model, xin = trace.model, trace.inputs
    cell, plan = _layer(model, xin.T, xin.N, model.D, pinned)
    dS = np.array(dS, dtype=model.dtype, order="C")  # the loops add to it in place
    B = cell.backward(trace, dS, runtime.Memory(model.dtype), False, None)
    if final is not None:
        final = tuple(np.broadcast_to(f, (xin.N, s.shape[-1])) for f, s in zip(final, trace.cell_states))
        if hasattr(B, "arrive"):
            B.arrive(final)
        elif len(final) == 1:
            dS[-1] += final[0]
        else:
            raise ValueError(f"the fast {model.cell.name} cell takes no error at its final state's later entries")
    with plan.section(), np.errstate(over="ignore", invalid="ignore"):
        with _blas_for(cell, model, xin.N, plan):
            B.steps(0, xin.T)
        grads = _weight_terms(cell, trace, None, B.dA, B.dR, 0, xin.T, plan.pinned)
        dX = None
        if inputs and xin.ids is None:
            G, U = B.dA.shape[-1], runtime.prepared(model, _input_matrix)
            dX = runtime.matmul(B.dA.reshape(-1, G), U, threaded=plan.pinned).reshape(xin.T, xin.N, model.D)
    state0 = tuple(np.array(s) for s in B.state0())  # copies: B's arrays may be kept
    return LayerGrads(grads, dX, state0, B.dA)


def _input_matrix(model):
    """The input parameters stacked by rows (Cell.stacked), (G, D), contiguous."""
    return np.ascontiguousarray(model.cell.stacked(model, "input"))
