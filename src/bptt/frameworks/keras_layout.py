"""The Keras layout of one recurrent layer and its Dense head, both ways: what from_keras and
to_keras (bptt.frameworks.tensorflow) and the stacks' (keras_stack) share. No TensorFlow here:
the callers pass the keras module in. Which Keras layer computes a cell, and the order in which it
keeps the gate blocks, are the cell's declaration (Cell.keras, Cell.keras_gates); this module
holds only what every layer has in common:

    bptt     Keras
    U        kernel               = U.T   (D, G)   (G = H, 4H or 3H), gate blocks in Keras's order
    W        recurrent_kernel     = W.T   (H, G)
    b, bh    bias: one vector b (G,) (no bh), or the (2, G) pair [b, bh] in a layer with
             reset_after=True (a GRU's recurrent bias kept apart)
    gates    a SimpleRNN has none; an LSTM keeps i, f, c, o = bptt's (PyTorch's) i, f, g, o; a GRU
             z, r, h against bptt's r, z, n (its keras_gates (1, 0, 2))
    f        a SimpleRNN's activation: bptt's identity is Keras's "linear"
    V, c     Dense kernel = V.T (H, O), bias = c (O,)
"""
from __future__ import annotations

import numpy as np

from .. import cells
from ..model import model_class
from ..validate import listed

KERAS_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "sigmoid": "sigmoid", "identity": "linear"}


def layer_classes(keras) -> tuple:
    """The Keras layer classes bptt maps (SimpleRNN, ...; Cell.keras), in registry order."""
    return tuple(getattr(keras.layers, name) for name in cells.layers("keras"))


def named_layers(last="or") -> str:
    """ "SimpleRNN, LSTM or GRU": the Keras layers bptt maps, for messages."""
    return listed(cells.layers("keras"), last=last)


def cell_of(layer_name) -> str | None:
    """bptt's cell name for a Keras layer's class name ("SimpleRNN" -> "rnn"), or None."""
    cell = cells.layers("keras").get(layer_name)
    return cell.name if cell is not None else None


def keras_dtype(model):
    if model.dtype not in (np.float32, np.float64):
        raise ValueError(f"to_keras needs a float32 or float64 model, got {model.dtype}")
    return str(model.dtype)


def to_keras_order(cell, a):
    """The gate blocks of a (G, ...) (rows of U, W, b or bh) in the order the cell's Keras layer keeps
    them (Cell.keras_gates; a itself where the orders agree)."""
    order = cell.keras_gates
    if order is None or a is None:
        return a
    blocks = np.split(a, len(order))
    return np.concatenate([blocks[k] for k in order])


def from_keras_order(cell, a):
    """The inverse of to_keras_order: Keras's gate blocks back in bptt's order."""
    order = cell.keras_gates
    if order is None or a is None:
        return a
    blocks = np.split(a, len(order))
    return np.concatenate([blocks[k] for k in np.argsort(order)])


def _paired(cell) -> bool:
    """Whether the cell's Keras layer keeps the pair [b, bh] (a layer with reset_after=True)."""
    return bool(cell.values.get("reset_after"))


def keras_bias(model, suffix=""):
    """The layer's bias as Keras holds it, or None: b in Keras's gate order, or the (2, G) pair
    [b, bh] (zeros for a missing one) in a layer with reset_after=True. Any other Keras layer holds
    no recurrent bias: a model with bh is a ValueError (suffix: a stack layer's, "_l0",
    "_l1_reverse", ..., for the message)."""
    cell = model.cell
    if _paired(cell):
        if model.b is None and model.bh is None:
            return None
        zero = np.zeros(model.W.shape[0], dtype=model.dtype)
        return np.stack([to_keras_order(cell, v) if v is not None else zero for v in (model.b, model.bh)])
    if model.bh is not None:
        kind = cell.keras + (" with reset_after=False" if "reset_after" in cell.values else "")
        b, bh, who = f"b{suffix}", f"bh{suffix}", "stack" if suffix else "model"
        raise ValueError(f"a Keras {kind} holds one bias vector, but this {who} has a recurrent bias {bh}: "
                         f"pass {who}.replace({b}={b} + {bh}, {bh}=None) ({b} = {bh} if it has no {b}), which "
                         "computes the same network")
    return to_keras_order(cell, model.b)


def keras_layer(keras, model, dtype, suffix=""):
    """(layer, weights): an unbuilt Keras layer (return_sequences=True) for a bptt model of a cell
    that declares one (a model or a stack's layer), and the list its set_weights takes."""
    cell = model.cell
    options = {}
    if "activation" in cell.values:  # the SimpleRNN's: the gated layers' are fixed (tanh, sigmoid)
        if cell.values["activation"] not in KERAS_ACTIVATIONS:
            raise ValueError(f"a Keras {cell.keras} takes the activations {', '.join(KERAS_ACTIVATIONS)}; this model "
                             f"uses {cell.values['activation']!r}, which it cannot express")
        options["activation"] = KERAS_ACTIVATIONS[cell.values["activation"]]
    if "reset_after" in cell.values:
        options["reset_after"] = bool(cell.values["reset_after"])
    bias = keras_bias(model, suffix)
    layer = getattr(keras.layers, cell.keras)(model.H, use_bias=bias is not None, return_sequences=True,
                                              dtype=dtype, **options)
    U, W = to_keras_order(cell, model.U), to_keras_order(cell, model.W)
    return layer, [U.T, W.T] + ([bias] if bias is not None else [])


def activation_name(keras, fn):
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # a custom callable keras cannot name
        name = getattr(fn, "__name__", repr(fn))
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return str(name)


def _arr(v):
    """A keras Variable as a NumPy copy."""
    return np.array(v.numpy())


def _weights_dtype(weights):
    for v in weights:
        if str(v.dtype) not in ("float32", "float64"):
            raise ValueError(f"bptt holds float32 or float64 weights; this layer's {v.name} is {v.dtype}")


def layer_arrays(keras, layer, kind):
    """(class, arrays, settings) of a built Keras layer (kind: its class name, one a cell declares):
    from_keras's checks of the cell and its layout of U, W, b, bh."""
    cell = cells.layers("keras")[kind]
    keras_cell = layer.cell
    act = activation_name(keras, keras_cell.activation)
    ours = {v: k for k, v in KERAS_ACTIVATIONS.items()}
    settings = {}
    if "activation" in cell.settings:
        if act not in ours:
            raise ValueError(f"the {kind}'s activation {act!r} is not one bptt models: expected one of "
                             f"{', '.join(sorted(ours))}")
        settings["activation"] = ours[act]
    else:
        rec = activation_name(keras, keras_cell.recurrent_activation)
        if (act, rec) != ("tanh", "sigmoid"):
            raise ValueError(f"bptt's {kind} uses activation 'tanh' and recurrent_activation 'sigmoid'; "
                             f"this layer has {act!r} and {rec!r}")
    if "reset_after" in cell.settings:
        settings["reset_after"] = bool(keras_cell.reset_after)
    _weights_dtype([keras_cell.kernel, keras_cell.recurrent_kernel] + ([keras_cell.bias] if keras_cell.use_bias else []))
    made = cell(**settings)
    bias = _arr(keras_cell.bias) if keras_cell.use_bias else None
    b, bh = (bias[0], bias[1]) if _paired(made) and bias is not None else (bias, None)
    arrays = {"U": _arr(keras_cell.kernel).T, "W": _arr(keras_cell.recurrent_kernel).T, "b": b, "bh": bh}
    return model_class(cell.name), {k: from_keras_order(made, v) for k, v in arrays.items()}, settings


def dense_arrays(keras, dense, head):
    """(V, c) of a built Dense head, whose activation must be linear (or softmax with that head)."""
    dact = activation_name(keras, dense.activation)
    if dact not in ("linear", "softmax") or (dact == "softmax" and head != "softmax"):
        raise ValueError(f"the Dense head's activation is {dact!r}: bptt needs its pre-activations, so it "
                         "must be 'linear' (or 'softmax' with head='softmax')")
    _weights_dtype([dense.kernel] + ([dense.bias] if dense.use_bias else []))
    return _arr(dense.kernel).T, _arr(dense.bias) if dense.use_bias else None
