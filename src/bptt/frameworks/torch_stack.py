"""Stacked and bidirectional torch.nn recurrent modules (nn.RNN, nn.LSTM, nn.GRU: every cell whose
declaration names one, Cell.torch) as a bptt.Stack, and back.

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

from .. import cells
from ..model import model_class
from ..stack import Stack
from ..validate import listed


def kinds() -> dict:
    """{torch.nn module's name: bptt's cell name}, from the registry (Cell.torch)."""
    return {module: cell.name for module, cell in cells.layers("torch").items()}


def module_name(cell) -> str | None:
    """The torch.nn module's name for a bptt cell's name (Cell.torch), or None."""
    return cells.get(cell).torch if cell in cells.names() else None


def modules(torch) -> tuple:
    """The torch.nn module classes bptt maps (nn.RNN, ...), in registry order."""
    return tuple(getattr(torch.nn, name) for name in cells.layers("torch"))


def named_modules() -> str:
    """ "nn.RNN, nn.LSTM or nn.GRU": the modules bptt maps, for messages."""
    return listed(cells.layers("torch"), "nn.")


def torch_dtype(torch, dtype, what):
    known = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    if dtype not in known:
        raise ValueError(f"{what} needs a float32 or float64 model, got {dtype}")
    return known[dtype]


def expressible(model):
    """A ValueError for a model (or layer) that no torch.nn module computes: a cell without one, or
    settings its module lacks (Cell.torch_allows: nn.RNN has tanh and relu only, nn.GRU the
    reset-after form only)."""
    cell = model.cell
    if not cell.torch:
        raise ValueError(f"torch.nn has no layer for the {cell.name} cell; to_torch exports "
                         f"{listed([c.name for c in cells.layers('torch').values()])}")
    for setting, allowed in cell.torch_allows.items():
        if cell.values[setting] not in allowed:
            want = listed([f"{setting}={v!r}" for v in allowed])
            raise ValueError(f"torch.nn.{cell.torch} computes {want} only; this {cell.name} model has "
                             f"{setting}={cell.values[setting]!r}, which PyTorch has no module for")


def from_torch(module, linear, head="softmax"):
    """A bptt.Stack from a multi-layer or bidirectional torch.nn recurrent module and its nn.Linear."""
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
    return layers_of(arrays, kinds()[kind], module.num_layers, module.bidirectional, module.bias,
                     getattr(module, "nonlinearity", None))


def layers_of(arrays, cell, num_layers, bidirectional, bias, nonlinearity=None):
    """(the layers as pairs of bptt layers, {bptt's flat name: PyTorch's name}) from a module's
    parameters by PyTorch's names (weight_ih_l0, ...; NumPy arrays): cell, the name of a cell that a
    torch.nn module computes, and nonlinearity an nn.RNN's (the Elman cell's activation)."""
    cls = model_class(cell)
    settings = {"activation": nonlinearity} if nonlinearity is not None else {}
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
    """(module, nn.Linear) holding a stack's weights: one torch.nn recurrent module with num_layers
    = its depth, batch_first=True, bidirectional when its layers are, in the stack's dtype."""
    import torch

    first = stack.layers[0][0]
    cell = first.cell
    for k, j, m in stack.entries:
        if m.cell.name != cell.name or m.cell.values != cell.values or m.H != first.H:
            raise ValueError(f"torch.nn.{cell.torch or 'RNN'} has one cell and one hidden size for every "
                             f"layer; layer {k} is {m!r}, layer 0 {first!r}")
    if len(set(stack.directions)) != 1:
        raise ValueError("torch's recurrent modules are bidirectional in every layer or in none; this stack mixes "
                         f"them ({stack.directions})")
    expressible(first)
    dtype = torch_dtype(torch, stack.dtype, "to_torch")
    has_bias = any(k in m.params for _, _, m in stack.entries for k in ("b", "bh"))
    extra = {"nonlinearity": first.activation} if "activation" in cell.torch_allows else {}
    module = getattr(torch.nn, cell.torch)(first.D, first.H, num_layers=stack.depth, bias=has_bias,
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
