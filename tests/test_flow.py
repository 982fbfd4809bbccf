"""The per-step decomposition: its terms sum to the gradients the engine computes."""
import ast

import numpy as np
import pytest

import bptt

pytestmark = pytest.mark.usefixtures("each_backend")  # every test on both backends


def setup(seed=0, T=7, bias=True, activation="tanh", dense=False):
    rng = np.random.default_rng(seed)
    m = bptt.random_rnn(4, 3, 3, seed=rng, init="normal", std=0.7, activation=activation, bias=bias)
    if bias:
        m = m.replace(b=rng.normal(0, 0.3, 4))
    x = rng.normal(size=(T, 3)) if dense else rng.integers(0, 3, T)
    return m, x, rng.integers(0, 3, T)


def only(y, t):
    return np.where(np.arange(len(y)) == t, y, -1)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
@pytest.mark.parametrize("dense", [False, True])
def test_terms_of_output_t_sum_to_its_gradient(activation, dense):
    m, x, y = setup(1, activation=activation, dense=dense)
    fl = bptt.flow(m, x, y)
    for t in (0, 3, 6):
        _, g = bptt.gradients(m, x, only(y, t))  # dE_t alone, by the engine's backward pass
        for name in ("W", "U", "b"):
            terms = fl.terms(name, t)
            assert terms.shape == (7,) + getattr(m, name).shape
            np.testing.assert_array_equal(terms[t + 1:], 0)
            np.testing.assert_allclose(terms.sum(0), getattr(g, name), rtol=1e-12, atol=1e-15, err_msg=name)


def test_summing_over_outputs_gives_the_full_gradient():
    m, x, y = setup(2)
    fl = bptt.flow(m, x, y)
    loss, g = bptt.gradients(m, x, y)
    assert fl.loss == pytest.approx(loss, rel=1e-14)
    for name in ("W", "U", "b"):
        total = sum(fl.terms(name, t).sum(0) for t in range(7))
        np.testing.assert_allclose(total, getattr(g, name), rtol=1e-12, atol=1e-15)


def test_W_term_is_the_notebooks_chain_of_factors():
    # term_{t,k} = dE_t/dq_t . V . ds_t/dz_t . W . ds_{t-1}/dz_{t-1} ... ds_k/dz_k . s_{k-1}, written out
    m, x, y = setup(3, bias=False)
    fl = bptt.flow(m, x, y)
    s = bptt.forward(m, x).states  # s[k + 1] = s_k
    t = 5
    for k in range(t + 1):
        row = fl.dQ[t] @ m.V @ np.diag(1 - s[t + 1] ** 2)
        for j in range(t - 1, k - 1, -1):
            row = row @ m.W @ np.diag(1 - s[j + 1] ** 2)
        np.testing.assert_allclose(fl.terms("W", t)[k], np.outer(row, s[k]), rtol=1e-12, atol=1e-16)


def test_dE_ds_is_the_h0_gradient_of_the_rest_of_the_sequence():
    # ||dE_t/ds_k||: restart the sequence after step k from h0 = s_k, score only output t, take dE/dh0
    m, x, y = setup(4)
    fl = bptt.flow(m, x, y)
    s = bptt.forward(m, x).states
    T = 7
    want = np.zeros((T, T))
    for k in range(T):
        for t in range(k, T):
            if t == k:
                e = fl.dQ[t] @ m.V
            else:
                _, g = bptt.gradients(m, x[k + 1: t + 1], only(y[k + 1: t + 1], t - k - 1), h0=s[k + 1])
                e = g.h0
            want[t, k] = np.linalg.norm(e)
    np.testing.assert_allclose(fl.dE_ds, want, rtol=1e-12, atol=1e-16)
    assert np.all(np.triu(fl.dE_ds, 1) == 0)


def test_explain_prints_every_term_and_their_sum():
    m, x, y = bptt.seed_example()
    text = bptt.flow(m, x, y).explain("W", 2)
    assert text.count("term k =") == 3
    assert "dE_2/dq_2 . V . ds_2/dz_2 . W . ds_1/dz_1 . W . ds_0/dz_0 . s_-1^T" in text
    _, g = bptt.gradients(m, x, only(y, 2))
    last = text.strip().splitlines()[-1]
    got = np.array(ast.literal_eval(last.split("=")[-1].strip()))  # the printed matrix
    np.testing.assert_allclose(got, g.W, rtol=1e-3, atol=1e-4)


def test_flow_rejects_batches_and_bad_names():
    m, x, y = setup(5)
    with pytest.raises(ValueError, match="one sequence"):
        bptt.flow(m, np.stack([x, x]), np.stack([y, y]))
    fl = bptt.flow(m, x, y)
    with pytest.raises(ValueError, match="V and c"):
        fl.terms("V", 2)
    with pytest.raises(ValueError, match="0..6"):
        fl.terms("W", 7)
