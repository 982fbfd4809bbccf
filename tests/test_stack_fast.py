"""A bptt.Stack on the fast backend (bptt.fast.stacked): BPTT through depth and time by each layer's
kernels (fast.driver.run_layer / backprop_layer), against independent computations.

Stacks of rnn, lstm and gru layers (one cell or mixed, 2-3 layers, bidirectional or not, h0 given or
not, ids or dense inputs) against PyTorch's autograd on the same network, built layer by layer from
bptt.frameworks.to_torch's modules, in float64 to 1e-10; stacks of the linear cells (lru, mingru,
minlstm), which torch.nn lacks, against finite differences (bptt.check) and the reference engine;
float32 against the reference to 1e-4 of each gradient's norm; the same bits on a repeated call; which backend
backend=None takes.
"""
import numpy as np
import pytest
from conftest import need, sentence

import bptt
from bptt import backend
from bptt.fast import driver
from bptt.frameworks import relative_error
from bptt.model import model_class
from bptt.stack import Stack
from bptt.validate import inputs

N, T, O = 3, 6, 4


def layer(rng, cell, H, D, **settings):
    """A random layer (head=None) of the cell, drawn by its own init."""
    m = bptt.random_model(cell, H, D, 2, seed=rng, **settings)
    return model_class(cell)(**{k: v for k, v in m.params.items() if k not in ("V", "c")}, **m.cell.values,
                             head=None)


def build(seed, spec, D, bh=False):
    """A stack from spec, a list of (cell, H, directions, settings) per layer; bh: every Elman layer
    with a second bias."""
    rng = np.random.default_rng(seed)
    layers, width = [], D
    for cell, H, dirs, settings in spec:
        pair = []
        for _ in range(dirs):
            m = layer(rng, cell, H, width, **settings)
            if bh and cell == "rnn":
                m = model_class("rnn")(**m.params, bh=rng.normal(0, 0.3, H), **m.cell.values, head=None)
            pair.append(m)
        layers.append(tuple(pair))
        width = pair[0].cell.out(H) * dirs
    return Stack(layers, rng.normal(0, 0.5, (O, width)), rng.normal(0, 0.5, O))


def data(seed, stack, ids, given):
    """x (ids (N, T) or dense (N, T, D)), y with unscored steps, and h0: one entry per layer and
    direction (a pair for an LSTM layer), or None."""
    rng = np.random.default_rng(seed + 100)
    x = rng.integers(0, stack.D, (N, T)) if ids else rng.normal(size=(N, T, stack.D))
    y = rng.integers(-1, stack.O, (N, T))
    h0 = None
    if given:
        h0 = [tuple(rng.normal(0, 0.5, (N, s)) for s in m.state_sizes) for _, _, m in stack.entries]
        h0 = [e if len(e) > 1 else e[0] for e in h0]
    return x, y, h0


def torch_gradients(torch, stack, x, y, h0):
    """PyTorch's loss and gradients of the same network, one torch.nn module per layer (to_torch of
    the one-layer stack), chained by hand: (loss, {flat name: grad}, [per entry: tuple of state grads])."""
    from bptt.frameworks import to_torch

    X = np.eye(stack.D)[x] if x.dtype.kind in "iu" else x
    h = torch.tensor(X)
    grads_of, starts, e = {}, [], 0
    for k, pair in enumerate(stack.layers):
        module, _ = to_torch(Stack([pair], np.zeros((1, pair[0].H * len(pair)))))
        for name, p in module.named_parameters():
            ours = {"weight_ih": "U", "weight_hh": "W", "bias_ih": "b", "bias_hh": "bh"}[name.split("_l0")[0]]
            grads_of[f"{ours}_l{k}{'_reverse' if name.endswith('_reverse') else ''}"] = p
        entries = []
        for _ in pair:
            given = h0[e] if h0 is not None else None
            given = (given if isinstance(given, tuple) else (given,)) if given is not None else \
                tuple(np.zeros((N, pair[0].H)) for _ in pair[0].cell.state)
            entries.append(tuple(torch.tensor(a, requires_grad=True) for a in given))
            e += 1
        starts += entries
        state = tuple(torch.stack([s[i] for s in entries]) for i in range(len(entries[0])))
        h, _ = module(h, state if len(state) > 1 else state[0])
    V, c = torch.tensor(np.array(stack.V), requires_grad=True), torch.tensor(np.array(stack.c), requires_grad=True)
    q = h @ V.T + c
    loss = torch.nn.functional.cross_entropy(q.reshape(-1, stack.O), torch.from_numpy(y).reshape(-1),
                                             ignore_index=-1, reduction="sum")
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in grads_of.items() if k in stack.params}
    grads.update(V=V.grad.numpy(), c=c.grad.numpy())
    return loss.item(), grads, [tuple(s.grad.numpy() for s in entry) for entry in starts]


def agree(stack, x, y, h0, loss, grads, states, rtol=1e-10):
    """bptt.gradients(stack) (backend=None) equals the given loss, gradients and state gradients."""
    got_loss, g = bptt.gradients(stack, x, y, h0=h0)
    assert relative_error(got_loss, loss)[1] <= rtol, (got_loss, loss)
    assert set(g.params) == set(grads) == set(stack.params)
    for k in stack.params:
        assert relative_error(g.params[k], grads[k])[1] <= rtol, k
    if states is not None:
        for e, want in enumerate(states):
            for i, w in enumerate(want):
                assert relative_error(g.state0[i][e], w)[1] <= rtol, (e, i)


SAME = [("rnn", {"activation": "tanh"}), ("rnn", {"activation": "relu"}), ("lstm", {}), ("gru", {})]
TORCH_CASES = [(cell, settings, depth, dirs, given, ids) for cell, settings in SAME for depth, dirs, given, ids in
               [(2, 1, False, True), (2, 2, True, False), (3, 2, False, False), (3, 1, True, True)]]


@pytest.mark.parametrize("cell,settings,depth,dirs,given,ids", TORCH_CASES)
def test_one_cell_stacks_equal_pytorch_on_the_fast_backend(cell, settings, depth, dirs, given, ids):
    torch = need("torch")
    stack = build(depth, [(cell, 4, dirs, settings)] * depth, 5)
    assert backend.name(backend.engine(stack)) == "fast"
    x, y, h0 = data(depth, stack, ids, given)
    loss, grads, states = torch_gradients(torch, stack, x, y, h0)
    agree(stack, x, y, h0, loss, grads, states if given else None)


@pytest.mark.parametrize("ids", [True, False])
def test_mixed_cells_equal_pytorch_on_the_fast_backend(ids):
    torch = need("torch")
    spec = [("gru", 3, 2, {}), ("lstm", 3, 1, {}), ("rnn", 3, 2, {"activation": "tanh"})]
    stack = build(7, spec, 4)
    assert backend.name(backend.engine(stack)) == "fast"
    for given in (False, True):
        x, y, h0 = data(7, stack, ids, given)
        loss, grads, states = torch_gradients(torch, stack, x, y, h0)
        agree(stack, x, y, h0, loss, grads, states if given else None)


def test_an_elman_layer_with_bh_runs_on_the_fast_backend():
    # nn.RNN's two biases: the fast Elman kernels add b + bh to the inputs' part, and give bh b's gradient
    torch = need("torch")
    stack = build(3, [("lstm", 4, 2, {}), ("rnn", 4, 2, {"activation": "tanh"})], 3, bh=True)
    assert backend.engine(stack) is bptt.fast.stacked
    for given in (False, True):
        x, y, h0 = data(3, stack, False, given)
        loss, grads, states = torch_gradients(torch, stack, x, y, h0)
        agree(stack, x, y, h0, loss, grads, states if given else None)
    assert bptt.check(stack, x, y).backend == "fast"


LINEAR = [[("lru", 3, 2, {}), ("lru", 3, 1, {})],
          [("mingru", 4, 1, {}), ("mingru", 4, 2, {}), ("mingru", 3, 1, {})],
          [("lru", 3, 2, {}), ("mingru", 4, 1, {}), ("gru", 3, 2, {"reset_after": False})],
          [("minlstm", 3, 2, {}), ("lstm", 3, 1, {})]]


@pytest.mark.parametrize("spec", LINEAR, ids=lambda s: "+".join(c for c, *_ in s))
@pytest.mark.parametrize("ids", [True, False])
def test_cells_torch_lacks_against_finite_differences_and_the_reference(spec, ids):
    stack = build(len(spec), spec, 4)
    x, y, h0 = data(len(spec), stack, ids, True)
    one_shape = len({tuple(m.state_sizes) for _, _, m in stack.entries}) == 1  # check's h0 is one array
    report = bptt.check(stack, x, y, h0=h0 if one_shape else None, max_entries=6)
    assert report.passed and report.backend == "fast", str(report)
    loss, g = bptt.stack.gradients(stack, x, y, h0=h0)  # the reference engine
    states = [tuple(g.state0[i][e] for i in range(len(m.cell.state))) for e, (_, _, m) in enumerate(stack.entries)]
    agree(stack, x, y, h0, loss, g.params, states)


FLOAT32 = [[("rnn", 5, 2, {"activation": "tanh"})] * 2, [("lstm", 5, 2, {})] * 3, [("gru", 5, 1, {})] * 2,
           [("gru", 5, 2, {"reset_after": False}), ("lru", 4, 1, {}), ("mingru", 5, 2, {})]]


@pytest.mark.parametrize("spec", FLOAT32, ids=lambda s: "+".join(c for c, *_ in s))
def test_float32_equals_the_reference_and_repeats_its_bits(spec):
    stack = build(11, spec, 4).astype(np.float32)
    assert stack.dtype == np.float32 and backend.name(backend.engine(stack)) == "fast"
    x, y, h0 = data(11, stack, False, True)
    x = x.astype(np.float32)
    loss, g = bptt.gradients(stack, x, y, h0=h0)
    ref_loss, ref = bptt.gradients(stack, x, y, h0=h0, backend="reference")
    assert relative_error(loss, ref_loss)[1] <= 1e-4
    for k in stack.params:  # relative to the gradient's norm: single entries of a few units in 1e-4 of
        # the largest carry float32's rounding through the layers, the reference's as much as ours
        a, b = g.params[k], ref.params[k]
        assert a.dtype == np.float32 and np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b), k
    again_loss, again = bptt.gradients(stack, x, y, h0=h0)
    assert again_loss == loss
    for k in stack.params:
        assert np.array_equal(again.params[k], g.params[k]), k
    for a, b in zip(again.state0, g.state0):
        assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_forward_then_backward_and_loss_equal_gradients():
    stack = build(5, [("lstm", 4, 2, {}), ("gru", 4, 1, {})], 3)
    x, y, h0 = data(5, stack, True, True)
    loss, g = bptt.gradients(stack, x, y, h0=h0, reduction="mean")
    trace = bptt.forward(stack, x, h0)
    ref = bptt.stack.forward(stack, x, h0)
    np.testing.assert_allclose(trace.q, ref.q, rtol=1e-12, atol=1e-14)
    h, c = trace.final  # an LSTM layer over a GRU layer: c_n a list, None for the GRU layer
    assert len(h) == len(ref.final[0]) == 3 and c[2] is None and ref.final[1][2] is None
    for a, b in zip(list(h) + c[:2], list(ref.final[0]) + ref.final[1][:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    loss_b, g_b = bptt.backward(trace, y, reduction="mean")
    assert loss_b == loss and all(np.array_equal(g_b.params[k], g.params[k]) for k in stack.params)
    assert bptt.loss(stack, x, y, h0=h0, reduction="mean") == loss
    loss_r, g_r = bptt.backward(ref, y, reduction="mean", backend="fast")  # the reference's trace, fast BPTT
    assert relative_error(loss_r, loss)[1] <= 1e-12
    assert all(relative_error(g_r.params[k], g.params[k])[1] <= 1e-12 for k in stack.params)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_backprop_layer_with_an_error_at_the_final_state_equals_pytorch(cell):
    """One layer: E = sum_t <P_t, h_t> + <R, h_{T-1}> (+ <Rc, c_{T-1}>), in PyTorch; bptt's
    backprop_layer from dS = P and final = R gives every weight's, the inputs' and h0's gradient."""
    torch = need("torch")
    from bptt.frameworks import to_torch

    rng = np.random.default_rng(2)
    m = layer(rng, cell, 4, 3)
    X, P = rng.normal(size=(N, T, 3)), rng.normal(size=(T, N, 4))
    start = tuple(rng.normal(0, 0.5, (N, 4)) for _ in m.cell.state)
    final = tuple(rng.normal(size=(N, 4)) for _ in m.cell.state)
    trace = driver.run_layer(m, inputs(m, X), start)
    got = driver.backprop_layer(trace, P, final)
    module, _ = to_torch(Stack([m], np.zeros((1, 4))))
    Xt = torch.tensor(X, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in start]
    out, last = module(Xt, tuple(st) if len(st) > 1 else st[0])
    last = last if isinstance(last, tuple) else (last,)
    E = (out * torch.tensor(P.transpose(1, 0, 2))).sum() + sum((l[0] * torch.tensor(f)).sum()
                                                                for l, f in zip(last, final))
    E.backward()
    names = {"weight_ih_l0": "U", "weight_hh_l0": "W", "bias_ih_l0": "b", "bias_hh_l0": "bh"}
    for name, p in module.named_parameters():
        if names[name] in m.params:
            assert relative_error(got.params[names[name]], p.grad.numpy())[1] <= 1e-10, name
    assert relative_error(np.swapaxes(got.dX, 0, 1), Xt.grad.numpy())[1] <= 1e-10
    for a, s in zip(got.state0, st):
        assert relative_error(a, s.grad.numpy()[0])[1] <= 1e-10


def test_two_directions_at_once_give_the_same_bits(monkeypatch):
    """A bidirectional layer's directions on two threads (fast.stacked.BOTH_MIN_WORK) or one after
    the other: the same numbers, bit for bit, and PyTorch's."""
    torch = need("torch")
    from bptt.fast import runtime, stacked

    stack = build(9, [("lstm", 4, 2, {}), ("gru", 4, 2, {}), ("rnn", 4, 2, {"activation": "tanh"})], 3)
    x, y, h0 = data(9, stack, False, True)
    monkeypatch.setattr(stacked, "BOTH_MIN_WORK", 1 << 62)
    loss, g = bptt.gradients(stack, x, y, h0=h0)
    monkeypatch.setattr(stacked, "BOTH_MIN_WORK", 0)
    monkeypatch.setattr(runtime, "blas_threads", lambda: 2)  # a machine of one core runs them at once too
    handed = []
    helper = runtime.helper()
    monkeypatch.setattr(runtime, "helper", lambda: handed.append(1) or helper)
    loss2, g2 = bptt.gradients(stack, x, y, h0=h0)
    assert len(handed) == 2 * 3  # every layer's reverse direction, forward and backward
    assert loss2 == loss and all(np.array_equal(g2.params[k], g.params[k]) for k in stack.params)
    assert all(np.array_equal(a, b) for a, b in zip(g2.state0[0], g.state0[0]))
    want_loss, want, states = torch_gradients(torch, stack, x, y, h0)
    agree(stack, x, y, h0, want_loss, want, states)


def test_one_sequence_unbatched_equals_pytorch():
    torch = need("torch")
    stack = build(4, [("lstm", 3, 2, {}), ("lstm", 3, 2, {})], 4)
    x, y, h0 = data(4, stack, True, True)
    h, c = (np.stack([e[i][:1] for e in h0]) for i in range(2))  # (L * 2, 1, H): one sequence
    loss, grads, states = torch_gradients(torch, stack, x[:1], y[:1], [(a, b) for a, b in zip(h, c)])
    got_loss, g = bptt.gradients(stack, x[0], y[0], h0=(h[:, 0], c[:, 0]))  # (T,) ids, h0 (L * 2, H)
    assert relative_error(got_loss, loss)[1] <= 1e-10
    assert all(relative_error(g.params[k], grads[k])[1] <= 1e-10 for k in stack.params)
    assert g.h0.shape == g.c0.shape == (4, 3)
    assert relative_error(g.h0, np.stack([s[0][0] for s in states]))[1] <= 1e-10
    assert relative_error(g.c0, np.stack([s[1][0] for s in states]))[1] <= 1e-10
