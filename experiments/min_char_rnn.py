"""min-char-rnn's algorithm, as Andrej Karpathy wrote it (BSD license, https://gist.github.com/karpathy/d4dee566867f8291f086),
ported to Python 3 and wrapped in functions so that the parity experiment can time it and compare its
loss curve with `bptt train`. The training step (lossFun), the Adagrad update, the element-wise clipping
to [-5, 5], the hprev carry, the pointer reset and the smoothed loss are his, line for line; only the
global state became arguments and np.random became a seeded Generator.
"""
import numpy as np


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by, vocab_size):
    """inputs, targets are both list of integers; hprev is Hx1 array of initial hidden state.
    returns the loss, gradients on model parameters, and last hidden state"""
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)  # clip to mitigate exploding gradients
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def init(hidden_size, vocab_size, seed):
    """Karpathy's initialisation: randn * 0.01 for the weights, zero biases."""
    rng = np.random.default_rng(seed)
    Wxh = rng.standard_normal((hidden_size, vocab_size)) * 0.01  # input to hidden
    Whh = rng.standard_normal((hidden_size, hidden_size)) * 0.01  # hidden to hidden
    Why = rng.standard_normal((vocab_size, hidden_size)) * 0.01  # hidden to output
    bh = np.zeros((hidden_size, 1))  # hidden bias
    by = np.zeros((vocab_size, 1))  # output bias
    return Wxh, Whh, Why, bh, by


def train(data_ids, vocab_size, steps, hidden_size=100, seq_length=25, learning_rate=1e-1, seed=0, params=None):
    """Karpathy's main loop for `steps` iterations; returns (smoothed losses, losses, params)."""
    Wxh, Whh, Why, bh, by = params if params is not None else init(hidden_size, vocab_size, seed)
    n, p = 0, 0
    mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    mbh, mby = np.zeros_like(bh), np.zeros_like(by)  # memory variables for Adagrad
    smooth_loss = -np.log(1.0 / vocab_size) * seq_length  # loss at iteration 0
    smooth, losses = [], []
    while n < steps:
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + seq_length + 1 >= len(data_ids) or n == 0:
            hprev = np.zeros((hidden_size, 1))  # reset RNN memory
            p = 0  # go from start of data
        inputs = data_ids[p:p + seq_length]
        targets = data_ids[p + 1:p + seq_length + 1]
        # forward seq_length characters through the net and fetch gradient
        loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by, vocab_size)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        smooth.append(smooth_loss)
        losses.append(loss)
        # perform parameter update with Adagrad
        for param, dparam, mem in zip([Wxh, Whh, Why, bh, by],
                                      [dWxh, dWhh, dWhy, dbh, dby],
                                      [mWxh, mWhh, mWhy, mbh, mby]):
            mem += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(mem + 1e-8)  # adagrad update
        p += seq_length  # move data pointer
        n += 1  # iteration counter
    return np.array(smooth), np.array(losses), (Wxh, Whh, Why, bh, by)
