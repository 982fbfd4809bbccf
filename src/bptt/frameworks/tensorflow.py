"""The same Elman RNN in TensorFlow (float64, tf.GradientTape), and import/export of Keras
SimpleRNN + Dense.

`gradients` and `terms` rebuild the model from its arrays and let GradientTape differentiate it.
Truncation (truncate=K, the notebook's rule) is built with tf.stop_gradient: output t's chain is
recomputed from stop_gradient(s_{t-K-1}); outputs with t - K <= -1 start from h0 itself, which is
where dE/dh0 comes from. Token ids are looked up with tf.gather on U's columns.

Weight layout (Keras computes h_t = f(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias), row vectors):

    bptt     Keras
    U        simple_rnn kernel            = U.T   (D, H)
    W        simple_rnn recurrent_kernel  = W.T   (H, H)
    b        simple_rnn bias              (H,)
    V        dense kernel                 = V.T   (H, O)
    c        dense bias                   (O,)
    f        activation "tanh", "relu", "sigmoid", or "linear" (bptt's "identity")

to_keras builds SimpleRNN(return_sequences=True) and Dense(O) in the model's dtype; the RNN's
output sequence is s_0..s_{T-1} (bptt's trace.states[1:]) and dense(output) is q. A Dense with
activation "softmax" is accepted by from_keras for the softmax head (its pre-activations are q).
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from ..model import RNN
from ._common import check_terms_args, problem, windows

KERAS_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "sigmoid": "sigmoid", "identity": "linear"}


def _load(name):
    """Import tensorflow or keras; TensorFlow's start-up INFO lines are silenced unless the caller
    set TF_CPP_MIN_LOG_LEVEL."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return importlib.import_module(name)


def _act(tf, name):
    return {"tanh": tf.tanh, "relu": tf.nn.relu, "sigmoid": tf.sigmoid, "identity": tf.identity}[name]


def _inputs(tf, p, U, b=None):
    """U x_t (+ b) for every step: (T, N, H); ids gather U's columns."""
    if p.ids is not None:
        UX = tf.gather(tf.transpose(U), p.ids.T)  # (T, N, H)
    else:
        UX = tf.einsum("ntd,hd->tnh", tf.constant(p.X), U)
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
    return P, tf.Variable(p.h0, dtype=tf.float64)


def gradients(model: RNN, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {"U", "W", "V", ["b", "c",] "h0"}) computed by tf.GradientTape in float64.

    Same arguments and meaning as bptt.gradients; dE/dh0 is (H,) or (N, H) for a batch.
    """
    tf = _load("tensorflow")

    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    P, h0v = _variables(tf, p)
    f = _act(tf, p.activation)

    def out(s):
        q = tf.matmul(s, P["V"], transpose_b=True)
        return q + P["c"] if "c" in P else q

    with tf.GradientTape() as tape:
        UX = _inputs(tf, p, P["U"], P.get("b"))
        s, states = tf.convert_to_tensor(h0v), [tf.convert_to_tensor(h0v)]
        for k in range(p.T):
            s = f(UX[k] + tf.matmul(s, P["W"], transpose_b=True))
            states.append(s)
        E = tf.add_n([_step_loss(tf, p, out(states[t + 1]), t) for t in range(p.T)])
        target = E
        if p.K is not None:
            parts = []
            for w in windows(p.T, p.K):
                s = tf.convert_to_tensor(h0v) if w.from_h0 else tf.stop_gradient(states[w.start])
                for k in range(w.start, w.t + 1):
                    s = f(UX[k] + tf.matmul(s, P["W"], transpose_b=True))
                parts.append(_step_loss(tf, p, out(s), w.t))
            target = tf.add_n(parts)
    names = list(P)
    got = tape.gradient(target, [P[k] for k in names] + [h0v],
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = {k: _dense(tf, g) for k, g in zip(names, got)}
    grads["h0"] = p.h0_out(_dense(tf, got[-1]))
    return float(E.numpy()), grads


def _dense(tf, g):
    """A gradient as a float64 NumPy array (tf.gather gives IndexedSlices)."""
    return np.asarray(tf.convert_to_tensor(g).numpy(), dtype=np.float64)


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t.

    The parameter is untied into T variables, copy k used at step k only; GradientTape's gradient
    of copy k is step k's term. E_t is summed over the batch.
    """
    tf = _load("tensorflow")

    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    f = _act(tf, p.activation)
    P = {k: tf.constant(v) for k, v in p.params.items()}
    copies = [tf.Variable(p.params[name]) for _ in range(p.T)]
    with tf.GradientTape() as tape:
        s = tf.constant(p.h0)
        for k in range(t + 1):
            Q = dict(P, **{name: copies[k]})
            ux = _inputs(tf, p, Q["U"], Q.get("b"))[k]
            s = f(ux + tf.matmul(s, Q["W"], transpose_b=True))
        q = tf.matmul(s, P["V"], transpose_b=True)
        E_t = _step_loss(tf, p._replace(scale=1.0), q + P["c"] if "c" in P else q, t)
    got = tape.gradient(E_t, copies, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return np.stack([_dense(tf, g) for g in got])


# --- import / export ---------------------------------------------------------------------------
def _keras_dtype(model):
    if model.dtype not in (np.float32, np.float64):
        raise ValueError(f"to_keras needs a float32 or float64 model, got {model.dtype}")
    return str(model.dtype)


def to_keras(model: RNN):
    """(keras.layers.SimpleRNN, keras.layers.Dense), built and holding the model's weights.

    SimpleRNN(H, return_sequences=True) in the model's dtype: kernel = U.T, recurrent_kernel = W.T,
    bias = b; Dense(O): kernel = V.T, bias = c. Call rnn(x, initial_state=[h0]) for a given h0.
    """
    if not isinstance(model, RNN):
        raise ValueError(f"to_keras expects a bptt.RNN, got {type(model).__name__}")
    dtype = _keras_dtype(model)
    keras = _load("keras")

    rnn = keras.layers.SimpleRNN(model.H, activation=KERAS_ACTIVATIONS[model.activation],
                                 use_bias=model.b is not None, return_sequences=True, dtype=dtype)
    rnn.build((None, None, model.D))
    rnn.set_weights([model.U.T, model.W.T] + ([model.b] if model.b is not None else []))
    dense = keras.layers.Dense(model.O, use_bias=model.c is not None, dtype=dtype)
    dense.build((None, model.H))
    dense.set_weights([model.V.T] + ([model.c] if model.c is not None else []))
    return rnn, dense


def _activation_name(keras, fn):
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # a custom callable keras cannot name
        name = getattr(fn, "__name__", repr(fn))
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return str(name)


def from_keras(simple_rnn, dense, *, head="softmax") -> RNN:
    """A bptt.RNN from a built keras SimpleRNN and its Dense head (copies the weights).

    U = kernel.T, W = recurrent_kernel.T, b = bias; V = dense kernel.T, c = dense bias. The dtype
    follows the weights. Activations tanh, relu, sigmoid and linear (-> "identity") are understood.
    """
    keras = _load("keras")

    if not isinstance(simple_rnn, keras.layers.SimpleRNN):
        raise ValueError(f"from_keras expects a keras.layers.SimpleRNN, got {type(simple_rnn).__name__}")
    if not isinstance(dense, keras.layers.Dense):
        raise ValueError(f"from_keras expects a keras.layers.Dense head, got {type(dense).__name__}")
    if not simple_rnn.built or not dense.built:
        raise ValueError("from_keras needs built layers (call them once, or layer.build(input_shape))")
    if simple_rnn.go_backwards:
        raise ValueError("this SimpleRNN reads its input backwards (go_backwards=True); bptt runs forward in time")
    act = _activation_name(keras, simple_rnn.activation)
    ours = {v: k for k, v in KERAS_ACTIVATIONS.items()}
    if act not in ours:
        raise ValueError(f"the SimpleRNN's activation {act!r} is not one bptt models: expected one of "
                         f"{', '.join(sorted(ours))}")
    dact = _activation_name(keras, dense.activation)
    if dact not in ("linear", "softmax") or (dact == "softmax" and head != "softmax"):
        raise ValueError(f"the Dense head's activation is {dact!r}: bptt needs its pre-activations, so it "
                         "must be 'linear' (or 'softmax' with head='softmax')")
    cell = simple_rnn.cell

    def arr(v):  # a keras Variable as a NumPy copy
        return np.array(v.numpy())

    U, W = arr(cell.kernel).T, arr(cell.recurrent_kernel).T
    b = arr(cell.bias) if cell.use_bias else None
    if dense.kernel.shape[0] != U.shape[0]:
        raise ValueError(f"the Dense head takes {dense.kernel.shape[0]} inputs but the SimpleRNN has "
                         f"{U.shape[0]} units")
    c = arr(dense.bias) if dense.use_bias else None
    return RNN(U=U, W=W, V=arr(dense.kernel).T, b=b, c=c, activation=ours[act], head=head)
