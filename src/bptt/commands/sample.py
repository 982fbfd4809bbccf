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
    from ..files import run_folder
    from ..stack import load_model
    from ..tasks import Vocab, sample

    run_dir = run_folder(args.run)
    if not (run_dir / "vocab.json").is_file():
        raise ValueError(f"{run_dir} has no vocab.json: sampling needs a run of a character task (char or reber)")
    model = load_model(run_dir / "model.npz")  # one layer or a stack
    vocab = Vocab(_chars(run_dir / "vocab.json", model.O))
    text = sample(model, vocab, args.n, seed=args.seed, start=args.start, temperature=args.temperature)
    print((args.start or "") + text)  # the priming text first, then what was drawn after it
    return 0


MAX_VOCAB_BYTES = 50_000_000


def _chars(path, O):
    """The characters of a vocab.json ({"chars": [one-character strings]}), one per model output."""
    from ..files import read_json

    data = read_json(path, "the vocabulary", limit=MAX_VOCAB_BYTES)
    chars = data.get("chars") if isinstance(data, dict) else None
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise ValueError(f'{path} must be {{"chars": [...]}} with one-character strings, got {str(data)[:60]}')
    if len(set(chars)) != len(chars) or len(chars) != O:
        raise ValueError(f"{path} must list {O} different characters (the model's O outputs), got {len(chars)} "
                         f"({len(set(chars))} different)")
    return chars
