"""Checkpoints: model, optimiser state, RNG state and loop state in one .npz, written atomically.

Layout of the .npz (no pickles; read with allow_pickle=False):
    model/U, model/W, ...     the parameters
    opt/<slot>/<name>         the optimiser's state arrays (bptt.train.optim.flatten_state)
    extra/<name>              other arrays (the carried hidden state of a stream)
    meta                      a JSON string: step, RNG bit_generator.state, loop scalars, config,
                              and the model's kind and settings: model_kind (RNN, LSTM or GRU;
                              RNN when absent, as checkpoints written before the gated cells),
                              head, activation (RNN), reset_after (GRU)
The same JSON is written next to it as <name>.json for people to read. Both files are written to a
temporary name first and then renamed (os.replace), so a killed process leaves either the old
checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..model import GRU, LSTM, RNN
from .optim import flatten_state, unflatten_state

FORMAT = "bptt.checkpoint/1"
KINDS = {k.__name__: k for k in (RNN, LSTM, GRU)}


def _atomic(path: Path, write):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def settings(model) -> dict:
    """The model's settings other than its arrays (head; activation of an RNN; reset_after of a GRU)."""
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.name not in model.PARAMS}


def save(path, model, opt_state, meta: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint of a model of any kind (RNN, LSTM, GRU) to path (.npz) and path with
    .json; returns the .npz path."""
    path = Path(path)
    meta = {"format": FORMAT, "model_kind": type(model).__name__, **settings(model), **meta}
    text = json.dumps(meta, indent=1, sort_keys=True)
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"opt/{k}": v for k, v in flatten_state(opt_state).items()})
    arrays.update({f"extra/{k}": v for k, v in (extra or {}).items() if v is not None})
    _atomic(path, lambda f: np.savez(f, meta=np.array(text), **arrays))
    _atomic(path.with_suffix(".json"), lambda f: f.write(text.encode()))
    return path


def load(path):
    """(model, opt_state, meta, extra) from a checkpoint written by save."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: np.array(f[k]) for k in f.files if k != "meta"}
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise ValueError(f"{path} is not a readable bptt checkpoint: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    kind = meta.get("model_kind", "RNN")
    if kind not in KINDS:
        raise ValueError(f"{path} holds a model of unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    names = {f.name for f in dataclasses.fields(KINDS[kind])} - set(KINDS[kind].PARAMS)
    model = KINDS[kind](**params, **{k: meta[k] for k in names if k in meta})
    opt_state = unflatten_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
    return model, opt_state, meta, extra
