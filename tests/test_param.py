"""bptt.param's parametrisations and modReLU: their gradients against finite differences and PyTorch's
autograd (float64, 1e-10), orthogonality, Henaff's initialisation, and training through them."""
import json
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import param
from bptt.cli import main
from bptt.model import Model
from bptt.train import resolve, train
from conftest import need

SIZES = [1, 2, 7]


def _close(a, b, tol=1e-10):
    """max |a - b| within tol of max |b| (both exactly zero passes: H = 1's skew part is 0)."""
    err, scale = np.max(np.abs(a - b)), np.max(np.abs(b))
    assert err <= tol * scale or err == 0.0, (err, scale)


def _fd(f, A, h=1e-3):
    """dsum(f(A))/dA by the five-point stencil (error O(h^4) ~ 1e-12, rounding ~ 1e-13)."""
    g = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        def at(d):
            B = A.copy()
            B[i] += d
            return f(B)
        g[i] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
    return g


def _case(H, seed):
    r = np.random.default_rng(seed)
    return r.normal(size=(H, H)), r.normal(size=(H, H)), r.choice([-1.0, 1.0], H)


@pytest.mark.parametrize("H", SIZES)
def test_vjps_equal_finite_differences(H):
    A, G, d = _case(H, H)
    _close(param.expm_vjp(A, G), _fd(lambda B: np.sum(G * param.expm(B)), A))
    _close(param.cayley_vjp(A, G), _fd(lambda B: np.sum(G * param.cayley(B)), A))
    _close(param.cayley_vjp(A, G, d), _fd(lambda B: np.sum(G * param.cayley(B, d)), A))


@pytest.mark.frameworks
@pytest.mark.parametrize("H", SIZES + [30])
def test_vjps_equal_torch_autograd(H):
    torch = need("torch")
    A, G, d = _case(H, 10 + H)
    for name, ours, D in (("exp", param.expm_vjp(A, G), None), ("cayley", param.cayley_vjp(A, G), None),
                          ("cayley D", param.cayley_vjp(A, G, d), d)):
        At = torch.tensor(A, requires_grad=True)
        S = (At - At.T) / 2
        eye = torch.eye(H, dtype=torch.float64)
        W = torch.linalg.matrix_exp(S) if name == "exp" else torch.linalg.solve(eye + S, eye - S)
        if D is not None:
            W = W * torch.tensor(D)
        _close(W.detach().numpy(), (param.expm if name == "exp" else param.cayley)(A, *([D] if D is not None else [])))
        (W * torch.tensor(G)).sum().backward()
        _close(ours, At.grad.numpy())


def test_expm_equals_scipy_and_its_vjp_the_frechet_derivative():
    sl = pytest.importorskip("scipy.linalg")
    A, G, _ = _case(9, 3)
    S = (A - A.T) / 2
    _close(param.expm(A), sl.expm(S), 1e-13)
    dS = sl.expm_frechet(S.T, G, compute_expm=False)  # the adjoint of L(S, .) is L(S^T, .)
    _close(param.expm_vjp(A, G), (dS - dS.T) / 2)


@pytest.mark.parametrize("H", [1, 2, 7, 64])
def test_outputs_are_orthogonal_and_henaff_is_a_block_rotation(H):
    A, _, d = _case(H, 5)
    for W in (param.expm(A), param.cayley(A), param.cayley(A, d), param.expm(10 * A)):
        assert param.orthogonality(W) <= 1e-12
    K = param.henaff(H, seed=0)
    np.testing.assert_array_equal(K, -K.T)
    assert np.all(np.abs(K) <= np.pi) and np.count_nonzero(K) == 2 * (H // 2)
    W = param.expm(K)
    assert param.orthogonality(W) <= 1e-12
    for i in range(0, H - 1, 2):  # block i: the rotation by its angle
        t = K[i, i + 1]
        _close(W[i:i + 2, i:i + 2], np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]), 1e-14)


def test_bad_arguments_are_sentences():
    for call in (lambda: param.expm(np.ones((2, 3))), lambda: param.cayley(np.eye(2), D=[1, 0]),
                 lambda: param.expm_vjp(np.eye(2), np.eye(3)), lambda: param.get("polar"),
                 lambda: param.expm([[np.nan]])):
        with pytest.raises(ValueError) as e:
            call()
        assert "\n" not in str(e.value)


# --- modReLU -------------------------------------------------------------------------------------
def _modrelu_case():
    m = bptt.random_model("rnn", 5, 3, 4, seed=0, activation="modrelu", bias=True)
    m = m.replace(bm=np.array([0.3, -0.2, 0.1, -0.5, 0.05]))  # both signs: units that cut and units that pass
    r = np.random.default_rng(1)
    return m, r.normal(size=(2, 6, 3)), r.integers(0, 4, (2, 6))


def test_modrelu_gradients_equal_finite_differences():
    m, x, y = _modrelu_case()
    loss, g = bptt.gradients(m, x, y)
    for k, a in m.params.items():
        def f(B, k=k):
            return bptt.gradients(m.replace(**{k: B}), x, y)[0]
        _close(g.params[k], _fd(f, np.array(a), h=1e-4), 1e-9)  # a kink within 2h of an entry would show


@pytest.mark.frameworks
def test_modrelu_gradients_equal_torch_autograd():
    torch = need("torch")
    m, x, y = _modrelu_case()
    loss, g = bptt.gradients(m, x, y)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    s, E = torch.zeros(2, 5, dtype=torch.float64), 0
    for t in range(x.shape[1]):  # the paper's equations, written here: z = U x + W s + b, s = sign(z) relu(|z| + bm)
        z = torch.tensor(x[:, t]) @ P["U"].T + s @ P["W"].T + P["b"]
        s = torch.sign(z) * torch.relu(torch.abs(z) + P["bm"])
        q = s @ P["V"].T + P["c"]
        E = E + torch.nn.functional.cross_entropy(q, torch.tensor(y[:, t]), reduction="sum")
    E.backward()
    _close(np.array(loss), np.array(E.item()), 1e-13)
    for k in m.params:
        _close(g.params[k], P[k].grad.numpy())


def test_modrelu_derivative_at_the_kinks_is_zero_and_bm_belongs_to_modrelu():
    m, x, y = _modrelu_case()
    s = np.array([[0.0, 0.0, 1.5, -0.7, 0.0]])
    delta, _, _ = m.cell.step_back(m, None, (s,), None, (np.ones_like(s),))
    np.testing.assert_array_equal(delta, [[0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(m.cell.param_grads(m, None, (s,), None, delta, delta)["bm"], [[0, 0, 1, -1, 0]])
    with pytest.raises(ValueError, match="bm is the bias of activation 'modrelu'"):
        bptt.RNN(U=m.U, W=m.W, V=m.V, bm=m.bm)


# --- training through a parametrisation ----------------------------------------------------------
def _records(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["exp", "cayley"])
def test_every_update_keeps_w_orthogonal_and_a_resumed_run_repeats_the_numbers(tmp_path, name):
    base = dict(task="copy", length=8, hidden=6, batch=4, eval_every=5, checkpoint_every=3, dtype="float64",
                optimizer="rmsprop", lr=0.01, param=name, param_lr=0.05, activation="modrelu")
    train(resolve(dict(base, steps=30)), tmp_path / "whole", progress=False)
    recs = _records(tmp_path / "whole")
    assert len(recs) == 30 and all(r["orthogonality"] <= 1e-12 for r in recs)
    model = Model.load(tmp_path / "whole" / "model.npz")
    W = model.W
    assert np.max(np.abs(W.T @ W - np.eye(6))) <= 1e-12
    A = np.load(tmp_path / "whole" / "checkpoint.npz")["extra/A"]
    np.testing.assert_array_equal(W, param.get(name).forward(A))
    assert np.max(np.abs(A + A.T)) == 0.0 and np.abs(A).max() > 0  # A stayed skew, and moved
    start = param.get(name).forward(param.henaff(6, seed=np.random.default_rng([0, 2])))
    assert np.abs(W - start).max() > 1e-3  # W was trained
    train(resolve(dict(base, steps=13)), tmp_path / "short", progress=False)
    train(resolve(dict(base, steps=30)), tmp_path / "short", resume=True, progress=False)
    other = Model.load(tmp_path / "short" / "model.npz")
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], other.params[k])
    steps = lambda run: [(r["step"], r["loss"], r["grad_norm"], r["orthogonality"]) for r in _records(run)]  # noqa: E731
    assert steps(tmp_path / "whole") == steps(tmp_path / "short")


def test_cli_trains_with_cayley_and_resumes(tmp_path, capsys):
    args = ["train", "--task", "copy", "--length", "8", "--hidden", "6", "--batch", "4", "--dtype", "float64",
            "--param", "cayley", "--param-lr", "0.01", "--eval-every", "4", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--steps", "4"]) == 0
    assert main([*args, "--steps", "8", "--resume"]) == 0
    recs = _records(tmp_path)
    assert [r["step"] for r in recs] == list(range(1, 9)) and all(r["orthogonality"] <= 1e-12 for r in recs)
    assert json.loads((tmp_path / "config.json").read_text())["param"] == "cayley"
    capsys.readouterr()
    assert main(["train", "--task", "copy", "--cell", "lstm", "--param", "exp", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "param applies to a cell whose recurrent matrix is square (rnn" in err and "\n" not in err
