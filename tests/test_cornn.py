"""The coRNN cell (Rusch & Mishra 2021): its gradients against PyTorch autograd of the paper's step
(bptt.frameworks.torch_modern, written from the equations), the checker on it and on a wrong step,
RTRL, and the paper's two kinds of bound on bptt's measured numbers.

The bounds. Rusch & Mishra bound the hidden states (their Proposition 3.1) and the gradient of the
loss E = 1/2 ||y_N - ybar||^2 at the last step with respect to every weight (their Proposition 3.2,
under an assumption on dt ||W||_inf and dt ||Wz||_inf, their (7)). The paper's text was not at hand
here, so its statements and constants are NOT quoted; what is tested is the same pair of results
for the same scheme (the paper's equation 3, implicit damping, zero initial state for the
gradient), derived in full in docs/engine.md ("The coRNN") and restated here. With c = 2 eps -
gamma dt > 0, gamma > 0, m = H and the energy e(X) = gamma |y|^2 + |z|^2:

  (3.1) e(X_n) <= e(X_0) + n m dt / c    for every n and every input: the hidden states stay in a
        ball that grows like sqrt(t_n), t_n = n dt, whatever W, Wz, U, b.
  (3.2) each step's Jacobian has energy-norm at most G = sqrt(1 + dt L^2 / c), L^2 = ||W||_2^2 /
        gamma + ||Wz||_2^2 (cell.bounds), so an error (g_y, g_z) at X_n arrives at X_k with dual
        norm sqrt(|g_y|^2/gamma + |g_z|^2) at most G^(n-k) times its own; and for E = 1/2 ||y_N -
        ybar||^2, X_0 = 0, with a = dt sqrt(1 + gamma dt^2) / ((1 + dt eps) sqrt(gamma)):
          ||dE/dW||_F  <= a (sqrt(N r/gamma) + |ybar|) sum_{k=1..N} G^(N-k) sqrt((k-1) r / gamma)
          ||dE/dWz||_F <= a (sqrt(N r/gamma) + |ybar|) sum_{k=1..N} G^(N-k) sqrt((k-1) r)
          ||dE/dU||_F  <= a (sqrt(N r/gamma) + |ybar|) sum_{k=1..N} G^(N-k) |u_k|
          ||dE/db||_2  <= a (sqrt(N r/gamma) + |ybar|) sum_{k=1..N} G^(N-k) sqrt(m)
        r = m dt / c. |dE/dtheta| for any one weight is at most its matrix's norm.
bptt measures E through the mse head with V = I, no c and a target at the last step only (its loss
is ||q_N - ybar||^2 = 2 E). Each bound is asserted on every one of 60 seeded models and inputs, and
the largest ratio measured / bound is printed (pytest -s) as its tightness.
"""
import numpy as np
import pytest

import bptt
from bptt import approx
from bptt.cells.cornn import CoRNN
from bptt.frameworks import relative_error
from conftest import need

CASES = 60


def _case(seed, *, N=None, implicit=True):
    """A seeded model, inputs and targets: sizes, settings and weight scales drawn; the paper's
    sMNIST and adding settings among them."""
    rng = np.random.default_rng(seed)
    H, D, O = (int(v) for v in rng.integers(1, 7, 3))
    if seed % 10 == 0:
        dt, gamma, eps = 0.042, 2.7, 4.7
    elif seed % 10 == 5:
        dt, gamma, eps = 0.06, 66.0, 15.0
    else:
        dt, gamma = rng.uniform(0.01, 0.6), rng.uniform(0.1, 6)
        eps = rng.uniform(0.55 * gamma * dt, 8)  # gamma dt < 2 eps
        if not implicit:  # the explicit damping's factor 1 - dt eps inside (-1, 1): a damped, not a growing, z
            eps = rng.uniform(0, 1.9) / dt
    model = bptt.random_model("cornn", H, D, O, seed=rng, dt=dt, gamma=gamma, eps=eps, implicit=implicit,
                              std=float(rng.uniform(0.2, 3)) if seed % 2 else None, bias=seed % 3 != 0)
    N = int(rng.integers(1, 4)) if N is None else N
    T = int(rng.integers(5, 60))
    x = rng.normal(0, rng.uniform(0.5, 3), (N, T, D))
    return rng, model, x


@pytest.mark.parametrize("seed", range(10))
def test_loss_and_every_gradient_equal_pytorch_autograd(seed):
    need("torch")
    from bptt.frameworks import torch as reference

    rng, model, x = _case(seed, implicit=seed % 4 != 3)
    N, T, D = x.shape
    if seed % 3 == 1:  # token ids instead of dense rows
        x = rng.integers(0, D, (N, T))
    y = rng.integers(0, model.O, (N, T))
    y[rng.random((N, T)) < 0.3] = -1  # unscored steps
    h0 = None if seed % 2 else (rng.normal(size=(N, model.H)), rng.normal(size=(N, model.H)))
    truncate = None if seed % 5 < 3 else int(rng.integers(0, 4))
    loss, g = bptt.gradients(model, x, y, h0=h0, truncate=truncate)
    ref, rg = reference.gradients(model, x, y, h0=h0, truncate=truncate)
    assert abs(loss - ref) <= 1e-10 * abs(ref)
    assert set(rg) == set(g.params) | {"h0", "c0"}
    for k in (*g.params, "h0", "c0"):
        assert relative_error(getattr(g, k), rg[k])[1] <= 1e-10, k


def test_the_mse_head_and_a_lone_sequence_equal_pytorch_autograd():
    need("torch")
    from bptt.frameworks import torch as reference

    rng, model, x = _case(3)
    model = bptt.random_model("cornn", 3, 2, 2, seed=rng, head="mse")
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    y[2] = np.nan  # an unscored step
    for h0 in (None, (rng.normal(size=3), rng.normal(size=3))):
        loss, g = bptt.gradients(model, x, y, h0=h0, reduction="mean")
        ref, rg = reference.gradients(model, x, y, h0=h0, reduction="mean")
        assert abs(loss - ref) <= 1e-10 * abs(ref) and g.h0.shape == g.c0.shape == (3,)
        for k in (*g.params, "h0", "c0"):
            assert relative_error(getattr(g, k), rg[k])[1] <= 1e-10, k


def test_settings_are_checked_in_one_sentence():
    for kw, words in (({"dt": 0}, "dt must be a finite number > 0, got 0"),
                      ({"dt": float("inf")}, "dt must be a finite number > 0"),
                      ({"gamma": -1}, "gamma must be a finite number >= 0, got -1"),
                      ({"eps": float("nan")}, "eps must be a finite number >= 0"),
                      ({"eps": True}, "eps must be a finite number >= 0, got True"),
                      ({"implicit": "yes"}, "implicit must be True or False, got 'yes'")):
        with pytest.raises(ValueError, match=words):
            bptt.random_model("cornn", 2, 2, 2, seed=0, **kw)
    m = bptt.random_model("cornn", 2, 2, 2, seed=0, gamma=0, eps=0)  # an undamped, unrestored oscillator
    assert (m.cell.gamma, m.cell.eps) == (0.0, 0.0)
    with pytest.raises(ValueError, match="need implicit damping, gamma > 0 and gamma dt < 2 eps"):
        m.cell.bounds(m)


def test_check_passes_it_and_fails_a_wrong_step_back(monkeypatch):
    rng, model, x = _case(4, N=1)
    x, y = x[0, :8], rng.integers(0, model.O, 8)
    report = bptt.check(model, x, y, h0=(rng.normal(size=model.H), rng.normal(size=model.H)))
    assert report.passed, report
    real = CoRNN.step_back

    def no_wz(self, m, prev, state, cache, d):  # forgets the error's way back through Wz
        d_a, d_r, (dy, dz) = real(self, m, prev, state, cache, d)
        return d_a, d_r, (dy, dz - d_r @ m.Wz)

    monkeypatch.setattr(CoRNN, "step_back", no_wz)
    report = bptt.check(model, x, y, h0=(rng.normal(size=model.H), rng.normal(size=model.H)))
    assert not report.passed and not report["c0"].passed and not report["Wz"].passed


def test_rtrl_and_the_flow_equal_bptt():
    rng, model, x = _case(7, N=2)
    x = x[:, :9]
    y = rng.integers(0, model.O, x.shape[:2])
    loss, g = bptt.gradients(model, x, y)
    loss_r, g_r = approx.rtrl(model, x, y)
    assert abs(loss_r - loss) <= 1e-12 * abs(loss)
    for k, v in g.params.items():
        np.testing.assert_allclose(g_r.params[k], v, rtol=1e-10, atol=1e-14, err_msg=k)
    fl = bptt.flow(model, x[0], y[0])
    one = bptt.gradients(model, x[0], y[0])[1]
    for k in ("W", "Wz", "U"):  # the terms of every output add up to the gradient
        total = sum(fl.terms(k, t).sum(axis=0) for t in range(fl.T))
        np.testing.assert_allclose(total, one.params[k], rtol=1e-10, atol=1e-13, err_msg=k)


def _energy(model, S):
    return model.cell.gamma * (S[0] ** 2).sum(-1) + (S[1] ** 2).sum(-1)


def test_proposition_3_1_the_hidden_states_stay_in_the_energy_ball():
    worst = worst0 = 0.0
    for seed in range(CASES):
        rng, model, x = _case(seed)
        h0 = (rng.normal(size=(x.shape[0], model.H)), rng.normal(size=(x.shape[0], model.H)))
        tr = bptt.forward(model, x, h0=h0)
        c, rate, _ = model.cell.bounds(model)
        e = _energy(model, tr.cell_states)  # (T+1, N): e(X_0), ..., e(X_T)
        n = np.arange(e.shape[0])[:, None]
        bound = e[0] + n * rate
        assert np.all(e <= bound * (1 + 1e-12)), seed
        worst = max(worst, float(np.max(e[1:] / bound[1:])))
        e0 = _energy(model, bptt.forward(model, x).cell_states)[1:]  # from X_0 = 0: the growth term alone
        assert np.all(e0 <= n[1:] * rate * (1 + 1e-12)), seed
        worst0 = max(worst0, float(np.max(e0 / (n[1:] * rate))))
        # the step's own form: e(X_n) - e(X_{n-1}) <= dt |tanh(.)_n|^2 / c
        (s,) = tr.cache
        assert np.all(np.diff(e, axis=0) <= model.cell.dt * (s ** 2).sum(-1) / c + 1e-12 * bound[1:]), seed
    print(f"\nProposition 3.1 (energy ball), {CASES} models: max e(X_n) / (e(X_0) + n m dt / c) = {worst:.3g}; "
          f"from X_0 = 0, max e(X_n) / (n m dt / c) = {worst0:.3g}")
    assert 0 < worst <= 1 and 0 < worst0 <= 1


def test_proposition_3_2_the_error_grows_at_most_by_the_step_bound():
    worst = far = 0.0
    for seed in range(CASES):
        rng, model, x = _case(seed, N=1)
        y = rng.integers(0, model.O, x.shape[1])
        fl = bptt.flow(model, x[0], y)
        _, _, growth = model.cell.bounds(model)
        g = model.cell.gamma
        for t in range(0, fl.T, max(1, fl.T // 6)):
            ey, ez = fl.state_errors(t)
            dual = np.sqrt((ey[:t + 1] ** 2).sum(-1) / g + (ez[:t + 1] ** 2).sum(-1))  # k = 0..t
            bound = dual[t] * growth ** (t - np.arange(t + 1))
            assert np.all(dual <= bound * (1 + 1e-12) + 1e-300), (seed, t)
            if t > 0 and dual[t] > 0:
                worst = max(worst, float(np.max(dual[:t] / bound[:t])))
            if t >= 10 and dual[t] > 0:  # lags of 10 and more
                far = max(far, float(np.max(dual[:t - 9] / bound[:t - 9])))
    print(f"\nProposition 3.2 (per-step growth), {CASES} models: max ||dE_t/dX_k||_* / (G^(t-k) ||dE_t/dX_t||_*) "
          f"= {worst:.3g}; at lags >= 10: {far:.3g}")
    assert 0 < worst <= 1 and 0 < far <= 1


def gradient_bounds(model, u, ybar):
    """The bounds of the module's notes (3.2) on ||dE/dtheta|| for E = 1/2 ||y_N - ybar||^2 from X_0 = 0:
    u (N, D) the inputs, ybar (H,) the target."""
    cell, H = model.cell, model.H
    c, rate, G = cell.bounds(model)
    g, dt, N = cell.gamma, cell.dt, u.shape[0]
    a = dt * np.sqrt(1 + g * dt ** 2) / ((1 + dt * cell.eps) * np.sqrt(g))
    front = a * (np.sqrt(N * rate / g) + np.linalg.norm(ybar))
    k = np.arange(1, N + 1)
    far = G ** (N - k)
    return {"W": front * np.sum(far * np.sqrt((k - 1) * rate / g)), "Wz": front * np.sum(far * np.sqrt((k - 1) * rate)),
            "U": front * np.sum(far * np.linalg.norm(u, axis=-1)), "b": front * np.sum(far * np.sqrt(H))}


def test_proposition_3_2_the_gradient_of_the_last_steps_loss_is_bounded():
    worst = {}
    for seed in range(CASES):
        rng, model, x = _case(seed, N=1)
        u, H = x[0], model.H
        own = {k: v for k, v in model.params.items() if k not in ("V", "c")}
        m = bptt.CoRNN(**own, V=np.eye(H), head="mse", **model.cell.values)  # q_n = y_n
        ybar = rng.uniform(-2, 2, H)
        target = np.full((u.shape[0], H), np.nan)
        target[-1] = ybar
        loss, grads = bptt.gradients(m, u, target)
        bounds = gradient_bounds(m, u, ybar)
        for k, bound in bounds.items():
            if k not in m.params:
                continue
            measured = np.linalg.norm(grads.params[k] / 2)  # bptt's loss is 2 E
            assert measured <= bound * (1 + 1e-12), (seed, k, measured, bound)
            worst[k] = max(worst.get(k, 0.0), measured / bound)
    print(f"\nProposition 3.2 (gradient of E = 1/2 ||y_N - ybar||^2), {CASES} models: max measured / bound = "
          + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))
    assert set(worst) == {"W", "Wz", "U", "b"} and all(0 < v <= 1 for v in worst.values())


def test_bptt_train_takes_the_cornn_and_its_settings(tmp_path, capsys):
    import json

    from bptt.cli import main
    from bptt.model import Model

    argv = ["train", "--task", "temporal", "--length", "10", "--hidden", "4", "--batch", "3", "--eval-every", "3",
            "--checkpoint-every", "2", "--seed", "5", "--quiet", "--cell", "cornn", "--dt", "0.1", "--gamma", "1",
            "--eps", "2", "--implicit", "false"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*argv, "--steps", "6", "--out", str(whole)]) == 0
    assert main([*argv, "--steps", "4", "--out", str(cut)]) == 0
    assert main([*argv, "--steps", "6", "--out", str(cut), "--resume"]) == 0
    config = json.loads((whole / "config.json").read_text())
    assert (config["dt"], config["gamma"], config["eps"], config["implicit"]) == (0.1, 1.0, 2.0, False)
    a, b = Model.load(whole / "model.npz"), Model.load(cut / "model.npz")
    assert type(a).__name__ == "CoRNN" and a.cell.values == {"dt": 0.1, "gamma": 1.0, "eps": 2.0, "implicit": False}
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    metrics = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in metrics if "test_loss" in r][-1]
    assert last["rho"] is None and last["lambda1"] == pytest.approx(np.linalg.norm(a.W.astype(np.float64), 2), rel=1e-6)
    capsys.readouterr()
    for bad, words in ((["--cell", "lru", "--gamma", "1"], "gamma applies to the cornn cell only, not to cell 'lru'"),
                       (["--cell", "cornn", "--dt", "-1"], "dt must be a finite number > 0, got -1.0")):
        assert main(["train", "--task", "temporal", *bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert main(["check", "--cell", "cornn", "--eps", "0.5", "--frameworks", "none", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["finite_differences"]["params"]
    assert {r["name"] for r in rows} >= {"W", "Wz", "U", "h0", "c0"} and all(r["passed"] for r in rows)
