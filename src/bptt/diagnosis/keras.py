"""The error a Keras model's own loss puts on its recurrent layers, by TensorFlow's autograd.

capture(model, rnn, inputs, loss_fn): rnn is a SimpleRNN / LSTM / GRU layer of the model, a
Bidirectional wrapper of one, or a list of such layers called one after the other (a stack); the
last may return its last output only (return_sequences=False), the others every step. A sub-model
of the user's model gives, in one run under tf.GradientTape, what the first layer read, what the
last one gave and the model's output; the user's loss on that output is differentiated by
TensorFlow with respect to the last layer's output. Every layer starts from a zero state (Keras's
default; a layer called with initial_state is refused by the agreement check of bptt.diagnose).
"""
from __future__ import annotations

import numpy as np

from ..validate import show


def capture(model, rnn, inputs, loss_fn):
    """As bptt.diagnosis.torch.capture, for Keras."""
    import keras
    import tensorflow as tf

    from ..frameworks import keras_layout as kl
    from ..frameworks.keras_stack import check_layer
    from ..stack import Stack

    layers = list(rnn) if isinstance(rnn, (list, tuple)) else [rnn]
    if not layers or not all(isinstance(v, keras.layers.Layer) for v in layers):
        raise TypeError(f"rnn must be a Keras recurrent layer of model (or a list of them), got {show(rnn)}")
    inside = {id(v) for v in _all_layers(model)}
    if not all(id(v) in inside for v in layers):
        raise ValueError("rnn is not a layer of model: pass the recurrent layer(s) that model calls")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function of the model's output returning a scalar loss, got "
                        f"{show(loss_fn)}")
    pairs, names, cells = [], {}, []
    for k, layer in enumerate(layers):
        last = k == len(layers) - 1
        parts = (layer.forward_layer, layer.backward_layer) if isinstance(layer, keras.layers.Bidirectional) \
            else (layer,)
        if isinstance(layer, keras.layers.Bidirectional) and layer.merge_mode != "concat":
            raise ValueError(f"layer {k} is Bidirectional with merge_mode={layer.merge_mode!r}: merge_mode='concat' "
                             "only")
        pair = []
        for j, part in enumerate(parts):
            kind = check_layer(keras, part, k, sequences=not last)
            if getattr(part, "return_state", False):
                raise ValueError(f"layer {k} returns its state (return_state=True): diagnose a layer whose output "
                                 "is its sequence or its last step")
            cls, arrays, settings = kl.layer_arrays(keras, part, kind)
            pair.append(cls(**arrays, **settings, head=None))
            suffix = f"_l{k}" + ("_reverse" if j else "")
            cells.append((suffix, part))
        pairs.append(tuple(pair))
    stack = Stack(pairs, np.eye(sum(m.cell.out(m.H) for m in pairs[-1]), dtype=pairs[0][0].dtype), head="mse")
    sequences = bool(getattr(layers[-1], "return_sequences", None) if not isinstance(
        layers[-1], keras.layers.Bidirectional) else layers[-1].forward_layer.return_sequences)
    try:
        sub = keras.Model(model.input, [layers[0].input, layers[-1].output, model.output])
    except (ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"cannot read the recurrent layers' input and output from this model ({str(e)[:100]}): "
                         "build it with keras.Input (a Sequential starting with keras.Input, or a functional "
                         "model)") from None
    with tf.GradientTape() as tape:
        x, out, y = sub(inputs, training=False)
        tape.watch(out)
        loss = loss_fn(y)
    if getattr(loss, "shape", None) is None or int(np.prod(loss.shape)) != 1:
        raise ValueError(f"loss_fn must return a scalar, got {show(loss)}")
    dout = tape.gradient(loss, out)
    x, out = np.asarray(x), np.asarray(out)
    dout = np.zeros_like(out) if dout is None else np.asarray(dout)
    T = x.shape[1]
    if not sequences:  # the last step's output only: forward h_{T-1}, a reverse direction's h at t = 0
        width = out.shape[-1]
        full, dY = np.full((x.shape[0], T, width), np.nan), np.zeros((x.shape[0], T, width))
        split = [m.cell.out(m.H) for m in pairs[-1]]
        full[:, T - 1, :split[0]], dY[:, T - 1, :split[0]] = out[:, :split[0]], dout[:, :split[0]]
        if len(split) == 2:
            full[:, 0, split[0]:], dY[:, 0, split[0]:] = out[:, split[0]:], dout[:, split[0]:]
        out, dout = full, dY
    for suffix, part in cells:
        names.update(_names(part, suffix))
    return {"stack": stack, "x": x, "out": out, "h0": None, "dY": np.swapaxes(dout, 0, 1), "final": None,
            "names": names, "loss": float(np.asarray(loss).reshape(())), "kind": _kind(layers[0]),
            "framework": "Keras", "dtype": str(x.dtype), "to_framework": _to_keras_layout}


def _all_layers(model):
    out = []
    for v in getattr(model, "layers", []):
        out.append(v)
        out.extend(_all_layers(v) if hasattr(v, "layers") else [])
    return out


def _kind(layer):
    from ..frameworks.keras_layout import cell_of

    return cell_of(type(getattr(layer, "forward_layer", layer)).__name__)


def _names(part, suffix):
    """{bptt's flat name: the Keras weight's path} for one direction of one layer; bptt's gradient
    arrays are laid out back into Keras's by _to_keras_layout."""
    cell = part.cell
    out = {f"kernel{suffix}": cell.kernel.path, f"recurrent_kernel{suffix}": cell.recurrent_kernel.path}
    if cell.use_bias:
        out[f"bias{suffix}"] = cell.bias.path
    return out


def _to_keras_layout(stack, grads):
    """bptt's gradients by flat names -> Keras's arrays by (kernel|recurrent_kernel|bias)_lk[_reverse]."""
    import keras

    from ..frameworks import keras_layout as kl

    out = {}
    for k, j, m in stack.entries:
        suffix = f"_l{k}" + ("_reverse" if j else "")
        own = {name: grads[f"{name}{suffix}"] for name in m.params}
        _, weights = kl.keras_layer(keras, m.replace(**own), m.dtype, "")
        out[f"kernel{suffix}"], out[f"recurrent_kernel{suffix}"] = weights[0], weights[1]
        if len(weights) > 2:
            out[f"bias{suffix}"] = weights[2]
    return out
