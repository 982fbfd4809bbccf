"""`bptt demo`: the notebook's example, computed exactly, written out term by term, and verified."""
from __future__ import annotations

import numpy as np

HELP = "reproduce the notebook's example: states, gradients, dE/dW term by term, verification"

NOTEBOOK_STATES = [[0.66403679, 0.93540908], [0.97233045, 0.99800043], [0.99943743, 0.99999977]]


def add_arguments(p):
    p.add_argument("--precision", type=int, default=8, help="digits printed (default 8)")
    p.add_argument("--frameworks", default="installed",
                   help="the frameworks the verification compares with: comma-separated torch,jax,tensorflow; "
                        "'installed' (default) or 'none'")


def _mat(a, p):
    return np.array2string(np.asarray(a), precision=p, separator=", ", max_line_width=10_000).replace("\n", "")


def _indent(text):
    return "\n".join("   " + line if line else "" for line in text.splitlines())


def run(args) -> int:
    from ..backend import forward, gradients
    from ..flow import flow
    from ..model import seed_example
    from .check import verify

    from ..validate import integer

    p = integer("--precision", args.precision, 0, 17)  # float64 holds 17 significant digits
    model, x, y = seed_example()
    say = print
    say("bptt demo: the notebook's RNN, computed exactly and verified\n")
    say("1. The model: z_t = U x_t + W s_{t-1}, s_t = tanh(z_t), q_t = V s_t, o_t = softmax(q_t),")
    say("   E = sum_t -log o_t[y_t]; H = 2 hidden units, D = O = 3 words (the notebook's weights)")
    for k in "UWV":
        say(f"   {k} = {_mat(getattr(model, k), p)}")

    dense = np.array([[0, 1, 2], [1, 2, 3], [4, 5, 6]], dtype=float)
    states = forward(model, dense).states[1:]
    say("\n2. Forward propagation on the dense inputs x = [[0, 1, 2], [1, 2, 3], [4, 5, 6]]")
    say(f"   {'step':<5} {'s_t (bptt, float64)':<28} the notebook printed (float32)")
    for t, (s, nb) in enumerate(zip(states, NOTEBOOK_STATES)):
        say(f"   {t:<5} {np.array2string(s, precision=8, separator=', '):<28} {nb}")

    say("\n3. Loss and gradients for x = ids [1, 0, 2] (the notebook's one-hot rows [[0,1,0], [1,0,0],")
    say("   [0,0,1]]), y = ids [0, 2, 1], bptt_truncate = 3. With T = 3 steps, truncate = 3 keeps every")
    say("   term: the notebook's rule sends the error of output t back to steps t-3..t.")
    loss, g = gradients(model, x, y, truncate=3)
    say(f"   E = {loss:.{p + 2}g}")
    for k in "UVW":
        say(f"   dE/d{k} = {_mat(getattr(g, k), p)}")

    say("\n4. dE_{t+1}/dW as the notebook writes it, with t+1 = 2, the last step: a sum of three terms,")
    say("   each a longer chain of W and ds/dz factors (ds/dz = diag(1 - s^2) for tanh)\n")
    fl = flow(model, x, y)
    say(_indent(fl.explain("W", 2, precision=min(p, 6))))
    say("\n   The older the term, the smaller its error signal: ||dE_2/dz_k|| for lags 0, 1, 2 = "
        + ", ".join(f"{fl.dE_dz[2, k]:.3g}" for k in (2, 1, 0)))
    say("   (the oldest term multiplies s_-1 = h0 = 0, so it is exactly zero here)")

    say("\n5. Verification of the gradients in section 3")
    ok, text, _ = verify(model, x, y, truncate=3 if args.frameworks != "none" else None,
                         frameworks=args.frameworks)
    say(_indent(text))
    say("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1
