"""bptt train: train an RNN on a task, logging metrics, lag snapshots and checkpoints into --out."""
from __future__ import annotations

HELP = "train an RNN on a task (adding, copy, temporal, reber, char) with clipping, Omega, TBPTT, checkpoints"


def add_arguments(p):
    p.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file (flags override it)")
    p.add_argument("--task", help="adding | copy | temporal | reber | char (default reber)")
    p.add_argument("--text", help="text file for --task char (without one: the embedded Reber corpus)")
    p.add_argument("--variant", help="adding problem: hochreiter (1997, default) or le (Le et al. 2015)")
    p.add_argument("--length", type=int, help="sequence length T (adding, copy, temporal)")
    p.add_argument("--hidden", type=int, help="hidden units H")
    p.add_argument("--activation", help="tanh | relu | sigmoid | identity")
    p.add_argument("--init", help="W's initialisation: uniform | normal | orthogonal | identity (IRNN)")
    p.add_argument("--std", type=float, help="standard deviation of Gaussian weights")
    p.add_argument("--radius", type=float, help="rescale W to this spectral radius")
    p.add_argument("--optimizer", help="sgd | momentum | nesterov | adagrad | rmsprop | adam")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--clip-norm", type=float, help="clip the global gradient norm (Pascanu et al.); 0 = off")
    p.add_argument("--clip-value", type=float, help="clip each element into [-c, c] (min-char-rnn); 0 = off")
    p.add_argument("--clip-per-param", type=float, help="clip each parameter's gradient norm; 0 = off")
    p.add_argument("--fallback", help="when the gradient norm is NaN/Inf/>1e10: stop (default) | shrink | skip")
    p.add_argument("--omega", type=float, help="strength alpha of Pascanu's regulariser Omega (0 = off)")
    p.add_argument("--truncate", type=int, help="the notebook's window: output t reaches steps t-K..t")
    p.add_argument("--chunk", type=int, help="streams: k1, outputs per update (min-char-rnn's 25)")
    p.add_argument("--backprop", type=int, help="streams: k2 >= k1, steps each update backpropagates")
    p.add_argument("--batch", type=int, help="sequences (or parallel streams) per step")
    p.add_argument("--steps", type=int, help="updates")
    p.add_argument("--seed", type=int, help="seed for the weights and the data")
    p.add_argument("--dtype", help="float32 (default) or float64")
    p.add_argument("--eval-every", type=int, help="steps between test metrics and lag analysis")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--lag-threshold", type=int, help="lag from which gradient terms count as long-range")
    p.add_argument("--snapshots", help="steps at which to save the lag table, e.g. 0,500,1000")
    p.add_argument("--stop-on-success", action="store_true", default=None,
                   help="end the run when the held-out set meets the task's success criterion")
    p.add_argument("--out", required=True, help="folder for metrics.jsonl, checkpoints, the model")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
            raise ValueError(f"--snapshots takes step numbers separated by commas, got {args.snapshots!r}") from None
    cfg = resolve(cli, read_toml(args.config) if args.config else None)
    try:
        train(cfg, args.out, resume=args.resume, progress=not args.quiet,
              log=lambda s: print(s, file=sys.stderr))
    except Diverged as e:
        print(f"bptt train: {e}", file=sys.stderr)
        return 1
    return 0
