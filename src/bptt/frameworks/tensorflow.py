"""The same RNN, LSTM or GRU in TensorFlow (float64, tf.GradientTape), and import/export of Keras
SimpleRNN, LSTM and GRU layers with a Dense head.

`gradients` and `terms` rebuild the model from its arrays and let GradientTape differentiate it;
each cell's step is written with tf ops (bptt.cells' equations: PyTorch's, and Keras's
reset_after=False GRU). Truncation (truncate=K, the notebook's rule) is built with
tf.stop_gradient: output t's chain is recomputed from stop_gradient(the state before step t-K)
(h and c for an LSTM); outputs with t - K <= -1 start from the initial state itself, which is
where dE/dh0 (and dE/dc0) come from. Token ids are looked up with tf.gather on U's columns.

Weight layout (Keras computes with row vectors, x_t @ kernel + h_{t-1} @ recurrent_kernel + bias):

    bptt     Keras
    U        kernel               = U.T   (D, G)   (G = H, 4H or 3H)
    W        recurrent_kernel     = W.T   (H, G)
    b        bias                 (G,); a GRU with reset_after=True: bias[0]
    bh       a GRU with reset_after=True: bias[1] (the recurrent bias); a Keras LSTM and a
             reset_after=False GRU have none
    V        dense kernel         = V.T   (H, O)
    c        dense bias           (O,)
    f        SimpleRNN activation "tanh", "relu", "sigmoid", or "linear" (bptt's "identity")
    gates    LSTM: i, f, c, o, PyTorch's i, f, g, o. GRU: Keras z, r, h against bptt's (PyTorch's)
             r, z, n: the first two blocks of rows swap (the GRU cell's keras_gates)

to_keras builds the layer (return_sequences=True) and Dense(O) in the model's dtype; the layer's
output sequence is h_0..h_{T-1} (bptt's trace.states[1:]) and dense(output) is q. A Dense with
activation "softmax" is accepted by from_keras for the softmax head (its pre-activations are q).
A keras.Sequential of stacked and Bidirectional layers is a bptt.Stack both ways (keras_stack).
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from ._common import check_terms_args, problem, windows
from ..model import RNN
from .keras_layout import dense_arrays, keras_bias, keras_dtype, keras_layer, layer_arrays, layer_classes, named_layers

CELLS = ("rnn", "lstm", "gru")  # the cells this framework computes (both GRU forms)

# what TensorFlow's C++ side prints on stderr when it is imported, which says nothing to a bptt user
NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
         "cpu_feature_guard", "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate")


def _load(name):
    """Import tensorflow or keras. TensorFlow's start-up lines (NOISE; its C++ logger writes them to
    the process's stderr whatever TF_CPP_MIN_LOG_LEVEL says) are held back; anything else it prints
    while importing is passed on to stderr."""
    import sys
    import tempfile

    if "tensorflow" in sys.modules:
        return importlib.import_module(name)
    from ..progress import Stages
    from ._common import announce

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    saved = os.dup(2)
    line = announce(["tensorflow"], say=lambda text: None)
    # the heartbeat writes to the stderr of now, a copy of fd 2 taken before fd 2 is held back
    with Stages("bptt", delay=1.0) as stage, tempfile.TemporaryFile() as held:
        stage(line.removesuffix("..."))
        os.dup2(held.fileno(), 2)
        try:
            module = importlib.import_module(name)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
    kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)
    return module


def _act(tf, name, bm=None):
    """f(z) for the Elman cell's activation; modrelu: sign(z) relu(|z| + bm) (bm None: 0)."""
    if name == "modrelu":
        return lambda z: tf.sign(z) * tf.nn.relu(tf.abs(z) + (0 if bm is None else bm))
    return {"tanh": tf.tanh, "relu": tf.nn.relu, "sigmoid": tf.sigmoid, "identity": tf.identity}[name]


def _inputs(tf, p, U, b=None):
    """U x_t (+ b) for every step: (T, N, G); ids gather U's columns."""
    if p.ids is not None:
        UX = tf.gather(tf.transpose(U), p.ids.T)  # (T, N, H)
    else:
        UX = tf.einsum("ntd,gd->tng", tf.constant(p.X), U)
    return UX + b if b is not None else UX


def _step_loss(tf, p, q, t):
    """E_t summed over the batch (times the reduction's scale): q (N, O)."""
    m = tf.constant(p.mask[:, t])
    if p.head == "mse":
        return tf.reduce_sum(tf.reduce_sum((q - p.y_values[:, t]) ** 2, axis=-1) * m) * p.scale
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=np.maximum(p.y_ids[:, t], 0), logits=q)
    return tf.reduce_sum(ce * m) * p.scale


def _variables(tf, p):
    P = {k: tf.Variable(v, dtype=tf.float64) for k, v in p.params.items()}
    return P, tuple(tf.Variable(s, dtype=tf.float64) for s in p.state0)


def _step(tf, p, P):
    """The cell's step with tf ops: step(a, state) -> state; a (N, G) = U x_t + b, state a tuple
    of (N, H) tensors ((s,), (h, c) or (h,)); bptt.cells' equations in PyTorch's gate order."""
    W, bh = P["W"], P.get("bh")
    if p.cell == "rnn":
        f = _act(tf, p.activation, P.get("bm"))
        return lambda a, state: (f(a + tf.matmul(state[0], W, transpose_b=True) + (bh if bh is not None else 0)),)
    if p.cell == "lstm":
        def lstm(a, state):
            h, c = state
            pre = a + tf.matmul(h, W, transpose_b=True)
            i, f, g, o = tf.split(pre + bh if bh is not None else pre, 4, axis=-1)  # PyTorch's order
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c
        return lstm
    H = p.params["W"].shape[1]
    W_rz, W_n = W[:2 * H], W[2 * H:]
    bh_rz, bh_n = (bh[:2 * H], bh[2 * H:]) if bh is not None else (0.0, 0.0)

    def gru(a, state):
        (h,) = state
        r, z = tf.split(tf.sigmoid(a[:, :2 * H] + tf.matmul(h, W_rz, transpose_b=True) + bh_rz), 2, axis=-1)
        if p.reset_after:  # PyTorch's (and Keras's default) form: r scales W_n h + bh_n
            n = tf.tanh(a[:, 2 * H:] + r * (tf.matmul(h, W_n, transpose_b=True) + bh_n))
        else:  # Keras's reset_after=False: r scales h before W_n
            n = tf.tanh(a[:, 2 * H:] + tf.matmul(r * h, W_n, transpose_b=True) + bh_n)
        return ((1 - z) * n + z * h,)
    return gru


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {params by the model's names, "h0"[, "c0"]}) computed by tf.GradientTape in float64.

    model: bptt.RNN, LSTM or GRU. Same arguments and meaning as bptt.gradients (for an LSTM h0 may
    be the pair (h0, c0)); dE/dh0 and dE/dc0 are (H,) or (N, H) for a batch.
    """
    tf = _load("tensorflow")

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    P, state0 = _variables(tf, p)

    def out(h):
        q = tf.matmul(h, P["V"], transpose_b=True)
        return q + P["c"] if "c" in P else q

    with tf.GradientTape() as tape:
        step = _step(tf, p, P)
        A = _inputs(tf, p, P["U"], P.get("b"))  # (T, N, G)
        s0 = tuple(tf.convert_to_tensor(v) for v in state0)
        s, states = s0, [s0]  # states[j]: the state before step j
        for k in range(p.T):
            s = step(A[k], s)
            states.append(s)
        E = tf.add_n([_step_loss(tf, p, out(states[t + 1][0]), t) for t in range(p.T)])
        target = E
        if p.K is not None:
            parts = []
            for w in windows(p.T, p.K):
                s = s0 if w.from_h0 else tuple(tf.stop_gradient(v) for v in states[w.start])
                for k in range(w.start, w.t + 1):
                    s = step(A[k], s)
                parts.append(_step_loss(tf, p, out(s[0]), w.t))
            target = tf.add_n(parts)
    names = list(P)
    got = tape.gradient(target, [P[k] for k in names] + list(state0),
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = {k: _dense(tf, g) for k, g in zip(names, got)}
    grads.update(p.state_grads([_dense(tf, g) for g in got[len(names):]]))
    return float(E.numpy()), grads


def _dense(tf, g):
    """A gradient as a float64 NumPy array (tf.gather gives IndexedSlices)."""
    return np.asarray(tf.convert_to_tensor(g).numpy(), dtype=np.float64)


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t (Elman only).

    The parameter is untied into T variables, copy k used at step k only; GradientTape's gradient
    of copy k is step k's term. E_t is summed over the batch.
    """
    tf = _load("tensorflow")

    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    P = {k: tf.constant(v) for k, v in p.params.items()}
    f = _act(tf, p.activation, P.get("bm"))
    copies = [tf.Variable(p.params[name]) for _ in range(p.T)]
    with tf.GradientTape() as tape:
        s = tf.constant(p.h0)
        for k in range(t + 1):
            Q = dict(P, **{name: copies[k]})
            ux = _inputs(tf, p, Q["U"], Q.get("b"))[k]
            s = f(ux + tf.matmul(s, Q["W"], transpose_b=True) + (Q["bh"] if "bh" in Q else 0))
        q = tf.matmul(s, P["V"], transpose_b=True)
        E_t = _step_loss(tf, p._replace(scale=1.0), q + P["c"] if "c" in P else q, t)
    got = tape.gradient(E_t, copies, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return np.stack([_dense(tf, g) for g in got])


# --- import / export ---------------------------------------------------------------------------
def to_keras(model):
    """(layer, keras.layers.Dense), built and holding the model's weights, in the model's dtype.

    layer: keras.layers.SimpleRNN for a bptt.RNN, LSTM for an LSTM, GRU(reset_after=...) for a GRU,
    with return_sequences=True. kernel = U.T, recurrent_kernel = W.T (a GRU's gate blocks
    reordered to Keras's z, r, h); bias: SimpleRNN and LSTM b; GRU reset_after=True the (2, G)
    pair [b, bh] (zeros for a missing one); GRU reset_after=False b. A Keras SimpleRNN, LSTM or
    reset-before GRU has no recurrent bias: a model with bh raises a ValueError. Dense(O):
    kernel = V.T, bias = c. Call layer(x, initial_state=[h0]) (an LSTM: [h0, c0]) for a given
    initial state. A bptt.Stack gives a keras.Sequential instead (bptt.frameworks.keras_stack).
    """
    from ..stack import Stack

    if isinstance(model, Stack):
        from . import keras_stack
        return keras_stack.to_keras(_load("keras"), model)
    if not getattr(getattr(model, "cell", None), "keras", None):
        from .. import cells
        from ..validate import listed

        models = listed([c.model for c in cells.layers("keras").values()])
        raise ValueError(f"to_keras expects a bptt.Stack or a bptt.{models}, got {type(model).__name__}")
    dtype = keras_dtype(model)
    keras_bias(model)
    keras = _load("keras")

    layer, weights = keras_layer(keras, model, dtype)
    layer.build((None, None, model.D))
    layer.set_weights(weights)
    dense = keras.layers.Dense(model.O, use_bias=model.c is not None, dtype=dtype)
    dense.build((None, model.H))
    dense.set_weights([model.V.T] + ([model.c] if model.c is not None else []))
    return layer, dense


def from_keras(layer, dense=None, *, head="softmax"):
    """A bptt model from a built Keras recurrent layer and its Dense head (copies the weights).

    SimpleRNN -> bptt.RNN: U = kernel.T, W = recurrent_kernel.T, b = bias; activations tanh, relu,
    sigmoid and linear (-> "identity"). LSTM -> bptt LSTM: the same, Keras's gate order i, f, c, o
    being PyTorch's; bh = None. GRU -> bptt GRU with the layer's reset_after, gate blocks reordered
    from Keras's z, r, h to r, z, n; reset_after=True: b, bh = bias[0], bias[1]; reset_after=False:
    b = bias, bh = None. LSTM and GRU need Keras's default activations (tanh, recurrent sigmoid).
    V = dense kernel.T, c = dense bias. The dtype follows the weights (float32 or float64).

    layer may also be a keras.Sequential of stacked recurrent and Bidirectional layers ending in
    its Dense head (dense left out), or a list of such layers with dense given: that gives a
    bptt.Stack (bptt.frameworks.keras_stack), or this one-layer model when there is one
    unidirectional layer.
    """
    keras = _load("keras")

    if isinstance(layer, (list, tuple, keras.Model, keras.layers.Bidirectional)):
        from . import keras_stack
        return keras_stack.from_keras(keras, layer, dense, head)
    kinds = layer_classes(keras)
    if not isinstance(layer, kinds):
        raise ValueError(f"from_keras expects a keras.layers.{named_layers()}, got {type(layer).__name__}")
    kind = next(k.__name__ for k in kinds if isinstance(layer, k))
    if not isinstance(dense, keras.layers.Dense):
        raise ValueError(f"from_keras expects a keras.layers.Dense head, got {type(dense).__name__}")
    if not layer.built or not dense.built:
        raise ValueError("from_keras needs built layers (call them once, or layer.build(input_shape))")
    if layer.go_backwards:
        raise ValueError(f"this {kind} reads its input backwards (go_backwards=True); bptt runs forward in time")
    cls, arrays, settings = layer_arrays(keras, layer, kind)
    V, c = dense_arrays(keras, dense, head)
    H = arrays["W"].shape[1]
    if V.shape[1] != H:
        raise ValueError(f"the Dense head takes {V.shape[1]} inputs but the {kind} has {H} units")
    return cls(**arrays, V=V, c=c, head=head, **settings)
