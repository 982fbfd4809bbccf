"""The same RNN, LSTM or GRU in PyTorch (float64, autograd), and import/export of torch.nn.RNN,
nn.LSTM and nn.GRU with an nn.Linear head. (The LRU, minGRU, minLSTM and linear diagonal cell,
which torch.nn has no layer for, are stepped in torch_modern; gradients() sends them there.)

`gradients` rebuilds the model from its arrays and lets torch.autograd differentiate it; nothing of
bptt's backward pass is used. The LSTM and the GRU (reset_after=True) run through PyTorch's own
nn.LSTM / nn.GRU (torch.func.functional_call with the model's arrays as the module's parameters);
the Elman cell and the GRU's reset-before form (which PyTorch has no module for) are stepped with
torch ops. Truncation (truncate=K, the notebook's rule) is built honestly: output t's chain is
recomputed from the state before step t-K of the forward pass (h and c for an LSTM), detached, so
autograd itself stops the error after K+1 steps. Outputs with t - K <= -1 start from the initial
state with its gradient kept; that is where dE/dh0 (and dE/dc0) come from.

Weight layout (PyTorch computes the gates from x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh):

    bptt     torch
    U        weight_ih_l0      (G, D), same layout (G = H, 4H rows i, f, g, o, or 3H rows r, z, n)
    W        weight_hh_l0      (G, H), same layout
    b        bias_ih_l0        (G,); for nn.RNN b = bias_ih_l0 + bias_hh_l0 (exported as b and 0)
    bh       bias_hh_l0        (G,), LSTM and GRU (a missing one of b, bh is exported as zeros)
    V        linear.weight     (O, H), same layout
    c        linear.bias       (O,)
    f        nn.RNN's nonlinearity "tanh" or "relu" (nn.RNN has no sigmoid or identity)

to_torch builds the module with batch_first=True in the model's dtype; its output sequence is
h_0..h_{T-1} (bptt's trace.states[1:]) and linear(output) is q. For an LSTM or GRU the module's
parameters are the model's arrays name by name, so to_torch(model.replace(**grads.params)) puts
dE/dweight_ih_l0 etc. where PyTorch's .grad of the same model would be.
"""
from __future__ import annotations

import numpy as np

from ..model import model_class
from . import torch_modern
from ._common import check_terms_args, problem, windows

RNN, LSTM, GRU = (model_class(name) for name in ("rnn", "lstm", "gru"))

from . import torch_stack
from .torch_stack import torch_dtype as _torch_dtype  # noqa: E402


CELLS = ("rnn", "lstm", "gru") + torch_modern.CELLS  # the cells this framework computes (both GRU forms)

def _act(torch, name, bm=None):
    """f(z) for the Elman cell's activation; modrelu: sign(z) relu(|z| + bm) (bm None: 0)."""
    if name == "modrelu":
        return lambda z: torch.sign(z) * torch.relu(torch.abs(z) + (0 if bm is None else bm))
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "identity": lambda z: z}[name]


def _setup(p, requires_grad=True):
    import torch

    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=requires_grad) for k, v in p.params.items()}
    state0 = tuple(torch.tensor(s, dtype=torch.float64, requires_grad=requires_grad) for s in p.state0)  # (N, H)
    return torch, P, state0


def _inputs(torch, p, U, b=None):
    """U x_t (+ b) for every step: (T, N, G). Ids index U's columns; autograd scatters back."""
    if p.ids is not None:
        UX = U.T[torch.tensor(p.ids.T)]  # (T, N, G)
    else:
        UX = torch.tensor(np.swapaxes(p.X, 0, 1)) @ U.T  # (T, N, G)
    return UX + b if b is not None else UX


def _step_loss(torch, p, q, t):
    """E_t summed over the batch (times the reduction's scale): q (N, O) at step t."""
    F = torch.nn.functional
    if p.head == "mse":
        y = torch.tensor(p.y_values[:, t])
        m = torch.tensor(p.mask[:, t])
        return (((q - y) ** 2).sum(-1) * m).sum() * p.scale
    return F.cross_entropy(q, torch.tensor(p.y_ids[:, t]), ignore_index=-1, reduction="sum") * p.scale


def _loss(torch, p, Q):
    """E over all steps: Q (T, N, O)."""
    F = torch.nn.functional
    if p.head == "mse":
        y = torch.tensor(np.swapaxes(p.y_values, 0, 1))
        m = torch.tensor(p.mask.T)
        return (((Q - y) ** 2).sum(-1) * m).sum() * p.scale
    O = Q.shape[-1]
    return F.cross_entropy(Q.reshape(-1, O), torch.tensor(p.y_ids.T.reshape(-1)), ignore_index=-1,
                           reduction="sum") * p.scale


def _own_step(torch, p, P):
    """The step with torch ops, for the cells PyTorch has no module for here: state -> state.

    Elman: s_t = f(a_t + s_{t-1} W^T). GRU reset before (Keras's reset_after=False):
    r, z = sigma(a_{r,z} + h W_{r,z}^T + bh_{r,z});  n = tanh(a_n + (r * h) W_n^T + bh_n);
    h_t = (1 - z) * n + z * h. a_t (N, G) = U x_t + b; state a tuple of (N, H).
    """
    W, bh = P["W"], P.get("bh")
    if p.cell == "rnn":  # its second bias bh, when it has one, adds to z_t as b does
        f = _act(torch, p.activation, P.get("bm"))
        return lambda a, state: (f(a + state[0] @ W.T + (bh if bh is not None else 0)),)
    H = W.shape[1]

    def gru_reset_before(a, state):
        (h,) = state
        rec = h @ W[:2 * H].T + (bh[:2 * H] if bh is not None else 0)  # (N, 2H)
        r, z = torch.sigmoid(a[:, :2 * H] + rec).split(H, dim=-1)
        n = torch.tanh(a[:, 2 * H:] + (r * h) @ W[2 * H:].T + (bh[2 * H:] if bh is not None else 0))
        return ((1 - z) * n + z * h,)

    return gru_reset_before


def _runner(torch, p, P):
    """run(k0, k1, state) -> (Hs (k1-k0, N, H), the state after step k1-1): steps k0..k1-1 from
    `state`, a tuple of (N, H) tensors ((h,) or (h, c))."""
    if p.cell == "rnn" or (p.cell == "gru" and not p.reset_after):
        A = _inputs(torch, p, P["U"], P.get("b"))  # (T, N, G)
        step = _own_step(torch, p, P)

        def run(k0, k1, state):
            hs = []
            for k in range(k0, k1):
                state = step(A[k], state)
                hs.append(state[0])
            return torch.stack(hs), state
        return run

    from torch.func import functional_call

    D, H = p.params["U"].shape[1], p.params["W"].shape[1]
    module = getattr(torch.nn, torch_stack.module_name(p.cell))(D, H, device="meta", dtype=torch.float64)  # no RNG
    zero = torch.zeros(p.params["W"].shape[0], dtype=torch.float64)  # a bias the model lacks
    weights = {"weight_ih_l0": P["U"], "weight_hh_l0": P["W"], "bias_ih_l0": P.get("b", zero),
               "bias_hh_l0": P.get("bh", zero)}
    X = torch.tensor(np.swapaxes(p.dense(), 0, 1))  # (T, N, D): ids as one-hot rows

    def run(k0, k1, state):
        init = tuple(s[None] for s in state)  # (1, N, H): (num_layers, N, H)
        out, final = functional_call(module, weights, (X[k0:k1], init if p.cell == "lstm" else init[0]))
        final = final if p.cell == "lstm" else (final,)
        return out, tuple(s[0] for s in final)
    return run


def gradients(model, x, y, *, truncate=None, h0=None, reduction="sum"):
    """(loss, {params by the model's names, "h0"[, "c0"]}) computed by torch.autograd in float64.

    model: bptt.RNN, LSTM or GRU, or one of the linear recurrences LRU, MinGRU, MinLSTM, Linear
    (stepped with torch ops: bptt.frameworks.torch_modern). Same arguments and meaning as
    bptt.gradients (for an LSTM h0 may be the pair (h0, c0)); dE/dh0 and dE/dc0 are (H,) or (N, H)
    for a batch ((2H,) / (N, 2H) for an LRU).
    """
    p = problem(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    if p.cell in torch_modern.CELLS:
        return torch_modern.gradients(model, x, y, truncate=truncate, h0=h0, reduction=reduction)
    torch, P, state0 = _setup(p)
    run = _runner(torch, p, P)
    c = P.get("c")

    def out(h):
        return h @ P["V"].T + c if c is not None else h @ P["V"].T

    Hs, _ = run(0, p.T, state0)  # (T, N, H)
    E = _loss(torch, p, out(Hs))
    if p.K is None:
        E.backward()
    else:
        with torch.no_grad():  # the states the truncated chains restart from, detached
            s = tuple(v.detach() for v in state0)
            states = [s]  # states[j]: the state before step j
            for k in range(p.T):
                _, s = run(k, k + 1, s)
                states.append(s)
        total = 0
        for w in windows(p.T, p.K):
            _, s = run(w.start, w.t + 1, state0 if w.from_h0 else states[w.start])
            total = total + _step_loss(torch, p, out(s[0]), w.t)
        total.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy().copy() for k, v in P.items()}
    grads.update(p.state_grads([(s.grad if s.grad is not None else torch.zeros_like(s)).numpy().copy()
                                for s in state0]))
    return float(E.detach()), grads


def terms(model: RNN, x, y, name, t, *, h0=None):
    """Step k's term of dE_t/d(name) for name in W, U, b: (T, *shape), zero for k > t (Elman only).

    The parameter is untied into T copies, copy k used at step k only; torch.autograd's gradient
    of copy k is step k's term. E_t is summed over the batch.
    """
    p = problem(model, x, y, h0=h0)
    t = check_terms_args(p, name, t)
    torch, P, (h0t,) = _setup(p, requires_grad=False)
    f = _act(torch, p.activation, P.get("bm"))
    copies = [P[name].clone().requires_grad_(True) for _ in range(p.T)]
    s = h0t
    for k in range(t + 1):
        U = copies[k] if name == "U" else P["U"]
        b = copies[k] if name == "b" else P.get("b")
        W = copies[k] if name == "W" else P["W"]
        ux = _inputs(torch, p, U, b)[k]  # (N, H)
        s = f(ux + s @ W.T + (P["bh"] if "bh" in P else 0))
    q = s @ P["V"].T + (P["c"] if "c" in P else 0)
    _step_loss(torch, p, q, t).backward()
    zero = np.zeros(p.params[name].shape)
    return np.stack([c.grad.numpy().copy() if c.grad is not None else zero for c in copies])


# --- import / export ---------------------------------------------------------------------------
def to_torch(model):
    """(module, torch.nn.Linear) holding the model's weights, in the model's dtype.

    module: torch.nn.RNN for a bptt.RNN, nn.LSTM for an LSTM, nn.GRU for a GRU; one layer,
    batch_first=True. RNN: bias_ih = b and bias_hh = 0 (nn.RNN only uses their sum); only tanh
    and relu exist in nn.RNN. LSTM, GRU: bias_ih_l0 = b, bias_hh_l0 = bh, zeros for the one a
    model lacks (bias=False when it has neither). A GRU with reset_after=False raises a ValueError:
    nn.GRU computes the reset-after form only.
    """
    from ..stack import Stack

    if isinstance(model, Stack):
        return torch_stack.to_torch(model)
    if not isinstance(model, (RNN, LSTM, GRU)):
        raise ValueError(f"to_torch expects a bptt.RNN, LSTM, GRU or a bptt.Stack of them, got {type(model).__name__}")
    torch_stack.expressible(model)
    import torch

    dtype = _torch_dtype(torch, model.dtype, "to_torch")
    biases = [getattr(model, k, None) for k in ("b", "bh")]
    has_bias = any(v is not None for v in biases)
    extra = {"nonlinearity": model.activation} if isinstance(model, RNN) else {}
    module = getattr(torch.nn, model.cell.torch)(model.D, model.H, num_layers=1, bias=has_bias,
                                                         batch_first=True, dtype=dtype, **extra)
    linear = torch.nn.Linear(model.H, model.O, bias=model.c is not None, dtype=dtype)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(model.U))
        module.weight_hh_l0.copy_(torch.tensor(model.W))
        for name, v in zip(("bias_ih_l0", "bias_hh_l0"), biases):
            if has_bias and v is not None:
                getattr(module, name).copy_(torch.tensor(v))
            elif has_bias:
                getattr(module, name).zero_()
        linear.weight.copy_(torch.tensor(model.V))
        if model.c is not None:
            linear.bias.copy_(torch.tensor(model.c))
    return module, linear


def from_torch(module, linear, *, head="softmax"):
    """A bptt model from a trained torch.nn.RNN, nn.LSTM or nn.GRU and its nn.Linear head (copies
    the weights): a bptt.RNN, LSTM or GRU (reset_after=True).

    RNN: b = bias_ih_l0 + bias_hh_l0. LSTM, GRU: b = bias_ih_l0, bh = bias_hh_l0, kept apart.
    batch_first may be either (it does not touch the weights). The dtype follows the weights
    (float32 stays float32). head: "softmax" (cross-entropy on the Linear's outputs) or "mse".
    A module with num_layers > 1 or bidirectional=True gives a bptt.Stack (torch_stack: every
    layer's two biases kept apart; dropout refused in training mode, ignored in eval mode with a
    warning). proj_size > 0 is a ValueError.
    """
    import torch

    kinds = torch_stack.modules(torch)
    if not isinstance(module, kinds):
        raise ValueError(f"from_torch expects a torch.{torch_stack.named_modules()}, got {type(module).__name__}")
    kind = next(k.__name__ for k in kinds if isinstance(module, k))
    if not isinstance(linear, torch.nn.Linear):
        raise ValueError(f"from_torch expects a torch.nn.Linear head, got {type(linear).__name__}")
    if getattr(module, "proj_size", 0) > 0:
        raise ValueError(f"bptt's LSTM has no projection of h; this nn.LSTM has proj_size={module.proj_size}")
    width = module.hidden_size * (2 if module.bidirectional else 1)
    if linear.in_features != width:
        raise ValueError(f"the Linear head takes {linear.in_features} inputs but the {kind}'s output is {width} "
                         f"wide (hidden_size {module.hidden_size}{', both directions' if module.bidirectional else ''})")
    for name, t in list(module.named_parameters()) + [("the Linear's " + n, t) for n, t in linear.named_parameters()]:
        if t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"bptt holds float32 or float64 weights; {name} is {t.dtype}")

    if module.num_layers != 1 or module.bidirectional:
        return torch_stack.from_torch(module, linear, head)

    def arr(t):
        return t.detach().cpu().numpy().copy()

    c = arr(linear.bias) if linear.bias is not None else None
    U, W, V = arr(module.weight_ih_l0), arr(module.weight_hh_l0), arr(linear.weight)
    if kind == "RNN":
        b = arr(module.bias_ih_l0) + arr(module.bias_hh_l0) if module.bias else None
        return RNN(U=U, W=W, V=V, b=b, c=c, activation=module.nonlinearity, head=head)
    b, bh = (arr(module.bias_ih_l0), arr(module.bias_hh_l0)) if module.bias else (None, None)
    return (LSTM if kind == "LSTM" else GRU)(U=U, W=W, V=V, b=b, bh=bh, c=c, head=head)
