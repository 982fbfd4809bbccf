"""bptt sample: text from a character model trained by `bptt train`, at a temperature."""
from __future__ import annotations

HELP = "sample characters from a trained character model (bptt train --task char/reber; any cell)"


def add_arguments(p):
    p.add_argument("run", help="the folder `bptt train --out` wrote (model.npz, vocab.json)")
    p.add_argument("-n", type=int, default=200, help="characters to draw (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1)")
    p.add_argument("--start", default=None, help="text to prime the state with, printed before the sampled text")
    p.add_argument("--seed", type=int, default=0, help="seed for the draws")


def run(args) -> int:
    import json
    from pathlib import Path

    from ..model import Model
    from ..tasks import Vocab, sample

    run_dir = Path(args.run)
    if not (run_dir / "vocab.json").is_file():
        raise ValueError(f"{run_dir} has no vocab.json: sampling needs a run of a character task (char or reber)")
    model = Model.load(run_dir / "model.npz")
    vocab = Vocab(json.loads((run_dir / "vocab.json").read_text())["chars"])
    text = sample(model, vocab, args.n, seed=args.seed, start=args.start, temperature=args.temperature)
    print((args.start or "") + text)  # the priming text first, then what was drawn after it
    return 0
