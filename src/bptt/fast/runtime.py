"""The fast backend's shared runtime, for every cell: whether calls run compiled kernels, BLAS
thread control (threadpoolctl), the two-thread block pipeline, the working arrays a call may keep
and the weights as the kernels read them. shared.py holds the arithmetic every cell shares.

Conventions are core.py's: arrays time-major, N batch, T time, D input, H hidden, O output,
G = the columns of a step's input part (H for the Elman cell, 4H for the LSTM, 3H for the GRU).

Which loops a call runs depends only on its sizes, its dtype and the setting of set_compiled,
never on what was loaded before it: a kernel a call needs is compiled (or loaded from Numba's
cache) when that call first needs it, and the call waits for it. So the same call gives the same
bits in every process, first call or hundredth. docs/performance.md says what each piece gains.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np


_state = {"enabled": os.environ.get("BPTT_COMPILED", "1") != "0",
          "blas": None}  # threadpoolctl's controller of the BLAS libraries, False without one


def set_compiled(enabled: bool) -> bool:
    """Use the compiled kernels (Numba) where they are faster; returns the previous setting.

    Off, or without Numba or with NUMBA_DISABLE_JIT=1, everything runs in NumPy's loops; the two
    agree to rounding. The environment variable BPTT_COMPILED=0 turns them off at start-up.
    """
    previous = _state["enabled"]
    _state["enabled"] = bool(enabled)
    _state["blas"] = None  # the BLAS libraries to control may change with it
    return previous


def kernels():
    """numerics.py (Numba imported) when calls run compiled kernels, else None."""
    if not _state["enabled"]:
        return None
    numerics = _state.get("numerics")
    if numerics is None:  # imported once (an import statement costs a microsecond at every call)
        from . import numerics
        _state["numerics"] = numerics
    return numerics if numerics.JIT else None


def compiled() -> bool:
    """Whether calls run compiled kernels."""
    return kernels() is not None


# cells whose step is one product for all the gates, then an element-wise part (numerics-compiled)
COMPILED_LOOP_MAX_WORK = 1 << 20  # N H G multiply-adds a step up to which the whole time loop is compiled
PIPELINE_MIN_STEP_WORK = 1 << 22  # N H G multiply-adds a step from which the pipeline may take the steps


def gated_loops(N, step_work):
    """(compiled, whole) for a gated cell: whether its steps run compiled, and whether the whole
    time loop does (its products by BLAS through Numba), for one sequence and for small steps,
    where the cost of a call from Python would count; else a Python loop calls NumPy's product and
    the compiled element-wise step (NumPy's BLAS can be the faster of the two)."""
    if not compiled():
        return False, False
    return True, N == 1 or step_work <= COMPILED_LOOP_MAX_WORK


def gated_pipelines(step_work):
    """Whether a gated cell's steps may run in the pipeline: where each step's product is at least
    PIPELINE_MIN_STEP_WORK. There BLAS would split every step's product over its threads, which
    wait for each other at every step; below, the steps' products run on one BLAS thread and the
    products over all steps, after the loop, on all of them."""
    return step_work >= PIPELINE_MIN_STEP_WORK


# --- BLAS threads ----------------------------------------------------------------------------
ONE_THREAD_MAX_PRODUCT = 1 << 22  # multiply-adds per product below which BLAS gets one thread


def _blas():
    """threadpoolctl's controller of the BLAS libraries, or None without it."""
    if _state["blas"] is None:
        kernels()  # first SciPy's BLAS, which the compiled loops call, so that it is controlled too
        try:
            from threadpoolctl import ThreadpoolController
            blas = ThreadpoolController().select(user_api="blas")
            _state["blas"] = blas if blas.lib_controllers else False
        except ImportError:
            _state["blas"] = False
        if _state["blas"]:
            with _state["blas"].limit(limits=1):
                page_in_blas()
    return _state["blas"] or None


def page_in_blas(n=256):
    """One n x n product in float32 and float64 through NumPy's BLAS and, where the compiled
    loops call it, SciPy's: a few milliseconds, once per process.

    Why: OpenBLAS maps its packing buffer untouched, and a product of a few rows writes only its
    first pages, yet runs slower on one thread until a larger product has written more of them
    (docs/performance.md). The per-step products are such products, thousands of them.
    """
    libraries = [np.matmul]
    if compiled():
        from scipy.linalg import blas
        libraries.append(lambda a, b: blas.get_blas_funcs("gemm", (a,))(1.0, a, b))
    for dtype in (np.float32, np.float64):
        a = np.zeros((n, n), dtype=dtype)
        for product in libraries:
            product(a, a)


def one_blas_thread():
    """A context in which every BLAS library runs on one thread (threadpoolctl), for a loop of small
    products that BLAS's threads would only slow; a no-op without threadpoolctl."""
    blas = _blas()
    return blas.limit(limits=1) if blas else contextlib.nullcontext()


def blas_for(work):
    """A context in which BLAS runs on one thread when a product has fewer than
    ONE_THREAD_MAX_PRODUCT multiply-adds, else a no-op.

    Small products are not worth splitting, yet OpenBLAS splits them over its threads and waits
    for all of them at every call, at every time step in the loops; on a busy machine the wait
    can cost many times the product (docs/performance.md).
    """
    if work < 1 << 18 or work >= ONE_THREAD_MAX_PRODUCT:  # below 2^18 OpenBLAS uses one thread itself
        return contextlib.nullcontext()
    return one_blas_thread()


def blas_threads():
    """How many threads BLAS may use (threadpoolctl), 1 without threadpoolctl."""
    blas = _blas()
    return 1 if blas is None else min(lib.get_num_threads() for lib in blas.lib_controllers)


# A product over all steps comes once a call, not once a step: below this many multiply-adds,
# switching BLAS's threads (tens of microseconds, and its threads put to sleep and woken) costs
# more than OpenBLAS's own choice of threads loses (docs/performance.md)
ONE_THREAD_MIN_OVER_STEPS = 1 << 20


def matmul(A, B, tn=False, threaded=False, out=None):
    """A @ B, or A^T @ B when tn, for the products over many steps (into out if given): those from
    ONE_THREAD_MIN_OVER_STEPS to ONE_THREAD_MAX_PRODUCT multiply-adds on one BLAS thread, the
    others as BLAS likes; inside a pipeline (threaded), as they come, on the one BLAS thread the
    pipeline has set; within halves(), from HALVES_MIN_WORK on, in two halves on two threads."""
    work = A.shape[0] * A.shape[1] * B.shape[1]
    if work >= HALVES_MIN_WORK and getattr(_halves, "on", False):
        return _in_halves(A, B, tn, out)
    context = contextlib.nullcontext() if threaded or work < ONE_THREAD_MIN_OVER_STEPS else blas_for(work)
    with context:
        return np.matmul(A.T if tn else A, B, out=out)


# Within halves(), a product over steps of at least this many multiply-adds runs in two halves,
# this thread's and the helper's, each on the one BLAS thread the caller has set: both cores, and
# no BLAS thread to wait for, which a busy machine can keep from its core for milliseconds at every
# product (the helper's half is taken back by this thread if the helper has not started it)
HALVES_MIN_WORK = 1 << 21
_halves = threading.local()


@contextlib.contextmanager
def halves():
    """The context in which this thread's products over steps run in two halves (matmul); the
    caller sets BLAS to one thread (one_blas_thread)."""
    previous = getattr(_halves, "on", False)
    _halves.on = True
    try:
        yield
    finally:
        _halves.on = previous


def _in_halves(A, B, tn, out):
    """A @ B by halves of A's rows, or A^T @ B by halves of B's columns (out's), the second half on
    the helper thread: the same arithmetic for every entry as one product of the whole."""
    if tn:
        w = B.shape[1] // 2
        out = np.empty((A.shape[1], B.shape[1]), dtype=np.result_type(A, B)) if out is None else out
        parts = [(A.T, B[:, :w], out[:, :w]), (A.T, B[:, w:], out[:, w:])]
    else:
        h = A.shape[0] // 2
        out = np.empty((A.shape[0], B.shape[1]), dtype=np.result_type(A, B)) if out is None else out
        parts = [(A[:h], B, out[:h]), (A[h:], B, out[h:])]

    def part(a, b, o):
        with np.errstate(over="ignore", invalid="ignore"):  # as the caller's (NumPy's are per thread)
            if o.flags.c_contiguous:
                np.matmul(a, b, out=o)
            else:  # a block of out's columns: the product, then its copy into them
                o[...] = np.matmul(a, b)

    second = [helper().submit(part, *parts[1])]
    part(*parts[0])
    claim(second, 0, part, *parts[1])
    return out


# --- the pipeline ----------------------------------------------------------------------------
# On two or more cores: the time loop is a chain, one step after another, but much of the rest is
# not. The outputs and errors of steps t0..t1 need only their states, and the weight gradients of
# those steps only their errors. So for large problems the loops run over blocks of steps, and a
# second thread follows: in the forward pass it computes the inputs' part of each block ahead of
# the loop and the outputs of each block the loop has finished (and, within gradients, its errors
# dE/dq_t and dE_t/ds_t); for backward(trace, y) it computes the errors block by block from the
# end, where the loop starts; then each finished block's share of the weight gradients. The loop's
# thread has little besides its chain, and takes over any block the helper has not started when
# it needs it (claim), so a helper slowed by other work on the machine costs no more than doing
# without it. NumPy and the compiled loops release the GIL while they compute.
# BLAS runs on one thread throughout: its own threads would wait for each other at every small
# per-step product, and after each call they spin a while (OpenBLAS), taking the core the second
# thread needs. Without threadpoolctl, with BLAS set to one thread, or where plan finds it does
# not pay, everything runs in one thread, as one block.
PIPELINE_BLOCKS = 16  # blocks of steps in a pipeline
PIPELINE_MIN_BLOCK_WORK = 1 << 23  # multiply-adds of a block's step products, at least
_helper = {"executor": None, "policy": "auto"}


def _cores() -> set:
    """The CPUs this process may run on (all of them where that cannot be read)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


# Whether another job keeps the cores busy, from the time the machine's CPUs (those this process
# may use) spent busy, less this process's own, over the last LOAD_WINDOW seconds or more: Linux's
# /proc/stat, in clock ticks. Read at most once a window, so a call pays a few microseconds.
LOAD_WINDOW = 0.1
_load = {"at": None, "busy": 0, "ours": 0.0, "free": True}


def _busy_ticks(cpus):
    """Clock ticks the CPUs numbered cpus have spent busy (not idle, not waiting for I/O), or None."""
    busy = 0
    with open("/proc/stat", "rb") as f:
        for line in f:
            if not line.startswith(b"cpu"):
                break
            name, *ticks = line.split()
            if name == b"cpu" or int(name[3:]) not in cpus:
                continue
            ticks = [int(v) for v in ticks[:8]]  # user nice system idle iowait irq softirq steal
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy


def free_core() -> bool:
    """Whether a core is free for a second thread: over the last window, other processes kept busy
    less than all but one and a half of the CPUs this process may use (on 2 cores: less than half
    of one). Measured from /proc/stat and this process's CPU time (os.times), so this process's own
    threads never count; True where /proc/stat cannot be read (other systems) and until a first
    window has passed."""
    now = time.monotonic()
    last = _load["at"]
    if last is not None and now - last < LOAD_WINDOW:
        return _load["free"]
    try:
        cpus = _cores()
        busy = _busy_ticks(cpus)
    except (OSError, ValueError):
        return True
    t = os.times()
    ours = t.user + t.system
    if last is not None:
        others = (busy - _load["busy"]) / _TICKS - (ours - _load["ours"])  # CPU-seconds
        _load["free"] = others / (now - last) < len(cpus) - 1.5
    _load.update(at=now, busy=busy, ours=ours)
    return _load["free"]


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@contextlib.contextmanager
def helper_policy(policy):
    """A context in which helper() follows policy: "auto" (the default: a thread where a core is
    free), "always" (a thread) or "never" (Inline(): every task in the calling thread). Results
    are bit for bit the same under each (tests/test_same_bits.py)."""
    if policy not in ("auto", "always", "never"):
        raise ValueError(f"policy must be 'auto', 'always' or 'never', got {policy!r}")
    previous, _helper["policy"] = _helper["policy"], policy
    try:
        yield
    finally:
        _helper["policy"] = previous


class Inline:
    """Runs what is submitted at once, in the caller's thread: the pipeline's one-thread stand-in.
    Like an executor's future, what it returns raises the call's exception at result()."""

    class Done:
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
        return self.Done(fn, args)


@dataclass(frozen=True)
class Plan:
    blocks: list  # [(t0, t1)]: the blocks of steps, in time order
    helper: object  # where the off-chain work goes: a one-thread executor, or Inline()
    one_blas: bool = False  # BLAS on one thread for the whole call (every product over steps is small)
    set_by_caller: bool = False  # BLAS's threads set by the caller (a half of a split batch)

    @property
    def threaded(self):
        """Whether the call runs as a pipeline of blocks (the arithmetic is the same whether the
        helper is a thread or Inline(), which runs each task at once in this thread)."""
        return len(self.blocks) > 1

    @property
    def pinned(self):
        """Whether the products over steps run on the BLAS threads the section has set (matmul's
        threaded): in the pipeline, where every one of them is small, or as the caller set them."""
        return self.threaded or self.one_blas or self.set_by_caller

    @contextlib.contextmanager
    def section(self):
        """The context a call runs in: BLAS on one thread when threaded, or where every product
        over steps is small (one switch of BLAS's threads for the call, not one per product); in
        the pipeline, this thread and the helper each on a CPU of its own (apart)."""
        with contextlib.ExitStack() as stack:
            if not self.set_by_caller and (self.threaded or self.one_blas) and _blas():
                stack.enter_context(_blas().limit(limits=1))
            if self.threaded:
                stack.enter_context(apart(self.helper))
            yield


def helper():
    """The executor of the one helper thread (made when first needed) where a core is free for it,
    else Inline(): on a machine whose cores are all busy, a second thread waits for a core at every
    hand-over, and this thread for it (helper_policy). The work and its results are the same."""
    policy = _helper["policy"]
    if policy == "never" or (policy == "auto" and not free_core()):
        return Inline()
    if _helper["executor"] is None:
        from concurrent.futures import ThreadPoolExecutor
        _helper["executor"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bptt")
    return _helper["executor"]


def plan(T, N, step_work, allowed=True, over_steps=0) -> Plan:
    """One block in this thread, or PIPELINE_BLOCKS blocks with a helper thread where it pays
    (allowed, by the cell): with a batch (for one sequence the work off the chain is small), and
    blocks of at least PIPELINE_MIN_BLOCK_WORK multiply-adds in the loop's products, step_work a
    step (handing a block over costs tens of microseconds; docs/performance.md).

    over_steps: a bound on the multiply-adds of the call's products over all steps (outputs, errors,
    weight gradients); in one thread, where it is from ONE_THREAD_MIN_OVER_STEPS to
    ONE_THREAD_MAX_PRODUCT, all of them run on one BLAS thread, set once for the call (matmul
    would set it for each, at tens of microseconds a switch)."""
    if not allowed or N < 2 or T < 2 * PIPELINE_BLOCKS \
            or T * step_work < PIPELINE_BLOCKS * PIPELINE_MIN_BLOCK_WORK or blas_threads() < 2:
        return Plan([(0, T)], Inline(), ONE_THREAD_MIN_OVER_STEPS <= over_steps < ONE_THREAD_MAX_PRODUCT)
    edges = [T * i // PIPELINE_BLOCKS for i in range(PIPELINE_BLOCKS + 1)]
    return Plan(list(zip(edges, edges[1:])), helper())


def claim(futures, i, fn, *args):
    """The result of futures[i], a task on the helper; if the helper has not started it yet, this
    thread runs fn(*args) instead (the helper may be slow to come: another process, or another
    library's threads, can have its core)."""
    if futures[i].cancel():
        futures[i] = Inline().submit(fn, *args)
    return futures[i].result()


def each(n, worker):
    """Runs item i for i = 0..n-1, each once, the items taken one at a time, in order, by this
    thread and the helper, whichever asks next (a helper slow to start takes fewer; with Inline(),
    this thread takes them all). worker() is called once in each thread that takes items and gives
    that thread's function of i (it may keep working arrays of its own); BLAS runs on one thread.
    Returns once every item is done; an item's exception is raised here, after both threads have
    stopped. Which thread ran an item never changes its arithmetic."""
    taken = itertools.count()  # next() is atomic: each item goes to one thread

    def take():
        run = None
        for i in taken:
            if i >= n:
                return
            run = run or worker()
            run(i)

    executor = helper() if n > 1 else Inline()
    with one_blas_thread(), apart(executor):
        other = [executor.submit(take)] if n > 1 else []
        try:
            take()
        finally:
            if other:
                claim(other, 0, take)


# --- two threads on two cores ------------------------------------------------------------------
# Linux may run both of a call's threads on one core for tens of milliseconds: measured here (a
# 2-core virtual machine), after the process had been idle for 0.15 s, an LSTM's gradient at
# (N, T, H) = (32, 100, 128) in four parts took 15-20 ms for its first calls, each thread's parts
# twice as long as back to back, the two threads on the same CPU (sched_getcpu) while the other
# CPU idled; 10 ms back to back. Held each on a CPU of its own for the call (apart), 10.7-11.4 ms
# on average over the first five calls after such pauses.
@functools.cache
def _getcpu():
    """Linux's sched_getcpu (through ctypes), or None where there is none."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        import ctypes
        fn = ctypes.CDLL(None).sched_getcpu
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, []
    return fn


_apart = threading.local()  # whether this thread is in a section held apart already


@contextlib.contextmanager
def apart(executor):
    """A context for a section of work on this thread and the executor's thread (the helper): this
    thread held on the CPU it runs on, the helper on another (the one it runs on, unless that is
    this thread's), from its first task of the section to its last; then both may again use the
    CPUs this thread could use before. Nested sections are the outermost's. Where the executor is
    Inline(), the process may use one CPU, or off Linux: no change."""
    getcpu = None if isinstance(executor, Inline) or getattr(_apart, "on", False) else _getcpu()
    allowed, here = set(), None
    if getcpu is not None:
        try:
            allowed, here = os.sched_getaffinity(0), getcpu()
        except OSError:
            pass
    if len(allowed) < 2 or here not in allowed:
        yield
        return
    _affinity({here})
    _apart.on = True
    executor.submit(_hold, getcpu, here, allowed)  # one worker, its tasks in order: before the section's
    try:
        yield
    finally:
        executor.submit(_affinity, allowed)  # after the section's
        _apart.on = False
        _affinity(allowed)


def _hold(getcpu, other, allowed):
    """Hold the calling thread on the CPU it runs on, or another of allowed if that is `other`."""
    now = getcpu()
    _affinity({now if now in allowed and now != other else min(allowed - {other})})


def _affinity(cpus):
    """Let the calling thread run on the CPUs (where it may)."""
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:  # a CPU taken from the process meanwhile: it stays where it was let
        pass


def results(futures):
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


# --- working arrays --------------------------------------------------------------------------
WORKSPACE_MAX_BYTES = 1 << 26  # a call keeps its working arrays (per thread) for the next up to this size
_workspace = threading.local()


class Memory:
    """Where a call's working arrays come from: new ones, or (keep, for a call that returns none
    of them) this thread's arrays of the same name, shape and dtype from its earlier calls, which
    spares the allocations and finds them in the cache."""

    def __init__(self, dtype, keep=False):
        self.dtype = dtype
        self.kept = None
        if keep:
            if getattr(_workspace, "arrays", None) is None:
                _workspace.arrays = {}
            self.kept = _workspace.arrays

    @classmethod
    def reused(cls, model, xin):
        """For gradients(), backward() and loss(): the kept arrays when they take at most
        WORKSPACE_MAX_BYTES, else new ones."""
        T, N, H, G, O = xin.T, xin.N, model.cell.out(model.H), width(model), model.O
        size = model.dtype.itemsize * (T + 1) * N * (3 * G + 5 * H + 2 * O)
        return cls(model.dtype, size <= WORKSPACE_MAX_BYTES)

    def empty(self, name, shape, dtype=None):
        """An array of the shape, in the model's dtype unless given (a complex one, say)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if self.kept is None:
            return np.empty(shape, dtype=dtype)
        a = self.kept.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self.kept[name] = np.empty(shape, dtype=dtype)
        return a

    def zeros(self, name, shape, dtype=None):
        a = self.empty(name, shape, dtype)
        a.fill(0)
        return a


def width(model) -> int:
    """G, the columns of a step's input part: the rows of the parameters with the role "input"
    (Cell.width, without stacking them); found once per model."""
    return prepared(model, _width)


def _width(model) -> int:
    cell = model.cell
    return sum(model.params[k].shape[0] for k, p in cell.params.items() if p.role == "input" and k in model.params)


_prepared = weakref.WeakKeyDictionary()  # model -> {make: make(model)}


def prepared(model, make):
    """make(model), made once per model: the weights as the kernels read them (a model's arrays are
    read-only, and keep the order they came in)."""
    made = _prepared.setdefault(model, {})
    if make not in made:
        made[make] = make(model)
    return made[make]


def head_transposed(model):
    """V^T (H', O), contiguous and read-only, for the outputs' product S V^T: NumPy's product with
    the transposed view V.T costs twice as much at the sizes of one short sequence."""
    VT = np.ascontiguousarray(model.V.T)
    VT.flags.writeable = False
    return VT


def stacked(parts):
    """The (T, N, k H) array whose blocks of H columns are the arrays parts (T, N, H): the array the
    forward pass wrote them in when they are its views, else a copy (a trace of the reference)."""
    base, H = parts[0].base, parts[0].shape[-1]
    shape = parts[0].shape[:-1] + (H * len(parts),)
    if isinstance(base, np.ndarray) and base.flags.c_contiguous and base.shape == shape:
        views = (base[..., k * H:(k + 1) * H] for k in range(len(parts)))  # where the blocks would be
        if all(p.base is base and p.__array_interface__ == v.__array_interface__ for p, v in zip(parts, views)):
            return base
    return np.concatenate(parts, axis=-1)
