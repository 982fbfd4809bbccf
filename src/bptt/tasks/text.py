"""Character language models on a text (min-char-rnn), and sampling at a temperature.

The vocabulary is the sorted set of characters of the whole text; the text after the first
1 - test_fraction of it (at most max_test characters) is held out and read as test_rows streams. The model reads character t and predicts character t + 1; training runs truncated
BPTT over the stream with the state carried (min-char-rnn: chunks of 25, hprev).

Baselines (nats per character, on the held-out text):
- chance: ln V;
- memoryless: H(x_{t+1} | x_t), the conditional entropy of the held-out text's character pairs: no
  model that sees only the current character (no state) can do better on that text.
There is no published success criterion for a character model; a run counts as a success here
when its held-out loss is below the memoryless baseline (it uses its state).
"""
from __future__ import annotations


import numpy as np

from ..files import read_text
from .base import Task
from ..backend import forward
from ..heads import log_softmax
from ..validate import a_network, integer, rng as validate_rng, show, too_big


class Vocab:
    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return np.array([self.index[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"character {show(e.args[0])} is not in the model's vocabulary of "
                             f"{len(self.chars)} characters") from None

    def decode(self, ids):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size and (ids.dtype.kind not in "iu"
                                          or not 0 <= ids.min() <= ids.max() < len(self.chars)):
            raise ValueError(f"ids must be integers in 0..{len(self.chars) - 1} (the vocabulary), got {show(ids)}")
        return "".join(self.chars[int(i)] for i in ids)


def conditional_entropy(ids, V) -> float:
    """H(x_{t+1} | x_t) in nats of the pairs in ids (the best loss of a memoryless predictor)."""
    V = integer("V", V, low=1)
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"ids must be a sequence of integers in 0..V-1 = {V - 1}, got {show(ids)}")
    ids = ids.astype(np.int64)
    too_big(f"row counts of a vocabulary of V = {V}", V)  # the limit also keeps the pair codes a V + b in int64
    pairs, counts = np.unique(ids[:-1] * V + ids[1:], return_counts=True)  # the pairs that occur, never V x V
    row = np.bincount(pairs // V, weights=counts, minlength=V)
    return float(-(counts * np.log(counts / row[pairs // V])).sum() / counts.sum())


MAX_TEXT_BYTES = 100_000_000


class CharLM(Task):
    name = "char"
    kind = "stream"
    reduction = "sum"
    criterion = ("no published criterion; success here: held-out loss below the memoryless baseline")
    baseline_text = "H(next | current character) of the held-out text"
    defaults = {"hidden": 100, "activation": "tanh", "init": "normal", "std": 0.01, "optimizer": "adagrad",
                "lr": 0.1, "clip_value": 5.0, "batch": 1, "chunk": 25, "steps": 2000}

    def __init__(self, text, test_fraction=0.1, source="text", probe_length=200, max_test=20000, test_rows=10):
        if not isinstance(text, str) or len(text) < 100:
            raise ValueError(f"a character model needs a text of at least 100 characters, got "
                             f"{len(text) if isinstance(text, str) else type(text).__name__}")
        if not 0 < test_fraction < 0.5:
            raise ValueError(f"test_fraction must lie in (0, 0.5), got {show(test_fraction)}")
        max_test, test_rows = integer("max_test", max_test, low=1), integer("test_rows", test_rows, low=1)
        probe_length = integer("probe_length", probe_length, low=1)
        self.source = source
        self.vocab = Vocab(sorted(set(text)))
        self.D = self.O = len(self.vocab)
        ids = self.vocab.encode(text)
        cut = int(len(ids) * (1 - test_fraction))
        self.train_ids, self.test_ids = ids[:cut], ids[cut:cut + max_test]
        self.probe_length, self.test_rows = probe_length, max(1, min(test_rows, len(self.test_ids) // 50))

    @classmethod
    def from_file(cls, path, **kw):
        text = read_text(path, "the text file", MAX_TEXT_BYTES)
        return cls(text, source=str(path), **kw)

    @property
    def baseline(self):
        return conditional_entropy(self.test_ids, self.D)

    @property
    def chance(self):
        return float(np.log(self.D))

    def stream(self, N):
        """The training text as N parallel streams (N, L), L = len // N."""
        L = len(self.train_ids) // N
        if L < 3:
            raise ValueError(f"the training text ({len(self.train_ids)} characters) is too short for {N} streams")
        return self.train_ids[:N * L].reshape(N, L)

    def test_set(self):
        """The held-out text as test_rows streams of equal length (each starts from a zero state)."""
        L = (len(self.test_ids) - 1) // self.test_rows
        x = self.test_ids[:self.test_rows * L].reshape(self.test_rows, L)
        y = self.test_ids[1:self.test_rows * L + 1].reshape(self.test_rows, L)
        return x, y

    def probe(self):
        n = min(self.probe_length, len(self.test_ids) - 1)
        return self.test_ids[:n], self.test_ids[1:n + 1]

    def score(self, Q):
        x, y = self.test_set()
        logp = log_softmax(Q)
        loss = float(-np.take_along_axis(logp, y[..., None], axis=-1).mean())
        return {"loss": loss, "success": loss < self.baseline}

    def describe(self):
        return (super().describe() + f"\n  chance: ln V = {self.chance:.6g}; text: {self.source}, "
                f"{len(self.train_ids)} training and {len(self.test_ids)} held-out characters, V = {self.D}")


def sample(model, vocab: Vocab, n, *, seed, start=None, temperature=1.0, h0=None) -> str:
    """n characters drawn from the model: p = softmax(q / temperature), fed back as the next input.

    start: a string to prime the state with (its last character is the first input); default the
    vocabulary's first character. temperature -> 0 is greedy, 1 the model's own distribution.
    model: any kind (RNN, LSTM, GRU), or a unidirectional bptt.Stack; h0: the initial state ((h0,
    c0) for an LSTM; a stack's (L, H) per entry), zeros if None.
    """
    a_network(model)
    if any(len(pair) > 1 for pair in getattr(model, "layers", ())):
        raise ValueError("sampling feeds each drawn character back as the next input, forward in time; a "
                         "bidirectional stack reads the inputs after each step, so it cannot sample")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a bptt.tasks.Vocab, got {type(vocab).__name__}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {show(temperature)}")
    n = integer("the number of characters n", n, low=0)
    too_big(f"a sample of {n} characters", n)
    if model.head != "softmax" or model.D != len(vocab) or model.O != len(vocab):
        raise ValueError(f"sampling needs a softmax model with D = O = {len(vocab)} (the vocabulary), "
                         f"got {model!r}")
    rng = validate_rng(seed)
    prime = vocab.encode(start) if start else np.array([0])
    as_state = lambda a: np.asarray(a, dtype=model.dtype)  # noqa: E731
    h = None if h0 is None else tuple(map(as_state, h0)) if isinstance(h0, tuple) else as_state(h0)
    if len(prime) > 1:
        h = forward(model, prime[:-1], h).final
    x = int(prime[-1])
    out = []
    for _ in range(int(n)):
        tr = forward(model, np.array([x]), h)
        h = tr.final
        logp = log_softmax(tr.Q[0, 0].astype(np.float64) / temperature)
        x = int(rng.choice(len(vocab), p=np.exp(logp) / np.exp(logp).sum()))
        out.append(x)
    return vocab.decode(out)
