"""`bptt check`: verify the engine's gradients for a random model or a model file."""
from __future__ import annotations

import json

import numpy as np

from ._model import add_model_arguments, check_sequence_size, model_from_args
from ..validate import show

HELP = "check gradients against finite differences and every installed framework"


def add_arguments(p):
    add_model_arguments(p, hidden=8, inputs=5, outputs=5)
    p.add_argument("--length", type=int, default=10, help="T, steps of the random sequence (default 10)")
    p.add_argument("--batch", type=int, default=1, help="N, sequences (default 1)")
    p.add_argument("--truncate", type=int, help="the notebook's truncation K (checked against frameworks)")
    p.add_argument("--frameworks", default="installed",
                   help="comma-separated torch,jax,tensorflow; 'installed' (default) or 'none'")
    p.add_argument("--seed", type=int, default=0, help="seed for the model and the sequence (default 0)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _frameworks(spec):
    from bptt import frameworks

    if spec == "none":
        return [], []
    if spec == "installed":
        return frameworks.available(), [f for f in frameworks.NAMES if f not in frameworks.available()]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in frameworks.NAMES]
    if unknown:
        raise ValueError(f"unknown framework {show(unknown[0])}: expected {', '.join(frameworks.NAMES)}, 'installed' or 'none'")
    missing = [n for n in names if n not in frameworks.available()]
    if missing:
        raise ValueError(f"{missing[0]} is not installed: pip install 'bptt[{missing[0]}]'")
    return names, []


def verify(model, x, y, *, truncate=None, frameworks="installed", h0=None):
    """(ok, text, data): finite differences (full BPTT) and the frameworks (under `truncate`)."""
    from bptt import core
    from bptt import frameworks as fw
    from bptt.check import check

    truncate = core.truncation(truncate)  # the one check of a truncation: None or an int K >= 0
    names, absent = _frameworks(frameworks)
    lacking = [n for n in names if model.cell.name not in fw.reference(n).CELLS]
    names = [n for n in names if n not in lacking]
    T = np.asarray(x).shape[-1] if np.asarray(x).dtype.kind in "iu" else np.asarray(x).shape[-2]
    full = truncate is None or truncate >= T
    if not full and not names:  # a check of nothing must not report "all checks passed"
        raise ValueError(f"nothing to check: truncate={truncate} < T={T} is not the gradient of any loss, so "
                         "only the frameworks can check it, and none is "
                         + ("selected (--frameworks none)" if frameworks != "installed" else "installed"))
    parts, data, ok = [], {}, True
    if full:
        rep = check(model, x, y, h0=h0)
        parts.append(str(rep))
        data["finite_differences"] = rep.to_dict()
        ok &= rep.passed
    else:
        parts.append(f"finite differences: not applicable (truncate={truncate} < T={T} is not the gradient of the loss)")
    if names:
        from bptt.frameworks.stress import announce

        announce(names)  # on stderr at once: "importing PyTorch ... (about 15 s)...", if any is still to come
        cmp = fw.compare(model, x, y, frameworks=names, truncate=truncate, h0=h0)  # and every 2 s while it lasts
        parts.append(str(cmp))
        data["frameworks"] = cmp.to_dict()
        ok &= cmp.passed
    if lacking:
        parts.append("\n".join(f"{n}: has no {model.cell.name} cell, not compared" for n in lacking))
    if absent:
        parts.append("\n".join(f"{a}: not installed, not compared (pip install 'bptt[{a}]')" for a in absent))
    data["passed"] = bool(ok)
    return bool(ok), "\n\n".join(parts), data


def run(args) -> int:
    from bptt import core

    try:  # before any work: a window that cannot exist is an error, never a check of nothing
        core.truncation(args.truncate)
    except ValueError:
        raise ValueError(f"--truncate must be an integer K >= 0 (leave it out for full BPTT), "
                         f"got {args.truncate}") from None
    rng = np.random.default_rng(args.seed)
    model = model_from_args(args, rng)
    for name in ("length", "batch"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    check_sequence_size(model, args.length, args.batch)
    lead = (args.length,) if args.batch == 1 else (args.batch, args.length)
    x = rng.integers(0, model.D, lead)
    y = rng.normal(size=lead + (model.O,)) if model.head == "mse" else rng.integers(0, model.O, lead)
    if not args.json:  # what is checked, at once (the frameworks' imports take seconds)
        print(f"{model!r}, T = {args.length}, N = {args.batch}, truncate = {args.truncate}\n", flush=True)
    ok, text, data = verify(model, x, y, truncate=args.truncate, frameworks=args.frameworks)
    if args.json:
        print(json.dumps({"model": repr(model), "T": args.length, "N": args.batch, "truncate": args.truncate, **data},
                         indent=2))
    else:
        print(text)
        print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1
