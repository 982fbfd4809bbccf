"""Stacked and bidirectional networks: layers of registered cells under one linear head.

    layer 0 reads x; layer k + 1 reads layer k's hidden outputs h_t^(k), (T, N, H_k) per direction
    a bidirectional layer runs a second copy of its cell over the sequence reversed in time; its
    output at step t is the reverse run's state after reading x_{T-1}, ..., x_t, and the layer's
    output is [forward, reverse] side by side (as PyTorch and Keras concatenate them)
    q_t = V h_t^(L-1) + c, and the loss E as a one-layer model's (bptt.heads)

A layer is a model of a registered cell made without a head (bptt.LSTM(U=..., W=..., head=None));
the stack's parameters are the layers' named with PyTorch's suffixes, U_l0, W_l0, U_l0_reverse,
..., then the head's V and c. The initial state of a stack, and its gradient, has one entry per
layer and direction in that order (PyTorch's h_0 layout (L * directions, N, H)).

BPTT through depth and time: the output errors dE/dq_t give the top layer's dE/dh_t (dQ V); each
layer's error runs back through its steps by the reference engine's recurrence (core.backprop), and
what reaches each step's input, dE/dx_t = d_a_t U (U the cell's input parameters stacked), is the
error dE/dh_t of the layer below. This module computes with the reference engine throughout; the
fast backend's loop through the layers (fast/stacked.py) runs each layer by its kernels and shares
this module's trace, head, initial states and overflow messages.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import core, heads, validate
from .model import HEADS, Model, model_class
from .validate import show

FORMAT = "bptt.stack/1"


def _suffix(k, j):
    return f"_l{k}" + ("_reverse" if j else "")


class Stack:
    """Layers of registered cells, each one direction or two, under one linear head.

    Stack(layers, V, c=None, head="softmax"). layers: a list whose entries are each a layer (a
    model made with head=None) or a pair (forward, reverse) of layers of the same cell and size;
    layer k + 1's input size D is layer k's output width. V (O, out), out the top layer's output
    width (both directions'); c (O,) optional; head "softmax" or "mse".

    s.layers: tuples of one or two layers; s.params: every array by its flat name (U_l0,
    W_l0_reverse, ..., V, c); s.D, s.O, s.dtype, s.head, s.depth (L), s.directions (per layer).
    Read-only; replace(**changes) takes the flat names.
    """

    def __init__(self, layers, V, c=None, head="softmax"):
        if isinstance(layers, (Model, Stack)) or not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"layers must be a non-empty list of layers (models made with head=None) or pairs "
                            f"of them, got {show(layers)}")
        if head is None or not isinstance(head, str) or head not in HEADS:
            raise ValueError(f"unknown head {show(head)}: expected one of {', '.join(HEADS)}")
        built = []
        for k, entry in enumerate(layers):
            pair = tuple(entry) if isinstance(entry, (list, tuple)) else (entry,)
            if not 1 <= len(pair) <= 2:
                raise ValueError(f"layer {k} must be a layer or a pair (forward, reverse), got {len(pair)} entries")
            for j, m in enumerate(pair):
                if not isinstance(m, Model) or m.head is not None:
                    raise TypeError(f"layer {k}{' (reverse)' if j else ''} must be a model made with head=None "
                                    f"(e.g. bptt.RNN(U=..., W=..., head=None)), got {show(m)}")
            if len(pair) == 2 and (type(pair[0]) is not type(pair[1]) or pair[0].H != pair[1].H
                                   or pair[0].D != pair[1].D or pair[0].cell.values != pair[1].cell.values):
                raise ValueError(f"layer {k}'s two directions must be the same cell with the same sizes and "
                                 f"settings, got {pair[0]!r} and {pair[1]!r}")
            if k and pair[0].D != built[-1][0].cell.out(built[-1][0].H) * len(built[-1]):
                below = built[-1][0].cell.out(built[-1][0].H) * len(built[-1])
                raise ValueError(f"layer {k} reads layer {k - 1}'s outputs, {below} wide, but its input size D is "
                                 f"{pair[0].D}")
            built.append(pair)
        dtype = np.result_type(*[m.dtype for pair in built for m in pair],
                               *[np.asarray(a).dtype for a in (V, c) if a is not None])
        dtype = np.dtype(np.float64) if not np.issubdtype(dtype, np.floating) or dtype == np.float16 else dtype
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"the weights must be float32 or float64, got {dtype}")
        built = tuple(tuple(m if m.dtype == dtype else m.astype(dtype) for m in pair) for pair in built)
        top = built[-1][0].cell.out(built[-1][0].H) * len(built[-1])
        # the head, checked as a one-layer model's: a layer of the top cell would not know V's width,
        # so V and c are checked here
        V = self._array("V", V, 2, dtype)
        if V.shape[1] != top or V.shape[0] < 1:
            raise ValueError(f"V must have shape (O, {top}) (the top layer's outputs, {top} wide), got {V.shape}")
        c = None if c is None else self._array("c", c, 1, dtype)
        if c is not None and c.shape != (V.shape[0],):
            raise ValueError(f"c must have shape ({V.shape[0]},), got {c.shape}")
        put = object.__setattr__
        put(self, "layers", built)
        put(self, "head", head)
        params = {f"{k}{_suffix(i, j)}": a for i, pair in enumerate(built) for j, m in enumerate(pair)
                  for k, a in m.params.items()}
        params["V"] = V
        if c is not None:
            params["c"] = c
        put(self, "params", params)
        put(self, "D", built[0][0].D)
        put(self, "O", V.shape[0])
        put(self, "dtype", np.dtype(dtype))

    @staticmethod
    def _array(name, v, ndim, dtype):
        if isinstance(v, np.ma.MaskedArray):
            raise TypeError(f"{name} is a masked array: give a plain array (e.g. {name}.filled(0))")
        try:
            a = np.array(v, dtype=dtype)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be an array of real numbers, got {show(v)}") from None
        if a.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
        a.flags.writeable = False
        return a

    # what the rest of bptt reads ---------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def directions(self) -> tuple:
        return tuple(len(pair) for pair in self.layers)

    @property
    def entries(self) -> list:
        """(k, j, layer) for every layer k and direction j (0 forward, 1 reverse), in the order of
        the initial state's entries."""
        return [(k, j, m) for k, pair in enumerate(self.layers) for j, m in enumerate(pair)]

    @property
    def V(self):
        return self.params["V"]

    @property
    def c(self):
        return self.params.get("c")

    @property
    def H(self):
        """The top layer's hidden size (per direction)."""
        return self.layers[-1][0].H

    @property
    def settings(self) -> dict:
        return {"head": self.head}

    def __setattr__(self, name, value):
        raise AttributeError(f"a stack is read-only: use stack.replace({name}=...) for a new one")

    def check_finite(self) -> None:
        for _, _, m in self.entries:
            m.check_finite()
        for k in ("V", "c"):
            if k in self.params and not np.isfinite(self.params[k]).all():
                raise ValueError(f"{k} must be finite, but it holds a NaN or Inf")

    def replace(self, **changes):
        """A new stack with some arrays changed by their flat names: s.replace(W_l1=2 * s.W_l1)."""
        unknown = sorted(set(changes) - set(self.params) - {"head"}
                         - {f"{k}{_suffix(i, j)}" for i, j, m in self.entries for k in m.cell.params})
        if unknown:
            raise ValueError(f"this stack has no parameter {', '.join(unknown)}: its parameters are "
                             f"{', '.join(self.params)}")
        layers = []
        for i, pair in enumerate(self.layers):
            new = []
            for j, m in enumerate(pair):
                own = {k: changes[f"{k}{_suffix(i, j)}"] for k in m.cell.params if f"{k}{_suffix(i, j)}" in changes}
                new.append(m.replace(**own) if own else m)
            layers.append(tuple(new))
        return Stack(layers, changes.get("V", self.V), changes.get("c", self.c), changes.get("head", self.head))

    def astype(self, dtype):
        return Stack([tuple(m.astype(dtype) for m in pair) for pair in self.layers], self.V.astype(dtype),
                     None if self.c is None else self.c.astype(dtype), self.head)

    def __getattr__(self, name):
        if name.startswith("_") or name in ("params", "layers", "head"):
            raise AttributeError(name)
        if name in self.params:
            return self.params[name]
        raise AttributeError(f"Stack has no attribute {name!r}")

    def __repr__(self):
        parts = []
        for pair in self.layers:
            m = pair[0]
            parts.append(f"{m.cell.label or m.cell.name}(H={m.H}{', bidirectional' if len(pair) == 2 else ''})")
        return f"Stack(D={self.D}, O={self.O}, layers=[{', '.join(parts)}], head={self.head!r}, dtype={self.dtype})"

    # files ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the stack to an .npz file (arrays + JSON metadata, no pickles), atomically."""
        from .files import write_atomic

        meta = json.dumps({"format": FORMAT, **self.describe()})
        write_atomic(Path(path), lambda f: np.savez(f, meta=np.array(meta), **self.params))

    def describe(self) -> dict:
        """The stack's structure as JSON-ready data: {"head", "layers": [{"cell", "directions",
        settings...}, ...]}, what save writes next to the arrays (and checkpoints keep)."""
        return {"head": self.head, "layers": [{"cell": pair[0].cell.name, "directions": len(pair),
                                               **pair[0].cell.values} for pair in self.layers]}

    @classmethod
    def load(cls, path):
        """Read a stack written by `save` (allow_pickle=False)."""
        arrays = validate.read_npz(path, "stack file")
        meta = _meta(arrays.pop("meta", None), path)
        return cls.from_arrays(meta, arrays, path)

    @classmethod
    def from_arrays(cls, meta, arrays, path):
        """A stack from describe()'s data and its arrays by flat name; path names the file in errors."""
        from . import cells

        meta = check_description(meta, path)
        if not isinstance(arrays, dict):
            raise TypeError(f"arrays must be a dict of arrays by the stack's flat names, got {show(arrays)}")
        arrays = dict(arrays)
        layers = []
        for i, spec in enumerate(meta["layers"]):
            if not isinstance(spec, dict) or not isinstance(spec.get("directions"), int) \
                    or spec["directions"] not in (1, 2):
                raise ValueError(f"{path}: layer {i} of 'meta' must say its cell and directions (1 or 2)")
            try:
                cell = cells.get(spec.get("cell"))
            except ValueError:
                raise ValueError(f"{path}: layer {i} is of the cell {show(spec.get('cell'))}, which is not "
                                 f"registered (registered: {', '.join(cells.names())})") from None
            settings = {k: v for k, v in spec.items() if k in cell.settings}
            pair = []
            for j in range(spec["directions"]):
                own = {k: arrays.pop(f"{k}{_suffix(i, j)}") for k in cell.params if f"{k}{_suffix(i, j)}" in arrays}
                pair.append(model_class(cell)(**own, **settings, head=None))
            layers.append(tuple(pair))
        V, c = arrays.pop("V", None), arrays.pop("c", None)
        if V is None:
            raise ValueError(f"{path} is not a complete stack file: it lacks the array V")
        if arrays:
            raise ValueError(f"{path} has arrays {', '.join(sorted(arrays))} that its layers do not have")
        return cls(layers, V, c, meta["head"])


def _meta(meta_arr, path) -> dict:
    if meta_arr is None or meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise ValueError(f"{path} is not a bptt stack file: it lacks the JSON string 'meta'")
    try:
        meta = json.loads(str(meta_arr))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: 'meta' is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: 'meta' is not a {FORMAT} description (format, head, layers)")
    return check_description(meta, path)


def check_description(meta, path) -> dict:
    """meta when it is a stack's describe() data (head, a non-empty list of layers); else a ValueError."""
    if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list) or not meta["layers"] \
            or not isinstance(meta.get("head"), str) or meta["head"] not in HEADS:
        raise ValueError(f"{path}: 'meta' is not a {FORMAT} description (format, head, layers)")
    return meta


# --- the trace ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class StackTrace:
    """What a stack's forward pass keeps: layers[k][j], the core.Trace of layer k's direction j (its
    arrays in that direction's own time order: a reverse run's step 0 reads x_{T-1}); Q (T, N, O)."""

    model: Stack
    inputs: validate.Inputs
    layers: tuple
    Q: np.ndarray
    scan: str = "sequential"

    def outputs(self, k) -> np.ndarray:
        """Layer k's hidden outputs in time order, both directions side by side: (T, N, out)."""
        return np.concatenate([_in_time(tr.S[1:], j) for j, tr in enumerate(self.layers[k])], axis=-1)

    def _public(self, a):
        a = np.swapaxes(a, 0, 1)
        return a if self.inputs.batched else a[0]

    q = property(lambda self: self._public(self.Q), doc="q_t: (T, O) or (N, T, O).")
    o = property(lambda self: np.exp(self._public(heads.log_softmax(self.Q))), doc="softmax(q_t).")
    h = property(lambda self: self._public(self.outputs(len(self.layers) - 1)),
                 doc="the top layer's outputs, what the head reads: (T, out) or (N, T, out).")

    @property
    def cell_states(self) -> tuple:
        """Every layer's states in time order, per entry of the state: (T+1, L, N, H) each (a
        stream carries state_t of every layer from here). A unidirectional stack's only: a reverse
        direction's state at step t has read the future (x_t..x_{T-1})."""
        if any(len(pair) > 1 for pair in self.layers):
            raise ValueError("a bidirectional stack has no state to carry forward in time: its reverse "
                             "direction's state at step t has read the inputs after t")
        traces = [pair[0] for pair in self.layers]
        return tuple(np.stack([tr.cell_states[i] for tr in traces], axis=1)
                     for i in range(len(traces[0].cell_states)))

    @property
    def final(self):
        """Each layer and direction's last state (PyTorch's h_n): (L * directions, [N,] H), and for
        a cell with a memory the pair (h_n, c_n); where the layers' states differ in their entries
        (an LSTM layer over a GRU layer), a list per entry, None for a layer without it."""
        parts = [tuple(s[-1] if self.inputs.batched else s[-1, 0] for s in tr.cell_states)
                 for pair in self.layers for tr in pair]
        stacked = tuple(_stack([p[i] for p in parts]) if all(i < len(p) for p in parts)
                        else [p[i] if i < len(p) else None for p in parts] for i in range(max(map(len, parts))))
        return stacked[0] if len(stacked) == 1 else stacked


def random_stack(cell, hidden, inputs, outputs, *, layers=2, bidirectional=False, seed, head="softmax",
                 dtype=np.float64, **init):
    """A random Stack: `layers` layers of the registered cell, each of H = hidden units per
    direction (two directions when bidirectional), D = inputs, O = outputs.

    Every layer and direction is drawn by the cell's own init (bptt.random_model's, with the same
    options, e.g. forget_bias=1.0, std=0.1), in Stack.entries' order from one generator; layer
    k > 0 reads the layer below's outputs (out(H) per direction). The head is the top layer's own
    init's V and c (one-layer models draw them that way); a bidirectional top layer's V is
    [V of the forward draw, V of the reverse draw] side by side, c the forward draw's.
    seed: an int or an np.random.Generator (required).
    """
    from .model import random_model
    from .validate import integer, rng as validate_rng

    layers, H = integer("layers", layers, low=1), integer("hidden", hidden, low=1)
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise ValueError(f"bidirectional must be True or False, got {show(bidirectional)}")
    validate.too_big(f"a stack of {layers} layers of H = {H}", layers * (1 + bool(bidirectional)) * H * H)
    rng = validate_rng(seed)
    built, V, c, width = [], [], None, inputs
    for k in range(layers):
        pair = []
        for j in range(1 + bool(bidirectional)):
            m = random_model(cell, hidden, width, outputs, seed=rng, head=head, dtype=dtype, **init)
            pair.append(model_class(type(m.cell))(**{n: a for n, a in m.params.items() if n not in ("V", "c")},
                                            **m.cell.values, head=None))
            if k == layers - 1:
                V.append(m.V)
                c = m.c if j == 0 else c
        width = pair[0].cell.out(pair[0].H) * len(pair)
        built.append(tuple(pair))
    return Stack(built, np.concatenate(V, axis=1), c, head)


def load_model(path):
    """The network in a file that Model.save or Stack.save wrote: a Model or a Stack."""
    arrays = validate.read_npz(path, "model file")
    meta = arrays.get("meta")
    try:
        described = json.loads(str(meta)) if meta is not None and meta.shape == () and meta.dtype.kind == "U" else None
    except (ValueError, RecursionError):
        described = None
    if isinstance(described, dict) and described.get("format") == FORMAT:
        return Stack.from_arrays(check_description(described, path), {k: a for k, a in arrays.items() if k != "meta"},
                                 path)
    return Model.load(path)


def _in_time(a, j):
    """A direction's (T, ...) array in time order: the reverse run's reversed."""
    return a[::-1] if j else a


def _stack(parts):
    """Per-entry arrays as one array when they share a shape, else a list."""
    return np.stack(parts) if len({np.shape(p) for p in parts}) == 1 else list(parts)


def _reversed(xin):
    return validate.Inputs(None if xin.ids is None else np.ascontiguousarray(xin.ids[:, ::-1]),
                           None if xin.X is None else np.ascontiguousarray(xin.X[:, ::-1]), xin.N, xin.T, xin.batched)


def initial_states(stack, h0, xin) -> list:
    """The state before step 0 of every layer and direction (Stack.entries' order): a list of state
    tuples. h0: None (zeros), an array (L * directions, [N,] H) when every entry's state is one array
    of one width (PyTorch's h_0), the pair (h0, c0) of such arrays for cells with a memory, or a
    list with one entry per layer and direction, each as that layer takes it."""
    entries = stack.entries
    if h0 is None:
        return [core.initial_state(m, None, xin) for _, _, m in entries]
    if isinstance(h0, tuple) and len(h0) == len(entries[0][2].cell.state) > 1 and not isinstance(h0[0], list):
        per = [tuple(part[i] for part in h0) for i in range(len(entries))] if all(
            np.ndim(p) >= 2 and len(p) == len(entries) for p in h0) else None
    elif isinstance(h0, list) or (np.ndim(h0) >= 2 and not isinstance(h0, tuple)):
        per = list(h0)
    else:
        per = None
    if per is None or len(per) != len(entries):
        raise ValueError(f"h0 for a stack has one entry per layer and direction ({len(entries)}): an array "
                         f"({len(entries)}, [N,] H), a pair (h0, c0) of them, or a list of {len(entries)}; got "
                         f"{show(h0)}")
    return [core.initial_state(m, p, xin) for (_, _, m), p in zip(entries, per)]


# --- forward -------------------------------------------------------------------------------
def forward(stack, x, h0=None, *, scan="sequential") -> StackTrace:
    """Run the stack over x: a StackTrace (.q, .o, .h, .final, .layers[k][j] per layer and direction).
    x: ids (T,) / (N, T) or dense (T, D) / (N, T, D); h0: see initial_states."""
    scan_method(stack, scan)
    stack.check_finite()
    xin = validate.inputs(stack, x)
    return run(stack, xin, initial_states(stack, h0, xin), scan)


def scan_method(stack, scan):
    """scan checked for every layer of the stack."""
    if isinstance(scan, str) and scan == "sequential":
        return scan
    for _, _, m in stack.entries:
        core.scan_method(m, scan)
    return scan


def run(stack, xin, states0, scan="sequential") -> StackTrace:
    """The forward pass from checked inputs and the initial states of every layer and direction."""
    layers, k0, inputs = [], 0, xin
    for pair in stack.layers:
        traces = tuple(core.run(m, _reversed(inputs) if j else inputs, states0[k0 + j], scan)
                       for j, m in enumerate(pair))
        k0 += len(pair)
        layers.append(traces)
        Y = np.concatenate([_in_time(tr.S[1:], j) for j, tr in enumerate(traces)], axis=-1)  # (T, N, out)
        inputs = validate.Inputs(None, np.ascontiguousarray(np.swapaxes(Y, 0, 1)), xin.N, xin.T, xin.batched)
    with np.errstate(over="ignore", invalid="ignore"):
        Q = Y @ stack.V.T + (0 if stack.c is None else stack.c)  # (T, N, O)
    return StackTrace(stack, xin, tuple(layers), Q, scan)


# --- backward ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerErrors:
    """The errors of one layer and direction, in its own time order: dH (T, N, H) what arrives at
    each step's output from above (the head or the next layer), dA, dR (T, N, G) the steps' errors
    (core.backprop), d0 the error at its initial state (a tuple like the state), and dS, when
    asked for, the whole error at every state, dE/d state_t (a tuple like the state of (T, N, H))."""
    dH: np.ndarray
    dA: np.ndarray
    dR: np.ndarray
    d0: tuple
    dS: tuple | None = None


def backprop(trace, dY, final=None, states=False):
    """The errors of every layer and direction from dY (T, N, out), dE/dh_t of the top layer's
    outputs in time order. final: the error at each layer and direction's last state (a list in
    Stack.entries' order of state tuples, or None: zeros), for a loss that reads the final state
    (PyTorch's h_n). Extra leading axes of dY (many outputs' errors at once) carry through.
    states: keep each step's whole state error (LayerErrors.dS). Returns errors[k][j]
    (LayerErrors) and, per layer, the error dE/dx_t that reaches its input (T, ..., D_k; layer 0's
    for dense inputs only, else None)."""
    stack = trace.model
    errors, crossing = [None] * stack.depth, [None] * stack.depth
    last = {(k, j): final[i] for i, (k, j, _) in enumerate(stack.entries)} if final is not None else {}
    for k in range(stack.depth - 1, -1, -1):
        pair, traces = stack.layers[k], trace.layers[k]
        widths = np.cumsum([m.cell.out(m.H) for m in pair])[:-1]
        parts = np.split(dY, widths, axis=-1)
        out, dX = [], None
        for j, (m, tr, part) in enumerate(zip(pair, traces, parts)):
            dH = _in_time(part, j)
            seen = [] if states else None
            if trace.scan == "parallel" and dH.ndim == 3 and not last and not states:
                dA, dR, d = core.backprop_scan(tr, dH)
            else:
                dA, dR, d = core.backprop(tr, dH, d=last.get((k, j)), seen=seen)
            dS = tuple(np.stack(e[::-1]) for e in zip(*seen)) if states else None
            out.append(LayerErrors(dH, dA, dR, d, dS))
            if k or trace.inputs.X is not None:
                with np.errstate(over="ignore", invalid="ignore"):
                    e = _in_time(dA @ m.cell.stacked(m, "input"), j)  # (T, ..., D_k)
                dX = e if dX is None else dX + e
        errors[k], crossing[k] = tuple(out), dX
        dY = dX
    return errors, crossing


@core.reports_overflow
def backward(trace, y, *, truncate=None, reduction="sum"):
    """BPTT through depth and time from a StackTrace: (loss, Grads); grads.params by the stack's
    flat names, grads.state0 per state entry, one row per layer and direction."""
    require_full(truncate)
    stack, xin = trace.model, trace.inputs
    tg = validate.targets(stack, y, xin)
    loss, dQ = heads.error(stack.head, trace.Q, tg, reduction)
    errors, _ = backprop(trace, dQ @ stack.V)
    grads = core.Grads(weight_grads(trace, errors, dQ), state_grads(trace, errors))
    return finite(trace, loss, grads, errors)


def weight_grads(trace, errors, dQ=None) -> dict:
    """Every parameter's gradient by the stack's flat names, from the layers' errors (and the
    head's from dQ (T, N, O) when given)."""
    g = {}
    for k, pair in enumerate(trace.layers):
        for j, tr in enumerate(pair):
            e = errors[k][j]
            g.update(flat_names(core.weight_grads(tr, None, e.dA, e.dR), k, j))
    if dQ is not None:
        g.update(head_grads(trace, dQ))
    return g


def flat_names(grads, k, j) -> dict:
    """A layer's arrays by its own names (U, W, ...) renamed as the stack's for layer k, direction j
    (U_l0, W_l1_reverse, ...)."""
    return {f"{name}{_suffix(k, j)}": a for name, a in grads.items()}


def head_grads(trace, dQ, product=None) -> dict:
    """dV = sum_t dQ_t^T h_t (h_t the top layer's outputs) and dc = sum_t dQ_t, from dQ (T, N, O);
    product(A, B, tn=True) computes A^T B (the fast backend's, on its threads; NumPy's by default)."""
    stack = trace.model
    Y = trace.outputs(stack.depth - 1)
    Q2 = dQ.reshape(-1, stack.O)
    Y2 = Y.reshape(-1, Y.shape[-1])
    g = {"V": (Q2.T @ Y2 if product is None else product(Q2, Y2, tn=True)).astype(stack.dtype, copy=False)}
    if stack.c is not None:
        g["c"] = Q2.sum(axis=0).astype(stack.dtype, copy=False)
    return g


def state_grads(trace, errors) -> tuple:
    """dE/d(initial state), per entry of the state (h, then c): one row per layer and direction
    (PyTorch's layout), (L * directions, [N,] H); where the layers' states differ in width or in
    their entries (an LSTM layer over a GRU layer), a list per entry, None for a layer without it."""
    parts = [e.d0 for pair in errors for e in pair]
    batched = trace.inputs.batched
    out = []
    for i in range(max(len(p) for p in parts)):
        got = [(p[i] if batched else p[i][0]) if i < len(p) else None for p in parts]
        out.append(_stack(got) if all(g is not None for g in got) else got)
    return tuple(out)


def require_full(truncate):
    """A ValueError unless truncate is None: a stack's gradients are full BPTT."""
    if core.truncation(truncate) is not None:
        raise ValueError("truncate=K is the notebook's window for one layer; a stack's gradients are full "
                         "BPTT (truncate=None)")


def entry_points(forward, backward):
    """(gradients, loss) of an engine for stacks from its forward(stack, x, h0, scan=) and
    backward(trace, y, truncate=, reduction=): this module's, and the fast backend's (fast.stacked)."""
    def gradients(stack, x, y, *, truncate=None, h0=None, reduction="sum", scan="sequential"):
        """Loss and gradients of a stack: (loss, grads), grads.params by the flat names (U_l0, ...)."""
        require_full(truncate)
        heads.check_reduction(reduction)
        return backward(forward(stack, x, h0, scan=scan), y, reduction=reduction)

    @core.reports_overflow
    def loss(stack, x, y, *, h0=None, reduction="sum") -> float:
        """The loss E alone (a forward pass)."""
        return core.trace_loss(forward(stack, x, h0), y, reduction, nonfinite_message)

    return gradients, loss


gradients, loss = entry_points(forward, backward)


# --- overflow ------------------------------------------------------------------------------
def finite(trace, loss, grads, errors):
    if np.isfinite(loss) and all(core.all_finite(g) for g in grads.params.values()):
        return loss, grads
    raise FloatingPointError(nonfinite_message(trace, errors))


def nonfinite_message(trace, errors=None) -> str:
    """The first layer, direction and step where the forward pass, or else the backward pass, left
    the floating-point range."""
    for k, pair in enumerate(trace.layers):
        for j, tr in enumerate(pair):
            where = core.forward_nonfinite(tr)
            if where:
                return f"the forward pass overflowed in layer {k}{' (reverse)' if j else ''}: {where}"
    if not np.isfinite(trace.Q).all():
        return "the forward pass overflowed at the head's outputs q_t"
    for k, pair in enumerate(errors or ()):
        for j, e in enumerate(pair):
            bad = np.flatnonzero(~np.isfinite(e.dA).reshape(len(e.dA), -1).all(axis=1))
            if bad.size:
                t = bad[-1] if not j else trace.inputs.T - 1 - bad[-1]
                return (f"the backward pass overflowed in layer {k}{' (reverse)' if j else ''}: the error dE/dz_t "
                        f"first became non-finite at step t = {t}")
    return "the loss or a gradient is not finite (an overflow in summing the weight gradients)"


__all__ = ["Stack", "StackTrace", "random_stack", "load_model", "forward", "backward", "gradients", "loss"]
