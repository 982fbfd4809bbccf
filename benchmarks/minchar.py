"""Part 3: a min-char-rnn training step, bptt vs min-char-rnn's own loop.

The reference is Andrej Karpathy's min-char-rnn.py ("Minimal character-level Vanilla RNN model",
BSD License, https://gist.github.com/karpathy/d4dee566867f8291f086): its lossFun (from
experiments/min_char_rnn.py) and its Adagrad update below are his code, changed only as Python 3
needs (range for xrange) and to take the weights as arguments instead of globals. One training step = lossFun on the next chunk of 25
characters (forward, backward, clipping every gradient element into [-5, 5]) + the Adagrad update
of the five parameters, hidden size 100, batch 1, the hidden state carried from chunk to chunk.

The same step with bptt: bptt.forward + bptt.backward (the hidden state carried as h0), then
bptt.train.clip_by_value(grads, 5) and bptt.train.adagrad(0.1). The text is encoded to ids once
for both (min-char-rnn encodes each chunk inside its loop, which is not the algorithm under test).
Before timing, 20 steps of each from the same weights are compared: same parameters to 1e-10.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import bptt

from .harness import fmt_time, interleaved

HIDDEN, SEQ, LR = 100, 25, 1e-1
SHAKESPEARE = Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare.txt"


# --- min-char-rnn (Karpathy), the reference: experiments/min_char_rnn.py, line for line ----------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from min_char_rnn import lossFun  # noqa: E402  (the same file the parity experiment runs)


class MinCharRNN:
    """min-char-rnn's training loop, one step per call (its main loop, less the sampling)."""

    def __init__(self, params, data):
        self.params = [p.copy() for p in params]  # Wxh, Whh, Why, bh, by
        self.mems = [np.zeros_like(p) for p in self.params]  # memory variables for Adagrad
        self.data, self.p, self.hprev = data, 0, np.zeros((HIDDEN, 1))

    def step(self):
        data, p, seq_length = self.data, self.p, SEQ
        if p + seq_length + 1 >= len(data):
            self.hprev = np.zeros((HIDDEN, 1))  # reset RNN memory
            p = 0  # go from start of data
        inputs = data[p:p + seq_length]
        targets = data[p + 1:p + seq_length + 1]
        loss, dWxh, dWhh, dWhy, dbh, dby, self.hprev = lossFun(inputs, targets, self.hprev, *self.params,
                                                                          self.params[0].shape[1])
        # perform parameter update with Adagrad
        for param, dparam, mem in zip(self.params, [dWxh, dWhh, dWhy, dbh, dby], self.mems):
            mem += dparam * dparam
            param += -LR * dparam / np.sqrt(mem + 1e-8)  # adagrad update
        self.p = p + seq_length  # move data pointer
        return loss


# --- the same step with bptt --------------------------------------------------------------------
class BpttStep:
    def __init__(self, params, data):
        from bptt.train import adagrad
        Wxh, Whh, Why, bh, by = params
        self.model = bptt.RNN(U=Wxh, W=Whh, V=Why, b=bh[:, 0], c=by[:, 0])
        self.opt = adagrad(LR)
        self.state = self.opt.init(self.model.params)
        self.data, self.p, self.h = np.asarray(data), 0, None

    def step(self):
        from bptt.train import clip_by_value
        p = self.p
        if p + SEQ + 1 >= len(self.data):
            self.h, p = None, 0
        x, y = self.data[p:p + SEQ], self.data[p + 1:p + SEQ + 1]
        trace = bptt.forward(self.model, x, self.h)
        loss, g = bptt.backward(trace, y)
        grads = clip_by_value(g.params, 5)
        params, self.state = self.opt.update(grads, self.state, self.model.params)
        self.model = self.model.replace(**params)
        self.h, self.p = trace.final, p + SEQ
        return loss

    @property
    def params(self):
        m = self.model
        return [m.U, m.W, m.V, m.b[:, None], m.c[:, None]]

    def copy_from(self, ref: MinCharRNN):
        """Take the reference's weights, Adagrad memories, hidden state and position."""
        Wxh, Whh, Why, bh, by = ref.params
        self.model = bptt.RNN(U=Wxh, W=Whh, V=Why, b=bh[:, 0], c=by[:, 0])
        self.state = {"mem": {k: m[:, 0].copy() if k in "bc" else m.copy()
                              for k, m in zip("UWVbc", ref.mems)}}
        self.h, self.p = ref.hprev[:, 0].copy(), ref.p


def corpus():
    """(ids, where from): data/tinyshakespeare.txt when it is there, else seeded random characters."""
    if SHAKESPEARE.exists():
        text = SHAKESPEARE.read_text()[:200_000]
        chars = sorted(set(text))
        ix = {ch: i for i, ch in enumerate(chars)}
        return [ix[ch] for ch in text], len(chars), "tinyshakespeare"
    rng = np.random.default_rng(0)
    return rng.integers(0, 65, 200_000).tolist(), 65, "random characters (tinyshakespeare not found)"


def init(vocab, seed=0):
    rng = np.random.default_rng(seed)  # min-char-rnn: randn * 0.01, zero biases
    return [rng.standard_normal((HIDDEN, vocab)) * 0.01, rng.standard_normal((HIDDEN, HIDDEN)) * 0.01,
            rng.standard_normal((vocab, HIDDEN)) * 0.01, np.zeros((HIDDEN, 1)), np.zeros((vocab, 1))]


def run(report, *, rounds):
    data, vocab, where = corpus()
    print(f"\n== 3. min-char-rnn training step (H = {HIDDEN}, chunks of {SEQ}, batch 1, Adagrad, clipping; "
          f"{where}, {vocab} characters) ==")
    params = init(vocab)
    ref, ours = MinCharRNN(params, data), BpttStep(params, data)
    # same update: before each of 20 steps bptt takes min-char-rnn's state, then both step. (Run
    # apart, the two drift: Adagrad at lr 0.1 amplifies rounding differences of 1e-16 in the
    # gradients to about 1e-7 after 20 steps, so the check is step by step.)
    worst = lw = 0.0
    for _ in range(20):
        ours.copy_from(ref)
        la, lb = ref.step(), ours.step()
        lw = max(lw, abs(la - lb) / la)
        worst = max(worst, *(float(np.max(np.abs(a - b)) / np.max(np.abs(a))) for a, b in zip(ref.params, ours.params)))
    print(f"   one step from the same state, 20 times: parameters differ by at most {worst:.1e} "
          f"(relative to the largest), losses by {lw:.1e}")
    report.target("minchar", "parameter difference after one step", worst, 1e-10)
    ref, ours = MinCharRNN(params, data), BpttStep(params, data)
    t = interleaved({"min-char-rnn": ref.step, "bptt": ours.step}, rounds=rounds)
    speedup = t["min-char-rnn"].median / t["bptt"].median
    print(f"   per step: min-char-rnn {fmt_time(t['min-char-rnn'].median)}, bptt {fmt_time(t['bptt'].median)}: "
          f"bptt is {speedup:.1f}x faster")
    report.record(part="minchar", minchar_s=t["min-char-rnn"].median, bptt_s=t["bptt"].median, speedup=speedup)
    report.target("minchar", "min-char-rnn / bptt time per step", speedup, 2.0, ">=")
