"""Stacked and bidirectional Keras recurrent layers (SimpleRNN, LSTM, GRU: every cell whose declaration
names one, Cell.keras) as a bptt.Stack, and back.

A keras.Sequential of recurrent layers, each with return_sequences=True (bptt scores every step,
so the top one too), some of them wrapped in keras.layers.Bidirectional(merge_mode="concat"), and
a Dense head at the end is a bptt.Stack: layer k of the Sequential (counting recurrent layers
only; a leading keras.Input is fine) is the stack's layer k, its weights laid out as the one-layer
from_keras lays them out (bptt.frameworks.tensorflow: kernel = U.T, recurrent_kernel = W.T, a
GRU's gate blocks z, r, h <-> r, z, n, a reset-after GRU's bias [b, bh]) under the names U_lk,
W_lk, b_lk, bh_lk; a Bidirectional's backward_layer is the reverse direction, U_lk_reverse, ....
Layers may differ in units and in cell. Keras's backward layer runs with go_backwards=True and
its output sequence is flipped back before the concatenation [forward, backward], which is what
a bptt.Stack's reverse direction computes.

What is refused, each with a one-line ValueError: dropout or recurrent_dropout > 0 (the layer's
output is random in training, and training is what gradients are for; at inference,
training=False, they do nothing: the same weights in a layer without dropout compute the network
bptt would), stateful=True (the state carries over from the previous batch, bptt starts every
batch from h0), return_sequences=False, a merge_mode other than "concat", Masking and any other
layer between the recurrent ones, activations the cells do not have. unroll and use_bias (either)
are fine.

to_keras(stack) builds the Sequential back, keras.Input((None, D)) first, in the stack's dtype:
to_keras(stack.replace(**grads.params)).trainable_weights puts each gradient where the Keras
model's weights are, in the same order.
"""
from __future__ import annotations

import numpy as np

from ..stack import Stack
from . import keras_layout as kl


def _layers(keras, network, dense):
    """(recurrent layers, Dense head) of a Sequential, a list, or one Bidirectional layer."""
    if isinstance(network, keras.Model) and not isinstance(network, keras.Sequential):
        raise ValueError(f"from_keras reads a keras.Sequential, a list of layers or one layer; got a "
                         f"{type(network).__name__} (a functional model may branch: pass its layers as a list)")
    if isinstance(network, keras.Sequential):
        layers = list(network.layers)
    elif isinstance(network, (list, tuple)):
        layers = list(network)
    else:
        layers = [network]
    layers = [v for v in layers if not isinstance(v, keras.layers.InputLayer)]
    if dense is None and layers and isinstance(layers[-1], keras.layers.Dense):
        dense = layers.pop()
    if not isinstance(dense, keras.layers.Dense):
        last = type(layers[-1]).__name__ if layers else "nothing"
        got = type(dense).__name__ if dense is not None else f"{last} as the last layer"
        raise ValueError(f"from_keras needs a Dense head, the Sequential's last layer (or dense=...); got {got}")
    if not layers:
        raise ValueError("from_keras needs at least one recurrent layer below the Dense head; got none")
    return layers, dense


def check_layer(keras, layer, k, sequences=True):
    """The layer's class name ("SimpleRNN", ...) after the checks that apply inside a Sequential
    (sequences=False: a layer that returns its last output only is fine, as bptt.diagnose reads it)."""
    kinds = kl.layer_classes(keras)
    if isinstance(layer, keras.layers.Masking):
        raise ValueError(f"layer {k} is a Masking layer: bptt reads every step of every sequence and has no masks")
    if not isinstance(layer, kinds):
        raise ValueError(f"layer {k} is a {type(layer).__name__}: from_keras reads stacks of recurrent layers "
                         f"({kl.named_layers()}, plain or Bidirectional) under one Dense head, nothing between them")
    kind = next(c.__name__ for c in kinds if isinstance(layer, c))
    where = f"layer {k} ({kind})"
    if not layer.built:
        raise ValueError(f"from_keras needs built layers (call the model once, or start the Sequential with "
                         f"keras.Input); {where} is not built")
    if layer.cell.dropout or layer.cell.recurrent_dropout:
        raise ValueError(f"{where} has dropout={layer.cell.dropout} and recurrent_dropout="
                         f"{layer.cell.recurrent_dropout}: its output is random in training; at inference they do "
                         "nothing, so copy its weights into the same layer with both 0")
    if layer.stateful:
        raise ValueError(f"{where} is stateful: its state carries over from the last batch, while bptt "
                         "starts every batch from h0")
    if sequences and not layer.return_sequences:
        raise ValueError(f"{where} has return_sequences=False; bptt scores every step, so every "
                         "recurrent layer needs return_sequences=True")
    return kind


def from_keras(keras, network, dense, head):
    """A bptt.Stack from a keras.Sequential (or a list of layers and dense, or one Bidirectional
    layer and dense); see the module's docstring. One unidirectional layer gives the one-layer
    model, as tensorflow.from_keras does for a layer."""
    layers, dense = _layers(keras, network, dense)
    if not dense.built:
        raise ValueError("from_keras needs built layers; the Dense head is not built")
    pairs = []
    for k, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Bidirectional):
            if layer.merge_mode != "concat":
                raise ValueError(f"layer {k} is Bidirectional with merge_mode={layer.merge_mode!r}; bptt's stack "
                                 "concatenates the two directions: merge_mode='concat' only")
            parts = (layer.forward_layer, layer.backward_layer)
            if parts[0].go_backwards or not parts[1].go_backwards:
                raise ValueError(f"layer {k} is Bidirectional around a layer with go_backwards=True; bptt's "
                                 "forward direction reads the sequence forward: wrap a go_backwards=False layer")
        elif getattr(layer, "go_backwards", False):
            raise ValueError(f"layer {k} reads its input backwards (go_backwards=True); bptt runs a single "
                             "direction forward in time (wrap it in Bidirectional for both)")
        else:
            parts = (layer,)
        pair = []
        for part in parts:
            kind = check_layer(keras, part, k)
            cls, arrays, settings = kl.layer_arrays(keras, part, kind)
            pair.append((cls, arrays, settings))
        pairs.append(pair)
    V, c = kl.dense_arrays(keras, dense, head)
    top = sum(arrays["W"].shape[1] for _, arrays, _ in pairs[-1])
    if V.shape[1] != top:
        raise ValueError(f"the Dense head takes {V.shape[1]} inputs but the top recurrent layer's output is "
                         f"{top} wide")
    if len(pairs) == 1 and len(pairs[0]) == 1:
        cls, arrays, settings = pairs[0][0]
        return cls(**arrays, V=V, c=c, head=head, **settings)
    built = [tuple(cls(**arrays, **settings, head=None) for cls, arrays, settings in pair) for pair in pairs]
    return Stack(built, V, c, head)


def _same_biases(pair):
    """A pair whose two directions both have b (and both bh) or both lack it: zeros for a missing
    one (Keras builds the backward layer with the forward one's use_bias)."""
    for key in ("b", "bh"):
        have = [m.params.get(key) for m in pair]
        ref = next((v for v in have if v is not None), None)
        if ref is not None:
            pair = tuple(m if v is not None else m.replace(**{key: np.zeros_like(ref)}) for m, v in zip(pair, have))
    return pair


def to_keras(keras, stack):
    """A built keras.Sequential holding a stack's weights, in its dtype: keras.Input((None, D)),
    one SimpleRNN / LSTM / GRU (return_sequences=True) per layer, wrapped in
    Bidirectional(merge_mode="concat") where the layer has two directions, then Dense(O)."""
    dtype = kl.keras_dtype(stack)
    for k, j, m in stack.entries:
        if not m.cell.keras:
            raise ValueError(f"Keras has {kl.named_layers('and')} layers only; layer {k} of this stack is a "
                             f"{m.cell.name} layer")
        kl.keras_bias(m, f"_l{k}" + ("_reverse" if j else ""))

    layers, weights = [], []
    for k, pair in enumerate(stack.layers):
        made = [kl.keras_layer(keras, m, dtype, f"_l{k}" + ("_reverse" if j else ""))
                for j, m in enumerate(_same_biases(pair))]
        layers.append(made[0][0] if len(made) == 1 else  # the wrapper in the dtype too: it casts its output
                      keras.layers.Bidirectional(made[0][0], merge_mode="concat", dtype=dtype))
        weights.append([w for _, w in made])
    dense = keras.layers.Dense(stack.O, use_bias=stack.c is not None, dtype=dtype)
    model = keras.Sequential([keras.Input((None, stack.D), dtype=dtype), *layers, dense])
    for layer, w in zip(model.layers, weights):
        parts = (layer.forward_layer, layer.backward_layer) if len(w) == 2 else (layer,)
        for part, arrays in zip(parts, w):
            part.set_weights(arrays)
    dense.set_weights([stack.V.T] + ([stack.c] if stack.c is not None else []))
    return model
