"""A saved PyTorch state dict and an input file as a model, its batch and its loss (`bptt diagnose`).

The state dict holds one recurrent module's parameters (PyTorch's names under any prefix:
lstm.weight_ih_l0, lstm.weight_hh_l0, ..., and ..._reverse for a bidirectional one), one Linear
head (NAME.weight (O, width) and an optional NAME.bias (O,), width = H times the directions: the
one 2-D weight whose in-features are the module's output width) and, optionally, an Embedding
(NAME.weight (V, D), D the module's input size), used when x holds ids. Read from the shapes:
the kind (weight_hh_l0 is (G, H): G = H, 3H, 4H for nn.RNN, nn.GRU, nn.LSTM), the number of
layers (the l{k} suffixes), bidirectional (the _reverse keys), the biases (bias_ih_l0).
An nn.RNN's nonlinearity is not in its state dict: tanh unless told.

The network rebuilt is embedding (if used) -> recurrent module (batch_first) -> head at every step;
its loss is the cross-entropy summed over the scored steps of the input file's targets y:
- x: ids (N, T) integers (through the embedding, or one-hot columns of D without one), or
  vectors (N, T, D) floats;
- y: class ids (N, T), -1 for a step that is not scored; or (N,), one label per sequence,
  scored at the last step only (a classifier).
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

import numpy as np

from ..files import printable, read_bytes
from ..validate import read_npz, show, too_big

RECURRENT = re.compile(r"^(.*)weight_hh_l(\d+)(_reverse)?$")
PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
KINDS = {1: "RNN", 3: "GRU", 4: "LSTM"}  # weight_hh's rows per hidden unit -> the torch.nn module
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


def load_state_dict(path) -> dict:
    """The tensors of a file saved with torch.save(model.state_dict()), read with
    torch.load(weights_only=True): no pickled code runs; anything else is a one-line ValueError."""
    try:
        import torch
    except ImportError:
        raise ValueError("bptt diagnose --torch needs PyTorch: pip install 'bptt[torch]'") from None
    raw = read_bytes(path, "the state dict", MAX_BYTES)
    try:
        sd = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a file it refuses or cannot parse
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"cannot load {printable(path)} safely as a PyTorch state dict "
                         f"(torch.load with weights_only=True): {first}") from None
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{printable(path)} holds {show(type(sd).__name__)}, not a state dict: save "
                         "model.state_dict() with torch.save")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{printable(path)} is not a state dict of tensors: its entry {show(bad[0])} holds "
                         f"{type(sd[bad[0]]).__name__}; save model.state_dict() with torch.save")
    return sd


def parts(sd, prefix=None, head=None, embedding=None) -> Parts:
    """Find the recurrent module, the head and the embedding in a state dict (the module's notes)."""
    found = sorted({m.group(1) for k in sd if (m := RECURRENT.match(k))})
    if not found:
        raise ValueError("the state dict holds no recurrent module: expected keys like lstm.weight_hh_l0 "
                         "(an nn.RNN, nn.LSTM or nn.GRU's parameters)")
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
        raise ValueError("the LSTM has a projection (weight_hr_l0, proj_size > 0), which bptt's LSTM has not")
    G, H = own["weight_hh_l0"].shape
    if G % H or G // H not in KINDS:
        raise ValueError(f"{prefix}weight_hh_l0 has shape ({G}, {H}): expected (H, H), (3H, H) or (4H, H) for "
                         "an nn.RNN, nn.GRU or nn.LSTM")
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
    return Parts(prefix, KINDS[G // H], int(D), int(H), L, bi, bias, head, int(sd[head + "weight"].shape[0]),
                 embedding, tuple(k for k in sd if k not in used))


def read_input(path, p: Parts):
    """(x, y, uses_embedding) of an input file (.npz with arrays x and y), checked against the parts."""
    arrays = read_npz(path, "input file")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"the input file {printable(path)} has no array {' or '.join(missing)}: it needs x (ids "
                         f"(N, T) or vectors (N, T, D)) and y (targets (N, T), -1 = not scored, or (N,))")
    x, y = arrays["x"], arrays["y"]
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


def build(sd, p: Parts, x, y, ids, *, dtype="float64", nonlinearity="tanh"):
    """(model, rnn, inputs, loss_fn) for bptt.diagnose: the network of the state dict's parts in
    dtype, the batch as a tensor, and the cross-entropy summed over the scored steps."""
    import torch

    dt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    kw = {"nonlinearity": nonlinearity} if p.kind == "RNN" else {}
    rnn = getattr(torch.nn, p.kind)(p.D, p.H, p.layers, bias=p.bias, batch_first=True,
                                    bidirectional=p.bidirectional, dtype=dt, **kw)
    own = {k[len(p.prefix):]: v for k, v in sd.items() if k.startswith(p.prefix) and PARAM.match(k[len(p.prefix):])}
    try:
        rnn.load_state_dict({k: v.to(dt) for k, v in own.items()}, strict=True)
    except RuntimeError as e:  # a missing layer, a reverse direction in some layers only, a shape that differs
        detail = " ".join(str(e).split())
        raise ValueError(f"the parameters under {p.prefix!r} do not make one nn.{p.kind}({p.D}, {p.H}, "
                         f"num_layers={p.layers}, bidirectional={p.bidirectional}, bias={p.bias}): {detail[:300]}") from None
    head = torch.nn.Linear(p.width, p.O, bias=p.head + "bias" in sd, dtype=dt)
    with torch.no_grad():
        head.weight.copy_(sd[p.head + "weight"])
        if head.bias is not None:
            head.bias.copy_(sd[p.head + "bias"])
    embed = None
    if ids:
        V = sd[p.embedding + "weight"].shape[0] if p.embedding is not None else p.D
        if x.max() >= V:
            where = f"the embedding {p.embedding.rstrip('.')!r} has {V} rows" if p.embedding is not None else \
                f"without an embedding an id is a one-hot column of D = {p.D}"
            raise ValueError(f"x holds the id {int(x.max())}, but {where} (ids 0..{V - 1})")
        if p.embedding is not None:
            embed = torch.nn.Embedding(V, p.D, dtype=dt)
            with torch.no_grad():
                embed.weight.copy_(sd[p.embedding + "weight"])
    model = _network()(embed, rnn, head, p.D if ids and embed is None else None).eval()
    inputs = torch.as_tensor(x, dtype=torch.long if ids else dt)
    target = torch.as_tensor(y, dtype=torch.long)

    def loss_fn(logits):
        if target.ndim == 1:  # one label per sequence, scored at the last step
            return torch.nn.functional.cross_entropy(logits[:, -1], target, reduction="sum")
        scored = target >= 0
        return torch.nn.functional.cross_entropy(logits[scored], target[scored], reduction="sum")

    return model, rnn, inputs, loss_fn


@functools.lru_cache(maxsize=None)
def _network():
    """The torch.nn.Module class of the rebuilt network (made once: torch is imported lazily)."""
    import torch

    class Network(torch.nn.Module):
        """embedding (or one-hot ids, or vectors) -> the recurrent module -> the head at every step"""

        def __init__(self, embed, rnn, head, one_hot):
            super().__init__()
            self.embed, self.rnn, self.head, self.one_hot = embed, rnn, head, one_hot

        def forward(self, x):
            if self.embed is not None:
                x = self.embed(x)
            elif self.one_hot is not None:
                x = torch.nn.functional.one_hot(x, self.one_hot).to(self.head.weight.dtype)
            return self.head(self.rnn(x)[0])  # (N, T, O)

    return Network

