"""The embedded Reber grammar (Cleeremans et al. 1989; Hochreiter & Schmidhuber 1997, experiment 1).

A Reber string walks this graph from B to E, taking each of two edges with probability 1/2:

    0 -B-> 1;  1 -T-> 2, 1 -P-> 3;  2 -S-> 2, 2 -X-> 4;  3 -T-> 3, 3 -V-> 5;
    4 -X-> 3, 4 -S-> 6;  5 -P-> 4, 5 -V-> 6;  6 -E-> end

An embedded string is B, T or P, a Reber string, the same T or P again, E. The second symbol is a
long-range dependency: to predict the penultimate symbol the network must remember it across the
whole inner string. The built-in corpus is a stream of embedded strings (7 symbols: B T P S X V E).

At every position the legal next symbols form a set of one or two; each legal choice has
probability 1/2 when there are two. Hence:
- the best possible loss is mean ln |legal set| per symbol;
- the memoryless baseline (a predictor that knows the grammar but not the second symbol) pays
  ln 2 more at the penultimate position of each string;
- the published criterion (Hochreiter & Schmidhuber 1997): a string is predicted correctly when at
  every position the |legal| most probable symbols are exactly the legal ones; success when every
  held-out string is.
"""
from __future__ import annotations

import numpy as np

from .base import Task
from ..heads import log_softmax
from .text import Vocab
from ..validate import integer, rng, too_big

SYMBOLS = "BTPSXVE"
MEAN_LENGTH = 12  # symbols in an embedded Reber string, on average (for the element limit)
GRAPH = {1: (("T", 2), ("P", 3)), 2: (("S", 2), ("X", 4)), 3: (("T", 3), ("V", 5)),
         4: (("X", 3), ("S", 6)), 5: (("P", 4), ("V", 6)), 6: (("E", None),)}


def reber_string(rng):
    """(string, legal) for one embedded Reber string; legal[i] is the set of symbols that may follow
    position i (the last one's set is {"B"}, the start of the next string in a stream)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    outer = "T" if rng.integers(2) == 0 else "P"
    s, legal = ["B", outer, "B"], [{"T", "P"}, {"B"}]
    state = 1
    while state is not None:
        edges = GRAPH[state]
        legal.append({c for c, _ in edges})
        c, state = edges[int(rng.integers(len(edges)))]
        s.append(c)
    legal.append({outer})  # after the inner E: the second symbol again
    s.append(outer)
    legal.append({"E"})
    s.append("E")
    legal.append({"B"})
    return "".join(s), legal


class Reber(Task):
    name = "reber"
    kind = "stream"
    reduction = "sum"
    D = O = len(SYMBOLS)
    criterion = ("every held-out string predicted correctly: at each position the |legal| most probable "
                 "symbols are the legal next symbols (Hochreiter & Schmidhuber 1997)")
    baseline_text = "the grammar's own probabilities, but 1/2 for the remembered T/P: mean nats per symbol"
    defaults = {"hidden": 20, "activation": "tanh", "init": "normal", "std": 0.1, "optimizer": "adam",
                "lr": 0.01, "clip_norm": 1.0, "batch": 8, "chunk": 25, "steps": 2000}

    def __init__(self, train_strings=3000, test_strings=300, seed=0, test_seed=1234):
        n = integer("train_strings", train_strings, low=1) + integer("test_strings", test_strings, low=1)
        too_big(f"a Reber corpus of {n} strings (about {MEAN_LENGTH} symbols each)", n * MEAN_LENGTH)
        self.vocab = Vocab(SYMBOLS)
        self.train_ids = self._stream(rng(seed), int(train_strings))[0]
        self.test_ids, self.test_legal, self.test_starts = self._stream(rng(test_seed, "test_seed"), int(test_strings))

    def _stream(self, rng, n):
        text, legal, starts = [], [], []
        pos = 0
        for _ in range(n):
            s, lg = reber_string(rng)
            starts.append(pos)
            text.append(s)
            legal += lg
            pos += len(s)
        return self.vocab.encode("".join(text)), legal, np.array(starts)

    def optimal_loss(self):
        """Mean ln |legal set| over the held-out stream's predictions (the best any model can do)."""
        sizes = np.array([len(l) for l in self.test_legal[:-1]])
        return float(np.mean(np.log(sizes)))

    @property
    def baseline(self):
        n = len(self.test_legal) - 1
        return self.optimal_loss() + len(self.test_starts) * np.log(2) / n

    def stream(self, N):
        L = len(self.train_ids) // N
        return self.train_ids[:N * L].reshape(N, L)

    def test_set(self):
        return self.test_ids[None, :-1], self.test_ids[None, 1:]

    def probe(self):
        n = int(self.test_starts[min(5, len(self.test_starts) - 1)])
        return self.test_ids[:n], self.test_ids[1:n + 1]

    def score(self, Q):
        x, y = self.test_set()
        logp = log_softmax(Q[0])
        loss = float(-np.take_along_axis(logp, y[0][:, None], axis=-1).mean())
        order = np.argsort(-logp, axis=-1)
        ok = np.empty(len(logp), dtype=bool)
        for i, legal in enumerate(self.test_legal[:-1]):
            ok[i] = {SYMBOLS[j] for j in order[i, :len(legal)]} == legal
        ends = np.append(self.test_starts[1:], len(ok))
        strings = np.array([ok[a:b].all() for a, b in zip(self.test_starts, ends)])
        return {"loss": loss, "strings_correct": float(strings.mean()), "success": bool(strings.all())}
