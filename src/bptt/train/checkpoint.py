"""Checkpoints: model, optimiser state, RNG state and loop state in one .npz, written atomically.

Layout of the .npz (no pickles; read with allow_pickle=False):
    model/U, model/W, ...     the parameters
    opt/<slot>/<name>         the optimiser's state arrays (bptt.train.optim.flatten_state)
    extra/<name>              other arrays (the carried hidden state of a stream)
    meta                      a JSON string: step, RNG bit_generator.state, loop scalars, config,
                              and the model's cell and settings: cell (a registered cell's name),
                              model_kind (its model class: RNN, LSTM, GRU, ...; checkpoints
                              without cell name only this, those before the gated cells neither:
                              RNN), head and the cell's settings (activation, reset_after, ...);
                              for a bptt.Stack model_kind "Stack" and stack, its structure
                              (Stack.describe: head, each layer's cell, directions, settings),
                              its arrays model/U_l0, model/W_l1_reverse, ... by their flat names
The same JSON is written next to it as <name>.json for people to read. Both files are written to a
temporary name first and then renamed (os.replace), so a killed process leaves either the old
checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import cells
from ..files import as_path, loads_json, printable, write_atomic
from ..model import HEAD_PARAMS, model_class
from ..stack import Stack, check_description
from .optim import flatten_state, unflatten_state

FORMAT = "bptt.checkpoint/1"


def save(path, model, opt_state, meta: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint of a model of any registered cell, or of a bptt.Stack, to path (.npz) and
    path with .json; returns the .npz path."""
    from ..validate import a_network

    path = Path(path)
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be None or a dict of arrays by name, got {type(extra).__name__}")
    a_network(model)
    if isinstance(model, Stack):
        meta = {"format": FORMAT, "model_kind": "Stack", "stack": model.describe(), **meta}
    else:
        meta = {"format": FORMAT, "cell": model.cell.name, "model_kind": type(model).__name__, **model.settings,
                **meta}
    text = json.dumps(meta, indent=1, sort_keys=True)
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"opt/{k}": v for k, v in flatten_state(opt_state).items()})
    arrays.update({f"extra/{k}": v for k, v in (extra or {}).items() if v is not None})
    write_atomic(path, lambda f: np.savez(f, meta=np.array(text), **arrays))
    write_atomic(path.with_suffix(".json"), text)
    return path


def load(path):
    """(model, opt_state, meta, extra) from a checkpoint written by save. Sizes are checked before
    anything is read (bptt.validate.read_npz); a file that is not such a checkpoint is a ValueError."""
    from ..validate import read_npz, show

    path = as_path(path, "a checkpoint")
    try:
        found = path.is_file()
    except OSError as e:  # a name too long for the file system, no permission
        raise ValueError(f"cannot read the checkpoint {printable(path)}: {e.strerror or e}") from None
    if not found:
        raise ValueError(f"no checkpoint at {printable(path)}")
    arrays = read_npz(path, "checkpoint")
    meta_arr = arrays.pop("meta", None)
    if meta_arr is None or meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise ValueError(f"{path} is not a bptt checkpoint: it lacks 'meta', a JSON string")
    meta = loads_json(str(meta_arr), f"{path}: 'meta'")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'meta' must be a JSON object, got {show(meta)}")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {show(meta.get('format'))}, expected {FORMAT!r}")
    odd = sorted(k for k in arrays if not (k.startswith(("model/", "extra/")) or k.count("/") == 2 and k.startswith("opt/")))
    if odd:
        raise ValueError(f"{path} holds array(s) {', '.join(map(show, odd[:5]))} that a checkpoint does not have")
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    opt_state = unflatten_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
    if meta.get("model_kind") == "Stack":
        try:
            model = Stack.from_arrays(check_description(meta.get("stack"), f"{path}: stack"), params, path)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} holds a stack that is not valid: {e}") from None
        return model, opt_state, meta, extra
    cell = _cell(path, meta)
    kind = model_class(cell).__name__
    declared = {**cell.params, **HEAD_PARAMS}
    missing = [k for k, p in declared.items() if not p.optional and k not in params]
    if missing:
        raise ValueError(f"{path} is not a complete checkpoint: it lacks the array(s) "
                         f"{', '.join('model/' + k for k in missing)}")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"{path} has model array(s) {', '.join(unknown)} that a {kind} model does not have")
    try:
        model = model_class(cell)(**params, **{k: meta[k] for k in (*cell.settings, "head") if k in meta})
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} holds a model that is not valid: {e}") from None
    return model, opt_state, meta, extra


def _cell(path, meta):
    """The registered cell a checkpoint's meta names: "cell", else its model_kind (RNN when absent)."""
    from ..validate import show

    kinds = {cells.get(n).model: cells.get(n) for n in cells.names()}
    kind = meta.get("model_kind", "RNN")
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"{path} holds a model of unknown kind {show(kind)}: expected one of {', '.join(kinds)}")
    name = meta.get("cell", kinds[kind].name)
    if not isinstance(name, str) or name not in cells.names():
        raise ValueError(f"{path} holds a model of the cell {show(name)}, which is not registered "
                         f"(registered: {', '.join(cells.names())})")
    if cells.get(name).model != kind:
        raise ValueError(f"{path}: its model_kind {show(kind)} is not the model of its cell {name!r} "
                         f"({cells.get(name).model})")
    return cells.get(name)


LOOP_KEYS = ("step", "smooth", "last_norm", "last_norm_step", "rng", "config")


def verify(path, loaded, fresh_model, fresh_opt_state, steps: int, stream: bool) -> None:
    """Check a loaded checkpoint whole against the run it is to continue, before anything resumes:
    the loop's keys and their types, the step (an integer in 0..steps), the model's kind, arrays'
    names, shapes and dtypes against a fresh model of the run's config, and the optimiser's state
    against a fresh one. A mismatch is a ValueError naming the key or array, what was expected and
    what came."""
    from ..validate import show

    model, opt_state, meta, extra = loaded
    missing = [k for k in LOOP_KEYS + (("stream",) if stream else ()) if k not in meta]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {', '.join(missing)} in its meta: it cannot be resumed")
    step = meta["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= steps:
        raise ValueError(f"{path}: step must be an integer in 0..{steps} (the run's steps), got {show(step)}")
    for k in ("smooth", "last_norm"):
        v = meta[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v):
            raise ValueError(f"{path}: {k} must be a number or null, got {show(v)}")
    lns = meta["last_norm_step"]
    if lns is not None and (isinstance(lns, bool) or not isinstance(lns, int) or not 0 <= lns <= step):
        raise ValueError(f"{path}: last_norm_step must be null or an integer in 0..{step}, got {show(lns)}")
    if not isinstance(meta["config"], dict):
        raise ValueError(f"{path}: config must be a table of settings, got {show(meta['config'])}")
    if not isinstance(meta["rng"], dict):
        raise ValueError(f"{path}: rng must be a generator's state (a JSON object), got {show(meta['rng'])}")
    if type(model) is not type(fresh_model):
        raise ValueError(f"{path} holds a {type(model).__name__} model, but the run's cell makes a "
                         f"{type(fresh_model).__name__}")
    if isinstance(model, Stack) and model.describe() != fresh_model.describe():
        raise ValueError(f"{path} holds the stack {model!r}, but the run's config makes {fresh_model!r}")
    ours, theirs = model.settings, fresh_model.settings
    for k in sorted(set(ours) | set(theirs)):
        if ours.get(k) != theirs.get(k):
            raise ValueError(f"{path} holds a model with {k} = {show(ours.get(k))}, but the run's config makes "
                             f"{k} = {show(theirs.get(k))}")
    _same(path, "model", model.params, fresh_model.params)
    _same(path, "optimiser state", flatten_state(opt_state), flatten_state(fresh_opt_state))
    for what, arrays in (("model", model.params), ("optimiser state", flatten_state(opt_state)), ("extra", extra)):
        bad = sorted(k for k, a in arrays.items() if not np.all(np.isfinite(a)))
        if bad:
            raise ValueError(f"{path}: the {what} array {bad[0]} holds NaN or inf; a checkpoint holds finite numbers")
    if stream:
        sc = meta["stream"]
        if not isinstance(sc, dict) or not all(isinstance(sc.get(k), int) and not isinstance(sc.get(k), bool)
                                               and sc[k] >= 0 for k in ("p", "ws", "epoch")):
            raise ValueError(f"{path}: stream must hold the integers p, ws, epoch >= 0, got {show(sc)}")
    layered = isinstance(fresh_model, Stack)  # a stream carries every layer's state: (L, N, H)
    widths = dict(zip(("h", "c"), (fresh_model.layers[0][0] if layered else fresh_model).state_sizes))
    lead, L = (1, f"{len(fresh_model.entries)}, ") if layered else (0, "")
    for k, a in extra.items():
        if k not in widths or a.ndim != 2 + lead or a.shape[-1] != widths[k] or a.dtype != fresh_model.dtype \
                or (layered and a.shape[0] != len(fresh_model.entries)):
            raise ValueError(f"{path}: extra/{k} must be a carried state h or c of shape ({L}N, "
                             f"{widths.get(k, fresh_model.H)}), dtype {fresh_model.dtype}, got shape {a.shape}, "
                             f"dtype {a.dtype}")


def _same(path, what, got: dict, want: dict) -> None:
    if set(got) != set(want):
        lost, odd = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise ValueError(f"{path}: the {what} should hold {', '.join(sorted(want))}"
                         + (f"; missing {', '.join(lost)}" if lost else "") + (f"; unexpected {', '.join(odd)}" if odd else ""))
    for k in sorted(want):
        a, b = np.asarray(got[k]), np.asarray(want[k])
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"{path}: {what} array {k} must have shape {b.shape} and dtype {b.dtype} "
                             f"(the run's config), got shape {a.shape} and dtype {a.dtype}")
