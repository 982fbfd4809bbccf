"""Stacked and bidirectional torch.nn.RNN, nn.LSTM and nn.GRU as a bptt.Stack, and back.

PyTorch names layer k's weights weight_ih_lk, weight_hh_lk, bias_ih_lk, bias_hh_lk, and the reverse
direction's the same with the suffix _reverse; bptt's Stack names them U_lk, W_lk, b_lk, bh_lk (and
U_lk_reverse, ...), the same arrays in the same layout. Every layer keeps PyTorch's two biases apart
(an nn.RNN's too: the Elman cell's optional bh), so that each gets the gradient PyTorch gives it and
to_torch(stack.replace(**grads.params)) puts dE/dweight where PyTorch's .grad would be.

Dropout between layers exists in training mode only: a module in training mode with dropout > 0 is
refused (its output is random); in eval mode the dropout does nothing, and from_torch says so with a
warning. proj_size (an LSTM's projection of h) has no bptt counterpart and is refused.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..model import model_class
from ..stack import Stack

KINDS = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}  # the torch.nn module -> bptt's cell
MODULES = {cell: kind for kind, cell in KINDS.items()}


def torch_dtype(torch, dtype, what):
    known = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    if dtype not in known:
        raise ValueError(f"{what} needs a float32 or float64 model, got {dtype}")
    return known[dtype]


def expressible(model):
    """A ValueError for a model (or layer) of rnn, lstm or gru that no torch.nn module computes:
    nn.RNN has tanh and relu only, nn.GRU the reset-after form only."""
    if model.cell.name == "rnn" and model.activation not in ("tanh", "relu"):
        raise ValueError(f"torch.nn.RNN supports the nonlinearities 'tanh' and 'relu' only; this model uses "
                         f"{model.activation!r}, which it cannot express")
    if model.cell.name == "gru" and not model.reset_after:
        raise ValueError("torch.nn.GRU computes the reset gate after W_n h (reset_after=True) only; this GRU has "
                         "reset_after=False, which PyTorch has no module for")


def from_torch(module, linear, head="softmax"):
    """A bptt.Stack from a multi-layer or bidirectional nn.RNN / nn.LSTM / nn.GRU and its nn.Linear."""
    kind = type(module).__name__
    if module.dropout and module.training:
        raise ValueError(f"this nn.{kind} has dropout={module.dropout} between its layers and is in training mode, "
                         "where its output is random: call module.eval() first (dropout then does nothing)")
    if module.dropout:
        warnings.warn(f"the nn.{kind}'s dropout={module.dropout} is ignored: the module is in eval mode, where "
                      "dropout does nothing", stacklevel=3)

    c = linear.bias.detach().cpu().numpy().copy() if linear.bias is not None else None
    return Stack(layers(module)[0], linear.weight.detach().cpu().numpy().copy(), c, head)


def layers(module):
    """(the module's layers as pairs of bptt layers, {bptt's flat name: PyTorch's name})."""
    arrays = {k: v.detach().cpu().numpy().copy() for k, v in module.named_parameters()}
    kind = type(module).__name__
    return layers_of(arrays, KINDS[kind], module.num_layers, module.bidirectional, module.bias,
                     module.nonlinearity if kind == "RNN" else None)


def layers_of(arrays, cell, num_layers, bidirectional, bias, nonlinearity=None):
    """(the layers as pairs of bptt layers, {bptt's flat name: PyTorch's name}) from a module's
    parameters by PyTorch's names (weight_ih_l0, ...; NumPy arrays): cell rnn, lstm or gru, and for
    rnn its nonlinearity."""
    cls = model_class(cell)
    settings = {"activation": nonlinearity} if cell == "rnn" else {}
    pairs, names = [], {}
    for k in range(num_layers):
        pair = []
        for j in range(2 if bidirectional else 1):
            s = f"_l{k}" + ("_reverse" if j else "")
            p = {"U": arrays["weight_ih" + s], "W": arrays["weight_hh" + s]}
            names.update({f"U{s}": f"weight_ih{s}", f"W{s}": f"weight_hh{s}"})
            if bias:
                p.update(b=arrays["bias_ih" + s], bh=arrays["bias_hh" + s])
                names.update({f"b{s}": f"bias_ih{s}", f"bh{s}": f"bias_hh{s}"})
            pair.append(cls(**p, **settings, head=None))
        pairs.append(tuple(pair))
    return pairs, names


def to_torch(stack):
    """(module, nn.Linear) holding a stack's weights: one nn.RNN / nn.LSTM / nn.GRU with num_layers
    = its depth, batch_first=True, bidirectional when its layers are, in the stack's dtype."""
    import torch

    first = stack.layers[0][0]
    cell = first.cell
    for k, j, m in stack.entries:
        if m.cell.name != cell.name or m.cell.values != cell.values or m.H != first.H:
            raise ValueError(f"torch.nn.{MODULES.get(cell.name, 'RNN')} has one cell and one hidden size for every "
                             f"layer; layer {k} is {m!r}, layer 0 {first!r}")
    if len(set(stack.directions)) != 1:
        raise ValueError("torch's recurrent modules are bidirectional in every layer or in none; this stack mixes "
                         f"them ({stack.directions})")
    if cell.name not in MODULES:
        raise ValueError(f"torch.nn has no layer for the {cell.name} cell; to_torch exports rnn, lstm and gru")
    expressible(first)
    dtype = torch_dtype(torch, stack.dtype, "to_torch")
    has_bias = any(k in m.params for _, _, m in stack.entries for k in ("b", "bh"))
    extra = {"nonlinearity": first.activation} if cell.name == "rnn" else {}
    module = getattr(torch.nn, MODULES[cell.name])(first.D, first.H, num_layers=stack.depth, bias=has_bias,
                                                   batch_first=True, bidirectional=stack.directions[0] == 2,
                                                   dtype=dtype, **extra)
    linear = torch.nn.Linear(stack.V.shape[1], stack.O, bias=stack.c is not None, dtype=dtype)
    with torch.no_grad():
        for k, j, m in stack.entries:
            s = f"_l{k}" + ("_reverse" if j else "")
            getattr(module, "weight_ih" + s).copy_(torch.from_numpy(np.array(m.U)))
            getattr(module, "weight_hh" + s).copy_(torch.from_numpy(np.array(m.W)))
            for name, key in (("bias_ih", "b"), ("bias_hh", "bh")):
                if has_bias:
                    v = m.params.get(key)
                    getattr(module, name + s).copy_(torch.from_numpy(np.array(v)) if v is not None else 0)
        linear.weight.copy_(torch.from_numpy(np.array(stack.V)))
        if stack.c is not None:
            linear.bias.copy_(torch.from_numpy(np.array(stack.c)))
    return module, linear
