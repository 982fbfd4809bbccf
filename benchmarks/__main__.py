"""python -m benchmarks [--quick] [--parts gradients,gated,modern,contention,flow,minchar,scaling,startup,approx,explore,diagnose,stack] [--rounds R] [--out DIR]

Prints every measurement, each ratio with its target and PASS/FAIL, and a summary; writes the
records as JSON and the scaling plots to --out (benchmarks/results by default). A run of some parts
replaces those parts' records in an existing results.json and keeps the others'.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from . import THREADS  # noqa: F401  (sets the thread variables before NumPy is imported)

PARTS = ("gradients", "gated", "modern", "contention", "flow", "minchar", "scaling", "startup", "approx", "explore", "diagnose",
         "stack")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds per comparison (median taken)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and points, no T=4096 memory run")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}: expected some of {', '.join(PARTS)}")
    rounds = 3 if args.quick else args.rounds

    import numpy as np

    import bptt
    from bptt import fast

    from .harness import Report, limit_threads
    from .tables import merged
    print(f"bptt benchmarks: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print("threads:", limit_threads())
    if fast.wait_for_kernels() is not None:  # loaded before anything is timed
        import numba
        print(f"compiled loops: Numba {numba.__version__}")
    else:
        print("compiled loops: off (BPTT_COMPILED=0, or no Numba on this platform): NumPy's loops")
    print(f"rounds: {rounds} interleaved, medians; bptt {bptt.__version__}")

    report = Report()
    t0 = time.perf_counter()
    if "gradients" in parts:
        from . import gradient
        gradient.run(report, rounds=rounds, configs=gradient.CONFIGS)
    if "gated" in parts:
        from . import gated
        gated.run(report, rounds=rounds)
    if "modern" in parts:
        from . import modern
        modern.run(report, rounds=rounds)
    if "contention" in parts:
        from . import contention
        contention.run(report, rounds=rounds)
    if "flow" in parts:
        from . import flowtable
        flowtable.run(report, rounds=rounds, memory=None if args.quick else (4096, 256))
    if "minchar" in parts:
        from . import minchar
        minchar.run(report, rounds=rounds)
    if "scaling" in parts:
        from . import scaling
        for dtype in (np.float32, np.float64):
            scaling.run(report, rounds=max(3, rounds // 2), quick=args.quick, dtype=dtype, out_dir=args.out)
    if "startup" in parts:
        from . import startup
        startup.run(report, rounds=max(5, rounds))
    if "approx" in parts:
        from . import approx
        approx.run(report, rounds=rounds)
    if "explore" in parts:
        from . import explore
        explore.run(report, rounds=rounds)
    if "diagnose" in parts:
        from . import diagnose
        diagnose.run(report, rounds=rounds)
    if "stack" in parts:
        from . import stacked
        stacked.run(report, rounds=rounds)
    print(report.summary())
    print(f"({time.perf_counter() - t0:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = {"records": report.records, "targets": [dict(t.__dict__, holds=t.holds) for t in report.targets]}
    if set(parts) != set(PARTS) and path.exists():  # a partial run replaces its own parts' results only
        with open(path) as f:
            results = merged(json.load(f), results, parts)
        print(f"{path}: the results of {', '.join(parts)} replaced, the other parts' kept")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    return 0 if all(t.holds for t in report.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
