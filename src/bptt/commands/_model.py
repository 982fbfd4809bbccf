"""The model a command works on: a model file of any registered cell, or a random model described by options."""
from __future__ import annotations

FORGET_BIAS = 1.0  # a random LSTM's forget-gate bias on the command line, the default of bptt train and sweeps
OPTIONS = ("activation", "init", "radius", "forget_bias", "r_min", "r_max", "max_phase", "normalise", "dt", "gamma",
           "eps", "implicit", "std")
# the options of a cell's random model that the command line takes (each checked against Cell.options)


def _bool(text):
    import argparse

    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cells_text(owners) -> str:
    """"the lru cell", "the lru, linear cells": the cells an option belongs to, for a help or an error."""
    return f"the {', '.join(owners) or 'no'} cell{'s' if len(owners) > 1 else ''}"


def add_model_arguments(p, *, hidden, inputs, outputs, init="uniform"):
    """The options of a random model of any registered cell (--cell and its options), or --model FILE."""
    from .. import cells

    names = cells.names()
    p.add_argument("--model", metavar="FILE", help="a model saved with .save (.npz), of any cell; default: a "
                   "random model")
    p.add_argument("--cell", default="rnn", help=f"the random model's cell: {', '.join(names)} (default rnn, the "
                   "Elman cell; a gated cell with PyTorch's initialisation, every weight and bias uniform on "
                   "+-1/sqrt(H))")
    p.add_argument("--hidden", type=int, default=hidden, help=f"H for a random model (default {hidden})")
    p.add_argument("--inputs", type=int, default=inputs, help=f"D for a random model (default {inputs})")
    p.add_argument("--outputs", type=int, default=outputs, help=f"O for a random model (default {outputs})")
    for option, text in (
            ("activation", "tanh, relu, sigmoid, identity or modrelu (default tanh)"),
            ("init", f"W's initialiser: uniform, normal, orthogonal or identity (default {init}"
                     + ("" if init == "uniform" else "; orthogonal here so that --radius sets every singular value "
                        "of W, where bptt check and bptt.random_rnn default to uniform") + ")"),
            ("radius", "rescale W to this spectral radius"),
            ("forget_bias", "added to the forget gate's bias (default 1.0, as bptt train and sweeps: the cell starts "
                            "by keeping its memory; 0 is PyTorch's initialisation)"),
            ("r_min", "the smallest |lambda| of the recurrence (the LRU's ring; the linear cell's range) (default 0)"),
            ("r_max", "the largest |lambda| (default 1)"),
            ("max_phase", "the eigenvalues' phases drawn on [0, max_phase] (default 2 pi)"),
            ("normalise", "true: gamma = sqrt(1 - |lambda|^2) (default); false: gamma = 1, the complex diagonal "
                          "recurrence without normalisation"),
            ("dt", "the time step (> 0; default 0.042)"),
            ("gamma", "the restoring force on y (>= 0; default 2.7)"),
            ("eps", "the damping (>= 0; default 4.7)"),
            ("implicit", "true: the paper's implicit damping (default); false: the authors' code's explicit one")):
        kind = float if option in ("radius", "forget_bias", "r_min", "r_max", "max_phase", "dt", "gamma", "eps") else \
            _bool if option in ("normalise", "implicit") else str
        p.add_argument("--" + option.replace("_", "-"), type=kind, metavar="true|false" if kind is _bool else None,
                       help=f"{text}; for {cells_text(cells.owners(option))}")
    p.add_argument("--std", type=float, help="standard deviation of the weights for --init normal (of every weight "
                   f"of a cell with its own initialisation: Gaussian instead of uniform); for "
                   f"{cells_text(cells.owners('std'))}")
    p.add_argument("--bias", action="store_true", help="give the random Elman model biases b and c (drawn from "
                   f"N(0, 0.1)); the other cells whose init takes bias "
                   f"({', '.join(n for n in cells.owners('bias') if not cells.get(n).pascanu)}) "
                   "always have them")
    p.set_defaults(_model_init=init)


def model_from_args(args, rng):
    """The --model file (any registered cell), or a random model of --cell from the options given,
    drawing from rng (bptt.random_model). An option the cell does not take is a ValueError."""
    from .. import cells
    from ..model import Model, random_model

    if args.model:
        return Model.load(args.model)
    cls, _ = cells.resolve(args.cell)
    options = cls.options()
    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k, None) is not None}
    if args.bias:
        given["bias"] = True
    if "init" in options:
        given.setdefault("init", args._model_init)
        given.setdefault("activation", "tanh")
    if "forget_bias" in options:
        given.setdefault("forget_bias", FORGET_BIAS)
    for k in given:
        if k not in options:
            raise ValueError(f"--{k.replace('_', '-')} is an option of {cells_text(cells.owners(k))}, not of "
                             f"{cls.name}: leave it out or use --cell {(cells.owners(k) or ['rnn'])[0]}")
    if cls.pascanu:
        given.pop("bias", None)  # drawn below, from N(0, 0.1)
    model = random_model(args.cell, args.hidden, args.inputs, args.outputs, seed=rng, **given)
    if args.bias and cls.pascanu:
        model = model.replace(b=rng.normal(0, 0.1, model.H), c=rng.normal(0, 0.1, model.O))
    return model


def check_sequence_size(model, T, N):
    """--length T and --batch N at least 1 and, with the model's sizes, within the element limit of
    bptt.validate.max_elements(): a forward trace holds about N T (G H + H + O) numbers."""
    from ..validate import too_big

    if T < 1 or N < 1:
        raise ValueError(f"--length and --batch must be at least 1, got {T} and {N}")
    too_big(f"--batch {N} x --length {T} with H = {model.H}", N * T * (model.cell.width(model) + model.H + model.O))
