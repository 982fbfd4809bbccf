"""Optimisers and clipping: each update against an independent formula or PyTorch, each clipping rule exactly."""
import numpy as np
import pytest
from conftest import need

from bptt.train import (adagrad, adam, clip_by_global_norm, clip_by_value, clip_per_param_norm, fallback,
                        global_norm, momentum, rmsprop, sgd, untrustworthy)
from bptt.train.optim import flatten_state, get, unflatten_state


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {"U": rng.normal(size=(3, 2)), "W": rng.normal(size=(3, 3)), "b": rng.normal(size=3)}


def _grads(k):
    rng = np.random.default_rng(100 + k)
    return {"U": rng.normal(size=(3, 2)), "W": rng.normal(size=(3, 3)), "b": rng.normal(size=3)}


def _run(opt, steps=5):
    p = _params()
    s = opt.init(p)
    for k in range(steps):
        p, s = opt.update(_grads(k), s, p)
    return p


def test_sgd_is_theta_minus_lr_g():
    p = _params()
    new, _ = sgd(0.1).update(_grads(0), sgd(0.1).init(p), p)
    for k in p:
        np.testing.assert_array_equal(new[k], p[k] - 0.1 * _grads(0)[k])


def test_adagrad_is_min_char_rnns_update():
    # min-char-rnn: mem += dparam * dparam; param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
    p = _params()
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    ref = {k: v.copy() for k, v in p.items()}
    for k in range(5):
        for name in ref:
            d = _grads(k)[name]
            mem[name] += d * d
            ref[name] += -0.1 * d / np.sqrt(mem[name] + 1e-8)
    got = _run(adagrad(0.1))
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-14, atol=1e-15)


@pytest.mark.frameworks
@pytest.mark.parametrize("name", ["momentum", "nesterov", "rmsprop", "adam"])
def test_against_torch_optimizers(name):
    torch = need("torch")
    ours = {"momentum": momentum(0.05, 0.9), "nesterov": momentum(0.05, 0.9, nesterov=True),
            "rmsprop": rmsprop(0.01, decay=0.99, eps=1e-8), "adam": adam(0.01)}[name]
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in _params().items()}
    topt = {"momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
            "nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
            "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8),
            "adam": lambda ps: torch.optim.Adam(ps, lr=0.01)}[name](list(tp.values()))
    for k in range(5):
        for n, t in tp.items():
            t.grad = torch.tensor(_grads(k)[n], dtype=torch.float64)
        topt.step()
    got = _run(ours)
    for n in tp:
        np.testing.assert_allclose(got[n], tp[n].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_adam_first_step_has_size_lr():
    p = _params()
    new, _ = adam(0.01, eps=1e-12).update(_grads(0), adam(0.01).init(p), p)
    for k in p:
        np.testing.assert_allclose(np.abs(new[k] - p[k]), 0.01, rtol=1e-8)


def test_state_round_trips_through_flat_arrays():
    p = _params()
    opt = adam(0.01)
    _, s = opt.update(_grads(0), opt.init(p), p)
    back = unflatten_state(flatten_state(s))
    assert set(back) == set(s) and int(back["t"]["t"]) == 1
    np.testing.assert_array_equal(back["m"]["W"], s["m"]["W"])


def test_bad_settings_are_sentences():
    with pytest.raises(ValueError, match="lr must be a positive"):
        sgd(-1)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        get("lbfgs", 0.1)
    with pytest.raises(ValueError, match="same names"):
        sgd(0.1).update({"W": np.zeros((3, 3))}, {}, _params())


def test_global_norm_clipping_is_exact():
    g = _grads(0)
    n = global_norm(g)
    np.testing.assert_allclose(n, np.sqrt(sum((v ** 2).sum() for v in g.values())), rtol=1e-15)
    clipped, before = clip_by_global_norm(g, 0.9 * n)
    assert before == n
    np.testing.assert_allclose(global_norm(clipped), 0.9 * n, rtol=1e-14)
    for k in g:  # the direction is kept
        np.testing.assert_allclose(clipped[k], 0.9 * g[k], rtol=1e-14)
    same, _ = clip_by_global_norm(g, 2 * n)
    for k in g:
        np.testing.assert_array_equal(same[k], g[k])


def test_value_clipping_is_min_char_rnns():
    g = {k: 10 * v for k, v in _grads(1).items()}
    c = clip_by_value(g, 5)
    for k in g:
        np.testing.assert_array_equal(c[k], np.clip(g[k], -5, 5))
        assert np.abs(c[k]).max() <= 5


def test_per_parameter_clipping():
    g = _grads(2)
    norms = {k: np.linalg.norm(v) for k, v in g.items()}
    c = float(np.median(list(norms.values())))
    out = clip_per_param_norm(g, c)
    for k in g:
        if norms[k] > c:
            np.testing.assert_allclose(np.linalg.norm(out[k]), c, rtol=1e-14)
        else:
            np.testing.assert_array_equal(out[k], g[k])


def test_pascanu_guard():
    assert untrustworthy(float("nan")) and untrustworthy(float("inf")) and untrustworthy(1e11)
    assert not untrustworthy(1e9)
    p = _params()
    f = fallback({k: np.full_like(v, np.nan) for k, v in p.items()}, p)
    np.testing.assert_array_equal(f["W"], 0.02 * p["W"])
    assert not np.any(f["U"]) and not np.any(f["b"])
    assert not any(np.any(v) for v in fallback(p, p, mode="skip").values())
    clipped, n = clip_by_global_norm({"W": np.full((2, 2), np.inf)}, 1.0)
    assert np.isinf(n)  # reported, left for the guard to handle


def test_adagrad_gives_the_plain_expressions_bits_and_layouts():
    # a gradient laid out column-major (the fast backend's dU is a transposed view), a state of
    # another layout, float32, and 0-d arrays: the numbers and layouts of the plain formulas
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        p = {"U": rng.normal(size=(4, 3)).astype(dtype), "b": rng.normal(size=4).astype(dtype),
             "s": np.array(0.5, dtype=dtype)}
        g = {"U": np.asfortranarray(rng.normal(size=(4, 3))).astype(dtype, order="K"),
             "b": rng.normal(size=4).astype(dtype), "s": np.array(-2.0, dtype=dtype)}
        mem = {"U": np.asfortranarray(rng.uniform(size=(4, 3))).astype(dtype, order="K") if dtype == np.float32
               else rng.uniform(size=(4, 3)).astype(dtype), "b": rng.uniform(size=4).astype(dtype),
               "s": np.array(0.25, dtype=dtype)}
        before = [{k: v.copy() for k, v in d.items()} for d in (p, g, mem)]
        new, state = adagrad(0.1).update(g, {"mem": mem}, p)
        for d, kept in zip((p, g, mem), before):  # the inputs untouched
            for k in d:
                np.testing.assert_array_equal(d[k], kept[k])
        for k in p:
            want_mem = mem[k] + g[k] * g[k]
            want = p[k] - 0.1 * g[k] / np.sqrt(want_mem + 1e-8)
            for got, ref in ((new[k], want), (state["mem"][k], want_mem)):
                assert np.asarray(got).dtype == ref.dtype
                assert np.asarray(got).strides == np.asarray(ref).strides
                np.testing.assert_array_equal(got, ref)


def test_adagrad_overflow_warns_as_numpy_does():
    p = {"W": np.ones((3, 3))}
    g = {"W": np.full((3, 3), 1e200)}  # g * g overflows
    with pytest.warns(RuntimeWarning, match="overflow encountered in multiply"):
        new, state = adagrad(0.1).update(g, {"mem": {"W": np.zeros((3, 3))}}, p)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(state["mem"]["W"], g["W"] * g["W"])
    np.testing.assert_array_equal(new["W"], p["W"] - 0.1 * g["W"] / np.sqrt(state["mem"]["W"] + 1e-8))
