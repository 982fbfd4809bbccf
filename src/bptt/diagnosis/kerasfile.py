"""A saved Keras model (.keras) and an input file as a model, its batch and its loss (`bptt diagnose`).

The model is loaded with keras.saving.load_model(safe_mode=True) (no Lambda layer's code runs)
and diagnosed as saved: its recurrent layers are the consecutive SimpleRNN / LSTM / GRU layers
(or Bidirectional wrappers of them) that it calls one after the other, the last one returning
every step or its last step only; whatever comes before (an Embedding) and after (a Dense head,
anything) is the model's own. A Sequential is rebuilt as a functional model of copies of its
layers holding the same weights, so that the layers' inputs and outputs can be read.

The loss is the cross-entropy of the model's output (logits, or probabilities when its last layer's
activation is softmax) summed over the scored steps of y, as for a state dict (statedict.py):
y (N, T) class ids with -1 for a step not scored (the output one row per step), or y (N,) one
label per sequence (the output of the last step, or the model's only output).
"""
from __future__ import annotations

import numpy as np

from ..files import printable
from ..validate import regular_file

def load(path):
    """The Keras model in a .keras file, loaded safely; a one-line ValueError otherwise."""
    try:
        import keras
    except ImportError:
        raise ValueError("bptt diagnose --keras needs Keras and TensorFlow: pip install 'bptt[tensorflow]'") from None
    p = regular_file(path, "a Keras model file")
    if p.suffix != ".keras":
        raise ValueError(f"{printable(p)} is not a .keras file: save the model with model.save('NAME.keras')")
    try:
        return keras.saving.load_model(str(p), safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many kinds for a file it refuses or cannot parse
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"cannot load {printable(p)} safely as a Keras model (keras.saving.load_model with "
                         f"safe_mode=True): {first[:300]}") from None


def _kind(keras, layer):
    inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
    from ..frameworks.keras_layout import cell_of

    name = type(inner).__name__
    return name if cell_of(name) else None


def functional(model, x):
    """(model, its recurrent layers in order): a Sequential rebuilt as a functional model of copies
    of its layers (same weights), called on an input like x (N, T) ids or (N, T, D) vectors."""
    import keras

    if isinstance(model, keras.Sequential):
        inp = keras.Input(x.shape[1:], dtype="int32" if x.dtype.kind in "iu" else model.layers[0].dtype)
        h = inp
        for layer in model.layers:
            copy = layer.__class__.from_config(layer.get_config())
            h = copy(h)
            copy.set_weights(layer.get_weights())
        model = keras.Model(inp, h)
    layers = [v for v in model.layers if _kind(keras, v)]
    if not layers:
        from ..frameworks.keras_layout import named_layers

        raise ValueError(f"the Keras model has no recurrent layer ({named_layers()}, or a Bidirectional one)")
    at = [model.layers.index(v) for v in layers]
    if at != list(range(at[0], at[0] + len(at))):
        between = [type(model.layers[i]).__name__ for i in range(at[0], at[-1] + 1) if i not in at]
        raise ValueError(f"the model's recurrent layers are not consecutive (a {between[0]} lies between them): "
                         "bptt diagnoses a stack of recurrent layers called one after the other")
    return model, layers


def describe(keras, layers) -> str:
    """The stack in words: "LSTM(6) -> Bidirectional(GRU(4))"."""
    out = []
    for v in layers:
        inner = v.forward_layer if isinstance(v, keras.layers.Bidirectional) else v
        text = f"{type(inner).__name__}({inner.units})"
        out.append(f"Bidirectional({text})" if inner is not v else text)
    return " -> ".join(out)


def read_input(path, model, layers):
    """(x, y) of the input file, checked against the model's output: (N, T) ids or (N, T, D) vectors,
    y (N, T) (-1 = not scored) or (N,)."""
    from .statedict import read_xy

    x, y = read_xy(path)
    if not ((x.ndim == 2 and x.dtype.kind in "iu") or (x.ndim == 3 and x.dtype.kind == "f")):
        raise ValueError(f"x must be ids (N, T) integers or vectors (N, T, D) floats, got shape {x.shape} of "
                         f"{x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ValueError("x holds NaN or Inf: the diagnosis needs a finite batch")
    N, T = x.shape[:2]
    if N < 1 or T < 1:
        raise ValueError(f"x must hold at least one sequence of one step, got shape {x.shape}")
    if y.dtype.kind not in "iu" or y.shape not in ((N, T), (N,)):
        raise ValueError(f"y must be integer class ids of shape (N, T) = ({N}, {T}) or (N,) = ({N},), got shape "
                         f"{y.shape} of {y.dtype}")
    want = model.inputs[0].shape
    if len(want) != x.ndim or (x.ndim == 3 and want[-1] is not None and int(want[-1]) != x.shape[2]):
        raise ValueError(f"x of shape {x.shape} does not fit the model's input of shape {tuple(want)} "
                         "(None: any size)")
    embed = next((v for v in model.layers if type(v).__name__ == "Embedding"), None)
    if x.ndim == 2 and embed is not None and x.size and (x.min() < 0 or x.max() >= embed.input_dim):
        bad = int(x.max()) if x.max() >= embed.input_dim else int(x.min())
        raise ValueError(f"x holds the id {bad}, but the model's embedding has {embed.input_dim} rows "
                         f"(ids 0..{embed.input_dim - 1})")
    out = model.outputs[0].shape
    if len(out) == 2 and y.ndim == 2:
        raise ValueError(f"the model gives one output per sequence (shape {tuple(out)}), so y must be (N,) = ({N},), "
                         f"one label per sequence; got {y.shape}")
    O = int(out[-1])
    if y.size and (y.max() >= O or y.min() < (-1 if y.ndim == 2 else 0)):
        bad = int(y.max()) if y.max() >= O else int(y.min())
        raise ValueError(f"y holds the class {bad}: the model gives O = {O} classes (0..{O - 1})"
                         + (", and -1 marks a step that is not scored" if y.ndim == 2 else ""))
    if y.ndim == 2 and not np.any(y >= 0):
        raise ValueError("y scores no step (every target is -1): there is no loss to diagnose")
    return x, y


def loss_function(model, y):
    """The cross-entropy summed over the scored steps, of the model's logits or probabilities."""
    import keras
    import tensorflow as tf

    last = model.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    probs = act == "softmax" or type(last).__name__ == "Softmax"
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs, reduction="sum")
    target = tf.constant(y)

    def loss_fn(out):
        if target.shape.rank == 1:  # one label per sequence: the last step's output, or the only one
            return ce(target, out[:, -1] if len(out.shape) == 3 else out)
        keep = target >= 0
        return ce(tf.boolean_mask(target, keep), tf.boolean_mask(out, keep))

    return loss_fn, probs

