"""The model a command works on: a model file, or a random model described by options."""
from __future__ import annotations


def add_model_arguments(p, *, hidden, inputs, outputs, init="uniform"):
    p.add_argument("--model", metavar="FILE", help="a model saved with RNN.save (.npz); default: a random model")
    p.add_argument("--hidden", type=int, default=hidden, help=f"H for a random model (default {hidden})")
    p.add_argument("--inputs", type=int, default=inputs, help=f"D for a random model (default {inputs})")
    p.add_argument("--outputs", type=int, default=outputs, help=f"O for a random model (default {outputs})")
    p.add_argument("--activation", default="tanh", help="tanh, relu, sigmoid or identity (default tanh)")
    p.add_argument("--init", default=init, help=f"W's initialiser: uniform, normal, orthogonal or identity (default {init})")
    p.add_argument("--std", type=float, help="standard deviation of the weights for --init normal")
    p.add_argument("--radius", type=float, help="rescale W to this spectral radius")
    p.add_argument("--bias", action="store_true", help="give the random model biases b and c (drawn from N(0, 0.1))")


def model_from_args(args, rng):
    """RNN.load(--model), or bptt.random_rnn from the options, drawing from rng."""
    from ..model import RNN, random_rnn

    if args.model:
        return RNN.load(args.model)
    model = random_rnn(args.hidden, args.inputs, args.outputs, seed=rng, init=args.init, std=args.std,
                            radius=args.radius, activation=args.activation)
    if args.bias:
        model = model.replace(b=rng.normal(0, 0.1, model.H), c=rng.normal(0, 0.1, model.O))
    return model
