"""`bptt diagnose`: the exact flow of the gradient inside a saved network's recurrent layers (a
PyTorch state dict or a Keras file), on a batch from a file: the text summary on stdout, the page
with --out (bptt.diagnose underneath)."""
from __future__ import annotations

HELP = ("where the gradient vanishes or explodes inside a saved PyTorch or Keras network's recurrent layers, on "
        "your batch")

EPILOG = """\
The input file (.npz) holds two arrays:
  x  ids (N, T) integers (through the file's embedding, or one-hot columns of D without one),
     or vectors (N, T, D) floats;
  y  class ids (N, T), -1 for a step that is not scored, or (N,): one label per sequence,
     scored at the last step.
--torch: the network is rebuilt from the state dict as embedding -> recurrent module -> Linear
head at every step. --keras: the model is diagnosed as saved. The loss is the cross-entropy
summed over the scored steps. See docs/diagnose.md.
"""


def add_arguments(p):
    from .. import cells
    from ..validate import listed

    p.epilog = EPILOG
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--torch", metavar="FILE.pt", help="a state dict saved with torch.save(model.state_dict()), "
                     "read without PyTorch and without running pickled code (tensors only, as "
                     "torch.load(weights_only=True) reads them): one "
                     f"{listed(cells.layers('torch'), 'nn.')} (any layers, bidirectional), a Linear head and "
                     "optionally an Embedding")
    src.add_argument("--keras", metavar="FILE.keras", help="a Keras model saved with model.save('NAME.keras'), "
                     "read with keras.saving.load_model(safe_mode=True) and diagnosed as saved: its consecutive "
                     f"{listed(cells.layers('keras'))} layers (or Bidirectional ones), under its own head")
    p.add_argument("--input", metavar="FILE.npz", required=True, help="the batch: arrays x and y (below)")
    p.add_argument("--out", metavar="FILE.html", help="write the page, one self-contained HTML file, into a folder "
                   "that exists (written atomically there; an existing file is replaced)")
    p.add_argument("--prefix", help="the recurrent module's name in the state dict (e.g. rnn), when it holds "
                   "more than one")
    p.add_argument("--head", help="the Linear head's name, when more than one weight has the recurrent module's "
                   "output width as in-features")
    p.add_argument("--embedding", help="the embedding's name, when more than one weight could be it")
    p.add_argument("--nonlinearity", choices=("tanh", "relu"), default="tanh",
                   help="an nn.RNN's nonlinearity (not stored in its state dict)")
    p.add_argument("--dtype", choices=("float64", "float32"),
                   help="--torch: compute in this precision (default float64: gradients exact to ~1e-12; float32 "
                        "as trained in float32, e.g. to find where it overflowed); a Keras model runs in its own")
    p.add_argument("--lags", default="4", metavar="N|all|none",
                   help="the shares of the gradient beyond lags 10, 100, 1000: of the first N sequences' gradient "
                        "(default 4), of the whole batch's (all), or none (a truncated backward pass per lag, K + 1 "
                        "errors a step: the costly part)")


def _lags(value):
    """--lags as diagnose's lags: True (all), False (none) or a number of sequences >= 1."""
    if value in ("all", "none"):
        return value == "all"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--lags must be a number of sequences >= 1, 'all' or 'none', got {value!r}")
    return int(value)


def run(args) -> int:
    args.lags = _lags(args.lags)
    if args.keras is not None:
        for flag in ("prefix", "head", "embedding", "dtype"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} is for --torch: a Keras model is diagnosed as saved, in its own dtype")
        return _keras(args)
    from ..diagnosis import diagnosed
    from ..diagnosis.statedict import load_state_dict, network, parts, read_input
    from ..progress import Stages

    with Stages("bptt diagnose", delay=1.0) as stage:  # on stderr once it lasts a second, every 2 s after
        stage(f"reading {args.torch}")
        sd = load_state_dict(args.torch)
        p = parts(sd, args.prefix, args.head, args.embedding)
        x, y, ids = read_input(args.input, p)
        stage.set("the diagnosis")
        d = diagnosed(network(sd, p, x, y, ids, dtype=args.dtype or "float64", nonlinearity=args.nonlinearity),
                      lags=args.lags)
    fed = ("ids through the embedding " + repr(p.embedding.rstrip(".")) if ids and p.embedding is not None
           else f"ids as one-hot columns of {p.D}" if ids else "vectors")
    print(f"read {args.torch}: nn.{p.kind}({p.D}, {p.H}, num_layers={p.layers}"
          f"{', bidirectional=True' if p.bidirectional else ''}{'' if p.bias else ', bias=False'}) "
          f"{p.prefix.rstrip('.')!r}, head {p.head.rstrip('.')!r} ({p.O} classes); x: {fed}; "
          f"y: {'one label per sequence, at the last step' if y.ndim == 1 else f'{int((y >= 0).sum())} scored steps'}")
    if p.ignored:
        shown = ", ".join(p.ignored[:6]) + (f", ... ({len(p.ignored)} in all)" if len(p.ignored) > 6 else "")
        print(f"not used (the network rebuilt is embedding -> recurrent module -> head): {shown}")
    print(d)
    if args.out:
        d.save(args.out)
        print(f"wrote {args.out}: one self-contained page (open it in a browser; it loads nothing)")
    return 0


def _keras(args) -> int:
    from ..diagnosis import diagnose
    from ..diagnosis.kerasfile import describe, functional, load, loss_function, read_input

    saved = load(args.keras)
    import keras
    import numpy as np

    from ..validate import read_npz

    arrays = read_npz(args.input, "input file")  # x's shape builds a Sequential's input (read_input checks it)
    x0 = arrays.get("x", np.zeros((1, 1), dtype=np.int64))
    model, layers = functional(saved, x0)
    x, y = read_input(args.input, model, layers)
    loss_fn, probs = loss_function(model, y)
    d = diagnose(model, layers, x, loss_fn, lags=args.lags)
    print(f"read {args.keras}: a Keras {type(saved).__name__} with {describe(keras, layers)}; its output "
          f"{'probabilities' if probs else 'logits'} of {int(model.outputs[0].shape[-1])} classes; y: "
          f"{'one label per sequence, at the last step' if y.ndim == 1 else f'{int((y >= 0).sum())} scored steps'}")
    print(d)
    if args.out:
        d.save(args.out)
        print(f"wrote {args.out}: one self-contained page (open it in a browser; it loads nothing)")
    return 0
