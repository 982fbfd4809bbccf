"""bptt.diagnose: the exact flow inside a PyTorch or Keras model's recurrent layers under the
model's own head and loss. The weight gradients it reports must equal what the framework's own
backward pass puts in the layers (loss.backward(), tf.GradientTape), and its numbers must equal
closed forms where they exist."""
import math
import os

import numpy as np
import pytest

import bptt
from conftest import need


def _attention_net(torch, kind, dtype, layers=2, bidirectional=True, batch_first=True, bias=True):
    class Net(torch.nn.Module):
        def __init__(self, V=20, E=6, H=5, O=3):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E, dtype=dtype)
            self.rnn = getattr(torch.nn, kind)(E, H, num_layers=layers, bidirectional=bidirectional,
                                               batch_first=batch_first, bias=bias, dtype=dtype)
            width = H * (2 if bidirectional else 1)
            self.att = torch.nn.Linear(width, 1, dtype=dtype)
            self.out = torch.nn.Linear(width, O, dtype=dtype)

        def forward(self, x):
            e = self.emb(x if batch_first else x.T)
            h, _ = self.rnn(e)
            h = h if batch_first else h.transpose(0, 1)
            w = torch.softmax(self.att(h).squeeze(-1), dim=1)  # attention pooling over the steps
            return self.out((w[..., None] * h).sum(1))
    return Net()


def _worst(d, module):
    worst = 0.0
    for name, p in module.named_parameters():
        g = p.grad.detach().numpy()
        worst = max(worst, float(np.max(np.abs(d.grads[name] - g)) / max(1e-300, np.max(np.abs(g)))))
    assert set(d.grads) == {n for n, _ in module.named_parameters()}
    return worst


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("batch_first,bias", [(True, True), (False, False)])
def test_pytorch_embedding_bidirectional_stack_attention_head(kind, batch_first, bias):
    torch = need("torch")
    torch.manual_seed(0)
    net = _attention_net(torch, kind, torch.float64, batch_first=batch_first, bias=bias).eval()
    x, y = torch.randint(0, 20, (4, 12)), torch.tensor([0, 2, 1, 1])

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out, y, reduction="sum")

    d = bptt.diagnose(net, net.rnn, x, loss_fn)
    loss_fn(net(x)).backward()
    assert _worst(d, net.rnn) <= 1e-10
    assert len(d.entries) == 4 and d.agreement <= 1e-12
    assert d.loss == pytest.approx(loss_fn(net(x)).item(), rel=1e-12)


def test_pytorch_classifier_on_the_final_state_with_a_given_initial_state():
    """The head reads h_n and c_n (not the output sequence): the error enters at each layer's last
    state; h0 and c0 given; time-major input."""
    torch = need("torch")
    torch.manual_seed(1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, num_layers=3, dtype=torch.float64)
            self.head = torch.nn.Linear(8, 2, dtype=torch.float64)

        def forward(self, x):
            h0 = torch.full((3, x.shape[1], 4), 0.3, dtype=torch.float64)
            _, (h, c) = self.lstm(x, (h0, -h0))
            return self.head(torch.cat([h[-1], c[1]], dim=-1))

    net = Net()
    x = torch.randn(15, 2, 3, dtype=torch.float64)
    y = torch.tensor([1, 0])

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out, y)

    d = bptt.diagnose(net, net.lstm, x, loss_fn)
    loss_fn(net(x)).backward()
    assert _worst(d, net.lstm) <= 1e-10


def test_pytorch_float32_within_float32_rounding():
    torch = need("torch")
    torch.manual_seed(2)
    net = _attention_net(torch, "LSTM", torch.float32).eval()
    x, y = torch.randint(0, 20, (4, 30)), torch.tensor([0, 2, 1, 1])

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out, y)

    d = bptt.diagnose(net, net.rnn, x, loss_fn)
    loss_fn(net(x)).backward()
    assert d.dtype == "float32" and _worst(d, net.rnn) <= 1e-5


def test_the_cell_path_of_an_lstm_at_its_forget_bias():
    """keras-team/keras#16151: on a zero input from a zero state every gate is sigma of its bias, so
    the error on the cell state is multiplied by sigma(forget bias) per step: the diagnosis's cell
    path must be that closed form, per step and over every lag."""
    torch = need("torch")
    torch.manual_seed(3)
    H, T, fb = 4, 25, 1.0
    lstm = torch.nn.LSTM(3, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[H:2 * H] = fb  # PyTorch's gate order i, f, g, o
    head = torch.nn.Linear(H, 2, dtype=torch.float64)
    net = torch.nn.Sequential()
    net.lstm, net.head = lstm, head

    class Last(torch.nn.Module):
        def forward(self, x):
            return head(lstm(x)[0][:, -1])
    model = Last()
    model.lstm = lstm
    x = torch.zeros(2, T, 3, dtype=torch.float64)
    d = bptt.diagnose(model, lstm, x, lambda out: (out ** 2).sum() + out.sum())
    sigma = 1 / (1 + math.exp(-fb))
    per_step, product = d.entries[0]["memory"]
    np.testing.assert_allclose(per_step, sigma, rtol=1e-12, atol=0)
    np.testing.assert_allclose(product, sigma ** np.arange(T + 1), rtol=1e-12, atol=0)
    assert any(f"averages {sigma:.3g}" in line for line in d.advice())


def test_the_first_nonfinite_step_is_named():
    torch = need("torch")
    torch.manual_seed(4)
    rnn = torch.nn.RNN(2, 3, nonlinearity="relu", num_layers=2, batch_first=True, dtype=torch.float32)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.eye(3) * 1e4)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0].sum(-1)
    net = Net()
    x = torch.ones(1, 20, 2)
    d = bptt.diagnose(net, rnn, x, lambda out: out[:, :3].sum())
    assert d.nonfinite is not None and d.nonfinite.startswith("layer 0: the forward pass")
    assert "step t = " in d.nonfinite


def test_refusals_are_one_line():
    torch = need("torch")
    torch.manual_seed(5)
    net = _attention_net(torch, "LSTM", torch.float64)
    x, y = torch.randint(0, 20, (2, 5)), torch.tensor([0, 1])

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out, y)

    net.rnn.dropout = 0.5
    with pytest.raises(ValueError, match="training mode"):
        bptt.diagnose(net.train(), net.rnn, x, loss_fn)
    net.rnn.dropout = 0.0
    with pytest.raises(ValueError, match="not a submodule"):
        bptt.diagnose(net, torch.nn.LSTM(6, 5), x, loss_fn)
    with pytest.raises(ValueError, match="scalar"):
        bptt.diagnose(net, net.rnn, x, lambda out: out)
    with pytest.raises(TypeError, match="torch.nn.Module or a Keras model"):
        bptt.diagnose("model", net.rnn, x, loss_fn)
    packed = torch.nn.Sequential()
    packed.rnn = torch.nn.GRU(3, 2, batch_first=True)

    class Packs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = packed.rnn

        def forward(self, v):
            p = torch.nn.utils.rnn.pack_padded_sequence(v, [3, 2], batch_first=True)
            return self.rnn(p)[1]
    with pytest.raises(ValueError, match="PackedSequence"):
        bptt.diagnose(Packs(), packed.rnn, torch.ones(2, 3, 3), lambda out: out.sum())


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return need("keras"), need("tensorflow")


def test_keras_embedding_bidirectional_lstm_under_a_gru_classifier():
    keras, tf = _keras()
    keras.utils.set_random_seed(0)
    V, T, N = 12, 9, 3
    inp = keras.Input((T,), dtype="int32")
    e = keras.layers.Embedding(V, 5, dtype="float64")(inp)
    h = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, dtype="float64"), dtype="float64")(e)
    h2 = keras.layers.GRU(3, dtype="float64")(h)  # return_sequences=False: the last step only
    model = keras.Model(inp, keras.layers.Dense(2, dtype="float64")(h2))
    rnn = [model.layers[2], model.layers[3]]
    x, y = np.random.default_rng(0).integers(0, V, (N, T)), np.array([0, 1, 1])

    def loss_fn(out):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")(y, out)

    d = bptt.diagnose(model, rnn, x, loss_fn)
    with tf.GradientTape() as tape:
        loss = loss_fn(model(x))
    weights = [w for layer in rnn for w in layer.trainable_weights]
    for w, g in zip(weights, tape.gradient(loss, weights)):
        g = g.numpy()
        assert np.max(np.abs(d.grads[w.path] - g)) <= 1e-10 * np.max(np.abs(g)), w.path
    assert len(d.grads) == len(weights) and d.entries[-1]["cell"] == "gru"


def test_keras_lstm_cell_path_starts_at_sigma_of_its_default_forget_bias():
    """The Keras LSTM's default unit_forget_bias=True: the forget gate's bias starts at 1, so on a
    zero input the cell path's ratio per step is sigma(1) = 0.731 (keras#16151 printed 0.735)."""
    keras, _ = _keras()
    keras.utils.set_random_seed(1)
    T = 20
    inp = keras.Input((T, 3), dtype="float64")
    lstm = keras.layers.LSTM(4, return_sequences=True, dtype="float64")
    model = keras.Model(inp, keras.layers.Dense(1, dtype="float64")(lstm(inp)))
    d = bptt.diagnose(model, lstm, np.zeros((2, T, 3)), lambda out: keras.ops.sum(out ** 2) + 0.5 * keras.ops.sum(out))
    per_step, product = d.entries[0]["memory"]
    sigma = 1 / (1 + math.exp(-1.0))
    np.testing.assert_allclose(per_step, sigma, rtol=1e-12, atol=0)
    np.testing.assert_allclose(product, sigma ** np.arange(T + 1), rtol=1e-12, atol=0)


def test_the_shares_beyond_lags_are_the_truncated_gradients_difference():
    """The share beyond lag K is ||g - g_K|| / ||g||, g_K the gradient of the layer's error cut after
    K steps: checked for a one-layer LSTM against bptt.gradients(truncate=K) of the same network as a
    bptt model (whose head is a Linear on every step: the error from above is the head's), on the
    whole batch and on its first two sequences."""
    torch = need("torch")
    from bptt.frameworks import from_torch

    torch.manual_seed(6)
    lstm, head = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64), torch.nn.Linear(4, 3, dtype=torch.float64)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = lstm, head

        def forward(self, x):
            return self.head(self.lstm(x)[0])
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 30, 3)), rng.integers(0, 3, (5, 30))

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 3), torch.from_numpy(y).reshape(-1), reduction="sum")
    model = from_torch(lstm, head)
    for lags, n in ((True, 5), (2, 2)):
        d = bptt.diagnose(Net(), lstm, torch.from_numpy(X), loss_fn, lags=lags)
        _, g = bptt.gradients(model, X[:n], y[:n], backend="reference")
        _, g10 = bptt.gradients(model, X[:n], y[:n], truncate=10, backend="reference")
        names = ("U", "W", "b", "bh")
        want = np.sqrt(sum(np.sum((g.params[k] - g10.params[k]) ** 2) for k in names)) / \
            np.sqrt(sum(np.sum(g.params[k] ** 2) for k in names))
        assert d.entries[0]["shares"][10] == pytest.approx(want, rel=1e-10)
        assert d.entries[0]["shares"][100] == 0.0 and d.lags_over == n


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_per_step_weight_terms_add_the_flows_terms_of_every_output(kind):
    """pytorch#1407: step k's term of dE/dW (weight_hh) is the sum over the outputs t of the flow's
    term (t, k), which bptt.flow builds one output at a time (and its tests check against autograd)."""
    torch = need("torch")
    from bptt.frameworks import from_torch

    torch.manual_seed(8)
    rnn, head = getattr(torch.nn, kind)(3, 4, batch_first=True, dtype=torch.float64), torch.nn.Linear(4, 3, dtype=torch.float64)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x):
            return self.head(self.rnn(x)[0])
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(1, 12, 3)), rng.integers(0, 3, (1, 12))

    def loss_fn(out):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 3), torch.from_numpy(y).reshape(-1), reduction="sum")
    d = bptt.diagnose(Net(), rnn, torch.from_numpy(X), loss_fn)
    fl = bptt.flow(from_torch(rnn, head), X[0], y[0])
    want = np.linalg.norm(sum(fl.terms("W", t) for t in range(12)), axis=(1, 2))
    np.testing.assert_allclose(d.entries[0]["terms"], want, rtol=1e-10)


def test_keras_embedding_two_bidirectional_lstms_attention_pooling():
    keras, tf = _keras()
    keras.utils.set_random_seed(2)
    V, T, N, f64 = 15, 11, 4, "float64"
    inp = keras.Input((T,), dtype="int32")
    e = keras.layers.Embedding(V, 5, dtype=f64)(inp)
    lstm1 = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, dtype=f64), dtype=f64)
    lstm2 = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, dtype=f64), dtype=f64)
    h = lstm2(lstm1(e))
    scores = keras.layers.Dense(1, dtype=f64)(h)  # attention pooling: softmax over the steps
    weights = keras.layers.Softmax(axis=1, dtype=f64)(scores)
    pooled = keras.layers.Dot(axes=1, dtype=f64)([weights, h])
    model = keras.Model(inp, keras.layers.Dense(3, dtype=f64)(keras.layers.Flatten(dtype=f64)(pooled)))
    x, y = np.random.default_rng(2).integers(0, V, (N, T)), np.array([0, 1, 2, 1])

    def loss_fn(out):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, out)

    d = bptt.diagnose(model, [lstm1, lstm2], x, loss_fn)
    with tf.GradientTape() as tape:
        loss = loss_fn(model(x))
    ws = lstm1.trainable_weights + lstm2.trainable_weights
    for w, g in zip(ws, tape.gradient(loss, ws)):
        g = g.numpy()
        assert np.max(np.abs(d.grads[w.path] - g)) <= 1e-10 * np.max(np.abs(g)), w.path
    assert len(d.grads) == len(ws) == 12 and len(d.entries) == 4
