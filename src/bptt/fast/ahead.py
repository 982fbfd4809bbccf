"""A cold call's kernels compiled on two cores: while this process compiles the kernel a call needs
first, a forked copy of it compiles the others the call will need into Numba's cache, and this
process loads them from there when it reaches them.

Numba compiles one function at a time per process (its compiler lock is held for the whole of a
compile, LLVM's part included), so threads do not help; a second process does. A call names the
kernels it will need and their argument types (expect); nothing happens unless one of them then
really compiles (a cold cache: Numba's "numba:compile" event), and then, on Linux with two or more
usable cores and a writable cache, this process forks once. The two share the list through claim
files: each takes the next kernel nobody has claimed, and this process, when it reaches a kernel
the other is still compiling, compiles an unclaimed one meanwhile or waits for it (the other's
"done" file, or its end). The copy only compiles: it never runs the call, never returns from
here, writes nothing but Numba's cache, and ends with os._exit.

The numbers do not depend on any of it: a kernel loaded from the cache is the machine code the
same compile wrote (what every warm process runs). Where the copy fails or is slow, this process
compiles what it lacks itself. BPTT_COMPILE_AHEAD=0 turns it off.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
from numba import from_dtype, typeof, types
from numba.core import event

from . import collector

POLL = 0.002  # seconds between looks at the other process's progress
WAIT_MAX = 20.0  # seconds this process waits for a kernel the other compiles, then ends it and compiles alone
_state = {"expected": [], "run": None, "in_child": False, "uncached": False}
_lock = threading.RLock()


# libraries whose own threads make a fork of the process unsafe (a lock one of them holds stays
# held in the copy) and which say so when the process forks (JAX warns of a deadlock)
THREADED = ("jax", "torch", "tensorflow")


def enabled() -> bool:
    """Whether a cold call may compile on two processes here: not where one of THREADED is loaded."""
    if os.environ.get("BPTT_COMPILE_AHEAD", "1") == "0" or not sys.platform.startswith("linux") \
            or not hasattr(os, "fork") or _state["uncached"] or _state["in_child"] \
            or any(name in sys.modules for name in THREADED):
        return False
    return len(os.sched_getaffinity(0)) >= 2


INDEX = types.int64  # a Python int's type: a step, a count
FLOAT = types.float64  # a Python float's


def array(dtype, ndim) -> types.Array:
    """The type of a C-contiguous writable array of the dtype and ndim (a call's working arrays)."""
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


def type_of(value):
    """Numba's type of an argument the call passes as it is (a model's read-only weights, say)."""
    return typeof(value)


def uncached():
    """A kernel compiles without Numba's cache here (numerics.py): the other process would be of no use."""
    _state["uncached"] = True


def expect(kernels):
    """The kernels a call is about to need: (dispatcher, argument types) pairs, in the order the
    call needs them. Those not compiled in this process yet are kept for the first compile."""
    with _lock:
        run = _state["run"]
        if run is None or not run.running():
            _state["expected"] = [(d, tuple(sig)) for d, sig in kernels if tuple(sig) not in d.overloads]


def wrap(dispatcher):
    """Make the dispatcher's compile() wait for (or take over) a kernel the other process compiles,
    with the garbage collector held off while it loads or compiles (collector.held)."""
    original = dispatcher.compile

    def compile(sig):
        with collector.held():  # loading or compiling: Numba's many objects, no full collections
            run = _state["run"]
            i = None if run is None or _state["in_child"] else run.index(dispatcher, sig)
            if i is not None and not run.claim(i):  # the other process has it
                run.wait_for(i)
            try:
                return original(sig)
            finally:
                if run is not None:
                    run.running()  # reaped once it has ended

    compile.original = original
    dispatcher.compile = compile
    return dispatcher


class Run:
    """The other process (pid), its folder of claim files and the list it shares with this one."""

    def __init__(self, pid, folder, todo):
        self.pid, self.folder, self.todo, self.ended = pid, folder, todo, False

    def index(self, dispatcher, sig):
        """The kernel's place in the list, or None."""
        sig = tuple(sig)
        return next((i for i, (d, s) in enumerate(self.todo) if d is dispatcher and s == sig), None)

    def claim(self, i) -> bool:
        """Take kernel i for this process: False if the other has it (True once the other has ended)."""
        try:
            os.close(os.open(os.path.join(self.folder, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:  # the folder is gone with the other process
            return True

    def done(self, i) -> bool:
        """Whether the other process has saved kernel i to the cache."""
        return os.path.exists(os.path.join(self.folder, f"{i}.done"))

    def wait_for(self, i):
        """Until kernel i is in the cache or the other process has ended, compiling unclaimed kernels
        of the list meanwhile (counted as compiling by compiling.py's lines)."""
        from .compiling import ANNOUNCER
        ANNOUNCER.busy(True)
        deadline = time.monotonic() + WAIT_MAX  # a compile takes a second or two: the other is stuck
        try:
            while not self.done(i) and self.running():
                if time.monotonic() > deadline:
                    self.stop()
                    break
                free = next((j for j in range(len(self.todo)) if j != i and self.claim(j)), None)
                if free is None:
                    time.sleep(POLL)
                else:
                    d, s = self.todo[free]
                    try:
                        d.compile.original(s)
                    except Exception:  # noqa: BLE001 - a kernel named wrongly: the call compiles what it runs
                        pass
        finally:
            ANNOUNCER.busy(False)

    def stop(self):
        """End the other process (a kernel it had not saved is compiled again when needed) and reap it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.running(block=True)

    def running(self, block=False) -> bool:
        """Whether the other process still runs; once it has ended, its files are removed."""
        with _lock:
            if not self.ended:
                try:
                    self.ended = os.waitpid(self.pid, 0 if block else os.WNOHANG)[0] == self.pid
                except ChildProcessError:
                    self.ended = True
                if self.ended:
                    shutil.rmtree(self.folder, ignore_errors=True)
                    if _state["run"] is self:
                        _state["run"] = None
            return not self.ended


class Forker(event.Listener):
    """On the first real compile of a call's expected kernels, fork the process that compiles the
    rest of them."""

    def on_start(self, ev):
        with _lock:
            expected, _state["expected"] = _state["expected"], []
            if not expected or _state["run"] is not None or not enabled():
                return
            d, args = ev.data["dispatcher"], tuple(ev.data["args"])
            todo = [(e, s) for e, s in expected if s not in e.overloads and not (e is d and s == args)]
            if not todo:
                return
            try:
                folder = tempfile.mkdtemp(prefix="bptt-compile-")
            except OSError:  # no temporary folder: this process compiles alone
                return
            try:
                with warnings.catch_warnings():  # Python 3.12 warns of fork in a process with threads
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
            except OSError:  # no fork here (a process limit, say): this process compiles alone
                shutil.rmtree(folder, ignore_errors=True)
                return
            if pid == 0:
                _child(Run(os.getpid(), folder, todo))
            _state["run"] = Run(pid, folder, todo)

    def on_end(self, ev):
        pass


def _child(run):
    """The forked process: compile the unclaimed kernels of the list into the cache, then end."""
    code = 0
    try:
        _state["in_child"] = True
        from .compiling import ANNOUNCER
        ANNOUNCER.say = lambda line: None
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        for i, (d, s) in enumerate(run.todo):
            if run.claim(i):
                d.compile.original(s)
                os.close(os.open(os.path.join(run.folder, f"{i}.done"), os.O_CREAT | os.O_WRONLY))
    except BaseException:  # noqa: BLE001 - the parent compiles what is missing
        code = 1
    finally:
        os._exit(code)


def _at_exit():
    """At this process's exit, end the other one if it still compiles (for nothing now: a kernel it
    had not saved is compiled again when needed; Numba writes each file whole or not at all)."""
    run = _state["run"]
    if run is not None and not _state["in_child"]:
        run.stop()


_installed = []


def install():
    """Listen to Numba's compilations (once per process)."""
    if not _installed:
        event.register("numba:compile", Forker())
        atexit.register(_at_exit)
        _installed.append(True)
