"""bptt train: train a recurrent network of any registered cell on a task, logging metrics, lag snapshots
and checkpoints into --out."""
from __future__ import annotations

import argparse

from ..validate import show

HELP = ("train a recurrent network (any cell) on a task (adding, copy, temporal, reber, char) with clipping, "
        "Omega, TBPTT, checkpoints")

# The tasks' paper settings, as the tasks' `defaults` hold them (tests/test_cli.py checks this text
# against them); a flag or --config overrides each.
TASK_DEFAULTS = """\
  adding    hidden 50, activation tanh, init normal, std 0.1, optimizer sgd, lr 0.01, clip_norm 1.0, batch 20, steps 2000, length 100
  copy      hidden 80, activation tanh, init orthogonal, optimizer rmsprop, lr 0.001, clip_norm 1.0, batch 20, steps 2000, length 100
  temporal  hidden 50, activation tanh, init normal, std 0.1, optimizer sgd, lr 0.01, clip_norm 1.0, batch 20, steps 2000, length 100
  reber     hidden 20, activation tanh, init normal, std 0.1, optimizer adam, lr 0.01, clip_norm 1.0, batch 8, chunk 25, steps 2000
  char      hidden 100, activation tanh, init normal, std 0.01, optimizer adagrad, lr 0.1, clip_value 5.0, batch 1, chunk 25, steps 2000"""

def _epilog():
    """The help's closing text, its cells and their options read from the registry."""
    from .. import cells

    gated = next((n for n in cells.owners("forget_bias")), None)
    example = (f"  bptt train --task adding --length 100 --cell {gated} --forget-bias 1.0 --optimizer adam --lr 0.001 "
               f"--out runs/{gated}\n  bptt train --out runs/{gated} --resume   (with the same flags: continues from "
               f"runs/{gated}/checkpoint.npz)") if gated else ""
    import textwrap

    own = lambda option: ", ".join(cells.owners(option))  # noqa: E731
    cells_text = textwrap.fill(
        "With a --cell other than rnn (the Elman cell) the task's activation, init and std do not apply: the cell "
        "starts from its own initialisation (a gated cell from PyTorch's, every weight uniform on +-1/sqrt(H); the "
        "LRU from its ring), or Gaussian with --init normal --std S. --activation, --radius, --omega and the "
        f"orthogonal and identity (IRNN) inits are the Elman cell's; --forget-bias the {own('forget_bias')} cell's; "
        f"--reset-after the {own('reset_after')} cell's; --r-min and --r-max the {own('r_min')} cells'; --max-phase "
        f"and --normalise the {own('normalise')} cell's; --dt, --gamma, --eps and --implicit the {own('dt')} cell's; --std (and --init normal) those whose init takes it "
        f"({own('std')}): each is refused for another cell (exit 2).", width=100)
    return f"""\
defaults: a flag > --config FILE.toml > the task's paper settings (below) > the default in each
flag's help. The task's settings:
{TASK_DEFAULTS}
{cells_text}

examples:
  bptt train --task temporal --length 40 --out runs/t40
{example}
"""


def _bool(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {show(text)}")


def add_arguments(p):
    from .. import cells, floss

    p.epilog = _epilog()
    from ..cli import HelpFormatter

    p.formatter_class = HelpFormatter  # keeps the epilog's layout, shows each flag's default
    p.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file (flags override it)")
    p.add_argument("--task", help="adding | copy | temporal | reber | char (default reber)")
    p.add_argument("--text", help="the text file --task char models (required there)")
    p.add_argument("--variant", help="adding problem: hochreiter (1997, default) or le (Le et al. 2015)")
    p.add_argument("--length", type=int, help="sequence length T (adding, copy, temporal; default the task's: 100)")
    p.add_argument("--cell", help=f"{' | '.join(cells.names())} (default rnn, the Elman cell)")
    p.add_argument("--hidden", type=int, help="hidden units H (default the task's, else 50)")
    p.add_argument("--layers", type=int, help="a stack of this many layers of the cell, H units each per direction, "
                   "under one head (bptt.Stack; default 1)")
    p.add_argument("--bidirectional", action="store_true", default=None,
                   help="every layer of the stack in both directions, side by side (whole-sequence tasks: adding, "
                        "copy, temporal); a stack refuses --omega, --param, --truncate and --fallback shrink")
    p.add_argument("--activation", help="rnn: tanh | relu | sigmoid | identity | modrelu (default tanh)")
    p.add_argument("--init", help="uniform | normal (needs --std) | orthogonal | identity (IRNN) | henaff: the Elman "
                                  "cell's W (with --param: A's start, henaff or identity; default henaff); "
                                  "another cell: uniform (its own) or normal (default the task's, else uniform)")
    p.add_argument("--std", type=float, help="standard deviation of Gaussian weights (default the task's, else none)")
    p.add_argument("--radius", type=float, help="rnn: rescale W to this spectral radius (default: not rescaled)")
    p.add_argument("--forget-bias", type=float,
                   help=f"{', '.join(cells.owners('forget_bias'))}: added to the forget gate's bias at the start "
                        "(default 1.0, Jozefowicz et al. 2015; 0 = PyTorch's init)")
    p.add_argument("--reset-after", type=_bool, metavar="true|false",
                   help=f"{', '.join(cells.owners('reset_after'))}: the reset gate after W_n (true, default: PyTorch, "
                        "Keras) or before (false)")
    p.add_argument("--r-min", type=float, help=f"{', '.join(cells.owners('r_min'))}: the smallest |lambda| of the "
                   "recurrence (the LRU's ring, the linear cell's range) (default the cell's: 0)")
    p.add_argument("--r-max", type=float, help=f"{', '.join(cells.owners('r_max'))}: the largest |lambda| "
                   "(default the cell's: 1)")
    p.add_argument("--max-phase", type=float, help=f"{', '.join(cells.owners('max_phase'))}: the eigenvalues' phases "
                   "on [0, max_phase] (default the cell's: 2 pi)")
    p.add_argument("--normalise", type=_bool, metavar="true|false",
                   help=f"{', '.join(cells.owners('normalise'))}: gamma = sqrt(1 - |lambda|^2) (true, default) or "
                        "gamma = 1 (false: the complex diagonal recurrence without normalisation)")
    p.add_argument("--param", help="rnn: train A instead of W, W = expm(A) (exp) or Cayley(A) (cayley) of A's skew "
                                   "part, orthogonal after every update (bptt.param; default: W itself)")
    p.add_argument("--param-lr", type=float, help="with --param: A's learning rate (default --lr)")
    p.add_argument("--dt", type=float, help=f"{', '.join(cells.owners('dt'))}: the time step (> 0; default the "
                   "cell's: 0.042, the authors' sMNIST run)")
    p.add_argument("--gamma", type=float, help=f"{', '.join(cells.owners('gamma'))}: the restoring force on y "
                   "(>= 0; default the cell's: 2.7)")
    p.add_argument("--eps", type=float, help=f"{', '.join(cells.owners('eps'))}: the damping (>= 0; default the "
                   "cell's: 4.7)")
    p.add_argument("--implicit", type=_bool, metavar="true|false",
                   help=f"{', '.join(cells.owners('implicit'))}: the damping -dt eps z_n implicit (true, default: the "
                        "paper's IMEX step) or at z_(n-1) (false: the authors' code)")
    p.add_argument("--floss", type=int, metavar="K",
                   help="gradient flossing (Engelken 2023) of the K leading Lyapunov exponents, towards 0, by their "
                        "exact gradient: before training, then every --floss-every updates "
                        f"({', '.join(floss.supported())}; default off)")
    p.add_argument("--floss-steps", type=int, help="with --floss: flossing-only Adam updates before training, on "
                   "one batch drawn for them (default 100)")
    p.add_argument("--floss-every", type=int, help="with --floss: every N-th update adds --floss-weight times the "
                   "regulariser's gradient on its batch (default 0: never, flossing before training only)")
    p.add_argument("--floss-weight", type=float, help="with --floss-every: the regulariser's weight (default 1)")
    p.add_argument("--floss-lr", type=float, help="with --floss: the flossing updates' Adam learning rate "
                   "(default 0.003)")
    p.add_argument("--optimizer", help="sgd | momentum | nesterov | adagrad | rmsprop | adam (default the task's, else sgd)")
    p.add_argument("--lr", type=float, help="learning rate (default the task's, else 0.01)")
    p.add_argument("--clip-norm", type=float,
                   help="clip the global gradient norm (Pascanu et al.); 0 = off (default the task's, else off)")
    p.add_argument("--clip-value", type=float,
                   help="clip each element into [-c, c] (min-char-rnn); 0 = off (default the task's, else off)")
    p.add_argument("--clip-per-param", type=float, help="clip each parameter's gradient norm; 0 = off (default off)")
    p.add_argument("--fallback", help="when the gradient norm is NaN/Inf/>1e10: stop (default) | shrink | skip")
    p.add_argument("--omega", type=float,
                   help="rnn: strength alpha of Pascanu's regulariser Omega (default 0 = off)")
    p.add_argument("--truncate", type=int,
                   help="the notebook's window: output t reaches steps t-K..t (default: full BPTT)")
    p.add_argument("--chunk", type=int, help="streams: k1, outputs per update (default 25, min-char-rnn's)")
    p.add_argument("--backprop", type=int, help="streams: k2 >= k1, steps each update backpropagates (default k1)")
    p.add_argument("--batch", type=int,
                   help="sequences (or parallel streams) per step (default the task's, else 20)")
    p.add_argument("--steps", type=int, help="updates (default the task's, else 1000)")
    p.add_argument("--seed", type=int, help="seed for the weights and the data (default 0)")
    p.add_argument("--dtype", help="float32 (default) or float64")
    p.add_argument("--eval-every", type=int, help="steps between test metrics and lag analysis (default 100)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 100)")
    p.add_argument("--lag-threshold", type=int, help="lag from which gradient terms count as long-range (default 10)")
    p.add_argument("--snapshots", help="steps at which to save the lag table, e.g. 0,500,1000 (default none)")
    p.add_argument("--stop-on-success", action="store_true", default=None,
                   help="end the run when the held-out set meets the task's success criterion")
    p.add_argument("--minutes", type=float, help="a wall-clock budget: end the run after the first update that "
                   "finds it spent (default none)")
    p.add_argument("--out", required=True, help="folder for metrics.jsonl, checkpoints, the model")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint (with a larger "
                   "--steps: extend it)")
    p.add_argument("--force", action="store_true", help="start a new run in an --out that holds one (its files are "
                   "replaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no log lines (the final result is still printed; a run "
                        "that lasts says on stderr every few seconds that it runs)")


def run(args) -> int:
    import sys
    from dataclasses import fields

    from ..train import Diverged, TrainConfig, read_toml, resolve, train

    # every TrainConfig setting; one without a flag here (bias) is None: not given
    cli = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    if args.snapshots is not None:
        try:
            cli["snapshots"] = [int(s) for s in args.snapshots.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--snapshots takes step numbers separated by commas, got {show(args.snapshots)}") from None
    cfg = resolve(cli, read_toml(args.config) if args.config else None)
    try:
        if args.resume and args.force:
            raise ValueError("--resume continues the run in --out and --force replaces it: give one of them")
        import contextlib

        from ..progress import Stages

        # --quiet: no bar and no log lines; a run that lasts still says so on stderr every few seconds
        with Stages("bptt train", delay=1.0) if args.quiet else contextlib.nullcontext() as stage:
            if args.quiet:
                stage(f"{cfg.steps} steps into {args.out}")
            summary = train(cfg, args.out, resume=args.resume, force=args.force, progress=not args.quiet,
                            log=lambda s: print(s, file=sys.stderr))
    except Diverged as e:
        print(f"bptt train: {e}", file=sys.stderr)
        return 1
    if args.quiet:  # --quiet hides the progress, never the result
        if summary.get("floss"):
            from ..train.flossing import describe
            print(describe(summary["floss"]))
        print(f"test loss {summary['test_loss']:.5g} (memoryless baseline {summary['baseline']:.5g}); "
              f"success: {'yes' if summary['test_success'] else 'no'} (criterion: {summary['criterion']})")
    return 0
