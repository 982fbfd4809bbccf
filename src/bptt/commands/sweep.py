"""`bptt sweep`: run a sweep spec on Dask, report on it, plot it."""
from __future__ import annotations

import json
import sys

from ..validate import show

HELP = "run a grid of experiments on Dask (resumable, results in SQLite); status and plots of a sweep"

USAGE = """
  bptt sweep SPEC.toml --out DIR [--workers N | --scheduler tcp://HOST:PORT] [--retry-failed] [--quiet]
  bptt sweep status DIR [--json] [--slowest N] [--failures N]
  bptt sweep plot DIR [--to FOLDER] [--format png|svg|pdf]
  bptt sweep params KIND            (the parameters of a kind of point: flow, train, approx)"""

EPILOG = """\
SPEC.toml names a kind of run (flow, train or approx), fixed parameters, a [grid] and/or [random] draws and
a number of seeds; see sweeps/ for ready ones. Each point runs in float32 with single-threaded BLAS
in a Dask worker; its row in DIR/results.sqlite is committed as soon as it finishes. Running the
same command again skips the finished points (failed ones too, unless --retry-failed), so a killed
sweep is resumed by running it again. Without --scheduler the points run on a local cluster of
worker processes (one per core, or --workers N); with --scheduler (or DASK_SCHEDULER_ADDRESS) on
an existing Dask cluster (SLURM via dask-jobqueue, Kubernetes, ...) whose workers have bptt[sweep].
Exit code of a run: 0 when every point of the spec is ok, 1 when some failed or are still pending.

examples:
  bptt sweep sweeps/flow-phase.toml --out runs/phase
  bptt sweep status runs/phase
  bptt sweep plot runs/phase            # figures in runs/phase/plots/
"""

ACTIONS = ("status", "plot", "params")


def add_arguments(p):
    p.usage = USAGE
    p.epilog = EPILOG
    from ..cli import HelpFormatter

    p.formatter_class = HelpFormatter  # keeps the epilog's layout, shows each flag's default
    p.add_argument("target", metavar="SPEC.toml|status|plot|params", help="a spec file to run, or status / plot / params")
    p.add_argument("dir", nargs="?", metavar="DIR", help="the sweep folder (for status and plot); the kind (for params)")
    run = p.add_argument_group("running a spec")
    run.add_argument("--out", metavar="DIR", help="the sweep folder: results.sqlite goes there (required)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes of the local cluster (default: one per core)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run on this existing Dask scheduler (default: $DASK_SCHEDULER_ADDRESS, else a local cluster)")
    run.add_argument("--retry-failed", action="store_true", help="run the points recorded as failed again")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar (a sweep that lasts still says on stderr every few seconds how far it is)")
    st = p.add_argument_group("status")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.add_argument("--slowest", type=int, default=5, metavar="N", help="list the N slowest points (default 5)")
    st.add_argument("--failures", type=int, default=10, metavar="N", help="list up to N failures (default 10)")
    pl = p.add_argument_group("plot")
    pl.add_argument("--to", metavar="FOLDER", help="where the figures go (default DIR/plots)")
    pl.add_argument("--format", default="png", choices=("png", "svg", "pdf"), help="figure format (default png)")


def _given(args, names):
    defaults = {"out": None, "workers": None, "scheduler": None, "retry_failed": False, "quiet": False,
                "json": False, "slowest": 5, "failures": 10, "to": None, "format": "png"}
    return [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) != defaults[n]]


def run(args) -> int:
    groups = {"run": ("out", "workers", "scheduler", "retry_failed", "quiet"),
              "status": ("json", "slowest", "failures"), "plot": ("to", "format"), "params": ()}
    action = args.target if args.target in ACTIONS and args.dir is not None else "run"
    if args.target in ACTIONS and args.dir is None:
        what, arg = ("the kind (flow, train or approx)", "KIND") if args.target == "params" else ("the sweep folder", "DIR")
        raise ValueError(f"`bptt sweep {args.target}` needs {what}: bptt sweep {args.target} {arg}")
    wrong = [o for g, names in groups.items() if g != action for o in _given(args, names)]
    if wrong:
        what = "running a spec" if action == "run" else f"`bptt sweep {action}`"
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to {what}; see bptt sweep --help")

    if action == "status":
        from bptt.sweep.report import status_summary, status_text

        if args.json:
            print(json.dumps(status_summary(args.dir, slowest=args.slowest, failures=args.failures), indent=2))
        else:
            print(status_text(args.dir, slowest=args.slowest, failures=args.failures))
        return 0
    if action == "params":
        print(params_text(args.dir))
        return 0
    if action == "plot":
        from bptt.progress import Stages
        from bptt.sweep.plots import plot

        with Stages("bptt sweep plot", delay=1.0) as stage:  # on stderr once drawing lasts a second
            stage(f"drawing the figures of {args.dir}")
            paths = plot(args.dir, to=args.to, fmt=args.format)
        for path in paths:
            print(path)
        return 0

    if args.dir is not None:
        raise ValueError(f"unexpected argument {show(args.dir)}: the sweep folder is given with --out DIR")
    if args.out is None:
        raise ValueError("running a spec needs --out DIR, the folder for results.sqlite")
    from bptt.sweep.runner import run_sweep
    from bptt.sweep.spec import load_spec

    spec = load_spec(args.target)
    summary = run_sweep(spec, args.out, scheduler=args.scheduler, workers=args.workers,
                        retry_failed=args.retry_failed, progress=False if args.quiet else None)
    print(summary)
    if summary.failed_total:
        print(f"{summary.failed_total} point(s) failed: bptt sweep status {args.out}", file=sys.stderr)
    return 0 if summary.failed_total == 0 and summary.pending == 0 else 1


def params_text(kind: str) -> str:
    """The parameters of a point kind: name, default, allowed values, meaning."""
    from bptt.sweep.points import KINDS

    if kind not in KINDS or not KINDS[kind].public:
        public = [k for k, v in KINDS.items() if v.public]
        raise ValueError(f"unknown kind {show(kind)}: expected one of {', '.join(public)}")
    rows = [(n, json.dumps(p.default), p.allowed(), p.help)
            for n, p in KINDS[kind].params.items()]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    head = f"parameters of kind {kind!r} (set in [fixed], [grid] or [random]; the seed comes from seeds):"
    return "\n".join([head] + [f"  {n:<{w[0]}}  default {d:<{w[1]}}  {a:<{w[2]}}  {h}" for n, d, a, h in rows])
