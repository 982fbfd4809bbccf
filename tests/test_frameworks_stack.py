"""Stacked and bidirectional networks imported from and exported to the frameworks as a bptt.Stack.

Keras: a stack exported with to_keras runs in Keras itself, whose tf.GradientTape gives the loss
and every gradient (weights and initial states) that bptt.gradients must match in float64;
to_keras(stack.replace(**grads.params)) puts bptt's gradients where Keras's weights are, in the
order of the Sequential's trainable weights. A Sequential that Keras initialises itself is
imported with from_keras and checked the same way; the round trip from_keras(to_keras(stack))
gives back the same arrays; what bptt does not model is refused in one line.
"""
import numpy as np
import pytest
from conftest import need

import bptt
from bptt.frameworks import from_keras, relative_error, to_keras
from bptt.model import model_class
from bptt.stack import Stack

pytestmark = pytest.mark.frameworks

RTOL = 1e-10


def refused(call, match):
    """call() raises a one-line ValueError matching `match`."""
    with pytest.raises(ValueError, match=match) as e:
        call()
    assert "\n" not in str(e.value), str(e.value)


# --- Keras -----------------------------------------------------------------------------------------
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def keras_layer(rng, cell, H, D, bias, settings):
    """A random layer (head=None) of a cell Keras has, with the biases a Keras layer can hold."""
    G = GATES[cell] * H
    p = {"U": rng.normal(0, 0.6, (G, D)), "W": rng.normal(0, 0.6, (G, H))}
    if bias:
        p["b"] = rng.normal(0, 0.5, G)
        if settings.get("reset_after"):
            p["bh"] = rng.normal(0, 0.5, G)
    return model_class(cell)(**p, **settings, head=None)


def random_stack(seed, cell, depth, directions, bias, reset_after=True, D=3, O=4):
    """directions: "both" (every layer bidirectional), "one" (none) or "mixed" (drawn per layer);
    hidden sizes drawn per layer."""
    rng = np.random.default_rng(seed)
    layers, width = [], D
    for _ in range(depth):
        H = int(rng.integers(2, 5))
        two = directions == "both" or (directions == "mixed" and rng.random() < 0.5)
        settings = {"activation": str(rng.choice(["tanh", "relu", "sigmoid", "identity"]))} if cell == "rnn" \
            else {"reset_after": reset_after} if cell == "gru" else {}
        pair = tuple(keras_layer(rng, cell, H, width, bias, settings) for _ in range(2 if two else 1))
        layers.append(pair)
        width = H * len(pair)
    return Stack(layers, rng.normal(0, 0.6, (O, width)), rng.normal(0, 0.5, O) if bias else None)


def initial_states(rng, stack, N):
    """bptt's h0 (one entry per layer and direction, a pair (h, c) for an LSTM) and Keras's
    initial_state list for each recurrent layer of the Sequential."""
    ours, theirs = [], []
    for pair in stack.layers:
        states = []
        for m in pair:
            entry = tuple(rng.normal(0, 0.5, (N, m.H)) for _ in m.cell.state)
            ours.append(entry if len(entry) > 1 else entry[0])
            states += entry
        theirs.append(states)
    return ours, theirs


def keras_gradients(keras, model, X, y, states):
    """Keras's loss (cross-entropy summed over batch and steps) and tf.GradientTape's gradients of
    every trainable weight (the Sequential's order) and every initial state."""
    import tensorflow as tf

    starts = [[tf.Variable(s) for s in layer] for layer in states]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum",
                                                           dtype="float64")
    with tf.GradientTape() as tape:
        h = tf.constant(X)
        for layer, s in zip(model.layers[:-1], starts):
            h = layer(h, initial_state=s)
        loss = loss_fn(y, model.layers[-1](h))
    flat = [v for layer in starts for v in layer]
    got = tape.gradient(loss, list(model.trainable_weights) + flat)
    n = len(model.trainable_weights)
    return float(loss), [np.asarray(g) for g in got[:n]], [np.asarray(g) for g in got[n:]]


def check_against_keras(keras, model, stack, seed=0, N=2, T=5):
    """bptt.gradients(stack) against tf.GradientTape on the Keras model: loss, each weight, each
    initial state, to RTOL."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, stack.D))
    y = rng.integers(0, stack.O, size=(N, T))
    h0, states = initial_states(rng, stack, N)
    their_loss, their_w, their_s = keras_gradients(keras, model, X, y, states)
    loss, grads = bptt.gradients(stack, X, y, h0=h0)
    assert relative_error(loss, their_loss)[1] <= RTOL, (loss, their_loss)
    placed = to_keras(stack.replace(**grads.params)).trainable_weights
    assert [tuple(v.shape) for v in placed] == [g.shape for g in their_w]
    for v, g in zip(placed, their_w):
        assert relative_error(np.asarray(v.numpy()), g)[1] <= RTOL, v.path
    ours_s = [grads.state0[i][e] for e in range(len(stack.entries)) for i in range(len(grads.state0))]
    assert len(ours_s) == len(their_s)
    for i, (a, b) in enumerate(zip(ours_s, their_s)):
        assert relative_error(a, b)[1] <= RTOL, f"initial state {i}"


def same_stack(a, b):
    assert type(b) is Stack and a.head == b.head and a.dtype == b.dtype
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert a.params[k].dtype == b.params[k].dtype and np.array_equal(a.params[k], b.params[k]), k
    assert [m.settings for _, _, m in a.entries] == [m.settings for _, _, m in b.entries]


CASES = [("rnn", True, 2, "both", True), ("rnn", True, 3, "one", False), ("lstm", True, 2, "both", True),
         ("lstm", True, 3, "mixed", False), ("gru", True, 2, "both", True), ("gru", True, 3, "one", False),
         ("gru", False, 3, "mixed", True), ("gru", False, 2, "both", False)]


@pytest.mark.parametrize("cell, reset_after, depth, directions, bias", CASES)
def test_keras_stack_gradients_equal_gradient_tape_and_round_trip(cell, reset_after, depth, directions, bias):
    keras = need("keras")
    seed = CASES.index((cell, reset_after, depth, directions, bias))
    stack = random_stack(seed, cell, depth, directions, bias, reset_after)
    model = to_keras(stack)
    kinds = [type(v).__name__ for v in model.layers]
    assert kinds[-1] == "Dense" and len(kinds) == depth + 1
    assert [k == "Bidirectional" for k in kinds[:-1]] == [d == 2 for d in stack.directions]
    check_against_keras(keras, model, stack, seed)
    same_stack(stack, from_keras(model))


def test_keras_stack_float32_round_trip_and_one_layer_cases():
    need("keras")
    stack = random_stack(11, "lstm", 2, "mixed", True).astype(np.float32)
    model = to_keras(stack)
    assert str(model.layers[0].dtype) == "float32" and str(model.trainable_weights[0].dtype) == "float32"
    same_stack(stack, from_keras(model))
    one = random_stack(12, "gru", 1, "both", True)  # one bidirectional layer: a Stack
    same_stack(one, from_keras(to_keras(one)))
    bi = to_keras(one)
    same_stack(one, from_keras(bi.layers[0], bi.layers[1]))  # the layer and its Dense, as one layer's
    single = random_stack(13, "gru", 1, "one", True)  # one direction: the one-layer model
    back = from_keras(to_keras(single))
    assert type(back) is bptt.GRU and back.head == "softmax"
    for k, v in single.params.items():
        assert np.array_equal(back.params[k[:-3] if k.endswith("_l0") else k], v), k


def keras_initialised(keras, *layers):
    """A float64 Sequential over (None, 3) inputs whose weights Keras draws: layers, then Dense(4)."""
    return keras.Sequential([keras.Input((None, 3), dtype="float64"), *layers,
                             keras.layers.Dense(4, bias_initializer=init(keras, 9), dtype="float64")])


def init(keras, seed):
    return keras.initializers.RandomNormal(stddev=0.5, seed=seed)


@pytest.mark.parametrize("memory", [False, True])
def test_keras_initialised_sequential_imports_as_the_stack_keras_computes(memory):
    keras = need("keras")
    L, f64 = keras.layers, {"dtype": "float64", "return_sequences": True}
    if memory:
        model = keras_initialised(keras, L.LSTM(3, bias_initializer=init(keras, 1), **f64),
                                  L.Bidirectional(L.LSTM(2, bias_initializer=init(keras, 2), **f64), dtype="float64"))
        cells = [("lstm", 3), ("lstm", 2), ("lstm", 2)]
    else:
        before = L.GRU(4, reset_after=False, bias_initializer=init(keras, 1), **f64)  # Keras's GRU of old
        model = keras_initialised(
            keras, L.Bidirectional(before, dtype="float64"),
            L.SimpleRNN(5, activation="relu", bias_initializer=init(keras, 2), unroll=True, **f64),
            L.Bidirectional(L.GRU(2, bias_initializer=init(keras, 3), **f64), dtype="float64"))
        cells = [("gru", 4), ("gru", 4), ("rnn", 5), ("gru", 2), ("gru", 2)]
    stack = from_keras(model)
    assert [(m.cell.name, m.H) for _, _, m in stack.entries] == cells
    if not memory:
        assert stack.layers[0][0].reset_after is False and stack.layers[2][0].reset_after is True
        assert stack.layers[1][0].activation == "relu" and stack.layers[2][0].bh is not None
    X = np.random.default_rng(5).normal(size=(2, 6, 3))
    np.testing.assert_allclose(bptt.stack.forward(stack, X).q, np.asarray(model(X)), rtol=1e-12, atol=1e-14)
    check_against_keras(keras, model, stack, seed=5)


def test_keras_stack_refusals():
    keras = need("keras")
    L = keras.layers

    def seq(*layers, inp=None):
        return keras.Sequential([keras.Input((None, 3)) if inp is None else inp, *layers, L.Dense(2)])

    def rnn(**kw):
        return L.SimpleRNN(3, return_sequences=True, **kw)

    refused(lambda: from_keras(seq(rnn(dropout=0.2), rnn())),
            r"layer 0 \(SimpleRNN\) has dropout=0.2.*random in training")
    refused(lambda: from_keras(seq(rnn(), L.LSTM(2, recurrent_dropout=0.1, return_sequences=True))),
            r"layer 1 \(LSTM\).*recurrent_dropout=0.1")
    refused(lambda: from_keras(seq(rnn(stateful=True), rnn(), inp=keras.Input(batch_shape=(2, 4, 3)))), "stateful")
    refused(lambda: from_keras(seq(L.Masking(), rnn(), rnn())), "Masking layer")
    refused(lambda: from_keras(seq(rnn(), L.Dropout(0.5), rnn())), "layer 1 is a Dropout")
    refused(lambda: from_keras(seq(L.Bidirectional(rnn(), merge_mode="sum"), rnn())), "merge_mode='sum'")
    refused(lambda: from_keras(seq(rnn(), L.SimpleRNN(3))), "return_sequences=False")
    refused(lambda: from_keras(seq(rnn(), rnn(go_backwards=True))), "go_backwards")
    refused(lambda: from_keras(seq(rnn(activation="elu"), rnn())), "'elu' is not one bptt models")
    refused(lambda: from_keras(seq(rnn(), L.GRU(2, activation="relu", return_sequences=True))),
            "recurrent_activation 'sigmoid'")
    refused(lambda: from_keras(keras.Sequential([keras.Input((None, 3)), rnn(), rnn()])),
            "needs a Dense head.*SimpleRNN as the last layer")
    a, b, wide = rnn(), rnn(), L.Dense(2)
    for layer, shape in ((a, (None, None, 3)), (b, (None, None, 3)), (wide, (None, 7))):
        layer.build(shape)
    refused(lambda: from_keras([a, b], wide), "takes 7 inputs but the top recurrent layer's output is 3 wide")
    refused(lambda: from_keras([L.Bidirectional(L.LSTM(2, return_sequences=True))], wide), r"built layers.*\(LSTM\)")

    stack = random_stack(0, "lstm", 2, "both", True)
    refused(lambda: to_keras(stack.replace(bh_l1_reverse=np.ones(4 * stack.layers[1][1].H))),
            r"recurrent bias bh_l1_reverse.*stack.replace\(b_l1_reverse=")
    below = stack.layers[0]
    mingru = bptt.random_model("mingru", 3, 2 * below[0].H, 2, seed=0)
    top = type(mingru)(**{k: v for k, v in mingru.params.items() if k not in ("V", "c")}, head=None)
    refused(lambda: to_keras(Stack([below, top], np.ones((2, 3)))), "layer 1 of this stack is a mingru layer")
