"""The driver: runs a spec's points on a Dask cluster and writes each result as it comes back.

- Cluster: a LocalCluster of worker processes, one per core, one thread each, on loopback, unless
  a scheduler address is given (`scheduler=` or DASK_SCHEDULER_ADDRESS): then the points run on
  that cluster's workers (which need bptt[sweep] installed), and the driver only submits and writes.
- Resuming: the points already 'ok' in DIR/results.sqlite (and 'failed', unless retry_failed) are
  skipped; the others are submitted. Results are written one transaction each, in the order they
  finish (`as_completed`), so killing the driver loses only the points still running.
- Failures: a point that raises comes back as a failed result with its traceback (points.run_point
  catches it). A worker process that dies takes its running point with it: Dask's scheduler
  reschedules the point on another worker, and when `distributed.scheduler.allowed-failures`
  deaths have already happened while it was running (1 on the local cluster, so a point that
  kills its worker twice) it gives up with KilledWorker, which is stored as the point's failure.
  The local cluster also sets `worker-saturation` to 1.0, so a worker holds only the point it is
  running: the points of a sweep form one large task group, which Dask queues on the scheduler,
  and a worker's death is not blamed on points merely waiting there.
- One driver per folder at a time (an advisory lock on DIR/.lock, released by the OS even on SIGKILL),
  and one per store: a second lock on results.sqlite itself, so two folders whose stores are the
  same file (a symlink, a hard link) are refused too; SQLite's own locks are POSIX record locks,
  independent of this flock.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..files import folder_lock, printable
from .spec import Spec, load_spec
from .store import Store, store_path
from ..validate import show

ALLOWED_FAILURES = 1  # a point may kill one worker and be retried; the second death fails it
KEY_PREFIX = "bptt-point-"


@dataclass(frozen=True)
class SweepSummary:
    """What one `run_sweep` did: points in the spec, skipped (already done), ok, failed, lost."""

    out: Path
    run_id: int
    total: int
    skipped: int
    ok: int
    failed: int
    lost: int          # submitted but never came back (the cluster went away); still pending
    seconds: float     # wall time of this run, cluster start included
    failed_total: int  # points of the spec recorded as failed after this run (this run's or earlier)
    pending: int       # points of the spec not done after this run

    def __str__(self):
        parts = [f"{self.total} points: {self.skipped} already done, {self.ok} ok, {self.failed} failed"]
        if self.lost:
            parts.append(f"{self.lost} lost (still pending: run the same command again)")
        return (", ".join(parts) + f"; {self.seconds:.1f} s; results in {store_path(self.out)}")

    def _repr_html_(self):
        """The summary in a notebook: every count as a table."""
        from ..display import sweep_summary_html
        return sweep_summary_html(self)


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def require_dask():
    """Raise a ValueError that says how to install Dask when it (or pandas) is missing: the core
    install has neither."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import pandas  # noqa: F401
    except ImportError as e:
        raise ValueError(f"sweeps need Dask and pandas ({e.name or e} cannot be imported): "
                         "pip install 'bptt[sweep]'") from None


def local_cluster(workers=None, **kwargs):
    """A LocalCluster for sweeps: `workers` processes of one thread each, on 127.0.0.1 (its HTTP port too).

    Its scheduler fails a point after ALLOWED_FAILURES + 1 worker deaths and queues points on
    the scheduler (worker-saturation 1.0). Extra kwargs go to LocalCluster.
    """
    require_dask()
    import dask
    from distributed import LocalCluster

    n = default_workers() if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"workers must be an integer >= 1, got {show(workers)}")
    opts = dict(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR)
    opts.update(kwargs)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return LocalCluster(**opts)


def _worker_probe():
    """Runs on each worker before a sweep: can it import what run_point needs? Returns bptt's version."""
    import threadpoolctl  # noqa: F401

    from .. import __version__
    from . import points  # noqa: F401
    return __version__


def _driver_failure(e: BaseException, what: str) -> dict:
    return {"status": "failed", "metrics": None, "error": f"{what}: {e}".splitlines()[0][:500],
            "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
            "finished_at": time.time()}


def run_sweep(spec, out, *, scheduler=None, workers=None, retry_failed=False, progress=None) -> SweepSummary:
    """Run every point of `spec` (a Spec or a TOML path) not yet done in `out`; see the module's notes.

    scheduler: address of an existing Dask scheduler ("tcp://host:port"); default
        $DASK_SCHEDULER_ADDRESS, else a LocalCluster of `workers` processes (default: one per core).
    retry_failed: run the points recorded as failed again (by default they count as done).
    progress: None shows a bar in a terminal and a line every few seconds elsewhere (bptt.progress.bar);
        False only those lines, once the sweep has run a few seconds (--quiet).
    """
    from concurrent.futures import CancelledError  # what a cancelled Dask future raises, in every version

    from ..progress import Stages
    from ..progress import bar as progress_bar

    with Stages("bptt sweep", delay=1.0) as stage:  # Dask's import takes seconds: said once it lasts one
        stage("importing Dask")
        require_dask()
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker

        from .. import __version__
        from .points import run_point

    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address and workers is not None:
        raise ValueError(f"workers sets the size of the local cluster; with a scheduler ({printable(address)}) "
                         "the cluster's own workers run the points: leave workers out")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {show(workers)}")
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the sweep's results")
    out.mkdir(parents=True, exist_ok=True)
    points = spec.points()
    by_key = {KEY_PREFIX + p.key: p for p in points}
    with folder_lock(out, also=store_path(out)), Store(store_path(out)) as store:
        store.add_points(spec.name, points)
        status = store.statuses(p.key for p in points)
        done = {"ok"} if retry_failed else {"ok", "failed"}
        todo = [p for p in points if status[p.key] not in done]
        run_id = store.begin_run(spec, len(todo))
        ok = failed = 0
        state = "interrupted"
        cluster = client = futures = None
        # from the cluster's start to its close: a bar in a terminal, lines every few seconds elsewhere
        bar = progress_bar(len(points), spec.name, "point", initial=len(points) - len(todo), quiet=progress is False,
                           dynamic_ncols=True) if todo else None
        try:
            if todo:
                if address:
                    client = Client(address, timeout="60s")
                else:
                    cluster = local_cluster(workers)
                    client = Client(cluster)
                try:
                    versions = set(client.run(_worker_probe).values())
                except Exception as e:
                    raise ValueError(f"the workers of {client.scheduler.address} cannot run sweep points "
                                     f"({type(e).__name__}: {e}); install bptt[sweep] in their environment") from None
                if versions - {__version__}:
                    print(f"bptt sweep: warning: workers run bptt {', '.join(sorted(versions))}, this driver "
                          f"{__version__}; each row records its worker's version", file=sys.stderr)
                store.run_ready(run_id, client.scheduler.address, sum(client.nthreads().values()))
                futures = client.map(run_point, [p.config for p in todo], key=[KEY_PREFIX + p.key for p in todo])
                for fut in as_completed(futures):
                    p = by_key[fut.key]
                    try:
                        res = fut.result()
                    except CancelledError:
                        continue  # not the point's fault: it stays pending
                    except KilledWorker as e:
                        res = _driver_failure(e, "KilledWorker: its worker process died while running it")
                    except Exception as e:  # e.g. the config could not be unpickled on the worker
                        res = _driver_failure(e, type(e).__name__)
                    store.record(p.key, res, run_id)
                    ok += res["status"] == "ok"
                    failed += res["status"] != "ok"
                    bar.update(1)
                    if failed:
                        bar.set_postfix(failed=failed, refresh=False)
            state = "done"
        finally:
            if futures is not None and state != "done":
                with contextlib.suppress(Exception):
                    client.cancel(futures)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            if state == "done" and ok + failed < len(todo):
                state = "incomplete"  # some points never came back (the cluster went away): still pending
            store.end_run(run_id, state, ok, failed)
            if bar is not None:
                bar.close()
        lost = len(todo) - ok - failed
        after = list(store.statuses(p.key for p in points).values())
        return SweepSummary(out, run_id, len(points), len(points) - len(todo), ok, failed, lost,
                            time.perf_counter() - t0, after.count("failed"), after.count("pending"))
