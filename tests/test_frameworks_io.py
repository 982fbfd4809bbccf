"""Import from and export to torch.nn.RNN / LSTM / GRU + nn.Linear and Keras SimpleRNN / LSTM /
GRU + Dense.

Export, run the framework's own layers forward and compare states and logits with bptt.forward;
import back and get identical arrays; import layers initialised by the framework itself and get
the framework's own autodiff gradients from bptt, name by name.
"""
import warnings

import numpy as np
import pytest
from conftest import need

import bptt
from bptt.frameworks import from_keras, from_torch, to_keras, to_torch
from bptt import GRU, LSTM
from bptt.model import random_gated

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
        with pytest.raises(ValueError, match=f"activation='tanh' or activation='relu' only.*{act}"):
            to_torch(model(act))
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError, match="takes 4 inputs but the RNN's output is 8 wide"):
        from_torch(torch.nn.RNN(3, 4, bidirectional=True), lin)  # both directions: 8 columns
    with pytest.raises(ValueError, match="nn.RNN, nn.GRU or nn.LSTM, got LSTMCell"):
        from_torch(torch.nn.LSTMCell(3, 4), lin)
    with pytest.raises(ValueError, match="takes 5 inputs but the RNN's output is 4 wide"):
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
    with pytest.raises(ValueError, match="SimpleRNN, GRU or LSTM, got Conv1D"):
        from_keras(keras.layers.Conv1D(4, 1), dense)
    with pytest.raises(ValueError, match=r"built layers.*layer 0 \(LSTM\) is not built"):  # a stack's layer
        from_keras(keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)), dense)
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
    with pytest.raises(ValueError, match="bptt.RNN, LSTM, GRU or a bptt.Stack of them, got str"):
        to_torch("model.npz")
    with pytest.raises(ValueError, match="bptt.RNN, GRU or LSTM, got NoneType"):
        to_keras(None)


def test_export_warns_about_nothing():
    need("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_torch(model())


# --- LSTM and GRU ----------------------------------------------------------------------------------
def gated(cell, *, reset_after=True, biases=("b", "bh", "c"), dtype=np.float64, seed=0, H=4, D=3, O=5):
    """A random LSTM or GRU with the biases named (b, bh, c), the others None."""
    m = random_gated(cell, H, D, O, seed=seed, reset_after=reset_after)
    return m.replace(**{k: None for k in ("b", "bh", "c") if k not in biases}).astype(dtype)


def initial(m, h0):
    """bptt's h0 argument: the pair (h0, c0) for an LSTM, with c0 drawn from the same numbers."""
    return (h0, np.cos(3 * h0)) if isinstance(m, LSTM) else h0


TORCH_CELLS = [("lstm", True), ("gru", True)]


@pytest.mark.parametrize("cell, reset_after", TORCH_CELLS)
@pytest.mark.parametrize("biases", [("b", "bh", "c"), ()])
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_gated_export_runs_like_bptt_and_imports_back_identically(cell, reset_after, biases, batch_first):
    torch = need("torch")
    m = gated(cell, biases=biases)
    x, X, h0 = data(m)
    state0 = initial(m, h0)
    module, linear = to_torch(m)
    assert type(module).__name__ == cell.upper() and module.batch_first and module.bias == bool(biases)
    assert dict(module.named_parameters()).keys() == ({"weight_ih_l0", "weight_hh_l0"} | (
        {"bias_ih_l0", "bias_hh_l0"} if biases else set()))
    if not batch_first:  # the same weights in a sequence-first module
        other = getattr(torch.nn, cell.upper())(m.D, m.H, bias=bool(biases), dtype=torch.float64)
        other.load_state_dict(module.state_dict())
        module = other
    Xt = torch.tensor(X) if batch_first else torch.tensor(X).transpose(0, 1)
    init = tuple(torch.tensor(s)[None] for s in (state0 if cell == "lstm" else (state0,)))
    with torch.no_grad():
        out, final = module(Xt, init if cell == "lstm" else init[0])
        out = out if batch_first else out.transpose(0, 1)
        q = linear(out)
    tr = bptt.forward(m, x, state0)
    np.testing.assert_allclose(out.numpy(), tr.states[:, 1:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(q.numpy(), tr.q, rtol=1e-12, atol=1e-14)
    finals = final if cell == "lstm" else (final,)
    for theirs, ours in zip(finals, tr.final if cell == "lstm" else (tr.final,)):
        np.testing.assert_allclose(theirs[0].numpy(), ours, rtol=1e-12, atol=1e-14)
    back = from_torch(module, linear)
    assert type(back) is type(m) and back.head == "softmax" and same_arrays(m, back)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_gated_import_gives_torch_autograd_gradients_name_by_name(cell, batch_first):
    """The acceptance contract, with a given (h0, c0), masked targets and mean reduction too: bptt's
    gradients of an imported module, exported by to_torch, are autograd's .grad name by name, and
    dE/dh0 (dE/dc0) are autograd's gradients of the initial state."""
    torch = need("torch")
    g = torch.Generator().manual_seed(3)
    D, H, O, N, T = 3, 4, 3, 2, 6
    module = getattr(torch.nn, cell)(D, H, batch_first=batch_first, dtype=torch.float64)
    head = torch.nn.Linear(H, O, dtype=torch.float64)
    for p in list(module.parameters()) + list(head.parameters()):
        torch.nn.init.normal_(p, 0, 0.5, generator=g)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, D, (N, T)), rng.integers(0, O, (N, T))
    y[0, 1] = y[1, 4] = -1
    state = [torch.tensor(rng.normal(0, 0.5, (1, N, H)), requires_grad=True) for _ in range(2 if cell == "LSTM" else 1)]
    X = torch.nn.functional.one_hot(torch.from_numpy(x), D).double()
    out, _ = module(X if batch_first else X.transpose(0, 1), tuple(state) if cell == "LSTM" else state[0])
    out = out if batch_first else out.transpose(0, 1)
    loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, O), torch.from_numpy(y).reshape(-1),
                                             ignore_index=-1, reduction="mean")
    loss.backward()
    model = from_torch(module, head)
    assert isinstance(model, LSTM if cell == "LSTM" else GRU)
    h0 = tuple(s.detach().numpy()[0] for s in state)
    ours_loss, grads = bptt.gradients(model, x, y, h0=h0 if cell == "LSTM" else h0[0], reduction="mean")
    assert set(grads.params) == set(model.params) == {"U", "W", "V", "b", "bh", "c"}
    assert ours_loss == pytest.approx(loss.item(), rel=1e-12)
    g_module, g_head = to_torch(model.replace(**grads.params))
    for mine, theirs in ((g_module, module), (g_head, head)):
        mine = dict(mine.named_parameters())
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(mine[name].detach().numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-13,
                                       err_msg=f"{cell}: {name}")
    for ours, theirs in zip((grads.h0, grads.c0), state):
        np.testing.assert_allclose(ours, theirs.grad.numpy()[0], rtol=1e-10, atol=1e-13)


def test_torch_float32_gated_stays_float32_and_a_lone_bias_is_exported_with_zeros():
    torch = need("torch")
    m = gated("lstm", dtype=np.float32)
    module, linear = to_torch(m)
    assert module.weight_hh_l0.dtype == torch.float32 and linear.weight.dtype == torch.float32
    back = from_torch(module, linear)
    assert back.dtype == np.float32 and same_arrays(m, back)
    lone = gated("gru", biases=("b",))
    module, _ = to_torch(lone)
    np.testing.assert_array_equal(module.bias_ih_l0.detach().numpy(), lone.b)
    assert np.all(module.bias_hh_l0.detach().numpy() == 0)
    x, X, h0 = data(lone)
    with torch.no_grad():
        out, _ = module(torch.tensor(X), torch.tensor(h0)[None])
    np.testing.assert_allclose(out.numpy(), bptt.forward(lone, x, h0).states[:, 1:], rtol=1e-12, atol=1e-14)


def test_torch_refuses_gated_modules_bptt_does_not_model():
    torch = need("torch")
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError, match="proj_size=2"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="nn.GRU has dropout=0.5 between its layers and is in training mode"):
        from_torch(torch.nn.GRU(3, 4, num_layers=2, dropout=0.5), lin)
    with pytest.raises(ValueError, match="float32 or float64 weights; weight_ih_l0 is torch.float16"):
        from_torch(torch.nn.GRU(3, 4, dtype=torch.float16), lin)
    with pytest.raises(ValueError, match="the Linear's weight is torch.bfloat16"):
        from_torch(torch.nn.LSTM(3, 4), torch.nn.Linear(4, 2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="takes 5 inputs but the LSTM's output is 4 wide"):
        from_torch(torch.nn.LSTM(3, 4), torch.nn.Linear(5, 2))
    with pytest.raises(ValueError, match="nn.GRU computes reset_after=True only; this gru model has reset_after=False, which PyTorch has no module for"):
        to_torch(gated("gru", reset_after=False))
    module = torch.nn.GRU(3, 4, bias=False)
    m = from_torch(module, lin)
    assert m.b is None and m.bh is None and m.reset_after and set(m.params) == {"U", "W", "V", "c"}


# --- Keras LSTM and GRU ------------------------------------------------------------------------------
KERAS_CELLS = [("lstm", True), ("gru", True), ("gru", False)]


def keras_biases(cell, reset_after):
    """The biases Keras can hold exactly: an LSTM and a reset-before GRU have no recurrent bias."""
    return ("b", "bh", "c") if cell == "gru" and reset_after else ("b", "c")


def keras_gru_order(a):
    """A GRU's gate blocks r, z, n (bptt's, PyTorch's) as Keras keeps them: z, r, h."""
    H = a.shape[0] // 3
    return np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])


@pytest.mark.parametrize("cell, reset_after", KERAS_CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_keras_gated_export_runs_like_bptt_and_imports_back_identically(cell, reset_after, dtype):
    keras = need("keras")
    m = gated(cell, reset_after=reset_after, biases=keras_biases(cell, reset_after), dtype=dtype)
    x, X, h0 = data(m)
    state0 = initial(m, h0)
    layer, dense = to_keras(m)
    assert type(layer).__name__ == cell.upper() and str(layer.cell.kernel.dtype) == np.dtype(dtype).name
    reorder = (lambda a: a) if cell == "lstm" else keras_gru_order
    np.testing.assert_array_equal(arr(layer.cell.kernel), reorder(m.U).T)
    np.testing.assert_array_equal(arr(layer.cell.recurrent_kernel), reorder(m.W).T)
    if cell == "gru":
        assert layer.cell.reset_after == reset_after
        np.testing.assert_array_equal(arr(layer.cell.kernel)[:, :4], m.U[4:8].T)  # Keras's z block is bptt's second
    out = arr(layer(X.astype(dtype), initial_state=[s.astype(dtype) for s in (state0 if cell == "lstm" else (state0,))]))
    tr = bptt.forward(m, x, state0)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, tr.states[:, 1:], **tol)
    np.testing.assert_allclose(arr(dense(out)), tr.q, **tol)
    back = from_keras(layer, dense)
    assert type(back) is type(m) and back.dtype == dtype and same_arrays(m, back)
    assert getattr(back, "reset_after", True) == reset_after


@pytest.mark.parametrize("cell, reset_after", KERAS_CELLS)
def test_keras_gated_import_gives_keras_gradients(cell, reset_after):
    """Layers Keras initialised itself: bptt's forward is the layer's (a Dense softmax is our o), and
    bptt's gradients, exported by to_keras, are GradientTape's on the Keras layers, variable by variable."""
    keras, tf = need("keras"), need("tensorflow")
    init = keras.initializers.RandomNormal(stddev=0.5, seed=4)
    kw = dict(reset_after=reset_after) if cell == "gru" else {}
    layer = getattr(keras.layers, cell.upper())(5, return_sequences=True, dtype="float64", kernel_initializer=init,
                                                bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=6),
                                                **kw)
    dense = keras.layers.Dense(3, activation="softmax", dtype="float64",
                               bias_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=7))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2, 6, 4)), rng.integers(0, 3, (2, 6))
    with tf.GradientTape() as tape:
        probs = dense(layer(X))  # builds both layers
        loss = -tf.reduce_sum(tf.math.log(tf.gather(probs, y, batch_dims=2)))
    variables = [layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias, dense.kernel, dense.bias]
    theirs = tape.gradient(loss, [v.value for v in variables])
    m = from_keras(layer, dense)
    assert isinstance(m, LSTM if cell == "lstm" else GRU) and getattr(m, "reset_after", True) == reset_after
    assert (m.bh is not None) == (cell == "gru" and reset_after)
    np.testing.assert_allclose(bptt.forward(m, X).o, arr(probs), rtol=1e-12, atol=1e-15)
    ours_loss, grads = bptt.gradients(m, X, y)
    assert ours_loss == pytest.approx(float(loss), rel=1e-12)
    g_layer, g_dense = to_keras(m.replace(**grads.params))
    mine = [g_layer.cell.kernel, g_layer.cell.recurrent_kernel, g_layer.cell.bias, g_dense.kernel, g_dense.bias]
    for v, ours, g in zip(variables, mine, theirs):
        np.testing.assert_allclose(arr(ours), np.asarray(g), rtol=1e-10, atol=1e-13, err_msg=v.path)


def test_keras_refuses_gated_layers_and_models_it_cannot_hold():
    keras = need("keras")
    _, dense = to_keras(gated("lstm", biases=("b", "c")))
    for make, words in [(lambda: keras.layers.LSTM(4, activation="relu"), "'tanh'.*'sigmoid'.*'relu' and 'sigmoid'"),
                        (lambda: keras.layers.GRU(4, recurrent_activation="hard_sigmoid"),
                         "'tanh' and 'hard_sigmoid'"),
                        (lambda: keras.layers.GRU(4, go_backwards=True), "this GRU reads its input backwards")]:
        layer = make()
        layer.build((None, None, 3))
        with pytest.raises(ValueError, match=words):
            from_keras(layer, dense)
    with pytest.raises(ValueError, match="built layers"):
        from_keras(keras.layers.LSTM(4), dense)
    wide = keras.layers.GRU(6)
    wide.build((None, None, 3))
    with pytest.raises(ValueError, match="takes 4 inputs but the GRU has 6 units"):
        from_keras(wide, dense)
    half = keras.layers.LSTM(4, dtype="float16")
    half.build((None, None, 3))
    with pytest.raises(ValueError, match="float32 or float64 weights.*float16"):
        from_keras(half, dense)
    for m, kind in [(gated("lstm"), "LSTM"), (gated("gru", reset_after=False), "GRU with reset_after=False"),
                    (gated("lstm", biases=("bh",)), "LSTM")]:
        with pytest.raises(ValueError, match=f"a Keras {kind} holds one bias vector.*b=b \\+ bh, bh=None"):
            to_keras(m)


def test_keras_summed_biases_compute_the_same_lstm():
    """The refusal's advice holds: model.replace(b=b + bh, bh=None) is the same network, in Keras too."""
    need("keras")
    m = gated("lstm")
    x, X, h0 = data(m)
    merged = m.replace(b=m.b + m.bh, bh=None)
    layer, dense = to_keras(merged)
    tr = bptt.forward(m, x, (h0, h0))
    np.testing.assert_allclose(bptt.forward(merged, x, (h0, h0)).q, tr.q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(arr(dense(layer(X, initial_state=[h0, h0]))), tr.q, rtol=1e-12, atol=1e-14)


def test_keras_reset_after_gru_with_one_bias_holds_zeros_for_the_other():
    need("keras")
    for biases in (("b",), ("bh",), ()):
        m = gated("gru", biases=biases)
        layer, dense = to_keras(m)
        x, X, h0 = data(m)
        np.testing.assert_allclose(arr(dense(layer(X, initial_state=[h0]))), bptt.forward(m, x, h0).q,
                                   rtol=1e-12, atol=1e-14)
        back = from_keras(layer, dense)
        if not biases:  # no bias at all: use_bias=False, and back without biases
            assert not layer.cell.use_bias and same_arrays(m, back)
            continue
        bias = arr(layer.cell.bias)
        assert bias.shape == (2, 12) and np.all(bias[1 if biases == ("b",) else 0] == 0)
        present, absent = (back.b, back.bh) if biases == ("b",) else (back.bh, back.b)
        np.testing.assert_array_equal(present, getattr(m, biases[0]))
        assert np.all(absent == 0)
