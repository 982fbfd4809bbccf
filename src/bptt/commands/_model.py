"""The model a command works on: a model file, or a random model described by options."""
from __future__ import annotations

CELLS = ("elman", "lstm", "gru")


def add_model_arguments(p, *, hidden, inputs, outputs, init="uniform", cells=False):
    """The options of a random model (or --model FILE). cells=True adds --cell elman|lstm|gru and
    --forget-bias, and lets --model read a model of any kind."""
    p.add_argument("--model", metavar="FILE", help="a model saved with .save (.npz); default: a random model")
    if cells:
        p.add_argument("--cell", default="elman", help="the random model's cell: elman, lstm or gru (default elman; "
                       "lstm and gru with PyTorch's initialisation, every weight and bias uniform on +-1/sqrt(H))")
        p.add_argument("--forget-bias", type=float, default=0.0,
                       help="added to the forget gate's bias of a random LSTM (default 0; 1 keeps its memory)")
    p.add_argument("--hidden", type=int, default=hidden, help=f"H for a random model (default {hidden})")
    p.add_argument("--inputs", type=int, default=inputs, help=f"D for a random model (default {inputs})")
    p.add_argument("--outputs", type=int, default=outputs, help=f"O for a random model (default {outputs})")
    p.add_argument("--activation", default="tanh", help="tanh, relu, sigmoid or identity (default tanh; Elman)")
    why = ("" if init == "uniform" else "; orthogonal here so that --radius sets every singular value of W, "
           "where bptt check and bptt.random_rnn default to uniform")
    p.add_argument("--init", default=init, help=f"W's initialiser: uniform, normal, orthogonal or identity "
                   f"(default {init}; Elman{why})")
    p.add_argument("--std", type=float, help="standard deviation of the weights for --init normal (of every weight "
                   "of a random LSTM or GRU: Gaussian instead of uniform)")
    p.add_argument("--radius", type=float, help="rescale W to this spectral radius (Elman)")
    p.add_argument("--bias", action="store_true", help="give the random Elman model biases b and c (drawn from "
                   "N(0, 0.1)); a random LSTM or GRU always has them")


def model_from_args(args, rng):
    """The --model file, or a random model from the options, drawing from rng: bptt.random_rnn for
    an Elman cell, bptt.model.random_gated for --cell lstm or gru."""
    from ..model import RNN, Model, random_gated, random_rnn

    cell = getattr(args, "cell", "elman")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(CELLS)}")
    if args.model:
        return (Model if hasattr(args, "cell") else RNN).load(args.model)
    if cell != "elman":
        if args.radius is not None:
            raise ValueError(f"--radius rescales an Elman cell's W, not a {cell.upper()}'s: "
                             "leave it out or use --cell elman")
        return random_gated(cell, args.hidden, args.inputs, args.outputs, seed=rng, std=args.std,
                            forget_bias=args.forget_bias if cell == "lstm" else 0.0)
    if getattr(args, "forget_bias", 0.0):
        raise ValueError("--forget-bias is the forget gate's bias of an LSTM: use it with --cell lstm")
    model = random_rnn(args.hidden, args.inputs, args.outputs, seed=rng, init=args.init, std=args.std,
                       radius=args.radius, activation=args.activation)
    if args.bias:
        model = model.replace(b=rng.normal(0, 0.1, model.H), c=rng.normal(0, 0.1, model.O))
    return model


def check_sequence_size(model, T, N):
    """--length T and --batch N at least 1 and, with the model's sizes, within the element limit of
    bptt.validate.max_elements(): a forward trace holds about N T (G H + H + O) numbers."""
    from ..validate import too_big

    if T < 1 or N < 1:
        raise ValueError(f"--length and --batch must be at least 1, got {T} and {N}")
    too_big(f"--batch {N} x --length {T} with H = {model.H}", N * T * (model.W.shape[0] + model.H + model.O))
