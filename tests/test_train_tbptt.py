"""Truncated BPTT: kept terms against the rule's definition, gradients against the engine's terms and
against brute-force sub-sequences, the carried-state stream against both, and min-char-rnn's steps."""
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt.train import Stream, kept_terms, tbptt_gradients
from bptt.train.tbptt import blocks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def _model(seed=0, D=5):
    return bptt.random_rnn(4, D, D, seed=seed, bias=True, std=0.7)


def test_kept_terms_follow_the_definitions():
    T = 11
    for k1, k2 in [(1, 1), (2, 3), (3, 5), (4, 4), (3, 11)]:
        keep = kept_terms(T, k1=k1, k2=k2)
        for t in range(T):
            tau = min((t // k1 + 1) * k1, T) - 1  # the last output of t's block
            for k in range(T):
                assert keep[t, k] == (tau - k2 < k <= t), (k1, k2, t, k)
    for K in (0, 2, 20):
        keep = kept_terms(T, truncate=K)
        t, k = np.indices((T, T))
        np.testing.assert_array_equal(keep, (k <= t) & (k >= t - K))


def test_the_documented_table():
    table = kept_terms(6, k1=2, k2=3).astype(int)
    doc = bptt.train.tbptt.__doc__
    rows = [line.split()[1:] for line in doc.splitlines() if line.strip()[:1].isdigit() and "x" in line][:6]
    assert [[1 if c == "x" else 0 for c in r[:6]] for r in rows] == table.tolist()


@pytest.mark.parametrize("k1,k2", [(3, 5), (2, 2), (4, 9), (1, 3)])
def test_tbptt_sums_exactly_the_kept_terms(k1, k2):
    m = _model()
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, 13), rng.integers(0, 5, 13)
    res = tbptt_gradients(m, x, y, k1, k2)
    assert len(res) == len(blocks(13, k1))
    fl = bptt.flow(m, x, y)
    keep = kept_terms(13, k1=k1, k2=k2)
    for name in ("W", "U", "b"):
        want = sum(fl.terms(name, t)[keep[t]].sum(0) for t in range(13))
        got = sum(getattr(g, name) for _, g in res)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sum(l for l, _ in res), bptt.loss(m, x, y), rtol=1e-12)


def test_each_block_is_full_bptt_on_its_window_from_the_carried_state():
    m = _model(2)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, (2, 17)), rng.integers(0, 5, (2, 17))
    k1, k2 = 4, 7
    res = tbptt_gradients(m, x, y, k1, k2)
    S = bptt.forward(m, x).states  # (N, T+1, H)
    for (first, tau), (loss, g) in zip(blocks(17, k1), res):
        ws = max(0, tau - k2 + 1)
        yw = y[:, ws:tau + 1].copy()
        yw[:, :first - ws] = -1
        l2, g2 = bptt.gradients(m, x[:, ws:tau + 1], yw, h0=S[:, ws])
        assert loss == pytest.approx(l2, rel=1e-12)
        for name in ("U", "W", "V", "b", "c", "h0"):
            np.testing.assert_allclose(getattr(g, name), getattr(g2, name), rtol=1e-11, atol=1e-14)


def test_k1_equals_k2_equals_T_is_full_bptt():
    m = _model(4)
    x = np.random.default_rng(5).integers(0, 5, 9)
    (loss, g), = tbptt_gradients(m, x, x, 9, 9)
    l2, g2 = bptt.gradients(m, x, x)
    assert loss == pytest.approx(l2, rel=1e-13)
    np.testing.assert_allclose(g.W, g2.W, rtol=1e-12, atol=1e-15)


def test_stream_with_fixed_weights_reproduces_the_blocks():
    """The training stream (window re-run from the carried state) gives tbptt_gradients' blocks."""
    m = _model(6)
    data = np.random.default_rng(7).integers(0, 5, (2, 40))
    k1, k2 = 3, 8
    st = Stream(data, k1, k2)
    ref = tbptt_gradients(m, data[:, :-1], data[:, 1:], k1, k2)
    n_updates = (40 - 1) // k1 - 1  # the stream restarts when p + k1 + 1 >= L
    for i in range(n_updates):
        x, y, h = st.window(m.state_sizes, m.dtype)
        tr = bptt.forward(m, x, h)
        loss, g = bptt.backward(tr, y)
        st.advance(tr)
        assert loss == pytest.approx(ref[i][0], rel=1e-12)
        np.testing.assert_allclose(g.W, ref[i][1].W, rtol=1e-11, atol=1e-14)
    x, y, h = st.window(m.state_sizes, m.dtype)
    assert st.p == 0 and st.epoch == 1 and not h.any()  # back to the start with a zero state


def test_an_lstm_stream_carries_h_and_c():
    """With fixed weights, each window re-run from the carried (h, c) scores its block as one forward
    pass over the whole stream from a zero state does; its gradient is tbptt_gradients' block."""
    from bptt.model import random_gated

    m = random_gated("lstm", 4, 5, 5, seed=8, forget_bias=1.0, dtype=np.float64)
    data = np.random.default_rng(9).integers(0, 5, (2, 30))
    k1, k2 = 3, 7
    st = Stream(data, k1, k2)
    ref = tbptt_gradients(m, data[:, :-1], data[:, 1:], k1, k2)
    for i in range((30 - 1) // k1 - 1):
        x, y, h = st.window(m.state_sizes, m.dtype)
        assert isinstance(h, tuple) and len(h) == 2
        tr = bptt.forward(m, x, h)
        loss, g = bptt.backward(tr, y)
        st.advance(tr)
        first, tau = i * k1, i * k1 + k1 - 1
        whole = np.full((2, tau + 1), -1)
        whole[:, first:] = data[:, first + 1:tau + 2]
        assert loss == pytest.approx(bptt.loss(m, data[:, :tau + 1], whole), rel=1e-12)
        assert loss == pytest.approx(ref[i][0], rel=1e-12)
        for name in ("U", "W", "b", "bh", "V"):
            np.testing.assert_allclose(getattr(g, name), getattr(ref[i][1], name), rtol=1e-11, atol=1e-14)
    with pytest.raises(ValueError, match="carries a state of 2 array"):
        st.window((m.H,), m.dtype)


def test_bad_k_is_a_sentence():
    with pytest.raises(ValueError, match="k2 >= k1"):
        kept_terms(5, k1=3, k2=2)
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        tbptt_gradients(_model(), np.zeros(4, int), np.zeros(4, int), 0)


def test_training_steps_equal_min_char_rnn(tmp_path):
    """bptt train with min-char-rnn's settings takes min-char-rnn's steps (float64, same weights)."""
    import min_char_rnn as mcr
    from bptt.train import loop, resolve, train
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abcdefgh \n"), size=3000))
    (tmp_path / "t.txt").write_text(text)
    cfg = resolve({"task": "char", "text": str(tmp_path / "t.txt"), "steps": 6, "dtype": "float64",
                   "eval_every": 1000})
    task = loop.build_task(cfg)
    m = loop.initial_model(cfg, task)
    _, losses, _ = mcr.train(task.train_ids, task.D, 6, params=[m.U.copy(), m.W.copy(), m.V.copy(),
                                                                 m.b.copy()[:, None], m.c.copy()[:, None]])
    train(cfg, tmp_path / "run", progress=False)
    import json
    ours = [json.loads(l)["loss"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(ours, losses, rtol=1e-9)
