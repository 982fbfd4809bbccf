"""Import from and export to torch.nn.RNN + nn.Linear and Keras SimpleRNN + Dense.

Export, run the framework's own layers forward and compare states and logits with bptt.forward;
import back and get identical arrays; import layers initialised by the framework itself.
"""
import warnings

import numpy as np
import pytest
from conftest import need

import bptt
from bptt.frameworks import from_keras, from_torch, to_keras, to_torch

pytestmark = pytest.mark.frameworks


def model(activation="tanh", bias=True, seed=0, dtype=np.float64, H=4, D=3, O=5):
    rng = np.random.default_rng(seed)
    m = bptt.random_rnn(H, D, O, seed=rng, activation=activation, bias=bias)
    if bias:
        m = m.replace(b=rng.normal(0, 0.5, H), c=rng.normal(0, 0.5, O))
    return m.astype(dtype)


def data(m, seed=1, N=2, T=6):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, m.D, (N, T))
    return x, np.eye(m.D)[x], rng.normal(0, 0.5, (N, m.H))  # ids, the same as one-hot rows, h0


def same_arrays(a, b):
    return a.params.keys() == b.params.keys() and all(
        np.array_equal(a.params[k], b.params[k]) and a.params[k].dtype == b.params[k].dtype for k in a.params)


# --- PyTorch ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_export_runs_like_bptt_and_imports_back_identically(activation, bias):
    torch = need("torch")
    m = model(activation, bias)
    x, X, h0 = data(m)
    rnn, linear = to_torch(m)
    assert rnn.weight_ih_l0.dtype == torch.float64 and rnn.batch_first and rnn.bias == bias
    with torch.no_grad():
        out, hn = rnn(torch.tensor(X), torch.tensor(h0)[None])
        q = linear(out)
    tr = bptt.forward(m, x, h0)
    np.testing.assert_allclose(out.numpy(), tr.states[:, 1:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn[0].numpy(), tr.final, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(q.numpy(), tr.q, rtol=1e-12, atol=1e-14)
    back = from_torch(rnn, linear)
    assert back.activation == activation and back.head == "softmax" and same_arrays(m, back)


def test_torch_float32_stays_float32():
    torch = need("torch")
    m = model(dtype=np.float32)
    rnn, linear = to_torch(m)
    assert rnn.weight_hh_l0.dtype == torch.float32 and linear.weight.dtype == torch.float32
    back = from_torch(rnn, linear)
    assert back.dtype == np.float32 and same_arrays(m, back)


def test_torch_import_of_a_model_torch_initialised_sums_both_biases():
    torch = need("torch")
    g = torch.Generator().manual_seed(5)
    rnn = torch.nn.RNN(3, 4, nonlinearity="relu", batch_first=True, dtype=torch.float64)
    linear = torch.nn.Linear(4, 2, dtype=torch.float64)
    for p in list(rnn.parameters()) + list(linear.parameters()):
        torch.nn.init.uniform_(p, -0.6, 0.6, generator=g)
    m = from_torch(rnn, linear)
    np.testing.assert_array_equal(m.b, (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy())
    assert m.activation == "relu"
    x, X, h0 = data(m, N=3, T=7)
    with torch.no_grad():
        out, _ = rnn(torch.tensor(X), torch.tensor(h0)[None])
        q = linear(out).numpy()
    tr = bptt.forward(m, x, h0)
    np.testing.assert_allclose(tr.states[:, 1:], out.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr.q, q, rtol=1e-12, atol=1e-14)


def test_torch_import_gives_torch_autograd_gradients():
    """A model imported from torch: bptt's gradients equal autograd on the torch layers themselves."""
    torch = need("torch")
    g = torch.Generator().manual_seed(2)
    rnn = torch.nn.RNN(3, 4, batch_first=True, dtype=torch.float64)
    linear = torch.nn.Linear(4, 3, dtype=torch.float64)
    for p in list(rnn.parameters()) + list(linear.parameters()):
        torch.nn.init.normal_(p, 0, 0.5, generator=g)
    m = from_torch(rnn, linear)
    x, X, _ = data(m, N=2, T=5)
    y = np.random.default_rng(3).integers(0, 3, (2, 5))
    out, _ = rnn(torch.tensor(X))
    loss = torch.nn.functional.cross_entropy(linear(out).reshape(-1, 3), torch.tensor(y.reshape(-1)), reduction="sum")
    loss.backward()
    ours_loss, ours = bptt.gradients(m, x, y)
    assert ours_loss == pytest.approx(loss.item(), rel=1e-12)
    for ours_g, theirs in [(ours.U, rnn.weight_ih_l0.grad), (ours.W, rnn.weight_hh_l0.grad),
                           (ours.b, rnn.bias_ih_l0.grad), (ours.b, rnn.bias_hh_l0.grad),
                           (ours.V, linear.weight.grad), (ours.c, linear.bias.grad)]:
        np.testing.assert_allclose(ours_g, theirs.numpy(), rtol=1e-10, atol=1e-13)


def test_torch_refuses_what_it_cannot_express():
    torch = need("torch")
    for act in ("sigmoid", "identity"):
        with pytest.raises(ValueError, match=f"'tanh' and 'relu' only.*{act}"):
            to_torch(model(act))
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError, match="num_layers=2"):
        from_torch(torch.nn.RNN(3, 4, num_layers=2), lin)
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch(torch.nn.RNN(3, 4, bidirectional=True), lin)
    with pytest.raises(ValueError, match="got LSTM"):
        from_torch(torch.nn.LSTM(3, 4), lin)
    with pytest.raises(ValueError, match="takes 5 inputs but the RNN has hidden_size 4"):
        from_torch(torch.nn.RNN(3, 4), torch.nn.Linear(5, 2))
    with pytest.raises(ValueError, match="Linear head"):
        from_torch(torch.nn.RNN(3, 4), torch.nn.Conv1d(4, 2, 1))


# --- Keras -----------------------------------------------------------------------------------------
def arr(t):
    """A keras variable or output tensor as NumPy."""
    return np.array(t.numpy()) if hasattr(t, "numpy") else np.asarray(t)


def keras_forward(keras, rnn, dense, X, h0):
    out = rnn(X, initial_state=[h0])
    return arr(out), arr(dense(out))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
def test_keras_export_runs_like_bptt_and_imports_back_identically(activation):
    keras = need("keras")
    m = model(activation, bias=activation != "sigmoid")
    x, X, h0 = data(m)
    rnn, dense = to_keras(m)
    np.testing.assert_array_equal(arr(rnn.cell.kernel), m.U.T)
    np.testing.assert_array_equal(arr(rnn.cell.recurrent_kernel), m.W.T)
    np.testing.assert_array_equal(arr(dense.kernel), m.V.T)
    states, q = keras_forward(keras, rnn, dense, X, h0)
    tr = bptt.forward(m, x, h0)
    np.testing.assert_allclose(states, tr.states[:, 1:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(q, tr.q, rtol=1e-12, atol=1e-14)
    back = from_keras(rnn, dense, head="softmax")
    assert back.activation == activation and same_arrays(m, back)


def test_keras_float32_and_mse_head():
    keras = need("keras")
    m = model(dtype=np.float32).replace(head="mse")
    rnn, dense = to_keras(m)
    assert rnn.dtype == "float32" and str(rnn.cell.kernel.dtype) == "float32"
    back = from_keras(rnn, dense, head="mse")
    assert back.dtype == np.float32 and back.head == "mse" and same_arrays(m, back)


def test_keras_import_of_layers_keras_initialised():
    keras = need("keras")
    init = keras.initializers.RandomNormal(stddev=0.5, seed=4)
    rnn = keras.layers.SimpleRNN(5, activation="tanh", return_sequences=True, dtype="float64",
                                 kernel_initializer=init, recurrent_initializer=keras.initializers.Orthogonal(seed=5),
                                 bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=6))
    dense = keras.layers.Dense(3, activation="softmax", dtype="float64",
                               bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=7))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 6, 4))
    probs = arr(dense(rnn(X)))  # builds both layers
    m = from_keras(rnn, dense)
    assert (m.H, m.D, m.O) == (5, 4, 3) and m.b is not None and m.c is not None
    tr = bptt.forward(m, X)
    np.testing.assert_allclose(tr.o, probs, rtol=1e-12, atol=1e-15)  # Dense's softmax is our o


def test_keras_refuses_what_bptt_does_not_model():
    keras = need("keras")
    m = model()
    rnn, dense = to_keras(m)
    elu = keras.layers.SimpleRNN(4, activation="elu")
    elu.build((None, None, 3))
    with pytest.raises(ValueError, match="'elu' is not one bptt models"):
        from_keras(elu, dense)
    with pytest.raises(ValueError, match="built layers"):
        from_keras(keras.layers.SimpleRNN(4), dense)
    with pytest.raises(ValueError, match="SimpleRNN, got LSTM"):
        from_keras(keras.layers.LSTM(4), dense)
    back = keras.layers.SimpleRNN(4, go_backwards=True)
    back.build((None, None, 3))
    with pytest.raises(ValueError, match="go_backwards"):
        from_keras(back, dense)
    soft = keras.layers.Dense(5, activation="softmax")
    soft.build((None, 4))
    with pytest.raises(ValueError, match="'softmax'.*head='softmax'"):
        from_keras(rnn, soft, head="mse")
    wide = keras.layers.Dense(5)
    wide.build((None, 6))
    with pytest.raises(ValueError, match="takes 6 inputs but the SimpleRNN has 4 units"):
        from_keras(rnn, wide)


def test_export_rejects_non_models():
    with pytest.raises(ValueError, match="bptt.RNN"):
        to_torch("model.npz")
    with pytest.raises(ValueError, match="bptt.RNN"):
        to_keras(None)


def test_export_warns_about_nothing():
    need("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_torch(model())
