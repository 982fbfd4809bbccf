"""Timing and reporting shared by the benchmarks: interleaved rounds, medians, ratios, targets."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import THREADS, USER_ENV


def limit_threads() -> str:
    """Hold BLAS, PyTorch and Numba to THREADS threads; return a line that says what was set."""
    said = [f"{THREADS} threads each"]
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(THREADS)
        pools = sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})
        said.append("BLAS/OpenMP pools (threadpoolctl): " + ", ".join(pools))
    except ImportError:
        said.append("threadpoolctl missing: BLAS limited by OPENBLAS_NUM_THREADS only")
    try:
        import torch
        torch.set_num_threads(THREADS)
        said.append(f"torch.get_num_threads()={torch.get_num_threads()}")
    except ImportError:
        pass
    said.append("XLA intra_op_parallelism_threads=%d (XLA_FLAGS)" % THREADS)
    return "; ".join(said)


@dataclass
class Timing:
    samples: list = field(default_factory=list)  # seconds per call, one entry per round

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float((q3 - q1) / self.median)


def interleaved(fns: dict, *, rounds=9, warmup=2, sample_s=0.05, max_calls=200,
                pause_s=0.15) -> dict[str, Timing]:
    """Time each function in fns (name -> callable, no arguments) for `rounds` rounds.

    Each round times every function once, in an order that rotates from round to round, so a
    burst of load on the shared machine lands on all of them. A sample repeats a call enough
    times to last about sample_s (short calls are otherwise below the timer's noise), and counts
    the time per call. Warm-up calls (JAX compiles on its first call) are not timed.

    Each sample starts pause_s after the previous one ended, so that no function is timed on a
    core the previous one's threads still hold: after a call on two threads, OpenBLAS's worker
    thread spins for about 0.1 s before it sleeps (measured here: a gradient at (N, T, H) =
    (32, 400, 128) float32 took 77 ms right after a two-thread product, 51 ms 0.13 s after it).
    PyTorch's OpenMP threads, left at OpenMP's default policy, spin for some milliseconds too.
    """
    for f in fns.values():
        for _ in range(warmup):
            f()
    calls = {}
    for name, f in fns.items():
        t0 = time.perf_counter()
        f()
        dt = time.perf_counter() - t0
        calls[name] = int(min(max_calls, max(1, sample_s / max(dt, 1e-9))))
    out = {name: Timing() for name in fns}
    names = list(fns)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            f, n = fns[name], calls[name]
            time.sleep(pause_s)
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            out[name].samples.append((time.perf_counter() - t0) / n)
    return out


class Script:
    """A user's script run in a fresh interpreter, one call of its function per request: a timed peer.

    `code` is the script as a user would run it (it defines `name`, a function of no arguments);
    it runs in its own process, with the environment the benchmarks were started in plus only the
    thread count (OMP_NUM_THREADS and the like set to THREADS), none of the settings this suite
    makes for itself and nothing that another library loaded here does to the process. Calling
    the object runs `name()` once over there and waits for it; a pipe's round trip (tens of
    microseconds) is the only difference from timing it in the script itself. What the script
    prints before it serves is kept in `printed`. Use as a context manager.
    """

    SERVE = ("\nimport sys as _sys\nprint('-- serving', flush=True)\nfor _ in _sys.stdin:\n"
             "    {name}()\n    _sys.stdout.write('\\n')\n    _sys.stdout.flush()\n")

    def __init__(self, code: str, name: str):
        env = dict(USER_ENV)
        env.update({v: str(THREADS) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        self.proc = subprocess.Popen([sys.executable, "-c", code + self.SERVE.format(name=name)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.printed = []
        for line in self.proc.stdout:
            if line.startswith("-- serving"):
                return
            self.printed.append(line.rstrip("\n"))
        raise RuntimeError(f"the script ended before it served (exit {self.proc.wait()}): " + " | ".join(self.printed))

    def __call__(self):
        self.proc.stdin.write("\n")
        if not self.proc.stdout.readline():
            raise RuntimeError(f"the script ended while serving (exit {self.proc.wait()})")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


@dataclass
class Target:
    part: str
    what: str
    value: float
    limit: float
    kind: str  # "<=" or ">="

    @property
    def holds(self) -> bool:
        return self.value <= self.limit if self.kind == "<=" else self.value >= self.limit

    def line(self) -> str:
        return (f"[{'PASS' if self.holds else 'FAIL'}] {self.part}: {self.what} = {self.value:.3g} "
                f"(target {self.kind} {self.limit:g})")


class Report:
    """Collects every ratio with its target; prints as it goes and a summary at the end."""

    def __init__(self):
        self.targets: list[Target] = []
        self.records: list[dict] = []

    def target(self, part, what, value, limit, kind="<="):
        t = Target(part, what, float(value), float(limit), kind)
        self.targets.append(t)
        print("   ", t.line(), flush=True)
        return t

    def record(self, **row):
        self.records.append(row)

    def summary(self) -> str:
        lines = ["", "== targets =="] + [t.line() for t in self.targets]
        held = sum(t.holds for t in self.targets)
        lines.append(f"{held} of {len(self.targets)} targets hold")
        return "\n".join(lines)
