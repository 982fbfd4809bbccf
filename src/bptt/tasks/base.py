"""What every task provides to the training loop.

A task is either a set of independent sequences (adding, copy, temporal order: a fresh batch each
step, kind "sequences") or one long token stream (character language models, the Reber grammar:
truncated BPTT with the state carried, kind "stream"). Each has:

- D, O, head: the model's input size, output size and head ("softmax" or "mse");
- a fixed held-out test set generated from its own seed, never from the training generator;
- baseline: the loss of the best memoryless predictor, in the units of `evaluate`'s "loss"
  (mean loss per scored step), with `baseline_text` saying what it is;
- criterion: the published success criterion, in words, and `evaluate(model)` -> dict with "loss",
  task-specific measures and "success" (bool);
- defaults: the settings of the paper the task comes from, used where the command line is silent.
"""
from __future__ import annotations

import numpy as np

from ..backend import forward
from ..validate import integer, too_big


class Task:
    name = "task"
    kind = "sequences"  # or "stream"
    head = "softmax"
    reduction = "mean"  # the training objective: mean over scored steps, or "sum" over time / N
    D = O = 0
    criterion = ""
    baseline_text = ""
    defaults: dict = {}

    @property
    def baseline(self) -> float:
        raise NotImplementedError

    def batch(self, rng, N):
        """(x, y) for N fresh training sequences (kind "sequences")."""
        raise NotImplementedError

    def test_set(self):
        """(x, y): the fixed held-out set, drawn once (make_test_set) and kept."""
        if getattr(self, "_test", None) is None:
            self._test = self.make_test_set()
        return self._test

    def make_test_set(self):
        """test_size sequences drawn by batch() from test_seed, for tasks that generate sequences."""
        return self.batch(np.random.default_rng(self.test_seed), self.test_size)

    def probe(self):
        """(x, y): one test sequence, for the lag analysis (bptt.flow)."""
        x, y = self.test_set()
        return x[0], y[0]

    def score(self, Q) -> dict:
        """Measures from outputs Q (N, T, O) (q_t, logits for softmax) on the test set: "loss",
        task-specific measures, "success" (the criterion)."""
        raise NotImplementedError

    def evaluate(self, model) -> dict:
        """score() of the model's outputs on the held-out set."""
        x, _ = self.test_set()
        return self.score(forward(model, x).q.reshape(len(x), -1, model.O))

    def describe(self) -> str:
        return (f"{self.name}: D = {self.D}, O = {self.O}, head {self.head}\n"
                f"  memoryless baseline: {self.baseline:.6g} ({self.baseline_text})\n"
                f"  success criterion: {self.criterion}")


def check_length(name, T, minimum):
    return integer(name, T, low=minimum)


def check_test_set(test_size, test_seed, T):
    """(test_size, test_seed) as integers, test_size >= 1 sequences of about T steps within the
    element limit; else a ValueError naming the setting."""
    n, seed = integer("test_size", test_size, low=1), integer("test_seed", test_seed, low=0)
    too_big(f"a test set of {n} sequences of {T} steps", n * T)
    return n, seed
