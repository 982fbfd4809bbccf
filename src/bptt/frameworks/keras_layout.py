"""The Keras layout of one recurrent layer and its Dense head, both ways: what from_keras and
to_keras (bptt.frameworks.tensorflow) and the stacks' (keras_stack) share. No TensorFlow here:
the callers pass the keras module in.

    bptt     Keras
    U        kernel               = U.T   (D, G)   (G = H, 4H or 3H)
    W        recurrent_kernel     = W.T   (H, G)
    b, bh    bias: SimpleRNN, LSTM and a reset_after=False GRU b (no bh); a reset_after=True GRU
             the (2, G) pair [b, bh]
    gates    LSTM i, f, c, o = PyTorch's i, f, g, o; GRU Keras z, r, h <-> bptt r, z, n
    V, c     Dense kernel = V.T (H, O), bias = c (O,)
"""
from __future__ import annotations

import numpy as np

from .. import cells
from ..model import model_class
from ..validate import listed

RNN, LSTM, GRU = (model_class(name) for name in ("rnn", "lstm", "gru"))

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


def keras_gate_order(a):
    """A GRU's gate blocks (rows of U, W, b, bh) swapped between bptt's r, z, n and Keras's z, r, h:
    a (3H, ...) -> (3H, ...). The swap is its own inverse."""
    H = a.shape[0] // 3
    return np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])


def keras_bias(model, suffix=""):
    """The layer's bias as Keras holds it, or None: SimpleRNN and LSTM b; a GRU's in Keras's gate
    order, reset_after=True the (2, 3H) pair [b, bh] with zeros for a missing one, reset_after=False
    b. A Keras SimpleRNN, LSTM or reset-before GRU holds no recurrent bias: a model with bh is a
    ValueError (suffix: a stack layer's, "_l0", "_l1_reverse", ..., for the message)."""
    if isinstance(model, GRU) and model.reset_after:
        if model.b is None and model.bh is None:
            return None
        zero = np.zeros(3 * model.H, dtype=model.dtype)
        return np.stack([keras_gate_order(v) if v is not None else zero for v in (model.b, model.bh)])
    if model.bh is not None:
        kind = {RNN: "SimpleRNN", LSTM: "LSTM"}.get(type(model), "GRU with reset_after=False")
        b, bh, who = f"b{suffix}", f"bh{suffix}", "stack" if suffix else "model"
        raise ValueError(f"a Keras {kind} holds one bias vector, but this {who} has a recurrent bias {bh}: "
                         f"pass {who}.replace({b}={b} + {bh}, {bh}=None) ({b} = {bh} if it has no {b}), which "
                         "computes the same network")
    return model.b if not isinstance(model, GRU) or model.b is None else keras_gate_order(model.b)


def keras_layer(keras, model, dtype, suffix=""):
    """(layer, weights): an unbuilt Keras SimpleRNN / LSTM / GRU (return_sequences=True) for a bptt
    RNN, LSTM or GRU (a model or a stack's layer), and the list its set_weights takes."""
    if isinstance(model, RNN) and model.activation not in KERAS_ACTIVATIONS:
        raise ValueError(f"a Keras SimpleRNN takes the activations {', '.join(KERAS_ACTIVATIONS)}; this model "
                         f"uses {model.activation!r}, which it cannot express")
    bias = keras_bias(model, suffix)
    U, W = model.U, model.W
    if isinstance(model, RNN):
        layer = keras.layers.SimpleRNN(model.H, activation=KERAS_ACTIVATIONS[model.activation],
                                       use_bias=bias is not None, return_sequences=True, dtype=dtype)
    elif isinstance(model, LSTM):
        layer = keras.layers.LSTM(model.H, use_bias=bias is not None, return_sequences=True, dtype=dtype)
    else:
        U, W = keras_gate_order(U), keras_gate_order(W)
        layer = keras.layers.GRU(model.H, reset_after=bool(model.reset_after), use_bias=bias is not None,
                                 return_sequences=True, dtype=dtype)
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
    """(class, arrays, settings) of a built Keras SimpleRNN, LSTM or GRU (kind: its class name):
    from_keras's checks of the cell and its layout of U, W, b, bh."""
    cell = layer.cell
    act = activation_name(keras, cell.activation)
    ours = {v: k for k, v in KERAS_ACTIVATIONS.items()}
    if kind == "SimpleRNN" and act not in ours:
        raise ValueError(f"the SimpleRNN's activation {act!r} is not one bptt models: expected one of "
                         f"{', '.join(sorted(ours))}")
    if kind != "SimpleRNN":
        rec = activation_name(keras, cell.recurrent_activation)
        if (act, rec) != ("tanh", "sigmoid"):
            raise ValueError(f"bptt's {kind} uses activation 'tanh' and recurrent_activation 'sigmoid'; "
                             f"this layer has {act!r} and {rec!r}")
    _weights_dtype([cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.use_bias else []))
    U, W = _arr(cell.kernel).T, _arr(cell.recurrent_kernel).T
    bias = _arr(cell.bias) if cell.use_bias else None
    if kind == "SimpleRNN":
        return RNN, {"U": U, "W": W, "b": bias}, {"activation": ours[act]}
    if kind == "LSTM":
        return LSTM, {"U": U, "W": W, "b": bias}, {}
    b, bh = (bias[0], bias[1]) if cell.reset_after and bias is not None else (bias, None)
    return GRU, {"U": keras_gate_order(U), "W": keras_gate_order(W),
                 "b": None if b is None else keras_gate_order(b),
                 "bh": None if bh is None else keras_gate_order(bh)}, {"reset_after": bool(cell.reset_after)}


def dense_arrays(keras, dense, head):
    """(V, c) of a built Dense head, whose activation must be linear (or softmax with that head)."""
    dact = activation_name(keras, dense.activation)
    if dact not in ("linear", "softmax") or (dact == "softmax" and head != "softmax"):
        raise ValueError(f"the Dense head's activation is {dact!r}: bptt needs its pre-activations, so it "
                         "must be 'linear' (or 'softmax' with head='softmax')")
    _weights_dtype([dense.kernel] + ([dense.bias] if dense.use_bias else []))
    return _arr(dense.kernel).T, _arr(dense.bias) if dense.use_bias else None
