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

POLL = 0.002  # seconds between looks at the other process's progress
_state = {"expected": [], "child": None, "dir": None, "todo": [], "in_child": False, "uncached": False}
_lock = threading.RLock()


def enabled() -> bool:
    """Whether a cold call may compile on two processes here."""
    if os.environ.get("BPTT_COMPILE_AHEAD", "1") == "0" or not sys.platform.startswith("linux") \
            or not hasattr(os, "fork") or _state["uncached"] or _state["in_child"]:
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
        if _state["child"] is not None:
            _reap(block=False)
        if _state["child"] is None:
            _state["expected"] = [(d, tuple(sig)) for d, sig in kernels if tuple(sig) not in d.overloads]


def wrap(dispatcher):
    """Make the dispatcher's compile() wait for (or take over) a kernel the other process compiles."""
    original = dispatcher.compile

    def compile(sig):
        i = _index(dispatcher, sig)
        if i is not None and not _claim(i):  # the other process has it: a kernel of our own meanwhile
            _wait_for(i)
        return original(sig)

    compile.original = original
    dispatcher.compile = compile
    return dispatcher


def _index(dispatcher, sig):
    """The kernel's place in the shared list while the other process runs, else None."""
    if _state["child"] is None or _state["in_child"]:
        return None
    sig = tuple(sig)
    return next((i for i, (d, s) in enumerate(_state["todo"]) if d is dispatcher and s == sig), None)


def _claim(i) -> bool:
    """Take kernel i of the list for this process; False if the other has it."""
    try:
        os.close(os.open(os.path.join(_state["dir"], str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _done(i) -> bool:
    return os.path.exists(os.path.join(_state["dir"], f"{i}.done"))


def _wait_for(i):
    """Until kernel i is in the cache or the other process has ended, compiling unclaimed kernels
    of the list meanwhile (counted as compiling by compiling.py's lines)."""
    from .compiling import ANNOUNCER
    ANNOUNCER.busy(True)
    try:
        while not _done(i) and _reap(block=False):
            free = next((j for j in range(len(_state["todo"])) if j != i and _claim(j)), None)
            if free is None:
                time.sleep(POLL)
            else:
                d, s = _state["todo"][free]
                d.compile.original(s)
    finally:
        ANNOUNCER.busy(False)


def _reap(block) -> bool:
    """Whether the other process still runs; once it has ended, forget it and its files."""
    pid = _state["child"]
    if pid is None:
        return False
    try:
        ended = os.waitpid(pid, 0 if block else os.WNOHANG)[0] == pid
    except ChildProcessError:
        ended = True
    if ended:
        shutil.rmtree(_state["dir"], ignore_errors=True)
        _state.update(child=None, dir=None, todo=[])
    return not ended


class Forker(event.Listener):
    """On the first real compile of a call's expected kernels, fork the process that compiles the
    rest of them."""

    def on_start(self, ev):
        with _lock:
            expected, _state["expected"] = _state["expected"], []
            if not expected or _state["child"] is not None or not enabled():
                return
            d, args = ev.data["dispatcher"], tuple(ev.data["args"])
            todo = [(e, s) for e, s in expected if s not in e.overloads and not (e is d and s == args)]
            if not todo:
                return
            _state.update(dir=tempfile.mkdtemp(prefix="bptt-compile-"), todo=todo)
            with warnings.catch_warnings():  # Python 3.12 warns of fork in a process with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                _child()
            _state["child"] = pid

    def on_end(self, ev):
        pass


def _child():
    """The forked process: compile the unclaimed kernels of the list into the cache, then end."""
    code = 0
    try:
        _state["in_child"] = True
        from .compiling import ANNOUNCER
        ANNOUNCER.say = lambda line: None
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        for i, (d, s) in enumerate(_state["todo"]):
            if _claim(i):
                d.compile.original(s)
                os.close(os.open(os.path.join(_state["dir"], f"{i}.done"), os.O_CREAT | os.O_WRONLY))
    except BaseException:  # noqa: BLE001 - the parent compiles what is missing
        code = 1
    finally:
        os._exit(code)


def _at_exit():
    """At this process's exit, end the other one if it still compiles (for nothing now: a kernel it
    had not saved is compiled again when needed; Numba writes each file whole or not at all)."""
    pid = _state["child"]
    if pid is not None and not _state["in_child"]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(block=True)


_installed = []


def install():
    """Listen to Numba's compilations (once per process)."""
    if not _installed:
        event.register("numba:compile", Forker())
        atexit.register(_at_exit)
        _installed.append(True)
