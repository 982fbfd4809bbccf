"""A cell defined outside the package (examples/custom_cell.py), registered with bptt.cells.register:
every verb takes it with no other change. Its gradients are checked against PyTorch autograd of the
same equations written here from scratch, its flow table against autograd's dE_t/ds_k, and the
checker must fail a cell whose step_back is wrong."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import approx, cells
from bptt.train import resolve, train

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_cell.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("custom_cell", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Diagonal = _load_example().Diagonal


def _torch_loss(params, x, y, h0, dense):
    """E summed over time and batch for z_t = U x_t + b + w * s_{t-1}, s_t = tanh(z_t), q_t = V s_t + c."""
    U, w, V = params["U"], params["w"], params["V"]
    b, c = params.get("b"), params.get("c")
    X = x if dense else torch.nn.functional.one_hot(x, U.shape[1]).double()  # (N, T, D)
    s, E, states = h0, 0.0, []
    for t in range(X.shape[1]):
        z = X[:, t] @ U.T + w * s + (0 if b is None else b)
        s = torch.tanh(z)
        states.append(s)
        q = s @ V.T + (0 if c is None else c)
        E = E + torch.nn.functional.cross_entropy(q, y[:, t], ignore_index=-1, reduction="sum")
    return E, states


@pytest.mark.parametrize("seed", range(6))
def test_gradients_equal_pytorch_autograd(seed):
    rng = np.random.default_rng(seed)
    N, T, D, H, O = (int(v) for v in rng.integers(1, 6, 5))
    model = bptt.random_model("diagonal", H, D, O, seed=rng, bias=bool(seed % 2))
    dense = seed % 3 == 0
    x = rng.normal(size=(N, T, D)) if dense else rng.integers(0, D, (N, T))
    y = rng.integers(0, O, (N, T))
    y[rng.random((N, T)) < 0.3] = -1  # unscored steps
    h0 = rng.normal(size=(N, H)) if seed % 2 else None
    loss, g = bptt.gradients(model, x, y, h0=h0)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    s0 = torch.tensor(np.zeros((N, H)) if h0 is None else h0, requires_grad=True)
    ref, _ = _torch_loss(P, torch.tensor(x) if dense else torch.tensor(x), torch.tensor(y), s0, dense)
    ref.backward()
    assert abs(loss - ref.item()) <= 1e-10 * max(1.0, abs(ref.item()))
    for k, p in P.items():
        np.testing.assert_allclose(g.params[k], p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(g.h0, s0.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_flow_table_equals_autograds_state_errors():
    rng = np.random.default_rng(3)
    model = bptt.random_model("diagonal", 5, 3, 4, seed=rng, bias=True)
    T = 7
    x, y = rng.integers(0, 3, T), rng.integers(0, 4, T)
    fl = bptt.flow(model, x, y)
    assert fl.dE_ds.shape == (T, T) and fl.cell == "diagonal"
    P = {k: torch.tensor(v) for k, v in model.params.items()}
    for t in range(T):
        h0 = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)  # puts every state on the graph
        _, states = _torch_loss(P, torch.tensor(x[None]), torch.tensor(y[None]), h0, False)
        q = states[t] @ P["V"].T + P["c"]
        E_t = torch.nn.functional.cross_entropy(q, torch.tensor(y[None, t]), reduction="sum")
        grads = torch.autograd.grad(E_t, states[:t + 1])
        want = [float(gk.norm()) for gk in grads]
        np.testing.assert_allclose(fl.dE_ds[t, :t + 1], want, rtol=1e-10, atol=1e-14)
        assert not fl.dE_ds[t, t + 1:].any()
    full = bptt.gradients(model, x, y)[1].w
    np.testing.assert_allclose(sum(fl.terms("w", t).sum(0) for t in range(T)), full, rtol=1e-10, atol=1e-14)


def test_check_passes_it_and_fails_a_wrong_step_back():
    model = bptt.random_model("diagonal", 4, 3, 3, seed=0)
    x, y = [0, 1, 2, 1, 0], [1, 2, 0, 0, 1]
    report = bptt.check(model, x, y)
    assert report.passed and report.backend == "reference", report

    class Wrong(Diagonal):
        name, model = "diagonal_wrong", "DiagonalWrong"

        def step_back(self, m, prev, state, cache, d):
            delta = d[0] * (1 - state[0] ** 2)
            return delta, delta, (delta,)  # forgets the factor w on the way back

    cells.register(Wrong)
    wrong = bptt.random_model("diagonal_wrong", 4, 3, 3, seed=0)
    report = bptt.check(wrong, x, y)
    assert not report.passed
    assert not report["w"].passed and not report["h0"].passed


def test_rtrl_equals_bptt():
    rng = np.random.default_rng(1)
    model = bptt.random_model("diagonal", 4, 3, 3, seed=rng, bias=True)
    x, y = rng.integers(0, 3, (2, 6)), rng.integers(0, 3, (2, 6))
    loss, g = bptt.gradients(model, x, y)
    loss_r, g_r = approx.rtrl(model, x, y)
    assert abs(loss_r - loss) <= 1e-12 * abs(loss)
    for k, v in g.params.items():
        np.testing.assert_allclose(g_r.params[k], v, rtol=1e-10, atol=1e-14, err_msg=k)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if "wall_s" not in line]


def test_trains_with_a_checkpoint_and_resumes_to_the_same_numbers(tmp_path):
    def cfg(steps):
        return resolve({"task": "temporal", "length": 10, "cell": "diagonal", "hidden": 6, "batch": 4,
                        "steps": steps, "eval_every": 5, "checkpoint_every": 5, "dtype": "float64"})

    train(cfg(10), tmp_path / "whole", progress=False)
    train(cfg(5), tmp_path / "part", progress=False)
    ck = tmp_path / "part" / "checkpoint.npz"
    with np.load(ck) as f:  # as if a 10-step run had stopped at its checkpoint at step 5
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    assert meta["cell"] == "diagonal" and meta["step"] == 5
    meta["config"]["steps"] = 10
    np.savez(ck, meta=np.array(json.dumps(meta)), **arrays)
    train(cfg(10), tmp_path / "part", resume=True, progress=False)
    whole = bptt.Model.load(tmp_path / "whole" / "model.npz")
    part = bptt.Model.load(tmp_path / "part" / "model.npz")
    assert type(whole).__name__ == "Diagonal" and set(whole.params) == {"U", "w", "V", "b", "c"}
    for k in whole.params:
        np.testing.assert_array_equal(whole.params[k], part.params[k])
    assert [r["loss"] for r in _metrics(tmp_path / "whole") if "loss" in r] == \
        [r["loss"] for r in _metrics(tmp_path / "part") if "loss" in r]
