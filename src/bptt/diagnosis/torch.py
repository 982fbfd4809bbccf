"""The error a PyTorch model's own loss puts on its recurrent module, by PyTorch's autograd.

capture(model, rnn, inputs, loss_fn) runs the user's model once with hooks on `rnn` (an nn.RNN,
nn.LSTM or nn.GRU inside it): the hooks keep what the module read (its input sequence and initial
state) and what it gave (its output sequence and final state). The user's loss, computed by the
user's own code on the user's own head (embedding, attention, masking, anything), is differentiated
by PyTorch with respect to those outputs: dE/d output_t for every step, and dE/d h_n (and c_n)
where the loss reads the final state. Nothing else of PyTorch's backward pass is used: bptt
computes the flow inside the recurrent layers from there.
"""
from __future__ import annotations

import numpy as np

from ..validate import show


def capture(model, rnn, inputs, loss_fn):
    """(stack, x, h0, dY, final, names): the module as a bptt.Stack (a placeholder identity head:
    only its layers are used), its input x (N, T, D) and initial state, dY (T, N, out) dE/d
    output_t, final: the error at each layer and direction's last state (a list of state tuples),
    names: PyTorch's parameter names of the rnn by bptt's flat names; and the loss's value."""
    import torch

    from ..frameworks.torch_stack import kinds, layers, modules, named_modules

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(rnn, modules(torch)):
        raise TypeError(f"rnn must be the torch.{named_modules()} inside model, got {type(rnn).__name__}")
    if not any(m is rnn for m in model.modules()):
        raise ValueError("rnn is not a submodule of model: pass the recurrent module that model calls "
                         "(e.g. model.rnn)")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function of the model's output returning a scalar loss, got "
                        f"{show(loss_fn)}")
    seen = {}

    def before(module, args, kwargs):
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if isinstance(x, torch.nn.utils.rnn.PackedSequence):
            raise ValueError("the recurrent module was called with a PackedSequence: bptt diagnoses padded "
                             "batches (mask the padded steps in the loss instead)")
        seen["x"], seen["hx"] = x, hx

    def after(module, args, kwargs, output):
        out, state = output
        seen["out"], seen["state"] = out, state

    hooks = [rnn.register_forward_pre_hook(before, with_kwargs=True),
             rnn.register_forward_hook(after, with_kwargs=True)]
    try:
        with torch.enable_grad():
            y = model(inputs)
            if "out" not in seen:
                raise ValueError("model(inputs) did not call rnn: pass the recurrent module that model calls")
            loss = loss_fn(y)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"loss_fn must return a scalar tensor, got {show(loss)}")
            wrt = [seen["out"]] + list(seen["state"] if isinstance(seen["state"], tuple) else (seen["state"],))
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    if getattr(rnn, "proj_size", 0) > 0:
        raise ValueError(f"bptt's cells have no projection of h; this nn.{type(rnn).__name__} has "
                         f"proj_size={rnn.proj_size}")
    if rnn.dropout and rnn.training:
        raise ValueError(f"the nn.{type(rnn).__name__} has dropout={rnn.dropout} between its layers and is in "
                         "training mode, where its output is random: call model.eval() first")

    def arr(t, like=None):
        if t is None:
            return None if like is None else np.zeros(tuple(like.shape))
        return t.detach().cpu().numpy().copy()

    bf = rnn.batch_first
    x, out = arr(seen["x"]), arr(seen["out"])
    if x.ndim == 2:  # an unbatched call: (T, D)
        x, out = x[None], out[None]
        dY = arr(grads[0], seen["out"])[None]
    else:
        dY = arr(grads[0], seen["out"])
        if not bf:
            x, out, dY = np.swapaxes(x, 0, 1), np.swapaxes(out, 0, 1), np.swapaxes(dY, 0, 1)
    states = [arr(g, s) for g, s in zip(grads[1:], wrt[1:])]
    hx = seen["hx"]
    h0 = None if hx is None else tuple(arr(h) for h in hx) if isinstance(hx, tuple) else arr(hx)
    if states and states[0].ndim == 2:  # unbatched: (L * dirs, H)
        states = [s[:, None] for s in states]
        h0 = None if h0 is None else tuple(h[:, None] for h in h0) if isinstance(h0, tuple) else h0[:, None]
    pairs, names = layers(rnn)
    from ..stack import Stack

    width = out.shape[-1]
    stack = Stack(pairs, np.eye(width, dtype=x.dtype), head="mse")
    final = [tuple(s[i] for s in states) for i in range(len(stack.entries))]
    return {"stack": stack, "x": x, "out": out, "h0": h0, "dY": np.swapaxes(dY, 0, 1), "final": final,
            "names": names, "loss": float(loss.detach()), "kind": kinds()[type(rnn).__name__],
            "framework": "PyTorch", "dtype": str(x.dtype)}
