"""Stacked and bidirectional networks (bptt.stack): BPTT through depth and time.

Loss and every gradient against PyTorch's autograd on its own nn.RNN / nn.LSTM / nn.GRU with
num_layers 1-3, bidirectional or not, batch_first both ways, biases on and off, h0 (and c0) given or
not; a stack of every registered cell against finite differences (bptt.check); files; refusals.
"""
import itertools
import warnings

import numpy as np
import pytest

import bptt
from bptt.model import model_class
from bptt.stack import Stack

from conftest import need


def _torch_case(torch, kind, layers, bidirectional, batch_first, bias, given, seed):
    from bptt.frameworks import from_torch, to_torch

    torch.manual_seed(seed)
    D, H, O, N, T = 3, 4, 3, 2, 7
    module = getattr(torch.nn, kind)(D, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                                     bias=bias, dtype=torch.float64)
    head = torch.nn.Linear((2 if bidirectional else 1) * H, O, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(N, T, D)), rng.integers(-1, O, (N, T))  # -1: unscored steps
    E = layers * (2 if bidirectional else 1)
    h0, c0 = rng.normal(size=(E, N, H)), rng.normal(size=(E, N, H))
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    state = ((h0t, c0t) if kind == "LSTM" else h0t) if given else None
    out, _ = module(torch.from_numpy(X if batch_first else X.transpose(1, 0, 2).copy()), state)
    out = out if batch_first else out.transpose(0, 1)
    ref = torch.nn.functional.cross_entropy(head(out).reshape(-1, O), torch.from_numpy(y).reshape(-1),
                                            ignore_index=-1, reduction="sum")
    ref.backward()
    model = from_torch(module, head)
    loss, g = bptt.gradients(model, X, y, h0=((h0, c0) if kind == "LSTM" else h0) if given else None)
    assert abs(loss - ref.item()) <= 1e-10 * max(1.0, abs(ref.item()))
    got_module, got_head = to_torch(model.replace(**g.params))
    for want, got in ((module, got_module), (head, got_head)):
        mine = dict(got.named_parameters())
        for name, p in want.named_parameters():
            np.testing.assert_allclose(mine[name].detach().numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=name)
    if given:
        np.testing.assert_allclose(g.h0, h0t.grad.numpy(), rtol=1e-10, atol=1e-12)
        if kind == "LSTM":
            np.testing.assert_allclose(g.c0, c0t.grad.numpy(), rtol=1e-10, atol=1e-12)
    return model


CASES = [c for c in itertools.product(["RNN", "LSTM", "GRU"], [1, 2, 3], [False, True], [True, False],
                                      [True, False], [False, True]) if c[1] > 1 or c[2]]


@pytest.mark.parametrize("kind,layers,bidirectional,batch_first,bias,given", CASES)
def test_pytorch_stacks_give_pytorchs_loss_and_gradients(kind, layers, bidirectional, batch_first, bias, given):
    torch = need("torch")
    model = _torch_case(torch, kind, layers, bidirectional, batch_first, bias, given, seed=len(CASES))
    assert isinstance(model, Stack) and model.depth == layers


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_check_passes_on_pytorch_stacks(kind):
    torch = need("torch")
    from bptt.frameworks import from_torch

    torch.manual_seed(1)
    module = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    model = from_torch(module, torch.nn.Linear(8, 3, dtype=torch.float64))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 3, (2, 6)), rng.integers(0, 3, (2, 6))
    h0 = rng.normal(size=(4, 2, 4))
    report = bptt.check(model, x, y, h0=(h0, h0) if kind == "LSTM" else h0)
    assert report.passed, str(report)
    assert {"U_l1_reverse", "W_l0", "h0"} <= {r.name for r in report.rows}


def _layer(cell, D, H, seed, **settings):
    m = bptt.random_model(cell, H, D, 2, seed=seed, **settings)
    return model_class(cell)(**{k: v for k, v in m.params.items() if k not in ("V", "c")}, **m.cell.values, head=None)


@pytest.mark.parametrize("cell", bptt.cells.names())
def test_a_stack_of_any_registered_cell_passes_the_check_and_a_wrong_gradient_fails(cell):
    rng = np.random.default_rng(3)
    a, b = _layer(cell, 4, 3, 1), _layer(cell, 4, 3, 2)
    top = _layer(cell, 2 * a.cell.out(3), 3, 3)
    stack = Stack([(a, b), top], rng.normal(size=(2, top.cell.out(3))), rng.normal(size=2))
    x, y = rng.integers(0, 4, (2, 5)), rng.integers(0, 2, (2, 5))
    report = bptt.check(stack, x, y)
    assert report.passed, str(report)
    _, g = bptt.gradients(stack, x, y)
    name = next(k for k in g.params if k.endswith("_l0_reverse"))  # the reverse direction's first parameter
    wrong = g.replace(**{name: g.params[name] * 1.001})
    assert not bptt.check(stack, x, y, grads=wrong).passed


def test_a_one_layer_stack_equals_the_one_layer_model():
    m = bptt.random_model("lstm", 4, 3, 2, seed=0)
    layer = model_class("lstm")(**{k: v for k, v in m.params.items() if k not in ("V", "c")}, head=None)
    stack = Stack([layer], m.V, m.c)
    x, y = [0, 2, 1, 1, 0], [1, 0, 1, 1, 0]
    loss, g = bptt.gradients(m, x, y, backend="reference")
    loss_s, g_s = bptt.gradients(stack, x, y, backend="reference")
    assert loss_s == loss
    for k in layer.params:
        np.testing.assert_array_equal(g_s.params[f"{k}_l0"], g.params[k])
    np.testing.assert_array_equal(g_s.V, g.V)


def test_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a, b = _layer("gru", 3, 4, 1), _layer("gru", 3, 4, 2)
    stack = Stack([(a, b), _layer("gru", 8, 2, 3)], rng.normal(size=(3, 2)), head="mse")
    stack.save(tmp_path / "s.npz")
    back = Stack.load(tmp_path / "s.npz")
    assert repr(back) == repr(stack) and back.params.keys() == stack.params.keys()
    for k in stack.params:
        np.testing.assert_array_equal(back.params[k], stack.params[k])


def test_refusals_are_one_line():
    a = _layer("rnn", 3, 4, 0)
    with pytest.raises(TypeError, match="head=None"):
        Stack([bptt.random_model("rnn", 4, 3, 2, seed=0)], np.ones((2, 4)))
    with pytest.raises(ValueError, match="input size D is 3"):
        Stack([a, a], np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"V must have shape \(O, 4\)"):
        Stack([a], np.ones((2, 5)))
    with pytest.raises(ValueError, match="same cell"):
        Stack([(a, _layer("rnn", 3, 5, 0))], np.ones((2, 9)))
    stack = Stack([a], np.ones((2, 4)))
    with pytest.raises(ValueError, match="full BPTT"):
        bptt.gradients(stack, [0, 1], [1, 0], truncate=1)
    cornn = _layer("cornn", 3, 4, 0)  # a cell without fast kernels: named, not run on the reference quietly
    with pytest.raises(ValueError, match=r"no kernels for layer 0, a cornn cell"):
        bptt.gradients(Stack([cornn], np.ones((2, cornn.cell.out(4)))), [0, 1], [1, 0], backend="fast")
    with pytest.raises(ValueError, match="no parameter Q_l0"):
        stack.replace(Q_l0=1)
    with pytest.raises(TypeError, match="one-layer bptt model"):  # what takes one layer says so
        bptt.analyse_batch(stack, np.array([[0, 1]]), np.array([[1, 0]]), progress=False)


def test_pytorch_dropout_and_projection_are_refused_or_said():
    torch = need("torch")
    from bptt.frameworks import from_torch

    module = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=torch.float64)
    head = torch.nn.Linear(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="training mode"):
        from_torch(module, head)
    module.eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert isinstance(from_torch(module, head), Stack)
    assert any("dropout=0.5 is ignored" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(3, 4, num_layers=2, proj_size=2, dtype=torch.float64), torch.nn.Linear(2, 2))


def test_layers_of_different_cells_give_every_initial_state_gradient():
    """An LSTM layer over a GRU layer and the reverse: h0 per layer, c0 where the layer has one,
    against finite differences of the loss in the initial state."""
    rng = np.random.default_rng(5)
    for low, high in (("gru", "lstm"), ("lstm", "gru")):
        a, b = _layer(low, 3, 4, 1), _layer(high, 4, 2, 2)
        stack = Stack([a, b], rng.normal(size=(3, 2)))
        x, y = rng.integers(0, 3, (2, 5)), rng.integers(0, 3, (2, 5))
        h0 = [tuple(rng.normal(size=(2, n)) for n in m.state_sizes) for m in (a, b)]
        h0 = [s if len(s) > 1 else s[0] for s in h0]
        _, g = bptt.gradients(stack, x, y, h0=h0)
        assert isinstance(g.h0, list) and isinstance(g.c0, list)
        for i, m in enumerate((a, b)):
            assert (g.c0[i] is None) == (len(m.cell.state) == 1)
            for j, given in enumerate(h0[i] if isinstance(h0[i], tuple) else (h0[i],)):
                want = g.state0[j][i]
                num = np.zeros_like(given)
                for idx in np.ndindex(given.shape):
                    def loss(dv):
                        moved = [tuple(np.array(v) for v in (s if isinstance(s, tuple) else (s,))) for s in h0]
                        moved[i][j][idx] += dv
                        return bptt.loss(stack, x, y, h0=[s if len(s) > 1 else s[0] for s in moved])
                    num[idx] = (loss(1e-6) - loss(-1e-6)) / 2e-6
                np.testing.assert_allclose(want, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_flow_tables_per_layer_equal_autograds(bidirectional):
    """A 2-layer LSTM stepped by hand in PyTorch (nn.LSTMCell, each state a tensor of its own):
    ||dE_t/dh_s|| of every layer and direction, and of each layer's input, by autograd one output
    at a time, against bptt.flow's tables."""
    torch = need("torch")
    torch.manual_seed(7)
    D, H, O, T = 3, 4, 3, 6
    module = torch.nn.LSTM(D, H, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    from bptt.frameworks import from_torch

    head = torch.nn.Linear(H * (2 if bidirectional else 1), O, dtype=torch.float64)
    stack = from_torch(module, head)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(T, D)), rng.integers(0, O, T)
    fl = bptt.flow(stack, X, y)

    def cell(k, j):
        c = torch.nn.LSTMCell(D if k == 0 else H * (2 if bidirectional else 1), H, dtype=torch.float64)
        s = f"_l{k}" + ("_reverse" if j else "")
        with torch.no_grad():
            for a, b in (("weight_ih", "weight_ih"), ("weight_hh", "weight_hh"), ("bias_ih", "bias_ih"),
                         ("bias_hh", "bias_hh")):
                getattr(c, a).copy_(getattr(module, b + s))
        return c
    inputs = [torch.tensor(X[t], requires_grad=True) for t in range(T)]
    layer_in, states, crossings = inputs, [], [inputs]
    for k in range(2):
        outs = []
        for j in range(2 if bidirectional else 1):
            c, h, m = cell(k, j), torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
            hs = [None] * T
            for t in (range(T - 1, -1, -1) if j else range(T)):
                h, m = c(layer_in[t][None], (h[None], m[None]))
                h, m = h[0], m[0]
                hs[t] = h
            outs.append(hs)
            states.append((k, j, hs))
        layer_in = [torch.cat([o[t] for o in outs]) for t in range(T)]
        crossings.append(layer_in)
    losses = [torch.nn.functional.cross_entropy(head(layer_in[t])[None], torch.tensor([int(y[t])]), reduction="sum")
              for t in range(T)]
    for k, j, hs in states:
        want = np.array([[float(torch.linalg.norm(g)) if g is not None else 0.0
                          for g in torch.autograd.grad(losses[t], hs, retain_graph=True, allow_unused=True)]
                         for t in range(T)])
        np.testing.assert_allclose(fl.table(k, bool(j)), want, rtol=1e-10, atol=1e-14)
    for k in (0, 1):  # the error leaving layer k through its input: layer k's x_s (layer k-1's outputs)
        want = np.array([[float(torch.linalg.norm(g)) if g is not None else 0.0
                          for g in torch.autograd.grad(losses[t], crossings[k], retain_graph=True, allow_unused=True)]
                         for t in range(T)])
        np.testing.assert_allclose(fl.crossing[k], want, rtol=1e-10, atol=1e-14)
    assert bidirectional or not np.triu(fl.table(1), 1).any()  # forward only: no error from the future
