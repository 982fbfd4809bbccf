"""Sweeps: grids of runs on Dask, results in a resumable SQLite store.

    from bptt import sweep
    spec = sweep.load_spec("sweeps/flow-phase.toml")    # validated; spec.points() lists the runs
    sweep.run_sweep(spec, "runs/phase", workers=2)      # or scheduler="tcp://host:8786"
    df = sweep.results("runs/phase")                    # pandas DataFrame, one row per point
    print(sweep.status_text("runs/phase"))
    sweep.plot("runs/phase")                            # figures in runs/phase/plots/

Dask and pandas are imported only by the functions that use them (pip install 'bptt[sweep]').
"""
from .spec import Point, Spec, load_spec, parse_spec, point_key
from .store import Store

__all__ = ["Spec", "Point", "load_spec", "parse_spec", "point_key", "Store", "run_sweep", "local_cluster",
           "results", "status_text", "plot"]


def __getattr__(name):  # the driver, the DataFrame and the figures import dask / pandas / matplotlib
    if name in ("run_sweep", "local_cluster", "SweepSummary"):
        from . import runner
        return getattr(runner, name)
    if name in ("results", "status_text"):
        from . import report
        return getattr(report, name)
    if name == "plot":
        from .plots import plot
        return plot
    raise AttributeError(f"module 'bptt.sweep' has no attribute {name!r}")
