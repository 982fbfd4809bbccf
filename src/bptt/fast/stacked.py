"""A bptt.Stack on the fast backend: bptt.stack's forward, backward, gradients and loss, with its
arguments and its results to rounding, for a stack every layer of which the fast backend computes
(supports). Each layer and direction runs by the driver's headless pair (driver.run_layer,
driver.backprop_layer: the cell's kernels, and its weight gradients by shared.weight_terms); the
head, its errors and the loss are heads.py's, as the reference stack's; the trace, the initial
states, the gradients' layout and the overflow messages are bptt.stack's.

BPTT through depth and time, as bptt.stack's notes say: dE/dq_t gives the top layer's dE/dh_t
(dQ V); each layer and direction runs back through its steps, a reverse direction on the sequence
reversed in time; what reaches its inputs, dA U, in time order and summed over the directions, is
the error dE/dh_t of the layer below. N batch, T time, D input, H hidden, O output; time-major.
Between the layers the outputs stay time-major (T, N, out): a layer above reads them through a
(N, T, out) view, so its input products take them as they are.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from .. import core, heads, validate
from .. import stack as stacks
from . import driver, runtime


def supports(stack) -> bool:
    """Whether the fast backend computes every layer of the stack (driver.supports of each)."""
    return all(driver.supports(m) for _, _, m in stack.entries)


def unsupported(stack):
    """The first layer the fast backend does not compute, as "layer k (reverse)", or None."""
    for k, j, m in stack.entries:
        if not driver.supports(m):
            return f"layer {k}{' (reverse)' if j else ''}, a {m.cell.name} cell"
    return None


def _time_major(a, reverse=False):
    """(N, T, D) inputs as an (N, T, D) view of a time-major (T, N, D) array, reversed in time if asked."""
    t = np.swapaxes(a, 0, 1)
    return np.swapaxes(np.ascontiguousarray(t[::-1] if reverse else t), 0, 1)


def _inputs(xin, reverse):
    """A layer's inputs from validate.Inputs: dense ones as a view of a time-major array."""
    if xin.ids is not None:
        ids = np.ascontiguousarray(xin.ids[:, ::-1]) if reverse else xin.ids
        return validate.Inputs(ids, None, xin.N, xin.T, xin.batched)
    X = xin.X if np.swapaxes(xin.X, 0, 1).flags.c_contiguous and not reverse else _time_major(xin.X, reverse)
    return validate.Inputs(None, X, xin.N, xin.T, xin.batched)


# A bidirectional layer whose steps' products take at least this many multiply-adds, T N G (H + D)
# a direction, runs its two directions at once, the reverse one on the helper thread (taken back by
# this thread if the helper has not started it when this one is done), both on one BLAS thread: the
# two chains of steps share nothing, and each is one thread's work. The numbers are the same.
BOTH_MIN_WORK = 1 << 22


def _both(pair, N, T, fn, args):
    """(fn(*args[0]), fn(*args[1])): a layer's two directions, at once where it pays (BOTH_MIN_WORK)."""
    m = pair[0]
    if len(pair) < 2 or T * N * runtime.width(m) * (m.H + m.D) < BOTH_MIN_WORK or runtime.blas_threads() < 2:
        return tuple(fn(*a) for a in args)
    fn = functools.partial(fn, pinned=True)
    with runtime.one_blas_thread():
        second = [runtime.helper().submit(fn, *args[1])]
        try:
            first = fn(*args[0])
        finally:
            second = runtime.claim(second, 0, fn, *args[1])
    return first, second


def _head_products():
    """The context of the head's products over all steps (q_t = V y_t, dQ V, dV): on one BLAS thread
    each, the large ones in two halves, the second on the helper where a core is free (runtime.matmul
    within runtime.halves): BLAS's own threads wait for each other, for milliseconds on a busy
    machine, and which thread computes a half does not change its bits."""
    if runtime.blas_threads() < 2:
        return contextlib.nullcontext()
    return _pinned_halves()


@contextlib.contextmanager
def _pinned_halves():
    with runtime.one_blas_thread(), runtime.halves():
        yield


def _product(A, B, tn=False):
    """A @ B (A^T @ B when tn) for the head, on the BLAS threads the caller has set: A, B 2-D."""
    return runtime.matmul(A, B, tn=tn, threaded=True)


def forward(stack, x, h0=None, *, scan="sequential"):
    """Run the stack over x: a bptt.stack.StackTrace. x: ids (T,) / (N, T) or dense (T, D) /
    (N, T, D); h0: see bptt.stack.initial_states."""
    stacks.scan_method(stack, scan)
    stack.check_finite()
    xin = validate.inputs(stack, x)
    return run(stack, xin, stacks.initial_states(stack, h0, xin), scan)


def run(stack, xin, states0, scan="sequential"):
    """The forward pass from checked inputs and the initial states of every layer and direction."""
    layers, i, below = [], 0, _inputs(xin, False) if xin.X is not None else xin
    for pair in stack.layers:
        traces = _both(pair, xin.N, xin.T, driver.run_layer,
                       [(m, _inputs(below, True) if j else below, states0[i + j], scan) for j, m in enumerate(pair)])
        i += len(pair)
        layers.append(traces)
        if len(pair) == 1:
            Y = traces[0].S[1:]  # (T, N, out): a contiguous view of the states
        else:
            Y = np.concatenate([traces[0].S[1:], traces[1].S[:0:-1]], axis=-1)  # the reverse run's in time order
        below = validate.Inputs(None, np.swapaxes(Y, 0, 1), xin.N, xin.T, xin.batched)
    with np.errstate(over="ignore", invalid="ignore"), _head_products():
        Q = _product(Y.reshape(-1, Y.shape[-1]), stack.V.T).reshape(Y.shape[:-1] + (stack.O,))  # (T, N, O)
        if stack.c is not None:
            Q += stack.c
    return stacks.StackTrace(stack, xin, tuple(layers), Q, scan)


def backprop(trace, dY):
    """Every layer and direction's errors and gradients from dY (T, N, out), dE/dh_t of the top
    layer's outputs in time order: (errors, grads), errors[k][j] a bptt.stack.LayerErrors (dR None:
    the gradients are made with the errors), grads the weight gradients by the stack's names."""
    stack = trace.model
    errors, grads = [None] * stack.depth, {}
    for k in range(stack.depth - 1, -1, -1):
        pair, traces = stack.layers[k], trace.layers[k]
        parts = np.split(dY, np.cumsum([m.cell.out(m.H) for m in pair])[:-1], axis=-1)
        out, dX = [], None
        dHs = [part[::-1] if j else part for j, part in enumerate(parts)]  # in each direction's own time order
        got = _both(pair, trace.inputs.N, trace.inputs.T, functools.partial(driver.backprop_layer, inputs=k > 0),
                    list(zip(traces, dHs)))
        for j, (dH, g) in enumerate(zip(dHs, got)):
            out.append(stacks.LayerErrors(dH, g.dA, None, g.state0))
            grads.update(stacks.flat_names(g.params, k, j))
            if k:
                e = g.dX[::-1] if j else g.dX  # (T, N, D_k) in time order
                dX = e if dX is None else dX + e
        errors[k] = tuple(out)
        dY = dX
    return errors, grads


@core.reports_overflow
def backward(trace, y, *, truncate=None, reduction="sum"):
    """BPTT through depth and time from a StackTrace: (loss, Grads), as bptt.stack.backward's."""
    stacks.require_full(truncate)
    stack = trace.model
    tg = validate.targets(stack, y, trace.inputs)
    loss, dQ = heads.error(stack.head, trace.Q, tg, reduction)
    with _head_products():
        dY = _product(dQ.reshape(-1, stack.O), stack.V).reshape(dQ.shape[:-1] + (stack.V.shape[1],))
    errors, grads = backprop(trace, dY)
    with _head_products():
        grads.update(stacks.head_grads(trace, dQ, _product))
    grads = core.Grads({k: grads[k] for k in stack.params}, stacks.state_grads(trace, errors))
    return stacks.finite(trace, loss, grads, errors)


gradients, loss = stacks.entry_points(forward, backward)
