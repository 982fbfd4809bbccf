"""`bptt report`: the self-contained HTML report of vanishing and exploding gradients."""
from __future__ import annotations

HELP = "write the HTML report: the notebook's derivation, its check, lag curves, theory, the cliff, the cures"


def add_arguments(p):
    p.add_argument("--out", metavar="FILE", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--quick", action="store_true", help="a small sweep (H = 8, T = 30): seconds instead of a minute")
    p.add_argument("--seed", type=int, default=0, help="seed for the models and sequences (default 0)")


def run(args) -> int:
    import time

    from bptt.plots import require_matplotlib
    from bptt.report import write_report

    require_matplotlib()
    t0 = time.perf_counter()
    path = write_report(args.out, quick=args.quick, seed=args.seed, progress=True)  # bptt.progress.bar: lines off a terminal
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KiB, self-contained) in {time.perf_counter() - t0:.1f} s")
    return 0
