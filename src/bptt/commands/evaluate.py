"""bptt evaluate: a trained model on its task's held-out set, next to the baseline and the criterion."""
from __future__ import annotations

HELP = "evaluate a trained run (or its checkpoint) on the task's held-out set (any cell)"


def add_arguments(p):
    p.add_argument("run", help="the folder `bptt train --out` wrote")
    p.add_argument("--checkpoint", action="store_true", help="use checkpoint.npz instead of model.npz")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    import json

    from ..files import read_json, run_folder
    from ..stack import load_model
    from ..train import TrainConfig, checkpoint
    from ..train.loop import build_task

    run_dir = run_folder(args.run)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} has no config.json: give a folder written by `bptt train --out`")
    saved = read_json(run_dir / "config.json", "the run's settings", limit=1_000_000)
    cfg = TrainConfig.from_dict(saved, source=str(run_dir / "config.json"))
    if args.checkpoint:
        model = checkpoint.load(run_dir / "checkpoint.npz")[0]
    else:
        if not (run_dir / "model.npz").is_file():
            raise ValueError(f"{run_dir} has no model.npz (the run did not finish): use --checkpoint")
        model = load_model(run_dir / "model.npz")  # one layer or a stack
    task = build_task(cfg)
    res = {**task.evaluate(model), "baseline": float(task.baseline)}
    if args.json:
        print(json.dumps(res))
    else:  # the task's description holds the baseline and the criterion; mse is the loss of an mse head
        print(task.describe())
        for k, v in res.items():
            if k == "baseline" or (k == "mse" and v == res.get("loss")):
                continue
            shown = ("yes" if v else "no") if isinstance(v, bool) else f"{v:.6g}" if isinstance(v, float) else v
            print(f"  {k}: {shown}")
    return 0
