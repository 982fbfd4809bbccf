"""Writes examples/diagnose-pytorch.ipynb from the cells below, run top to bottom, with its outputs.

    python examples/build_diagnose_notebook.py          # after editing a cell here (about a minute)

Unlike the lesson notebook, this one is committed with its outputs: they are the example's results
(held-out accuracies, the diagnosis, the advised forget bias). tests/test_notebook_diagnose.py
checks that the committed cells are the ones below, runs them again in a kernel and asserts what
the outputs must show.
"""
import json
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
PATH = HERE / "diagnose-pytorch.ipynb"

CELLS = [
    ("md", r"""
# Diagnose your own network: an LSTM that does not learn, and why

A PyTorch classifier (an embedding, a 2-layer LSTM, a linear layer on the last step) is trained on
a task whose answer lies near the start of the sequence, and it stays at chance. `bptt.diagnose`
runs the model once on a batch, takes the error that our own loss puts on the LSTM's outputs, and
follows it back through both layers exactly. It shows where the error dies, why (the LSTM's
memory path), and by how much to raise the forget gate's bias. We apply exactly that value, train
again on the same batches, and the model learns.

At the end, the case of keras-team/keras#16151: a freshly built Keras LSTM, whose cell path shrinks
the error by σ(1) per step.

Every number below is printed by the cells. The test suite runs this notebook
(`tests/test_notebook_diagnose.py`); it takes about a minute on two CPU cores."""),
    ("code", r"""
import copy
import math
import os
import time

import numpy as np
import torch

import bptt

start = time.perf_counter()
torch.set_num_threads(1)  # small matrices: one thread is faster than two that wait for each other

T = 60            # steps per sequence
CLASSES = 4       # class tokens 0..3, the labels
DISTRACTORS = 6   # distractor tokens 4..9
WINDOW = 10       # the class token sits somewhere in the first WINDOW steps
E, H = 8, 16      # embedding size, LSTM hidden size (both layers)
STEPS, BATCH, LR = 1000, 32, 3e-3
print(f"T = {T}, chance accuracy 1/{CLASSES} = {1 / CLASSES}, loss of a uniform guess ln {CLASSES} = {math.log(CLASSES):.4f}")"""),
    ("md", r"""
## 1. The task

Each sequence holds one class token, at a random step among the first `WINDOW`; every other token
is a distractor drawn at random. The label is the class token, to be given at the last step, so the
model must carry it across at least `T - WINDOW` distractors: the long-time-lag setting of
Hochreiter and Schmidhuber's LSTM paper (1997), with noise. The held-out set is drawn once from its
own seed, never from the training generator."""),
    ("code", r"""
def sequences(rng, n):
    # n sequences of token ids (n, T) and their labels (n,)
    x = rng.integers(CLASSES, CLASSES + DISTRACTORS, (n, T))
    y = rng.integers(0, CLASSES, n)
    x[np.arange(n), rng.integers(0, WINDOW, n)] = y
    return torch.as_tensor(x), torch.as_tensor(y)


x_test, y_test = sequences(np.random.default_rng(1234), 1000)
print("a held-out sequence:", "".join(map(str, x_test[0].tolist())), " label", y_test[0].item())
print("held-out labels per class:", np.bincount(y_test.numpy()).tolist())"""),
    ("md", r"""
## 2. The model, with a bad initialisation

The forget gate of an LSTM decides how much of the cell state c survives a step:
c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t. We set its bias to -3 in every layer (PyTorch's `bias_ih`; the
`bias_hh` part to 0), so σ(-3) keeps only a small fraction per step. **This is deliberate**: we
want a network that fails for a known reason. It is also an easy mistake: a sign slip in a
"forget bias 3" initialisation, or an init meant for a network that should forget fast. PyTorch's
default draws both biases near 0, from U(-1/√H, 1/√H).

Every model below starts from the same weights (`torch.manual_seed(0)`) and sees the same training
batches (`np.random.default_rng(1)`): only the forget bias differs."""),
    ("code", r"""
class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(CLASSES + DISTRACTORS, E)
        self.lstm = torch.nn.LSTM(E, H, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(H, CLASSES)

    def forward(self, x):                     # x: (N, T) token ids
        out, _ = self.lstm(self.emb(x))       # (N, T, H): the top layer's outputs
        return self.head(out[:, -1])          # (N, CLASSES) logits, from the last step


def forget_bias(lstm, k):
    # layer k's forget-gate part of bias_ih (PyTorch's gate order: i, f, g, o)
    return getattr(lstm, f"bias_ih_l{k}")[H:2 * H]


def initial_model():
    torch.manual_seed(0)
    model = Classifier()
    with torch.no_grad():
        for k in range(model.lstm.num_layers):
            forget_bias(model.lstm, k).fill_(-3.0)
            getattr(model.lstm, f"bias_hh_l{k}")[H:2 * H].zero_()
    return model


def accuracy(model):
    with torch.no_grad():
        return (model(x_test).argmax(-1) == y_test).float().mean().item()


def train(model):
    rng = np.random.default_rng(1)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for step in range(1, STEPS + 1):
        x, y = sequences(rng, BATCH)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            print(f"step {step:4}: training loss {loss.item():.3f}, held-out accuracy {accuracy(model):.3f}")
    return model


broken = train(initial_model())"""),
    ("md", r"""
It does not learn: the training loss stays at that of a uniform guess and the held-out accuracy at
chance (both printed in the first cell).

## 3. The diagnosis

`bptt.diagnose(model, rnn, inputs, loss_fn)` runs `model(inputs)`, takes from PyTorch's autograd the
error that `loss_fn` puts on each step of `rnn`'s output, and computes everything inside `rnn` with
bptt's own engine. We give it a float64 copy of the trained model, so that its gradients can be
compared with PyTorch's to rounding, and 64 training sequences with our own loss."""),
    ("code", r"""
x_diag, y_diag = sequences(np.random.default_rng(7), 64)


def loss_fn(logits):
    return torch.nn.functional.cross_entropy(logits, y_diag)


def diagnose(model):
    m64 = copy.deepcopy(model).double()
    return bptt.diagnose(m64, m64.lstm, x_diag, loss_fn), m64


d, m64 = diagnose(broken)
loss_fn(m64(x_diag)).backward()  # PyTorch's own gradients, for comparison
worst = max(float(np.max(np.abs(d.grads[n] - p.grad.numpy()))) for n, p in m64.lstm.named_parameters())
print(f"largest difference between d.grads and PyTorch's .grad: {worst:.1e}\n")
print(d)"""),
    ("md", r"""
Reading the table, one row per layer:

- **from t**: the step whose error the curve follows back (the last one, where the head reads);
- **decay/step**: the factor by which that error shrinks per step going back (a fit over all lags),
  and **halves in** the steps it takes to halve;
- **Lyapunov**: the largest Lyapunov exponent per step (negative: errors shrink);
- **radius**: the largest spectral radius of the recurrent weight blocks;
- **>10**, **>100**: the share of the layer's weight gradient that comes from more than 10 or 100
  steps back, what truncating BPTT there would lose (0% when T is shorter: nothing lies that far back).

Each advice line names the number it comes from. The memory path is the cell state: the error on
c_t reaches c_{t-l} multiplied by f_t f_{t-1} ⋯ f_{t-l+1}. `d.entries[k]["memory"]` holds the forget
gate's mean per step and that product's mean over units and sequences, by lag:"""),
    ("code", r"""
for e in d.entries:
    per_step, product = e["memory"]
    print(f"{e['name']}: forget gate mean {per_step.mean():.4f}; the memory path keeps "
          f"{product[1]:.3g} after 1 step, {product[10]:.3g} after 10, {product[d.T]:.3g} after {d.T}")"""),
    ("md", r"""
The same diagnosis as a page, with its charts: per layer the lag curve and its fit, the error at
each step, the memory path and the per-step terms of the recurrent weights' gradient.
`d.save("diagnosis.html")` writes it as a file."""),
    ("code", r"""
d"""),
    ("md", r"""
## 4. The fix the diagnosis advises

The advice aims at a memory path that keeps half of an error over the batch's T steps: a forget gate
of 0.5^(1/T), whose pre-activation is its logit, so the bias must rise by logit(0.5^(1/T)) minus the
logit of the gate's present mean. We compute that from the diagnosis's numbers (the rule of
`bptt.diagnosis.text.advice`), check that it is the number the advice printed, and add it to each
layer's forget bias in the same initial model."""),
    ("code", r"""
def logit(p):
    return math.log(p / (1 - p))


target = 0.5 ** (1 / d.T)
raise_by = [logit(target) - logit(float(e["memory"][0].mean())) for e in d.entries]
advised = [line for line in d.advice() if "bias by about" in line]
assert len(advised) == len(raise_by)
for e, r, line in zip(d.entries, raise_by, advised):
    assert line.startswith(e["name"]) and f"by about {r:.3g})" in line, line
    print(f"{e['name']}: raise the forget bias by {r:.4f} (the advice: {line[line.index('raise'):].rstrip(').')})")

fixed_init = initial_model()
with torch.no_grad():
    for k, r in enumerate(raise_by):
        forget_bias(fixed_init.lstm, k).add_(r)
print("forget biases now:", [round(forget_bias(fixed_init.lstm, k).mean().item(), 4) for k in range(2)])"""),
    ("md", r"""
Before training, the diagnosis of the fixed initial model: its memory path should now keep about
half over T steps."""),
    ("code", r"""
d_fixed, _ = diagnose(fixed_init)
for e in d_fixed.entries:
    per_step, product = e["memory"]
    print(f"{e['name']}: forget gate mean {per_step.mean():.4f}; memory path after {d_fixed.T} steps "
          f"{product[d_fixed.T]:.3f}; the error's decay per step {e['decay']:.3f}")"""),
    ("md", r"""
## 5. Train again

Same initial weights, same batches, same number of steps, the forget bias raised."""),
    ("code", r"""
fixed = train(fixed_init)"""),
    ("md", r"""
## 6. The Keras case: keras-team/keras#16151

In that issue the gradient on a Keras LSTM's cell state "vanishes within 20 steps", and the ratios
printed there start near σ(1). A Keras LSTM initialises its forget bias to 1
(`unit_forget_bias=True`, the default), so at initialisation, where the weighted inputs are small,
the forget gate sits near σ(1) and the cell path shrinks an error by about that factor per step. A
freshly built embedding → LSTM → dense model on the same batch shows it: the ratio of the memory
path's product from one lag to the next."""),
    ("code", r"""
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"   # before TensorFlow's import: keep its start-up log out
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # and the oneDNN notice (it only reorders float32 sums)
import keras

keras.utils.set_random_seed(0)
tokens = keras.Input((T,), dtype="int32")
lstm_k = keras.layers.LSTM(H, dtype="float64")  # unit_forget_bias=True, Keras's default
embedded = keras.layers.Embedding(CLASSES + DISTRACTORS, E, dtype="float64")(tokens)
model_k = keras.Model(tokens, keras.layers.Dense(CLASSES, dtype="float64")(lstm_k(embedded)))
xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
d_k = bptt.diagnose(model_k, lstm_k, x_diag.numpy().astype("int32"), lambda out: xent(y_diag.numpy(), out))

per_step, product = d_k.entries[0]["memory"]
ratios = product[1:] / product[:-1]
sigma1 = 1 / (1 + math.exp(-1))
print(f"sigma(1) = {sigma1:.4f}")
print("the cell path's ratio per step, lags 1 to 8:", " ".join(f"{r:.4f}" for r in ratios[:8]))
print(f"the cell path after 20 steps: {product[20]:.3g} (sigma(1)^20 = {sigma1 ** 20:.3g})\n")
print(d_k)"""),
    ("md", r"""
## What we found

The last cell gathers the main numbers, and fails if the fixed model stops meeting the criterion
(held-out accuracy at least 0.9 while the broken one stays below 0.4)."""),
    ("code", r"""
acc_broken, acc_fixed = accuracy(broken), accuracy(fixed)
print(f"1. Forget bias -3: the memory path keeps {max(e['memory'][1][d.T] for e in d.entries):.3g} of an error "
      f"over T = {d.T} steps; after {STEPS} steps of training, held-out accuracy {acc_broken:.3f} (chance {1 / CLASSES}).")
print(f"2. The diagnosis advised raising the forget bias by {raise_by[0]:.3f} (layer 0) and {raise_by[1]:.3f} (layer 1); "
      f"then the memory path keeps {min(e['memory'][1][d.T] for e in d_fixed.entries):.3f} or more over {d.T} steps, "
      f"and the same training reaches held-out accuracy {acc_fixed:.3f}.")
print(f"3. A fresh Keras LSTM's cell path shrinks an error by {ratios[:20].mean():.4f} per step over its first 20 lags "
      f"(sigma(1) = {sigma1:.4f}).")
print(f"This run took {time.perf_counter() - start:.0f} s.")
assert acc_fixed >= 0.9 and acc_broken < 0.4, (acc_broken, acc_fixed)
assert abs(ratios[:20].mean() - sigma1) < 0.01"""),
]


def build():
    """The notebook as an nbformat node, without outputs."""
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for kind, text in CELLS:
        text = text.strip("\n")
        nb.cells.append(new_markdown_cell(text) if kind == "md" else new_code_cell(text))
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: the file changes only when a cell does
    return nb


def execute(nb, timeout=300):
    """Run nb top to bottom in a kernel of this interpreter, examples/ as its working directory."""
    import nbclient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / "bptt-example"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "bptt example kernel", "language": "python"}))
        ksm = KernelSpecManager(kernel_dirs=[str(Path(tmp) / "kernels")], ensure_native_kernel=False)
        km = KernelManager(kernel_name="bptt-example", kernel_spec_manager=ksm)
        nbclient.NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                                resources={"metadata": {"path": str(HERE)}}).execute()
    nb.metadata = build().metadata  # the run's kernel, not the temporary one
    return nb


def main():
    nbformat.write(execute(build()), PATH)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
