"""Tasks: generators against their papers' definitions, each baseline against its formula and against the
loss of the memoryless predictor it names, each criterion on perfect and imperfect outputs."""
import numpy as np
import pytest

import bptt
from bptt import tasks
from bptt.tasks import Adding, CharLM, Copy, Reber, TemporalOrder, Vocab, conditional_entropy, reber_string, sample
from bptt.tasks.reber import GRAPH


def _logits_from_probs(P):
    return np.log(np.clip(P, 1e-300, None))


# --- copy -------------------------------------------------------------------------------
def test_copy_sequences_and_baseline():
    T = 30
    task = Copy(T, test_size=200)
    x, y = task.batch(np.random.default_rng(0), 50)
    assert x.shape == y.shape == (50, T + 20)
    assert np.all((x[:, :10] >= 1) & (x[:, :10] <= 8)) and np.all(x[:, T + 9] == 9)
    assert not x[:, 10:T + 9].any() and not x[:, T + 10:].any()
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert not y[:, :T + 10].any()
    assert task.baseline == pytest.approx(10 * np.log(8) / (T + 20), rel=1e-15)
    # the memoryless strategy: blanks for T + 10 steps, then uniform over the 8 symbols
    xt, yt = task.test_set()
    P = np.zeros(xt.shape + (10,))
    P[:, :T + 10, 0] = 1
    P[:, T + 10:, 1:9] = 1 / 8
    res = task.score(_logits_from_probs(P))
    assert res["loss"] == pytest.approx(task.baseline, rel=1e-9) and not res["success"]
    perfect = task.score(_logits_from_probs(np.eye(10)[yt]))
    assert perfect["recall"] == 1.0 and perfect["success"]


# --- adding -----------------------------------------------------------------------------
def _adding_solver(variant):
    """An exact relu RNN: a_t = relu(value + 10 marker - 9 (or - 10)) picks a marked value, b sums the a's."""
    off = -9.0 if variant == "hochreiter" else -10.0
    shift = 2.0 if variant == "hochreiter" else 0.0
    U = np.array([[1.0, 10.0], [0.0, 0.0]])
    W = np.array([[0.0, 0.0], [1.0, 1.0]])
    scale = 0.25 if variant == "hochreiter" else 1.0
    return bptt.RNN(U=U, W=W, V=np.array([[scale, scale]]), b=np.array([off, 0.0]),
                    c=np.array([0.5 - scale * shift if variant == "hochreiter" else 0.0]),
                    activation="relu", head="mse")


def test_adding_hochreiter_sequences():
    T = 40
    task = Adding(T)
    X, y = task.batch(np.random.default_rng(1), 500)
    n = X.shape[1]
    assert T <= n <= T + T // 10
    marks = X[:, :, 1] == 1
    assert np.all(marks.sum(1) == 2)
    first = marks.argmax(1)
    second = n - 1 - marks[:, ::-1].argmax(1)
    assert np.all(first < 10) and np.all(second <= T // 2 - 1)
    assert np.all(np.abs(X[:, :, 0]) <= 1)
    ends = X[:, [0, -1], 1]
    assert np.all((ends == -1) | (ends == 1))
    vals = (X[:, :, 0] * marks).sum(1)
    np.testing.assert_allclose(y[:, -1, 0], 0.5 + vals / 4)
    assert np.all(np.isnan(y[:, :-1]))


@pytest.mark.parametrize("variant", ["hochreiter", "le"])
def test_adding_baseline_and_criterion(variant):
    task = Adding(60, variant=variant, test_size=20000)
    want = (0.9 / 3 + 1 / 3) / 16 if variant == "hochreiter" else 1 / 6
    assert task.baseline == pytest.approx(want, rel=1e-15)
    X, y = task.test_set()
    t = y[:, -1, 0]
    const = 0.5 if variant == "hochreiter" else 1.0  # the memoryless prediction: the target's mean
    Q = np.full(y.shape, const)
    res = task.score(Q)
    se = np.std((t - const) ** 2) / np.sqrt(len(t))
    assert abs(res["mse"] - task.baseline) < 4 * se
    assert not res["success"]
    solved = task.evaluate(_adding_solver(variant))
    assert solved["mse"] < 1e-20 and solved["correct"] == 1.0 and solved["success"]


# --- temporal order -----------------------------------------------------------------------
def test_temporal_order_sequences_baseline_criterion():
    T = 50
    task = TemporalOrder(T, test_size=300)
    x, y = task.batch(np.random.default_rng(2), 400)
    rel = x < 2  # A = 0, B = 1; distractors 2..5
    assert np.all(rel.sum(1) == 2)
    pos = np.nonzero(rel)[1].reshape(-1, 2)
    assert np.all((pos[:, 0] >= T // 10) & (pos[:, 0] < 2 * T // 10))
    assert np.all((pos[:, 1] >= 5 * T // 10) & (pos[:, 1] < 6 * T // 10))
    v = x[rel].reshape(-1, 2)
    np.testing.assert_array_equal(y[:, -1], v[:, 0] + 2 * v[:, 1])
    assert np.all(y[:, :-1] == -1)
    assert task.baseline == pytest.approx(np.log(4), rel=1e-15)
    xt, yt = task.test_set()
    uniform = task.score(np.zeros(xt.shape + (4,)))
    assert uniform["loss"] == pytest.approx(np.log(4), rel=1e-12) and not uniform["success"]
    Q = np.zeros(xt.shape + (4,))
    Q[np.arange(len(yt)), -1, yt[:, -1]] = 20.0
    assert task.score(Q)["success"]
    Q[0, -1] = np.roll(Q[0, -1], 1)  # one mistake fails the criterion
    assert not task.score(Q)["success"]


# --- Reber ----------------------------------------------------------------------------------
def test_reber_strings_follow_the_grammar():
    rng = np.random.default_rng(3)
    for _ in range(200):
        s, legal = reber_string(rng)
        assert s[0] == "B" and s[-1] == "E" and s[1] == s[-2] and s[1] in "TP" and s[2] == "B"
        assert all(s[i + 1] in legal[i] for i in range(len(s) - 1)) and legal[-1] == {"B"}
        state, inner = 1, s[3:-2]  # walk the inner string through the graph
        for c in inner:
            nxt = dict(GRAPH[state])
            assert c in nxt
            state = nxt[c]
        assert state is None


def test_reber_baseline_and_criterion():
    task = Reber(train_strings=50, test_strings=200)
    x, y = task.test_set()
    syms = "BTPSXVE"
    oracle = np.zeros((1, y.shape[1], 7))
    for i, legal in enumerate(task.test_legal[:-1]):
        for c in legal:
            oracle[0, i, syms.index(c)] = 1 / len(legal)
    res = task.score(_logits_from_probs(oracle))
    assert res["loss"] == pytest.approx(task.optimal_loss(), rel=1e-9) and res["success"]
    # the memoryless predictor: 1/2 on T and P at each string's penultimate position
    forgetful = oracle.copy()
    ends = np.append(task.test_starts[1:], len(task.test_legal)) - 3
    forgetful[0, ends] = 0
    forgetful[0, ends, 1] = forgetful[0, ends, 2] = 0.5
    res = task.score(_logits_from_probs(forgetful))
    assert res["loss"] == pytest.approx(task.baseline, rel=1e-9)
    want = task.optimal_loss() + len(task.test_starts) * np.log(2) / (len(task.test_legal) - 1)
    assert task.baseline == pytest.approx(want, rel=1e-12)
    assert not res["success"]


# --- characters -----------------------------------------------------------------------------
def test_conditional_entropy_by_hand():
    assert conditional_entropy(np.array([0, 0, 1]), 2) == pytest.approx(np.log(2))
    assert conditional_entropy(np.array([0, 1, 0, 1, 0]), 2) == pytest.approx(0.0)


def test_char_baseline_is_the_best_bigram_predictor():
    rng = np.random.default_rng(4)
    text = "".join(rng.choice(list("abcde"), size=3000, p=[0.4, 0.3, 0.1, 0.1, 0.1]))
    task = CharLM(text, test_rows=1)
    x, y = task.test_set()
    counts = np.zeros((5, 5))
    np.add.at(counts, (x[0], y[0]), 1)
    P = counts / counts.sum(1, keepdims=True)
    res = task.score(_logits_from_probs(P[x]))
    assert res["loss"] == pytest.approx(task.baseline, rel=1e-9)
    assert task.chance == pytest.approx(np.log(5))


def test_sampling_at_low_temperature_is_greedy():
    V = 5
    vocab = Vocab("abcde")
    # a model whose state is the one-hot input and whose output favours the next letter
    shift = np.roll(np.eye(V), 1, axis=0)
    m = bptt.RNN(U=np.eye(V) * 5, W=np.zeros((V, V)), V=shift * 10, activation="tanh")
    assert sample(m, vocab, 7, seed=0, start="a", temperature=0.01) == "bcdeabc"
    s1 = sample(m, vocab, 50, seed=1, temperature=5.0)
    assert s1 == sample(m, vocab, 50, seed=1, temperature=5.0) and len(set(s1)) > 2
    with pytest.raises(ValueError, match="temperature must be positive"):
        sample(m, vocab, 5, seed=0, temperature=0)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        sample(m, vocab, 5, seed=0, start="z")


def test_sampling_from_an_lstm_carries_h_and_c():
    from bptt import LSTM

    V = 5
    vocab = Vocab("abcde")
    # gates i, o open and f shut (biases +-20), g = tanh(5 x_t): the state is the input letter
    U = np.concatenate([np.zeros((V, V)), np.zeros((V, V)), 5 * np.eye(V), np.zeros((V, V))])
    b = np.concatenate([np.full(V, 20.0), np.full(V, -20.0), np.zeros(V), np.full(V, 20.0)])
    m = LSTM(U=U, W=np.zeros((4 * V, V)), V=np.roll(np.eye(V), 1, axis=0) * 10, b=b)
    assert sample(m, vocab, 7, seed=0, start="ca", temperature=0.01) == "bcdeabc"
    # with the forget gate open the cell remembers every letter: priming by text equals priming by
    # the state (h, c) the text leaves, and differs from no priming
    m = m.replace(b=np.concatenate([np.zeros(V), np.full(V, 20.0), np.zeros(V), np.zeros(V)]))
    h = bptt.forward(m, vocab.encode("ddc")).final
    assert isinstance(h, tuple) and len(h) == 2
    assert sample(m, vocab, 30, seed=3, start="ddca") == sample(m, vocab, 30, seed=3, start="a", h0=h)
    assert sample(m, vocab, 30, seed=3, start="ddca") != sample(m, vocab, 30, seed=3, start="a")


def test_make_and_errors():
    assert isinstance(tasks.make("copy", length=5), Copy)
    with pytest.raises(ValueError, match="unknown task 'parity'"):
        tasks.make("parity")
    with pytest.raises(ValueError, match="adding variant"):
        Adding(50, variant="sum")
    with pytest.raises(ValueError, match="length must be an integer"):
        Copy(0)
