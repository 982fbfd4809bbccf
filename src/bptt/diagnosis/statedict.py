"""A saved PyTorch state dict and an input file as a model, its batch and its loss (`bptt diagnose`).

The state dict holds one recurrent module's parameters (PyTorch's names under any prefix:
lstm.weight_ih_l0, lstm.weight_hh_l0, ..., and ..._reverse for a bidirectional one), one Linear
head (NAME.weight (O, width) and an optional NAME.bias (O,), width = H times the directions: the
one 2-D weight whose in-features are the module's output width) and, optionally, an Embedding
(NAME.weight (V, D), D the module's input size), used when x holds ids. Read from the shapes:
the kind (weight_hh_l0 is (G, H): G = H, 3H, 4H for nn.RNN, nn.GRU, nn.LSTM), the number of
layers (the l{k} suffixes), bidirectional (the _reverse keys), the biases (bias_ih_l0).
An nn.RNN's nonlinearity is not in its state dict: tanh unless told.

The network is rebuilt by bptt, without PyTorch (the file is read by torchfile): embedding (if
used) -> recurrent module (batch_first) -> head at every step, a bptt.Stack under the file's head;
its loss is the cross-entropy summed over the scored steps of the input file's targets y:
- x: ids (N, T) integers (through the embedding, or one-hot columns of D without one), or
  vectors (N, T, D) floats;
- y: class ids (N, T), -1 for a step that is not scored; or (N,), one label per sequence,
  scored at the last step only (a classifier).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .. import cells
from ..files import printable, read_bytes
from ..validate import listed, read_npz, show, too_big
from . import torchfile

RECURRENT = re.compile(r"^(.*)weight_hh_l(\d+)(_reverse)?$")
PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
MAX_BYTES = 2**31  # a state dict larger than 2 GiB is refused before it is read


@dataclass(frozen=True)
class Parts:
    """What a state dict holds: the recurrent module's prefix and shape, the head's and the
    embedding's names (None where absent), and the keys that play no part."""

    prefix: str
    kind: str
    D: int
    H: int
    layers: int
    bidirectional: bool
    bias: bool
    head: str
    O: int
    embedding: str | None
    ignored: tuple

    @property
    def width(self) -> int:
        return self.H * (2 if self.bidirectional else 1)


def kinds() -> dict:
    """{weight_hh's rows per hidden unit: the torch.nn module's name} for the modules bptt maps (Cell.torch):
    the recurrent parameter's declared shape, e.g. ("4H", "H") -> 4."""
    return {cells.sizes(next(p.shape for p in c.params.values() if p.role == "recurrent"), 1, 1)[0]: name
            for name, c in cells.layers("torch").items()}


def load_state_dict(path) -> dict:
    """The arrays of a file saved with torch.save(model.state_dict()), by name: read without PyTorch
    and without running pickled code (torchfile); anything else is a one-line ValueError."""
    return torchfile.read(read_bytes(path, "the state dict", MAX_BYTES), path, MAX_BYTES)


def parts(sd, prefix=None, head=None, embedding=None) -> Parts:
    """Find the recurrent module, the head and the embedding in a state dict (the module's notes)."""
    found = sorted({m.group(1) for k in sd if (m := RECURRENT.match(k))})
    if not found:
        raise ValueError("the state dict holds no recurrent module: expected keys like rnn.weight_hh_l0 "
                         f"(the parameters of an {listed(cells.layers('torch'), 'nn.')})")
    if prefix is not None:
        prefix = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if prefix not in found:
            raise ValueError(f"--prefix {show(prefix.rstrip('.'))} names no recurrent module; the state dict has "
                             f"{', '.join(repr(p.rstrip('.')) for p in found)}")
    elif len(found) > 1:
        raise ValueError(f"the state dict holds {len(found)} recurrent modules ({', '.join(repr(p.rstrip('.')) for p in found)}): "
                         "name the one to diagnose with --prefix")
    else:
        prefix = found[0]
    own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and PARAM.match(k[len(prefix):])}
    if prefix + "weight_hr_l0" in sd:
        raise ValueError(f"the module has a projection of h ({prefix}weight_hr_l0, proj_size > 0), which bptt's "
                         "cells have not")
    G, H = own["weight_hh_l0"].shape
    kind = kinds()
    if G % H or G // H not in kind:
        shapes = listed([f"({k if k > 1 else ''}H, H)" for k in kind])
        raise ValueError(f"{prefix}weight_hh_l0 has shape ({G}, {H}): expected {shapes} for an "
                         f"{listed(kind.values(), 'nn.')}")
    L = 1 + max(int(PARAM.match(k).group(2)) for k in own)
    bi = any(k.endswith("_reverse") for k in own)
    bias = "bias_ih_l0" in own
    width = H * (2 if bi else 1)
    used = {prefix + k for k in own}
    heads = [k[:-len("weight")] for k, v in sd.items() if k.endswith("weight") and k not in used
             and v.ndim == 2 and v.shape[1] == width]
    if head is not None:
        head = head if head.endswith(".") or head == "" else head + "."
        if head not in heads:
            raise ValueError(f"--head {show(head.rstrip('.'))} is no Linear layer of in-features {width}; the "
                             f"candidates are {', '.join(repr(h.rstrip('.')) for h in heads) or 'none'}")
    elif len(heads) != 1:
        what = (f"{len(heads)} of them ({', '.join(repr(h.rstrip('.')) for h in heads)}): name one with --head"
                if heads else "none")
        raise ValueError(f"expected one Linear head, a NAME.weight of shape (O, {width}) (the recurrent module's "
                         f"output width), found {what}")
    else:
        head = heads[0]
    used.add(head + "weight")
    if head + "bias" in sd:
        if tuple(sd[head + "bias"].shape) != (sd[head + "weight"].shape[0],):
            raise ValueError(f"the head's bias {head}bias has shape {tuple(sd[head + 'bias'].shape)}, expected "
                             f"({sd[head + 'weight'].shape[0]},)")
        used.add(head + "bias")
    D = own["weight_ih_l0"].shape[1]
    embs = [k[:-len("weight")] for k, v in sd.items() if k.endswith("weight") and k not in used
            and v.ndim == 2 and v.shape[1] == D and k[:-len("weight")] + "bias" not in sd]
    if embedding is not None:
        embedding = embedding if embedding.endswith(".") or embedding == "" else embedding + "."
        if embedding not in embs:
            raise ValueError(f"--embedding {show(embedding.rstrip('.'))} is no (V, {D}) weight; the candidates are "
                             f"{', '.join(repr(e.rstrip('.')) for e in embs) or 'none'}")
    elif len(embs) > 1:
        raise ValueError(f"the state dict holds {len(embs)} weights that could be the embedding "
                         f"({', '.join(repr(e.rstrip('.')) for e in embs)}): name one with --embedding")
    else:
        embedding = embs[0] if embs else None
    if embedding is not None:
        used.add(embedding + "weight")
    return Parts(prefix, kind[G // H], int(D), int(H), L, bi, bias, head, int(sd[head + "weight"].shape[0]),
                 embedding, tuple(k for k in sd if k not in used))


def read_xy(path):
    """The arrays x and y of an input file (.npz), read without pickles; a one-line error without them."""
    arrays = read_npz(path, "input file")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"the input file {printable(path)} has no array {' or '.join(missing)}: it needs x (ids "
                         f"(N, T) or vectors (N, T, D)) and y (targets (N, T), -1 = not scored, or (N,))")
    return arrays["x"], arrays["y"]


def read_input(path, p: Parts):
    """(x, y, uses_embedding) of an input file (.npz with arrays x and y), checked against the parts."""
    x, y = read_xy(path)
    if x.ndim == 2 and x.dtype.kind in "iu":
        if x.size and x.min() < 0:
            raise ValueError(f"x holds the id {int(x.min())}: ids are 0 or more")
        ids = True
    elif x.ndim == 3 and x.dtype.kind == "f":
        if x.shape[2] != p.D:
            raise ValueError(f"x holds vectors of {x.shape[2]} values, but the recurrent module takes D = {p.D} "
                             "inputs")
        if not np.all(np.isfinite(x)):
            raise ValueError("x holds NaN or Inf: the diagnosis needs a finite batch")
        ids = False
    else:
        raise ValueError(f"x must be ids (N, T) integers or vectors (N, T, D) floats, got shape {x.shape} of "
                         f"{x.dtype}")
    N, T = x.shape[:2]
    if N < 1 or T < 1:
        raise ValueError(f"x must hold at least one sequence of one step, got shape {x.shape}")
    if y.dtype.kind not in "iu" or y.shape not in ((N, T), (N,)):
        raise ValueError(f"y must be integer class ids of shape (N, T) = ({N}, {T}) or (N,) = ({N},), got shape "
                         f"{y.shape} of {y.dtype}")
    if y.size and (y.max() >= p.O or y.min() < (-1 if y.ndim == 2 else 0)):
        bad = int(y.max()) if y.max() >= p.O else int(y.min())
        raise ValueError(f"y holds the class {bad}: the head has O = {p.O} classes (0..{p.O - 1})"
                         + (", and -1 marks a step that is not scored" if y.ndim == 2 else ""))
    if y.ndim == 2 and not np.any(y >= 0):
        raise ValueError("y scores no step (every target is -1): there is no loss to diagnose")
    too_big(f"x of shape {x.shape} through {p.layers} layer(s) of H = {p.H}",
            N * T * p.layers * (2 if p.bidirectional else 1) * p.H * 8)
    return x, y, ids


def network(sd, p: Parts, x, y, ids, *, dtype="float64", nonlinearity="tanh") -> dict:
    """What bptt.diagnosis.diagnosed reads, for the state dict's network on the input file's batch:
    the module's layers under the file's head as a bptt.Stack in dtype, the module's input x (N,
    T, D) (the ids through the embedding, as one-hot columns, or the vectors), the targets (the
    cross-entropy summed over the scored steps; a label per sequence scores the last step) and
    PyTorch's names of the module's parameters."""
    from ..frameworks.torch_stack import kinds as cell_of, layers_of
    from ..stack import Stack

    dt = np.dtype(dtype)
    own = {k[len(p.prefix):]: np.asarray(v, dt) for k, v in sd.items()
           if k.startswith(p.prefix) and PARAM.match(k[len(p.prefix):])}
    _check_shapes(own, p)
    cell = cell_of()[p.kind]
    pairs, names = layers_of(own, cell, p.layers, p.bidirectional, p.bias,
                             nonlinearity if "activation" in cells.get(cell).torch_allows else None)
    c = np.asarray(sd[p.head + "bias"], dt) if p.head + "bias" in sd else None
    stack = Stack(pairs, np.asarray(sd[p.head + "weight"], dt), c)
    if ids:
        V = sd[p.embedding + "weight"].shape[0] if p.embedding is not None else p.D
        if x.max() >= V:
            where = f"the embedding {p.embedding.rstrip('.')!r} has {V} rows" if p.embedding is not None else \
                f"without an embedding an id is a one-hot column of D = {p.D}"
            raise ValueError(f"x holds the id {int(x.max())}, but {where} (ids 0..{V - 1})")
        table = np.asarray(sd[p.embedding + "weight"], dt) if p.embedding is not None else np.eye(p.D, dtype=dt)
        x = table[x]
    else:
        x = np.asarray(x, dt)
    if y.ndim == 1:  # one label per sequence: the last step scored, the others not
        y = np.concatenate([np.full((len(y), x.shape[1] - 1), -1, dtype=np.int64), y[:, None]], axis=1)
    return {"stack": stack, "x": x, "y": y, "h0": None, "names": names, "kind": cell, "framework": "PyTorch",
            "dtype": str(dt)}


def _check_shapes(own, p: Parts):
    """A ValueError unless the parameters under the prefix make one nn.RNN / nn.GRU / nn.LSTM of the
    parts' sizes (every layer and direction, each weight of its shape)."""
    G = own["weight_hh_l0"].shape[0]
    want = {}
    for k in range(p.layers):
        for s in [f"_l{k}"] + ([f"_l{k}_reverse"] if p.bidirectional else []):
            want.update({"weight_ih" + s: (G, p.D if k == 0 else p.width), "weight_hh" + s: (G, p.H)})
            if p.bias:
                want.update({"bias_ih" + s: (G,), "bias_hh" + s: (G,)})
    module = f"nn.{p.kind}({p.D}, {p.H}, num_layers={p.layers}, bidirectional={p.bidirectional}, bias={p.bias})"
    missing, extra = sorted(set(want) - set(own)), sorted(set(own) - set(want))
    if missing or extra:
        detail = "; ".join(f"{what} {', '.join(p.prefix + k for k in keys[:4])}" for what, keys in
                           (("missing", missing), ("unexpected", extra)) if keys)
        raise ValueError(f"the parameters under {p.prefix.rstrip('.')!r} do not make one {module}: {detail}")
    for k, shape in want.items():
        if own[k].shape != shape:
            raise ValueError(f"the parameters under {p.prefix.rstrip('.')!r} do not make one {module}: "
                             f"{p.prefix}{k} has shape {own[k].shape}, expected {shape}")
